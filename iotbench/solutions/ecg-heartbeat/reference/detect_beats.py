"""Pan-Tompkins QRS detection: band-pass, derivative, squaring, moving-window integration,
adaptive thresholds with search-back and T-wave discrimination, then the R peak in the signal."""
import numpy as np
from scipy.signal import butter, filtfilt, find_peaks


def _bandpass(signal, fs, low, high, order=2):
    nyquist = fs / 2.0
    b, a = butter(order, [low / nyquist, min(high / nyquist, 0.99)], btype="band")
    return filtfilt(b, a, signal)


def pan_tompkins(signal, fs):
    signal = np.asarray(signal, dtype=np.float64)
    filtered = _bandpass(signal, fs, 5.0, 15.0)
    derivative = np.gradient(filtered)
    squared = derivative ** 2
    window = max(1, int(round(0.150 * fs)))
    integrated = np.convolve(squared, np.ones(window) / window, mode="same")
    candidates, _ = find_peaks(integrated, distance=max(1, int(round(0.2 * fs))))
    if len(candidates) == 0:
        return np.array([], dtype=int)
    learning = integrated[: int(2 * fs)]
    spki = 0.25 * float(np.max(learning)) if len(learning) else float(np.max(integrated))
    npki = 0.5 * float(np.mean(learning)) if len(learning) else 0.0
    threshold = npki + 0.25 * (spki - npki)
    qrs = []
    slopes = []
    rr_average = None
    refractory = int(round(0.2 * fs))
    t_wave_window = int(round(0.36 * fs))
    slope_half = max(1, int(round(0.075 * fs)))
    index = 0
    while index < len(candidates):
        peak = candidates[index]
        value = integrated[peak]
        slope = float(np.max(np.abs(derivative[max(0, peak - slope_half) : peak + 1])))
        is_qrs = value > threshold
        if is_qrs and qrs:
            gap = peak - qrs[-1]
            if gap < refractory:
                is_qrs = False
            elif gap < t_wave_window and slope < 0.5 * slopes[-1]:
                is_qrs = False
        if is_qrs:
            if qrs and rr_average is not None and peak - qrs[-1] > 1.66 * rr_average:
                # Search back for a beat missed between the last one and this one.
                missed = [c for c in candidates if qrs[-1] + refractory < c < peak - refractory and integrated[c] > 0.5 * threshold]
                if missed:
                    best = max(missed, key=lambda c: integrated[c])
                    qrs.append(best)
                    slopes.append(slope)
                    spki = 0.25 * integrated[best] + 0.75 * spki
            qrs.append(peak)
            slopes.append(slope)
            spki = 0.125 * value + 0.875 * spki
            if len(qrs) >= 2:
                recent = np.diff(qrs[-9:])
                rr_average = float(np.mean(recent))
        else:
            npki = 0.125 * value + 0.875 * npki
        threshold = npki + 0.25 * (spki - npki)
        index += 1
    # The integrated peak lags the QRS; the R peak is the largest deflection nearby.
    wide = _bandpass(signal, fs, 0.5, 40.0)
    search = int(round(0.15 * fs))
    peaks = []
    for q in qrs:
        start = max(0, q - search)
        stop = min(len(wide), q + search // 3 + 1)
        segment = wide[start:stop]
        if len(segment):
            peaks.append(start + int(np.argmax(np.abs(segment))))
    return np.unique(np.array(peaks, dtype=int))


def run(signal, fs):
    peaks = pan_tompkins(signal, float(fs))
    if len(peaks) >= 2:
        heart_rate = 60.0 * float(fs) / float(np.mean(np.diff(peaks)))
    else:
        heart_rate = 0.0
    return {"r_peaks": [int(p) for p in peaks], "heart_rate_bpm": heart_rate}

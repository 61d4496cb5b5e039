"""Deliberately broken: a detector that fails on every input."""
import numpy as np


def run(signal, fs):
    window = np.ones(int(fs * 0.15))
    energy = np.convolve(np.asarray(signal) ** 2, window, mode="same")
    threshold = energy.mean()
    peaks = np.flatnonzero(energy > threshold)
    return {"r_peaks": peaks[: len(peaks) // 0], "heart_rate_bpm": 0.0}

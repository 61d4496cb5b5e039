"""Deliberately broken: reports every beat 300 ms late, outside the 150 ms matching window."""
def run(r_peaks, fs, heart_rate_bpm):
    delay = int(round(0.3 * float(fs)))
    return {"r_peaks": [int(p) + delay for p in r_peaks], "heart_rate_bpm": heart_rate_bpm}

"""Deliberately broken: ignores the signal and reports one beat per second."""
def run(record_path):
    with open(record_path + ".hea", encoding="latin-1") as handle:
        fields = handle.readline().split()
    fs = float(fields[2])
    n_samples = int(fields[3])
    step = int(fs)
    return {"r_peaks": list(range(step // 2, n_samples, step)), "heart_rate_bpm": 60.0}

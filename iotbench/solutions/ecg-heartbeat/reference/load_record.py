"""Reads a WFDB record (header + format 212 or 16 signal file) with NumPy only."""
import os

import numpy as np


def _read_header(record_path):
    with open(record_path + ".hea", encoding="latin-1") as handle:
        lines = [line.strip() for line in handle if line.strip() and not line.startswith("#")]
    record = lines[0].split()
    n_signals = int(record[1])
    fs = float(record[2].split("/")[0].split("(")[0]) if len(record) > 2 else 250.0
    n_samples = int(record[3]) if len(record) > 3 else 0
    signals = []
    for line in lines[1 : 1 + n_signals]:
        fields = line.split()
        gain_field = fields[2] if len(fields) > 2 else "200"
        gain_text = gain_field.split("/")[0]
        baseline = None
        if "(" in gain_text:
            gain_text, baseline_text = gain_text.split("(")
            baseline = int(baseline_text.rstrip(")"))
        adc_zero = int(fields[4]) if len(fields) > 4 else 0
        signals.append(
            {
                "file": fields[0],
                "format": int(fields[1].split("x")[0].split(":")[0].split("+")[0]),
                "gain": float(gain_text) or 200.0,
                "baseline": adc_zero if baseline is None else baseline,
            }
        )
    return fs, n_samples, signals


def _decode_212(raw, count):
    triplets = len(raw) // 3
    data = raw[: triplets * 3].reshape(-1, 3).astype(np.int32)
    first = data[:, 0] | ((data[:, 1] & 0x0F) << 8)
    second = data[:, 2] | ((data[:, 1] & 0xF0) << 4)
    samples = np.empty(triplets * 2, dtype=np.int32)
    samples[0::2] = first
    samples[1::2] = second
    if len(raw) - triplets * 3 >= 2:
        tail = int(raw[triplets * 3]) | ((int(raw[triplets * 3 + 1]) & 0x0F) << 8)
        samples = np.append(samples, tail)
    samples = samples[:count]
    samples[samples >= 2048] -= 4096
    return samples


def run(record_path):
    fs, n_samples, signals = _read_header(record_path)
    first = signals[0]
    group = [signal for signal in signals if signal["file"] == first["file"]]
    raw = np.fromfile(os.path.join(os.path.dirname(record_path), first["file"]), dtype=np.uint8)
    total = n_samples * len(group) if n_samples else None
    if first["format"] == 212:
        samples = _decode_212(raw, total if total else (len(raw) * 2) // 3)
    elif first["format"] == 16:
        samples = raw[: (len(raw) // 2) * 2].view("<i2").astype(np.int32)[: total if total else None]
    else:
        raise ValueError("unsupported WFDB format %d" % first["format"])
    frames = samples[: (len(samples) // len(group)) * len(group)].reshape(-1, len(group))
    signal = (frames[:, 0].astype(np.float64) - first["baseline"]) / first["gain"]
    return {"signal": signal, "fs": fs}

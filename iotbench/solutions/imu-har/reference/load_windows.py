"""Reads the UCI HAR layout: nine 'Inertial Signals' files per split (one 128-sample window per line)."""
import os

import numpy as np

CHANNELS = ["body_acc_x", "body_acc_y", "body_acc_z", "body_gyro_x", "body_gyro_y", "body_gyro_z", "total_acc_x", "total_acc_y", "total_acc_z"]


def _split_name(folder):
    return os.path.basename(os.path.normpath(folder))


def _load(folder):
    split = _split_name(folder)
    signals = [np.loadtxt(os.path.join(folder, "Inertial Signals", "%s_%s.txt" % (channel, split)), ndmin=2) for channel in CHANNELS]
    return np.stack(signals, axis=-1)


def run(train_dir, test_dir):
    train = _load(train_dir)
    test = _load(test_dir)
    labels = np.loadtxt(os.path.join(train_dir, "y_%s.txt" % _split_name(train_dir)), dtype=int, ndmin=1)
    return {"train_windows": train, "train_labels": labels, "test_windows": test}

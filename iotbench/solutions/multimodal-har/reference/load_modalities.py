"""Loads the audio, depth and radar arrays of both splits (and the training labels)."""
import os

import numpy as np


def _load(folder):
    return {name: np.load(os.path.join(folder, name + ".npy")).astype(np.float32) for name in ("audio", "depth", "radar")}


def run(train_dir, test_dir):
    train = _load(train_dir)
    test = _load(test_dir)
    return {
        "train_audio": train["audio"],
        "train_depth": train["depth"],
        "train_radar": train["radar"],
        "train_labels": np.load(os.path.join(train_dir, "labels.npy")).astype(int),
        "test_audio": test["audio"],
        "test_depth": test["depth"],
        "test_radar": test["radar"],
    }

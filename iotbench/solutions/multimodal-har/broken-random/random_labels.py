"""Deliberately broken: random classes, whatever the sensors say."""
import numpy as np


def run(train_audio, train_depth, train_radar, train_labels, test_audio, test_depth, test_radar):
    classes = np.unique(np.asarray(train_labels).astype(int))
    generator = np.random.default_rng(7)
    return {"labels": [int(c) for c in generator.choice(classes, size=len(test_audio))]}

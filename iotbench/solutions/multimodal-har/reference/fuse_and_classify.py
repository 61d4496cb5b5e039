"""Feature-level fusion: per-modality summary features, standardised and concatenated, then a
NumPy softmax regression."""
import numpy as np


def _audio_features(audio):
    energy = audio.mean(axis=1)
    return np.concatenate([audio.mean(axis=2), audio.std(axis=2), np.sort(energy, axis=1)[:, -3:], energy.std(axis=1, keepdims=True)], axis=1)


def _depth_features(depth):
    n = depth.shape[0]
    pooled = depth.reshape(n, 4, depth.shape[1] // 4, 4, depth.shape[2] // 4).mean(axis=(2, 4)).reshape(n, -1)
    near = (depth < 0.8).astype(np.float32)
    rows = near.sum(axis=2)
    cols = near.sum(axis=1)
    return np.concatenate([pooled, rows, cols, near.sum(axis=(1, 2))[:, None]], axis=1)


def _radar_features(radar):
    profile = radar.mean(axis=2)
    peak = np.argmax(radar, axis=1).astype(np.float32)
    return np.concatenate([profile, radar.std(axis=2), peak.std(axis=1, keepdims=True), np.abs(np.diff(peak, axis=1)).mean(axis=1, keepdims=True), peak.min(axis=1, keepdims=True), peak.max(axis=1, keepdims=True)], axis=1)


def _features(audio, depth, radar):
    return np.concatenate([_audio_features(audio), _depth_features(depth), _radar_features(radar)], axis=1)


def _softmax_regression(x, y, classes, epochs=300, rate=0.3, l2=1e-2):
    target = np.zeros((len(y), len(classes)))
    target[np.arange(len(y)), np.searchsorted(classes, y)] = 1.0
    weights = np.zeros((x.shape[1], len(classes)))
    bias = np.zeros(len(classes))
    for _ in range(epochs):
        logits = x @ weights + bias
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        error = (p - target) / len(y)
        weights -= rate * (x.T @ error + l2 * weights)
        bias -= rate * error.sum(axis=0)
    return weights, bias


def run(train_audio, train_depth, train_radar, train_labels, test_audio, test_depth, test_radar):
    train_x = _features(np.asarray(train_audio), np.asarray(train_depth), np.asarray(train_radar))
    test_x = _features(np.asarray(test_audio), np.asarray(test_depth), np.asarray(test_radar))
    centre = train_x.mean(axis=0)
    scale = train_x.std(axis=0) + 1e-6
    train_x = (train_x - centre) / scale
    test_x = (test_x - centre) / scale
    labels = np.asarray(train_labels).astype(int)
    classes = np.unique(labels)
    weights, bias = _softmax_regression(train_x, labels, classes)
    return {"labels": [int(c) for c in classes[np.argmax(test_x @ weights + bias, axis=1)]]}

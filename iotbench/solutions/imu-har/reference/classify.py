"""Hand-crafted window features (statistics, spectrum, gravity direction) and a softmax
regression trained with NumPy: small and fast enough for an embedded board."""
import numpy as np


def features(windows, rate=50.0):
    windows = np.asarray(windows, dtype=np.float64)
    mean = windows.mean(axis=1)
    std = windows.std(axis=1)
    low = np.percentile(windows, 10, axis=1)
    high = np.percentile(windows, 90, axis=1)
    spectrum = np.abs(np.fft.rfft(windows - mean[:, None, :], axis=1))
    freqs = np.fft.rfftfreq(windows.shape[1], 1.0 / rate)
    dominant = freqs[np.argmax(spectrum[:, 1:, :], axis=1) + 1]
    energy = (spectrum ** 2).sum(axis=1) / windows.shape[1]
    band = (spectrum[:, (freqs >= 0.5) & (freqs < 3.0), :] ** 2).sum(axis=1) / np.maximum((spectrum[:, 1:, :] ** 2).sum(axis=1), 1e-12)
    gravity = mean[:, 6:9]
    gravity = gravity / np.maximum(np.linalg.norm(gravity, axis=1, keepdims=True), 1e-9)
    return np.concatenate([mean, std, low, high, dominant, np.log1p(energy), band, gravity], axis=1)


def train_softmax(x, y, classes, epochs=400, rate=0.5, l2=1e-3):
    index = {label: i for i, label in enumerate(classes)}
    target = np.zeros((len(y), len(classes)))
    target[np.arange(len(y)), [index[label] for label in y]] = 1.0
    weights = np.zeros((x.shape[1], len(classes)))
    bias = np.zeros(len(classes))
    for _ in range(epochs):
        logits = x @ weights + bias
        logits -= logits.max(axis=1, keepdims=True)
        probabilities = np.exp(logits)
        probabilities /= probabilities.sum(axis=1, keepdims=True)
        error = (probabilities - target) / len(y)
        weights -= rate * (x.T @ error + l2 * weights)
        bias -= rate * error.sum(axis=0)
    return weights, bias


def run(train_windows, train_labels, test_windows):
    train_x = features(train_windows)
    test_x = features(test_windows)
    centre = train_x.mean(axis=0)
    scale = train_x.std(axis=0) + 1e-9
    train_x = (train_x - centre) / scale
    test_x = (test_x - centre) / scale
    labels = np.asarray(train_labels).astype(int)
    classes = np.unique(labels)
    weights, bias = train_softmax(train_x, labels, classes)
    predicted = classes[np.argmax(test_x @ weights + bias, axis=1)]
    return {"labels": [int(label) for label in predicted]}

"""What a device's latency column allows at best: a gradient-boosted model given 12,000
of its measurements (80% of a smaller table; more than a few-shot fit ever gets) and
every other device, scored on the rest; and how much of what it leaves follows the order the rows were measured in.

A yardstick outside the project (numpy, scipy and scikit-learn, installed outside it):
    python3 -m venv ~/.venvs/np && ~/.venvs/np/bin/pip install numpy scipy scikit-learn
    ~/.venvs/np/bin/python docs/yardsticks/latency_ceiling.py TABLE.csv.gz nb201|fbnet
"""

import csv
import gzip
import sys

import numpy as np
from scipy.stats import spearmanr
from sklearn.ensemble import HistGradientBoostingRegressor

NOT_DEVICE = ("index", "arch_str", "ops", "op_idx_list")


def main(path, space):
    rows = list(csv.reader(gzip.open(path, "rt")))
    header, data = rows[0], rows[1:]
    arch_col = header.index("ops" if space == "fbnet" else "arch_str")
    devices = [i for i, h in enumerate(header) if h not in NOT_DEVICE]
    latency = np.array([[float(r[i]) for i in devices] for r in data])
    if space == "fbnet":
        tokens = [r[arch_col].split("|") for r in data]
    else:
        tokens = [[t.split("~")[0] for t in r[arch_col].strip("|").replace("|+|", "|").split("|")] for r in data]
    vocab = sorted({t for ts in tokens for t in ts})
    arch = np.array([[vocab.index(t) for t in ts] for ts in tokens])
    order = np.random.default_rng(0).permutation(len(data))
    cut = min(12000, len(data) * 4 // 5)
    train, test = order[:cut], order[cut:]
    print("| device | Spearman | within ±10% | residual lag-1 autocorrelation (row order) |")
    print("|---|---|---|---|")
    for j, column in enumerate(devices):
        y = latency[:, j]
        others = np.log(np.delete(latency, j, axis=1))
        features = np.c_[arch, others]
        model = HistGradientBoostingRegressor(
            max_iter=500, categorical_features=list(range(arch.shape[1]))
        ).fit(features[train], np.log(y[train]))
        predicted = np.exp(model.predict(features))
        relative = np.abs(predicted[test] - y[test]) / y[test]
        residual = np.log(y) - np.log(predicted)
        lag1 = np.corrcoef(residual[:-1], residual[1:])[0, 1]
        print(
            f"| {header[column]} | {spearmanr(predicted[test], y[test]).statistic:.3f} "
            f"| {(relative <= 0.10).mean() * 100:.0f}% | {lag1:.2f} |"
        )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "nb201")

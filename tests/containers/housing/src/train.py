"""Fit a ridge regression on every CSV of the training channel (header row, target last)."""

import argparse
import glob
import os

import joblib
import numpy as np
from sklearn.linear_model import Ridge

parser = argparse.ArgumentParser()
parser.add_argument("--alpha", type=float, default=1.0)
args = parser.parse_args()
files = sorted(glob.glob(os.path.join(os.environ["SM_CHANNEL_TRAINING"], "*.csv")))
data = np.vstack([np.loadtxt(f, delimiter=",", skiprows=1) for f in files])
X, y = data[:, :-1], data[:, -1]
model = Ridge(alpha=args.alpha).fit(X, y)
print(f"r2={model.score(X, y):.4f}")
joblib.dump(model, os.path.join(os.environ["SM_MODEL_DIR"], "ridge.joblib"))

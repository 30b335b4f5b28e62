"""Regenerate housing_small.csv, the small csv example data set (run once; deterministic).

300 synthetic houses: four numeric features, one categorical string column `region`, and a
binary string target `expensive` ("yes"/"no"). Derived from scikit-learn's make_classification,
so no download; rerunning this script rewrites a byte-identical file.

    python configs/data/make_housing_small.py
"""

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.datasets import make_classification

x, y = make_classification(
    n_samples=300, n_features=4, n_informative=3, n_redundant=1, flip_y=0.05, class_sep=1.0, random_state=0
)
rng = np.random.default_rng(0)
regions = np.array(["north", "south", "east", "west"])
# Columns are mapped so that bigger, newer, closer houses lean "yes"; region carries some signal too: expensive houses lean towards "west" and "north".
region_probs = np.where(y[:, None] == 1, [0.35, 0.15, 0.15, 0.35], [0.2, 0.35, 0.3, 0.15])
region = np.array([rng.choice(regions, p=p) for p in region_probs])
frame = pd.DataFrame(
    {
        "area_m2": np.round(110 + 30 * x[:, 2], 1).clip(30, None),
        "rooms": np.clip(np.round(4 + x[:, 1]), 1, 9).astype(int),
        "age_years": np.clip(np.round(30 - 12 * x[:, 0]), 0, None).astype(int),
        "distance_km": np.round(np.abs(8 - 4 * x[:, 3]), 2),
        "region": region,
        "expensive": np.where(y == 1, "yes", "no"),
    }
)
frame.to_csv(Path(__file__).with_name("housing_small.csv"), index=False)

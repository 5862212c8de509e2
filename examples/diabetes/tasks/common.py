"""CSV helpers shared by the diabetes tasks (numpy only; no pandas needed)."""
import csv

import numpy as np

FEATURES = ["pregnancies", "glucose", "blood_pressure", "skin_thickness", "insulin",
            "bmi", "diabetes_pedigree", "age"]
TARGET = "outcome"


def read_table(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise SystemExit(f"{path}: no rows")
    return rows


def features_and_target(rows):
    x = np.array([[float(r[c]) for c in FEATURES] for r in rows])
    y = np.array([int(r[TARGET]) for r in rows])
    return x, y


def write_table(path, header, rows):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)

"""The limit for `local_py_diabetes_cold_s`: the diabetes example's four task
functions called one after another in one plain Python process (imports paid
once, no orchestration, no process per task). Run from a scratch directory:
fit writes its model there."""

import sys
from pathlib import Path

example = Path(sys.argv[1])
sys.path.insert(0, str(example))

import pandas as pd  # noqa: E402

import diabetes  # noqa: E402

dataset = pd.read_csv(example / "data" / "pima-sample.csv")
train, test = diabetes.split(dataset, test_size=0.33, seed=7)
model = diabetes.fit(train, seed=7).model
predictions = diabetes.predict(model, test).predictions
print(diabetes.score(test, predictions).accuracy)

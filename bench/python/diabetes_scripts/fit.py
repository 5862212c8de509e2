"""fit TRAIN SEED MODEL_OUT: the diabetes example's fit, as a script."""

import sys

import joblib
import pandas as pd
from sklearn.ensemble import GradientBoostingClassifier

from features import FEATURES, TARGET

train_path, seed, model_out = sys.argv[1:]
train = pd.read_csv(train_path)
model = GradientBoostingClassifier(n_estimators=100, max_depth=3, random_state=int(seed))
model.fit(train[FEATURES], train[TARGET])
joblib.dump(model, model_out)
print(f"trained on {len(train)} rows, training accuracy {model.score(train[FEATURES], train[TARGET]):.3f}")

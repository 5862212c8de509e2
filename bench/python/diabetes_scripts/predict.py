"""predict MODEL TEST PREDICTIONS_OUT: the diabetes example's predict, as a script."""

import sys

import joblib
import pandas as pd

from features import FEATURES

model_path, test_path, predictions_out = sys.argv[1:]
classifier = joblib.load(model_path)
test = pd.read_csv(test_path)
pd.DataFrame({"prediction": classifier.predict(test[FEATURES])}).to_csv(predictions_out, index=False)

"""score TEST PREDICTIONS ACCURACY_OUT: the diabetes example's score, as a script."""

import sys

import pandas as pd
from sklearn.metrics import accuracy_score

from features import TARGET

test_path, predictions_path, accuracy_out = sys.argv[1:]
test, predictions = pd.read_csv(test_path), pd.read_csv(predictions_path)
if len(test) != len(predictions):
    sys.exit(f"{len(predictions)} predictions for {len(test)} test rows")
accuracy = float(accuracy_score(test[TARGET], predictions["prediction"]))
with open(accuracy_out, "w") as f:
    f.write(repr(accuracy))
print(f"accuracy {accuracy:.3f}")

"""score: accuracy of the predictions, written as a JSON float."""
import argparse
import json

from sklearn.metrics import accuracy_score

from common import TARGET, read_table

parser = argparse.ArgumentParser()
parser.add_argument("--test", required=True)
parser.add_argument("--predictions", required=True)
parser.add_argument("--accuracy", required=True)
args = parser.parse_args()

truth = [int(r[TARGET]) for r in read_table(args.test)]
predicted = [int(r["prediction"]) for r in read_table(args.predictions)]
if len(truth) != len(predicted):
    raise SystemExit(f"{len(predicted)} predictions for {len(truth)} test rows")
accuracy = accuracy_score(truth, predicted)
with open(args.accuracy, "w") as out:
    json.dump(accuracy, out)
print(f"accuracy {accuracy:.3f}")

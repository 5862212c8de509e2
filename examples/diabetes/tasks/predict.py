"""predict: the model's prediction for every test row."""
import argparse

import joblib

from common import features_and_target, read_table, write_table

parser = argparse.ArgumentParser()
parser.add_argument("--model", required=True)
parser.add_argument("--test", required=True)
parser.add_argument("--predictions", required=True)
args = parser.parse_args()

model = joblib.load(args.model)
x, _ = features_and_target(read_table(args.test))
write_table(args.predictions, ["prediction"], ([int(p)] for p in model.predict(x)))
print(f"predicted {len(x)} rows")

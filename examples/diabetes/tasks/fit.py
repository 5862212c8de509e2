"""fit: train a gradient-boosted classifier."""
import argparse

import joblib
from sklearn.ensemble import GradientBoostingClassifier

from common import features_and_target, read_table

parser = argparse.ArgumentParser()
parser.add_argument("--train", required=True)
parser.add_argument("--seed", type=int, required=True)
parser.add_argument("--n-estimators", type=int, required=True)
parser.add_argument("--model", required=True)
args = parser.parse_args()

x, y = features_and_target(read_table(args.train))
model = GradientBoostingClassifier(n_estimators=args.n_estimators, max_depth=3, random_state=args.seed)
model.fit(x, y)
joblib.dump(model, args.model)
print(f"trained on {len(y)} rows, training accuracy {model.score(x, y):.3f}")

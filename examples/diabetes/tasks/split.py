"""split: stratified train/test split of the dataset."""
import argparse

from sklearn.model_selection import train_test_split

from common import TARGET, read_table, write_table

parser = argparse.ArgumentParser()
parser.add_argument("--data", required=True)
parser.add_argument("--test-size", type=float, required=True)
parser.add_argument("--seed", type=int, required=True)
parser.add_argument("--train", required=True)
parser.add_argument("--test", required=True)
args = parser.parse_args()

rows = read_table(args.data)
header = list(rows[0].keys())
train, test = train_test_split(rows, test_size=args.test_size, random_state=args.seed,
                               stratify=[r[TARGET] for r in rows])
write_table(args.train, header, ([r[c] for c in header] for r in train))
write_table(args.test, header, ([r[c] for c in header] for r in test))
print(f"split {len(rows)} rows into {len(train)} train and {len(test)} test")

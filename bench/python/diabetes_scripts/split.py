"""split DATASET TEST_SIZE SEED TRAIN_OUT TEST_OUT: the diabetes example's split, as a script."""

import sys

import pandas as pd
from sklearn.model_selection import train_test_split

dataset_path, test_size, seed, train_out, test_out = sys.argv[1:]
dataset = pd.read_csv(dataset_path)
train, test = train_test_split(dataset, test_size=float(test_size), random_state=int(seed), stratify=dataset["outcome"])
train.to_csv(train_out, index=False)
test.to_csv(test_out, index=False)
print(f"split {len(dataset)} rows into {len(train)} train and {len(test)} test")

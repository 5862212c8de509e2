"""Flyte's version of examples/diabetes/diabetes.py (flytekit 1.16.31), for paired_with_flyte.py."""

import joblib
import pandas as pd
from flytekit import task, workflow
from flytekit.types.file import FlyteFile
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.metrics import accuracy_score
from sklearn.model_selection import train_test_split
from typing import NamedTuple

FEATURES = ["pregnancies", "glucose", "blood_pressure", "skin_thickness", "insulin", "bmi", "diabetes_pedigree", "age"]
TARGET = "outcome"
Split = NamedTuple("Split", [("train", pd.DataFrame), ("test", pd.DataFrame)])


@task(cache=True, cache_version="1")
def split(dataset: FlyteFile, test_size: float, seed: int) -> Split:
    df = pd.read_csv(dataset)
    train, test = train_test_split(df, test_size=test_size, random_state=seed, stratify=df[TARGET])
    return Split(train, test)


@task(cache=True, cache_version="1")
def fit(train: pd.DataFrame, seed: int, n_estimators: int = 100) -> FlyteFile:
    model = GradientBoostingClassifier(n_estimators=n_estimators, max_depth=3, random_state=seed)
    model.fit(train[FEATURES], train[TARGET])
    joblib.dump(model, "model.joblib")
    return FlyteFile("model.joblib")


@task(cache=True, cache_version="1")
def predict(model: FlyteFile, test: pd.DataFrame) -> pd.DataFrame:
    classifier = joblib.load(model.download())
    return pd.DataFrame({"prediction": classifier.predict(test[FEATURES])})


@task(cache=True, cache_version="1")
def score(test: pd.DataFrame, predictions: pd.DataFrame) -> float:
    return float(accuracy_score(test[TARGET], predictions["prediction"]))


@workflow
def diabetes(dataset: FlyteFile, test_size: float = 0.33, seed: int = 7) -> float:
    train, test = split(dataset=dataset, test_size=test_size, seed=seed)
    model = fit(train=train, seed=seed)
    return score(test=test, predictions=predict(model=model, test=test))

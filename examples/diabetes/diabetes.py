"""The Pima Indians diabetes pipeline from Flyte's docs, as Python: split → fit → predict → score.

Run it locally:  updraft run examples/diabetes/diabetes.py
diabetes.yaml declares the same tasks (the same functions, image and interface), so
both give the same outputs under the same cache keys.
"""

from pathlib import Path
from typing import Annotated, NamedTuple

import joblib
import pandas as pd
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.metrics import accuracy_score
from sklearn.model_selection import train_test_split

import updraft
from updraft import Columns, Format

updraft.configure(project="examples", domain="development", image="python:3.11-slim")

FEATURES = ["pregnancies", "glucose", "blood_pressure", "skin_thickness", "insulin",
            "bmi", "diabetes_pedigree", "age"]
TARGET = "outcome"

Pima = Annotated[pd.DataFrame, Columns(pregnancies=int, glucose=int, blood_pressure=int, skin_thickness=int,
                                       insulin=int, bmi=float, diabetes_pedigree=float, age=int, outcome=int)]
Model = Annotated[Path, Format("joblib")]


class Split(NamedTuple):
    train: pd.DataFrame
    test: pd.DataFrame


class Fitted(NamedTuple):
    model: Model


class Predicted(NamedTuple):
    predictions: pd.DataFrame


class Scored(NamedTuple):
    accuracy: float


@updraft.task(cache=True, cache_version="1", cpu=1, memory="1Gi")
def split(dataset: Pima, test_size: float, seed: int) -> Split:
    """Split the dataset into train and test sets, stratified by outcome."""
    train, test = train_test_split(dataset, test_size=test_size, random_state=seed, stratify=dataset[TARGET])
    print(f"split {len(dataset)} rows into {len(train)} train and {len(test)} test")
    return Split(train, test)


@updraft.task(cache=True, cache_version="1", cpu=2, memory="2Gi", retries=2, timeout="30m")
def fit(train: pd.DataFrame, seed: int, n_estimators: int = 100) -> Fitted:
    """Train a gradient-boosted classifier on the training set."""
    model = GradientBoostingClassifier(n_estimators=n_estimators, max_depth=3, random_state=seed)
    model.fit(train[FEATURES], train[TARGET])
    joblib.dump(model, "model.joblib")
    print(f"trained on {len(train)} rows, training accuracy {model.score(train[FEATURES], train[TARGET]):.3f}")
    return Fitted(Path("model.joblib"))


@updraft.task(cache=True, cache_version="1", cpu=1, memory="1Gi")
def predict(model: Model, test: pd.DataFrame) -> Predicted:
    """Predict the outcome of every row of the test set."""
    classifier = joblib.load(model)
    return Predicted(pd.DataFrame({"prediction": classifier.predict(test[FEATURES])}))


@updraft.task(cache=True, cache_version="1")
def score(test: pd.DataFrame, predictions: pd.DataFrame) -> Scored:
    """Accuracy of the predictions against the true outcomes."""
    if len(test) != len(predictions):
        raise ValueError(f"{len(predictions)} predictions for {len(test)} test rows")
    accuracy = float(accuracy_score(test[TARGET], predictions["prediction"]))
    print(f"accuracy {accuracy:.3f}")
    return Scored(accuracy)


class Trained(NamedTuple):
    model: Model
    accuracy: float


@updraft.workflow
def diabetes(dataset: Pima = Path("data/pima-sample.csv"), test_size: float = 0.33, seed: int = 7) -> Trained:
    """Train and evaluate a diabetes classifier."""
    train, test = split(dataset=dataset, test_size=test_size, seed=seed)
    model = fit(train=train, seed=seed)
    predictions = predict(model=model, test=test)
    return Trained(model, score(test=test, predictions=predictions))


updraft.LaunchPlan("diabetes_nightly", diabetes, fixed_inputs={"test_size": 0.25},
                   schedule=updraft.Cron("0 3 * * *", timezone="Europe/Paris"))

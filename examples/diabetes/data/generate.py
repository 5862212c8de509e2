#!/usr/bin/env python3
"""Generates pima-sample.csv: synthetic rows with the nine columns of the Pima
Indians diabetes dataset, so the example runs without a download. Deterministic
(seeded); uses only the standard library. The outcome depends on glucose, BMI,
age and pedigree through a logistic model, so a classifier has something to learn.
"""
import csv
import math
import random

COLUMNS = ["pregnancies", "glucose", "blood_pressure", "skin_thickness", "insulin",
           "bmi", "diabetes_pedigree", "age", "outcome"]

rng = random.Random(7)
with open("pima-sample.csv", "w", newline="") as out:
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    for _ in range(600):
        age = int(min(81, max(21, rng.gauss(33, 11))))
        pregnancies = max(0, int(rng.gauss(3.8, 3.3)))
        glucose = int(min(199, max(44, rng.gauss(121, 31))))
        blood_pressure = int(min(122, max(24, rng.gauss(72, 12))))
        skin_thickness = int(min(99, max(7, rng.gauss(29, 10))))
        insulin = int(min(846, max(14, rng.gauss(155, 110))))
        bmi = round(min(67.1, max(18.2, rng.gauss(32.4, 6.9))), 1)
        pedigree = round(min(2.42, max(0.078, rng.lognormvariate(-0.9, 0.6))), 3)
        score = -9.2 + 0.037 * glucose + 0.09 * bmi + 0.02 * age + 0.9 * pedigree + 0.1 * pregnancies
        outcome = 1 if rng.random() < 1 / (1 + math.exp(-score)) else 0
        writer.writerow([pregnancies, glucose, blood_pressure, skin_thickness, insulin,
                         bmi, pedigree, age, outcome])

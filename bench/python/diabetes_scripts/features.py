"""The columns the diabetes scripts share (a module of their own directory)."""

FEATURES = ["pregnancies", "glucose", "blood_pressure", "skin_thickness", "insulin", "bmi", "diabetes_pedigree", "age"]
TARGET = "outcome"

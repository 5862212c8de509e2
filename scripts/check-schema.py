#!/usr/bin/env python3
"""Checks docs/spec.schema.json: it is a valid JSON Schema, and every example spec conforms to it."""
import glob
import json
import sys

import jsonschema
import yaml

schema = json.load(open("docs/spec.schema.json"))
jsonschema.Draft202012Validator.check_schema(schema)
validator = jsonschema.Draft202012Validator(schema)
failed = 0
examples = sorted(glob.glob("examples/*/*.yaml"))
for path in examples:
    for error in validator.iter_errors(yaml.safe_load(open(path))):
        failed += 1
        print(f"{path}: {'.'.join(map(str, error.absolute_path))}: {error.message}", file=sys.stderr)
print(f"spec schema: {len(examples)} examples checked, {failed} problems")
sys.exit(1 if failed else 0)

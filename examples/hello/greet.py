"""Writes a greeting for argv[1] as the JSON string output at path argv[2]."""
import json
import sys

name, output_path = sys.argv[1], sys.argv[2]
with open(output_path, "w") as out:
    json.dump(f"Hello, {name}!", out)
print(f"greeted {name}")

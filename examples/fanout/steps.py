"""The steps of the fan-out example; argv[1] names the step, the last argument is the output path."""
import json
import sys

step, *args = sys.argv[1:]
*values, output_path = args

if step == "numbers":
    result = list(range(1, int(values[0]) + 1))
elif step == "square":
    result = int(values[0]) ** 2
elif step == "total":
    result = sum(json.loads(values[0]))
elif step == "describe":
    label, value = values
    result = f"{label}: {value}"
else:
    sys.exit(f"unknown step {step!r}")

with open(output_path, "w") as out:
    json.dump(result, out)

"""A script task of ./bench/run's `local_script_chain50_s`: x + 1, the way most
existing pipelines write a Python task (a script given its inputs and output paths)."""

import sys

x, out = int(sys.argv[1]), sys.argv[2]
with open(out, "w") as f:
    f.write(str(x + 1))

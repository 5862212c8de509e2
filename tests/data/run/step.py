"""A task for the executor's tests: argv[1] names what it does."""
import json
import os
import sys
import time

action, args = sys.argv[1], sys.argv[2:]


def write(path, value):
    with open(path, "w") as out:
        json.dump(value, out)


if action == "echo":  # echo VALUE OUT: VALUE as JSON if it parses, else as a string
    try:
        value = json.loads(args[0])
    except ValueError:
        value = args[0]
    write(args[1], value)
elif action == "add":  # add A B OUT
    write(args[2], int(args[0]) + int(args[1]))
elif action == "fail":  # fail CODE MESSAGE
    print("some progress output")
    print(args[1], file=sys.stderr)
    sys.exit(int(args[0]))
elif action == "flaky":  # flaky MARKER OUT: fails on the first attempt only
    if not os.path.exists(args[0]):
        open(args[0], "w").close()
        sys.exit("first attempt fails")
    write(args[1], "recovered")
elif action == "sleep":  # sleep SECONDS PIDFILE
    with open(args[1], "w") as f:
        f.write(str(os.getpid()))
    time.sleep(float(args[0]))
elif action == "nothing":
    pass
elif action == "raw":  # raw TEXT OUT: writes TEXT as it is
    with open(args[1], "w") as out:
        out.write(args[0])
elif action == "span":  # span LOGFILE SECONDS: appends "start end" times
    start = time.time()
    time.sleep(float(args[1]))
    with open(args[0], "a") as log:
        log.write(f"{start} {time.time()}\n")
elif action == "square":  # square X OUT: fails for 3
    x = int(args[0])
    if x == 3:
        sys.exit("three is unlucky")
    write(args[1], x * x)
elif action == "env":  # env NAME OUT
    write(args[1], os.environ.get(args[0], ""))
else:
    sys.exit(f"unknown action {action}")

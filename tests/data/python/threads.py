"""A module that starts a thread when imported: forking after that is unsafe."""

import threading
import time

import updraft

threading.Thread(target=time.sleep, args=(30,), daemon=True).start()


@updraft.task
def one() -> int:
    return 1


@updraft.workflow
def threaded() -> int:
    return one()

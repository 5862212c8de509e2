"""`python -m updraft.task [--fresh-process] MODULE:FUNCTION`: runs one task (see `updraft._run`)."""

import sys
import types
from typing import Any

from ._core import task as _decorator
from ._run import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))


class _DecoratorModule(types.ModuleType):
    """Importing `updraft.task` makes it the package's attribute `task`, in place of the
    `@updraft.task` decorator; this module stays usable as that decorator."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return _decorator(*args, **kwargs)


sys.modules[__name__].__class__ = _DecoratorModule

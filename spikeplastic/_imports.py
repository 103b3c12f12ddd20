"""Importing NumPy and torch with Ctrl-C held back until they are loaded (:func:`import_numpy_torch`)."""
from __future__ import annotations

import signal
import threading
from types import FrameType

__all__ = ["import_numpy_torch"]


def import_numpy_torch() -> None:
    """Import NumPy, then torch; a Ctrl-C (SIGINT) that arrives meanwhile is delivered once both are loaded.

    Both run C code at import time that mishandles a ``KeyboardInterrupt`` raised inside it. Measured
    with ``spikeplastic verify`` and SIGINT at random moments of its start-up: torch's extension
    imports NumPy from C and clears the error, so the command ignored the Ctrl-C (ran to its end,
    exit 0) or failed later with "module 'numpy' has no attribute 'iterable'"; NumPy's own C
    extension turns it into an ``ImportError`` that tells the user to leave NumPy's source tree;
    torch's C++ start-up aborts (SIGABRT) when pybind11 meets it. Held back, it becomes an ordinary
    ``KeyboardInterrupt`` a second or two later, at the end of the import. A second Ctrl-C is
    delivered at once (an import that hangs stays interruptible). Only from the main thread and
    over Python's default handler; a program's own handler (or ``SIG_IGN``) is left alone.
    """
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        import numpy  # noqa: F401
        import torch  # noqa: F401
        return
    pending: list[int] = []

    def hold(signum: int, frame: FrameType | None) -> None:
        if pending:  # the second one: at once
            raise KeyboardInterrupt
        pending.append(signum)

    previous = signal.signal(signal.SIGINT, hold)
    try:
        import numpy  # noqa: F401,F811
        import torch  # noqa: F401,F811
    finally:
        signal.signal(signal.SIGINT, previous)
    if pending:
        raise KeyboardInterrupt

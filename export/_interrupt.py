"""Ctrl-C during a Lava run: honoured at any moment, never swallowed, workers never left behind.

Python raises ``KeyboardInterrupt`` wherever the main thread is when SIGINT's handler runs. Inside
a callback whose exceptions Python ignores -- an ``os.register_at_fork`` hook (measured: logging's
``_releaseLock``, which runs in the parent after every fork of Lava's workers, i.e. during worker
start-up), a ``__del__`` or a weakref finalizer -- it is printed as "Exception ignored in ..." and
lost: the run goes on to its end as if nothing happened. While :func:`sigint_guard` is active,
SIGINT also sets a flag; :meth:`Guard.checkpoint` (called between the phases of a run and while
waiting for it) and the guard's exit raise ``KeyboardInterrupt`` again when the first one was
swallowed (and the "Exception ignored" report of it is not printed).

Lava's workers are forked from this process and inherit the handler; in them it ignores SIGINT
(a terminal's Ctrl-C reaches the whole process group): the parent stops them in its ``finally``.
A guard is installed only from the main thread and only over Python's default SIGINT handler; a
program with its own handler (or ``SIG_IGN``) keeps it, and the guard is then a no-op.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

__all__ = ["Guard", "sigint_guard"]


class Guard:
    """State of an active :func:`sigint_guard` (shared by nested guards)."""

    def __init__(self, active: bool) -> None:
        self.active = active
        self.hit = False  # SIGINT arrived and was not yet delivered as a KeyboardInterrupt that left a guard
        self._pid = os.getpid()
        self._defer = 0

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        if os.getpid() != self._pid:  # a forked Lava worker: its parent stops it
            return
        self.hit = True
        if not self._defer:
            raise KeyboardInterrupt

    def checkpoint(self) -> None:
        """Raise ``KeyboardInterrupt`` if SIGINT arrived (e.g. its exception was swallowed by a finalizer)."""
        if self.hit and not self._defer:
            self.hit = False
            raise KeyboardInterrupt

    @contextmanager
    def deferred(self) -> Iterator[None]:
        """SIGINT only sets the flag inside this block (for cleanup that must run to its end)."""
        self._defer += 1
        try:
            yield
        finally:
            self._defer -= 1


_ACTIVE: Guard | None = None


@contextmanager
def sigint_guard() -> Iterator[Guard]:
    """Within the block, a SIGINT is always delivered as ``KeyboardInterrupt`` (see the module doc)."""
    global _ACTIVE
    if _ACTIVE is not None and threading.current_thread() is threading.main_thread():
        guard, outer = _ACTIVE, True
    elif threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        guard, outer = Guard(True), False
    else:  # another thread or a program-defined SIGINT handler: leave signals alone
        yield Guard(False)
        return
    previous = None
    previous_hook = sys.unraisablehook
    if not outer:
        previous = signal.signal(signal.SIGINT, guard._handler)
        _ACTIVE = guard

        def hook(unraisable: Any) -> None:  # the interrupt is honoured later: no "Exception ignored" report
            if not (guard.hit and isinstance(unraisable.exc_value, KeyboardInterrupt)):
                previous_hook(unraisable)

        sys.unraisablehook = hook
    try:
        yield guard
    except KeyboardInterrupt:
        guard.hit = False  # delivered
        raise
    except BaseException as e:
        if guard.hit:  # e.g. Lava turned the interrupt into its own error: report the interrupt
            guard.hit = False
            raise KeyboardInterrupt from e
        raise
    else:
        guard.checkpoint()
    finally:
        if not outer:
            _ACTIVE = None
            signal.signal(signal.SIGINT, previous)
            sys.unraisablehook = previous_hook

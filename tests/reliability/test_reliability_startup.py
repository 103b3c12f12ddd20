"""Ctrl-C while ``spikeplastic`` starts: held back while NumPy and torch import, then delivered.

Their C start-up code mishandles a ``KeyboardInterrupt`` raised inside it (measured with the console
script, ``spikeplastic verify``, SIGINT at random moments of start-up): torch's extension imports
NumPy from C and clears the error -- of 60 Ctrl-Cs 0.05-0.7 s after start, 2 were ignored (the
command ran to its end, exit 0) and 2 ended in "malformed IR: module 'numpy' has no attribute
'iterable'" (exit 2) --; NumPy's extension turns it into an ImportError about NumPy's source tree;
torch's C++ start-up aborts (SIGABRT). ``spikeplastic._imports.import_numpy_torch`` imports NumPy,
then torch, with SIGINT held back, and raises ``KeyboardInterrupt`` once both are loaded.
"""
from __future__ import annotations

import subprocess
import sys

#: a Ctrl-C (or two) sent to the process when the import of ``AT`` starts, then ``import spikeplastic``
PROBE = """
import os, signal, sys

signal.signal(signal.SIGINT, signal.default_int_handler)  # as from a terminal, even if started with SIGINT ignored

seen = []


class Spy:  # records the order in which imports of numpy and torch start; Ctrl-C at the start of AT
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name in ("numpy", "torch") and name not in seen:
            seen.append(name)
            if name == AT:
                for _ in range(TIMES):
                    os.kill(os.getpid(), signal.SIGINT)
        return None


sys.meta_path.insert(0, Spy)
try:
    import spikeplastic.cli  # noqa: F401
except KeyboardInterrupt:
    np = sys.modules.get("numpy")
    print("interrupted", " ".join(seen), "torch" in sys.modules, hasattr(np, "iterable"))
else:
    print("not-interrupted", " ".join(seen))
"""


def _probe(at: str, times: int = 1) -> list[str]:
    code = f"AT, TIMES = {at!r}, {times}\n" + PROBE
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return r.stdout.split()


def test_ctrl_c_during_the_imports_is_delivered_once_they_are_done() -> None:
    for at in ("numpy", "torch"):
        # interrupted, NumPy imported first, and both complete when the KeyboardInterrupt comes
        assert _probe(at) == ["interrupted", "numpy", "torch", "True", "True"], at


def test_a_second_ctrl_c_is_delivered_at_once() -> None:
    out = _probe("torch", times=2)
    assert out[0] == "interrupted" and out[3] == "False", out  # torch's import was cut short

"""Ctrl-C while ``spikeplastic`` starts: NumPy is imported before torch.

torch's C extension imports NumPy from C and clears any error doing so, a ``KeyboardInterrupt``
included, leaving NumPy half-imported. Measured with the console script (``spikeplastic verify``,
SIGINT 0.05-0.7 s after start, 60 tries): before, 2 Ctrl-Cs were ignored (the command ran to its
end, exit 0) and 2 ended in "malformed IR: module 'numpy' has no attribute 'iterable'" (exit 2);
with NumPy imported first by ``spikeplastic/__init__.py``, 60/60 ended by the interrupt.
"""
from __future__ import annotations

import subprocess
import sys


ORDER = """
import sys

seen = []


class Spy:  # records the order in which imports of numpy and torch start
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name in ("numpy", "torch") and name not in seen:
            seen.append(name)
        return None


sys.meta_path.insert(0, Spy)
import spikeplastic.cli  # noqa: E402,F401
print(" ".join(seen))
"""


def test_numpy_is_imported_before_torch() -> None:
    r = subprocess.run([sys.executable, "-c", ORDER], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["numpy", "torch"], (
        f"import order {r.stdout.split()}: torch imports NumPy from C, where a Ctrl-C can be swallowed")

"""Make ``lava-nc`` 0.10.0 importable on Python >= 3.11, in memory, and load it on demand.

Why: ``lava/magma/compiler/var_model.py`` (lava-nc 0.10.0, the last release; the project is
archived) declares dataclass fields such as ``x: ByteEncoder = ByteEncoder()``. Python 3.11
rejects an unhashable dataclass instance as a field default ("mutable default ... use
default_factory"), so ``import lava.magma.compiler...`` fails there.

What: :func:`install` puts a finder at the front of ``sys.meta_path`` that loads exactly that one
module from its installed source with every ``= ByteEncoder()`` default rewritten to
``= dataclasses.field(default_factory=ByteEncoder)`` (same values; every instance gets its own
encoder, which is what the original meant). Nothing under ``site-packages`` is edited and no
bytecode is written for the rewritten module. The hook is version-guarded: it is installed only
for lava-nc 0.10.0 on Python >= 3.11 and is a no-op otherwise (older Pythons, or a future lava
that fixed the module). If the module's source does not hold the pattern, the original is
loaded untouched.

:func:`import_lava` is what exporter functions call: it installs the hook, imports ``lava`` and
raises an :class:`ImportError` with the install command when lava-nc is missing.

Second incompatibility (any Python): ``lava/magma/runtime/message_infrastructure/multiprocessing.py``
calls ``multiprocessing.set_start_method('fork')`` at import time, which raises ``RuntimeError:
context has already been set`` once anything in the process has fixed the start method (a plain
``multiprocessing.get_start_method()`` does, e.g. during a training run before an export in the same
process). :func:`import_lava` imports that module with a tolerant ``set_start_method`` that is a
no-op when the method already is ``'fork'`` and forces it otherwise (Lava's runtime needs fork).
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import re
import sys
from types import ModuleType
from typing import Any

__all__ = [
    "LAVA_VERSION",
    "TARGET_MODULE",
    "INSTALL_HINT",
    "lava_version",
    "needs_patch",
    "install",
    "uninstall",
    "is_installed",
    "patch_source",
    "import_lava",
    "lava_available",
]

LAVA_VERSION = "0.10.0"
TARGET_MODULE = "lava.magma.compiler.var_model"
INSTALL_HINT = (
    "the Lava exporter needs lava-nc 0.10.0; install it with\n"
    "    pip install 'numpy>=1.24.4,<2' 'scipy>=1.10.1,<2' 'networkx>=2.8' 'asteval>=0.9.31,<0.10' "
    "'scikit-learn>=1.5'\n"
    "    pip install --no-deps --ignore-requires-python lava-nc==0.10.0\n"
    "(or run scripts/setup.sh, which does both)"
)

# `name: Type = ByteEncoder()` -> `name: Type = __import__('dataclasses').field(default_factory=ByteEncoder)`
_PATTERN = re.compile(r"=\s*ByteEncoder\(\)")
_REPLACEMENT = "= __import__('dataclasses').field(default_factory=ByteEncoder)"


def lava_version() -> str | None:
    """Installed lava-nc version (from its distribution metadata), or None when not installed."""
    from importlib import metadata

    try:
        return metadata.version("lava-nc")
    except metadata.PackageNotFoundError:
        return None


def needs_patch(version: str | None = None, python: tuple[int, int] | None = None) -> bool:
    """True exactly for lava-nc 0.10.0 on Python >= 3.11 (arguments default to the running ones)."""
    version = lava_version() if version is None else version
    python = sys.version_info[:2] if python is None else python
    return version == LAVA_VERSION and tuple(python) >= (3, 11)


def patch_source(source: str) -> tuple[str, int]:
    """Rewrite the mutable ``ByteEncoder()`` defaults; returns (new source, number of rewrites)."""
    return _PATTERN.subn(_REPLACEMENT, source)


class _PatchingLoader(importlib.machinery.SourceFileLoader):
    """Source loader that compiles the patched source and never uses or writes cached bytecode."""

    patched_count = 0

    def get_code(self, fullname: str) -> Any:
        path = self.get_filename(fullname)
        source = importlib.util.decode_source(self.get_data(path))
        new, n = patch_source(source)
        type(self).patched_count = n
        return compile(new, path, "exec", dont_inherit=True)

    def set_data(self, path: str, data: bytes, *, _mode: int = 0o666) -> None:  # no .pyc for patched code
        return None


class _VarModelFinder(importlib.abc.MetaPathFinder):
    """Finds :data:`TARGET_MODULE` with the regular path finder, then swaps in the patching loader."""

    def find_spec(self, fullname: str, path: Any = None, target: ModuleType | None = None) -> Any:
        if fullname != TARGET_MODULE:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or not isinstance(spec.loader, importlib.machinery.SourceFileLoader):
            return spec
        spec.loader = _PatchingLoader(spec.loader.name, spec.loader.path)
        return spec


_FINDER = _VarModelFinder()


def is_installed() -> bool:
    """Whether the import hook is currently in ``sys.meta_path``."""
    return any(f is _FINDER for f in sys.meta_path)


def install(*, force: bool = False) -> bool:
    """Install the import hook when :func:`needs_patch` (or ``force``); returns whether it is installed.

    Idempotent. Must run before ``lava.magma.compiler.var_model`` is first imported (it is imported
    by ``lava.magma.core.run_configs`` and the compiler); once the unpatched module failed to import
    nothing is cached, so installing later still works.
    """
    if not (force or needs_patch()):
        return False
    if not is_installed():
        sys.meta_path.insert(0, _FINDER)
    return True


def uninstall() -> None:
    """Remove the import hook (modules already imported stay as they are)."""
    sys.meta_path[:] = [f for f in sys.meta_path if f is not _FINDER]


def lava_available() -> bool:
    """True when lava-nc is installed (does not import it)."""
    return importlib.util.find_spec("lava") is not None


def import_lava() -> ModuleType:
    """Install the compatibility hook if needed and import ``lava``.

    Raises:
        ImportError: lava-nc is not installed (the message carries the install command).
    """
    if not lava_available():
        raise ImportError(INSTALL_HINT)
    install()
    import lava  # noqa: F401  (the package itself is light; submodules are imported by the caller)
    import lava.magma.compiler.var_model  # noqa: F401  (fail here, clearly, if the patch did not apply)

    _import_lava_multiprocessing()
    return sys.modules["lava"]


_LAVA_MP = "lava.magma.runtime.message_infrastructure.multiprocessing"


def _import_lava_multiprocessing() -> None:
    """Import Lava's message infrastructure even if the multiprocessing start method is already set."""
    if _LAVA_MP in sys.modules:
        return
    import multiprocessing as mp

    original = mp.set_start_method

    def tolerant(method: str | None, force: bool = False) -> None:
        if mp.get_start_method(allow_none=True) == method:
            return
        original(method, force=True)

    mp.set_start_method = tolerant  # type: ignore[assignment]
    try:
        importlib.import_module(_LAVA_MP)
    finally:
        mp.set_start_method = original  # type: ignore[assignment]

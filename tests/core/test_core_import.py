"""``import spikeplastic`` must not load Lava (the core never imports it)."""
from __future__ import annotations

import subprocess
import sys

CODE = "import spikeplastic, sys; assert not any(m == 'lava' or m.startswith('lava.') for m in sys.modules)"


def test_import_does_not_load_lava() -> None:
    r = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr


def test_the_check_detects_lava_modules() -> None:
    """The predicate of CODE is true for 'lava' and 'lava.*' only (so the test above can fail)."""
    pred = CODE.split("assert not ", 1)[1].replace("sys.modules", "mods")
    for mods, loaded in [(["lava"], True), (["lava.magma.core"], True), (["lavalamp", "java", "np"], False)]:
        assert eval(pred, {}, {"mods": mods}) is loaded  # noqa: S307 - a fixed expression


def test_public_api() -> None:
    import spikeplastic

    for name in spikeplastic.__all__:
        assert hasattr(spikeplastic, name), name

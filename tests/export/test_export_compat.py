"""The lava-nc 0.10.0 / Python >= 3.11 compatibility shim and the cheap, Lava-free imports."""
from __future__ import annotations

import subprocess
import sys

import pytest

from export_cases import needs_lava
from spikeplastic.export import _compat


def _py(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)


def test_needs_patch_is_version_guarded() -> None:
    assert _compat.needs_patch("0.10.0", (3, 11))
    assert _compat.needs_patch("0.10.0", (3, 12))
    assert not _compat.needs_patch("0.10.0", (3, 10))
    assert not _compat.needs_patch("0.10.1", (3, 11))
    assert not _compat.needs_patch("0.9.0", (3, 11))
    # defaults: the installed lava-nc and the running Python
    want = _compat.lava_version() == "0.10.0" and sys.version_info >= (3, 11)
    assert _compat.needs_patch() is want


def test_patch_source_rewrites_only_the_mutable_defaults() -> None:
    src = (
        "@dataclass\nclass CoreEncoder:\n    x: ByteEncoder = ByteEncoder()\n    y: ByteEncoder = ByteEncoder()\n"
        "    n: int = 0\n    z: ty.List[ByteEncoder] = None\n"
    )
    new, n = _compat.patch_source(src)
    assert n == 2
    assert "ByteEncoder()" not in new and new.count("field(default_factory=ByteEncoder)") == 2
    assert "n: int = 0" in new and "z: ty.List[ByteEncoder] = None" in new
    assert _compat.patch_source("x = 1\n") == ("x = 1\n", 0)


def test_install_is_a_noop_when_not_needed(monkeypatch: pytest.MonkeyPatch) -> None:
    _compat.uninstall()
    monkeypatch.setattr(_compat, "lava_version", lambda: "0.9.0")
    assert _compat.install() is False and not _compat.is_installed()
    monkeypatch.setattr(_compat, "lava_version", lambda: None)  # lava-nc not installed
    assert _compat.install() is False and not _compat.is_installed()


def test_missing_lava_gives_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_compat, "lava_available", lambda: False)
    with pytest.raises(ImportError, match=r"pip install --no-deps --ignore-requires-python lava-nc==0\.10\.0"):
        _compat.import_lava()


def test_to_lava_without_lava_raises_import_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from export_cases import static

    from spikeplastic.export import to_lava

    monkeypatch.setattr(_compat, "lava_available", lambda: False)
    with pytest.raises(ImportError, match="lava-nc"):
        to_lava(static())


@pytest.mark.lava
@needs_lava
@pytest.mark.skipif(sys.version_info < (3, 11), reason="the dataclass default is legal before Python 3.11")
def test_lava_fails_without_the_shim_and_imports_with_it() -> None:
    bare = _py("import lava.magma.compiler.var_model")
    assert bare.returncode != 0 and "mutable default" in bare.stderr
    shim = _py(
        "from spikeplastic.export._compat import import_lava, is_installed\n"
        "import_lava(); assert is_installed()\n"
        "import lava.magma.compiler.var_model as vm\n"
        "a, b = vm.CoreEncoder(), vm.CoreEncoder()\n"
        "assert a.x == vm.ByteEncoder() and a.x is not b.x\n"
        "from lava.proc.lif.process import LIF; from lava.magma.core.run_configs import Loihi2SimCfg\n"
        
        "print('ok')"
    )
    assert shim.returncode == 0 and shim.stdout.strip().endswith("ok"), shim.stderr
    # site-packages untouched: the installed source still holds the original defaults
    src = _py("import importlib.util as u; print(open(u.find_spec('lava').submodule_search_locations[0] + "
              "'/magma/compiler/var_model.py').read().count('= ByteEncoder()'))")
    assert src.returncode == 0 and int(src.stdout) > 0


def test_importing_the_package_and_exporter_does_not_load_lava() -> None:
    code = (
        "import sys\n"
        "import spikeplastic\n"
        "assert not [m for m in sys.modules if m == 'lava' or m.startswith('lava.')]\n"
        "import spikeplastic.export as e\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] in ('lava', 'nir')]\n"
        "assert not loaded, loaded\n"
        "assert set(e.__all__) <= set(dir(e))\n"
        "e.quantize_ir, e.simulate_fixed, e.VerifyReport, e.ExportError\n"
        "assert not [m for m in sys.modules if m == 'lava' or m.startswith('lava.')]\n"
        "print('ok')"
    )
    r = _py(code)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_public_api_resolves() -> None:
    import spikeplastic.export as e

    for name in e.__all__:
        assert getattr(e, name) is not None, name
    with pytest.raises(AttributeError):
        e.no_such_name  # noqa: B018


@needs_lava
def test_lava_imports_after_the_start_method_was_fixed() -> None:
    """Lava's runtime calls set_start_method('fork') at import; a process that already fixed the
    start method (as a training run does) must still be able to export."""
    import subprocess
    import sys

    code = (
        "import multiprocessing as mp; mp.get_start_method();"  # fixes the context, like training does
        "from spikeplastic.export._compat import import_lava; import_lava();"
        "from lava.proc.lif.process import LIF; print('ok', mp.get_start_method())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["ok", "fork"]


@pytest.mark.lava
@needs_lava
def test_importing_the_exporter_installs_the_hook_for_plain_lava() -> None:
    """`import spikeplastic.export` is enough for the user's own Lava processes (no to_lava call)."""
    code = (
        "import sys\n"
        "import spikeplastic.export\n"
        "from spikeplastic.export import _compat\n"
        "assert _compat.is_installed() == _compat.needs_patch()\n"
        "assert not [m for m in sys.modules if m == 'lava' or m.startswith('lava.')]  # installed, nothing loaded\n"
        "import numpy as np\n"
        "from lava.proc.lif.process import LIF\n"
        "from lava.magma.core.run_configs import Loihi2SimCfg\n"
        "from lava.magma.core.run_conditions import RunSteps\n"
        "lif = LIF(shape=(3,), bias_mant=np.array([0.3, 0.6, 1.2]), vth=1.0, du=1.0, dv=0.0)\n"
        "try:\n"
        "    lif.run(condition=RunSteps(num_steps=2), run_cfg=Loihi2SimCfg())\n"
        "    v = lif.v.get()\n"
        "finally:\n"
        "    lif.stop()\n"
        "print(' '.join(f'{a:.6f}' for a in v))\n"
    )
    r = _py(code)
    assert r.returncode == 0, r.stderr[-2000:]
    # v = v + bias, spike (and reset) above 1: [0.3, 0.6, 1.2 -> 0] then [0.6, 1.2 -> 0, 1.2 -> 0]
    assert r.stdout.split() == ["0.600000", "0.000000", "0.000000"]


@pytest.mark.lava
@needs_lava
def test_readme_example_connects_an_export_to_your_own_lava_process() -> None:
    """The README's example (export section) runs as written."""
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    start = readme.index("<!-- own-lava-process example")
    body = readme.index("```python", start) + len("```python")
    code = readme[body: readme.index("```", body)]
    assert "import spikeplastic.export" in code and ".processes(x)" in code
    r = _py(code)
    assert r.returncode == 0, r.stderr[-2000:]
    u = [float(v) for v in r.stdout.strip().strip("[]").split()]
    assert len(u) == 2 and min(u) > 0  # the readout integrated spikes of the exported population

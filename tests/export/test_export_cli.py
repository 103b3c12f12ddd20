"""export_command / verify_command: the pieces `spikeplastic export|verify` call."""
from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from export_cases import needs_lava
from export_cases import stdp_alpha_decay, stdp_recurrent, hebb_oja

from spikeplastic import ir as _ir
from spikeplastic.export import UnsupportedError, export_command, verify_command
from spikeplastic.export.cli_commands import load_network_ir


def _same(a: _ir.NetworkIR, b: _ir.NetworkIR) -> None:
    ha, arr_a = a.to_dict()
    hb, arr_b = b.to_dict()
    assert ha == hb and arr_a.keys() == arr_b.keys()
    for k in arr_a:
        np.testing.assert_array_equal(arr_a[k], arr_b[k])


def test_load_ir_file_and_checkpoint(tmp_path) -> None:
    ir = stdp_alpha_decay()
    _ir.save(ir, tmp_path / "net.npz")
    _same(load_network_ir(tmp_path / "net.npz"), ir)
    header, arrays = ir.to_dict()
    # the trainer's checkpoint layout: {"ir": {"header": JSON str, "arrays": {key: tensor}}}
    torch.save({"format": "spikeplastic-checkpoint", "ir": {"header": json.dumps(header),
                "arrays": {k: torch.from_numpy(np.array(v)) for k, v in arrays.items()}}}, tmp_path / "checkpoint.pt")
    _same(load_network_ir(tmp_path / "checkpoint.pt"), ir)
    _same(load_network_ir(tmp_path), ir)  # a run folder holding checkpoint.pt
    torch.save({"format": "spikeplastic-checkpoint", "ir": None}, tmp_path / "rate.pt")
    with pytest.raises(ValueError, match="no 'ir' entry"):
        load_network_ir(tmp_path / "rate.pt")
    (tmp_path / "junk.txt").write_text("hello")
    with pytest.raises(ValueError, match="neither a spikeplastic IR file"):
        load_network_ir(tmp_path / "junk.txt")
    with pytest.raises(FileNotFoundError):
        load_network_ir(tmp_path / "missing.npz")


@pytest.mark.parametrize("mode", ["float", "fixed"])
def test_export_command_writes_ir_loader_and_manifest(tmp_path, mode) -> None:
    ir = stdp_alpha_decay()
    _ir.save(ir, tmp_path / "net.npz")
    out = export_command(tmp_path / "net.npz", tmp_path / "out", mode)
    assert set(out) == {"ir", "loader", "manifest"} and all(p.exists() for p in out.values())
    _same(_ir.load(out["ir"]), ir)
    man = json.loads(out["manifest"].read_text())
    assert man["mode"] == mode and man["projections"]["in_to_l1"]["plastic"]
    assert ("u0*d" in man["projections"]["in_to_l1"]["dw"]) and (man["quantization"] is None) == (mode == "float")
    compile(out["loader"].read_text(), str(out["loader"]), "exec")


def test_export_command_rejects_unsupported(tmp_path) -> None:
    _ir.save(hebb_oja(), tmp_path / "h.npz")
    with pytest.raises(UnsupportedError, match="STDP only"):
        export_command(tmp_path / "h.npz", tmp_path / "out", "fixed")
    assert not (tmp_path / "out").exists()


@pytest.mark.lava
@needs_lava
def test_loader_script_rebuilds_and_runs_the_network(tmp_path) -> None:
    _ir.save(stdp_recurrent(), tmp_path / "net.npz")
    out = export_command(tmp_path / "net.npz", tmp_path / "out", "float")
    assert "inputs" not in out  # an IR file has no task: nothing to save
    loader = [sys.executable, str(out["loader"])]
    r = subprocess.run(loader, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "--inputs FILE.npy or --random-inputs RATE" in r.stderr  # no silent default
    r = subprocess.run(loader + ["--random-inputs", "0.3", "--steps", "40"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "l1:" in r.stdout and "spikes in 40 steps" in r.stdout and "in_to_l1: weight change" in r.stdout
    assert "steps/s" in r.stdout and "NOT OK" not in r.stdout
    rec = np.load(tmp_path / "out" / "lava_record.npz")
    assert rec["episode0/spikes/l1"].shape == (40, 8) and rec["episode0/weights/in_to_l1"].shape == (40, 8, 10)
    np.save(tmp_path / "bad.npy", np.zeros((40, 3)))
    r = subprocess.run(loader + ["--inputs", str(tmp_path / "bad.npy")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "--inputs" in r.stderr and "[T, 10]" in r.stderr


@pytest.mark.lava
@needs_lava
def test_verify_command_json_and_exit_status(tmp_path, no_stray_processes: None) -> None:
    _ir.save(stdp_recurrent(), tmp_path / "net.npz")
    buf = io.StringIO()
    assert verify_command(tmp_path / "net.npz", steps=80, mode="float", as_json=True, random_inputs=0.3, stream=buf) == 0
    rep = json.loads(buf.getvalue())
    assert rep["ok"] and rep["spike_agreement_pct"] == 100.0 and rep["steps"] == 80
    assert all(p["spikes_reference"] == p["spikes_lava"] > 0 for p in rep["populations"].values())
    assert all(q["max_weight_change"] > 0 for q in rep["projections"].values())
    # an IR file has no task: without inputs verify refuses (exit 2) instead of inventing random ones
    assert verify_command(tmp_path / "net.npz", stream=io.StringIO()) == 2


def test_verify_command_exit_codes(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    from spikeplastic.export import verification as verify_mod

    _ir.save(stdp_recurrent(), tmp_path / "net.npz")

    class Rep:
        ok = False

        def summary(self) -> str:
            return "diverged"

        def to_json(self) -> str:
            return "{}"

    monkeypatch.setattr(verify_mod, "verify", lambda *a, **k: Rep())
    buf = io.StringIO()
    assert verify_command(tmp_path / "net.npz", steps=10, stream=buf) == 1 and "diverged" in buf.getvalue()
    Rep.ok = True
    assert verify_command(tmp_path / "net.npz", steps=10, stream=io.StringIO()) == 0
    assert verify_command(tmp_path / "missing.npz", steps=10, stream=io.StringIO()) == 2
    _ir.save(hebb_oja(), tmp_path / "h.npz")
    monkeypatch.undo()
    assert verify_command(tmp_path / "h.npz", steps=10, mode="fixed", stream=io.StringIO()) == 2


def test_verify_command_loihi2_backend_fails_clearly(tmp_path, capsys) -> None:
    """The hardware path is selectable and says what is missing (lava-loihi was never public)."""
    import torch

    import spikeplastic as sp
    from spikeplastic.export import verify_command

    torch.manual_seed(0)
    p = tmp_path / "n.npz"
    sp.ir.save(sp.Network.feedforward([5, 4], rule="stdp").to_ir(), p)
    code = verify_command(p, steps=20, mode="fixed", backend="loihi2", random_inputs=0.3)
    err = capsys.readouterr().err
    assert code == 2
    assert "lava-loihi" in err and "not installed" in err

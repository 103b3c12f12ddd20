"""verify / export on a trained checkpoint: the checkpoint's own task drives the network, and a
network that does not spike or learn is reported as such (exit 1 with the reason), never certified."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from export_cases import needs_lava
from spikeplastic.cli import main
from spikeplastic.meta.checkpoint import ir_payload, load_checkpoint, load_ir, save_checkpoint
from spikeplastic.meta.replay import load_model, network_inputs

pytestmark = [pytest.mark.lava, needs_lava]

TRAIN = ["train", "--task", "pattern50", "--model", "snn-stdp", "--episodes", "3", "--batch", "2",
         "--checkpoint-every", "0", "--no-progress"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A freshly trained pattern50 snn-stdp run folder (3 outer steps)."""
    run = tmp_path_factory.mktemp("p50") / "run"
    assert main([*TRAIN, "--out", str(run)]) == 0
    return run


@pytest.fixture(scope="module")
def silent(trained: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same checkpoint with the hidden bias forced to -100: no input can make a neuron fire."""
    ck = load_checkpoint(trained)
    ck["model_state"]["network.pops.hidden.bias.raw"] = torch.full_like(ck["model_state"]["network.pops.hidden.bias.raw"], -100.0)
    model, _, _ = load_model(ck)
    ck["ir"] = ir_payload(model, load_ir(ck).meta)
    out = tmp_path_factory.mktemp("silent") / "run"
    save_checkpoint(out / "checkpoint.pt", {k: v for k, v in ck.items() if k not in ("format", "version")})
    return out


def _verify_json(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict]:
    rc = main(["verify", *args, "--json"])
    return rc, json.loads(capsys.readouterr().out)


def test_verify_trained_checkpoint_on_its_own_task(trained: Path, capsys: pytest.CaptureFixture[str],
                                                   no_stray_processes: None) -> None:
    rc, rep = _verify_json([str(trained), "--episodes", "3"], capsys)
    assert rc == 0 and rep["ok"] and rep["reasons"] == [], rep
    assert rep["inputs"].startswith("task pattern50: 3 episodes x 11 steps") and rep["episodes"] == 3 and rep["steps"] == 33
    for k, p in rep["populations"].items():  # > 0 spikes in every population, on both sides, spike for spike
        assert p["spikes_reference"] == p["spikes_lava"] == p["matched"] > 0 and p["mismatches"] == 0, k
        assert p["spikes_reference"] < p["n"] * rep["steps"], f"{k} saturated"
    assert set(rep["projections"]) == {"hidden_to_hidden"}
    for k, q in rep["projections"].items():  # the plastic weights change, identically
        assert q["max_weight_change"] > 1e-3 and q["max_weight_change_lava"] > 1e-3, k
        assert q["max_abs_dw"] <= 1e-12 * q["weight_scale"], k  # measured ~5e-16 of the scale
    assert rep["spike_agreement_pct"] == 100.0
    # the text summary shows the counts next to the verdict
    assert main(["verify", str(trained), "--episodes", "2"]) == 0
    text = capsys.readouterr().out
    assert "verify: ok" in text and "hidden (50 neurons):" in text and "hidden_to_hidden:" in text


def test_verify_silent_checkpoint_fails_with_the_reason(silent: Path, capsys: pytest.CaptureFixture[str],
                                                        no_stray_processes: None) -> None:
    assert main(["verify", str(silent), "--episodes", "2"]) == 1
    text = capsys.readouterr().out
    assert "verify: NOT OK" in text
    assert "FAILED: population 'hidden' is silent: 0 spikes in the reference, 0 in Lava" in text
    assert "FAILED: plastic projection 'hidden_to_hidden' did not change" in text
    assert "n/a (no spike on either side)" in text
    rc, rep = _verify_json([str(silent), "--episodes", "2", "--allow-silent"], capsys)
    assert rc == 0 and rep["ok"] and rep["allow_silent"] and len(rep["silent"]) == 2 and rep["reasons"] == []


def test_verify_input_options(trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                              no_stray_processes: None) -> None:
    x = network_inputs(trained, episodes=2, seed=4).x  # [2, 11, 50]: the user's own inputs
    np.save(tmp_path / "x.npy", x)
    rc, rep = _verify_json([str(trained), "--inputs", str(tmp_path / "x.npy")], capsys)
    assert rc == 0 and rep["episodes"] == 2 and rep["inputs"].startswith("given array")
    np.save(tmp_path / "bad.npy", x[0, :, :7])
    assert main(["verify", str(trained), "--inputs", str(tmp_path / "bad.npy")]) == 2
    err = capsys.readouterr().err
    assert "argument --inputs" in err and "[T, 50] (one run) or [episodes, T, 50]" in err and "got (11, 7)" in err
    assert main(["verify", str(trained), "--inputs", str(tmp_path / "x.npy"), "--episodes", "2"]) == 2
    assert "argument --episodes" in capsys.readouterr().err
    assert main(["verify", str(trained), "--random-inputs", "0"]) == 2
    assert main(["verify", str(trained), "--random-inputs", "0.5", "--inputs", str(tmp_path / "x.npy")]) == 2
    # the old default, random currents, does not drive this net (its task feeds +-20 with bias -1):
    # verify now says so instead of certifying 0 == 0
    rc, rep = _verify_json([str(trained), "--random-inputs", "0.5", "--steps", "30"], capsys)
    assert rc == 1 and any("'hidden' is silent" in r for r in rep["reasons"])


def test_export_saves_task_episodes_and_run_lava_uses_them(trained: Path, silent: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "lava"
    assert main(["export", str(trained), "--out", str(out), "--episodes", "2"]) == 0
    x = np.load(out / "inputs.npy")
    assert x.shape == (2, 11, 50)
    np.testing.assert_array_equal(x, network_inputs(trained, episodes=2).x)
    man = json.loads((out / "export.json").read_text())
    assert man["inputs"]["file"] == "inputs.npy" and man["inputs"]["source"].startswith("task pattern50: 2 episodes")
    r = subprocess.run([sys.executable, str(out / "run_lava.py")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    n = int(r.stdout.split("hidden: ")[1].split(" spikes")[0])
    change = float(r.stdout.split("hidden_to_hidden: weight change max |W[t] - W_init| = ")[1].split()[0])
    assert n > 0 and change > 0 and "2 run(s), 22 steps in all" in r.stdout
    # verify on the export folder uses the same saved episodes: the same spike count
    capsys.readouterr()
    rc, rep = _verify_json([str(out)], capsys)
    assert rc == 0 and rep["populations"]["hidden"]["spikes_lava"] == n and "inputs.npy saved by export" in rep["inputs"]
    # a silent network's export: run_lava.py says so and exits 1
    assert main(["export", str(silent), "--out", str(tmp_path / "quiet"), "--episodes", "1"]) == 0
    r = subprocess.run([sys.executable, str(tmp_path / "quiet" / "run_lava.py")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and "NOT OK: population 'hidden' is silent" in r.stdout, r.stdout + r.stderr

"""torchrun with 2 gloo processes == 1 process with the same total batch."""
from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
import torch

from spikeplastic.meta import TrainConfig, load_checkpoint, train
from spikeplastic.meta.config import task_fields


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(tmp_path, args: list[str]) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1", CI="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), "-m", "spikeplastic.cli", "train", "--no-progress", *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]


@pytest.mark.parametrize("task,model,tkw,mkw,outer", [
    ("pattern", "snn-stdp", ["n_bits=8", "n_patterns=2", "cycles=1"], [], "bptt"),
    ("cue", "rate-hebb", ["episode_steps=10"], ["n_hidden=6"], "bptt"),
    ("pattern", "snn-stdp", ["n_bits=8", "n_patterns=2", "cycles=1"], [], "eprop"),  # e-prop's gradients all-reduced
])
def test_two_gloo_processes_equal_one(tmp_path, task, model, tkw, mkw, outer) -> None:
    out = tmp_path / "dist"
    args = ["--task", task, "--model", model, "--episodes", "3", "--batch", "4", "--lr", "0.01",
            "--out", str(out), "--outer", outer]
    args += [a for kv in tkw for a in ("--task-kw", kv)] + [a for kv in mkw for a in ("--model-kw", kv)]
    _torchrun(tmp_path, args)
    parse = lambda kvs: {k: eval(v) for k, v in (s.split("=") for s in kvs)}  # noqa: E731
    dist = load_checkpoint(out)
    # the CLI adds the task's defaults (cue: clip 2, Simpson penalty, Adam eps); use the same ones
    extra = task_fields(task, model)
    single = train(TrainConfig(task=task, model=model, episodes=3, batch=4, lr=0.01, progress=False, outer=outer,
                               task_kwargs=parse(tkw), model_kwargs=parse(mkw), **extra))
    assert {k: dist["config"][k] for k in extra} == extra
    assert dist["episode"] == 3
    ref = single.model.state_dict()
    for k, v in dist["model_state"].items():
        torch.testing.assert_close(v, ref[k], rtol=1e-5, atol=1e-6, msg=k)
    assert all(r["grad_norm"] > 0 for r in dist["history"]), dist["history"]  # the runs did learn something
    losses = [r["loss"] for r in dist["history"]]
    torch.testing.assert_close(torch.tensor(losses), torch.tensor([r["loss"] for r in single.history]))


def test_batch_must_divide(tmp_path) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1", CI="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), "-m", "spikeplastic.cli", "train", "--task", "pattern50",
           "--model", "rate-hebb", "--episodes", "1", "--batch", "3", "--out", str(tmp_path / "x")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "argument --batch" in proc.stderr and "divisible" in proc.stderr

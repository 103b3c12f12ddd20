"""The ``spikeplastic`` command: errors (exit code 2 + message naming the argument), train/resume,
compare outputs, plot."""
from __future__ import annotations

import json

import pytest
import torch

from spikeplastic.cli import main
from spikeplastic.meta import load_checkpoint

TINY = ["--task", "pattern", "--task-kw", "n_bits=8", "--task-kw", "n_patterns=2", "--task-kw", "cycles=1",
        "--no-progress"]


@pytest.mark.parametrize("argv,argument,expect", [
    (["train", "--task", "nope", "--model", "rnn"], "--task", "expected one of"),
    (["train", "--task", "pattern50", "--model", "nope"], "--model", "snn-stdp"),
    (["train", "--task", "pattern50", "--model", "rnn", "--episodes", "0"], "--episodes", "positive integer"),
    (["train", "--task", "pattern50", "--model", "rnn", "--episodes", "-5"], "--episodes", "positive integer"),
    (["train", "--task", "pattern50", "--model", "rnn", "--batch", "x"], "--batch", "positive integer"),
    (["train", "--task", "pattern50", "--model", "rnn", "--lr", "-1"], "--lr", "finite number in (0, 1]"),
    (["train", "--task", "pattern50", "--model", "rnn", "--task-kw", "n_bitz=4"], "--task-kw", "n_bitz"),
    (["train", "--task", "pattern50", "--model", "rnn", "--task-kw", "oops"], "--task-kw", "KEY=VALUE"),
    (["train", "--task", "pattern50", "--model", "rnn", "--model-kw", "bogus=1"], "--model-kw", "bogus"),
    (["train", "--task", "pattern50", "--model", "rnn", "--data", "/tmp"], "--data", "reads no dataset"),
    (["compare", "--task", "pattern50", "--models", "rnn,zzz", "--out", "o"], "--models", "zzz"),
    (["compare", "--task", "pattern50", "--models", "rnn", "--seeds", "0", "--out", "o"], "--seeds", "positive"),
    (["plot", "/no/such/ckpt.pt"], "CKPT", "no checkpoint"),
])
def test_usage_errors(argv, argument, expect, capsys) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"argument {argument}" in err and expect in err, err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU error")
def test_cuda_without_gpu(capsys) -> None:
    assert main(["train", "--task", "pattern50", "--model", "rnn", "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert "argument --device" in err and "no CUDA GPU" in err


def test_dataset_without_layout(tmp_path, capsys) -> None:
    (tmp_path / "junk").mkdir()
    assert main(["train", "--task", "oneshot", "--model", "rnn", "--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "argument --data" in err and "images_background" in err
    assert main(["train", "--task", "images", "--model", "rnn", "--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "argument --data" in err and "cifar-10-batches-py" in err


def test_train_resume_plot(tmp_path, capsys) -> None:
    out = tmp_path / "run"
    argv = ["train", *TINY, "--model", "snn-stdp", "--batch", "2", "--out", str(out), "--checkpoint-every", "2"]
    assert main([*argv, "--episodes", "2"]) == 0
    assert load_checkpoint(out)["episode"] == 2
    assert main([*argv, "--episodes", "4", "--resume"]) == 0
    assert load_checkpoint(out)["episode"] == 4
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(s)["episode"] for s in lines] == [1, 2, 3, 4]
    assert set(json.loads(lines[0])) >= {"episode", "loss", "metric", "seconds", "skipped"}
    png = tmp_path / "p.png"
    assert main(["plot", str(out / "checkpoint.pt"), "--out", str(png)]) == 0
    assert png.stat().st_size > 10_000
    # a rate model has no network to plot
    rate = tmp_path / "rate"
    assert main(["train", *TINY, "--model", "rnn", "--model-kw", "n_hidden=8", "--episodes", "1", "--out", str(rate)]) == 0
    capsys.readouterr()
    assert main(["plot", str(rate)]) == 2
    assert "spiking model" in capsys.readouterr().err


def test_resume_with_other_config_is_an_error(tmp_path, capsys) -> None:
    out = tmp_path / "run"
    base = ["train", *TINY, "--model", "rnn", "--model-kw", "n_hidden=8", "--out", str(out)]
    assert main([*base, "--episodes", "1"]) == 0
    assert main([*base, "--episodes", "2", "--resume", "--lr", "0.1"]) == 2
    assert "argument --resume" in capsys.readouterr().err


def test_compare_writes_results(tmp_path) -> None:
    out = tmp_path / "cmp"
    argv = ["compare", *TINY, "--models", "rate-hebb,snn-static", "--episodes", "3", "--seeds", "2",
            "--eval-episodes", "16", "--out", str(out)]
    assert main(argv) == 0
    res = json.loads((out / "results.json").read_text())
    assert [r["model"] for r in res["rows"]] == ["rate-hebb", "snn-static"]
    for r in res["rows"]:
        assert set(r) >= {"model", "n_params", "final_mean", "final_ci95", "episodes_to_threshold",
                          "seconds_per_episode", "peak_rss_mb"}
        assert r["peak_rss_mb"] > 50 and r["seconds_per_episode"] > 0 and r["seeds"] == 2
        assert len(r["held_out_per_seed"]) == 2 and r["held_out_ci"] == "t over seeds" and r["held_out_episodes"] == 16
        for s, v in enumerate(r["held_out_per_seed"]):  # each run's held_out.json, as `evaluate` wrote it
            run = json.loads((out / "runs" / r["model"] / f"seed{s}" / "held_out.json").read_text())
            assert run["mean"] == v and run["n"] == 16 and len(run["values"]) == 16 and run["seed"] == s + 3_000_017
    md = (out / "results.md").read_text()
    assert ("| model | params | train metric, last 1 step (mean ± 95% CI) | held-out metric, 16 episodes, test split "
            "(mean ± 95% CI) | episodes to threshold (median) | s/episode | peak RSS (MB) |") in md
    assert md.count("\n| ") == 3  # header + 2 rows
    assert (out / "curves.png").stat().st_size > 10_000


def test_export_verify_delegate_or_explain(tmp_path, capsys) -> None:
    bad = tmp_path / "c.pt"
    bad.write_bytes(b"x")
    rc = main(["export", str(bad), "--out", str(tmp_path / "e")])
    err = capsys.readouterr().err
    try:
        import spikeplastic.export.cli_commands  # noqa: F401
    except ImportError:
        assert rc == 1 and "exporter" in err
    else:
        assert rc == 2 and "argument CKPT" in err
    assert main(["verify", str(tmp_path / "missing.pt")]) == 2
    assert main(["export", str(bad)]) == 2  # --out is required


def test_export_of_a_trained_snn(tmp_path, capsys) -> None:
    pytest.importorskip("spikeplastic.export.cli_commands")
    for model in ("snn-stdp", "snn-stdp-mod", "snn-static"):
        run = tmp_path / model
        assert main(["train", *TINY, "--model", model, "--episodes", "2", "--out", str(run)]) == 0
        assert main(["export", str(run / "checkpoint.pt"), "--out", str(tmp_path / f"lava-{model}")]) == 0, \
            capsys.readouterr().err
        assert (tmp_path / f"lava-{model}" / "network_ir.npz").is_file()

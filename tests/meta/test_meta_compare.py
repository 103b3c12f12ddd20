"""Statistics of the comparison table (the end-to-end run is in test_cli.py)."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from spikeplastic.meta.compare import CompareConfig, _smooth, summarize, t_interval, write_markdown


def test_t_interval_matches_scipy() -> None:
    stats = pytest.importorskip("scipy.stats")
    for xs in ([1.0, 2.0, 4.0], [0.1, 0.12, 0.09, 0.2, 0.15], list(range(40))):
        mean, half = t_interval(xs)
        n = len(xs)
        sd = stats.tstd(xs)
        want = stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)
        assert mean == pytest.approx(sum(xs) / n)
        assert half == pytest.approx(want, rel=2e-3)
    assert math.isnan(t_interval([3.0])[1])


def _fake_run(root, model, seed, metrics, held_out=None):
    d = root / "runs" / model / f"seed{seed}"
    d.mkdir(parents=True)
    with open(d / "metrics.jsonl", "w") as fh:
        for i, m in enumerate(metrics, start=1):
            fh.write(json.dumps({"phase": "train", "episode": i, "loss": m, "metric": m, "seconds": 0.5,
                                 "skipped": False}) + "\n")
    return {"seed": seed, "peak_rss_mb": 300.0 + seed, "baseline_rss_mb": 250.0, "n_params": 10, "held_out": held_out}


def _held(mean, lo, hi, method="wilson"):
    return {"mean": mean, "ci_low": lo, "ci_high": hi, "half_width": (hi - lo) / 2, "ci_method": method, "n": 1000,
            "split": "test", "data": "test split: 100 classes", "split_checked": True}


def test_summarize_held_out_beside_train_metric(tmp_path) -> None:
    cfg = CompareConfig(task="t", models=("a", "b"), episodes=20, seeds=2, out=str(tmp_path))
    runs = {"a": [_fake_run(tmp_path, "a", s, [0.5] * 20, _held(m, m - 0.02, m + 0.03)) for s, m in enumerate((0.8, 0.9))],
            "b": [_fake_run(tmp_path, "b", s, [0.5] * 20, _held(0.7, 0.68, 0.72)) for s in range(2)]}
    res = summarize(cfg, runs, threshold=0.9, higher_is_better=True)
    a, b = res["rows"]
    mean, half = t_interval([0.8, 0.9])                       # across seeds: Student t over the held-out means
    assert a["held_out_mean"] == pytest.approx(mean) and a["held_out_ci95"] == pytest.approx(half)
    assert a["held_out_ci"] == "t over seeds" and sum(a["held_out_ci95_per_seed"], []) == pytest.approx([0.78, 0.83, 0.88, 0.93])
    assert a["final_mean"] == 0.5 and res["held_out"]["episodes"] == cfg.eval_episodes == 1000
    one = summarize(CompareConfig(task="t", models=("a",), episodes=20, seeds=1, out=str(tmp_path)),
                    {"a": runs["a"][:1]}, threshold=0.9, higher_is_better=True)["rows"][0]
    assert one["held_out_ci95"] == pytest.approx(0.025) and one["held_out_ci"] == "wilson (one run)"  # the run's own
    write_markdown(res, tmp_path / "r.md")
    md = (tmp_path / "r.md").read_text()
    assert "| train metric, last 2 steps (mean ± 95% CI) | held-out metric, 1000 episodes, test split (mean ± 95% CI) |" in md
    assert f"| a | 10 | 0.5 ± 0 | {mean:.4g} ± {half:.4g} |" in md and "(test split: 100 classes)" in md
    assert "predate" not in md
    runs["b"][1]["held_out"]["split_checked"] = False                 # a checkpoint without the split record
    write_markdown(summarize(cfg, runs, 0.9, True), tmp_path / "u.md")
    assert "1 run(s) predate the checkpoint's record" in (tmp_path / "u.md").read_text()
    none = summarize(cfg, {m: [dict(r, held_out=None) for r in v] for m, v in runs.items()}, 0.9, True)
    assert none["held_out"] is None and none["rows"][0]["held_out_mean"] is None
    write_markdown(none, tmp_path / "n.md")
    assert "held-out" not in (tmp_path / "n.md").read_text()


def test_summarize_threshold_median_and_not_reached(tmp_path) -> None:
    cfg = CompareConfig(task="t", models=("good", "bad"), episodes=20, seeds=3, out=str(tmp_path))
    good = [[1.0] * k + [0.0] * (20 - k) for k in (4, 6, 8)]         # window 2: reached at k+1, k+2...
    bad = [[0.0] + [1.0] * 19, [1.0] * 20, [1.0] * 10 + [0.0] * 10]  # seed 0: a lucky first episode only
    runs = {"good": [_fake_run(tmp_path, "good", s, m) for s, m in enumerate(good)],
            "bad": [_fake_run(tmp_path, "bad", s, m) for s, m in enumerate(bad)]}
    res = summarize(cfg, runs, threshold=0.1, higher_is_better=False)
    g, b = res["rows"]
    assert res["window"] == 2
    assert g["episodes_to_threshold_per_seed"] == [6.0, 8.0, 10.0] and g["episodes_to_threshold"] == 8.0
    assert b["episodes_to_threshold"] is None and b["reached"] == 1
    assert b["episodes_to_threshold_per_seed"] == [None, None, 12.0]   # not reached at episode 1 (half a window)
    assert g["final_mean"] == 0.0 and b["final_mean"] == pytest.approx(2 / 3)
    assert g["peak_rss_mb"] == 302.0 and g["seconds_per_episode"] == 0.5
    write_markdown(res, tmp_path / "r.md")
    md = (tmp_path / "r.md").read_text()
    assert "| bad | 10 |" in md and "not reached (1/3 seeds)" in md and "| 8 (3/3 seeds) |" in md


def test_compare_config_validation() -> None:
    with pytest.raises(TypeError):
        CompareConfig(task="t", models="rnn", episodes=1, out="o")  # a str, not a sequence of ids
    with pytest.raises(ValueError, match="seeds"):
        CompareConfig(task="t", models=("rnn",), episodes=1, seeds=0, out="o")
    with pytest.raises(ValueError, match="model_kwargs"):
        CompareConfig(task="t", models=("rnn",), episodes=1, out="o", model_kwargs={"lstm": {}})
    with pytest.raises(TypeError):
        CompareConfig(task="t", models=("rnn",), episodes=1, out="o", bogus=1)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="eval_episodes"):
        CompareConfig(task="t", models=("rnn",), episodes=1, out="o", eval_episodes=-1)


def _cue_compare(out, episodes: int, resume: bool = False, overwrite: bool = False):
    from spikeplastic.meta.compare import compare

    return compare(CompareConfig(task="cue-small", models=("rnn",), episodes=episodes, seeds=1, out=str(out),
                                 batch=2, progress=False, task_kwargs={"episode_steps": 12}, eval_episodes=40,
                                 model_kwargs={"rnn": {"n_hidden": 4}}, resume=resume, overwrite=overwrite))


def test_compare_resume_extends_runs_exactly(tmp_path) -> None:
    torch = pytest.importorskip("torch")
    from spikeplastic.meta import load_checkpoint, read_metrics

    _cue_compare(tmp_path / "a", 3)
    extended = _cue_compare(tmp_path / "a", 6, resume=True)   # 3 more outer steps from the checkpoint
    fresh = _cue_compare(tmp_path / "b", 6)
    run_a, run_b = tmp_path / "a" / "runs" / "rnn" / "seed0", tmp_path / "b" / "runs" / "rnn" / "seed0"
    recs_a, recs_b = read_metrics(run_a), read_metrics(run_b)
    assert [r["episode"] for r in recs_a] == list(range(1, 7))
    assert [(r["loss"], r["metric"]) for r in recs_a] == [(r["loss"], r["metric"]) for r in recs_b]
    pa, pb = load_checkpoint(run_a / "checkpoint.pt"), load_checkpoint(run_b / "checkpoint.pt")
    assert pa["episode"] == pb["episode"] == 6
    for k, v in pb["model_state"].items():
        assert torch.equal(pa["model_state"][k], v), k
    assert extended["curves"] == fresh["curves"]
    assert extended["rows"][0]["held_out_per_seed"] == fresh["rows"][0]["held_out_per_seed"]  # same network
    assert json.loads((run_a / "held_out.json").read_text())["checkpoint_episode"] == 6
    # a run already at `episodes` is not trained again, nor evaluated again (its held_out.json is reused)
    held_before = (run_a / "held_out.json").read_bytes()
    summary = json.loads((run_a / "run.json").read_text())
    (run_a / "run.json").write_text(json.dumps({**summary, "peak_rss_mb": 1e6}))  # as if training had peaked high
    again = _cue_compare(tmp_path / "a", 6, resume=True)
    assert again["rows"][0]["peak_rss_mb"] == 1e6             # the training's peak, not the re-summarising process's
    assert len(read_metrics(run_a)) == 6 and again["curves"] == fresh["curves"]
    assert (run_a / "held_out.json").read_bytes() == held_before
    assert again["rows"][0]["held_out_per_seed"] == extended["rows"][0]["held_out_per_seed"]
    # without resume or overwrite the held runs are refused, untouched; with overwrite they start afresh
    before = {f: (run_a / f).read_bytes() for f in ("checkpoint.pt", "metrics.jsonl")}
    with pytest.raises(FileExistsError, match="resume=True.*overwrite=True"):
        _cue_compare(tmp_path / "a", 2)
    assert {f: (run_a / f).read_bytes() for f in before} == before
    _cue_compare(tmp_path / "a", 2, overwrite=True)
    assert len(read_metrics(run_a)) == 2


def test_smooth_skips_non_finite_values() -> None:
    """A NaN metric (a diverged episode) is left out of its windows instead of poisoning the curve."""
    sm = _smooth(np.array([1.0, 3.0, np.nan, 5.0, 7.0, 9.0]), 2)
    assert sm.tolist()[:2] == [1.0, 2.0] and sm[2] == 3.0 and sm[3] == 5.0 and sm.tolist()[4:] == [6.0, 8.0]
    assert np.isnan(_smooth(np.array([np.nan, np.nan, 1.0]), 2)[:2]).all()
    plain = np.array([0.5, 0.1, 0.9, 0.3, 0.7])
    want = [plain[max(0, i - 2):i + 1].mean() for i in range(5)]
    assert _smooth(plain, 3) == pytest.approx(want)


def test_log_every_is_always_one() -> None:
    cfg = CompareConfig(task="pattern50", models=("rnn",), episodes=10, out="o", train_overrides={"log_every": 5})
    assert cfg.train_config("rnn", 0).log_every == 1


def test_one_run_wilson_interval_is_shown_as_its_bounds(tmp_path) -> None:
    cfg = CompareConfig(task="t", models=("a",), episodes=20, seeds=1, out=str(tmp_path))
    runs = {"a": [_fake_run(tmp_path, "a", 0, [0.5] * 20, _held(1.0, 0.839, 1.0))]}
    write_markdown(summarize(cfg, runs, 0.9, True), tmp_path / "r.md")
    assert "| 1 [0.839, 1] |" in (tmp_path / "r.md").read_text()


def test_es_comparisons_say_what_their_train_metric_is(tmp_path) -> None:
    cfg = CompareConfig(task="t", models=("a",), episodes=20, seeds=1, out=str(tmp_path),
                        train_overrides={"outer": "es"})
    runs = {"a": [_fake_run(tmp_path, "a", 0, [0.5] * 20)]}
    res = summarize(cfg, runs, 0.9, True)
    assert res["outer"] == "es"
    write_markdown(res, tmp_path / "r.md")
    assert "perturbed members" in (tmp_path / "r.md").read_text()
    plain = summarize(CompareConfig(task="t", models=("a",), episodes=20, seeds=1, out=str(tmp_path)), runs, 0.9, True)
    write_markdown(plain, tmp_path / "p.md")
    assert plain["outer"] == "bptt" and "perturbed" not in (tmp_path / "p.md").read_text()


def test_held_out_references_are_averaged_and_shown(tmp_path) -> None:
    cfg = CompareConfig(task="t", models=("a", "b"), episodes=20, seeds=2, out=str(tmp_path))
    refs = [{"zeros": 1.0, "edge_row": 1.5}, {"zeros": 0.8, "edge_row": 1.3}]
    runs = {m: [_fake_run(tmp_path, m, s, [0.5] * 20, dict(_held(0.4, 0.3, 0.5, "normal"), references=refs[s]))
                for s in range(2)] for m in ("a", "b")}
    res = summarize(cfg, runs, threshold=0.1, higher_is_better=False)
    assert res["rows"][0]["held_out_references"] == pytest.approx({"zeros": 0.9, "edge_row": 1.4})
    write_markdown(res, tmp_path / "r.md")
    md = (tmp_path / "r.md").read_text()
    assert "No-learning references on the same held-out episodes (mean over seeds): edge_row 1.4, zeros 0.9" in md
    assert "differ" not in md
    runs["b"][0]["held_out"]["references"] = {"zeros": 2.0, "edge_row": 1.5}
    write_markdown(summarize(cfg, runs, 0.1, False), tmp_path / "d.md")
    assert "they differ between models" in (tmp_path / "d.md").read_text()
    runs["b"][1]["held_out"]["references"] = None                      # a task without references
    assert summarize(cfg, runs, 0.1, False)["rows"][1]["held_out_references"] is None

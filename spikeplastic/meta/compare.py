r"""Run several models on one task over several seeds; summarise as JSON, markdown and a plot.

::

    from spikeplastic.meta.compare import CompareConfig, compare
    compare(CompareConfig(task="pattern50", models=("rate-hebb", "rnn"), episodes=300, seeds=3, out="runs/cmp"))

writes ``out/results.json``, ``out/results.md``, ``out/curves.png`` and one training folder per
run (``out/runs/<model>/seed<k>/``: ``metrics.jsonl``, ``checkpoint.pt``, ``run.json``,
``held_out.json``).

Definitions (per run; ``W = max(1, min(50, episodes // 10))`` episodes):

- *smoothed curve*: trailing mean of the training metric over ``W`` episodes;
- *train metric* (``final_*`` in ``results.json``): mean training metric of the last ``W`` episodes
  (training batches: the episodes the network was being fitted to); reported as the mean over
  seeds and the half-width of a 95% Student-t interval, ``t_{0.975,K-1} s / sqrt(K)``;
- *held-out metric* (``held_out_*``): the final checkpoint on ``eval_episodes`` held-out episodes
  (:func:`spikeplastic.meta.heldout.evaluate`: the task's test split where it has one -- oneshot's
  test classes, images' test images -- and always a seed stream training never used), in the
  run's subprocess after training; reported as the mean over seeds ± the same t-interval over the
  seeds' held-out means. With one seed, the run's own 95% interval (Wilson for oneshot's accuracy,
  mean ± 1.96 SE otherwise) is shown instead, and labelled so;
- *episodes to threshold*: first episode whose smoothed metric (the trailing mean of a full window
  of ``W`` episodes: no earlier than episode ``W``) reaches the task's ``success_threshold``
  (``<=`` or ``>=`` by ``higher_is_better``); the median over seeds with
  unreached runs counted as infinite, so "not reached" when half or more never reach it;
- *seconds per episode*: mean wall time of the outer steps (sampling, forward, backward, Adam;
  not evaluation or checkpoint writing);
- *peak memory*: each run trains in a fresh subprocess (``python -m spikeplastic.meta._worker``)
  whose resident-set high-water mark ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` is read at the
  end; it includes the interpreter and torch (``baseline_rss_mb`` in ``results.json``: the same
  measure after imports and task construction). The table shows the maximum over seeds.

Pairing: the runs of different models with the same seed meet the same held-out episodes (supervised:
the same inputs; oneshot: also the same test classes, split by the run's seed; RL: the same
environment draws, the actions being the model's own), so per-seed differences are paired. Non-finite
metrics (a diverged episode) are left out of the smoothed curves and the train metric. "Episodes" in
the curves and thresholds are outer steps (``batch`` episodes each); the held-out ``n`` counts
episodes.

Curves: median over seeds of the smoothed curves with the interquartile range shaded.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..protocol import check_lean
from .config import TrainConfig, recommended, task_fields
from .metrics import read_metrics

__all__ = ["CompareConfig", "compare", "summarize", "t_interval", "write_markdown", "plot_curves"]

# two-sided 95% Student-t quantiles t_{0.975, df}, df = 1..30
_T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042]


def _t975(df: int) -> float:
    if df <= 30:
        return _T975[df - 1]
    return 1.96 + 2.4 / df  # within 0.003 of the exact quantile for df > 30


def t_interval(values: Sequence[float]) -> tuple[float, float]:
    """Mean and half-width of the 95% Student-t confidence interval (half-width NaN for one value)."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return float("nan"), float("nan")
    if x.size == 1:
        return float(x[0]), float("nan")
    return float(x.mean()), float(_t975(x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))


@dataclass(frozen=True, kw_only=True)
class CompareConfig:
    """A comparison (unknown keys raise ``TypeError``).

    Attributes:
        task: task id. models: model ids. episodes: outer steps per run. seeds: runs per model
        (seeds ``0..seeds-1``). out: output folder. batch, lr: ``None`` uses the task's
        :func:`~spikeplastic.meta.config.recommended` values (per model where the task sets
        model-specific ones, e.g. ``pattern50``'s RNN and LSTM). device: as in :class:`TrainConfig`.
        task_kwargs: task overrides. model_kwargs: per model id, keyword overrides for
        ``make_model``. jobs: runs in parallel (each a subprocess). progress: a bar over runs.
        train_overrides: further :class:`TrainConfig` fields for every run (except ``log_every``,
            always 1: the curves and thresholds count one record per outer step).
        lean: :attr:`TrainConfig.lean <spikeplastic.meta.config.TrainConfig>` of every run
            (``"auto"`` | ``"on"`` | ``"off"``; ``"on"`` fails early for a model without a lean op).
        resume: continue every run that has a checkpoint (``out/runs/MODEL/seedS/checkpoint.pt``,
            written every ``episodes // 10`` outer steps and at the end) up to ``episodes``: a run
            already there is not trained again, an interrupted one goes on exactly where its
            checkpoint left it, a longer comparison extends the shorter one. Runs without a
            checkpoint start afresh. The other settings must equal the checkpoint's.
        overwrite: without ``resume``, run folders that already hold a run are an error
            (``FileExistsError`` before anything runs) unless this is set; then they are replaced.
        eval_episodes: held-out episodes per run (module docstring); 0 skips the held-out
            evaluation. A resumed comparison reuses a run's ``held_out.json`` when it holds the
            evaluation of the same network with the same settings.
    """

    task: str
    models: tuple[str, ...]
    episodes: int
    out: str
    seeds: int = 3
    batch: int | None = None
    lr: float | None = None
    device: str = "cpu"
    task_kwargs: Mapping[str, Any] = field(default_factory=dict)
    model_kwargs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    jobs: int = 1
    progress: bool = True
    train_overrides: Mapping[str, Any] = field(default_factory=dict)
    lean: str = "auto"
    resume: bool = False
    overwrite: bool = False
    eval_episodes: int = 1000

    def __post_init__(self) -> None:
        check_lean(self.lean)
        for name in ("resume", "overwrite", "progress"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name}: expected a bool, got {getattr(self, name)!r}")
        if self.resume and self.overwrite:
            raise ValueError("resume=True and overwrite=True contradict each other: choose one")
        if isinstance(self.models, str) or not isinstance(self.models, Sequence) or not self.models:
            raise TypeError(f"models must be a non-empty sequence of model ids, got {self.models!r}")
        object.__setattr__(self, "models", tuple(self.models))
        if len(set(self.models)) != len(self.models):
            raise ValueError(f"models lists an id twice: {list(self.models)}")
        for name in ("episodes", "seeds", "jobs"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an int >= 1, got {v!r}")
        if isinstance(self.eval_episodes, bool) or not isinstance(self.eval_episodes, int) or self.eval_episodes < 0:
            raise ValueError(f"eval_episodes must be an int >= 0 (0: no held-out evaluation), got {self.eval_episodes!r}")
        unknown = sorted(set(self.model_kwargs) - set(self.models))
        if unknown:
            raise ValueError(f"model_kwargs names models not in models: {unknown}")

    def train_config(self, model: str, seed: int) -> TrainConfig:
        rec = recommended(self.task, model)
        d: dict[str, Any] = dict(
            task=self.task, model=model, episodes=self.episodes, seed=seed,
            batch=self.batch if self.batch is not None else int(rec["batch"]),
            lr=self.lr if self.lr is not None else float(rec["lr"]),
            device=self.device, out=str(Path(self.out) / "runs" / model / f"seed{seed}"),
            checkpoint_every=max(1, self.episodes // 10), progress=False, log_every=1,
            task_kwargs=dict(self.task_kwargs), model_kwargs=dict(self.model_kwargs.get(model, {})),
            lean=self.lean,
        )
        d.update(task_fields(self.task, model))
        d.update(self.train_overrides)
        d["log_every"] = 1  # the smoothing window and thresholds count logged episodes: one record per step
        return TrainConfig(**d)


def _run_one(cfg: TrainConfig, threads: int | None, resume: bool = False, overwrite: bool = False,
             eval_episodes: int = 0) -> dict[str, Any]:
    out = Path(cfg.out or ".")
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".json", dir=out, delete=False) as fh:
        json.dump(cfg.to_dict(), fh)
        cfg_path = fh.name
    env = dict(os.environ)
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    result = out / "run.json"
    argv = ([sys.executable, "-m", "spikeplastic.meta._worker", cfg_path, str(result)]
            + (["--resume"] if resume else []) + (["--overwrite"] if overwrite else [])
            + (["--eval-episodes", str(eval_episodes)] if eval_episodes else []))
    proc = subprocess.run(argv, env=env, capture_output=True, text=True)
    os.unlink(cfg_path)
    if proc.returncode != 0:
        raise RuntimeError(f"run {cfg.model} seed {cfg.seed} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    with open(result) as fh:
        return json.load(fh)


def _smooth(x: np.ndarray, w: int) -> np.ndarray:
    """Trailing mean over the last ``w`` values (fewer at the start), ignoring non-finite values (a
    diverged episode's NaN does not poison the rest of the curve); NaN where a window has none."""
    x = np.asarray(x, dtype=float)
    ok = np.isfinite(x)
    c = np.cumsum(np.insert(np.where(ok, x, 0.0), 0, 0.0))
    n = np.cumsum(np.insert(ok.astype(float), 0, 0.0))
    hi = np.arange(1, len(x) + 1)
    lo = np.maximum(0, hi - w)
    k = n[hi] - n[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(k > 0, (c[hi] - c[lo]) / k, math.nan)


def _median_or_none(vals: Sequence[float]) -> float | None:
    m = float(np.median(np.asarray(vals, dtype=float)))
    return None if math.isinf(m) or math.isnan(m) else m


def summarize(cfg: CompareConfig, runs: Mapping[str, list[dict[str, Any]]], threshold: float,
              higher_is_better: bool) -> dict[str, Any]:
    """Aggregate per-run summaries and metric logs into the ``results.json`` structure."""
    w = max(1, min(50, cfg.episodes // 10))
    rows, curves = [], {}
    for model in cfg.models:
        finals, reach, sec, rss, base, curve_list, n_params = [], [], [], [], [], [], None
        for r in runs[model]:
            recs = read_metrics(Path(cfg.out) / "runs" / model / f"seed{r['seed']}")
            m = np.array([rec["metric"] for rec in recs], dtype=float)
            ep = np.array([rec["episode"] for rec in recs])
            sm = _smooth(m, w)
            tail = m[-w:][np.isfinite(m[-w:])]
            finals.append(float(tail.mean()) if tail.size else math.nan)
            hit = np.nonzero(sm >= threshold if higher_is_better else sm <= threshold)[0]
            hit = hit[hit >= w - 1]  # full windows only: a lucky first episode is not "reached"
            reach.append(float(ep[hit[0]]) if hit.size else math.inf)
            sec.append(float(np.mean([rec["seconds"] for rec in recs])))
            rss.append(float(r["peak_rss_mb"]))
            base.append(float(r["baseline_rss_mb"]))
            curve_list.append(sm)
            n_params = int(r["n_params"])
        mean, half = t_interval(finals)
        med = _median_or_none(reach)
        held = [r.get("held_out") for r in runs[model]]
        rows.append({
            "model": model, "n_params": n_params, "final_mean": mean, "final_ci95": half,
            "final_per_seed": finals, "episodes_to_threshold": med,
            "reached": int(sum(not math.isinf(v) for v in reach)), "seeds": len(finals),
            "episodes_to_threshold_per_seed": [None if math.isinf(v) else v for v in reach],
            "seconds_per_episode": float(np.mean(sec)), "peak_rss_mb": float(np.max(rss)),
            "baseline_rss_mb": float(np.median(base)),
            **_held_out_row(held),
        })
        n = min(len(c) for c in curve_list)
        curves[model] = np.stack([c[:n] for c in curve_list])
    any_held = any(r.get("held_out_mean") is not None for r in rows)
    return {
        "task": cfg.task, "episodes": cfg.episodes, "seeds": cfg.seeds, "window": w,
        "held_out": {"episodes": cfg.eval_episodes, "split": "test",
                     "method": "each run's final checkpoint on held-out episodes (spikeplastic.meta.heldout); "
                               "mean over seeds ± 95% Student-t interval over the seeds' held-out means "
                               "(one seed: the run's own 95% CI, Wilson for binary metrics, else mean ± 1.96 SE)"}
        if any_held else None,
        "threshold": threshold, "higher_is_better": higher_is_better,
        "outer": str(cfg.train_overrides.get("outer", "bptt")),
        "task_kwargs": dict(cfg.task_kwargs), "model_kwargs": {k: dict(v) for k, v in cfg.model_kwargs.items()},
        "rss_method": "resource.getrusage(RUSAGE_SELF).ru_maxrss of a fresh subprocess per run (max over seeds); "
                      "includes interpreter + torch, see baseline_rss_mb",
        "rows": rows, "curves": {k: v.tolist() for k, v in curves.items()},
    }


def _held_out_row(held: Sequence[Mapping[str, Any] | None]) -> dict[str, Any]:
    """The ``held_out_*`` fields of a row from its runs' evaluations (all ``None`` when any run has none)."""
    if not held or any(h is None for h in held):
        return {"held_out_mean": None, "held_out_ci95": None, "held_out_ci": None, "held_out_per_seed": None}
    hs = [h for h in held if h is not None]
    vals = [float(h["mean"]) for h in hs]
    mean, half = t_interval(vals)
    kind = "t over seeds"
    if len(hs) == 1:
        half = float(hs[0]["half_width"])
        kind = f"{hs[0]['ci_method']} (one run)"
    return {
        "held_out_mean": mean, "held_out_ci95": half, "held_out_ci": kind, "held_out_per_seed": vals,
        "held_out_ci95_per_seed": [[float(h["ci_low"]), float(h["ci_high"])] for h in hs],
        "held_out_ci_method": hs[0]["ci_method"], "held_out_episodes": int(hs[0]["n"]),
        "held_out_split": hs[0]["split"], "held_out_data": [h["data"] for h in hs],
        "held_out_split_checked": [h["split_checked"] for h in hs],
        "held_out_references": _mean_references(hs),
    }


def _mean_references(hs: Sequence[Mapping[str, Any]]) -> dict[str, float] | None:
    """The task's no-learning references (``EvalResult.references``) averaged over the runs, or ``None``
    where any run has none."""
    refs = [h.get("references") for h in hs]
    if not refs or any(not r for r in refs):
        return None
    keys = sorted(set.intersection(*(set(r) for r in refs)))
    return {k: float(np.mean([r[k] for r in refs])) for k in keys} or None


def _fmt(v: float | None, spec: str = ".4g") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return format(v, spec)


def write_markdown(results: Mapping[str, Any], path: str | os.PathLike[str]) -> None:
    """The ``results.md`` table (columns in the module docstring)."""
    op = ">=" if results["higher_is_better"] else "<="
    w = results["window"]
    rows = results["rows"]
    held = [r for r in rows if r.get("held_out_mean") is not None]
    steps = f"{w} step" + ("s" if w != 1 else "")
    intro = (f"Train metric: the training batches' metric over the last {steps} of each run, mean over seeds "
             "± 95% t-interval. ")
    if results.get("outer") == "es":
        intro += ("Outer loop ES: the train metric of a step is the mean over its perturbed members "
                  "(theta ± sigma eps, population x batch episodes), not the network theta that the held-out "
                  "column evaluates; an 'episode' of the curves is an outer step. ")
    held_col = ""
    if held:
        r0 = held[0]
        data = sorted({d for r in held for d in r["held_out_data"]})
        seeds_ci = ("mean over seeds ± 95% t-interval over the seeds' held-out means"
                    if r0["held_out_ci"] == "t over seeds" else
                    "one seed: the run's own 95% CI (" + ("Wilson binomial" if r0["held_out_ci_method"] == "wilson"
                                                          else "mean ± 1.96 SE") + ")")
        intro += (f"Held-out metric: each run's final network on {r0['held_out_episodes']} held-out episodes, "
                  f"{r0['held_out_split']} split ({data[0] if len(data) == 1 else 'per seed in results.json'}), "
                  f"{seeds_ci}. ")
        unchecked = sum(c is False for r in held for c in r.get("held_out_split_checked", []))
        if unchecked:
            intro += (f"**{unchecked} run(s) predate the checkpoint's record of its data splits: their training may "
                      "have sampled the held-out data.** ")
        held_col = f" held-out metric, {r0['held_out_episodes']} episodes, {r0['held_out_split']} split (mean ± 95% CI) |"
    lines = [
        f"# {results['task']}: {results['episodes']} episodes x {results['seeds']} seeds",
        "",
        intro + f"Threshold: smoothed train metric {op} {results['threshold']:g} (median over seeds). "
        "Peak RSS: max over seeds of a fresh process per run (includes interpreter + torch, "
        f"~{np.median([r['baseline_rss_mb'] for r in rows]):.0f} MB before the model).",
        "",
        f"| model | params | train metric, last {steps} (mean ± 95% CI) |{held_col} episodes to threshold (median) "
        "| s/episode | peak RSS (MB) |",
        "|---|---:|---:|" + ("---:|" if held else "") + "---:|---:|---:|",
    ]
    for r in rows:
        ci = _fmt(r["final_ci95"])
        reach = "not reached" if r["episodes_to_threshold"] is None else f"{r['episodes_to_threshold']:.0f}"
        reach += f" ({r['reached']}/{r['seeds']} seeds)"
        held_cell = ""
        if held:
            if r.get("held_out_mean") is None:
                held_cell = " n/a |"
            elif r.get("held_out_ci") == "t over seeds":
                held_cell = f" {_fmt(r['held_out_mean'])} ± {_fmt(r['held_out_ci95'])} |"
            else:  # one run: its own interval, not centred on the mean for Wilson's: shown as [low, high]
                lo, hi = r["held_out_ci95_per_seed"][0]
                held_cell = f" {_fmt(r['held_out_mean'])} [{_fmt(lo)}, {_fmt(hi)}] |"
        lines.append(f"| {r['model']} | {r['n_params']:,} | {_fmt(r['final_mean'])} ± {ci} |{held_cell} {reach} | "
                     f"{r['seconds_per_episode']:.3f} | {r['peak_rss_mb']:.0f} |")
    refs = [r["held_out_references"] for r in held if r.get("held_out_references")]
    if refs:  # held-out episodes depend on the run's seed only: the same for every model
        same = all(ref == refs[0] for ref in refs)
        lines += ["", "No-learning references on the same held-out episodes (mean over seeds): "
                  + ", ".join(f"{k} {_fmt(v)}" for k, v in refs[0].items())
                  + ("" if same else f" ({held[0]['model']}'s; they differ between models: see results.json)")]
    Path(path).write_text("\n".join(lines) + "\n")


def plot_curves(results: Mapping[str, Any], path: str | os.PathLike[str]) -> None:
    """``curves.png``: median smoothed learning curve over seeds, IQR shaded, threshold dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for model, c in results["curves"].items():
        a = np.asarray(c, dtype=float)
        x = np.arange(1, a.shape[1] + 1)
        med = np.median(a, axis=0)
        lo, hi = np.percentile(a, 25, axis=0), np.percentile(a, 75, axis=0)
        (line,) = ax.plot(x, med, label=model)
        ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.2)
    ax.axhline(results["threshold"], color="k", ls="--", lw=0.8, label="threshold")
    ax.set_xlabel("episode")
    ax.set_ylabel(f"metric (trailing mean over {results['window']})")
    ax.set_title(f"{results['task']}: median and IQR over {results['seeds']} seeds")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def compare(cfg: CompareConfig) -> dict[str, Any]:
    """Run every (model, seed), then write ``results.json``, ``results.md`` and ``curves.png``.

    Model ids are checked (``make_model`` on the task) before anything runs.

    Returns:
        The ``results.json`` content.
    """
    from tqdm import tqdm

    from ..models import make_model
    from ..tasks import make_task
    from .trainer import apply_lean, holds_run, progress_enabled

    if not isinstance(cfg, CompareConfig):
        raise TypeError(f"cfg must be a CompareConfig, got {type(cfg).__name__}")
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out: expected a folder (existing or to be created), got the file {cfg.out!r}")
    task = make_task(cfg.task, **cfg.task_kwargs)
    for m in cfg.models:  # fail early on unknown ids, bad overrides or lean="on" without a lean op
        apply_lean(make_model(m, task, **cfg.model_kwargs.get(m, {})), task, cfg.train_config(m, 0).lean)
    jobs = [cfg.train_config(m, s) for m in cfg.models for s in range(cfg.seeds)]
    held = [str(j.out) for j in jobs if j.out is not None and holds_run(j.out)]
    if held and not (cfg.resume or cfg.overwrite):
        raise FileExistsError(f"out: {cfg.out!r} already holds runs ({', '.join(held)}); pass resume=True to "
                              "continue them or overwrite=True to replace them (CLI: --resume / --overwrite), "
                              "or choose another folder")
    out.mkdir(parents=True, exist_ok=True)
    threads = max(1, (os.cpu_count() or 1) // cfg.jobs) if cfg.jobs > 1 else None
    bar = tqdm(total=len(jobs), disable=not progress_enabled(cfg.progress), desc=f"compare on {cfg.task}")
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in cfg.models}
    with ThreadPoolExecutor(max_workers=cfg.jobs) as pool:
        for tc, res in zip(jobs, pool.map(lambda c: _run_one(c, threads, cfg.resume, cfg.overwrite,
                                                              cfg.eval_episodes), jobs)):
            runs[tc.model].append(res)
            bar.update(1)
    bar.close()
    results = summarize(cfg, runs, float(task.success_threshold), bool(task.higher_is_better))
    with open(out / "results.json", "w") as fh:
        json.dump(results, fh, indent=1)
    write_markdown(results, out / "results.md")
    plot_curves(results, out / "curves.png")
    return results

"""Child process of :mod:`spikeplastic.meta.compare`: one training run, then its peak memory.

Usage: ``python -m spikeplastic.meta._worker CONFIG.json RESULT.json [--resume | --overwrite] [--eval-episodes N]``.
``CONFIG.json`` holds a ``TrainConfig.to_dict()``; ``RESULT.json`` receives the run summary with
``peak_rss_mb`` (the process's resident-set high-water mark, ``getrusage(RUSAGE_SELF).ru_maxrss``,
at the end of training, before the held-out evaluation) and ``baseline_rss_mb`` (the same after
imports and task construction, before the model is built). ``--eval-episodes N`` (N >= 1): then
evaluate the final checkpoint on N held-out episodes (:func:`spikeplastic.meta.heldout.evaluate_cached`:
``held_out.json`` in the run folder, reused when it holds this network's evaluation) and add it to
the summary as ``held_out`` (without the per-episode values).
``--resume``: continue from ``config.out/checkpoint.pt`` when it exists (``peak_rss_mb`` is then the
larger of the resuming process's and the one in an earlier ``RESULT.json``; without a checkpoint
the run starts afresh, replacing what an earlier attempt logged). ``--overwrite``: start afresh even if the folder holds a run.

The worker ends itself (exit 143, as if terminated) once its parent process is gone, so
killing ``compare`` never leaves a run training on: an orphan would keep writing into a run
folder that a resumed ``compare`` trains in again.
"""
from __future__ import annotations

import json
import os
import resource
import signal
import sys
import threading
import time
from pathlib import Path

#: seconds between two checks that the parent process is still alive
PARENT_POLL_S = 0.5


def _exit_with_parent(parent: int) -> None:
    """Watch ``parent`` from a daemon thread; end this process once it is gone (reparented).

    ``os._exit``: works whatever signal dispositions the process inherited; checkpoints and
    metrics files are written by atomic replace, so nothing half-written is left."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_S)
        os._exit(128 + signal.SIGTERM)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _rss_mb() -> float:
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024.0 if sys.platform != "darwin" else kb / 2**20  # Linux: KiB, macOS: bytes


def main(argv: list[str]) -> int:
    _exit_with_parent(os.getppid())
    from .build import build_task
    from .checkpoint import CHECKPOINT_NAME
    from .config import TrainConfig
    from .heldout import HELD_OUT_NAME, evaluate_cached
    from .trainer import Trainer, TrainingError

    usage = ("usage: python -m spikeplastic.meta._worker CONFIG.json RESULT.json [--resume | --overwrite] "
             "[--eval-episodes N]")
    flags = list(argv[2:])
    eval_episodes = 0
    if "--eval-episodes" in flags:
        i = flags.index("--eval-episodes")
        try:
            eval_episodes = int(flags[i + 1])
        except (IndexError, ValueError):
            raise SystemExit(usage) from None
        del flags[i:i + 2]
    if len(argv) < 2 or len(flags) > 1 or not set(flags) <= {"--resume", "--overwrite"} or eval_episodes < 0:
        raise SystemExit(usage)
    cfg_path, out_path = argv[:2]
    with open(cfg_path) as fh:
        config = TrainConfig.from_dict(json.load(fh))
    has_ckpt = config.out is not None and (Path(config.out) / CHECKPOINT_NAME).is_file()
    resume = "--resume" in flags and has_ckpt
    overwrite = "--overwrite" in flags or ("--resume" in flags and not has_ckpt)
    if overwrite and config.out is not None:  # the run is replaced: its earlier evaluation must not outlive it
        (Path(config.out) / HELD_OUT_NAME).unlink(missing_ok=True)
    task = build_task(config)
    baseline = _rss_mb()
    t0 = time.perf_counter()
    try:
        res = Trainer(config, task=task).run(resume=resume, overwrite=overwrite)
    except TrainingError as e:  # one line for compare's report, not a traceback
        print(f"TrainingError: {e}", file=sys.stderr)
        return 1
    out = {
        "model": config.model, "seed": config.seed, "episodes": res.episodes, "n_params": res.n_params,
        "final_metric": res.final_metric, "seconds": time.perf_counter() - t0, "skipped": res.skipped,
        "peak_rss_mb": _rss_mb(), "baseline_rss_mb": baseline, "held_out": None,
    }
    if eval_episodes and config.out is not None:
        out["held_out"] = evaluate_cached(config.out, episodes=eval_episodes,
                                          device=config.device).to_dict(values=False)
    if resume:  # the peak of the whole run: a resumed (or finished, re-summarised) run keeps its training's
        try:
            with open(out_path) as fh:
                prev = json.load(fh)
            out["peak_rss_mb"] = max(float(out["peak_rss_mb"]), float(prev["peak_rss_mb"]))
        except (OSError, ValueError, KeyError, TypeError):
            pass
    with open(out_path, "w") as fh:
        json.dump(out, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

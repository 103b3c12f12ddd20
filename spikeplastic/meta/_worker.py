"""Child process of :mod:`spikeplastic.meta.compare`: one training run, then its peak memory.

Usage: ``python -m spikeplastic.meta._worker CONFIG.json RESULT.json [--resume]``. ``CONFIG.json``
holds a ``TrainConfig.to_dict()``; ``RESULT.json`` receives the run summary with ``peak_rss_mb``
(the process's resident-set high-water mark, ``getrusage(RUSAGE_SELF).ru_maxrss``, at the end) and
``baseline_rss_mb`` (the same after imports and task construction, before the model is built).
``--resume``: continue from ``config.out/checkpoint.pt`` when it exists (memory figures are then
those of the resuming process).
"""
from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path


def _rss_mb() -> float:
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024.0 if sys.platform != "darwin" else kb / 2**20  # Linux: KiB, macOS: bytes


def main(argv: list[str]) -> int:
    from .config import TrainConfig
    from .trainer import Trainer, build_task

    from .checkpoint import CHECKPOINT_NAME

    if len(argv) not in (2, 3) or (len(argv) == 3 and argv[2] != "--resume"):
        raise SystemExit("usage: python -m spikeplastic.meta._worker CONFIG.json RESULT.json [--resume]")
    cfg_path, out_path = argv[:2]
    with open(cfg_path) as fh:
        config = TrainConfig.from_dict(json.load(fh))
    resume = len(argv) == 3 and config.out is not None and (Path(config.out) / CHECKPOINT_NAME).is_file()
    task = build_task(config)
    baseline = _rss_mb()
    t0 = time.perf_counter()
    res = Trainer(config, task=task).run(resume=resume)
    out = {
        "model": config.model, "seed": config.seed, "episodes": res.episodes, "n_params": res.n_params,
        "final_metric": res.final_metric, "seconds": time.perf_counter() - t0, "skipped": res.skipped,
        "peak_rss_mb": _rss_mb(), "baseline_rss_mb": baseline,
    }
    with open(out_path, "w") as fh:
        json.dump(out, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

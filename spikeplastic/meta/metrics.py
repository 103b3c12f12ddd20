"""Metrics as JSON lines (``metrics.jsonl``), one record per logged episode."""
from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["METRICS_NAME", "MetricsLog", "read_metrics"]

METRICS_NAME = "metrics.jsonl"


def _clean(v: Any) -> Any:
    # JSON has no NaN/inf: write them as strings so every line stays standard JSON.
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return v


class MetricsLog:
    """Append-only JSON-lines writer; ``path=None`` discards records.

    Record keys: ``phase`` (``"train"`` or ``"eval"``), ``episode`` (outer steps completed),
    ``loss``, ``metric``, ``seconds`` (wall time of that step), ``skipped`` (the optimiser step
    was skipped because the loss or a gradient was NaN/inf), ``grad_norm`` (before clipping); on steps
    whose ``grad_norm`` exceeds ``trainer.GRAD_TOP_ABOVE``, ``grad_top``: ``[parameter name, its share
    of the squared norm]``.
    """

    def __init__(self, path: str | os.PathLike[str] | None, *, history: Iterable[Mapping[str, Any]] = ()) -> None:
        self.path = None if path is None else Path(path)
        self.records: list[dict[str, Any]] = [dict(r) for r in history]
        if self.path is not None:
            # (re)write what is known: on resume this drops lines logged after the checkpoint.
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
            with open(tmp, "w") as fh:
                for r in self.records:
                    fh.write(json.dumps({k: _clean(v) for k, v in r.items()}) + "\n")
            os.replace(tmp, self.path)

    def write(self, record: Mapping[str, Any]) -> None:
        rec = dict(record)
        self.records.append(rec)
        if self.path is not None:
            with open(self.path, "a") as fh:
                fh.write(json.dumps({k: _clean(v) for k, v in rec.items()}) + "\n")


def read_metrics(path: str | os.PathLike[str], phase: str | None = "train") -> list[dict[str, Any]]:
    """Records of a ``metrics.jsonl`` (or the run folder holding one), optionally one ``phase``."""
    p = Path(path)
    if p.is_dir():
        p = p / METRICS_NAME
    out = []
    with open(p) as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            r = json.loads(line)
            for k in ("loss", "metric"):
                if isinstance(r.get(k), str):
                    r[k] = float(r[k])
            if phase is None or r.get("phase") == phase:
                out.append(r)
    return out

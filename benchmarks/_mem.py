"""Pieces shared by the benchmark scripts: memory readings (Linux ``/proc``; CPU runs) and the
one-measurement-per-subprocess worker protocol (``SCRIPT --worker KIND CONFIG_JSON``)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any


def status_bytes(key: str) -> int:
    """A ``/proc/self/status`` figure in bytes (``VmRSS``, ``VmHWM``, ...)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{key} not in /proc/self/status")


def reset_peak_rss() -> int:
    """Reset the kernel's peak-RSS counter (``VmHWM``) to the current RSS; returns that RSS."""
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    return status_bytes("VmRSS")


def spawn_worker(script: str, kind: str, cfg: dict[str, Any], threads: int | None, *,
                 exact_alloc: bool = False) -> subprocess.CompletedProcess[str]:
    """Run ``script --worker kind cfg`` in a fresh process (``OMP_NUM_THREADS=threads`` when set).

    ``exact_alloc``: glibc returns every allocation over 64 KiB to the OS at once (mmap per
    tensor), so the process's RSS follows the live tensors (memory measurements).
    """
    env = dict(os.environ)
    if exact_alloc:
        env["MALLOC_MMAP_THRESHOLD_"] = "65536"
        env["MALLOC_TRIM_THRESHOLD_"] = "65536"
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    return subprocess.run([sys.executable, script, "--worker", kind, json.dumps(cfg)], env=env,
                          capture_output=True, text=True)


def last_json(stdout: str) -> dict[str, Any]:
    """The JSON object on a worker's last output line."""
    return json.loads(stdout.strip().splitlines()[-1])


def serve_worker(worker: Sequence[str], handlers: Mapping[str, Callable[[dict[str, Any]], dict[str, Any]]]) -> None:
    """The worker side: ``worker = (kind, cfg_json)``; sets the thread count from ``cfg["threads"]``
    and prints ``handlers[kind](cfg)`` as one JSON line."""
    import torch

    kind, cfg = worker[0], json.loads(worker[1])
    if cfg.get("threads"):
        torch.set_num_threads(cfg["threads"])
    print(json.dumps(handlers[kind](cfg)))

"""A compare worker must not outlive its parent: killing ``compare`` (even with SIGKILL, which
gives it no chance to clean up) must not leave a run training on in a folder that a resumed
``compare`` would train in again. Found in use: two workers appending to one ``metrics.jsonl``."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from spikeplastic.meta.config import TrainConfig

PARENT = textwrap.dedent(
    """
    import subprocess, sys, time
    cfg, result, pidfile = sys.argv[1:4]
    p = subprocess.Popen([sys.executable, "-m", "spikeplastic.meta._worker", cfg, result])
    open(pidfile, "w").write(str(p.pid))
    time.sleep(600)
    """
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped by init) counts as gone
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_worker_exits_when_parent_is_killed(tmp_path: Path) -> None:
    cfg = TrainConfig(task="pattern50", model="rate-hebb", episodes=10**6, out=str(tmp_path / "run"))
    cfg_path = tmp_path / "cfg.json"
    cfg_path.write_text(json.dumps(cfg.to_dict()))
    pidfile = tmp_path / "worker.pid"
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(cfg_path), str(tmp_path / "r.json"), str(pidfile)],
                              env=dict(os.environ, OMP_NUM_THREADS="1"))
    try:
        deadline = time.monotonic() + 120
        metrics = tmp_path / "run" / "metrics.jsonl"
        # wait until the worker trains (its metrics file grows): the parent is then killed mid-run
        while not (metrics.is_file() and metrics.stat().st_size > 0):
            assert time.monotonic() < deadline, "the worker never started training"
            assert parent.poll() is None, f"parent exited early ({parent.returncode})"
            time.sleep(0.2)
        worker = int(pidfile.read_text())
        assert _alive(worker)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        t0 = time.monotonic()
        while _alive(worker) and time.monotonic() - t0 < 30:
            time.sleep(0.1)
        gone_after = time.monotonic() - t0
        assert not _alive(worker), "the worker was still training 30 s after its parent was killed"
        assert gone_after < 10, f"the worker took {gone_after:.1f} s to notice its parent was gone"
    finally:
        if parent.poll() is None:
            parent.kill()
        if pidfile.is_file() and _alive(int(pidfile.read_text())):
            os.kill(int(pidfile.read_text()), signal.SIGKILL)

"""Reliability campaign (issue 10): bad inputs, export+verify cycles, Ctrl-C at random moments, a long episode.

    .venv/bin/python benchmarks/reliability.py                  # the full campaign (~15 min on 2 cores)
    .venv/bin/python benchmarks/reliability.py --quick          # CI sizes (what tests/reliability runs)
    .venv/bin/python benchmarks/reliability.py --parts cycles,long --json out.json

Parts (each prints its figures; every check reports the counts it is based on):

1. ``bad``: the catalogue of bad API/CLI inputs (``tests/reliability/bad_inputs.py``): how many got a
   clear error (goal: all).
2. ``cycles``: ``K`` export+verify cycles in one fresh process (``--worker cycles``): each cycle
   exports a briefly trained ``snn-stdp`` network (``pattern50``) with ``to_lava``, runs it in Lava on
   a stream of the task's own encoded episodes, then ``verify(..., mode="float")`` on the same
   stream. After each cycle: resident set size (``VmRSS``), child processes left behind, spikes on
   both sides. Figures: RSS growth per cycle (least-squares slope over the cycles after the warm-up;
   goal < 0.1 MiB/cycle), leftover children (goal 0), every verify ok with > 0 spikes.
3. ``sigint-train`` / ``sigint-verify``: ``spikeplastic train`` (``pattern50``, ``snn-stdp``, frequent
   checkpoints) and ``spikeplastic verify`` (on that run's checkpoint, with its default inputs: the
   task's own episodes, each a separate Lava run with its own worker start-up), started as
   subprocesses in their own process group and sent SIGINT after a random delay (seeded; half of
   the trials during start-up, half while running -- ``train``: from its first ``metrics.jsonl``
   line to its ``done`` line; ``verify``: from its first child process to its report -- as timed
   on an uninterrupted run; stratified), alternately to the whole group (a terminal's Ctrl-C, which Lava's worker processes receive
   too) and to the main process only (``kill -INT PID``). Checked: the process exits within a
   timeout, with a non-zero status (130 expected), and no process of its group, nor any descendant
   seen while it ran, survives it. For ``train``: ``--resume`` (or, when the interrupt came before
   the first checkpoint, a fresh ``--overwrite`` run) completes, and its ``checkpoint.pt``
   ``model_state`` (``torch.equal`` per tensor), episode count and ``metrics.jsonl`` (every field
   but the wall time ``seconds``) are identical to an uninterrupted run of the same config and seed.
4. ``long``: spiking plastic networks run for ``--steps`` steps (default 10^5) without gradients, in
   chunks carrying the state; after every chunk every state tensor, the recorded voltages and the
   effective weights ``w + alpha * H`` must be finite. Figures: spikes, max |H|, max |v|.

CLI runs get one torch thread (``OMP_NUM_THREADS=1``, :func:`cli_env`): the interrupted, resumed
and reference runs must share a thread count, and on 2 shared cores 2 OpenMP threads made the
same run's wall time vary twentyfold.

Sizes: ``--quick`` = what ``tests/reliability/test_reliability_campaign.py`` runs in CI (3 cycles,
2 trials each, 10^4 steps); the default is the full campaign (100 cycles, 20 trials each, 10^5
steps). Processes are read from ``/proc`` (Linux). Exit status 1 when a goal is missed.
"""
from __future__ import annotations

import argparse
import gc
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(HERE) not in sys.path:  # imported from the tests: _mem sits next to this file
    sys.path.insert(0, str(HERE))

from _mem import last_json, spawn_worker, status_bytes  # noqa: E402

MIB = 2**20
#: the ``train`` configuration of the SIGINT trials (and of the checkpoint that ``verify`` reads)
TRAIN_ARGS = ("--task", "pattern50", "--model", "snn-stdp", "--no-progress", "--seed", "0")
#: processes that a Python process starts once and keeps by design (not leftovers of a cycle)
HELPERS = ("multiprocessing.resource_tracker", "multiprocessing.forkserver")
#: exit statuses of a run ended by Ctrl-C: the CLI's 130, or terminated by SIGINT (-2: Python's
#: own exit for an uncaught KeyboardInterrupt, e.g. during start-up imports)
INTERRUPTED = (130, -signal.SIGINT)
#: fewest signalled trials from which "every run ended as interrupted" is judged (the CI size only
#: prints it): a Ctrl-C landing in third-party C code that mishandles it is rare (NumPy's and torch's
#: imports did, 4 in 60 start-up Ctrl-Cs, before spikeplastic._imports); judged on a full campaign,
#: it must not make CI flaky
JUDGE_CLEAN_FROM = 10
#: without a timed running phase, SIGINT delays are drawn over this fraction of the uninterrupted
#: run's wall time (its end is interpreter shutdown)
SPAN = 0.85


@dataclass(frozen=True)
class Sizes:
    """How big each part is."""

    cycles: int = 100
    warmup: int = 10  # cycles left out of the RSS slope
    cycle_episodes: int = 10  # pattern50 episodes (11 steps each) per export+verify cycle
    train_trials: int = 20
    verify_trials: int = 20
    train_episodes: int = 150
    checkpoint_every: int = 5
    verify_episodes: int | None = None  # task episodes per `spikeplastic verify` (None: its default, 10)
    long_steps: int = 100_000
    long_nets: tuple[str, ...] = ("snn-stdp", "stdp-recurrent")


FULL = Sizes()
QUICK = Sizes(cycles=3, warmup=1, cycle_episodes=4, train_trials=2, verify_trials=2, train_episodes=16,
              checkpoint_every=2, verify_episodes=3, long_steps=10_000)


# ---- processes (/proc) --------------------------------------------------------------------------

@dataclass(frozen=True)
class Proc:
    """One line of the process table: ``start`` (clock ticks after boot) tells a reused pid apart."""

    pid: int
    ppid: int
    pgrp: int
    state: str
    start: int
    cmd: str

    def describe(self) -> str:
        return f"pid {self.pid} ({self.state}) {self.cmd[:120]}"


def process_table() -> dict[int, Proc]:
    """Every process visible in ``/proc`` (processes that vanish while it is read are skipped)."""
    out: dict[int, Proc] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as fh:
                stat = fh.read()
            with open(f"/proc/{name}/cmdline", "rb") as fh:
                cmd = fh.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        # the command name (field 2) may hold spaces and parentheses: split after the last ')'
        rest = stat.rsplit(")", 1)[1].split()
        out[int(name)] = Proc(int(name), int(rest[1]), int(rest[2]), rest[0], int(rest[19]), cmd)
    return out


def descendants(pid: int, table: dict[int, Proc] | None = None) -> list[Proc]:
    """Children, grandchildren, ... of ``pid``."""
    table = process_table() if table is None else table
    kids: dict[int, list[Proc]] = {}
    for p in table.values():
        kids.setdefault(p.ppid, []).append(p)
    out, todo = [], [pid]
    while todo:
        for c in kids.get(todo.pop(), []):
            out.append(c)
            todo.append(c.pid)
    return out


def is_helper(p: Proc) -> bool:
    return any(h in p.cmd for h in HELPERS)


def alive(procs: Sequence[Proc]) -> list[Proc]:
    """Those of ``procs`` still running (same pid and start time; zombies count as gone)."""
    table = process_table()
    return [table[p.pid] for p in procs
            if p.pid in table and table[p.pid].start == p.start and table[p.pid].state != "Z"]


# ---- part 1: bad inputs -------------------------------------------------------------------------

def bad_inputs_part(root: Path) -> dict[str, Any]:
    """Run the bad-input catalogue (``tests/reliability/bad_inputs.py``) in this process."""
    sys.path.insert(0, str(ROOT / "tests" / "reliability"))
    try:
        from bad_inputs import run_all, summary
    finally:
        sys.path.remove(str(ROOT / "tests" / "reliability"))
    t0 = time.perf_counter()
    results = run_all(root)
    failed = [f"[{c.kind}] {c.name}: {o.detail}" for c, o in results if not (o.ok or o.skipped)]
    ran = [o for _, o in results if not o.skipped]
    return {"cases": len(results), "ran": len(ran), "clear": sum(o.ok for o in ran),
            "api": sum(c.kind == "api" for c, o in results if not o.skipped),
            "cli": sum(c.kind == "cli" for c, o in results if not o.skipped),
            "skipped": len(results) - len(ran), "failed": failed, "summary": summary(results),
            "seconds": time.perf_counter() - t0}


def report_bad(r: dict[str, Any]) -> list[str]:
    lines = [f"{r['summary']} ({r['api']} API, {r['cli']} CLI; {r['seconds']:.0f} s)"]
    lines += [f"  FAIL {f}" for f in r["failed"]]
    return lines


# ---- part 2: export + verify cycles in one process ----------------------------------------------

def cycle_network(seed: int, episodes: int) -> tuple[Any, Any]:
    """A briefly meta-trained ``snn-stdp`` network on ``pattern50`` (its IR) and ``episodes`` task
    episodes encoded as the model encodes them, one after the other (``[T, n_in]`` float64)."""
    import torch

    from spikeplastic.meta import TrainConfig, train
    from spikeplastic.tasks import make_task

    res = train(TrainConfig(task="pattern50", model="snn-stdp", episodes=10, batch=1, seed=seed, progress=False))
    model = res.model
    task = make_task("pattern50")
    gen = torch.Generator().manual_seed(seed + 123)
    with torch.no_grad():
        x = torch.cat([model.encode(task.sample(1, gen).inputs.to(model.network.dtype)) for _ in range(episodes)])
    return model.network.to_ir(meta=model.export_meta()), x[:, 0].double().numpy()


def run_cycles(cfg: dict[str, Any]) -> dict[str, Any]:
    """The ``cycles`` worker: ``cfg["cycles"]`` export+verify cycles in this process (module doc)."""
    from spikeplastic.export import to_lava, verify

    net_ir, x = cycle_network(int(cfg["seed"]), int(cfg["episodes"]))
    me = os.getpid()
    before = {(p.pid, p.start) for p in descendants(me)}
    out: dict[str, list[Any]] = {k: [] for k in ("rss_mib", "leftover", "helpers", "spikes_run", "spikes_ref",
                                                 "spikes_lava", "min_pop_spikes", "dw_change", "rel_dw", "ok",
                                                 "seconds")}
    left_cmds: list[str] = []
    for _ in range(int(cfg["cycles"])):
        t0 = time.perf_counter()
        rec = to_lava(net_ir, mode="float").run(x)
        spikes_run = int(sum(v.sum() for v in rec.spikes.values()))
        rep = verify(net_ir, inputs=x, mode="float")
        del rec  # nothing of this cycle is kept but the figures
        gc.collect()
        out["seconds"].append(time.perf_counter() - t0)
        out["rss_mib"].append(status_bytes("VmRSS") / MIB)
        new = [p for p in descendants(me) if (p.pid, p.start) not in before]
        left = [p for p in new if not is_helper(p)]
        out["leftover"].append(len(left))
        out["helpers"].append(len(new) - len(left))
        left_cmds += [p.describe() for p in left]
        out["spikes_run"].append(spikes_run)
        out["spikes_ref"].append(sum(p.spikes_reference for p in rep.populations.values()))
        out["spikes_lava"].append(sum(p.spikes_lava for p in rep.populations.values()))
        # non-vacuous: every population spikes and every plastic projection changes, on both sides
        out["min_pop_spikes"].append(min(min(p.spikes_reference, p.spikes_lava) for p in rep.populations.values()))
        out["dw_change"].append(min((min(q.max_weight_change, q.max_weight_change_lava)
                                     for q in rep.projections.values()), default=0.0))
        out["rel_dw"].append(rep.max_rel_dw)
        out["ok"].append(bool(rep.ok))
    return {**out, "steps": int(x.shape[0]), "leftover_cmds": left_cmds[:20],
            "populations": sorted(rep.populations), "projections": sorted(rep.projections)}


def slope(ys: Sequence[float]) -> float:
    """Least-squares slope of ``ys`` against ``0, 1, ...`` (nan for fewer than 2 points)."""
    n = len(ys)
    if n < 2:
        return math.nan
    mx, my = (n - 1) / 2, sum(ys) / n
    return sum((i - mx) * (y - my) for i, y in enumerate(ys)) / sum((i - mx) ** 2 for i in range(n))


def cycles_part(sizes: Sizes, seed: int = 0) -> dict[str, Any]:
    """Part 2 in a fresh worker process (so that nothing else this campaign did is in its RSS)."""
    cfg = {"cycles": sizes.cycles, "episodes": sizes.cycle_episodes, "seed": seed}
    t0 = time.perf_counter()
    proc = spawn_worker(__file__, "cycles", cfg, None)
    if proc.returncode != 0:
        raise RuntimeError(f"the cycles worker failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    r = last_json(proc.stdout)
    rss = r["rss_mib"]
    after = rss[min(sizes.warmup, len(rss) - 1):]
    r.update(cycles=len(rss), warmup=len(rss) - len(after), slope_mib=slope(after),
             slope_last_half_mib=slope(rss[len(rss) // 2:]),
             growth_after_warmup_mib=after[-1] - after[0], seconds_total=time.perf_counter() - t0,
             vacuous=sum((a == 0 or c == 0 or w == 0)
                         for a, c, w in zip(r["min_pop_spikes"], r["spikes_run"], r["dw_change"])))
    return r


def report_cycles(r: dict[str, Any]) -> list[str]:
    n = r["cycles"]
    rss = r["rss_mib"]
    return [
        f"{n} export+verify cycles in one process ({r['steps']} steps of {r['populations']} per Lava run, "
        f"2 Lava runs per cycle; {sum(r['seconds']) / n:.2f} s per cycle)",
        f"  RSS: {rss[0]:.1f} MiB after cycle 1, {rss[-1]:.1f} MiB after cycle {n}; "
        f"growth {r['slope_mib']:+.4f} MiB/cycle (least squares over cycles {r['warmup'] + 1}-{n}; "
        f"{r['growth_after_warmup_mib']:+.2f} MiB over them; {r['slope_last_half_mib']:+.4f} MiB/cycle over the "
        f"last {n - n // 2})",
        f"  leftover child processes after each cycle: max {max(r['leftover'])}, total {sum(r['leftover'])} "
        f"over {n} cycles; helpers kept by design (multiprocessing's resource tracker): max {max(r['helpers'])}",
        f"  verify ok: {sum(r['ok'])}/{n}; spikes per verify (reference / Lava): "
        f"{min(r['spikes_ref'])}-{max(r['spikes_ref'])} / {min(r['spikes_lava'])}-{max(r['spikes_lava'])}; "
        f"per to_lava run: {min(r['spikes_run'])}-{max(r['spikes_run'])}; "
        f"fewest spikes of a population on either side {min(r['min_pop_spikes'])}; smallest plastic weight "
        f"change on either side {min(r['dw_change']):.3g}; "
        f"max |dW| / weight scale {max(r['rel_dw']):.2g}; vacuous (0 spikes or no weight change): {r['vacuous']}",
        *[f"  LEFTOVER {c}" for c in r["leftover_cmds"]],
    ]


# ---- part 3: SIGINT at random moments ------------------------------------------------------------

def cli_argv(*args: str) -> list[str]:
    """``spikeplastic ARGS``: the console script next to this interpreter (what users run), else
    ``python -m spikeplastic.cli``."""
    script = Path(sys.executable).with_name("spikeplastic")
    return [str(script), *args] if script.is_file() else [sys.executable, "-m", "spikeplastic.cli", *args]


def cli_env() -> dict[str, str]:
    """The environment of every CLI run: one torch thread. On 2 shared cores, 2 OpenMP threads made
    the same 150-episode ``train`` take 2 s in one run and 44 s in another (benchmarks/README.md);
    identical results need the same thread count in the interrupted, resumed and reference runs."""
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def _default_sigint() -> None:  # in the child, before exec: Ctrl-C as a terminal delivers it
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # (a background shell starts jobs with SIGINT ignored)


@dataclass
class Trial:
    """One interrupted run. ``rc``: exit status (negative: killed by that signal); ``exit_s``: from
    the signal to the exit; ``hung``: no exit within the timeout (then killed); ``leftovers``:
    processes of its group or descendants still running after it exited (and a grace period)."""

    index: int
    delay: float  # after the start ("start" clock) or after the run was first seen running ("running")
    target: str  # "group" (terminal Ctrl-C) or "main" (kill -INT PID)
    clock: str = "start"
    signal_at: float | None = None  # seconds from the start to the signal
    rc: int | None = None
    finished_first: bool = False  # the run ended before the delay: no signal sent
    exit_s: float | None = None
    hung: bool = False
    phase: str = ""  # what the run was doing when signalled
    ran_to_end: bool = False  # signalled before its final output, which it printed all the same
    workers_at_signal: int = 0  # descendants alive at the signal, not counting helpers (HELPERS)
    max_workers: int = 0  # the most descendants seen alive at once, helpers included
    leftovers: list[str] = field(default_factory=list)
    message: str = ""  # the last line of stderr
    resumed: str = ""  # train: "resume", "overwrite" or "" ; how the run was completed
    identical: bool | None = None
    detail: str = ""


def interrupt(argv: Sequence[str], delay: float, target: str, log: Path, *,
              phase_of: Callable[[str, str, int, int], str], final: Callable[[str, str], bool],
              after: Callable[[str, str, int], bool] | None = None, timeout: float = 60.0, grace: float = 5.0,
              index: int = 0) -> Trial:
    """Start ``argv`` in its own process group, send SIGINT ``delay`` s after its start (or, with
    ``after``, after ``after(stderr, stdout, n_children)`` first held: polled every 20 ms), judge the exit.

    ``phase_of(stderr, stdout, n_children, n_seen)`` names what the run was doing at the signal (from
    its output so far, its descendants alive then and all it had had, helpers not counted);
    ``final(stderr, stdout)``: whether its output is that of a run that finished.
    The phase ``"exiting"`` means its final output was already there (the signal came late).
    """
    tr = Trial(index, delay, target, clock="start" if after is None else "running")
    err_path, out_path = log.with_suffix(".err"), log.with_suffix(".out")

    def output() -> tuple[str, str]:
        return err_path.read_text(errors="replace"), out_path.read_text(errors="replace")

    with open(out_path, "w") as out, open(err_path, "w") as err:
        proc = subprocess.Popen(list(argv), stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=cli_env(),
                                start_new_session=True, preexec_fn=_default_sigint)
    seen: dict[int, Proc] = {}
    t0 = time.monotonic()
    t_clock = t0 if after is None else None
    now: list[Proc] = []
    while proc.poll() is None:
        now = descendants(proc.pid)
        for p in now:
            seen.setdefault(p.pid, p)
        tr.max_workers = max(tr.max_workers, len(now))
        if t_clock is None and after is not None and after(*output(), sum(not is_helper(p) for p in now)):
            t_clock = time.monotonic()
        if t_clock is not None and time.monotonic() - t_clock >= delay:
            break
        time.sleep(0.02 if t_clock is None else min(0.02, max(0.0, delay - (time.monotonic() - t_clock))))
    if proc.poll() is not None:
        tr.finished_first = True
    else:
        tr.signal_at = time.monotonic() - t0
        tr.workers_at_signal = sum(not is_helper(p) for p in now)
        n_seen = sum(not is_helper(p) for p in seen.values())
        tr.phase = "exiting" if final(*output()) else phase_of(*output(), tr.workers_at_signal, n_seen)
        t_sig = time.monotonic()
        try:
            if target == "group":
                os.killpg(proc.pid, signal.SIGINT)
            else:
                os.kill(proc.pid, signal.SIGINT)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            tr.hung = True
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        tr.exit_s = time.monotonic() - t_sig
    tr.rc = proc.returncode
    # survivors: anything of its process group, and any descendant seen while it ran
    deadline = time.monotonic() + grace
    while True:
        table = process_table()
        group = [p for p in table.values() if p.pgrp == proc.pid and p.state != "Z"]
        left = {p.pid: p for p in group + alive(list(seen.values()))}
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    tr.leftovers = [p.describe() for p in left.values()]
    for p in left.values():  # clean up after it, then report
        try:
            os.kill(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    err_text, out_text = output()
    lines = [s for s in err_text.splitlines() if s.strip()]
    tr.message = lines[-1][:200] if lines else ""
    tr.ran_to_end = not tr.finished_first and tr.phase != "exiting" and final(err_text, out_text)
    return tr


def delays(n: int, ref: "Reference", rng: random.Random) -> list[tuple[str, float]]:
    """``n`` (clock, delay): half of the trials from the start, over the uninterrupted run's
    start-up ``[0, ref.running)``; half from the moment the trial itself is seen running, over the
    reference's running time ``[0, ref.end - ref.running)`` (so that a slower or faster start-up
    under load still lands them while it runs); all from the start over ``[0, SPAN * ref.total)``
    when the reference was never seen running. One uniformly in each of equal strata (shuffled)."""

    def strata(k: int, hi: float) -> list[float]:
        return [hi * (i + rng.random()) / k for i in range(k)]

    if ref.running is None:
        d = [("start", t) for t in strata(n, SPAN * ref.total)]
    else:
        d = [("start", t) for t in strata(n // 2, ref.running)] + \
            [("running", t) for t in strata(n - n // 2, ref.end - ref.running)]
    rng.shuffle(d)
    return d


@dataclass(frozen=True)
class Reference:
    """An uninterrupted run: exit status, stderr, wall time, and when (s after the start) it was
    first seen running and its final output first appeared (polled every 20 ms; None: never)."""

    rc: int
    stderr: str
    total: float
    running: float | None
    final: float | None

    @property
    def end(self) -> float:
        return self.final if self.final is not None else SPAN * self.total


def reference_run(argv: Sequence[str], running: Callable[[str, str, int], bool], final: Callable[[str, str], bool],
                  log: Path, timeout: float = 600.0) -> Reference:
    """Run ``argv`` uninterrupted, timing its phases (``running(stderr, stdout, n_children)``)."""
    err_path, out_path = log.with_suffix(".err"), log.with_suffix(".out")
    with open(out_path, "w") as out, open(err_path, "w") as err:
        proc = subprocess.Popen(list(argv), stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=cli_env(),
                                start_new_session=True)
    t0 = time.monotonic()
    t_run = t_final = None
    while proc.poll() is None:
        now = time.monotonic() - t0
        if now > timeout:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            break
        err_text, out_text = err_path.read_text(errors="replace"), out_path.read_text(errors="replace")
        if t_run is None and running(err_text, out_text, len(descendants(proc.pid))):
            t_run = now
        if t_final is None and final(err_text, out_text):
            t_final = now
        time.sleep(0.02)
    return Reference(proc.returncode, err_path.read_text(errors="replace"), time.monotonic() - t0, t_run, t_final)


def _run(argv: Sequence[str], timeout: float = 600.0) -> tuple[int, str, float]:
    t0 = time.monotonic()
    r = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                       env=cli_env())
    return r.returncode, r.stderr, time.monotonic() - t0


def train_argv(sizes: Sizes, out: Path, *extra: str) -> list[str]:
    return cli_argv("train", *TRAIN_ARGS, "--episodes", str(sizes.train_episodes),
                    "--checkpoint-every", str(sizes.checkpoint_every), "--out", str(out), *extra)


def same_run(a: Path, b: Path) -> tuple[bool, str]:
    """Whether two run folders hold identical results: checkpoint ``model_state`` (``torch.equal``
    per tensor), ``episode``, and ``metrics.jsonl`` records but for their wall time."""
    import torch

    ca = torch.load(a / "checkpoint.pt", weights_only=True)
    cb = torch.load(b / "checkpoint.pt", weights_only=True)
    if ca["episode"] != cb["episode"]:
        return False, f"episode {ca['episode']} vs {cb['episode']}"
    sa, sb = ca["model_state"], cb["model_state"]
    if sorted(sa) != sorted(sb):
        return False, f"model_state keys differ: {sorted(set(sa) ^ set(sb))}"
    diff = [k for k in sa if not torch.equal(sa[k], sb[k])]
    if diff:
        k = diff[0]
        return False, f"{len(diff)}/{len(sa)} model_state tensors differ, e.g. {k} by {float((sa[k] - sb[k]).abs().max()):.3g}"

    def metrics(p: Path) -> list[dict[str, Any]]:
        rows = [json.loads(s) for s in (p / "metrics.jsonl").read_text().splitlines() if s.strip()]
        return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]

    ma, mb = metrics(a), metrics(b)
    if ma != mb:
        bad = next((i for i, (x, y) in enumerate(zip(ma, mb)) if x != y), min(len(ma), len(mb)))
        return False, f"metrics.jsonl differ ({len(ma)} vs {len(mb)} records; first at record {bad + 1})"
    return True, f"{len(sa)} tensors, {len(ma)} metric records"


def _train_phase(out: Path) -> Callable[[str, str, int, int], str]:
    def phase(stderr: str, stdout: str, children: int, seen: int) -> str:
        if (out / "metrics.jsonl").exists():
            return "training"
        return "setting up the run" if "trainable parameters" in stderr else "start-up"

    return phase


def _train_final(stderr: str, stdout: str) -> bool:
    return "\ndone: " in "\n" + stderr


def _verify_phase(stderr: str, stdout: str, children: int, seen: int) -> str:
    if children:
        return "Lava processes up"
    return "between Lava runs" if seen else "start-up (no child process yet)"


def _verify_final(stderr: str, stdout: str) -> bool:
    return "\nverify: " in "\n" + stdout


def sigint_train_part(sizes: Sizes, root: Path, seed: int = 0) -> dict[str, Any]:
    """Part 3, ``train``: interrupted runs, each completed afterwards and compared with ``ref``."""
    t_start = time.perf_counter()
    ref = root / "train-ref"
    rf = reference_run(train_argv(sizes, ref), lambda e, o, n: (ref / "metrics.jsonl").exists(), _train_final,
                       root / "train-ref-log")
    if rf.rc != 0:
        raise RuntimeError(f"the uninterrupted train run failed (exit {rf.rc}): {rf.stderr[-2000:]}")
    rng = random.Random(seed)
    trials = []
    for i, (clock, d) in enumerate(delays(sizes.train_trials, rf, rng)):
        out = root / f"train-{i:02d}"
        tr = interrupt(train_argv(sizes, out), d, "group" if i % 2 == 0 else "main", root / f"train-{i:02d}",
                       phase_of=_train_phase(out), final=_train_final, index=i,
                       after=None if clock == "start" else (lambda e, o, n, out=out: (out / "metrics.jsonl").exists()))
        if (out / "checkpoint.pt").is_file():
            tr.resumed, extra = "resume", ("--resume",)
        elif out.exists() and any(out.iterdir()):
            tr.resumed, extra = "overwrite", ("--overwrite",)  # interrupted before the first checkpoint
        else:
            tr.resumed, extra = "fresh", ()
        rc2, err2, _ = _run(train_argv(sizes, out, *extra))
        if rc2 != 0:
            tr.identical, tr.detail = False, f"completing run exit {rc2}: {err2.strip().splitlines()[-1:]}"
        else:
            tr.identical, tr.detail = same_run(out, ref)
        trials.append(tr)
        shutil.rmtree(out, ignore_errors=True)
    return {"kind": "train", "reference": asdict(rf), "trials": [asdict(t) for t in trials],
            "seconds": time.perf_counter() - t_start}


def sigint_verify_part(sizes: Sizes, root: Path, seed: int = 0, ckpt: Path | None = None) -> dict[str, Any]:
    """Part 3, ``verify``: interrupted ``spikeplastic verify CKPT`` runs."""
    t_start = time.perf_counter()
    if ckpt is None:
        ckpt = root / "verify-ckpt"
        rc, err, _ = _run(train_argv(sizes, ckpt))
        if rc != 0:
            raise RuntimeError(f"training the checkpoint to verify failed (exit {rc}): {err[-2000:]}")
    argv = cli_argv("verify", str(ckpt), *(() if sizes.verify_episodes is None else
                                           ("--episodes", str(sizes.verify_episodes))))
    rf = reference_run(argv, lambda e, o, n: n > 0, _verify_final, root / "verify-ref-log")
    if rf.rc not in (0, 1):
        raise RuntimeError(f"the uninterrupted verify run failed (exit {rf.rc}): {rf.stderr[-2000:]}")
    rng = random.Random(seed + 1)
    trials = [interrupt(argv, d, "group" if i % 2 == 0 else "main", root / f"verify-{i:02d}",
                        phase_of=_verify_phase, final=_verify_final, index=i,
                        after=None if clock == "start" else (lambda e, o, n: n > 0))
              for i, (clock, d) in enumerate(delays(sizes.verify_trials, rf, rng))]
    return {"kind": "verify", "reference": asdict(rf), "trials": [asdict(t) for t in trials],
            "seconds": time.perf_counter() - t_start}


def sigint_summary(r: dict[str, Any]) -> dict[str, Any]:
    """Counts over a part's trials (what the report prints and the tests assert)."""
    ts = r["trials"]
    signalled = [t for t in ts if not t["finished_first"]]
    # judged: signalled before the run's final output; after it, the work was done and exit 0 is right
    sig = [t for t in signalled if t["phase"] != "exiting"]
    late = [t for t in signalled if t["phase"] == "exiting"]
    s = {
        "trials": len(ts), "signalled": len(signalled), "finished_first": len(ts) - len(signalled),
        "judged": len(sig), "late": len(late), "late_rc": dict(Counter(str(t["rc"]) for t in late)),
        "exited": sum(not t["hung"] for t in signalled), "hung": sum(t["hung"] for t in signalled),
        "nonzero": sum(t["rc"] != 0 for t in sig),
        "swallowed": sum(t["rc"] == 0 or t["ran_to_end"] for t in sig),
        "interrupted": sum(t["rc"] in INTERRUPTED and not t["ran_to_end"] for t in sig),
        "rc": dict(Counter(str(t["rc"]) for t in sig)),
        "rc_by_phase": {ph: dict(Counter(str(t["rc"]) for t in sig if t["phase"] == ph))
                        for ph in sorted({t["phase"] for t in sig})},
        "leftovers": sum(bool(t["leftovers"]) for t in ts),
        "max_exit_s": max((t["exit_s"] for t in signalled if t["exit_s"] is not None), default=0.0),
        "phases": dict(Counter(t["phase"] for t in sig)),
        "targets": dict(Counter(t["target"] for t in sig)),
        "with_workers": sum(t["workers_at_signal"] > 0 for t in sig),
    }
    if r["kind"] == "train":
        s["identical"] = sum(bool(t["identical"]) for t in ts)
        s["completed_by"] = dict(Counter(t["resumed"] for t in ts))
    return s


_RUNNING = {"train": "training (metrics.jsonl written)", "verify": "running Lava (child processes up)"}


def _fmt_s(t: float | None) -> str:
    return "never" if t is None else f"{t:.2f} s"


def report_sigint(r: dict[str, Any]) -> list[str]:
    s = sigint_summary(r)
    ts = r["trials"]
    ref = r["reference"]
    at = [t["signal_at"] for t in ts if t["signal_at"] is not None] or [math.nan]
    n_run = sum(t["clock"] == "running" for t in ts)

    def counts(c: dict[str, int]) -> str:
        return ", ".join(f"{k} x{v}" for k, v in sorted(c.items()))

    lines = [
        f"SIGINT during `spikeplastic {r['kind']}`: {s['trials']} trials; the uninterrupted run was seen "
        f"{_RUNNING[r['kind']]} at {_fmt_s(ref['running'])}, its final output at {_fmt_s(ref['final'])}, exit at "
        f"{ref['total']:.1f} s (status {ref['rc']}); signalled at a random time of its start-up: {s['trials'] - n_run} "
        f"trials, of its running part, counted from the moment each trial was seen running: {n_run}; "
        f"signals {min(at):.2f}-{max(at):.2f} s after the start; signalled {s['signalled']} (to the process group "
        f"{s['targets'].get('group', 0)}, to the main process only {s['targets'].get('main', 0)}; child processes "
        f"other than multiprocessing's resource tracker alive at the signal in {s['with_workers']}); finished "
        f"before the signal {s['finished_first']}",
        f"  exited within the timeout: {s['exited']}/{s['signalled']} (slowest {s['max_exit_s']:.2f} s after the "
        f"signal); signalled after the run's final output (work done; any status right): {s['late']}"
        + (f" ({', '.join(f'{k} x{v}' for k, v in sorted(s['late_rc'].items()))})" if s["late"] else "")
        + f"; of the {s['judged']} others: non-zero status: {s['nonzero']}/{s['judged']}; signal swallowed (exit 0, or ran to its end "
        f"anyway): {s['swallowed']}; ended as interrupted (exit 130, or terminated by SIGINT): "
        f"{s['interrupted']}/{s['judged']}",
        "  exit status by phase at the signal: " + "; ".join(f"{ph}: {counts(c)}" for ph, c in s["rc_by_phase"].items()),
        f"  trials leaving a process behind: {s['leftovers']}/{s['trials']}",
    ]
    if r["kind"] == "train":
        by = s["completed_by"]
        lines.append(f"  completed afterwards and identical to the uninterrupted run (model_state tensors, "
                     f"episode, metrics): {s['identical']}/{s['trials']} (by --resume {by.get('resume', 0)}, by "
                     f"--overwrite after an interrupt before the first checkpoint {by.get('overwrite', 0)}, "
                     f"fresh after an interrupt before the run folder existed {by.get('fresh', 0)})")
    msgs = Counter(t["message"] for t in ts if not t["finished_first"])
    lines += [f"  last stderr line x{n}: {m!r}" for m, n in msgs.most_common(5)]
    for t in ts:
        if t["hung"] or t["leftovers"] or t["ran_to_end"] or t["identical"] is False \
                or t["rc"] == 0 and not t["finished_first"] and t["phase"] != "exiting":
            lines.append(f"  TRIAL {t['index']} delay {t['delay']:.2f} s to the {t['target']} ({t['phase']}): "
                         f"rc {t['rc']}, hung {t['hung']}, ran to its end {t['ran_to_end']}, leftovers "
                         f"{t['leftovers']}, identical {t['identical']} {t['detail']}")
    return lines


# ---- part 4: a long episode ---------------------------------------------------------------------

def _long_net(kind: str, seed: int) -> tuple[Any, Callable[[int], Any]]:
    """``(network, inputs(n) -> [n, 1, n_in])`` for the long episode."""
    import torch

    from spikeplastic import Network

    gen = torch.Generator().manual_seed(seed)
    if kind == "snn-stdp":
        from spikeplastic.models import make_model
        from spikeplastic.tasks import make_task

        task = make_task("pattern50")
        torch.manual_seed(seed)
        model = make_model("snn-stdp", task)

        def stream(n: int) -> torch.Tensor:  # task episodes back to back, encoded as the model does
            ep = task.sample(-(-n // task_len), gen).inputs.to(model.network.dtype)
            x = model.encode(ep)  # [T, k, n_in]
            return x.transpose(0, 1).reshape(-1, 1, x.shape[-1])[:n]

        task_len = int(task.sample(1, torch.Generator().manual_seed(0)).inputs.shape[0])
        return model.network, stream
    if kind == "stdp-recurrent":
        # potentiation-dominated pair STDP, no decay: H grows without bound (the stress case)
        from spikeplastic import STDP

        torch.manual_seed(seed)
        net = Network.feedforward([20, 16, 4], rule=lambda: STDP(0.02, 0.01, 15.3, 21.7, learn=False),
                                  recurrent=True, lif={"du": 0.6, "dv": 0.2, "vth": 0.5},
                                  linear={"weight_scale": 3.0, "alpha": "none"})

        def spikes(n: int) -> torch.Tensor:
            return (torch.rand(n, 1, 20, generator=gen) < 0.2).to(net.dtype)

        return net, spikes
    raise ValueError(f"unknown long-episode network {kind!r}")


def long_episode(kind: str, steps: int, chunk: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Run ``kind`` for ``steps`` steps (no grad), checking finiteness after every chunk."""
    import torch

    net, inputs = _long_net(kind, seed)
    t0 = time.perf_counter()
    state = net.initial_state(1)
    spikes = 0
    max_h = max_v = 0.0
    first_bad: str | None = None
    h_trace: list[float] = []
    done = 0
    with torch.no_grad():
        while done < steps:
            n = min(chunk, steps - done)
            rec, state = net(inputs(n), state, record=("spikes", "voltages"))
            done += n
            spikes += int(sum(s.sum() for s in rec.spikes.values()))
            tensors = {f"voltages[{k}]": v for k, v in rec.voltages.items()}
            for k, ls in state.neurons.items():
                tensors.update({f"{k}.u": ls.u, f"{k}.v": ls.v, f"{k}.s": ls.s})
            for k, syn in state.synapses.items():
                layer = net.projs[k]
                if syn.H is not None:
                    tensors[f"{k}.H"] = syn.H
                    tensors[f"{k}.W"] = layer.effective_weight(syn)
                if syn.E is not None:
                    tensors[f"{k}.E"] = syn.E
                for i, t in enumerate(syn.rule if isinstance(syn.rule, tuple) else ()):
                    tensors[f"{k}.rule[{i}]"] = t
            bad = [k for k, t in tensors.items() if not bool(torch.isfinite(t).all())]
            if bad and first_bad is None:
                first_bad = f"step <= {done}: {bad}"
            hs = [float(syn.H.abs().max()) for syn in state.synapses.values() if syn.H is not None]
            max_h = max([max_h, *hs])
            h_trace.append(max(hs, default=0.0))
            max_v = max(max_v, max(float(v.abs().max()) for v in rec.voltages.values()))
            if first_bad is not None:
                break
    cells = done * sum(p.n for p in net.pops.values())
    return {"net": kind, "steps": done, "target_steps": steps, "finite": first_bad is None, "first_bad": first_bad,
            "spikes": spikes, "spike_fraction": spikes / cells, "max_abs_H": max_h, "final_abs_H": h_trace[-1],
            "max_abs_v": max_v, "seconds": time.perf_counter() - t0,
            "neurons": sum(p.n for p in net.pops.values()), "checks": len(h_trace)}


def long_part(sizes: Sizes, seed: int = 0) -> dict[str, Any]:
    return {"runs": [long_episode(k, sizes.long_steps, seed=seed) for k in sizes.long_nets]}


def report_long(r: dict[str, Any]) -> list[str]:
    return [f"{x['steps']:,}-step episode, {x['net']} ({x['neurons']} LIF neurons): finite "
            f"{'yes' if x['finite'] else 'NO (' + str(x['first_bad']) + ')'} ({x['checks']} checks of every state "
            f"tensor, voltage and effective weight); {x['spikes']:,} spikes ({100 * x['spike_fraction']:.1f}% of "
            f"neuron-steps); max |H| {x['max_abs_H']:.4g} (at the end {x['final_abs_H']:.4g}); max |v| "
            f"{x['max_abs_v']:.4g}; {x['seconds']:.0f} s" for x in r["runs"]]


# ---- goals and the driver -----------------------------------------------------------------------

def goals(results: dict[str, dict[str, Any]], sizes: Sizes) -> list[tuple[str, bool]]:
    """``(goal, met)`` for every part that ran."""
    out = []
    if "bad" in results:
        r = results["bad"]
        out.append((f"every bad input gets a clear error ({r['clear']}/{r['ran']})", r["clear"] == r["ran"]))
    if "cycles" in results:
        r = results["cycles"]
        n = r["cycles"]
        if n - r["warmup"] >= 20:  # a slope over a handful of cycles is noise: only printed then
            out.append((f"RSS growth < 0.1 MiB/cycle ({r['slope_mib']:+.4f})", r["slope_mib"] < 0.1))
        out.append((f"0 leftover child processes ({sum(r['leftover'])} over {n} cycles)", sum(r["leftover"]) == 0))
        out.append((f"every verify ok ({sum(r['ok'])}/{n})", all(r["ok"])))
        out.append((f"no vacuous verify: spikes on both sides and weight change ({n - r['vacuous']}/{n})",
                    r["vacuous"] == 0))
    for part in ("sigint-train", "sigint-verify"):
        if part in results:
            s = sigint_summary(results[part])
            out.append((f"{part}: every signalled run exits ({s['hung']} hung of {s['signalled']}), non-zero when "
                         f"signalled before its final output ({s['nonzero']}/{s['judged']})",
                         s["hung"] == 0 and s["nonzero"] == s["judged"]))
            out.append((f"{part}: no leftover process ({s['leftovers']}/{s['trials']} trials left one)",
                        s["leftovers"] == 0))
            if s["judged"] >= JUDGE_CLEAN_FROM:
                out.append((f"{part}: every run signalled before its final output ended as interrupted, none ran "
                            f"on ({s['interrupted']}/{s['judged']})", s["interrupted"] == s["judged"]))
            if part == "sigint-train":
                out.append((f"{part}: completed runs identical to the uninterrupted one ({s['identical']}/"
                             f"{s['trials']})", s["identical"] == s["trials"]))
    if "long" in results:
        for x in results["long"]["runs"]:
            out.append((f"{x['net']}: {x['steps']:,} steps finite", x["finite"] and x["steps"] == x["target_steps"]))
    return out


PARTS = ("bad", "cycles", "sigint-train", "sigint-verify", "long")


def run_part(part: str, sizes: Sizes, root: Path, seed: int = 0) -> tuple[dict[str, Any], list[str]]:
    """Run one part; returns its results and the lines it prints."""
    if part == "bad":
        r = bad_inputs_part(root / "bad")
        return r, report_bad(r)
    if part == "cycles":
        r = cycles_part(sizes, seed)
        return r, report_cycles(r)
    if part == "sigint-train":
        r = sigint_train_part(sizes, root, seed)
        return r, report_sigint(r)
    if part == "sigint-verify":
        ref = root / "train-ref"
        r = sigint_verify_part(sizes, root, seed, ckpt=ref if (ref / "checkpoint.pt").is_file() else None)
        return r, report_sigint(r)
    if part == "long":
        r = long_part(sizes, seed)
        return r, report_long(r)
    raise ValueError(f"unknown part {part!r}; expected one of {PARTS}")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="CI sizes")
    ap.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, from {','.join(PARTS)}")
    ap.add_argument("--cycles", type=int, help="export+verify cycles (part 2)")
    ap.add_argument("--trials", type=int, help="SIGINT trials per command (part 3)")
    ap.add_argument("--steps", type=int, help="steps of the long episode (part 4)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="write every figure to this file")
    ap.add_argument("--workdir", help="scratch folder (default: a temporary one, removed at the end)")
    ap.add_argument("--worker", nargs=2, metavar=("KIND", "CONFIG_JSON"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        from _mem import serve_worker

        serve_worker(args.worker, {"cycles": run_cycles})
        return 0
    sizes = QUICK if args.quick else FULL
    over: dict[str, Any] = {}
    if args.cycles is not None:
        over.update(cycles=args.cycles)
    if args.trials is not None:
        over.update(train_trials=args.trials, verify_trials=args.trials)
    if args.steps is not None:
        over.update(long_steps=args.steps)
    if over:
        from dataclasses import replace

        sizes = replace(sizes, **over)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    for p in parts:
        if p not in PARTS:
            ap.error(f"--parts: unknown part {p!r}; expected some of {','.join(PARTS)}")
    tmp = None if args.workdir else tempfile.mkdtemp(prefix="spikeplastic-reliability-")
    root = Path(args.workdir or tmp)  # type: ignore[arg-type]
    root.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, Any]] = {}
    t0 = time.perf_counter()
    print(f"reliability campaign ({'quick' if args.quick else 'full'}): {sizes}", flush=True)
    try:
        for i, p in enumerate(parts, 1):
            t = time.perf_counter()
            print(f"\n[{i}/{len(parts)}] {p}", flush=True)
            results[p], lines = run_part(p, sizes, root, args.seed)
            print("\n".join(lines), flush=True)
            print(f"  ({time.perf_counter() - t:.0f} s)", flush=True)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    met = goals(results, sizes)
    print(f"\ngoals ({time.perf_counter() - t0:.0f} s in all):")
    for g, ok in met:
        print(f"  {'met   ' if ok else 'MISSED'} {g}")
    if args.json:
        Path(args.json).write_text(json.dumps({"sizes": asdict(sizes), "results": results,
                                               "goals": met}, indent=1, default=str))
    return 0 if all(ok for _, ok in met) else 1


if __name__ == "__main__":
    sys.exit(main())

"""A catalogue of bad inputs (API and CLI) and the clear error each must produce, before any work.

Each :class:`BadInput` says what to run and what must come out:

- ``kind="api"``: ``run(ws)`` must raise ``expect`` (an exception type) whose message is one line
  containing ``match``; ``expect=None``: an input that is now *accepted* (``run`` checks the result);
- ``kind="cli"``: ``run(ws)`` returns the argv of ``spikeplastic`` (:func:`spikeplastic.cli.main`,
  in this process); the exit code must be ``expect`` and the last ``spikeplastic <command>`` line
  of stderr must contain ``match``;
- never a traceback, never torch's advice to load with ``weights_only=False``;
- ``after(ws)``, when given, checks that nothing was lost (a run's bytes unchanged, the last good
  checkpoint still loadable); ``patch`` makes a run misbehave on purpose (a NaN loss, an
  optimiser step that overflows); ``needs`` names a module without which the case is skipped.

``ws`` is a :class:`Workspace`: a scratch folder holding a tiny trained run, unreadable
checkpoints and IR files, and a plain file where a folder is expected. Used by
``tests/reliability/test_reliability_bad_inputs.py`` (CI) and reusable by a reliability campaign::

    from bad_inputs import CASES, run_all
    results = run_all(Path("scratch"))        # [(case, outcome)]; outcome.ok, outcome.detail
"""
from __future__ import annotations

import collections
import contextlib
import importlib.util
import io
import math
import re
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ContextManager, Literal

import torch

NAN, INF = math.nan, math.inf
TINY_TASK_KW = {"n_bits": 8, "n_patterns": 2, "cycles": 1}
TINY = ["--task", "pattern", "--task-kw", "n_bits=8", "--task-kw", "n_patterns=2", "--task-kw", "cycles=1",
        "--no-progress"]
RUN_FILES = ("checkpoint.pt", "metrics.jsonl")


# ---- the workspace ---------------------------------------------------------------------------------

class _Obj:
    """Not a tensor or plain data: loading it would need code from the file."""


@dataclass
class Workspace:
    """Files the cases read: ``run`` (a trained tiny snn-stdp run; ``compare`` holds a copy as a
    comparison's ``runs/rnn/seed0``), ``ckpt[kind]`` (unreadable
    checkpoints, each ``checkpoint.pt`` in its own folder), ``ir_file[kind]`` (unreadable IR
    files), ``file`` (a plain file), ``snapshot`` (the run's bytes when prepared)."""

    root: Path
    run: Path = field(init=False)
    compare: Path = field(init=False)
    file: Path = field(init=False)
    ckpt: dict[str, Path] = field(default_factory=dict)
    ir_file: dict[str, Path] = field(default_factory=dict)
    snapshot: dict[str, bytes] = field(default_factory=dict)
    _n: int = 0

    def fresh(self, name: str) -> Path:
        """A new, not yet existing path under the workspace."""
        self._n += 1
        return self.root / "fresh" / f"{self._n:03d}-{re.sub(r'[^A-Za-z0-9]+', '-', name)}"

    def run_unchanged(self) -> None:
        now = {f: (self.run / f).read_bytes() for f in RUN_FILES}
        assert now == self.snapshot, "the run's checkpoint.pt / metrics.jsonl changed"

    def compare_unchanged(self) -> None:
        now = {f: (self.compare / "runs" / "rnn" / "seed0" / f).read_bytes() for f in RUN_FILES}
        assert now == self.snapshot, "the comparison's run files changed"


def prepare(root: Path) -> Workspace:
    """Build the workspace under ``root`` (a tiny training run: about a second)."""
    from spikeplastic import Network, ir
    from spikeplastic.meta import TrainConfig, train

    ws = Workspace(root)
    root.mkdir(parents=True, exist_ok=True)
    ws.run = root / "run"
    train(TrainConfig(task="pattern", model="snn-stdp", episodes=2, batch=2, progress=False,
                      task_kwargs=TINY_TASK_KW, out=str(ws.run)))
    ws.snapshot = {f: (ws.run / f).read_bytes() for f in RUN_FILES}
    ws.compare = root / "cmp"
    held = ws.compare / "runs" / "rnn" / "seed0"
    held.mkdir(parents=True)
    for f, data in ws.snapshot.items():
        (held / f).write_bytes(data)
    ws.file = root / "a-file"
    ws.file.write_text("a file, not a folder\n")
    good = (ws.run / "checkpoint.pt").read_bytes()
    contents: dict[str, bytes | None] = {"empty": b"", "truncated": good[: len(good) // 2],
                                         "text": b"not a checkpoint\n", "pickled objects": None, "zip": None}
    for kind, data in contents.items():
        p = root / "ckpt" / kind.replace(" ", "-") / "checkpoint.pt"
        p.parent.mkdir(parents=True)
        if kind == "pickled objects":
            torch.save({"a": collections.OrderedDict(), "obj": _Obj()}, p)
        elif kind == "zip":
            with zipfile.ZipFile(p, "w") as zf:
                zf.writestr("readme.txt", "hello")
        else:
            assert data is not None
            p.write_bytes(data)
        ws.ckpt[kind] = p
    net_file = root / "ir" / "net.npz"
    net_file.parent.mkdir()
    ir.save(Network.feedforward([3, 2], rule="stdp").to_ir(), net_file)
    raw = net_file.read_bytes()
    for kind, data in {"empty": b"", "truncated": raw[: len(raw) // 2], "text": b"hello\n"}.items():
        p = root / "ir" / f"{kind}.npz"
        p.write_bytes(data)
        ws.ir_file[kind] = p
    return ws


# ---- the cases -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BadInput:
    """One bad input and the clear error it must produce (module docstring)."""

    name: str
    kind: Literal["api", "cli"]
    run: Callable[[Workspace], Any]
    expect: type[BaseException] | int | None
    match: str
    after: Callable[[Workspace], None] | None = None
    patch: Callable[[], ContextManager[Any]] | None = None
    needs: str | None = None


def _net() -> Any:
    from spikeplastic import LIF, Network, PlasticLinear

    return Network(3, {"a": LIF(2)}, [("in", "a", PlasticLinear(3, 2, rule="stdp"))])


def _mod_net() -> Any:
    from spikeplastic import LIF, Network, Neuromodulation, PlasticLinear

    return Network(3, {"a": LIF(2)}, [("in", "a", PlasticLinear(
        3, 2, rule="stdp", modulation=Neuromodulation("simple", None)))])


def _second_step(third: torch.Tensor) -> Any:
    net = _mod_net()
    _, st = net.step(torch.zeros(2, 3), net.initial_state(2), torch.zeros(2))
    return net.step(torch.zeros(2, 3), st, third)


def _model(model: str = "snn-stdp", **kw: Any) -> Any:
    from spikeplastic.models import make_model
    from spikeplastic.tasks import make_task

    return make_model(model, make_task("pattern", **TINY_TASK_KW), **kw)


def _cfg(ws: Workspace, out: Path | str | None, **kw: Any) -> Any:
    from spikeplastic.meta import TrainConfig

    d: dict[str, Any] = dict(task="pattern", model="rnn", episodes=2, batch=2, progress=False,
                             task_kwargs=TINY_TASK_KW, model_kwargs={"n_hidden": 8},
                             out=None if out is None else str(out))
    d.update(kw)
    return TrainConfig(**d)


def _train(ws: Workspace, out: Path | str | None, **kw: Any) -> Any:
    from spikeplastic.meta import train

    return train(_cfg(ws, out, **kw))


@contextlib.contextmanager
def _nan_loss() -> Iterator[None]:
    """Every pattern-task loss is NaN (every optimiser step is skipped)."""
    from spikeplastic.tasks.pattern import PatternTask

    real = PatternTask.loss
    PatternTask.loss = lambda self, o, e: real(self, o, e) * math.nan  # type: ignore[method-assign]
    try:
        yield
    finally:
        PatternTask.loss = real  # type: ignore[method-assign]


@contextlib.contextmanager
def _overflowing_adam(at: int = 3) -> Iterator[None]:
    """Adam's ``at``-th step leaves an inf in the first parameter."""
    real = torch.optim.Adam.step
    calls = [0]

    def step(self: torch.optim.Adam, closure: Any = None) -> Any:
        out = real(self, closure)
        calls[0] += 1
        if calls[0] == at:
            with torch.no_grad():
                self.param_groups[0]["params"][0].fill_(math.inf)
        return out

    torch.optim.Adam.step = step  # type: ignore[method-assign]
    try:
        yield
    finally:
        torch.optim.Adam.step = real  # type: ignore[method-assign]


def _last_good_checkpoint_kept(folder_of: Callable[[Workspace], Path], episode: int) -> Callable[[Workspace], None]:
    def check(ws: Workspace) -> None:
        from spikeplastic.meta import load_checkpoint

        ck = load_checkpoint(folder_of(ws))
        assert ck["episode"] == episode, f"checkpoint at episode {ck['episode']}, expected {episode}"
        assert all(bool(torch.isfinite(v).all()) for v in ck["model_state"].values()), "non-finite checkpoint"

    return check


def _record_string(ws: Workspace) -> None:
    rec, _ = _net()(torch.zeros(4, 2, 3), record="voltages")
    assert rec.voltages is not None and rec.voltages["a"].shape == (4, 2, 2)


def _api() -> list[BadInput]:
    from spikeplastic import LIF, STDP, Hebb, Network, Neuromodulation, Oja, PlasticLinear, ir
    from spikeplastic.meta import CheckpointError, TrainConfig, TrainingError, evaluate, load_checkpoint

    net = _net()
    A = "api"
    cases = [
        # construction: values (first block: accepted silently or with a misleading error before)
        BadInput("evaluate episodes=0", A, lambda ws: evaluate(ws.run, episodes=0), ValueError, "episodes"),
        BadInput("LIF bias=nan", A, lambda ws: LIF(2, bias=NAN), ValueError, "bias"),
        BadInput("LIF bias=inf", A, lambda ws: LIF(2, bias=INF), ValueError, "bias"),
        BadInput("PlasticLinear alpha_init=nan", A, lambda ws: PlasticLinear(3, 2, rule="stdp", alpha_init=NAN),
                 ValueError, "alpha_init"),
        BadInput("PlasticLinear alpha_init='nan' (a string)", A,
                 lambda ws: PlasticLinear(3, 2, rule="stdp", alpha_init="nan"), TypeError, "alpha_init"),
        BadInput("PlasticLinear weight with NaN", A, lambda ws: PlasticLinear(3, 2, weight=torch.full((2, 3), NAN)),
                 ValueError, "weight"),
        BadInput("PlasticLinear weight_scale=nan", A, lambda ws: PlasticLinear(3, 2, weight_scale=NAN), ValueError,
                 "weight_scale"),
        BadInput("STDP learnable a_plus=0", A, lambda ws: STDP(a_plus=0.0), ValueError, "a_plus"),
        BadInput("STDP learnable a_minus=0", A, lambda ws: STDP(a_minus=0.0), ValueError, "a_minus"),
        BadInput("Hebb learnable eta=0", A, lambda ws: Hebb(0.0), ValueError, "eta"),
        BadInput("Oja learnable eta=1", A, lambda ws: Oja(1.0), ValueError, "eta"),
        BadInput("Neuromodulation learnable eta_e=0", A, lambda ws: Neuromodulation("retroactive", eta_e=0.0),
                 ValueError, "eta_e"),
        BadInput("PlasticLinear learnable decay=0", A,
                 lambda ws: PlasticLinear(3, 2, rule="stdp", decay=0.0, learn_decay=True), ValueError, "decay"),
        BadInput("SpikingModel input_gain=nan", A, lambda ws: _model(input_gain=NAN), ValueError, "input_gain"),
        BadInput("SpikingModel input_gain=inf", A, lambda ws: _model(input_gain=INF), ValueError, "input_gain"),
        # construction: values that were already refused clearly
        BadInput("STDP tau_plus=0", A, lambda ws: STDP(tau_plus=0.0), ValueError, "tau_plus"),
        BadInput("STDP a_plus<0", A, lambda ws: STDP(a_plus=-0.1), ValueError, "a_plus"),
        BadInput("LIF vth=0", A, lambda ws: LIF(2, vth=0.0), ValueError, "vth"),
        BadInput("LIF du>1", A, lambda ws: LIF(2, du=1.5), ValueError, "du"),
        BadInput("LIF n=0", A, lambda ws: LIF(0), ValueError, "n"),
        BadInput("PlasticLinear rule name", A, lambda ws: PlasticLinear(3, 2, rule="bcm"), ValueError, "rule"),
        BadInput("PlasticLinear decay>1", A, lambda ws: PlasticLinear(3, 2, rule="stdp", decay=1.5), ValueError,
                 "decay"),
        BadInput("Network size mismatch", A,
                 lambda ws: Network(3, {"a": LIF(2)}, [("in", "a", PlasticLinear(4, 2))]), ValueError, "in->a"),
        # running
        BadInput("step: state of another batch size", A, lambda ws: net.step(torch.zeros(1, 3), net.initial_state(3)),
                 ValueError, "state"),
        BadInput("forward: state of another batch size", A,
                 lambda ws: net(torch.zeros(4, 1, 3), net.initial_state(3)), ValueError, "state"),
        BadInput("model forward: state of another batch size", A,
                 lambda ws: _model()(torch.zeros(3, 1, 8), _model().initial_state(3)), ValueError, "state"),
        BadInput("rnn forward: state of another batch size", A,
                 lambda ws: _model("rnn")(torch.zeros(3, 1, 8), _model("rnn").initial_state(3)), ValueError, "state"),
        BadInput("step: NaN third factor", A, lambda ws: _second_step(torch.full((2,), NAN)), ValueError,
                 "third_factor"),
        BadInput("step: third factor of the wrong shape", A, lambda ws: _second_step(torch.zeros(5)), ValueError,
                 "third_factor"),
        BadInput("forward: third factor with a wrong last dimension", A,
                 lambda ws: _mod_net()(torch.zeros(4, 2, 3), third_factor=torch.zeros(4, 2, 7)), ValueError,
                 "third_factor"),
        BadInput("forward: third factor for a network without modulation", A,
                 lambda ws: net(torch.zeros(4, 2, 3), third_factor=torch.zeros(4, 2)), ValueError, "third_factor"),
        BadInput("forward: T=0", A, lambda ws: net(torch.zeros(0, 2, 3)), ValueError, "x"),
        BadInput("model forward: T=0", A, lambda ws: _model()(torch.zeros(0, 2, 8)), ValueError, "inputs"),
        BadInput("forward: record='voltages' as one string (accepted)", A, _record_string, None, ""),
        BadInput("forward: input of the wrong size", A, lambda ws: net(torch.zeros(4, 2, 5)), ValueError, "x"),
        BadInput("forward: non-spike input", A, lambda ws: net(torch.full((4, 2, 3), 0.5)), ValueError, "x"),
        BadInput("forward: NaN input", A, lambda ws: net(torch.full((4, 2, 3), NAN)), ValueError, "x"),
        BadInput("forward: unknown record entry", A, lambda ws: net(torch.zeros(4, 2, 3), record=("spikes", "grads")),
                 ValueError, "record"),
        # files
        *[BadInput(f"ir.load of a file: {k}", A,
                   (lambda k: lambda ws: ir.load(ws.ir_file[k]))(k), ValueError, "IR file")
          for k in ("empty", "truncated", "text")],
        BadInput("ir.load of a missing file", A, lambda ws: ir.load(ws.root / "nope.npz"), FileNotFoundError,
                 "no IR file"),
        *[BadInput(f"load_checkpoint of a file: {k}", A, (lambda k: lambda ws: load_checkpoint(ws.ckpt[k]))(k),
                   CheckpointError, "cannot be read")
          for k in ("empty", "truncated", "text", "pickled objects", "zip")],
        # training
        BadInput("train into a folder holding a run", A,
                 lambda ws: _train(ws, ws.run, model="snn-stdp", model_kwargs={}),
                 FileExistsError, "overwrite=True", after=Workspace.run_unchanged),
        BadInput("train with out= a file", A, lambda ws: _train(ws, ws.file), ValueError, "out"),
        BadInput("TrainConfig lr=3e38", A, lambda ws: TrainConfig(task="pattern", model="rnn", lr=3e38), ValueError,
                 "lr"),
        BadInput("TrainConfig lr=nan", A, lambda ws: TrainConfig(task="pattern", model="rnn", lr=NAN), ValueError,
                 "lr"),
        BadInput("train: every step skipped as NaN", A, lambda ws: _train(ws, ws.fresh("skipped")), TrainingError,
                 "skipped", patch=_nan_loss),
        BadInput("train: a parameter becomes inf", A,
                 lambda ws: _train(ws, ws.root / "nonfinite-api", episodes=6, checkpoint_every=2),
                 TrainingError, "became NaN/inf", patch=_overflowing_adam,
                 after=_last_good_checkpoint_kept(lambda ws: ws.root / "nonfinite-api", 2)),
    ]
    return cases


def _cli() -> list[BadInput]:
    C = "cli"
    rnn = ["--model", "rnn", "--model-kw", "n_hidden=8", "--episodes", "2"]
    snn = ["--model", "snn-stdp", "--episodes", "1"]
    cases = [
        BadInput("train into a folder holding a run, no --resume/--overwrite", C,
                 lambda ws: ["train", *TINY, *snn, "--out", str(ws.run)], 2, "--overwrite",
                 after=Workspace.run_unchanged),
        BadInput("train --resume --overwrite", C,
                 lambda ws: ["train", *TINY, *snn, "--out", str(ws.run), "--resume", "--overwrite"], 2,
                 "--overwrite", after=Workspace.run_unchanged),
        *[BadInput(f"train --resume from an unreadable checkpoint: {k}", C,
                   (lambda k: lambda ws: ["train", *TINY, *rnn, "--out", str(ws.ckpt[k].parent), "--resume"])(k),
                   2, "cannot be read")
          for k in ("empty", "truncated", "text", "pickled objects")],
        BadInput("train --resume without a checkpoint", C,
                 lambda ws: ["train", *TINY, *rnn, "--out", str(ws.fresh("none")), "--resume"], 2, "--resume"),
        BadInput("train --out a file", C, lambda ws: ["train", *TINY, *rnn, "--out", str(ws.file)], 2, "--out"),
        BadInput("train --lr 3e38", C, lambda ws: ["train", *TINY, *rnn, "--lr", "3e38"], 2, "--lr"),
        BadInput("train --lr nan", C, lambda ws: ["train", *TINY, *rnn, "--lr", "nan"], 2, "--lr"),
        BadInput("train --model-kw alpha_init=nan", C,
                 lambda ws: ["train", *TINY, *snn, "--out", str(ws.fresh("a")), "--model-kw", "alpha_init=nan"],
                 2, "alpha_init"),
        BadInput("train --model-kw input_gain=inf", C,
                 lambda ws: ["train", *TINY, *snn, "--out", str(ws.fresh("g")), "--model-kw", "input_gain=inf"],
                 2, "input_gain"),
        BadInput("train --model-kw stdp={'a_plus': 0.0} (learnable 0)", C,
                 lambda ws: ["train", *TINY, *snn, "--out", str(ws.fresh("s")), "--model-kw", "stdp={'a_plus': 0.0}"],
                 2, "a_plus"),
        BadInput("train --episodes 0", C, lambda ws: ["train", *TINY, "--model", "rnn", "--episodes", "0"], 2,
                 "--episodes"),
        BadInput("train --task unknown", C, lambda ws: ["train", "--task", "nope", "--model", "rnn"], 2, "--task"),
        BadInput("train --model unknown", C, lambda ws: ["train", *TINY, "--model", "nope"], 2, "--model"),
        BadInput("train --task-kw without =", C, lambda ws: ["train", *TINY, "--model", "rnn", "--task-kw", "oops"], 2,
                 "--task-kw"),
        BadInput("train --task-kw unknown key", C,
                 lambda ws: ["train", *TINY, "--model", "rnn", "--task-kw", "n_bitz=3"], 2, "n_bitz"),
        BadInput("train: every step skipped as NaN", C,
                 lambda ws: ["train", *TINY, *rnn, "--out", str(ws.fresh("skip"))], 1, "skipped", patch=_nan_loss),
        BadInput("train: a parameter becomes inf", C,
                 lambda ws: ["train", *TINY, *rnn[:-1], "6", "--checkpoint-every", "2",
                             "--out", str(ws.root / "nonfinite-cli")], 1, "became NaN/inf",
                 patch=_overflowing_adam, after=_last_good_checkpoint_kept(lambda ws: ws.root / "nonfinite-cli", 2)),
        BadInput("compare into folders holding runs", C,
                 lambda ws: ["compare", *TINY, "--models", "rnn", "--seeds", "1", "--out", str(ws.compare)],
                 2, "--overwrite", after=Workspace.compare_unchanged),
        BadInput("compare --out a file", C, lambda ws: ["compare", *TINY, "--models", "rnn", "--out", str(ws.file)], 2,
                 "--out"),
        BadInput("compare --models with an unknown id", C,
                 lambda ws: ["compare", *TINY, "--models", "rnn,zzz", "--out", str(ws.fresh("c"))], 2, "zzz"),
        BadInput("evaluate a missing run", C, lambda ws: ["evaluate", str(ws.root / "nope")], 2, "RUN"),
        BadInput("evaluate a folder without checkpoint.pt", C, lambda ws: ["evaluate", str(ws.root)], 2,
                 "holds no checkpoint.pt"),
        BadInput("evaluate a truncated checkpoint", C, lambda ws: ["evaluate", str(ws.ckpt["truncated"])], 2,
                 "truncated"),
        BadInput("evaluate --episodes 0", C, lambda ws: ["evaluate", str(ws.run), "--episodes", "0"], 2, "--episodes"),
        BadInput("evaluate --out a folder", C, lambda ws: ["evaluate", str(ws.run), "--out", str(ws.root)], 2, "--out",
                 after=Workspace.run_unchanged),
        BadInput("plot a truncated checkpoint", C, lambda ws: ["plot", str(ws.ckpt["truncated"])], 2, "truncated"),
        BadInput("plot a missing checkpoint", C, lambda ws: ["plot", str(ws.root / "nope.pt")], 2, "CKPT"),
        BadInput("plot --out a folder", C, lambda ws: ["plot", str(ws.run), "--out", str(ws.root)], 2, "--out"),
        BadInput("export an empty checkpoint", C,
                 lambda ws: ["export", str(ws.ckpt["empty"]), "--out", str(ws.fresh("e"))], 2, "empty",
                 needs="spikeplastic.export.cli_commands"),
        BadInput("export --out a file", C, lambda ws: ["export", str(ws.run), "--out", str(ws.file)], 2, "--out",
                 needs="spikeplastic.export.cli_commands"),
        BadInput("verify a text file", C, lambda ws: ["verify", str(ws.ckpt["text"])], 2, "not a torch file",
                 needs="spikeplastic.export.cli_commands"),
        BadInput("verify a pickled-object file", C, lambda ws: ["verify", str(ws.ckpt["pickled objects"])], 2,
                 "Python objects", needs="spikeplastic.export.cli_commands"),
    ]
    return cases


def cases() -> list[BadInput]:
    """Every catalogued bad input (built on call: the package is imported lazily)."""
    return _api() + _cli()


# ---- running them ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Outcome:
    """What a case produced: ``ok`` (a clear error as specified), ``skipped`` (``needs`` missing)."""

    ok: bool
    detail: str
    skipped: bool = False


def _clear(msg: str) -> str | None:
    """Why ``msg`` is not a clear error message (``None`` when it is)."""
    if "Traceback" in msg:
        return "a traceback"
    if "weights_only" in msg:
        return "torch's weights_only advice"
    return None


def check(case: BadInput, ws: Workspace) -> Outcome:
    """Run ``case`` in this process and judge it (module docstring)."""
    from spikeplastic.cli import main

    if case.needs is not None:
        try:
            found = importlib.util.find_spec(case.needs) is not None
        except ImportError:
            found = False
        if not found:
            return Outcome(False, f"skipped: {case.needs} not importable", skipped=True)
    patch = case.patch() if case.patch is not None else contextlib.nullcontext()
    with patch:
        if case.kind == "api":
            try:
                case.run(ws)
            except BaseException as e:  # noqa: BLE001 - judging what came out
                msg = str(e)
                if case.expect is None or not (isinstance(case.expect, type) and isinstance(e, case.expect)):
                    return Outcome(False, f"raised {type(e).__name__}: {msg.splitlines()[0] if msg else ''}")
                why = _clear(msg) or ("a message over several lines" if "\n" in msg else None)
                if why is not None:
                    return Outcome(False, f"{type(e).__name__} with {why}: {msg[:300]}")
                if case.match not in msg:
                    return Outcome(False, f"{type(e).__name__} without {case.match!r}: {msg}")
                detail = f"{type(e).__name__}: {msg}"
            else:
                if case.expect is not None:
                    return Outcome(False, f"no error (expected {getattr(case.expect, '__name__', case.expect)})")
                detail = "accepted"
        else:
            argv = case.run(ws)
            err = io.StringIO()
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                try:
                    rc = main(argv)
                except BaseException as e:  # noqa: BLE001
                    return Outcome(False, f"main() raised {type(e).__name__}: {e}")
            text = err.getvalue()
            lines = [s for s in text.splitlines() if s.startswith(f"spikeplastic {argv[0]}")]
            if rc != case.expect:
                return Outcome(False, f"exit {rc} (expected {case.expect}): {text[-400:]}")
            why = _clear(text) or (None if lines else "no 'spikeplastic <command>' message line")
            if why is not None:
                return Outcome(False, f"exit {rc} with {why}: {text[-400:]}")
            if case.match not in lines[-1]:
                return Outcome(False, f"exit {rc}; message without {case.match!r}: {lines[-1]}")
            detail = f"exit {rc}: {lines[-1]}"
    if case.after is not None:
        try:
            case.after(ws)
        except AssertionError as e:
            return Outcome(False, f"{detail}; but: {e}")
    return Outcome(True, detail)


def run_all(root: Path, selected: list[BadInput] | None = None) -> list[tuple[BadInput, Outcome]]:
    """Prepare a workspace under ``root`` and judge every case (or ``selected``)."""
    ws = prepare(root)
    return [(c, check(c, ws)) for c in (cases() if selected is None else selected)]


def summary(results: list[tuple[BadInput, Outcome]]) -> str:
    """``"N/M bad inputs got a clear error"`` over the cases that ran (skipped ones noted)."""
    ran = [o for _, o in results if not o.skipped]
    n_ok = sum(o.ok for o in ran)
    skipped = len(results) - len(ran)
    return f"{n_ok}/{len(ran)} bad inputs got a clear error" + (f" ({skipped} skipped)" if skipped else "")


if __name__ == "__main__":
    import sys
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        res = run_all(Path(tmp))
    for c, o in res:
        print(f"{'ok  ' if o.ok else ('skip' if o.skipped else 'FAIL')} [{c.kind}] {c.name}: {o.detail[:160]}")
    print(summary(res))
    sys.exit(0 if all(o.ok or o.skipped for _, o in res) else 1)

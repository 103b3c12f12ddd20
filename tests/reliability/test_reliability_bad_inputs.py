"""The bad-input catalogue (``bad_inputs.py``): every case gets a clear error before any work, and
nothing is lost. Prints ``N/N bad inputs got a clear error``."""
from __future__ import annotations

from pathlib import Path

import pytest

from bad_inputs import BadInput, Outcome, Workspace, cases, check, run_all, summary


def test_every_bad_input_gets_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = run_all(tmp_path)
    line = summary(results)
    with capsys.disabled():
        print(f"\n{line}")
    bad = [f"[{c.kind}] {c.name}: {o.detail}" for c, o in results if not (o.ok or o.skipped)]
    assert not bad, "\n".join(bad)
    assert len([o for _, o in results if not o.skipped]) >= 60, line


def test_catalogue_names_are_unique() -> None:
    names = [(c.kind, c.name) for c in cases()]
    assert len(names) == len(set(names))


def test_the_judge_can_fail(tmp_path: Path) -> None:
    # a case whose expectation is wrong must be judged a failure, in each way it can be wrong
    ws = Workspace(tmp_path)
    wrong_type = BadInput("x", "api", lambda ws: int("x"), TypeError, "x")
    no_error = BadInput("x", "api", lambda ws: None, ValueError, "x")
    wrong_text = BadInput("x", "api", lambda ws: int("x"), ValueError, "no such text")
    multi_line = BadInput("x", "api", lambda ws: (_ for _ in ()).throw(ValueError("a\nb")), ValueError, "a")
    wrong_exit = BadInput("x", "cli", lambda ws: ["list"], 2, "")
    for case in (wrong_type, no_error, wrong_text, multi_line, wrong_exit):
        out = check(case, ws)
        assert isinstance(out, Outcome) and not out.ok, case

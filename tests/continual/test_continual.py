"""Continual benchmark (issue 14): EWC's penalty and Fisher, the metrics, forgetting, bad inputs, the CLI."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch.testing import assert_close

from spikeplastic.cli import main
from spikeplastic.continual import (
    METHODS, MLP, QUICK, ContinualConfig, EWCAnchor, average_accuracy, backward_transfer, diagonal_fisher,
    ewc_penalty, forgetting, learning_accuracy, make_continual_task, mean_ci95, run_benchmark, run_method,
)
from spikeplastic.continual.run import _make_learner, count_parameters

pytest.importorskip("sklearn")


# ---- EWC --------------------------------------------------------------------------------------------------

def test_ewc_penalty_equals_hand_computation() -> None:
    params = {"a": torch.tensor([1.0, 2.0]), "b": torch.tensor([[0.5]])}
    anchors = [
        EWCAnchor({"a": torch.tensor([2.0, 0.0]), "b": torch.tensor([[4.0]])},
                  {"a": torch.tensor([0.0, 1.0]), "b": torch.tensor([[0.0]])}),
        EWCAnchor({"a": torch.tensor([1.0, 3.0]), "b": torch.tensor([[0.0]])},
                  {"a": torch.tensor([1.0, 0.0]), "b": torch.tensor([[1.0]])}),
    ]
    # task 1: 2*(1-0)^2 + 0*(2-1)^2 + 4*(0.5-0)^2 = 3;  task 2: 1*0^2 + 3*(2-0)^2 + 0 = 12;  lam/2 * 15
    assert_close(ewc_penalty(params, anchors, 10.0), torch.tensor(75.0))
    assert_close(ewc_penalty(params, anchors[:1], 2.0), torch.tensor(3.0))
    assert float(ewc_penalty(params, [], 100.0)) == 0.0


def _fisher_loop(model: torch.nn.Module, x: torch.Tensor, classes: list[int] | None) -> dict[str, torch.Tensor]:
    """Independent reference: per example, per class, one autograd call."""
    names = [n for n, p in model.named_parameters()]
    F = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    for n in range(x.shape[0]):
        logits = model(x[n:n + 1])[0]
        if classes is not None:
            logits = logits[classes]
        logp = torch.log_softmax(logits, dim=-1)
        for y in range(logp.shape[0]):
            grads = torch.autograd.grad(logp[y], list(model.parameters()), retain_graph=True)
            for name, g in zip(names, grads):
                F[name] += logp[y].exp().detach() * g ** 2
    return {k: v / x.shape[0] for k, v in F.items()}


@pytest.mark.parametrize("classes", [None, [2, 3]])
def test_diagonal_fisher_equals_per_example_loop(classes: list[int] | None) -> None:
    torch.manual_seed(0)
    model = MLP(6, 5, 4).double()
    x = torch.randn(9, 6, dtype=torch.float64)
    fast = diagonal_fisher(model, x, classes, chunk=4)       # chunks of 4, 4, 1
    ref = _fisher_loop(model, x, classes)
    assert set(fast) == set(ref)
    for k in ref:
        assert_close(fast[k], ref[k])
    assert all(float(v.sum()) > 0 for v in fast.values())


# ---- metrics ----------------------------------------------------------------------------------------------

def test_metrics_on_hand_written_matrix() -> None:
    R = [[0.80, 0.10, 0.20],
         [0.95, 0.70, 0.30],
         [0.50, 0.60, 0.90]]
    assert math.isclose(average_accuracy(R), (0.5 + 0.6 + 0.9) / 3)
    assert math.isclose(backward_transfer(R), ((0.5 - 0.8) + (0.6 - 0.7)) / 2)
    # forgetting takes the best earlier accuracy (0.95 after task 1), not R[j, j]
    assert math.isclose(forgetting(R), ((0.95 - 0.5) + (0.70 - 0.6)) / 2)
    assert math.isclose(learning_accuracy(R), (0.8 + 0.7 + 0.9) / 3)
    no_forgetting = np.triu(np.full((3, 3), 0.3), k=1) + np.tril(np.full((3, 3), 0.9))
    assert forgetting(no_forgetting) == 0.0 and backward_transfer(no_forgetting) == 0.0
    m, ci = mean_ci95([0.1, 0.2, 0.3])
    assert math.isclose(m, 0.2) and math.isclose(ci, 4.303 * 0.1 / math.sqrt(3))


# ---- the benchmark ----------------------------------------------------------------------------------------

def test_tasks_are_fixed_by_seed_and_disjoint() -> None:
    a = make_continual_task("continual-permuted-digits", 3)
    b = make_continual_task("continual-permuted-digits", 3)
    assert a.n_tasks == 5 and torch.equal(a.tasks[2].x_test, b.tasks[2].x_test)
    assert not torch.equal(a.tasks[1].x_train, a.tasks[2].x_train)      # other permutation
    s = make_continual_task("continual-digits", 0)
    assert [t.classes for t in s.tasks] == [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9)]
    assert set(s.tasks[1].y_test.tolist()) == {2, 3}


def test_parameter_budgets_match_within_10_percent() -> None:
    seq = make_continual_task("continual-permuted-digits", 0)
    cfg = ContinualConfig()
    ref = count_parameters(MLP(seq.n_in, cfg.hidden, seq.n_classes))
    for m in METHODS:
        if METHODS[m].plastic:
            n = count_parameters(_make_learner(m, seq, cfg))
            assert abs(n - ref) / ref <= 0.10, (m, n, ref)


def test_finetune_forgets_more_than_ewc_with_large_lambda() -> None:
    cfg = ContinualConfig(task="continual-permuted-digits", **dict(QUICK, lambdas=(1000.0,)))
    ft = run_method("finetune", cfg, 0)
    ewc = run_method("ewc", cfg, 0)
    # measured (torch 2.x CPU): finetune forgetting 0.225, EWC (lambda 1000) 0.035
    assert ewc["lambda"] == 1000.0
    assert ft["forgetting"] > 0.15
    assert ft["forgetting"] - ewc["forgetting"] > 0.1
    assert len(ewc["R"]) == 3 and ewc["params"] == ft["params"]


def test_bad_inputs_raise_clear_errors(tmp_path, capsys) -> None:
    with pytest.raises(ValueError, match="task: unknown continual task 'nope'.*continual-digits"):
        make_continual_task("nope")
    with pytest.raises(ValueError, match="n_tasks: 'continual-digits' has at most 5"):
        make_continual_task("continual-digits", 0, 6)
    with pytest.raises(ValueError, match="epochs"):
        ContinualConfig(epochs=0)
    with pytest.raises(ValueError, match="support: expected 'random' or 'balanced'"):
        ContinualConfig(support="stratified")
    with pytest.raises(ValueError, match="lambdas"):
        ContinualConfig(lambdas=(1.0, -2.0))
    with pytest.raises(ValueError, match="lam: expected a finite number >= 0"):
        ewc_penalty({"a": torch.zeros(1)}, [], -1.0)
    with pytest.raises(ValueError, match="shape"):
        ewc_penalty({"a": torch.zeros(2)}, [EWCAnchor({"a": torch.zeros(3)}, {"a": torch.zeros(3)})], 1.0)
    with pytest.raises(ValueError, match=r"methods: unknown continual method\(s\) \['sgd'\]"):
        run_benchmark(ContinualConfig(), ["sgd"], [0])
    with pytest.raises(ValueError, match="R: expected a square"):
        average_accuracy([[0.5, 0.5]])
    with pytest.raises(ValueError, match=r"R: expected accuracies in \[0, 1\]"):
        forgetting([[1.5, 0.0], [0.0, 1.0]])
    out = str(tmp_path / "x")
    for argv, needle in [
        (["--task", "continual-nope", "--method", "ewc"], "argument --task: unknown continual task"),
        (["--task", "continual-digits", "--method", "sgd"], "argument --method: unknown method 'sgd'"),
        (["--task", "continual-digits", "--method", "ewc", "--seeds", "x"], "argument --seeds"),
        (["--task", "continual-digits", "--method", "ewc", "--tasks", "9"], "argument --tasks"),
        (["--task", "continual-digits", "--method", "ewc", "--set", "epochs=-1"], "argument --set"),
    ]:
        assert main(["continual", *argv, "--out", out]) == 2
        assert needle in capsys.readouterr().err


def test_quick_cli_runs_and_writes_results(tmp_path, capsys) -> None:
    out = tmp_path / "cl"
    rc = main(["continual", "--task", "continual-digits", "--method", "all", "--seeds", "0", "--quick",
               "--set", "lambdas=(1, 1000)", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    res = json.loads((out / "results.json").read_text())
    assert set(res["methods"]) == set(METHODS)
    for m, v in res["methods"].items():
        (r,) = v["runs"]
        assert np.asarray(r["R"]).shape == (3, 3) and 0.0 <= r["acc"] <= 1.0 and r["params"] > 0
    assert res["methods"]["ewc"]["runs"][0]["lambda"] in (1.0, 1000.0)
    assert len(res["methods"]["ewc"]["runs"][0]["sweep"]) == 2
    md = (out / "results.md").read_text()
    assert "| ewc |" in md and "lambda sweep" in md
    # a second run into the same folder is refused unless --overwrite
    assert main(["continual", "--task", "continual-digits", "--method", "finetune", "--quick", "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_list_shows_continual_tasks_and_methods(capsys) -> None:
    assert main(["list"]) == 0
    text = capsys.readouterr().out
    assert "continual-digits" in text and "continual-permuted-digits" in text
    assert "  ewc " in text and "snn-stdp-decay" in text


def test_spiking_learner_scores_without_changing_its_state() -> None:
    from spikeplastic.continual import SpikingPlasticLearner, repeat_state
    from spikeplastic.snn_oneshot import SpikingOneShot

    with pytest.raises(ValueError, match="embedding"):
        SpikingOneShot(64, 10, embedding="mlp")
    torch.manual_seed(0)
    L = SpikingPlasticLearner(64, 10, channels=16)
    d = make_continual_task("continual-permuted-digits", 0).tasks[0]
    with torch.no_grad():
        st = L.learn(L.initial_state(1), d.x_train[:20].unsqueeze(1), d.y_train[:20].unsqueeze(1))
        H = st.net.synapses["in_to_out"].H.clone()
        assert float(H.abs().sum()) > 0                                   # the teacher made STDP write H
        many = L.logits(repeat_state(st, 5), d.x_test[:5])
        one = torch.cat([L.logits(st, d.x_test[i:i + 1]) for i in range(5)])
    assert_close(many, one)
    assert torch.equal(st.net.synapses["in_to_out"].H, H)

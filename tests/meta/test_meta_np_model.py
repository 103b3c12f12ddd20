"""The registry's node-perturbation model ``snn-np`` (issue 14): its third factor is the reward the
RL observation shows (minus a running baseline), it learns during the episode, and it meta-trains
with finite gradients reaching the rule's coefficients."""
from __future__ import annotations

import math

import pytest
import torch

from spikeplastic import NodePerturbation
from spikeplastic.meta.config import TrainConfig, recommended
from spikeplastic.meta.episodes import a2c_episode
from spikeplastic.meta.trainer import Trainer
from spikeplastic.models import MODELS, SpikingModel, make_model
from spikeplastic.protocol import RLTask
from spikeplastic.tasks import TASKS, make_task

RL_TASKS = [t for t, spec in TASKS.items() if isinstance(spec.factory, type) and issubclass(spec.factory, RLTask)]


@pytest.mark.parametrize("tid", RL_TASKS)
def test_reward_input_shows_the_previous_reward(tid: str) -> None:
    task = make_task(tid)
    assert isinstance(task.reward_input, int)
    g = torch.Generator().manual_seed(0)
    obs = task.reset(8, g)
    assert torch.all(obs[:, task.reward_input] == 0)
    seen = 0
    for t in range(min(task.T, 40)):
        obs, r = task.step(torch.randint(task.n_actions, (8,), generator=g))
        torch.testing.assert_close(obs[:, task.reward_input], r.to(obs.dtype), msg=f"{tid}, step {t}")
        seen += int((r != 0).sum())
    assert seen > 0, f"{tid}: no reward in 40 random steps; the check above was vacuous"


def test_registry_lists_snn_np() -> None:
    assert "snn-np" in MODELS and "node perturbation" in MODELS["snn-np"].description


def test_snn_np_third_factor_is_the_reward_on_rl_and_learned_elsewhere() -> None:
    cue = make_task("cue-small")
    m = make_model("snn-np", cue)
    rec = m.network.projs["hidden_to_hidden"]
    assert isinstance(m, SpikingModel) and isinstance(rec.rule, NodePerturbation)
    assert m.reward_input == cue.reward_input and rec.modulation.source is None and rec.modulation.mode == "retroactive"
    assert rec.rule.baseline and float(rec.decay()) == 0.0
    pat = make_model("snn-np", make_task("pattern50"))
    prec = pat.network.projs["hidden_to_hidden"]
    assert pat.reward_input is None and prec.modulation.source == "hidden" and not prec.rule.baseline
    gen = make_model("snn-np", cue, init="generic")
    a = gen.network.projs["hidden_to_hidden"].alpha()
    torch.testing.assert_close(a, torch.full_like(a, 1.0 / (0.02 * 0.1 * 32)))


def test_snn_np_learns_within_the_episode_from_the_reward() -> None:
    """The plastic weights move during an RL episode, and the reward is what moves them."""
    task = make_task("cue-small")
    torch.manual_seed(0)
    m = make_model("snn-np", task)
    g = torch.Generator().manual_seed(1)

    def run(scale: float) -> tuple[float, int]:
        torch.manual_seed(2)  # the same noise seeds in both runs
        obs = task.reset(4, torch.Generator().manual_seed(1))
        state = m.initial_state(4)
        spikes = 0
        with torch.no_grad():
            for _ in range(task.T):
                obs = obs.clone()
                obs[:, task.reward_input] *= scale
                out, state = m.step(obs, state)
                spikes += int(state.net.neurons["hidden"].s.sum())
                obs, _ = task.step(torch.randint(task.n_actions, (4,), generator=g))
        return float(state.net.synapses["hidden_to_hidden"].H.abs().max()), spikes

    h, spikes = run(1.0)
    h0, _ = run(0.0)
    assert spikes > 50 and h > 0, f"{spikes} hidden spikes, max |H| {h:.3g}: the check needs both"
    assert h0 < h, f"without reward max |H| = {h0:.3g}, with reward {h:.3g}"


def test_gradients_reach_the_rule_coefficients() -> None:
    task = make_task("cue-small")
    torch.manual_seed(0)
    m = make_model("snn-np", task)
    res = a2c_episode(m, task, 4, torch.Generator().manual_seed(0), torch.Generator().manual_seed(1), torch.device("cpu"))
    res.loss.backward()
    named = dict(m.named_parameters())
    for key in ("sigma.raw", "tau.raw", "eta.raw", "eta_b.raw", "alpha.raw", "eta_e.raw"):
        hits = [n for n in named if n.endswith(key)]
        assert hits, key
        g = named[hits[0]].grad
        assert g is not None and bool(torch.isfinite(g).all()) and float(g.abs().sum()) > 0, (key, g)


def test_trains_two_outer_steps_on_cue_small_deterministically() -> None:
    def two() -> tuple[list[float], dict[str, torch.Tensor]]:
        rec = recommended("cue-small")
        rec.pop("lr", None)
        rec["batch"] = 2
        tr = Trainer(TrainConfig(task="cue-small", model="snn-np", episodes=2, seed=0, progress=False, **rec))
        norms = [tr.step()["grad_norm"] for _ in range(2)]
        return norms, {k: v.detach().clone() for k, v in tr.model.state_dict().items()}

    n1, p1 = two()
    n2, p2 = two()
    assert all(math.isfinite(n) and 0 < n < 1e4 for n in n1), n1
    assert n1 == n2
    for k in p1:
        torch.testing.assert_close(p1[k], p2[k], rtol=0, atol=0, msg=k)


def test_model_errors_name_the_argument() -> None:
    with pytest.raises(ValueError, match="rule='np'.*modulation"):
        SpikingModel(4, 2, n_hidden=6, rule="np")
    with pytest.raises(ValueError, match="reward_input"):
        SpikingModel(4, 2, n_hidden=6, rule="np", modulation="retroactive", reward_input=4)
    with pytest.raises(ValueError, match="stdp"):
        SpikingModel(4, 2, n_hidden=6, rule="np", modulation="retroactive", stdp={"a_plus": 0.1})
    with pytest.raises(ValueError, match="rule"):
        SpikingModel(4, 2, n_hidden=6, rule="oja")

"""snn-oneshot (issue 12): conv features -> IF spike encoder -> spiking readout with STDP synapses."""
from __future__ import annotations

import math

import pytest
import torch

from spikeplastic.models import MODELS, make_model
from spikeplastic.snn_oneshot import SpikingOneShot
from spikeplastic.tasks import make_task

C, N = 64, 5


def _prototype_episodes(m: SpikingOneShot, B: int, noise: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Features of a 5-way 1-shot episode made from random class prototypes (no conv): ``z``
    ``[6, B, C]``, labels ``[6, B, N]`` and the query's class ``[B]``."""
    g = torch.Generator().manual_seed(seed)
    proto = torch.randn(B, N, C, generator=g)
    order = torch.stack([torch.randperm(N, generator=g) for _ in range(B)])
    q = torch.randint(0, N, (B,), generator=g)
    idx = torch.arange(B)
    zs = [proto[idx, order[:, t]] + noise * torch.randn(B, C, generator=g) for t in range(N)]
    zs.append(proto[idx, q] + noise * torch.randn(B, C, generator=g))
    labels = [torch.nn.functional.one_hot(order[:, t], N).float() for t in range(N)] + [torch.zeros(B, N)]
    return torch.stack(zs), torch.stack(labels), q


def test_encoder_and_teacher_spikes_follow_the_frame_layout() -> None:
    m = SpikingOneShot(12 * 12, N, padding=1, steps_per_image=6, gap_steps=3)
    z, label, _ = _prototype_episodes(m, 4, 0.5)
    xs, _ = m.spike_encode(z, label)
    F = m.frame
    assert xs.shape == (6 * F, 4, C + N)
    teach = xs[..., C:].reshape(6, F, 4, N)
    # teaching spikes: exactly the label on the 6 image steps of each support frame, nothing else
    for t in range(5):
        assert torch.equal(teach[t, :6], label[t].expand(6, 4, N))
        assert teach[t, 6:].sum() == 0
    assert teach[5].sum() == 0
    # IF encoder (dv = 0, vth = 1, reset to 0): with current c in (0, 1], one spike every ceil(1/c)+ steps;
    # its count over an image is the reference computed by hand
    c = torch.nn.functional.layer_norm(z, (C,)) * m.enc_gain + m.enc_bias
    enc = xs[..., :C].reshape(6, F, 4, C)
    v = torch.zeros(4, C)
    for t in range(6):
        for k in range(F):
            v = v + (c[t] if k < 6 else 0.0)
            s = (v > 1.0).float()
            assert torch.equal(enc[t, k], s), (t, k)
            v = v * (1 - s)
    assert 0.2 < enc.mean() < 0.8, f"encoder rate {enc.mean():.3f}"


def test_readout_classifies_prototypes_before_training() -> None:
    """The mechanism (teacher -> STDP -> current of the query) works with no meta-training: on features
    made of class prototypes + noise, 5-way accuracy is far above chance; shuffling the query's
    features across episodes brings it to chance (so the accuracy comes from the stored support)."""
    torch.manual_seed(0)
    m = SpikingOneShot(12 * 12, N, padding=1)
    z, label, q = _prototype_episodes(m, 256, 0.5)
    with torch.no_grad():
        xs, _ = m.spike_encode(z, label)
        rec, _ = m.readout(xs, record=("spikes", "currents"))
        acc = (m.frame_logits(rec.currents["out"])[-1].argmax(-1) == q).float().mean().item()
        zs = z.clone()
        zs[-1] = zs[-1][torch.randperm(256, generator=torch.Generator().manual_seed(1))]
        xs2, _ = m.spike_encode(zs, label)
        rec2, _ = m.readout(xs2, record=("currents",))
        acc_shuffled = (m.frame_logits(rec2.currents["out"])[-1].argmax(-1) == q).float().mean().item()
    spikes = rec.spikes["out"].reshape(6, m.frame, 256, N)
    n_support_spikes = int(spikes[:5].sum())
    assert n_support_spikes >= 5 * 8 * 256, n_support_spikes    # the taught neuron fires on every image step
    assert acc > 0.9, f"accuracy {acc:.3f} (support spikes {n_support_spikes})"
    assert acc_shuffled < 0.35, acc_shuffled


def test_forward_equals_step_loop_and_gradients_reach_the_support_images() -> None:
    torch.manual_seed(0)
    task = make_task("oneshot", image_size=12)
    m = make_model("snn-oneshot", task).double()
    ep = task.sample(3, torch.Generator().manual_seed(0))
    x = ep.inputs.double().requires_grad_(True)
    outs = {}
    for lean in ("on", "off"):
        m.lean = lean
        out, _ = m(x)
        outs[lean] = out
    st = m.initial_state(3)
    steps = []
    for t in range(x.shape[0]):
        y, st = m.step(x[t], st)
        steps.append(y)
    torch.testing.assert_close(outs["on"], outs["off"], rtol=0, atol=1e-12)
    torch.testing.assert_close(torch.stack(steps), outs["off"], rtol=0, atol=1e-12)
    with torch.no_grad():   # the readout half alone (Lava evaluation embeds once): the same logits
        xs, _ = m.encode_episode(x)
        for lean in (True, False):
            torch.testing.assert_close(m.readout_logits(xs, lean_path=lean)[0], outs["off"], rtol=0, atol=1e-12)
        assert xs.sum() > 0 and outs["off"].abs().sum() > 0
    m.lean = "on"
    out, _ = m(x)
    out[-1].sum().backward()
    assert x.grad is not None
    g_support = x.grad[:-1, :, :144].abs().sum().item()
    assert g_support > 0, "no gradient reaches the support images (through H)"
    grads = {k: p.grad for k, p in m.named_parameters()}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values()), [k for k, g in grads.items() if g is None]


def test_registry_and_errors() -> None:
    assert "snn-oneshot" in MODELS
    with pytest.raises(ValueError, match="snn-oneshot.*oneshot"):
        make_model("snn-oneshot", make_task("pattern50"))
    with pytest.raises(ValueError, match="gap_steps"):
        SpikingOneShot(144, N, padding=1, gap_steps=0)
    m = SpikingOneShot(144, N, padding=1)
    with pytest.raises(ValueError, match=r"inputs: expected \[T, B, 149\]"):
        m(torch.zeros(6, 2, 140))
    with pytest.raises(TypeError, match="stdp"):
        SpikingOneShot(144, N, padding=1, stdp=[0.1])  # type: ignore[arg-type]


def test_loihi_legal_readout_trains() -> None:
    torch.manual_seed(0)
    task = make_task("oneshot", image_size=12)
    m = make_model("snn-oneshot", task, lava="fixed")
    assert m.lean_unsupported() is not None and "integer" in m.lean_unsupported()
    ep = task.sample(2, torch.Generator().manual_seed(0))
    out, _ = m(ep.inputs)
    loss = task.loss(out, ep)
    loss.backward()
    assert math.isfinite(loss.item())
    assert m.readout.projs["in_to_out"].weight.raw.grad is not None


def test_relay_teacher_is_the_fixed_default_and_classifies_prototypes() -> None:
    torch.manual_seed(0)
    m = SpikingOneShot(12 * 12, N, padding=1, lava="fixed")
    assert m.teacher == "relay" and m.delay == 2 and set(m.readout.pops) == {"teach", "out"}
    assert SpikingOneShot(144, N, padding=1).teacher == "direct"
    with pytest.raises(ValueError, match="gap_steps"):
        SpikingOneShot(144, N, padding=1, teacher="relay", gap_steps=1)
    z, label, q = _prototype_episodes(m, 128, 0.5)
    with torch.no_grad():
        xs, _ = m.spike_encode(z, label)
        rec, _ = m.readout(xs, record=("spikes", "currents"))
    taught = rec.spikes["out"].reshape(6, m.frame, 128, N)
    # the taught neuron fires on frame offsets 2..P+1 (the relay's extra step), when the features arrive
    for t in range(5):
        on = taught[t, 2:m.steps_per_image + 2]
        assert torch.equal(on.sum(-1) >= 1, torch.ones_like(on.sum(-1), dtype=torch.bool)), t
    acc = (m.frame_logits(rec.currents["out"])[-1].argmax(-1) == q).float().mean().item()
    assert acc > 0.9, f"accuracy {acc:.3f}, out spikes {int(taught.sum())}"

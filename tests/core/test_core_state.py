"""Per-sample plastic weights live in the state, never in ``.data``; dtype and device follow ``.to()``."""
from __future__ import annotations

import pytest
import torch

from spikeplastic import STDP, Hebb, LIF, Network, Neuromodulation, PlasticLinear

F64 = torch.float64


def _net() -> Network:
    torch.manual_seed(0)
    pops = {"h": LIF(6, du=0.6, dv=0.2, vth=0.6), "out": LIF(2, dv=0.3, vth=0.5)}
    projs = [
        ("in", "h", PlasticLinear(4, 6, rule=STDP(0.05, 0.06, 9.3, 11.7), weight_scale=2.0,
                                  modulation=Neuromodulation("retroactive", "out", eta_e=0.3))),
        ("h", "h", PlasticLinear(6, 6, rule=Hebb(0.1), alpha="shared", weight_scale=0.5)),
        ("h", "out", PlasticLinear(6, 2, rule="oja", weight_scale=2.0)),
    ]
    return Network(4, pops, projs)


def _inputs(T: int = 80, seed: int = 0, dtype=torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.bernoulli(torch.full((T, 1, 4), 0.4), generator=g).to(dtype)


def test_per_sample_plastic_state() -> None:
    net = _net()
    x0, x1 = _inputs(seed=0), _inputs(seed=1)
    x = torch.cat([x0, x1, x0], dim=1)  # samples 0 and 2 identical
    rec, st = net(x, record=("spikes", "weights"))
    for name in ("in_to_h", "h_to_h", "h_to_out"):
        H = st.synapses[name].H
        assert H.shape[0] == 3
        torch.testing.assert_close(H[0], H[2], rtol=0, atol=0)
        assert not torch.equal(H[0], H[1]), name
        assert H[0].abs().sum() > 0
    torch.testing.assert_close(st.synapses["in_to_h"].E[0], st.synapses["in_to_h"].E[2], rtol=0, atol=0)
    # a sample run alone gets exactly the same plastic state as inside the batch
    _, st0 = net(x0)
    for name in ("in_to_h", "h_to_h", "h_to_out"):
        torch.testing.assert_close(st0.synapses[name].H[0], st.synapses[name].H[0], rtol=1e-6, atol=1e-6)
    # recorded effective weights are per sample as well
    assert rec.weights["in_to_h"].shape == (80, 3, 6, 4)


def test_forward_never_touches_parameter_data() -> None:
    net = _net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x = torch.cat([_inputs(seed=0), _inputs(seed=1)], dim=1)
    rec, st = net(x, record=("spikes", "weights", "traces"))
    loss = rec.spikes["out"].sum() + sum(w.sum() for w in rec.weights.values())
    loss.backward()
    after = net.state_dict()
    assert before.keys() == after.keys()
    for k in before:
        torch.testing.assert_close(after[k], before[k], rtol=0, atol=0, msg=f"{k} changed")
    # and plasticity did change the weights in the state
    assert st.synapses["in_to_h"].H.abs().sum() > 0


def test_to_float64_state_follows_dtype() -> None:
    net = _net()
    x32 = _inputs()
    rec32, _ = net(x32)
    net64 = net.to(F64)
    assert net64 is net and net.dtype == F64
    st = net.initial_state(2)
    tensors = [st.x_prev] + [t for n in st.neurons.values() for t in n]
    for syn in st.synapses.values():
        tensors += [t for t in (syn.H, syn.E) if t is not None]
        tensors += [t for t in (syn.rule or ()) if isinstance(t, torch.Tensor)]
    assert all(t.dtype == F64 for t in tensors)
    assert all(p.dtype == F64 for p in net.parameters())
    rec64, st64 = net(x32.to(F64), record=("spikes", "voltages", "weights"))
    assert all(v.dtype == F64 for v in rec64.voltages.values())
    assert st64.synapses["in_to_h"].H.dtype == F64
    # float32 and float64 runs agree on the spikes of this small net
    torch.testing.assert_close(rec64.spikes["h"], rec32.spikes["h"].to(F64), rtol=0, atol=0)


def test_input_dtype_mismatch_is_a_clear_error() -> None:
    net = _net()
    with pytest.raises(TypeError, match="x"):
        net(_inputs(dtype=F64))


def test_chunked_run_equals_single_run(default_f64: None) -> None:
    """The state carries everything (last spikes and input, H, E, traces): two chunks == one run."""
    net = _net()
    x = torch.cat([_inputs(seed=0), _inputs(seed=1)], dim=1).to(F64)
    rec, st = net(x, record=("spikes", "voltages", "weights"))
    rec_a, st_a = net(x[:37], record=("spikes", "voltages", "weights"))
    rec_b, st_b = net(x[37:], st_a, record=("spikes", "voltages", "weights"))
    for k in rec.spikes:
        torch.testing.assert_close(torch.cat([rec_a.spikes[k], rec_b.spikes[k]]), rec.spikes[k], rtol=0, atol=0)
        torch.testing.assert_close(torch.cat([rec_a.voltages[k], rec_b.voltages[k]]), rec.voltages[k], rtol=0, atol=0)
    for k in rec.weights:
        torch.testing.assert_close(torch.cat([rec_a.weights[k], rec_b.weights[k]]), rec.weights[k], rtol=0, atol=0)
    torch.testing.assert_close(st_b.synapses["in_to_h"].E, st.synapses["in_to_h"].E, rtol=0, atol=0)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_cpu() -> None:
    net = _net().to(F64)
    x = torch.cat([_inputs(seed=0), _inputs(seed=1)], dim=1).to(F64)
    rec_cpu, st_cpu = net(x, record=("spikes", "weights"))
    net_gpu = net.to("cuda")
    assert net_gpu.device.type == "cuda"
    rec_gpu, st_gpu = net_gpu(x.cuda(), record=("spikes", "weights"))
    assert st_gpu.synapses["in_to_h"].H.device.type == "cuda"
    for k in rec_cpu.spikes:
        torch.testing.assert_close(rec_gpu.spikes[k].cpu(), rec_cpu.spikes[k], rtol=0, atol=0)
    for k in rec_cpu.weights:
        torch.testing.assert_close(rec_gpu.weights[k].cpu(), rec_cpu.weights[k], rtol=1e-10, atol=1e-12)
    loss = rec_gpu.spikes["out"].sum() + rec_gpu.weights["h_to_out"].sum()
    loss.backward()
    assert all(p.grad is None or p.grad.device.type == "cuda" for p in net_gpu.parameters())

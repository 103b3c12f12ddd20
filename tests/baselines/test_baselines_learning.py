"""Quick learning smoke test: a small PlasticRNN learns pattern completion (< 1 s)."""
from __future__ import annotations

import torch

from spikeplastic.baselines import PlasticRNN


def _episodes(batch: int, n_bits: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Two random +-1 patterns, 3 steps each + 1 gap step, then one of them with half its bits
    zeroed for 3 steps; inputs x20 (a miniature of the TASKS.md pattern task)."""
    pats = torch.where(torch.rand(batch, 2, n_bits, generator=gen) < 0.5, -1.0, 1.0)
    zeros = torch.zeros(batch, n_bits)
    steps = [pats[:, 0]] * 3 + [zeros] + [pats[:, 1]] * 3 + [zeros]
    target = pats[torch.arange(batch), torch.randint(2, (batch,), generator=gen)]
    hidden = torch.rand(batch, n_bits, generator=gen).argsort(dim=1) < n_bits // 2
    steps += [target * ~hidden] * 3
    return 20.0 * torch.stack(steps), target, hidden


def test_plastic_rnn_learns_pattern_completion() -> None:
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    net = PlasticRNN(16, bias_unit=True)
    opt = torch.optim.Adam(net.parameters(), lr=3e-2)
    for _ in range(100):
        x, target, _ = _episodes(16, 16, gen)
        out, _ = net(x)
        loss = ((out[-1] - target) ** 2).sum() / x.shape[1]
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        x, target, hidden = _episodes(256, 16, gen)
        out, _ = net(x)
    wrong = (torch.sign(out[-1]) != target) & hidden
    error = wrong.sum().item() / hidden.sum().item()
    assert error < 0.2, f"error on the hidden bits {error:.3f} (chance 0.5)"

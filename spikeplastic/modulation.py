"""Neuromodulation: a learned third factor gating plasticity (Backpropamine, Miconi et al. 2019)."""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from . import ir
from ._params import Constrained
from ._validation import check_choice, check_range
from .functional.synapse import modulation_signal

__all__ = ["Neuromodulation"]


class Neuromodulation(nn.Module):
    r"""Third factor computed by the network.

    ``m_t = tanh(w_m . s^{src}_t + b_m)`` from the spikes of population ``source`` (or, with
    ``source=None``, the external third factor passed to the network's forward).

    ``mode="simple"``: :math:`H_t = H_{t-1} + m_t e_t`;
    ``mode="retroactive"``: :math:`H_t = H_{t-1} + m_t E_{t-1}`, :math:`E_t = (1-\eta_E) E_{t-1} + \eta_E e_t`
    (an eligibility trace per synapse and sample), with ``e_t`` the rule's candidate update.

    Args:
        mode: ``"simple"`` or ``"retroactive"``.
        source: name of the population whose spikes drive ``m`` (``None``: external signal).
        per_neuron: one signal per postsynaptic neuron instead of one per sample.
        eta_e: eligibility trace rate in (0, 1) (retroactive only), learnable with ``learn_eta``.
    """

    def __init__(
        self,
        mode: str = "simple",
        source: str | None = None,
        *,
        per_neuron: bool = False,
        eta_e: float = 0.1,
        learn_eta: bool = True,
    ) -> None:
        super().__init__()
        self.mode = check_choice("mode", mode, ["simple", "retroactive"])
        if source is not None and not isinstance(source, str):
            raise TypeError(f"source must be a population name or None, got {type(source).__name__}")
        self.source = source
        self.per_neuron = bool(per_neuron)
        check_range("eta_e", eta_e, 0.0, 1.0)
        self.eta_e = Constrained(eta_e, "open_unit" if learn_eta else "unit", learn_eta, name="eta_e",
                                 flag="learn_eta")
        self.weight: nn.Parameter | None = None
        self.bias: nn.Parameter | None = None
        self._n_post = 0

    def bind(self, n_source: int, n_post: int) -> None:
        """Create the modulation weights once the source and target sizes are known."""
        if self.source is None or self.weight is not None:
            return
        shape = (n_post, n_source) if self.per_neuron else (n_source,)
        ref = self.eta_e()
        self.weight = nn.Parameter(torch.randn(shape, dtype=ref.dtype, device=ref.device) / math.sqrt(n_source))
        self.bias = nn.Parameter(torch.zeros(n_post if self.per_neuron else (), dtype=ref.dtype, device=ref.device))
        self._n_post = n_post

    def signal(self, s_source: Tensor | None, external: Tensor | None) -> Tensor:
        """``m`` shaped ``[B, 1, 1]`` or ``[B, n_post, 1]``, ready to scale ``[B, n_post, n_pre]``."""
        if self.source is None:
            if external is None:
                raise ValueError("this projection's modulation has source=None: pass third_factor=... to the network")
            m = external
        else:
            assert self.weight is not None and self.bias is not None and s_source is not None
            m = modulation_signal(s_source, self.weight, self.bias, self.per_neuron)
        if m.dim() == 1:
            return m[:, None, None]
        return m.unsqueeze(-1)

    def to_ir(self) -> ir.Modulation:
        w = None if self.weight is None else self.weight.detach().cpu().double().numpy()
        b = None if self.bias is None else self.bias.detach().cpu().double().numpy()
        eta = float(self.eta_e().detach()) if self.mode == "retroactive" else 0.0
        return ir.Modulation(mode=self.mode, source=self.source, weight=w, bias=b, eta_e=eta)  # type: ignore[arg-type]

"""One-shot classification network of Miconi et al. 2018 (Omniglot, N-way 1-shot).

Re-implemented from the paper's description (see ``docs/TASKS.md``); no code was copied.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor, nn

from spikeplastic.embedding import ConvEmbedding
from spikeplastic.functional.plasticity import oja_step
from spikeplastic.protocol import EpisodeModel

from ._common import (
    ALPHA_MODES,
    AlphaMode,
    UnitIntervalScalar,
    alpha_parameter,
    check_choice,
    check_init_std,
    check_int,
    check_step_input,
    plastic_matvec,
)

__all__ = ["OneShotPlastic", "OneShotState"]


class OneShotState(NamedTuple):
    """State of :class:`OneShotPlastic`: ``hebb`` ``[B, n_way, channels]`` (post x pre)."""

    hebb: Tensor


class OneShotPlastic(EpisodeModel):
    r"""Convolutional embedding followed by a plastic readout trained with Oja's rule.

    Each step gets ``x = [image (img_pixels, flattened square), label (n_way)]``; the label part
    is the one-hot class during the labelled steps and zero for the query. Per step::

        z_t   = embed(image_t)                              [B, channels]
                (n_conv x {3x3 conv, stride 2, `channels` maps, tanh}; mean over any positions
                 left after the last layer, none for the standard 31x31 input and 4 layers)
        out_t = (W + alpha * H_{t-1}) z_t                   [B, n_way] logits
        o_t   = label_t         if label_t != 0 (label clamped on the output)
                softmax(out_t)  otherwise
        H_t[j, i] = H_{t-1}[j, i] + eta * o_t[j] * (z_t[i] - H_{t-1}[j, i] * o_t[j])   (Oja)

    ``W``, ``alpha``: ``[n_way, channels]`` (``alpha`` a scalar when shared); ``eta`` one shared
    learned scalar ``sigmoid(eta_raw)`` in (0, 1). The returned output is always the logits
    computed *before* clamping, so labelled steps also report the net's guess. ``H``'s row
    ``j`` moves towards the embeddings of the images labelled ``j``; the query is classified by
    ``argmax`` of its logits (the task applies the loss, e.g. BCE on ``softmax`` or on logits).

    Args:
        img_pixels: pixels of the (square) image; its side is ``sqrt(img_pixels)``.
        n_way: number of classes per episode (5 in the paper).
        channels: feature maps per conv layer, also the embedding size (64 in the paper).
        n_conv: number of conv layers (4). padding: conv padding (0 in the paper, which needs
            images of side >= 31 for 4 layers; use 1 for small images such as 8x8 digits).
        alpha: ``"per_synapse"`` (the paper) or ``"shared"``.
        eta_init, learn_eta: initial value in (0, 1) and learnability of ``eta``.
        w_init_std, alpha_init_std: ``W = w_init_std * N(0, 1)``; ``alpha = alpha_init_std *
            U[0, 1)`` (``alpha_init="uniform"``, the original's "all positive" draw:
            uber-research/differentiable-plasticity ``omniglot/omniglot.py`` line 191) or
            ``* N(0, 1)`` (``alpha_init="normal"``); convolutions use ``nn.Conv2d``'s default init.

    Shape:
        ``step``: ``x`` ``[B, img_pixels + n_way]`` -> ``out`` ``[B, n_way]``.

    Example::

        >>> net = OneShotPlastic(31 * 31, 5)
        >>> out, state = net(torch.randn(6, 2, 31 * 31 + 5))
        >>> out.shape, state.hebb.shape
        (torch.Size([6, 2, 5]), torch.Size([2, 5, 64]))
    """

    def __init__(
        self,
        img_pixels: int,
        n_way: int = 5,
        *,
        channels: int = 64,
        n_conv: int = 4,
        padding: int = 0,
        alpha: AlphaMode = "per_synapse",
        eta_init: float = 0.01,
        learn_eta: bool = True,
        w_init_std: float = 0.01,
        alpha_init_std: float = 0.01,
        alpha_init: str = "uniform",
    ) -> None:
        super().__init__()
        self.img_pixels = check_int("img_pixels", img_pixels)
        side = math.isqrt(self.img_pixels)
        if side * side != self.img_pixels:
            raise ValueError(
                f"img_pixels must be a perfect square (a flattened square image), got {img_pixels}"
            )
        self.side = side
        self.n_way = check_int("n_way", n_way, minimum=2)
        self.channels = check_int("channels", channels)
        self.n_conv = check_int("n_conv", n_conv)
        self.padding = check_int("padding", padding, minimum=0)
        self.alpha_mode = check_choice("alpha", alpha, ALPHA_MODES)
        self.alpha_init = check_choice("alpha_init", alpha_init, ("uniform", "normal"))
        self.embed = ConvEmbedding(self.img_pixels, channels=self.channels, n_conv=self.n_conv, padding=self.padding)
        self.n_in = self.img_pixels + self.n_way
        self.n_out = self.n_way
        shape = (self.n_way, self.channels)
        self.w = nn.Parameter(check_init_std(w_init_std, "w_init_std") * torch.randn(shape))
        self.alpha = alpha_parameter(alpha, shape, check_init_std(alpha_init_std, "alpha_init_std"),
                                     uniform=self.alpha_init == "uniform")
        self.eta = UnitIntervalScalar(eta_init, learn=learn_eta, name="eta_init")

    def extra_repr(self) -> str:
        return (
            f"img_pixels={self.img_pixels} ({self.side}x{self.side}), n_way={self.n_way}, "
            f"channels={self.channels}, n_conv={self.n_conv}, padding={self.padding}, "
            f"alpha={self.alpha_mode!r}, alpha_init={self.alpha_init!r}"
        )

    def initial_state(self, batch: int) -> OneShotState:
        """Zero plastic trace on ``W``'s device and dtype."""
        check_int("batch", batch)
        return OneShotState(hebb=self.w.new_zeros(batch, self.n_way, self.channels))

    def embedding(self, images: Tensor) -> Tensor:
        """``[B, img_pixels]`` flattened images -> ``[B, channels]`` embeddings."""
        return self.embed.embed(images)

    def step(self, x: Tensor, state: OneShotState) -> tuple[Tensor, OneShotState]:
        check_step_input(x, self.n_in, state)
        z = self.embedding(x[:, : self.img_pixels])
        label = x[:, self.img_pixels :]
        logits = plastic_matvec(self.w, self.alpha, state.hebb, z)
        labelled = (label != 0).any(dim=-1, keepdim=True).to(z.dtype)
        o = labelled * label + (1.0 - labelled) * torch.softmax(logits, dim=-1)
        hebb = oja_step(state.hebb, z, o, self.eta())
        return logits, OneShotState(hebb=hebb)

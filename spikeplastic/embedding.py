"""Convolutional image embedding shared by the one-shot models (Miconi et al. 2018, section 4.4)."""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ._validation import check_int

__all__ = ["ConvEmbedding", "DenseEmbedding", "conv_sides"]


def conv_sides(side: int, n_conv: int, padding: int) -> list[int]:
    """Spatial side after each 3x3 stride-2 convolution (``side`` first)."""
    sides = [side]
    for _ in range(n_conv):
        sides.append((sides[-1] + 2 * padding - 3) // 2 + 1)
    return sides


class ConvEmbedding(nn.Sequential):
    r"""``n_conv`` x {3x3 conv, stride 2, ``channels`` maps, tanh}, then the mean over the positions
    left (none for 31x31 images and 4 layers without padding):

    .. math:: z = \mathrm{mean}_{xy}\, \tanh(\mathrm{conv}_{n}(\cdots \tanh(\mathrm{conv}_1(\mathrm{img}))))
              \in [-1, 1]^{\mathrm{channels}}

    A :class:`torch.nn.Sequential` (parameter names ``0.weight``, ``0.bias``, ``2.weight``, ...);
    convolutions use ``nn.Conv2d``'s default init.

    Shape: :meth:`embed` ``[B, side*side]`` -> ``[B, channels]``.
    """

    def __init__(self, img_pixels: int, *, channels: int = 64, n_conv: int = 4, padding: int = 0) -> None:
        img_pixels = check_int("img_pixels", img_pixels)
        side = math.isqrt(img_pixels)
        if side * side != img_pixels:
            raise ValueError(f"img_pixels must be a perfect square (a flattened square image), got {img_pixels}")
        channels = check_int("channels", channels)
        n_conv = check_int("n_conv", n_conv)
        padding = check_int("padding", padding, minimum=0)
        sides = conv_sides(side, n_conv, padding)
        if min(sides) < 1:
            raise ValueError(
                f"a {side}x{side} image is too small for {n_conv} 3x3 stride-2 convolutions "
                f"with padding={padding} (sides {sides}); use a larger image, fewer layers "
                f"(n_conv) or padding=1"
            )
        layers: list[nn.Module] = []
        c_in = 1
        for _ in range(n_conv):
            layers += [nn.Conv2d(c_in, channels, 3, stride=2, padding=padding), nn.Tanh()]
            c_in = channels
        super().__init__(*layers)
        self.side, self.channels, self.n_conv, self.padding = side, channels, n_conv, padding

    def embed(self, images: Tensor) -> Tensor:
        """``[B, side*side]`` flattened images -> ``[B, channels]`` embeddings."""
        feats = self(images.reshape(-1, 1, self.side, self.side))
        return feats.mean(dim=(-2, -1))


class DenseEmbedding(nn.Linear):
    r"""One dense tanh layer on the flattened input, the fully connected counterpart of
    :class:`ConvEmbedding` (same :meth:`embed` and ``channels``):

    .. math:: z = \tanh(W x + b) \in [-1, 1]^{\mathrm{channels}}

    ``nn.Linear``'s default init. Shape: :meth:`embed` ``[B, n_in]`` -> ``[B, channels]``.
    """

    def __init__(self, n_in: int, *, channels: int = 64) -> None:
        super().__init__(check_int("n_in", n_in), check_int("channels", channels))
        self.channels = channels

    def embed(self, images: Tensor) -> Tensor:
        """``[B, n_in]`` inputs -> ``[B, channels]`` embeddings."""
        return torch.tanh(self(images))

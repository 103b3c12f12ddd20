"""Natural-image memorisation and completion (Miconi, Clune & Stanley 2018, section 4.3).

Episode schedule (``I = n_images``, ``R = repeats``)::

    for r in range(R):                     # a fresh random order of the I images each repeat
        for i in order[r]:
            show image i                  present_steps steps
            zeros                         gap_steps steps
    show image q with its top or bottom half zeroed     test_steps steps

    T = R * I * (present_steps + gap_steps) + test_steps = 3*3*(20+2) + 3 = 201   (defaults)

The gap follows *every* presentation, including the last one before the test: that is the only
reading of TASKS.md's numbers that gives T = 201. The per-repeat shuffling mirrors the pattern
task (TASKS.md does not say; a fixed order would be the alternative).

Images: ``patch_size x patch_size`` grayscale patches (default 32x32 -> 1024 pixels), row-major
flattened, cut at uniformly random positions from the ``skimage.data`` images named in
``sources`` (all ship with scikit-image; nothing is downloaded). Alternatively
``cifar_root`` selects real CIFAR-10 images (see :func:`load_cifar10`). Every image is
preprocessed on its own: ``x = (v - mean(v)) / max|v - mean(v)|``, so ``x`` lies in ``[-1, 1]`` and
``max|x| = 1``. Patches with a pixel standard deviation below ``min_std`` (flat sky, page margins)
are redrawn (up to 20 times).

Clamping (``info["clamp"]``): the paper's rate network clamps the units that receive a nonzero
input, ``y = tanh(...) * (1 - c) + x * c`` with ``c = (x != 0)``; ``info["clamp_mask"]`` is that
``c`` as a ``[T, B, n_pixels]`` bool. The task itself does not clamp anything.

Loss: ``mean_b sum_i (y[-1,b,i] - target[b,i])^2`` over *all* pixels (the visible half is clamped
in the baselines, so its error is 0 there). Metric: relative squared error on the occluded half,
``sum_occ (y - t)^2 / sum_occ t^2`` averaged over the batch -- 1.0 for an all-zero output, 0 for a
perfect completion (a normalised MSE; solved below 0.1). :func:`occluded_mse` gives the plain
per-pixel MSE on the occluded half.
"""
from __future__ import annotations

import functools
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from ..protocol import Episode, SupervisedTask
from ._common import (
    as_device,
    check_batch,
    check_choice,
    check_float,
    check_generator,
    check_int,
    check_outputs,
    rand,
    randint,
    random_permutations,
    schedule_blocks,
)

__all__ = [
    "ImageConfig",
    "ImageTask",
    "IMAGES",
    "SKIMAGE_SOURCES",
    "DEFAULT_SOURCES",
    "load_cifar10",
    "load_skimage_gray",
    "normalize_images",
    "occluded_mse",
]

#: ``skimage.data`` images whose files ship inside the scikit-image wheel (no download needed).
SKIMAGE_SOURCES: tuple[str, ...] = (
    "astronaut", "brick", "camera", "cell", "chelsea", "clock", "coffee", "coins", "grass", "gravel",
    "hubble_deep_field", "immunohistochemistry", "moon", "page", "rocket", "text",
)
#: Photographs / natural textures used by default.
DEFAULT_SOURCES: tuple[str, ...] = (
    "astronaut", "brick", "camera", "chelsea", "clock", "coffee", "coins", "grass", "gravel", "moon",
    "page", "rocket",
)

_CLAMP_DOC = (
    "baselines clamp units whose input is nonzero: y = tanh(W_eff y_prev + x) * (1 - c) + x * c, "
    "c = (x != 0); see info['clamp_mask']"
)
_CIFAR_LAYOUT = (
    "expected the standard CIFAR-10 python layout: <root>/cifar-10-batches-py/ (or <root> itself) "
    "containing data_batch_1 ... data_batch_5 and test_batch, each a pickle of a dict with "
    "b'data' (uint8 [N, 3072], R then G then B planes of 32x32, row-major) and b'labels'"
)


@dataclass(frozen=True, kw_only=True)
class ImageConfig:
    """Image-task parameters (keyword-only, frozen; unknown keys raise ``TypeError``).

    Attributes:
        n_images: images stored per episode.
        repeats: presentations of each image (order reshuffled each repeat).
        present_steps, gap_steps, test_steps: schedule in steps (module docstring).
        patch_size: side of the square grayscale images (``n_pixels = patch_size**2``).
        sources: ``skimage.data`` image names to cut patches from (subset of ``SKIMAGE_SOURCES``).
        min_std: patches whose raw pixel std (in [0,1] units) is below this are redrawn.
        cifar_root: if set, use CIFAR-10 images from this path instead of skimage patches
            (``patch_size`` must then be 32).
        cifar_split: ``"train"`` (data_batch_1..5) or ``"test"`` (test_batch).
    """

    n_images: int = 3
    repeats: int = 3
    present_steps: int = 20
    gap_steps: int = 2
    test_steps: int = 3
    patch_size: int = 32
    sources: tuple[str, ...] = DEFAULT_SOURCES
    min_std: float = 0.02
    cifar_root: str | None = None
    cifar_split: Literal["train", "test"] = "train"

    def __post_init__(self) -> None:
        check_int("n_images", self.n_images, minimum=1)
        check_int("repeats", self.repeats, minimum=1)
        check_int("present_steps", self.present_steps, minimum=1)
        check_int("gap_steps", self.gap_steps, minimum=0)
        check_int("test_steps", self.test_steps, minimum=1)
        check_int("patch_size", self.patch_size, minimum=2)
        if self.patch_size % 2:
            raise ValueError(f"patch_size must be even (top/bottom halves), got {self.patch_size}")
        if not isinstance(self.sources, tuple) or not self.sources:
            raise TypeError(f"sources must be a non-empty tuple of names from {SKIMAGE_SOURCES}, got {self.sources!r}")
        for s in self.sources:
            check_choice("sources[...]", s, SKIMAGE_SOURCES)
        check_float("min_std", self.min_std, low=0.0)
        if self.cifar_root is not None:
            if not isinstance(self.cifar_root, (str, Path)):
                raise TypeError(f"cifar_root must be a path string or None, got {type(self.cifar_root).__name__}")
            if self.patch_size != 32:
                raise ValueError(f"CIFAR-10 images are 32x32: patch_size must be 32, got {self.patch_size}")
        check_choice("cifar_split", self.cifar_split, ("train", "test"))

    @property
    def n_pixels(self) -> int:
        return self.patch_size * self.patch_size

    @property
    def T(self) -> int:
        """``repeats * n_images * (present_steps + gap_steps) + test_steps``."""
        return self.repeats * self.n_images * (self.present_steps + self.gap_steps) + self.test_steps


#: The paper's setting on skimage patches (T = 201, 1024 pixels).
IMAGES = ImageConfig()


@functools.lru_cache(maxsize=None)
def load_skimage_gray(name: str) -> np.ndarray:
    """Grayscale float32 ``[H, W]`` in ``[0, 1]`` of a ``skimage.data`` image shipped with scikit-image.

    RGB(A) images are converted with ``skimage.color.rgb2gray`` (ITU-R 709 luma). Cached.
    """
    check_choice("name", name, SKIMAGE_SOURCES)
    try:
        import skimage.color
        import skimage.data
        from skimage.util import img_as_float32
    except ImportError as e:  # pragma: no cover - optional dependency
        raise ImportError("the image task needs scikit-image: pip install 'spikeplastic[data]'") from e
    img = getattr(skimage.data, name)()
    if img.ndim == 3:
        img = skimage.color.rgb2gray(img[..., :3])
    return np.ascontiguousarray(img_as_float32(img), dtype=np.float32)


def normalize_images(x: Tensor) -> Tensor:
    """Per-image ``(v - mean) / max|v - mean|`` over the last dimension (``[..., n_pixels]``).

    Constant images (max deviation 0) map to all zeros instead of NaN.
    """
    centred = x - x.mean(dim=-1, keepdim=True)
    peak = centred.abs().amax(dim=-1, keepdim=True)
    return centred / torch.where(peak > 0, peak, torch.ones_like(peak))


def _cifar_dir(root: Path) -> Path:
    if not root.exists():
        raise FileNotFoundError(f"CIFAR-10 path {str(root)!r} does not exist; {_CIFAR_LAYOUT}")
    for cand in (root / "cifar-10-batches-py", root):
        if (cand / "test_batch").is_file() or (cand / "data_batch_1").is_file():
            return cand
    raise FileNotFoundError(f"no CIFAR-10 batches found under {str(root)!r}; {_CIFAR_LAYOUT}")


def load_cifar10(root: str | Path, split: Literal["train", "test"] = "train", *, grayscale: bool = True) -> tuple[Tensor, Tensor]:
    """Load CIFAR-10 from the standard ``cifar-10-batches-py`` pickle files at a user path.

    Args:
        root: the ``cifar-10-batches-py`` folder or its parent.
        split: ``"train"`` reads whichever of ``data_batch_1..5`` exist (at least one);
            ``"test"`` reads ``test_batch``.
        grayscale: convert with luma ``0.299 R + 0.587 G + 0.114 B``.

    Returns:
        ``(images, labels)``: float32 ``[N, 32, 32]`` (grayscale) or ``[N, 3, 32, 32]`` in ``[0, 1]``,
        and int64 ``[N]``.

    Raises:
        FileNotFoundError: the path or the batch files are missing (message states the layout).
        ValueError: a batch file is not a CIFAR-10 pickle.

    Only unpickle files you trust: pickle can execute code.
    """
    split = check_choice("split", split, ("train", "test"))  # type: ignore[assignment]
    d = _cifar_dir(Path(root))
    if split == "test":
        files = [d / "test_batch"]
        if not files[0].is_file():
            raise FileNotFoundError(f"{str(files[0])!r} is missing; {_CIFAR_LAYOUT}")
    else:
        files = [d / f"data_batch_{i}" for i in range(1, 6) if (d / f"data_batch_{i}").is_file()]
        if not files:
            raise FileNotFoundError(f"no data_batch_* files in {str(d)!r}; {_CIFAR_LAYOUT}")
    datas, labels = [], []
    for f in files:
        try:
            with open(f, "rb") as fh:
                obj = pickle.load(fh, encoding="bytes")
        except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, IndexError) as e:
            raise ValueError(f"{str(f)!r} is not a readable CIFAR-10 pickle ({e}); {_CIFAR_LAYOUT}") from e
        if not isinstance(obj, dict):
            raise ValueError(f"{str(f)!r} does not hold a dict; {_CIFAR_LAYOUT}")
        data = obj.get(b"data", obj.get("data"))
        labs = obj.get(b"labels", obj.get("labels"))
        if data is None or labs is None:
            raise ValueError(f"{str(f)!r} lacks the b'data'/b'labels' keys; {_CIFAR_LAYOUT}")
        data = np.asarray(data)
        if data.ndim != 2 or data.shape[1] != 3072 or data.shape[0] != len(labs):
            raise ValueError(
                f"{str(f)!r}: b'data' has shape {data.shape} for {len(labs)} labels; {_CIFAR_LAYOUT}"
            )
        datas.append(data.astype(np.float32) / 255.0)
        labels.append(np.asarray(labs, dtype=np.int64))
    rgb = torch.from_numpy(np.concatenate(datas)).reshape(-1, 3, 32, 32)
    lab = torch.from_numpy(np.concatenate(labels))
    if grayscale:
        w = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
        return (rgb * w).sum(dim=1), lab
    return rgb, lab


@functools.lru_cache(maxsize=4)
def _cifar_gray(root: str, split: str) -> Tensor:
    return load_cifar10(root, split)[0]  # type: ignore[arg-type]


def occluded_mse(outputs: Tensor, episode: Episode) -> float:
    """Plain mean squared error per pixel on the occluded half at the last step."""
    y = outputs[-1].detach()
    occ = _occluded(episode)
    return float(((y - episode.targets) ** 2)[occ].mean())


def _occluded(episode: Episode) -> Tensor:
    if not episode.info or "occluded" not in episode.info:
        raise ValueError("episode.info lacks 'occluded' (not an ImageTask episode)")
    return episode.info["occluded"]


class ImageTask(SupervisedTask):
    """Natural-image completion as a :class:`SupervisedTask` (schedule in the module docstring).

    Shapes:
        inputs ``[T, B, n_pixels]`` in ``[-1, 1]`` (no extra scaling); targets ``[B, n_pixels]``
        (the complete test image); mask ``[T, B]`` (True at the last step only).

    ``info`` keys: ``images`` ``[B, I, n_pixels]``, ``order`` ``[B, R, I]``, ``test_index`` ``[B]``,
    ``bottom_zeroed`` ``[B]`` bool (True: bottom half zeroed, False: top half), ``occluded``
    ``[B, n_pixels]`` bool, ``clamp`` (str, semantics), ``clamp_mask`` ``[T, B, n_pixels]`` bool.
    """

    success_threshold: float = 0.1
    higher_is_better: bool = False

    def __init__(self, config: ImageConfig = IMAGES, *, name: str = "images") -> None:
        if not isinstance(config, ImageConfig):
            raise TypeError(f"config must be an ImageConfig, got {type(config).__name__}")
        self.config = config
        self.name = name
        self.n_in = config.n_pixels
        self.n_out = config.n_pixels
        self.T = config.T
        if config.cifar_root is not None:
            self._cifar: Tensor | None = _cifar_gray(str(config.cifar_root), config.cifar_split)
            self._sources: list[Tensor] = []
        else:
            self._cifar = None
            self._sources = [torch.from_numpy(load_skimage_gray(s)) for s in config.sources]
            small = [s for s, im in zip(config.sources, self._sources) if min(im.shape) < config.patch_size]
            if small:
                raise ValueError(f"patch_size {config.patch_size} exceeds the size of source image(s) {small}")

    def _draw_images(self, n: int, g: torch.Generator) -> Tensor:
        """``n`` raw images ``[n, n_pixels]`` in ``[0, 1]`` (CPU)."""
        ps = self.config.patch_size
        if self._cifar is not None:
            return self._cifar[randint(0, self._cifar.shape[0], (n,), g, torch.device("cpu"))].reshape(n, -1)
        out = torch.empty(n, ps * ps)
        for k in range(n):
            for _attempt in range(20):
                src = self._sources[int(randint(0, len(self._sources), (1,), g, torch.device("cpu")))]
                h, w = src.shape
                r = int(randint(0, h - ps + 1, (1,), g, torch.device("cpu")))
                c = int(randint(0, w - ps + 1, (1,), g, torch.device("cpu")))
                patch = src[r : r + ps, c : c + ps]
                if float(patch.std()) >= self.config.min_std:
                    break
            out[k] = patch.reshape(-1)
        return out

    def sample(self, batch: int, generator: torch.Generator, device: torch.device | str = "cpu") -> Episode:
        cfg = self.config
        b = check_batch(batch)
        g = check_generator(generator)
        dev = as_device(device)
        n_img, reps, npx = cfg.n_images, cfg.repeats, cfg.n_pixels

        images = normalize_images(self._draw_images(b * n_img, g)).reshape(b, n_img, npx).to(dev)
        order = random_permutations((b, reps, n_img), g, dev)                 # [B, R, I]
        test_index = randint(0, n_img, (b,), g, dev)                          # [B]
        bottom = rand((b,), g, dev) < 0.5                                     # [B]

        shown = images.gather(1, order.reshape(b, reps * n_img, 1).expand(b, reps * n_img, npx))
        target = images[torch.arange(b, device=dev), test_index]              # [B, n_pixels]
        rows = torch.arange(cfg.patch_size, device=dev).repeat_interleave(cfg.patch_size)  # row of each pixel
        in_bottom = rows >= cfg.patch_size // 2                               # [n_pixels]
        occluded = torch.where(bottom.unsqueeze(1), in_bottom.unsqueeze(0), ~in_bottom.unsqueeze(0))
        degraded = target.masked_fill(occluded, 0.0)

        seq = torch.cat(
            [
                schedule_blocks(shown, cfg.present_steps, cfg.gap_steps),
                degraded.unsqueeze(1).expand(b, cfg.test_steps, npx),
            ],
            dim=1,
        )
        inputs = seq.transpose(0, 1).contiguous()                              # [T, B, n_pixels]
        mask = torch.zeros(self.T, b, dtype=torch.bool, device=dev)
        mask[-1] = True
        return Episode(
            inputs=inputs,
            targets=target,
            mask=mask,
            info={
                "images": images,
                "order": order,
                "test_index": test_index,
                "bottom_zeroed": bottom,
                "occluded": occluded,
                "clamp": _CLAMP_DOC,
                "clamp_mask": inputs != 0,
            },
        )

    def loss(self, outputs: Tensor, episode: Episode) -> Tensor:
        """``mean_b sum_i (outputs[-1] - targets)^2`` over all pixels."""
        y = check_outputs(outputs, self.n_out, batch=episode.targets.shape[0])[-1]
        return ((y - episode.targets) ** 2).sum(dim=-1).mean()

    def metric(self, outputs: Tensor, episode: Episode) -> float:
        """Relative squared error on the occluded half: ``mean_b sum_occ (y-t)^2 / sum_occ t^2``."""
        y = check_outputs(outputs, self.n_out, batch=episode.targets.shape[0])[-1].detach()
        occ = _occluded(episode).to(y.dtype)
        err = (((y - episode.targets) ** 2) * occ).sum(-1)
        ref = ((episode.targets**2) * occ).sum(-1).clamp_min(1e-12)
        return float((err / ref).mean())

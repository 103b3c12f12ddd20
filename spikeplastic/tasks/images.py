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
flattened, cut at uniformly random positions from ``skimage.data`` images (all ship with
scikit-image; nothing is downloaded). Alternatively ``cifar_root`` selects real CIFAR-10 images
(see :func:`load_cifar10_batches`). Every image is preprocessed on its own: ``x = (v - mean(v)) / max|v - mean(v)|``, so ``x`` lies in ``[-1, 1]`` and
``max|x| = 1``. Patches with a pixel standard deviation below ``min_std`` (flat sky, page margins)
are redrawn (up to 20 times).

Clamping (``info["clamp"]``): the paper's rate network clamps the units that receive a nonzero
input, ``y = tanh(...) * (1 - c) + x * c`` with ``c = (x != 0)``; ``info["clamp_mask"]`` is that
``c`` as a ``[T, B, n_pixels]`` bool. The task itself does not clamp anything.

Train and test splits (``data_splits``): disjoint sets of images, so that a held-out evaluation
completes images never seen in training. The trainer samples ``"train"`` only.

* built-in data, split by source image: ``sources`` (train, :data:`DEFAULT_SOURCES`: astronaut,
  brick, chelsea, clock, coins, grass, moon, page, rocket) and ``test_sources`` (test,
  :data:`DEFAULT_TEST_SOURCES`: camera, coffee, gravel -- a portrait, an object photograph and a
  texture, one of each kind the training images hold). Before the split existed, training cut
  patches from all 12; runs from then have seen the test images.
* CIFAR-10 (``cifar_root``): ``cifar_train_batches`` (default ``data_batch_1..4``) and
  ``cifar_test_batches`` (default ``data_batch_5``), Miconi et al. 2018's protocol (the official
  ``test_batch`` is unused unless named).

Loss: ``mean_b sum_i (y[-1,b,i] - target[b,i])^2`` over *all* pixels (the visible half is clamped
in the baselines, so its error is 0 there). Metric: relative squared error on the occluded half,
``mean_occ (y - t)^2 / mean_all t^2`` (per pixel, relative to the whole image's mean energy) averaged
over the batch -- 0 for a perfect completion, 1.0 on average for an all-zero output (exactly
``mean_occ t^2 / mean_all t^2``), solved below 0.1. The reference is the whole image, not the
occluded half: a nearly flat occluded half (``sum_occ t^2`` down to 1e-5 of the median on crops
of natural images) made the earlier ``sum_occ (y-t)^2 / sum_occ t^2`` explode on a few episodes
(a near-perfect output scored 0.1 on average, 55% of it from 1% of the episodes); each image is
normalised to ``max |x| = 1``, so ``mean_all t^2 >= 1/n_pixels``. Results made before 2026-12-02
used the earlier form. :func:`occluded_mse` gives the plain per-pixel MSE on the occluded half.
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
    "DEFAULT_TEST_SOURCES",
    "CIFAR_BATCHES",
    "load_cifar10",
    "load_cifar10_batches",
    "load_skimage_gray",
    "normalize_images",
    "occluded_mse",
]

#: ``skimage.data`` images whose files ship inside the scikit-image wheel (no download needed).
SKIMAGE_SOURCES: tuple[str, ...] = (
    "astronaut", "brick", "camera", "cell", "chelsea", "clock", "coffee", "coins", "grass", "gravel",
    "hubble_deep_field", "immunohistochemistry", "moon", "page", "rocket", "text",
)
#: Photographs / natural textures of the train split by default (9 of the 12 images used).
DEFAULT_SOURCES: tuple[str, ...] = (
    "astronaut", "brick", "chelsea", "clock", "coins", "grass", "moon", "page", "rocket",
)
#: The held-out test images by default: a portrait, an object photograph, a texture.
DEFAULT_TEST_SOURCES: tuple[str, ...] = ("camera", "coffee", "gravel")
#: The batch files of the CIFAR-10 python layout.
CIFAR_BATCHES: tuple[str, ...] = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",)

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
        sources: ``skimage.data`` image names that the train split cuts patches from (subset of
            ``SKIMAGE_SOURCES``).
        test_sources: the test split's images, disjoint from ``sources``.
        split: the split :meth:`ImageTask.sample` draws from when not told (the trainer always
            asks for ``"train"``).
        min_std: patches whose raw pixel std (in [0,1] units) is below this are redrawn.
        cifar_root: if set, use CIFAR-10 images from this path instead of skimage patches
            (``patch_size`` must then be 32).
        cifar_train_batches, cifar_test_batches: the CIFAR-10 batch files (names from
            :data:`CIFAR_BATCHES`) of the train and test splits, disjoint; default
            ``data_batch_1..4`` / ``data_batch_5`` (the paper's protocol).
    """

    n_images: int = 3
    repeats: int = 3
    present_steps: int = 20
    gap_steps: int = 2
    test_steps: int = 3
    patch_size: int = 32
    sources: tuple[str, ...] = DEFAULT_SOURCES
    test_sources: tuple[str, ...] = DEFAULT_TEST_SOURCES
    split: Literal["train", "test"] = "train"
    min_std: float = 0.02
    cifar_root: str | None = None
    cifar_train_batches: tuple[str, ...] = CIFAR_BATCHES[:4]
    cifar_test_batches: tuple[str, ...] = (CIFAR_BATCHES[4],)

    def __post_init__(self) -> None:
        check_int("n_images", self.n_images, minimum=1)
        check_int("repeats", self.repeats, minimum=1)
        check_int("present_steps", self.present_steps, minimum=1)
        check_int("gap_steps", self.gap_steps, minimum=0)
        check_int("test_steps", self.test_steps, minimum=1)
        check_int("patch_size", self.patch_size, minimum=2)
        if self.patch_size % 2:
            raise ValueError(f"patch_size must be even (top/bottom halves), got {self.patch_size}")
        _disjoint_names(("sources", self.sources), ("test_sources", self.test_sources), SKIMAGE_SOURCES,
                        "the test images are held out from training")
        check_choice("split", self.split, ("train", "test"))
        check_float("min_std", self.min_std, low=0.0)
        if self.cifar_root is not None:
            if not isinstance(self.cifar_root, (str, Path)):
                raise TypeError(f"cifar_root must be a path string or None, got {type(self.cifar_root).__name__}")
            if self.patch_size != 32:
                raise ValueError(f"CIFAR-10 images are 32x32: patch_size must be 32, got {self.patch_size}")
        _disjoint_names(("cifar_train_batches", self.cifar_train_batches),
                        ("cifar_test_batches", self.cifar_test_batches), CIFAR_BATCHES,
                        "the test batches are held out from training")

    @property
    def n_pixels(self) -> int:
        return self.patch_size * self.patch_size

    @property
    def T(self) -> int:
        """``repeats * n_images * (present_steps + gap_steps) + test_steps``."""
        return self.repeats * self.n_images * (self.present_steps + self.gap_steps) + self.test_steps


def _disjoint_names(a: tuple[str, tuple[str, ...]], b: tuple[str, tuple[str, ...]], choices: tuple[str, ...],
                    why: str) -> None:
    """Both ``(name, value)`` are non-empty tuples of distinct names from ``choices``, sharing none."""
    for name, v in (a, b):
        if not isinstance(v, tuple) or not v or not all(isinstance(x, str) for x in v):
            raise TypeError(f"{name} must be a non-empty tuple of names from {list(choices)}, got {v!r}")
        for x in v:
            check_choice(f"{name}[...]", x, choices)
        if len(set(v)) != len(v):
            raise ValueError(f"{name} lists a name twice: {list(v)}")
    both = sorted(set(a[1]) & set(b[1]))
    if both:
        raise ValueError(f"{a[0]} and {b[0]} must be disjoint ({why}); both hold {both}")


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
    """Load CIFAR-10's standard splits from the ``cifar-10-batches-py`` pickle files at a user path.

    Args:
        root: the ``cifar-10-batches-py`` folder or its parent.
        split: ``"train"`` reads whichever of ``data_batch_1..5`` exist (at least one);
            ``"test"`` reads ``test_batch``. (The image task's splits name their batches:
            :func:`load_cifar10_batches`.)
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
        names: tuple[str, ...] = ("test_batch",)
    else:
        names = tuple(n for n in CIFAR_BATCHES[:5] if (d / n).is_file())
        if not names:
            raise FileNotFoundError(f"no data_batch_* files in {str(d)!r}; {_CIFAR_LAYOUT}")
    return load_cifar10_batches(root, names, grayscale=grayscale)


def _cifar_files(root: str | Path, batches: tuple[str, ...], option: str = "batches") -> list[Path]:
    """The paths of ``batches`` under ``root``, each checked to exist."""
    d = _cifar_dir(Path(root))
    files = [d / n for n in batches]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise FileNotFoundError(f"{option}: {missing} missing in {str(d)!r}; {_CIFAR_LAYOUT}")
    return files


def load_cifar10_batches(root: str | Path, batches: tuple[str, ...], *, grayscale: bool = True) -> tuple[Tensor, Tensor]:
    """The images of the CIFAR-10 batch files ``batches`` (names from :data:`CIFAR_BATCHES`), in that order.

    Returns and raises as :func:`load_cifar10` (``FileNotFoundError`` names the missing files).
    Only unpickle files you trust: pickle can execute code.
    """
    if not isinstance(batches, tuple) or not batches:
        raise TypeError(f"batches must be a non-empty tuple of names from {list(CIFAR_BATCHES)}, got {batches!r}")
    for n in batches:
        check_choice("batches[...]", n, CIFAR_BATCHES)
    files = _cifar_files(root, batches)
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
def _cifar_gray(root: str, batches: tuple[str, ...]) -> Tensor:
    return load_cifar10_batches(root, batches)[0]


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
    ``[B, n_pixels]`` bool, ``clamp`` (str, semantics), ``clamp_mask`` ``[T, B, n_pixels]`` bool,
    ``split`` (str), ``source_index`` ``[B, I]`` int64 (skimage: the source image of each patch, an
    index into :meth:`split_items`; CIFAR-10: the image's index in the split's batches, in order).
    """

    success_threshold: float = 0.1
    higher_is_better: bool = False
    data_splits: tuple[str, ...] = ("train", "test")

    def __init__(self, config: ImageConfig = IMAGES, *, name: str = "images") -> None:
        if not isinstance(config, ImageConfig):
            raise TypeError(f"config must be an ImageConfig, got {type(config).__name__}")
        self.config = config
        self.name = name
        self.n_in = config.n_pixels
        self.n_out = config.n_pixels
        self.T = config.T
        self._items: dict[str, tuple[str, ...]]
        if config.cifar_root is not None:
            self._items = {"train": config.cifar_train_batches, "test": config.cifar_test_batches}
            for name, batches in (("cifar_train_batches", config.cifar_train_batches),
                                  ("cifar_test_batches", config.cifar_test_batches)):
                _cifar_files(config.cifar_root, batches, name)  # fail now, not at the first test episode
            self._sources: dict[str, list[Tensor]] = {}
        else:
            self._items = {"train": config.sources, "test": config.test_sources}
            self._sources = {split: [torch.from_numpy(load_skimage_gray(s)) for s in names]
                             for split, names in self._items.items()}
            small = [s for split, names in self._items.items() for s, im in zip(names, self._sources[split])
                     if min(im.shape) < config.patch_size]
            if small:
                raise ValueError(f"patch_size {config.patch_size} exceeds the size of source image(s) {small}")

    def split_items(self, split: str) -> tuple[str, ...]:
        """The source images (skimage names) or CIFAR-10 batch files of ``split``."""
        return self._items[check_choice("split", split, self.data_splits)]

    def describe_split(self, split: str) -> str:
        items = ", ".join(self.split_items(split))
        if self.config.cifar_root is not None:
            return f"{split} split: CIFAR-10 {items}"
        return f"{split} split: crops of the skimage images {items}"

    def _draw_images(self, n: int, g: torch.Generator, split: str) -> tuple[Tensor, Tensor]:
        """``n`` raw images ``[n, n_pixels]`` in ``[0, 1]`` and their source indices ``[n]`` (CPU)."""
        ps = self.config.patch_size
        cpu = torch.device("cpu")
        if self.config.cifar_root is not None:
            pool = _cifar_gray(str(self.config.cifar_root), self._items[split])  # loaded on first use
            idx = randint(0, pool.shape[0], (n,), g, cpu)
            return pool[idx].reshape(n, -1), idx
        sources = self._sources[split]
        out = torch.empty(n, ps * ps)
        which = torch.empty(n, dtype=torch.long)
        for k in range(n):
            for _attempt in range(20):
                i = int(randint(0, len(sources), (1,), g, cpu))
                src = sources[i]
                h, w = src.shape
                r = int(randint(0, h - ps + 1, (1,), g, cpu))
                c = int(randint(0, w - ps + 1, (1,), g, cpu))
                patch = src[r : r + ps, c : c + ps]
                if float(patch.std()) >= self.config.min_std:
                    break
            out[k] = patch.reshape(-1)
            which[k] = i
        return out, which

    def sample(
        self,
        batch: int,
        generator: torch.Generator,
        device: torch.device | str = "cpu",
        *,
        split: Literal["train", "test"] | None = None,
    ) -> Episode:
        """Draw ``batch`` episodes from the images of ``split`` (default: ``config.split``)."""
        cfg = self.config
        b = check_batch(batch)
        g = check_generator(generator)
        dev = as_device(device)
        split = cfg.split if split is None else check_choice("split", split, self.data_splits)  # type: ignore[assignment]
        n_img, reps, npx = cfg.n_images, cfg.repeats, cfg.n_pixels

        raw, source_index = self._draw_images(b * n_img, g, split)  # type: ignore[arg-type]
        images = normalize_images(raw).reshape(b, n_img, npx).to(dev)
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
                "split": split,
                "source_index": source_index.reshape(b, n_img).to(dev),
            },
        )

    def reference_errors(self, episode: Episode) -> dict[str, float]:
        """The metric of two completions that store nothing, on ``episode`` (one of :meth:`sample`'s):
        the floor a network must beat to show it recalled the image rather than guessed it.

        - ``zeros``: the visible half copied, the occluded half 0 (the images' mean: about 1.0);
        - ``edge_row``: the visible half copied, every occluded row filled with the visible row next
          to the cut (a smoothness guess from the visible half alone).
        """
        info = episode.info
        if not {"occluded", "bottom_zeroed"} <= set(info):
            raise ValueError("episode must come from ImageTask.sample (info needs 'occluded', 'bottom_zeroed'), "
                             f"got info keys {sorted(info)}")
        t, occ, bottom = episode.targets, info["occluded"], info["bottom_zeroed"]
        ps, half = self.config.patch_size, self.config.patch_size // 2
        img = t.reshape(-1, ps, ps)
        edge = torch.where(bottom[:, None], img[:, half - 1], img[:, half])            # [B, ps]
        fill = edge[:, None, :].expand(-1, ps, ps).reshape(t.shape)
        zeros = t.masked_fill(occ, 0.0)
        edge_row = torch.where(occ, fill, t)
        return {"zeros": self.metric(zeros[None], episode), "edge_row": self.metric(edge_row[None], episode)}

    def loss(self, outputs: Tensor, episode: Episode) -> Tensor:
        """``mean_b sum_i (outputs[-1] - targets)^2`` over all pixels."""
        y = check_outputs(outputs, self.n_out, batch=episode.targets.shape[0])[-1]
        return ((y - episode.targets) ** 2).sum(dim=-1).mean()

    def metric(self, outputs: Tensor, episode: Episode) -> float:
        """Relative squared error on the occluded half, per episode relative to the whole image's
        energy: ``mean_b [mean_occ (y-t)^2 / mean_all t^2]`` (module docstring)."""
        y = check_outputs(outputs, self.n_out, batch=episode.targets.shape[0])[-1].detach()
        occ = _occluded(episode).to(y.dtype)
        err = (((y - episode.targets) ** 2) * occ).sum(-1) / occ.sum(-1).clamp_min(1.0)
        ref = (episode.targets**2).mean(-1).clamp_min(1e-12)
        return float((err / ref).mean())

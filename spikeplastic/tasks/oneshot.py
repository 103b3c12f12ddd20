"""N-way K-shot classification (Miconi, Clune & Stanley 2018, section 4.4: Omniglot 5-way 1-shot).

Episode (per batch element)::

    pick N distinct classes of the split; label them 0..N-1 (random assignment)
    rotate every image of class n by rot[n] * 90 degrees, rot[n] uniform in {0,1,2,3}   (per episode)
    steps 0 .. N*K-1 : the N*K support images (K per class) in random order, each with its one-hot label
    step  N*K        : the query image (a further, unseen instance of one of the N classes), label zeros

    T = N*K + 1 (6 for 5-way 1-shot);  inputs [T, B, S*S + N] = [flattened image | one-hot label]

The paper's network clamps its output units to the label during support steps; here the label is
simply the last ``N`` input entries, and a model routes it where it wants. Target: the query's label
``[B]`` (int64). Only the last output step is used.

Loss (``loss="bce"``, the paper's): binary cross-entropy between ``softmax(y[-1])`` and the one-hot
target, averaged over batch and classes (``torch.nn.BCELoss`` semantics, computed stably from the
logits). ``loss="ce"``: softmax cross-entropy. Metric: query accuracy (solved at >= 0.9).

Data:
  * Omniglot (``root=...``): the standard layout ``<root>/images_background/<alphabet>/<character>/*.png``
    and/or ``<root>/images_evaluation/...``. Characters are ordered background alphabets first,
    then evaluation alphabets, each sorted. Images are converted to grayscale, inverted (strokes
    1, background 0) and resized to ``image_size`` (31x31) with PIL's Lanczos filter.
  * Built-in fallback (``root=None``): scikit-learn's ``load_digits`` (1797 8x8 digits, shipped
    offline), scaled to [0, 1] and bilinearly upsampled to ``image_size`` so the same conv net
    applies (10 classes: with 5 per split a 5-way episode always uses all 5 classes of its split --
    only the label assignment, instances and rotations vary). With rotations on, 6 and 9 (one is
    the other turned by 180 degrees) are always in the same split (:data:`DIGIT_ROTATION_TWINS`).

Train/test classes (disjoint; the trainer samples ``"train"`` only, held-out evaluation ``"test"``),
``class_split``:
  * ``"random"`` (default, the paper's): all classes shuffled by ``torch.randperm(C, generator
    seeded split_seed)``; the last ``n_test_classes`` of that order are the test split (100 by
    default -> 1523/100 for the full 1623-character set; 5/5 for the digits). ``split_seed``
    ``None`` means 0 when the task is built alone; a training run binds it to the run's seed
    (:func:`spikeplastic.meta.build.run_task_kwargs`), so every run holds out its own classes.
  * ``"alphabet"`` (Omniglot only): ``images_background`` alphabets train, ``images_evaluation``
    alphabets test (the standard alphabet-disjoint split, 964/659 characters).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from ..protocol import Episode, SupervisedTask
from ._common import (
    as_device,
    check_batch,
    check_choice,
    check_generator,
    check_int,
    check_outputs,
    rand,
    randint,
    random_permutations,
)

__all__ = [
    "OneShotConfig",
    "OneShotTask",
    "ONESHOT",
    "ClassImages",
    "load_omniglot",
    "load_digits_classes",
    "bce_softmax_loss",
    "random_class_split",
    "DIGIT_ROTATION_TWINS",
]

_OMNIGLOT_LAYOUT = (
    "expected the standard Omniglot layout: <root>/images_background/<alphabet>/<character>/*.png "
    "and/or <root>/images_evaluation/<alphabet>/<character>/*.png"
)
_CPU = torch.device("cpu")


@dataclass(frozen=True, kw_only=True)
class OneShotConfig:
    """One-shot task parameters (keyword-only, frozen; unknown keys raise ``TypeError``).

    Attributes:
        n_way: classes per episode (N >= 2).
        k_shot: labelled examples per class (K >= 1).
        image_size: side of the square images fed to the model.
        rotate: random multiple-of-90-degree rotation per class and episode.
        root: Omniglot root folder; ``None`` uses the scikit-learn digits fallback.
        split: default split for :meth:`OneShotTask.sample` (``"train"`` or ``"test"``; the trainer
            always asks for ``"train"``).
        class_split: how classes are split into train and test, ``"random"`` or ``"alphabet"``
            (module docstring).
        split_seed: seed of the ``"random"`` class split; ``None``: 0, or the run's seed when a
            trainer builds the task.
        n_test_classes: test classes of the ``"random"`` split; ``None`` means
            ``min(100, n_classes // 2)``. Not with ``"alphabet"``.
        loss: ``"bce"`` (paper) or ``"ce"``.
    """

    n_way: int = 5
    k_shot: int = 1
    image_size: int = 31
    rotate: bool = True
    root: str | None = None
    split: Literal["train", "test"] = "train"
    class_split: Literal["random", "alphabet"] = "random"
    split_seed: int | None = None
    n_test_classes: int | None = None
    loss: Literal["bce", "ce"] = "bce"

    def __post_init__(self) -> None:
        check_int("n_way", self.n_way, minimum=2)
        check_int("k_shot", self.k_shot, minimum=1)
        check_int("image_size", self.image_size, minimum=2)
        if not isinstance(self.rotate, bool):
            raise TypeError(f"rotate must be a bool, got {type(self.rotate).__name__}")
        if self.root is not None and not isinstance(self.root, (str, Path)):
            raise TypeError(f"root must be a path string or None, got {type(self.root).__name__}")
        check_choice("split", self.split, ("train", "test"))
        check_choice("class_split", self.class_split, ("random", "alphabet"))
        if self.split_seed is not None:
            check_int("split_seed", self.split_seed, minimum=0)
        if self.n_test_classes is not None:
            check_int("n_test_classes", self.n_test_classes, minimum=1)
            if self.class_split == "alphabet":
                raise ValueError("n_test_classes applies to class_split='random' only: with 'alphabet' the test "
                                 "classes are those of images_evaluation/ (leave n_test_classes None)")
        check_choice("loss", self.loss, ("bce", "ce"))

    @property
    def T(self) -> int:
        return self.n_way * self.k_shot + 1


#: Omniglot-style 5-way 1-shot on the digits fallback (set ``root`` for real Omniglot).
ONESHOT = OneShotConfig()


@dataclass(frozen=True)
class ClassImages:
    """Images grouped by class, padded to a common count.

    Attributes:
        images: float32 ``[C, M, S, S]`` in ``[0, 1]``; entries past ``counts[c]`` are zero padding.
        counts: int64 ``[C]`` instances per class.
        names: class names (``"alphabet/character"`` or ``"digit_7"``).
        groups: the folder each class comes from (``"images_background"`` / ``"images_evaluation"``);
            ``()`` for data without such groups (the digits).
    """

    images: Tensor
    counts: Tensor
    names: tuple[str, ...]
    groups: tuple[str, ...] = ()

    @property
    def n_classes(self) -> int:
        return len(self.names)

    def subset(self, idx: list[int]) -> ClassImages:
        """The classes ``idx`` (in that order)."""
        sel = torch.as_tensor(idx, dtype=torch.long)
        counts = self.counts[sel]
        m = int(counts.max()) if len(idx) else 0
        groups = tuple(self.groups[i] for i in idx) if self.groups else ()
        return ClassImages(self.images[sel, :m].clone(), counts, tuple(self.names[i] for i in idx), groups)


def _stack_classes(per_class: list[Tensor], names: list[str], groups: list[str] | None = None) -> ClassImages:
    m = max(t.shape[0] for t in per_class)
    s = per_class[0].shape[-1]
    images = torch.zeros(len(per_class), m, s, s)
    for c, t in enumerate(per_class):
        images[c, : t.shape[0]] = t
    counts = torch.tensor([t.shape[0] for t in per_class], dtype=torch.long)
    return ClassImages(images, counts, tuple(names), tuple(groups or ()))


def load_omniglot(root: str | Path, image_size: int = 31) -> ClassImages:
    """Load every Omniglot character under ``root`` (layout in the module docstring).

    Classes are ordered: ``images_background`` alphabets then ``images_evaluation`` alphabets,
    each sorted by alphabet then character name. Images: grayscale, inverted (strokes 1), Lanczos
    resized to ``image_size x image_size``.

    Raises:
        FileNotFoundError: ``root`` or both ``images_*`` folders are missing (states the layout).
        ValueError: no ``<alphabet>/<character>/*.png`` found, or a PNG cannot be read.
    """
    check_int("image_size", image_size, minimum=2)
    return _load_omniglot_cached(str(Path(root).resolve()), image_size)


@functools.lru_cache(maxsize=2)
def _load_omniglot_cached(root_s: str, image_size: int) -> ClassImages:
    try:
        from PIL import Image
    except ImportError as e:  # pragma: no cover - optional dependency
        raise ImportError("loading Omniglot needs Pillow: pip install 'spikeplastic[data]'") from e
    root = Path(root_s)
    if not root.is_dir():
        raise FileNotFoundError(f"Omniglot root {root_s!r} is not a directory; {_OMNIGLOT_LAYOUT}")
    parts = [root / p for p in ("images_background", "images_evaluation") if (root / p).is_dir()]
    if not parts:
        raise FileNotFoundError(f"neither images_background/ nor images_evaluation/ in {root_s!r}; {_OMNIGLOT_LAYOUT}")
    per_class: list[Tensor] = []
    names: list[str] = []
    groups: list[str] = []
    for part in parts:
        for alphabet in sorted(p for p in part.iterdir() if p.is_dir()):
            for char in sorted(p for p in alphabet.iterdir() if p.is_dir()):
                files = sorted(char.glob("*.png"))
                if not files:
                    continue
                imgs = []
                for f in files:
                    try:
                        with Image.open(f) as im:
                            im = im.convert("L").resize((image_size, image_size), Image.Resampling.LANCZOS)
                            arr = torch.frombuffer(bytearray(im.tobytes()), dtype=torch.uint8)
                    except OSError as e:
                        raise ValueError(f"cannot read Omniglot image {str(f)!r}: {e}") from e
                    imgs.append(1.0 - arr.float().reshape(image_size, image_size) / 255.0)
                per_class.append(torch.stack(imgs))
                names.append(f"{alphabet.name}/{char.name}")
                groups.append(part.name)
    if not per_class:
        raise ValueError(f"no <alphabet>/<character>/*.png files under {root_s!r}; {_OMNIGLOT_LAYOUT}")
    return _stack_classes(per_class, names, groups)


@functools.lru_cache(maxsize=2)
def load_digits_classes(image_size: int = 31) -> ClassImages:
    """scikit-learn's digits (shipped offline) as 10 classes, ``[0,1]``, bilinearly resized to ``image_size``."""
    check_int("image_size", image_size, minimum=2)
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:  # pragma: no cover - optional dependency
        raise ImportError("the digits fallback needs scikit-learn: pip install 'spikeplastic[data]'") from e
    d = load_digits()
    x = torch.as_tensor(d.images, dtype=torch.float32) / 16.0                   # [1797, 8, 8]
    if image_size != 8:
        x = F.interpolate(x.unsqueeze(1), size=(image_size, image_size), mode="bilinear", align_corners=False)
        x = x.squeeze(1).clamp(0.0, 1.0)
    y = torch.as_tensor(d.target, dtype=torch.long)
    return _stack_classes([x[y == c] for c in range(10)], [f"digit_{c}" for c in range(10)])


#: digit classes that a multiple-of-90-degree rotation maps onto each other (a 6 turned by 180 degrees
#: is a 9): with rotations on, the digits' random split keeps them on the same side, so that no test
#: class is a rotated training class
DIGIT_ROTATION_TWINS: tuple[tuple[str, ...], ...] = (("digit_6", "digit_9"),)


def random_class_split(names: tuple[str, ...], n_test: int, seed: int,
                       twins: tuple[tuple[str, ...], ...] = ()) -> tuple[list[int], list[int]]:
    """Train and test class indices (sorted): ``order = randperm(C, seed)``, test = its last ``n_test``.

    Each group in ``twins`` moves as one unit, at the place of its member latest in ``order``: units
    are taken from the end of the order while they fit into ``n_test`` (with no twins, or twins on
    one side of the plain split, this is exactly the plain split).
    """
    c = len(names)
    order = torch.randperm(c, generator=torch.Generator().manual_seed(seed)).tolist()
    if not twins:
        return sorted(order[: c - n_test]), sorted(order[c - n_test:])
    index = {n: i for i, n in enumerate(names)}
    unit_of: dict[int, tuple[int, ...]] = {}
    for group in twins:
        members = tuple(index[n] for n in group if n in index)
        for m in members:
            unit_of[m] = members
    test: list[int] = []
    seen: set[int] = set()
    for i in reversed(order):
        if i in seen:
            continue
        unit = unit_of.get(i, (i,))
        seen.update(unit)
        if len(test) + len(unit) <= n_test:
            test.extend(unit)
        if len(test) == n_test:
            break
    if len(test) != n_test:
        raise ValueError(f"cannot hold out {n_test} classes with the groups {twins} kept together")
    return sorted(set(range(c)) - set(test)), sorted(test)


def bce_softmax_loss(logits: Tensor, target: Tensor) -> Tensor:
    """``BCELoss(softmax(logits), one_hot(target))`` (mean over ``[B, N]``), from logits, stably.

    ``log p_i = z_i - lse(z)``, ``log(1 - p_i) = lse_{j != i}(z_j) - lse(z)``.
    """
    n = logits.shape[-1]
    lse = torch.logsumexp(logits, dim=-1, keepdim=True)
    log_p = logits - lse
    eye = torch.eye(n, dtype=torch.bool, device=logits.device)
    others = logits.unsqueeze(-2).expand(*logits.shape[:-1], n, n).masked_fill(eye, float("-inf"))
    log_1mp = torch.logsumexp(others, dim=-1) - lse
    onehot = F.one_hot(target, n).to(logits.dtype)
    return -(onehot * log_p + (1.0 - onehot) * log_1mp).mean()


class OneShotTask(SupervisedTask):
    """N-way K-shot classification as a :class:`SupervisedTask` (schedule in the module docstring).

    Shapes:
        inputs ``[N*K+1, B, S*S + N]``; targets ``[B]`` int64; mask ``[T, B]`` (last step only);
        model outputs ``[T', B, N]`` logits (only the last step is used).

    ``info`` keys: ``classes`` ``[B, N]`` (class index within the split for labels 0..N-1),
    ``rotations`` ``[B, N]`` (quarter turns), ``support_labels`` ``[B, N*K]``, ``split`` (str),
    ``class_names`` (tuple of the split's class names).

    ``splits``: the :class:`ClassImages` of ``"train"`` and ``"test"`` (module docstring);
    ``split_seed``: the seed the ``"random"`` split was drawn with.
    """

    success_threshold: float = 0.9
    higher_is_better: bool = True
    data_splits: tuple[str, ...] = ("train", "test")
    metric_is_binary: bool = True  # one query per episode

    def __init__(self, config: OneShotConfig = ONESHOT, *, name: str = "oneshot") -> None:
        if not isinstance(config, OneShotConfig):
            raise TypeError(f"config must be a OneShotConfig, got {type(config).__name__}")
        self.config = config
        self.name = name
        s = config.image_size
        self.n_in = s * s + config.n_way
        self.n_out = config.n_way
        self.T = config.T
        self.split_seed = 0 if config.split_seed is None else config.split_seed
        if config.root is None:
            if config.class_split == "alphabet":
                raise ValueError("class_split='alphabet' needs Omniglot (root=...): the digits fallback has no "
                                 "alphabets; use class_split='random'")
            data = load_digits_classes(s)
        else:
            data = load_omniglot(config.root, s)
        c = data.n_classes
        if config.class_split == "random":
            n_test = config.n_test_classes if config.n_test_classes is not None else min(100, c // 2)
            if n_test >= c:
                raise ValueError(f"n_test_classes={n_test} leaves no training classes (dataset has {c})")
            twins = DIGIT_ROTATION_TWINS if config.root is None and config.rotate else ()
            train_idx, test_idx = random_class_split(data.names, n_test, self.split_seed, twins)
        else:
            train_idx = [i for i, g in enumerate(data.groups) if g == "images_background"]
            test_idx = [i for i, g in enumerate(data.groups) if g == "images_evaluation"]
            if not train_idx or not test_idx:
                raise ValueError(f"class_split='alphabet' needs both images_background/ (train) and "
                                 f"images_evaluation/ (test) under root {str(config.root)!r}; {_OMNIGLOT_LAYOUT}")
        self.splits: dict[str, ClassImages] = {"train": data.subset(train_idx), "test": data.subset(test_idx)}
        for split, d in self.splits.items():
            if d.n_classes < config.n_way:
                raise ValueError(
                    f"the {split} split has {d.n_classes} classes, fewer than n_way={config.n_way}"
                )
            if int(d.counts.min()) < config.k_shot + 1:
                raise ValueError(
                    f"every class needs k_shot + 1 = {config.k_shot + 1} images; the {split} split has a class "
                    f"with {int(d.counts.min())}"
                )

    def split_items(self, split: str) -> tuple[str, ...]:
        """The class names of ``split``."""
        return self.splits[check_choice("split", split, self.data_splits)].names

    def describe_split(self, split: str) -> str:
        cfg = self.config
        n = self.splits[check_choice("split", split, self.data_splits)].n_classes
        total = sum(d.n_classes for d in self.splits.values())
        data = "digits" if cfg.root is None else "Omniglot"
        how = (f"drawn at random with split_seed {self.split_seed}" if cfg.class_split == "random"
               else "alphabet-disjoint: " + ("images_background" if split == "train" else "images_evaluation"))
        names = self.split_items(split)
        listed = f" ({', '.join(names)})" if len(names) <= 10 else ""
        return f"{split} split: {n} of {total} {data} classes{listed}, {how}"

    def sample(
        self,
        batch: int,
        generator: torch.Generator,
        device: torch.device | str = "cpu",
        *,
        split: Literal["train", "test"] | None = None,
    ) -> Episode:
        """Draw ``batch`` episodes from ``split`` (default: ``config.split``)."""
        cfg = self.config
        b = check_batch(batch)
        g = check_generator(generator)
        dev = as_device(device)
        split = cfg.split if split is None else check_choice("split", split, ("train", "test"))  # type: ignore[assignment]
        data = self.splits[split]  # type: ignore[index]
        n, k, s = cfg.n_way, cfg.k_shot, cfg.image_size
        c, m = data.n_classes, data.images.shape[1]

        # N distinct classes per episode (position = label), K+1 distinct instances per class.
        classes = rand((b, c), g, _CPU).argsort(dim=-1)[:, :n]                       # [B, N]
        keys = rand((b, n, m), g, _CPU)
        valid = torch.arange(m) < data.counts[classes].unsqueeze(-1)                   # [B, N, M]
        inst = keys.masked_fill(~valid, 2.0).argsort(dim=-1)[..., : k + 1]             # [B, N, K+1]
        imgs = data.images[classes.unsqueeze(-1), inst]                                 # [B, N, K+1, S, S]
        rot = randint(0, 4, (b, n), g, _CPU) if cfg.rotate else torch.zeros(b, n, dtype=torch.long)
        for q in (1, 2, 3):
            sel = rot == q
            if bool(sel.any()):
                imgs[sel] = torch.rot90(imgs[sel], q, dims=(-2, -1))

        perm = random_permutations((b, n * k), g, _CPU)                                # support order
        support = imgs[:, :, :k].reshape(b, n * k, s * s).gather(1, perm.unsqueeze(-1).expand(b, n * k, s * s))
        support_labels = torch.arange(n).repeat_interleave(k).unsqueeze(0).expand(b, -1).gather(1, perm)
        query_label = randint(0, n, (b,), g, _CPU)
        query = imgs[torch.arange(b), query_label, k].reshape(b, s * s)

        img_seq = torch.cat([support, query.unsqueeze(1)], dim=1)                      # [B, T, S*S]
        lab_seq = torch.cat([F.one_hot(support_labels, n).float(), torch.zeros(b, 1, n)], dim=1)
        inputs = torch.cat([img_seq, lab_seq], dim=-1).transpose(0, 1).contiguous().to(dev)
        mask = torch.zeros(self.T, b, dtype=torch.bool, device=dev)
        mask[-1] = True
        return Episode(
            inputs=inputs,
            targets=query_label.to(dev),
            mask=mask,
            info={
                "classes": classes.to(dev),
                "rotations": rot.to(dev),
                "support_labels": support_labels.to(dev),
                "split": split,
                "class_names": data.names,
            },
        )

    def loss(self, outputs: Tensor, episode: Episode) -> Tensor:
        """BCE on ``softmax(outputs[-1])`` (``loss="bce"``) or softmax cross-entropy (``"ce"``)."""
        z = check_outputs(outputs, self.n_out, batch=episode.targets.shape[0])[-1]
        if self.config.loss == "ce":
            return F.cross_entropy(z, episode.targets)
        return bce_softmax_loss(z, episode.targets)

    def metric(self, outputs: Tensor, episode: Episode) -> float:
        """Query accuracy: ``mean(argmax(outputs[-1]) == targets)``."""
        z = check_outputs(outputs, self.n_out, batch=episode.targets.shape[0])[-1].detach()
        return float((z.argmax(dim=-1) == episode.targets).float().mean())

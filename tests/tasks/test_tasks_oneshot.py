"""One-shot classification: Omniglot loader on a generated folder, digits fallback, episodes, loss."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch.testing import assert_close

from spikeplastic.tasks import OneShotConfig, OneShotTask, load_digits_classes, load_omniglot
from spikeplastic.tasks.oneshot import bce_softmax_loss


def _write_omniglot(root: Path, n_chars: int = 4, n_imgs: int = 3) -> None:
    """Tiny Omniglot-layout folder: 105x105 PNGs, white background, a black block whose
    position encodes the class and whose size encodes the instance."""
    for part, alphabet in (("images_background", "Alpha"), ("images_evaluation", "Beta")):
        for c in range(n_chars):
            d = root / part / alphabet / f"character{c + 1:02d}"
            d.mkdir(parents=True)
            cls = c + (0 if alphabet == "Alpha" else n_chars)
            for i in range(n_imgs):
                a = np.full((105, 105), 255, dtype=np.uint8)
                r0 = 10 * cls
                a[r0 : r0 + 15 + 6 * i, 5 : 60] = 0
                Image.fromarray(a).save(d / f"{cls:04d}_{i:02d}.png")


@pytest.fixture
def omniglot(tmp_path: Path) -> Path:
    _write_omniglot(tmp_path)
    return tmp_path


def test_omniglot_loader(omniglot: Path) -> None:
    data = load_omniglot(omniglot)
    assert data.names == tuple([f"Alpha/character{c:02d}" for c in range(1, 5)] + [f"Beta/character{c:02d}" for c in range(1, 5)])
    assert data.images.shape == (8, 3, 31, 31) and data.counts.tolist() == [3] * 8
    img = data.images[0, 0]
    assert img.min() >= 0 and img.max() <= 1
    assert img[0, 30].item() == pytest.approx(0.0, abs=1e-6)  # background (white) -> 0
    assert img[2, 10].item() == pytest.approx(1.0, abs=0.05)  # inside the stroke block -> ~1 (Lanczos)


def test_omniglot_split_is_disjoint_and_episodes_come_from_it(omniglot: Path, gen) -> None:
    alpha = tuple(f"Alpha/character{c:02d}" for c in range(1, 5))
    beta = tuple(f"Beta/character{c:02d}" for c in range(1, 5))
    task = OneShotTask(OneShotConfig(root=str(omniglot), n_way=3, rotate=False, class_split="alphabet"))
    assert task.split_items("train") == alpha and task.split_items("test") == beta  # background / evaluation
    rand = OneShotTask(OneShotConfig(root=str(omniglot), n_way=3, rotate=False, split_seed=1))
    train, test = rand.splits["train"], rand.splits["test"]
    assert len(test.names) == 4 and set(train.names).isdisjoint(test.names)  # min(100, 8 // 2) = 4 test
    assert set(train.names) | set(test.names) == set(alpha + beta)
    assert test.names not in (alpha, beta)  # seed 1 mixes the alphabets
    for t in (task, rand):
        for split, data in t.splits.items():
            ep = t.sample(5, gen(1), split=split)  # type: ignore[arg-type]
            assert ep.info["class_names"] == data.names
            _check_episode_images(ep, data, n=3, k=1)


def _check_episode_images(ep, data, n: int, k: int) -> None:
    s = data.images.shape[-1]
    x = ep.inputs
    for b in range(x.shape[1]):
        classes, rots = ep.info["classes"][b], ep.info["rotations"][b]
        for t in range(x.shape[0]):
            img = x[t, b, : s * s].reshape(s, s)
            label = ep.targets[b].item() if t == x.shape[0] - 1 else int(x[t, b, s * s :].argmax())
            unrot = torch.rot90(img, -int(rots[label]), dims=(0, 1))
            inst = data.images[classes[label], : data.counts[classes[label]]]
            assert ((inst - unrot).abs().amax(dim=(-2, -1)) < 1e-6).any(), "image not from its labelled class"
        support = x[:-1, b, : s * s]
        assert not (support - x[-1, b, : s * s]).abs().amax(-1).eq(0).any(), "query repeats a support image"


def test_omniglot_layout_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"images_background/<alphabet>/<character>/\*\.png"):
        load_omniglot(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="images_background"):
        load_omniglot(tmp_path)
    (tmp_path / "images_background" / "Alpha" / "character01").mkdir(parents=True)
    with pytest.raises(ValueError, match="png"):
        load_omniglot(tmp_path)
    with pytest.raises(FileNotFoundError):
        OneShotTask(OneShotConfig(root=str(tmp_path / "nowhere")))


def test_omniglot_too_few_classes(omniglot: Path) -> None:
    with pytest.raises(ValueError, match="n_way"):
        OneShotTask(OneShotConfig(root=str(omniglot), n_way=5))
    with pytest.raises(ValueError, match="k_shot"):
        OneShotTask(OneShotConfig(root=str(omniglot), n_way=2, k_shot=3))
    with pytest.raises(ValueError, match="n_test_classes=8 leaves no training classes"):
        OneShotTask(OneShotConfig(root=str(omniglot), n_way=2, n_test_classes=8))
    only_bg = omniglot / "bg_only"
    only_bg.mkdir()
    (omniglot / "images_background").rename(only_bg / "images_background")
    with pytest.raises(ValueError, match=r"class_split='alphabet' needs both images_background/ .* images_evaluation/"):
        OneShotTask(OneShotConfig(root=str(only_bg), n_way=2, class_split="alphabet"))


def test_digits_fallback_split() -> None:
    """The random class split: 5 + 5 disjoint digits, a function of split_seed alone (the paper's protocol)."""
    data = load_digits_classes(31)
    assert data.images.shape[0] == 10 and data.images.shape[-2:] == (31, 31)
    assert data.images.min() >= 0 and data.images.max() <= 1
    task = OneShotTask()
    train, test = task.split_items("train"), task.split_items("test")
    assert len(train) == len(test) == 5 and set(train) | set(test) == {f"digit_{d}" for d in range(10)}
    assert int(task.splits["train"].counts.sum() + task.splits["test"].counts.sum()) == 1797
    # randperm(10, seed 0)'s last 5 are the test classes (6 and 9 are on one side of it)
    order = torch.randperm(10, generator=torch.Generator().manual_seed(0)).tolist()
    assert (6 in order[5:]) == (9 in order[5:])
    assert test == tuple(f"digit_{d}" for d in sorted(order[5:]))
    assert OneShotTask(OneShotConfig(split_seed=0)).split_items("test") == test
    assert {OneShotTask(OneShotConfig(split_seed=s)).split_items("test") for s in (1, 2)} - {test}
    assert "random with split_seed 0" in task.describe_split("test")
    with pytest.raises(ValueError, match="class_split='alphabet' needs Omniglot"):
        OneShotTask(OneShotConfig(class_split="alphabet"))


@pytest.mark.parametrize("n,k", [(5, 1), (3, 2)])
def test_episode_structure(n: int, k: int, gen) -> None:
    task = OneShotTask(OneShotConfig(n_way=n, k_shot=k))
    b = 16
    ep = task.sample(b, gen(2))
    assert task.T == n * k + 1 and task.n_in == 31 * 31 + n and task.n_out == n
    assert ep.inputs.shape == (n * k + 1, b, 961 + n) and ep.targets.shape == (b,)
    labels = ep.inputs[:, :, 961:]
    assert (labels[:-1].sum(-1) == 1).all() and (labels[-1] == 0).all()
    counts = labels[:-1].sum(0)  # [B, N]
    assert (counts == k).all()
    assert ((ep.targets >= 0) & (ep.targets < n)).all()
    assert torch.equal(ep.info["support_labels"], labels[:-1].argmax(-1).T)
    assert ep.mask is not None and ep.mask[-1].all() and not ep.mask[:-1].any()
    _check_episode_images(ep, task.splits["train"], n, k)


def test_rotations_and_determinism(gen) -> None:
    task = OneShotTask()
    ep = task.sample(64, gen(3))
    assert set(ep.info["rotations"].unique().tolist()) == {0, 1, 2, 3}
    ep2 = task.sample(64, gen(3))
    assert torch.equal(ep.inputs, ep2.inputs) and torch.equal(ep.targets, ep2.targets)
    assert not torch.equal(ep.inputs, task.sample(64, gen(4)).inputs)
    assert (OneShotTask(OneShotConfig(rotate=False)).sample(8, gen(0)).info["rotations"] == 0).all()
    test_ep = task.sample(8, gen(0), split="test")
    assert test_ep.info["split"] == "test" and test_ep.info["class_names"] == task.split_items("test")


def test_loss_and_metric(gen) -> None:
    torch.manual_seed(0)
    logits = torch.randn(7, 5, dtype=torch.float64)
    target = torch.randint(0, 5, (7,))
    ref = torch.nn.BCELoss()(torch.softmax(logits, -1), F.one_hot(target, 5).double())
    assert_close(bce_softmax_loss(logits, target), ref)
    big = torch.tensor([[60.0, -60.0]], dtype=torch.float64)  # saturated softmax stays finite
    assert torch.isfinite(bce_softmax_loss(big, torch.tensor([1]))).all()

    task = OneShotTask()
    ep = task.sample(4, gen(5))
    out = torch.zeros(task.T, 4, 5)
    out[-1] = F.one_hot(ep.targets, 5).float() * 3.0
    assert task.metric(out, ep) == 1.0
    out[-1, 0] = torch.roll(out[-1, 0], 1)
    assert task.metric(out, ep) == 0.75
    ce = OneShotTask(OneShotConfig(loss="ce"))
    assert_close(ce.loss(out, ep), F.cross_entropy(out[-1], ep.targets))
    assert_close(task.loss(out, ep), bce_softmax_loss(out[-1], ep.targets))


def test_config_errors() -> None:
    with pytest.raises(ValueError, match="split"):
        OneShotConfig(split="val")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n_way"):
        OneShotConfig(n_way=1)
    with pytest.raises(ValueError, match="n_way"):
        OneShotTask(OneShotConfig(n_way=6))  # digits splits have 5 classes
    with pytest.raises(TypeError):
        OneShotConfig(ways=5)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="class_split"):
        OneShotConfig(class_split="sorted")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="split_seed"):
        OneShotConfig(split_seed=-1)
    with pytest.raises(ValueError, match="n_test_classes applies to class_split='random' only"):
        OneShotConfig(class_split="alphabet", n_test_classes=10)


def test_digits_split_keeps_6_and_9_together_under_rotation() -> None:
    """A 6 turned by 180 degrees is a 9: with rotations on, no split seed puts them on different sides
    (without the rule 9 of these 20 seeds would); without rotations the plain split stands."""
    separated = 0
    for seed in range(20):
        order = torch.randperm(10, generator=torch.Generator().manual_seed(seed)).tolist()
        plain_test = {f"digit_{d}" for d in order[5:]}
        apart = ("digit_6" in plain_test) != ("digit_9" in plain_test)
        separated += apart
        test = set(OneShotTask(OneShotConfig(split_seed=seed)).split_items("test"))
        assert len(test) == 5 and ("digit_6" in test) == ("digit_9" in test), seed
        if not apart:
            assert test == plain_test, seed
        assert set(OneShotTask(OneShotConfig(split_seed=seed, rotate=False)).split_items("test")) == plain_test
    assert separated > 0  # the rule was exercised


def test_random_class_split_units() -> None:
    from spikeplastic.tasks.oneshot import random_class_split

    names = tuple("abcdef")
    train, test = random_class_split(names, 3, 0)
    assert sorted(train + test) == list(range(6)) and len(test) == 3
    for seed in range(10):
        tr, te = random_class_split(names, 3, seed, (("a", "b"),))
        assert ({0, 1} <= set(te)) or not ({0, 1} & set(te)), seed
        assert len(te) == 3 and sorted(tr + te) == list(range(6))
    with pytest.raises(ValueError, match="kept together"):
        random_class_split(tuple("abc"), 1, 0, (("a", "b", "c"),))

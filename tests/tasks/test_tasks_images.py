"""Image completion task: schedule, preprocessing, occlusion, CIFAR loader on a fake batch."""
from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.testing import assert_close

from spikeplastic.tasks import IMAGES, ImageConfig, ImageTask, load_cifar10, load_skimage_gray, normalize_images
from spikeplastic.tasks.images import (
    CIFAR_BATCHES,
    DEFAULT_SOURCES,
    DEFAULT_TEST_SOURCES,
    SKIMAGE_SOURCES,
    load_cifar10_batches,
    occluded_mse,
)

SMALL = ImageConfig(patch_size=8, present_steps=2, gap_steps=1, test_steps=2)


def test_length_arithmetic() -> None:
    assert IMAGES.T == 3 * 3 * (20 + 2) + 3 == 201
    assert IMAGES.n_pixels == 1024


def test_schedule_structure(gen) -> None:
    cfg = IMAGES
    task = ImageTask(cfg)
    b = 3
    ep = task.sample(b, gen(0))
    assert ep.inputs.shape == (201, b, 1024) and ep.targets.shape == (b, 1024)
    images = ep.info["images"]
    block = cfg.present_steps + cfg.gap_steps
    for i in range(b):
        for r in range(cfg.repeats):
            seen = []
            for k in range(cfg.n_images):
                start = (r * cfg.n_images + k) * block
                shown = ep.inputs[start : start + cfg.present_steps, i]
                assert_close(shown, shown[:1].expand_as(shown))
                match = [j for j in range(cfg.n_images) if torch.equal(shown[0], images[i, j])]
                assert len(match) == 1
                seen.append(match[0])
                assert (ep.inputs[start + cfg.present_steps : start + block, i] == 0).all()
            assert sorted(seen) == [0, 1, 2]
        assert_close(ep.targets[i], images[i, ep.info["test_index"][i]])
    assert ep.mask is not None and ep.mask[-1].all() and not ep.mask[:-1].any()


def test_preprocessing_ranges(gen) -> None:
    ep = ImageTask(IMAGES).sample(4, gen(1))
    imgs = ep.info["images"]
    assert_close(imgs.mean(dim=-1), torch.zeros(4, 3), atol=1e-5, rtol=0)
    assert_close(imgs.abs().amax(dim=-1), torch.ones(4, 3))
    assert imgs.min() >= -1.0 and imgs.max() <= 1.0
    assert (imgs.std(dim=-1) > 0.05).all()  # low-contrast patches are redrawn


def test_normalize_closed_form() -> None:
    x = torch.tensor([[0.0, 1.0, 2.0, 3.0], [5.0, 5.0, 5.0, 5.0]])
    assert_close(normalize_images(x), torch.tensor([[-1.0, -1 / 3, 1 / 3, 1.0], [0.0, 0.0, 0.0, 0.0]]))


def test_skimage_sources_load_offline() -> None:
    for name in SKIMAGE_SOURCES:
        img = load_skimage_gray(name)
        assert img.ndim == 2 and img.dtype == np.float32 and min(img.shape) >= 32
        assert 0.0 <= img.min() and img.max() <= 1.0 and img.std() > 0.01


def test_occlusion_and_clamp(gen) -> None:
    task = ImageTask(SMALL)
    ep = task.sample(32, gen(2))
    test = ep.inputs[-1]  # [B, 64]
    occ = ep.info["occluded"]
    assert (occ.sum(dim=-1) == 32).all()
    rows = torch.arange(64) // 8
    for i in range(32):
        expect = rows >= 4 if ep.info["bottom_zeroed"][i] else rows < 4
        assert torch.equal(occ[i], expect)
        assert (test[i][occ[i]] == 0).all()
        assert torch.equal(test[i][~occ[i]], ep.targets[i][~occ[i]])
    assert 0 < int(ep.info["bottom_zeroed"].sum()) < 32  # both halves occur
    assert torch.equal(ep.info["clamp_mask"], ep.inputs != 0)
    assert "clamp" in ep.info and "nonzero" in ep.info["clamp"]


def test_loss_metric_closed_form(gen) -> None:
    task = ImageTask(SMALL)
    ep = task.sample(2, gen(3))
    out = torch.zeros(task.T, 2, 64)
    t, occ = ep.targets, ep.info["occluded"].float()
    zero = ((t**2 * occ).sum(-1) / 32) / (t**2).mean(-1)          # written out: 32 of 64 pixels occluded
    assert occ.sum(-1).tolist() == [32.0, 32.0]
    assert task.metric(out, ep) == pytest.approx(float(zero.mean()))
    assert_close(task.loss(out, ep), (ep.targets**2).sum(-1).mean())
    out[-1] = ep.targets
    assert task.loss(out, ep).item() == 0.0 and task.metric(out, ep) == 0.0
    out[-1] = ep.targets + 0.5 * ep.info["occluded"]
    assert occluded_mse(out, ep) == pytest.approx(0.25)
    assert_close(task.loss(out, ep), torch.tensor(32 * 0.25))


def test_determinism(gen) -> None:
    task = ImageTask(SMALL)
    a, b, c = task.sample(3, gen(9)), task.sample(3, gen(9)), task.sample(3, gen(10))
    assert torch.equal(a.inputs, b.inputs) and torch.equal(a.targets, b.targets)
    assert not torch.equal(a.inputs, c.inputs)


def test_config_errors() -> None:
    with pytest.raises(ValueError, match="sources"):
        ImageConfig(sources=("camera", "nope"))
    with pytest.raises(ValueError, match="patch_size"):
        ImageConfig(patch_size=7)
    with pytest.raises(ValueError, match="patch_size"):
        ImageConfig(cifar_root="/x", patch_size=16)
    with pytest.raises(TypeError):
        ImageConfig(n_image=3)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match=r"sources and test_sources must be disjoint.*\['camera'\]"):
        ImageConfig(sources=("camera", "moon"))  # camera is a default test image
    with pytest.raises(TypeError, match="test_sources"):
        ImageConfig(test_sources=())
    with pytest.raises(ValueError, match="split"):
        ImageConfig(split="val")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"cifar_train_batches and cifar_test_batches must be disjoint"):
        ImageConfig(cifar_test_batches=("data_batch_4",))
    with pytest.raises(ValueError, match="cifar_test_batches"):
        ImageConfig(cifar_test_batches=("batch_9",))


def test_default_split_partitions_the_twelve_images() -> None:
    cfg = ImageConfig()
    assert cfg.sources == DEFAULT_SOURCES and cfg.test_sources == DEFAULT_TEST_SOURCES == ("camera", "coffee", "gravel")
    assert len(cfg.sources) == 9 and not set(cfg.sources) & set(cfg.test_sources)
    assert cfg.cifar_train_batches == CIFAR_BATCHES[:4] and cfg.cifar_test_batches == ("data_batch_5",)


def _crops(name: str, ps: int) -> torch.Tensor:
    """Every ``ps x ps`` crop of a source image, normalised as the task does: ``[n_crops, ps*ps]``."""
    img = torch.from_numpy(load_skimage_gray(name))
    return normalize_images(img.unfold(0, ps, 1).unfold(1, ps, 1).reshape(-1, ps * ps))


def test_skimage_episodes_come_from_their_split_only(gen) -> None:
    """Each patch is a crop of its split's image and of no image of the other split (pixel check)."""
    cfg = ImageConfig(sources=("camera",), test_sources=("coins",), patch_size=4, present_steps=1, gap_steps=0,
                      test_steps=1, min_std=0.0)
    task = ImageTask(cfg)
    crops = {"train": _crops("camera", 4), "test": _crops("coins", 4)}
    for split, other in (("train", "test"), ("test", "train")):
        ep = task.sample(4, gen(3), split=split)
        assert ep.info["split"] == split and (ep.info["source_index"] == 0).all()
        for img in ep.info["images"].reshape(-1, 16):
            assert float((crops[split] - img).abs().amax(-1).min()) < 1e-5
            assert float((crops[other] - img).abs().amax(-1).min()) > 1e-3
    assert task.sample(2, gen(3)).info["split"] == "train"  # config.split's default


def _write_batch(path: Path, data: np.ndarray, labels: list[int]) -> None:
    with open(path, "wb") as f:
        pickle.dump({b"batch_label": b"fake", b"labels": labels, b"data": data, b"filenames": []}, f)


@pytest.fixture
def fake_cifar(tmp_path: Path) -> Path:
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    rng = np.random.default_rng(0)
    for name, n in (("data_batch_1", 3), ("data_batch_2", 2), ("data_batch_3", 1), ("data_batch_4", 1),
                    ("data_batch_5", 2), ("test_batch", 4)):
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        _write_batch(d / name, data, [int(v) for v in rng.integers(0, 10, size=n)])
    return tmp_path


def test_cifar_loader_fake_batch(fake_cifar: Path) -> None:
    d = fake_cifar / "cifar-10-batches-py"
    with open(d / "data_batch_1", "rb") as f:
        raw = pickle.load(f, encoding="bytes")
    imgs, labels = load_cifar10(fake_cifar, "train")  # data_batch_1..5
    assert imgs.shape == (9, 32, 32) and labels.shape == (9,) and labels.dtype == torch.int64
    assert labels[:3].tolist() == raw[b"labels"]
    # pixel (row 3, col 5) of image 1: planes R, G, B of 1024 values each, row-major
    px = raw[b"data"][1, [3 * 32 + 5, 1024 + 3 * 32 + 5, 2048 + 3 * 32 + 5]].astype(np.float64) / 255
    assert imgs[1, 3, 5].item() == pytest.approx(0.299 * px[0] + 0.587 * px[1] + 0.114 * px[2], abs=1e-6)
    rgb, _ = load_cifar10(d, "test", grayscale=False)  # the inner folder works too
    assert rgb.shape == (4, 3, 32, 32) and 0 <= rgb.min() and rgb.max() <= 1


def test_cifar_task_splits_by_batch(fake_cifar: Path, gen) -> None:
    """The paper's protocol: train on data_batch_1..4, test on data_batch_5 (pixel check)."""
    pools = {s: normalize_images(load_cifar10_batches(fake_cifar, b)[0].reshape(-1, 1024))
             for s, b in (("train", CIFAR_BATCHES[:4]), ("test", ("data_batch_5",)))}
    task = ImageTask(ImageConfig(cifar_root=str(fake_cifar)))
    assert task.split_items("train") == CIFAR_BATCHES[:4] and task.split_items("test") == ("data_batch_5",)
    for split, other in (("train", "test"), ("test", "train")):
        ep = task.sample(3, gen(0), split=split)
        for img, i in zip(ep.info["images"].reshape(-1, 1024), ep.info["source_index"].reshape(-1)):
            assert float((img - pools[split][i]).abs().max()) < 1e-6
            assert float((pools[other] - img).abs().amax(-1).min()) > 1e-3
    (fake_cifar / "cifar-10-batches-py" / "data_batch_5").unlink()
    with pytest.raises(FileNotFoundError, match=r"cifar_test_batches: \['data_batch_5'\] missing"):
        ImageTask(ImageConfig(cifar_root=str(fake_cifar)))


def test_cifar_loader_errors(tmp_path: Path, fake_cifar: Path) -> None:
    with pytest.raises(FileNotFoundError, match="cifar-10-batches-py"):
        load_cifar10(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="data_batch_1"):
        load_cifar10(empty)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="CIFAR-10"):
        load_cifar10(bad, "test")
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    _write_batch(wrong / "test_batch", np.zeros((2, 100), dtype=np.uint8), [0, 1])
    with pytest.raises(ValueError, match="3072"):
        load_cifar10(wrong, "test")
    with pytest.raises(ValueError, match="split"):
        load_cifar10(fake_cifar, "val")  # type: ignore[arg-type]


def test_metric_is_about_one_for_zero_output_and_robust_to_a_flat_occluded_half(gen) -> None:
    """All-zero output: 1.0 on average over episodes (top/bottom symmetry); a near-perfect output
    stays near its per-pixel error even when the occluded half is almost flat (the earlier form,
    relative to the occluded half's own energy, blew up there)."""
    task = ImageTask(SMALL)
    ep = task.sample(512, gen(5))
    zero = torch.zeros(task.T, 512, 64)
    assert task.metric(zero, ep) == pytest.approx(1.0, abs=0.1)
    flat = task.sample(1, gen(6))
    occ = flat.info["occluded"][0]
    t = flat.targets.clone()
    t[0, occ] = 1e-3                                            # a flat occluded half, the rest as sampled
    flat.targets.copy_(t)
    out = torch.zeros(task.T, 1, 64)
    out[-1] = t + 0.01                                          # per-pixel error 1e-4 everywhere
    want = 1e-4 / float((t**2).mean())
    assert task.metric(out, flat) == pytest.approx(want, rel=1e-4)
    old_form = 1e-4 * 32 / float((t[0, occ] ** 2).sum())
    assert old_form > 1.0 > 100 * want                          # the earlier form: 3.1 for this output


def test_reference_errors_written_out(gen) -> None:
    """``zeros`` and ``edge_row`` against the metric computed by hand, per episode, for both halves."""
    task = ImageTask(SMALL)
    ep = task.sample(64, gen(7))
    ps = SMALL.patch_size
    half = ps // 2
    refs = task.reference_errors(ep)
    z_sum = e_sum = 0.0
    for b in range(64):
        t = ep.targets[b].reshape(ps, ps)
        bottom = bool(ep.info["bottom_zeroed"][b])
        rows = range(half, ps) if bottom else range(half)
        edge = t[half - 1] if bottom else t[half]
        z = t.clone()
        e = t.clone()
        for r in rows:
            z[r] = 0.0
            e[r] = edge
        energy = float((t**2).mean())
        z_sum += float(((z - t) ** 2)[list(rows)].mean()) / energy
        e_sum += float(((e - t) ** 2)[list(rows)].mean()) / energy
    assert refs["zeros"] == pytest.approx(z_sum / 64, rel=1e-5)
    assert refs["edge_row"] == pytest.approx(e_sum / 64, rel=1e-5)
    assert 0.5 < refs["zeros"] < 1.5 and 0 < refs["edge_row"]
    assert any(ep.info["bottom_zeroed"]) and not all(ep.info["bottom_zeroed"])
    with pytest.raises(ValueError, match="ImageTask.sample"):
        task.reference_errors(dataclasses.replace(ep, info={}))

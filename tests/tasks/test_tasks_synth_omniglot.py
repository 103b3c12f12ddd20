"""The synthetic Omniglot-layout generator: layout and names, the loader and the task read it,
determinism, disjoint scripts, no blank or duplicate characters, drawers that vary but cluster."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from spikeplastic.cli import main
from spikeplastic.tasks import OneShotConfig, OneShotTask, load_omniglot
from spikeplastic.tasks.synth_omniglot import ALPHABETS, MANIFEST, make_synthetic_omniglot, synthetic_alphabets

PARTS = ("images_background", "images_evaluation")


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 background + 2 evaluation alphabets x 8 characters x 10 drawers."""
    root = tmp_path_factory.mktemp("synth")
    return make_synthetic_omniglot(root, n_background_alphabets=3, n_evaluation_alphabets=2, chars_per_alphabet=8,
                                   drawers=10, seed=0)


def test_layout_and_file_names(synth: Path) -> None:
    man = json.loads((synth / MANIFEST).read_text(encoding="utf-8"))
    have = synthetic_alphabets()
    assert [a["name"] for a in man["alphabets"]] == (sorted(list(have["background"])[:3])
                                                      + sorted(list(have["evaluation"])[:2]))
    next_id = 1
    for a in man["alphabets"]:
        part = synth / ("images_" + a["split"])
        chars = sorted(p.name for p in (part / a["name"]).iterdir())
        assert chars == [f"character{j:02d}" for j in range(1, 9)] == [c["folder"] for c in a["characters"]]
        for c in a["characters"]:
            files = sorted(p.name for p in (part / a["name"] / c["folder"]).iterdir())
            assert c["id"] == f"{next_id:04d}"
            assert files == [f"{next_id:04d}_{d:02d}.png" for d in range(1, 11)]  # <character id>_<drawer>.png
            next_id += 1
    assert sorted(p.name for p in synth.iterdir()) == [*PARTS, MANIFEST]
    with Image.open(synth / PARTS[0] / man["alphabets"][0]["name"] / "character01" / "0001_01.png") as im:
        assert im.format == "PNG" and im.size == (105, 105) and im.mode == "1"  # 1-bit, as Omniglot's
        a = np.asarray(im.convert("L"))
    assert set(np.unique(a).tolist()) == {0, 255} and a[0, 0] == 255 and (a == 0).mean() < 0.2  # black on white


def test_load_omniglot_and_the_task_read_it(synth: Path, gen) -> None:
    data = load_omniglot(synth)
    man = json.loads((synth / MANIFEST).read_text(encoding="utf-8"))
    names = tuple(f"{a['name']}/{c['folder']}" for a in man["alphabets"] for c in a["characters"])
    assert data.names == names and data.images.shape == (40, 10, 31, 31) and data.counts.tolist() == [10] * 40
    assert float(data.images[:, :, 0, 0].max()) < 0.05 < float(data.images.amax(dim=(-2, -1)).min())  # strokes 1
    task = OneShotTask(OneShotConfig(root=str(synth)))
    train, test = task.splits["train"].names, task.splits["test"].names
    assert sorted(train + test) == sorted(names) and not set(train) & set(test)
    for split in ("train", "test"):
        ep = task.sample(4, gen(0), split=split)  # type: ignore[arg-type]
        assert ep.inputs.shape == (6, 4, 31 * 31 + 5)


def test_same_seed_same_bytes_other_seed_other_images(tmp_path: Path) -> None:
    kw = dict(n_background_alphabets=1, n_evaluation_alphabets=1, chars_per_alphabet=4, drawers=3)
    a = _files(make_synthetic_omniglot(tmp_path / "a", seed=5, **kw))
    b = _files(make_synthetic_omniglot(tmp_path / "b", seed=5, **kw))
    c = _files(make_synthetic_omniglot(tmp_path / "c", seed=6, **kw))
    assert a == b
    pngs = [k for k in a if k.endswith(".png")]
    assert len(pngs) == 2 * 4 * 3 and sorted(pngs) == sorted(k for k in c if k.endswith(".png"))
    assert sum(a[k] == c[k] for k in pngs) == 0
    # an alphabet's images do not depend on the other alphabets asked for
    d = make_synthetic_omniglot(tmp_path / "d", seed=5, **{**kw, "n_background_alphabets": 2})
    latin = [v for k, v in a.items() if "/Latin/" in k]
    assert latin and latin == [v for k, v in _files(d).items() if "/Latin/" in k]


def test_background_and_evaluation_scripts_are_disjoint(synth: Path) -> None:
    from fontTools.ttLib import TTFont
    import matplotlib

    splits = {s: {a.name for a in ALPHABETS if a.split == s} for s in ("background", "evaluation")}
    assert splits["background"] and splits["evaluation"] and not splits["background"] & splits["evaluation"]
    ranges = {s: {cp for a in ALPHABETS if a.split == s for lo, hi in a.ranges for cp in range(lo, hi + 1)}
              for s in splits}
    assert not ranges["background"] & ranges["evaluation"]
    have = synthetic_alphabets()
    assert set(have["background"]) <= splits["background"] and set(have["evaluation"]) <= splits["evaluation"]
    assert len(have["background"]) >= 15 and len(have["evaluation"]) >= 10
    assert min(n for part in have.values() for n in part.values()) >= 14  # Omniglot's smallest alphabet
    # every written character is a glyph of its font (not the .notdef box), each code point once
    man = json.loads((synth / MANIFEST).read_text(encoding="utf-8"))
    fonts = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    cps = []
    for a in man["alphabets"]:
        cmap = TTFont(str(fonts / a["font"]), lazy=True).getBestCmap()
        for c in a["characters"]:
            cp = int(c["codepoint"][2:], 16)
            assert cp in cmap, (a["name"], c)
            cps.append(cp)
    assert len(set(cps)) == len(cps)


def _normalised(img: np.ndarray, side: int = 32) -> np.ndarray:
    """Crop to the ink, fit into ``side`` (aspect kept), blur; unit norm. ``img``: bool, True = ink."""
    rows, cols = np.flatnonzero(img.any(1)), np.flatnonzero(img.any(0))
    crop = img[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].astype(np.float32)
    f = (side - 4) / max(crop.shape)
    t = F.interpolate(torch.from_numpy(crop)[None, None], size=(max(1, round(crop.shape[0] * f)),
                                                                 max(1, round(crop.shape[1] * f))), mode="area")
    out = torch.zeros(1, 1, side, side)
    r0, c0 = (side - t.shape[-2]) // 2, (side - t.shape[-1]) // 2
    out[..., r0 : r0 + t.shape[-2], c0 : c0 + t.shape[-1]] = t
    k = torch.exp(-torch.arange(-3, 4.0) ** 2 / 2.0)
    k = k / k.sum()
    out = F.conv2d(F.conv2d(out, k.view(1, 1, 1, 7), padding=(0, 3)), k.view(1, 1, 7, 1), padding=(3, 0))
    v = out.flatten().numpy()
    return v / np.linalg.norm(v)


def test_no_blank_and_no_duplicate_characters(tmp_path: Path) -> None:
    """Every character of the most look-alike alphabets (Latin, Greek, Cyrillic, IPA; N'Ko, Lao), each
    drawn undistorted: ink present, and no two alike even up to a quarter turn (on features of
    this test's own: ink box fitted to 32 px, blurred)."""
    root = make_synthetic_omniglot(tmp_path, n_background_alphabets=4, n_evaluation_alphabets=2, drawers=1,
                                   distortion=0.0)
    imgs = [np.asarray(Image.open(p).convert("L")) < 128 for part in PARTS for p in sorted((root / part).rglob("*.png"))]
    assert len(imgs) > 200
    ink = np.array([i.sum() for i in imgs])
    assert ink.min() >= 30 and max(i.mean() for i in imgs) < 0.3
    v = np.stack([_normalised(i) for i in imgs])                                 # [n, D]
    rot = np.stack([_normalised(np.rot90(i, q)) for i in imgs for q in (1, 2, 3)]).reshape(len(imgs), 3, -1)
    sim = np.maximum(v @ v.T, np.einsum("id,jqd->ijq", v, rot).max(-1))
    np.fill_diagonal(sim, 0.0)
    worst = np.unravel_index(sim.argmax(), sim.shape)
    assert sim.max() < 0.97, f"characters {worst} look alike (cosine {sim.max():.3f})"


def test_drawers_vary_but_stay_recognisable(synth: Path) -> None:
    """Instances of a character differ from each other, yet a blurred-pixel 1-nearest-neighbour
    (leave one out, 40 classes: chance 2.5%) finds a same-character instance most of the time."""
    x = load_omniglot(synth).images                                              # [40, 10, 31, 31]
    c, m = x.shape[:2]
    flat = x.reshape(c, m, -1)
    same = (flat[:, :, None] - flat[:, None]).abs().amax(-1) == 0                # [C, M, M]
    assert int(same.sum()) == c * m, "two drawers of a character drew identical images"
    k = torch.exp(-torch.arange(-3, 4.0) ** 2 / 2.0)
    k = k / k.sum()
    b = x.reshape(c * m, 1, 31, 31)
    b = F.conv2d(F.conv2d(b, k.view(1, 1, 1, 7), padding=(0, 3)), k.view(1, 1, 7, 1), padding=(3, 0)).flatten(1)
    d = torch.cdist(b, b)
    d.fill_diagonal_(float("inf"))
    labels = torch.arange(c).repeat_interleave(m)
    acc = float((labels[d.argmin(1)] == labels).float().mean())
    assert 0.5 < acc, acc


def test_errors_name_the_argument(tmp_path: Path) -> None:
    ok = dict(n_background_alphabets=1, n_evaluation_alphabets=0, chars_per_alphabet=2, drawers=1)
    for key, bad, exc in (("n_background_alphabets", -1, ValueError), ("chars_per_alphabet", 0, ValueError),
                          ("drawers", 2.5, TypeError), ("size", 8, ValueError), ("seed", -3, ValueError),
                          ("distortion", float("nan"), ValueError), ("distortion", "1", TypeError),
                          ("n_evaluation_alphabets", 10**6, ValueError), ("overwrite", 1, TypeError)):
        with pytest.raises(exc, match=key):
            make_synthetic_omniglot(tmp_path / "x", **{**ok, key: bad})
    with pytest.raises(ValueError, match="at least one alphabet"):
        make_synthetic_omniglot(tmp_path / "x", n_background_alphabets=0, n_evaluation_alphabets=0)
    root = make_synthetic_omniglot(tmp_path / "y", **ok)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        make_synthetic_omniglot(root, **ok)
    make_synthetic_omniglot(root, **{**ok, "chars_per_alphabet": 1}, overwrite=True)
    assert len(list(root.rglob("*.png"))) == 1
    (tmp_path / "file").write_text("")
    with pytest.raises(NotADirectoryError, match="root"):
        make_synthetic_omniglot(tmp_path / "file", **ok)


def test_cli(tmp_path: Path, capsys) -> None:
    out = tmp_path / "s"
    argv = ["make-omniglot", str(out), "--background-alphabets", "1", "--evaluation-alphabets", "1", "--chars", "2",
            "--drawers", "3", "--seed", "1"]
    assert main(argv) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert len(list(out.rglob("*.png"))) == 2 * 2 * 3
    assert all(re.fullmatch(r"\d{4}_0[1-3]\.png", p.name) for p in out.rglob("*.png"))
    for args, argument, expect in ((argv, "OUT", "--overwrite"),
                                   (["make-omniglot", str(tmp_path / "t"), "--background-alphabets", "99"],
                                    "--background-alphabets", "at most"),
                                   (["make-omniglot", str(tmp_path / "t"), "--chars", "0"], "--chars", "positive"),
                                   (["make-omniglot", str(tmp_path / "t"), "--distortion", "9"], "--distortion", "[0, 3]"),
                                   (["make-omniglot"], "OUT", "output folder")):
        assert main(args) == 2
        err = capsys.readouterr().err
        assert f"argument {argument}" in err and expect in err, err
    assert main([*argv, "--overwrite"]) == 0
    capsys.readouterr()
    assert main(["make-omniglot", "--list"]) == 0
    listing = capsys.readouterr().out
    assert "background (" in listing and "evaluation (" in listing and "Latin" in listing

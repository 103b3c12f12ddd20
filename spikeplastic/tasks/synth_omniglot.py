"""A synthetic data set in Omniglot's folder layout, drawn from the fonts matplotlib ships.

Omniglot cannot always be downloaded; this writes a stand-in that
:func:`~spikeplastic.tasks.oneshot.load_omniglot` (and ``OneShotTask(root=...)``) reads unchanged.
It is *not* Omniglot: its characters are font glyphs, its "handwriting" is random distortion.

Layout (as Omniglot's)::

    <root>/images_background/<alphabet>/character01/0001_01.png ... 0001_20.png
    <root>/images_evaluation/<alphabet>/character01/0412_01.png ...
    <root>/synthetic_omniglot.json          # what was written: parameters, fonts, code points

``<id>_<drawer>.png``: ``<id>`` numbers the characters over the whole set (background first, each
part in the loader's sorted order), ``<drawer>`` the instance. Images: ``size x size`` 1-bit PNGs,
black strokes on white (Omniglot's convention; the loader inverts them to strokes = 1).

Characters:
  * Alphabets are Unicode scripts or symbol blocks that one of matplotlib's fonts (DejaVu, STIX)
    covers (:data:`ALPHABETS`): the code points of the chosen ranges present in the font's
    character map (so never the ``.notdef`` box) and of the chosen general categories (letters for
    scripts, symbols for symbol blocks). One font per alphabet. Background and evaluation
    alphabets are fixed and come from disjoint script families.
  * A glyph becomes a pen path: the skeleton of its rendering (one pixel wide), so that weight and
    fill do not count. It is dropped when tiny next to its alphabet's glyphs (dots, marks), when its
    path is shorter than half its size (filled blobs), or when it looks like a character kept
    before it (background first, then catalogue order): cosine above 0.95 between the blurred
    images of the two paths, each scaled to fill a 32-pixel box, over the four quarter turns of
    one of them (so no two characters coincide under the one-shot task's rotations); above 0.92
    for an evaluation glyph against background characters (evaluation characters stay novel).
    Alphabets left with fewer than 14 characters (Omniglot's smallest) are dropped.
  * Paths are scaled once per alphabet (its median glyph spans 60% of the box; no glyph more than
    80%) and centred.

Drawers: each instance redraws the path with a seeded random "hand" (magnitudes times
``distortion``, in pixels of a 105-pixel box): up to two stroke breaks (gaps of 3-6 px), a smooth
displacement field (random plane waves, wavelength 30-90 px, ~2 px; plus a fine wobble, 8-20 px,
~0.4 px), an affine jitter (rotation ~6 degrees, shear ~0.1, scale ~8% per axis and ~8% overall,
translation ~3.5 px) and a pen radius in ``[1.1, 1.8]`` px; the drawing is then kept inside the
box. A character's drawers share its glyph and nothing else.

Determinism: the same arguments give byte-identical files (on one machine: glyphs are rasterised
by the installed FreeType). Every draw comes from ``numpy.random.SeedSequence(seed,
spawn_key=...)`` keyed by alphabet, code point and drawer, so an alphabet's images do not depend on
how many alphabets or characters are requested besides it.

Example::

    root = make_synthetic_omniglot("data/synth", n_background_alphabets=4, n_evaluation_alphabets=2,
                                   chars_per_alphabet=10)
    task = OneShotTask(OneShotConfig(root=str(root)))
"""
from __future__ import annotations

import functools
import json
import shutil
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from ._common import check_int

__all__ = [
    "ALPHABETS",
    "AlphabetSpec",
    "make_synthetic_omniglot",
    "synthetic_alphabets",
]

Split = Literal["background", "evaluation"]

MANIFEST = "synthetic_omniglot.json"
_PARTS: dict[str, str] = {"background": "images_background", "evaluation": "images_evaluation"}
_MIN_CHARS = 14          # Omniglot's smallest alphabet
_DUP_COSINE = 0.95       # blurred-image similarity above which a glyph repeats a kept one
_DUP_COSINE_ACROSS = 0.92  # the same for an evaluation glyph against the background characters
_TINY = 0.35             # glyphs with a larger side below this fraction of the alphabet's median are dropped
_MIN_PATH = 0.5          # shortest pen path kept, in glyph sides (filled blobs thin to a point)
_FEAT = 32               # side of the normalised dedup image
_FEAT_BLUR = 1.5         # its blur (pixels)
_PROBE_PX = 96           # font size of the glyph renders (their skeletons are the pen paths)
_SCALE_MEDIAN = 0.6      # an alphabet's median glyph side, as a fraction of the box
_SCALE_MAX = 0.8         # no glyph side above this fraction of the box
_SPACING = 0.75          # largest gap between pen path points, in pixels of a 105-pixel box (pen radius >= 1.1)


@dataclass(frozen=True)
class AlphabetSpec:
    """One synthetic alphabet: which code points of which font.

    Attributes:
        name: folder name (Omniglot style, e.g. ``"Mkhedruli_(Georgian)"``).
        split: ``"background"`` or ``"evaluation"``.
        font: file name in matplotlib's ``mpl-data/fonts/ttf`` folder.
        ranges: inclusive code point ranges.
        categories: accepted Unicode general categories, by prefix (``"L"``: letters, ``"S"``: symbols).
    """

    name: str
    split: Split
    font: str
    ranges: tuple[tuple[int, int], ...]
    categories: tuple[str, ...] = ("L",)


_SYM = ("S",)
#: The catalogue, in dedup order (an alphabet loses the characters that repeat earlier ones). Script
#: families never straddle the split: Latin and what derives from it or looks like it (Greek,
#: Cyrillic, IPA, Fraktur and script letters, Old Italic, letterlike symbols), Armenian, Hebrew,
#: Arabic, Georgian, mathematics and arrows are background; N'Ko, Lao, Tifinagh, Ogham, Canadian
#: syllabics, the divination signs (hexagrams, Tai Xuan Jing) and the technical, geometric and
#: pictorial symbol blocks are evaluation. Alphabets that end with fewer than 14 characters here
#: (Ogham, the hexagrams with matplotlib 3.11's fonts) are left out by :func:`synthetic_alphabets`.
ALPHABETS: tuple[AlphabetSpec, ...] = (
    # background
    AlphabetSpec("Latin", "background", "DejaVuSans.ttf", ((0x41, 0x5A), (0x61, 0x7A))),
    AlphabetSpec("Greek", "background", "DejaVuSans.ttf", ((0x391, 0x3C9),)),
    AlphabetSpec("Cyrillic", "background", "DejaVuSans.ttf", ((0x400, 0x45F),)),
    AlphabetSpec("IPA_Extensions_(Latin)", "background", "DejaVuSans.ttf", ((0x250, 0x2AF),)),
    AlphabetSpec("Fraktur_(Latin)", "background", "STIXGeneral.ttf", ((0x1D504, 0x1D537), (0x212D, 0x212D),
                                                                      (0x210C, 0x210C), (0x2111, 0x2111),
                                                                      (0x211C, 0x211C), (0x2128, 0x2128))),
    AlphabetSpec("Script_(Latin)", "background", "STIXGeneral.ttf", ((0x1D49C, 0x1D4CF), (0x212C, 0x212C),
                                                                     (0x2130, 0x2131), (0x210B, 0x210B),
                                                                     (0x2110, 0x2110), (0x2112, 0x2112),
                                                                     (0x2133, 0x2133), (0x211B, 0x211B),
                                                                     (0x212F, 0x212F), (0x210A, 0x210A),
                                                                     (0x2134, 0x2134))),
    AlphabetSpec("Old_Italic", "background", "DejaVuSans.ttf", ((0x10300, 0x1032F),)),
    AlphabetSpec("Letterlike_Symbols", "background", "DejaVuSans.ttf", ((0x2100, 0x214F),), ("S", "L")),
    AlphabetSpec("Armenian", "background", "DejaVuSans.ttf", ((0x531, 0x587),)),
    AlphabetSpec("Hebrew", "background", "DejaVuSans.ttf", ((0x5D0, 0x5F2),)),
    AlphabetSpec("Arabic", "background", "DejaVuSans.ttf", ((0x620, 0x64A), (0x671, 0x6D3))),
    AlphabetSpec("Asomtavruli_(Georgian)", "background", "DejaVuSans.ttf", ((0x10A0, 0x10CD),)),
    AlphabetSpec("Mkhedruli_(Georgian)", "background", "DejaVuSans.ttf", ((0x10D0, 0x10FF),)),
    AlphabetSpec("Mathematical_Operators", "background", "DejaVuSans.ttf", ((0x2200, 0x22FF),), _SYM),
    AlphabetSpec("Supplemental_Mathematical_Operators", "background", "STIXGeneral.ttf", ((0x2A00, 0x2AFF),), _SYM),
    AlphabetSpec("Miscellaneous_Mathematical_Symbols", "background", "STIXGeneral.ttf",
                 ((0x27C0, 0x27EF), (0x2980, 0x29FF)), _SYM),
    AlphabetSpec("Arrows", "background", "DejaVuSans.ttf", ((0x2190, 0x21FF), (0x27F0, 0x27FF)), _SYM),
    AlphabetSpec("Supplemental_Arrows", "background", "STIXGeneral.ttf", ((0x2900, 0x297F), (0x2B00, 0x2BFF)), _SYM),
    # evaluation
    AlphabetSpec("N_Ko", "evaluation", "DejaVuSans.ttf", ((0x7C0, 0x7FF),)),
    AlphabetSpec("Lao", "evaluation", "DejaVuSans.ttf", ((0xE80, 0xEFF),)),
    AlphabetSpec("Tifinagh", "evaluation", "DejaVuSans.ttf", ((0x2D30, 0x2D7F),)),
    AlphabetSpec("Ogham", "evaluation", "DejaVuSans.ttf", ((0x1680, 0x169F),)),
    AlphabetSpec("Box_Drawing", "evaluation", "DejaVuSans.ttf", ((0x2500, 0x257F),), _SYM),
    AlphabetSpec("Yijing_Hexagrams", "evaluation", "DejaVuSans.ttf", ((0x4DC0, 0x4DFF),), _SYM),
    AlphabetSpec("Tai_Xuan_Jing", "evaluation", "DejaVuSans.ttf", ((0x1D300, 0x1D35F),), _SYM),
    # without the APL symbols (U+2336-237A), most of which are overstruck Latin and Greek letters
    AlphabetSpec("Miscellaneous_Technical", "evaluation", "DejaVuSansMono.ttf", ((0x2300, 0x2335), (0x237B, 0x23FF)),
                 _SYM),
    AlphabetSpec("Geometric_Shapes", "evaluation", "DejaVuSans.ttf", ((0x25A0, 0x25FF),), _SYM),
    AlphabetSpec("Miscellaneous_Symbols", "evaluation", "DejaVuSans.ttf", ((0x2600, 0x26FF),), _SYM),
    AlphabetSpec("Canadian_Aboriginal_Syllabics", "evaluation", "DejaVuSans.ttf", ((0x1400, 0x167F),)),
    AlphabetSpec("Dingbats", "evaluation", "DejaVuSans.ttf", ((0x2700, 0x27BF),), _SYM),
)


@dataclass(frozen=True)
class _Alphabet:
    uid: int                         # index in ALPHABETS (keys the random streams)
    spec: AlphabetSpec
    codepoints: tuple[int, ...]      # kept characters, ascending
    paths: tuple[np.ndarray, ...]    # their pen paths [P, 2] (row, col) in box sides, centred on 0


def _font_path(font: str) -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf" / font


@functools.lru_cache(maxsize=None)
def _cmap(font: str) -> frozenset[int]:
    from fontTools.ttLib import TTFont  # a matplotlib dependency

    with TTFont(str(_font_path(font)), lazy=True) as f:
        return frozenset(f.getBestCmap() or {})


@functools.lru_cache(maxsize=None)
def _font(font: str, px: int):  # -> PIL.ImageFont.FreeTypeFont
    from PIL import ImageFont

    return ImageFont.truetype(str(_font_path(font)), px)


def _render(font: str, cp: int, px: int) -> np.ndarray:
    """The glyph of ``cp`` at font size ``px``, cropped to its ink (bool ``[h, w]``, empty when blank)."""
    from PIL import Image, ImageDraw

    side = 3 * px
    im = Image.new("L", (side, side), 0)
    ImageDraw.Draw(im).text((side // 2, side // 2), chr(cp), fill=255, font=_font(font, px), anchor="mm")
    a = np.asarray(im) > 127
    rows, cols = np.flatnonzero(a.any(1)), np.flatnonzero(a.any(0))
    if rows.size == 0:
        return np.zeros((0, 0), dtype=bool)
    return a[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def _points(sk: np.ndarray, k: int) -> np.ndarray:
    """A skeleton image's pixel centres ``[P, 2]`` (row, col), centred on their bounding box, with ``k``
    more points evenly between each two 8-adjacent ones (so that a path scaled up stays connected
    under the pen)."""
    h, w = sk.shape
    pad = np.pad(sk, 1)
    pts = [np.argwhere(sk).astype(np.float64)]
    for dr, dc in ((0, 1), (1, 0), (1, 1), (1, -1)) if k > 0 else ():
        pair = np.argwhere(sk & pad[1 + dr : h + 1 + dr, 1 + dc : w + 1 + dc]).astype(np.float64)
        pts += [pair + t * np.array([dr, dc]) for t in np.arange(1, k + 1) / (k + 1)]
    p = np.concatenate(pts) + 0.5
    return p - (p.min(0) + p.max(0)) / 2


def _features(paths: list[np.ndarray]) -> np.ndarray:
    """Dedup features of pen paths: ``[n, 4, FEAT*FEAT]`` unit vectors, one per quarter turn.

    A path is scaled to fill a ``FEAT - 4`` box (size and position removed), drawn one pixel wide
    and blurred, so that stroke weight (skeletons) and size (the box) do not count.
    """
    from scipy.ndimage import gaussian_filter

    img = np.zeros((len(paths), _FEAT * _FEAT))
    for k, p in enumerate(paths):
        # bilinear splat about the image centre: a quarter turn of the path is exactly one of the image
        x = p * ((_FEAT - 4) / max(float((p.max(0) - p.min(0)).max()), 1e-9)) + (_FEAT - 1) / 2
        i0 = np.floor(x).astype(np.int64)
        w = x - i0
        for dr, dc in ((0, 0), (0, 1), (1, 0), (1, 1)):
            wt = (w[:, 0] if dr else 1 - w[:, 0]) * (w[:, 1] if dc else 1 - w[:, 1])
            img[k] += np.bincount((i0[:, 0] + dr) * _FEAT + i0[:, 1] + dc, wt, minlength=_FEAT * _FEAT)
    img = np.minimum(img, 1.0).astype(np.float32).reshape(-1, _FEAT, _FEAT)
    g = gaussian_filter(img, (0.0, _FEAT_BLUR, _FEAT_BLUR))
    rots = np.stack([np.rot90(g, q, axes=(1, 2)) for q in range(4)], axis=1).reshape(len(paths), 4, -1)
    return rots / np.maximum(np.linalg.norm(rots[:, :1], axis=-1, keepdims=True), 1e-12)


@functools.lru_cache(maxsize=1)
def _catalogue() -> tuple[_Alphabet, ...]:
    """Every usable alphabet of :data:`ALPHABETS` with its kept characters (see the module docstring)."""
    try:
        import PIL  # noqa: F401
        from skimage.morphology import skeletonize
    except ImportError as e:  # pragma: no cover - optional dependency
        raise ImportError("the synthetic Omniglot needs Pillow and scikit-image: pip install 'spikeplastic[data]'") from e
    kept = np.zeros((0, _FEAT * _FEAT), dtype=np.float32)   # unrotated features of the kept characters
    n_background = 0                                        # the first rows of `kept` are background
    used: set[int] = set()                                  # kept code points (ranges may overlap)
    out: list[_Alphabet] = []
    order = sorted(range(len(ALPHABETS)), key=lambda i: ALPHABETS[i].split != "background")
    for uid in order:
        spec = ALPHABETS[uid]
        if not _font_path(spec.font).is_file():
            continue  # a matplotlib without this font: the alphabet is absent
        cmap = _cmap(spec.font)
        cand: list[tuple[int, np.ndarray]] = []
        for lo, hi in spec.ranges:
            for cp in range(lo, hi + 1):
                if cp in cmap and cp not in used and unicodedata.category(chr(cp)).startswith(spec.categories):
                    m = _render(spec.font, cp, _PROBE_PX)
                    if m.size:
                        cand.append((cp, m))
        if not cand:
            continue
        med = float(np.median([max(m.shape) for _, m in cand]))
        cand = sorted((cp, m) for cp, m in cand if max(m.shape) >= _TINY * med)
        # filled shapes thin to a point or a stub: a pen path shorter than half the glyph is no character
        sks = [(cp, skeletonize(m), max(m.shape)) for cp, m in cand]
        paths = [(cp, sk, side) for cp, sk, side in sks if sk.sum() >= _MIN_PATH * side]
        if len(paths) < _MIN_CHARS:
            continue
        f = _features([_points(sk, 0) for _, sk, _ in paths])                     # [n, 4, D]
        n = len(paths)
        # a candidate is dropped when any quarter turn of it matches an earlier kept character
        sim = (f.reshape(4 * n, -1) @ kept.T).reshape(n, 4, -1).max(axis=1)                 # [n, kept]
        dup = (sim > _DUP_COSINE).any(1)
        if spec.split == "evaluation":  # stricter against background characters: evaluation stays novel
            dup |= (sim[:, :n_background] > _DUP_COSINE_ACROSS).any(1)
        near = (f[:, 0] @ f.reshape(4 * n, -1).T).reshape(n, n, 4).max(-1) > _DUP_COSINE  # [n, n], symmetric
        blocked = dup.copy()
        take: list[int] = []
        for i in range(n):  # keep the lowest code point of each look-alike group
            if not blocked[i]:
                take.append(i)
                blocked |= near[i]
        if len(take) < _MIN_CHARS:
            continue
        kept = np.concatenate([kept, f[take, 0]])
        used.update(paths[i][0] for i in take)
        if spec.split == "background":
            n_background = kept.shape[0]
        # one scale per alphabet (its median glyph spans _SCALE_MEDIAN of the box), big glyphs capped
        scale = [min(_SCALE_MEDIAN / med, _SCALE_MAX / paths[i][2]) for i in take]
        # points at most _SPACING apart in a 105-pixel box (diagonal neighbours are sqrt(2) apart)
        dense = [int(np.ceil(sc * 105 * np.sqrt(2) / _SPACING)) - 1 for sc in scale]
        out.append(_Alphabet(uid, spec, tuple(paths[i][0] for i in take),
                             tuple(_points(paths[i][1], max(k, 0)) * sc for i, sc, k in zip(take, scale, dense))))
    return tuple(out)


def synthetic_alphabets() -> dict[str, dict[str, int]]:
    """The alphabets available here: ``{"background": {name: n_characters}, "evaluation": {...}}``,
    each part in the order :func:`make_synthetic_omniglot` takes them."""
    res: dict[str, dict[str, int]] = {"background": {}, "evaluation": {}}
    for a in _catalogue():
        res[a.spec.split][a.spec.name] = len(a.codepoints)
    return res


def _waves(p: np.ndarray, rng: np.random.Generator, n: int, wavelength: tuple[float, float], amp: float) -> np.ndarray:
    """A smooth random displacement ``[P, 2]`` at points ``p``: ``n`` plane waves per coordinate."""
    d = np.zeros_like(p)
    for axis in range(2):
        theta = rng.uniform(0, 2 * np.pi, n)
        k = 2 * np.pi / rng.uniform(*wavelength, n)
        phase = rng.uniform(0, 2 * np.pi, n)
        a = rng.normal(0.0, amp, n)
        arg = p @ np.stack([np.cos(theta), np.sin(theta)]) * k + phase   # [P, n]
        d[:, axis] = np.sin(arg) @ a
    return d


@functools.lru_cache(maxsize=8)
def _offsets(reach: int) -> np.ndarray:
    """Pixel offsets ``[K, 2]`` from a point's pixel to every pixel whose centre may lie within
    ``reach - 0.5`` of the point."""
    return np.argwhere(np.ones((2 * reach + 1, 2 * reach + 1), dtype=bool)) - reach


def _draw(path: np.ndarray, rng: np.random.Generator, size: int, distortion: float) -> np.ndarray:
    """One drawer's instance of a character: bool ``[size, size]`` (True = ink).

    Magnitudes are in pixels of a 105-pixel box (Omniglot's) and scale with ``size``.
    """
    s, u = distortion, size / 105.0
    p = path * size
    # stroke breaks: drop the path near up to two random points (a lifted pen)
    for _ in range(int(rng.integers(0, 3)) if s > 0 else 0):
        c = p[rng.integers(len(p))]
        gap = rng.uniform(1.5, 3.0) * min(s, 2.0) * u
        keep = ((p - c) ** 2).sum(1) > gap * gap
        if keep.mean() > 0.85:
            p = p[keep]
    p = p + _waves(p, rng, 3, (30.0 * u, 90.0 * u), 1.8 * s * u) + _waves(p, rng, 3, (8.0 * u, 20.0 * u), 0.4 * s * u)
    rot = np.deg2rad(rng.normal(0.0, 6.0 * s))
    shear = rng.normal(0.0, 0.1 * s)
    scale = np.exp(rng.normal(0.0, 0.08 * s, 2) + rng.normal(0.0, 0.08 * s))
    c, si = np.cos(rot), np.sin(rot)
    a = np.array([[c, -si], [si, c]]) @ np.array([[1.0, shear], [0.0, 1.0]]) @ np.diag(scale)
    p = p @ a.T + rng.normal(0.0, 3.5 * s * u, 2)
    radius = max(rng.uniform(1.1, 1.8) * u, 0.75)
    # keep the drawing inside the box: shrink about its centre if too large, then shift it in
    half = size / 2 - (radius + 1.0)
    lo, hi = p.min(0), p.max(0)
    ext = float((hi - lo).max()) / 2
    if ext > half:
        p = (lo + hi) / 2 + (p - (lo + hi) / 2) * (half / ext)
        lo, hi = p.min(0), p.max(0)
    p = p - np.clip(hi - half, 0, None) + np.clip(-half - lo, 0, None)
    p = p + size / 2
    # pen: every pixel whose centre lies within `radius` of a path point
    base = np.floor(p).astype(np.int64)
    cells = base[:, None, :] + _offsets(int(np.ceil(radius + 0.5)))[None]      # [P, K, 2]
    near = ((cells + 0.5 - p[:, None, :]) ** 2).sum(-1) <= radius * radius
    cells = cells[near]
    inside = ((cells >= 0) & (cells < size)).all(1)
    img = np.zeros((size, size), dtype=bool)
    img[cells[inside, 0], cells[inside, 1]] = True
    return img


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def make_synthetic_omniglot(
    root: str | Path,
    *,
    n_background_alphabets: int | None = None,
    n_evaluation_alphabets: int | None = None,
    chars_per_alphabet: int | None = None,
    drawers: int = 20,
    size: int = 105,
    seed: int = 0,
    distortion: float = 1.0,
    overwrite: bool = False,
) -> Path:
    """Write a synthetic Omniglot-layout data set under ``root`` (see the module docstring).

    Args:
        root: output folder (created if missing).
        n_background_alphabets: the first this many background alphabets of
            :func:`synthetic_alphabets` (0 writes no ``images_background``; ``None``: all).
        n_evaluation_alphabets: likewise for the evaluation alphabets.
        chars_per_alphabet: characters per alphabet, a seeded choice; an alphabet with fewer
            gives all of its own. ``None``: every character.
        drawers: instances per character (Omniglot: 20).
        size: image side in pixels (Omniglot: 105).
        seed: seed of the character choice and of every drawer's distortion.
        distortion: multiplies every distortion magnitude (0: each drawer traces the glyph's
            skeleton, only the pen radius varies).
        overwrite: replace the ``images_*`` folders and manifest that ``root`` already holds.

    Returns:
        ``root`` as a :class:`~pathlib.Path`; ``root/synthetic_omniglot.json`` lists what was
        written (parameters, and per alphabet its split, font and characters: folder, id, code
        point, Unicode name).

    Raises:
        TypeError / ValueError: an argument of the wrong type or range (the message names it),
            more alphabets asked for than exist (the message gives the counts).
        FileExistsError: ``root`` already holds ``images_background``/``images_evaluation`` or the
            manifest, without ``overwrite=True``.
        NotADirectoryError: ``root`` is a file.
        ImportError: Pillow or scikit-image is missing.
    """
    for name, n in (("n_background_alphabets", n_background_alphabets),
                    ("n_evaluation_alphabets", n_evaluation_alphabets)):
        if n is not None:
            check_int(name, n, minimum=0)
    if n_background_alphabets == 0 and n_evaluation_alphabets == 0:
        raise ValueError("n_background_alphabets and n_evaluation_alphabets are both 0: expected at least one alphabet")
    if chars_per_alphabet is not None:
        check_int("chars_per_alphabet", chars_per_alphabet, minimum=1)
    check_int("drawers", drawers, minimum=1)
    check_int("size", size, minimum=16)
    check_int("seed", seed, minimum=0)
    if isinstance(distortion, bool) or not isinstance(distortion, (int, float)):
        raise TypeError(f"distortion must be a real number in [0, 3], got {type(distortion).__name__} ({distortion!r})")
    if not 0 <= distortion <= 3:  # also refuses NaN
        raise ValueError(f"distortion must be a real number in [0, 3], got {distortion!r}")
    if not isinstance(overwrite, bool):
        raise TypeError(f"overwrite must be a bool, got {type(overwrite).__name__}")
    if not isinstance(root, (str, Path)):
        raise TypeError(f"root must be a path (str or pathlib.Path), got {type(root).__name__}")
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise NotADirectoryError(f"root must be a folder (existing or to be created), got the file {str(root)!r}")

    cat = _catalogue()
    chosen: dict[str, list[_Alphabet]] = {}
    for split, n, arg in (("background", n_background_alphabets, "n_background_alphabets"),
                          ("evaluation", n_evaluation_alphabets, "n_evaluation_alphabets")):
        have = [a for a in cat if a.spec.split == split]
        n = len(have) if n is None else n
        if n > len(have):
            raise ValueError(f"{arg} must be <= {len(have)} (the {split} alphabets the installed fonts give), got {n}")
        chosen[split] = have[:n]

    held = [p for p in (*(root / d for d in _PARTS.values()), root / MANIFEST) if p.exists()]
    if held and not overwrite:
        raise FileExistsError(f"root {str(root)!r} already holds {[p.name for p in held]}; "
                              "pass overwrite=True to replace them, or choose another folder")
    for p in held:
        shutil.rmtree(p) if p.is_dir() else p.unlink()

    manifest_alphabets = []
    next_id = 1
    n_ids = sum(min(len(a.codepoints), chars_per_alphabet or len(a.codepoints)) for al in chosen.values() for a in al)
    id_w, d_w = max(4, len(str(n_ids))), max(2, len(str(drawers)))
    for split in ("background", "evaluation"):
        # ids follow the loader's order: alphabets sorted by folder name within each part
        for a in sorted(chosen[split], key=lambda x: x.spec.name):
            pick = range(len(a.codepoints))
            if chars_per_alphabet is not None and chars_per_alphabet < len(a.codepoints):
                pick = sorted(_rng(seed, a.uid).choice(len(a.codepoints), size=chars_per_alphabet, replace=False))
            cps = [(a.codepoints[i], a.paths[i]) for i in pick]
            c_w = max(2, len(str(len(cps))))
            chars = []
            for j, (cp, path) in enumerate(cps):
                folder = root / _PARTS[split] / a.spec.name / f"character{j + 1:0{c_w}d}"
                folder.mkdir(parents=True, exist_ok=True)
                for d in range(drawers):
                    ink = _draw(path, _rng(seed, a.uid, cp, d + 1), size, float(distortion))
                    _save_png(~ink, folder / f"{next_id:0{id_w}d}_{d + 1:0{d_w}d}.png")
                chars.append({"folder": folder.name, "id": f"{next_id:0{id_w}d}", "codepoint": f"U+{cp:04X}",
                              "unicode_name": unicodedata.name(chr(cp), "")})
                next_id += 1
            manifest_alphabets.append({"name": a.spec.name, "split": split, "font": a.spec.font, "characters": chars})

    import matplotlib

    (root / MANIFEST).write_text(json.dumps({
        "generator": "spikeplastic.tasks.synth_omniglot.make_synthetic_omniglot",
        "note": "synthetic: font glyphs with random per-drawer distortions, not Omniglot",
        "params": {"n_background_alphabets": len(chosen["background"]),
                   "n_evaluation_alphabets": len(chosen["evaluation"]), "chars_per_alphabet": chars_per_alphabet,
                   "drawers": drawers, "size": size, "seed": seed, "distortion": float(distortion)},
        "fonts_from": f"matplotlib {matplotlib.__version__} mpl-data/fonts/ttf",
        "alphabets": manifest_alphabets,
    }, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return root


def _save_png(white: np.ndarray, path: Path) -> None:
    """A 1-bit PNG (True = white), as Omniglot's."""
    from PIL import Image

    Image.fromarray(white).save(path, format="PNG", optimize=False)

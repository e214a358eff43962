"""Procedural images for the image-moderation scenario (numpy only, vectorised, seeded).

Every image is a 32x32 RGB picture: a varied background (linear gradient, value-noise texture,
stripes, checkerboard or a flat colour), up to four distractor shapes (disks, rings, rotated
squares, single line segments), and, in the "prohibited" class, the prohibited object: a thick
X-shaped cross at a varied position, size, rotation and colour, always drawn with visible contrast
against the background under it. Lighting varies last (brightness, contrast, a lighting gradient,
sensor noise) and pixels are quantised to 8 bits, so an image survives a PNG round trip exactly.

Shapes are rendered from signed distance fields with one pixel of anti-aliasing, so the whole
batch is drawn with array operations (no per-image Python loop).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

SIZE = 32
CLASSES = ("allowed", "prohibited")
_CHUNK = 1024
_MAX_DISTRACTORS = 4
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


@dataclass
class ImageBatch:
    """Generated images with their ground truth.

    ``images``: float32 (n, 3, 32, 32) in [0, 1], multiples of 1/255 (NCHW).
    ``labels``: int64 (n,), 1 = prohibited object present.
    ``boxes``: float32 (n, 4) ``x0, y0, x1, y1`` pixel bounds of the prohibited object (NaN
    where there is none), e.g. to place or score a patch that hides it.
    """

    images: np.ndarray
    labels: np.ndarray
    boxes: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


def balanced_labels(n: int, rng: np.random.Generator) -> np.ndarray:
    """Exactly half prohibited (n odd: one more allowed), in random order."""
    return rng.permutation((np.arange(n) % 2).astype(np.int64))


def generate(
    n: int,
    rng: np.random.Generator,
    *,
    labels: np.ndarray | None = None,
    prohibited_rate: float = 0.5,
) -> ImageBatch:
    """``n`` images. ``labels`` forces the classes; else each is prohibited with the given rate."""
    if labels is None:
        labels = (rng.random(n) < prohibited_rate).astype(np.int64)
    labels = np.asarray(labels, dtype=np.int64)
    if labels.shape != (n,):
        raise ValueError(f"labels: expected shape ({n},), got {labels.shape}")
    images = np.empty((n, 3, SIZE, SIZE), dtype=np.float32)
    boxes = np.full((n, 4), np.nan, dtype=np.float32)
    for start in range(0, n, _CHUNK):
        stop = min(n, start + _CHUNK)
        images[start:stop], boxes[start:stop] = _render(labels[start:stop], rng)
    return ImageBatch(images=images, labels=labels, boxes=boxes)


def object_mask(boxes: np.ndarray, *, margin: float = 0.0) -> np.ndarray:
    """Boolean (n, 32, 32) masks of the prohibited objects' boxes (all False where absent)."""
    boxes = np.asarray(boxes, dtype=np.float32)
    x = np.arange(SIZE, dtype=np.float32) + 0.5
    x0, y0, x1, y1 = (np.nan_to_num(boxes[:, i, None, None], nan=-1e9) for i in range(4))
    inside_x = (x[None, None, :] >= x0 - margin) & (x[None, None, :] <= x1 + margin)
    inside_y = (x[None, :, None] >= y0 - margin) & (x[None, :, None] <= y1 + margin)
    return inside_x & inside_y


def downsample(images: np.ndarray, factor: int = 4) -> np.ndarray:
    """Grayscale, ``factor`` x ``factor`` average-pooled: (n, 3, 32, 32) -> (n, 64) for 4."""
    x = np.asarray(images, dtype=np.float32)
    if x.ndim == 3:
        x = x[None]
    gray = np.einsum("nchw,c->nhw", x, _LUMA)
    n, h, w = gray.shape
    pooled = gray.reshape(n, h // factor, factor, w // factor, factor).mean(axis=(2, 4))
    return pooled.reshape(n, -1)


def save_grid(
    images: np.ndarray,
    path: Path,
    *,
    labels: np.ndarray | None = None,
    cols: int = 8,
    zoom: int = 3,
) -> Path:
    """A PNG contact sheet (prohibited images framed red, allowed green), for eyeballing."""
    from PIL import Image

    x = np.asarray(images, dtype=np.float32)
    n = len(x)
    rows = -(-n // cols)
    cell = SIZE + 4
    sheet = np.full((rows * cell, cols * cell, 3), 255, dtype=np.uint8)
    for i in range(n):
        r, c = divmod(i, cols)
        y0, x0 = r * cell, c * cell
        if labels is not None:
            sheet[y0 : y0 + cell - 1, x0 : x0 + cell - 1] = (
                (220, 30, 30) if labels[i] else (30, 160, 30)
            )
        tile = np.round(np.clip(x[i], 0, 1) * 255).astype(np.uint8).transpose(1, 2, 0)
        sheet[y0 + 1 : y0 + 1 + SIZE, x0 + 1 : x0 + 1 + SIZE] = tile
    img = Image.fromarray(sheet).resize((sheet.shape[1] * zoom, sheet.shape[0] * zoom), 0)
    path = Path(path)
    img.save(path)
    return path


# --- rendering ----------------------------------------------------------------------------------

_YY, _XX = np.meshgrid(
    np.arange(SIZE, dtype=np.float32) + 0.5, np.arange(SIZE, dtype=np.float32) + 0.5, indexing="ij"
)


def _u(rng: np.random.Generator, lo: float, hi: float, n: int) -> np.ndarray:
    return rng.uniform(lo, hi, n).astype(np.float32)


def _col(v: np.ndarray) -> np.ndarray:
    """(n,) -> (n, 1, 1) for broadcasting over pixels."""
    return v[:, None, None]


def _interp_matrix(low: int) -> np.ndarray:
    """(SIZE, low) bilinear interpolation weights from a low x low grid to SIZE x SIZE."""
    pos = (np.arange(SIZE, dtype=np.float32) + 0.5) / SIZE * (low - 1)
    i0 = np.clip(np.floor(pos).astype(int), 0, low - 2)
    frac = pos - i0
    m = np.zeros((SIZE, low), dtype=np.float32)
    m[np.arange(SIZE), i0] = 1 - frac
    m[np.arange(SIZE), i0 + 1] = frac
    return m


_INTERP = {k: _interp_matrix(k) for k in (3, 5, 9)}


def _value_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Smooth texture in [0, 1]: a sum of bilinear value noise at three scales."""
    out = np.zeros((n, SIZE, SIZE), dtype=np.float32)
    for low, weight in ((3, 0.5), (5, 0.3), (9, 0.2)):
        grid = rng.random((n, low, low), dtype=np.float32)
        m = _INTERP[low]
        out += weight * np.einsum("yi,nij,xj->nyx", m, grid, m)
    lo = out.min(axis=(1, 2), keepdims=True)
    hi = out.max(axis=(1, 2), keepdims=True)
    return (out - lo) / np.maximum(hi - lo, 1e-6)


def _background(n: int, rng: np.random.Generator) -> np.ndarray:
    kind = rng.integers(0, 5, n)  # 0 gradient, 1 texture, 2 stripes, 3 checker, 4 flat
    ang = _u(rng, 0, 2 * np.pi, n)
    proj = (_col(np.cos(ang)) * (_XX - SIZE / 2) + _col(np.sin(ang)) * (_YY - SIZE / 2)) / SIZE
    gradient = np.clip(proj + 0.5, 0, 1)
    texture = _value_noise(n, rng)
    freq = _u(rng, 2.0, 6.0, n)
    phase = _u(rng, 0, 2 * np.pi, n)
    stripes = 0.5 + 0.5 * np.tanh(3 * np.sin(2 * np.pi * _col(freq) * proj + _col(phase)))
    cell = _col(_u(rng, 3.0, 8.0, n))
    cx = np.floor((_XX + _col(_u(rng, 0, 8, n))) / cell)
    cy = np.floor((_YY + _col(_u(rng, 0, 8, n))) / cell)
    checker = ((cx + cy) % 2).astype(np.float32)
    t = np.select(
        [_col(kind == k) for k in range(4)], [gradient, texture, stripes, checker], default=0.0
    ).astype(np.float32)
    c1 = rng.random((n, 3), dtype=np.float32)
    # Second colour: sometimes far from the first (bold pattern), often close (subtle pattern).
    spread = _u(rng, 0.15, 1.0, n)[:, None]
    c2 = np.clip(c1 + spread * (rng.random((n, 3), dtype=np.float32) - c1), 0, 1)
    bg = c1[:, :, None, None] + (c2 - c1)[:, :, None, None] * t[:, None]
    grain = _col(_u(rng, 0.0, 0.05, n))[:, None]
    bg += grain * rng.standard_normal((n, 3, SIZE, SIZE), dtype=np.float32)
    return bg


def _rotated(cx: np.ndarray, cy: np.ndarray, ang: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    dx, dy = _XX - _col(cx), _YY - _col(cy)
    c, s = _col(np.cos(ang)), _col(np.sin(ang))
    return c * dx + s * dy, -s * dx + c * dy


def _bar(u: np.ndarray, v: np.ndarray, half_len: np.ndarray, half_w: np.ndarray) -> np.ndarray:
    """Signed distance (approximate outside corners) to a rectangle centred on the origin."""
    return np.maximum(np.abs(u) - _col(half_len), np.abs(v) - _col(half_w))


def _alpha(dist: np.ndarray) -> np.ndarray:
    return np.clip(0.5 - dist, 0.0, 1.0)


def _paint(img: np.ndarray, alpha: np.ndarray, color: np.ndarray) -> None:
    a = alpha[:, None]
    img *= 1 - a
    img += a * color[:, :, None, None]


def _distractors(img: np.ndarray, rng: np.random.Generator) -> None:
    n = len(img)
    count = rng.integers(0, _MAX_DISTRACTORS + 1, n)
    lines = np.zeros(n, dtype=np.int64)
    for slot in range(_MAX_DISTRACTORS):
        active = slot < count
        kind = rng.integers(0, 4, n)  # 0 disk, 1 ring, 2 square, 3 line
        kind = np.where((kind == 3) & (lines >= 1), 2, kind)  # one line at most: no accidental X
        lines += (kind == 3) & active
        cx, cy = _u(rng, 2, SIZE - 2, n), _u(rng, 2, SIZE - 2, n)
        r = _u(rng, 2.0, 7.0, n)
        u, v = _rotated(cx, cy, _u(rng, 0, np.pi, n))
        rad = np.sqrt(u * u + v * v)
        dist = np.select(
            [_col(kind == 0), _col(kind == 1), _col(kind == 2)],
            [rad - _col(r), np.abs(rad - _col(r)) - _col(_u(rng, 0.6, 1.5, n)), _bar(u, v, r, r)],
            default=_bar(u, v, r * 1.6, _u(rng, 0.5, 1.5, n)),
        )
        alpha = _alpha(dist) * _col(active.astype(np.float32))
        _paint(img, alpha, rng.random((n, 3), dtype=np.float32))


def _prohibited(img: np.ndarray, present: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Draw the X-shaped cross where ``present``; returns its boxes (NaN where absent)."""
    n = len(img)
    arm = _u(rng, 4.5, 9.0, n)  # half-length of each bar
    half_w = _u(rng, 0.9, 1.8, n)
    a1 = np.pi / 4 + np.deg2rad(_u(rng, -15, 15, n))
    a2 = a1 - np.pi / 2 + np.deg2rad(_u(rng, -8, 8, n))
    ext_x = arm * np.maximum(np.abs(np.cos(a1)), np.abs(np.cos(a2))) + half_w
    ext_y = arm * np.maximum(np.abs(np.sin(a1)), np.abs(np.sin(a2))) + half_w
    cx = rng.uniform(ext_x, SIZE - ext_x).astype(np.float32)
    cy = rng.uniform(ext_y, SIZE - ext_y).astype(np.float32)
    u1, v1 = _rotated(cx, cy, a1)
    u2, v2 = _rotated(cx, cy, a2)
    dist = np.minimum(_bar(u1, v1, arm, half_w), _bar(u2, v2, arm, half_w))
    alpha = _alpha(dist) * _col(present.astype(np.float32))
    # Colour: a saturated hue, jittered; flipped to its complement where it would not stand out
    # against the background under the object.
    hue = rng.random(n, dtype=np.float32)
    sat, val = _u(rng, 0.6, 1.0, n), _u(rng, 0.55, 1.0, n)
    color = _hsv_to_rgb(hue, sat, val)
    color = np.where(rng.random((n, 1)) < 0.2, 1.0 - color, color)  # some dark crosses
    ix = np.clip(cx.astype(int), 0, SIZE - 1)
    iy = np.clip(cy.astype(int), 0, SIZE - 1)
    under = np.clip(img[np.arange(n), :, iy, ix], 0, 1)
    weak = np.abs(color - under).max(axis=1) < 0.35
    color = np.where(weak[:, None], 1.0 - under, color).astype(np.float32)
    weak = np.abs(color - under).max(axis=1) < 0.35  # mid-grey under it: go black or white
    color[weak] = np.where(under[weak].mean(axis=1, keepdims=True) > 0.5, 0.0, 1.0)
    _paint(img, alpha, color)
    boxes = np.stack([cx - ext_x, cy - ext_y, cx + ext_x, cy + ext_y], axis=1)
    boxes = boxes.astype(np.float32)
    boxes[~present.astype(bool)] = np.nan
    return np.clip(boxes, 0, SIZE)


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    k = (np.array([5.0, 3.0, 1.0], dtype=np.float32)[None, :] + h[:, None] * 6) % 6
    return (v[:, None] - v[:, None] * s[:, None] * np.clip(np.minimum(k, 4 - k), 0, 1)).astype(
        np.float32
    )


def _lighting(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    n = len(img)
    contrast = _u(rng, 0.7, 1.2, n)[:, None, None, None]
    bright = _u(rng, -0.15, 0.15, n)[:, None, None, None]
    ang = _u(rng, 0, 2 * np.pi, n)
    proj = (_col(np.cos(ang)) * (_XX - SIZE / 2) + _col(np.sin(ang)) * (_YY - SIZE / 2)) / SIZE
    light = 1 + _col(_u(rng, 0.0, 0.6, n)) * proj
    tint = 1 + _u(rng, -0.08, 0.08, 3 * n).reshape(n, 3, 1, 1)  # white balance
    out = ((img - 0.5) * contrast + 0.5 + bright) * light[:, None] * tint
    noise = _col(_u(rng, 0.0, 0.03, n))[:, None]
    out += noise * rng.standard_normal(out.shape, dtype=np.float32)
    return np.round(np.clip(out, 0, 1) * 255) / 255


def _render(labels: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    img = _background(len(labels), rng)
    _distractors(img, rng)
    boxes = _prohibited(img, labels == 1, rng)
    return _lighting(img, rng).astype(np.float32), boxes


def encode_png(image: np.ndarray) -> bytes:
    """One (3, 32, 32) image in [0, 1] as PNG bytes (lossless for generated images)."""
    import io

    from PIL import Image

    arr = np.round(np.clip(np.asarray(image, dtype=np.float32), 0, 1) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr.transpose(1, 2, 0)).save(buf, format="PNG")
    return buf.getvalue()

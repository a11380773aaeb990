"""Shared fixtures: tiny synthetic photos and paintings, made on the fly."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image


def _photo(w: int, h: int, seed: int) -> Image.Image:
    """A smooth gradient scene with a few blocks: structure for content, colours for style."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(w, h)
    img = np.stack([x, y, 1 - x * y], axis=-1)
    for _ in range(4):
        x0, y0 = rng.integers(0, w // 2), rng.integers(0, h // 2)
        img[y0 : y0 + h // 3, x0 : x0 + w // 3] = rng.random(3)
    return Image.fromarray((img * 255).astype(np.uint8))


def _painting(w: int, h: int, seed: int) -> Image.Image:
    """Diagonal coloured strokes: a strong, easily recognised texture."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    stripes = np.sin((x + y) / 3.0)[..., None]
    img = 0.5 + 0.5 * stripes * np.array([0.9, 0.6, -0.8]) + 0.1 * rng.standard_normal((h, w, 3))
    return Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8))


@pytest.fixture
def content_path(tmp_path):
    path = tmp_path / "content.png"
    _photo(96, 72, 0).save(path)
    return str(path)


@pytest.fixture
def style_path(tmp_path):
    path = tmp_path / "style.png"
    _painting(80, 80, 1).save(path)
    return str(path)

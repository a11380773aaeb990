"""Loss terms as pure functions of tensors. Shapes: features F, P are (B, C, H, W); Grams G, A are (B, C, C).

Each normalisation variant is named after the tutorial that uses it (see presets.py)."""

from __future__ import annotations

import torch
from torch import Tensor

EPS = 1e-8


def content_loss(f: Tensor, p: Tensor, norm: str = "target") -> Tensor:
    """Squared feature error between generated features F and target features P.

    - ``target``:   mean((F-P)²) / mean(P²)          ours: 1 for a zero image, size- and weight-independent
    - ``half-sum``: ½ Σ (F-P)²                        Gatys et al. 2016, eq. 1
    - ``sum``:      Σ (F-P)²                          Keras VGG16 post
    - ``mean``:     mean((F-P)²)                      PyTorch blog, Keras VGG19 notebook
    - ``coursera``: Σ (F-P)² / (4 nH nW nC)           deeplearning.ai notebook
    """
    sq = (f - p).pow(2)
    if norm == "target":
        return sq.mean() / (p.pow(2).mean() + EPS)
    if norm == "half-sum":
        return 0.5 * sq.sum()
    if norm == "sum":
        return sq.sum()
    if norm == "mean":
        return sq.mean()
    if norm == "coursera":
        return sq.sum() / (4 * f[0].numel())
    raise ValueError(f"unknown content norm {norm!r}")


def gram(f: Tensor, norm: str = "hw") -> Tensor:
    """G = F Fᵀ / n, F: (B, C, H·W) -> G: (B, C, C), with n = 1 (``none``), H·W (``hw``) or C·H·W (``chw``).

    Gatys et al. 2016, eq. 3 (unnormalised). Dividing by H·W makes G an average over positions, so one
    style weight works at any image size."""
    b, c, h, w = f.shape
    flat = f.reshape(b, c, h * w)
    g = flat @ flat.transpose(1, 2)  # (B, C, C)
    divisor = {"none": 1, "hw": h * w, "chw": c * h * w}[norm]
    return g / divisor


def style_layer_loss(g: Tensor, a: Tensor, norm: str, positions: int, image_pixels: int) -> Tensor:
    """One layer's Gram error E_l between generated Gram G and style Gram A.

    ``positions`` = H·W of the layer, ``image_pixels`` = H·W of the input image.

    - ``target``:      Σ (G-A)² / Σ A²                 ours: 1 for a zero image
    - ``mean``:        mean((G-A)²)                     Keras VGG19 notebook
    - ``gatys``:       Σ (G-A)² / (4 N² M²), N = C, M = H·W   Gatys et al. 2016, eq. 4; deeplearning.ai
    - ``mean-chw``:    mean((G-A)²) / (C·H·W)            PyTorch blog
    - ``keras-vgg16``: Σ (G-A)² / (4 · 3² · (W·H)²)      Keras VGG16 post (3 image channels, image size)
    """
    c = g.shape[-1]
    sq = (g - a).pow(2)
    if norm == "target":
        return sq.sum() / (a.pow(2).sum() + EPS)
    if norm == "mean":
        return sq.mean()
    if norm == "gatys":
        return sq.sum() / (4 * c**2 * positions**2)
    if norm == "mean-chw":
        return sq.mean() / (c * positions)
    if norm == "keras-vgg16":
        return sq.sum() / (4 * 3**2 * image_pixels**2)
    raise ValueError(f"unknown style norm {norm!r}")


def tv_loss(x: Tensor, kind: str = "l2", power: float = 1.25) -> Tensor:
    """Total variation of an image x: (B, C, H, W).

    - ``l2``:    mean(Δx²) + mean(Δy²) over forward differences (Mahendran & Vedaldi 2015, β = 2)
    - ``keras``: Σ (Δx² + Δy²)^power over the (H-1)×(W-1) grid (Keras VGG16 post, power 1.25)
    """
    dx = x[..., :, 1:] - x[..., :, :-1]  # (B, C, H, W-1)
    dy = x[..., 1:, :] - x[..., :-1, :]  # (B, C, H-1, W)
    if kind == "l2":
        return dx.pow(2).mean() + dy.pow(2).mean()
    if kind == "keras":
        return (dx[..., :-1, :].pow(2) + dy[..., :, :-1].pow(2)).pow(power).sum()
    raise ValueError(f"unknown TV loss {kind!r}")


def style_loss(
    grams: dict[str, Tensor],
    targets: dict[str, Tensor],
    weights: dict[str, float],
    norm: str,
    positions: dict[str, int],
    image_pixels: int,
) -> Tensor:
    """Σ_l w_l E_l over the style layers (Gatys et al. 2016, eq. 5)."""
    terms = [
        w * style_layer_loss(grams[name], targets[name], norm, positions[name], image_pixels)
        for name, w in weights.items()
    ]
    return torch.stack(terms).sum()

"""Colour preservation (Gatys, Bethge, Hertzmann & Shechtman 2016, "Preserving color in neural artistic
style transfer", arXiv:1606.05897). Pure functions on RGB images in [0, 1], x: (B, 3, H, W)."""

from __future__ import annotations

import torch
from torch import Tensor

# NTSC YIQ (FCC 1953), the space the paper uses. Y is BT.601 luma, the same Y as in YCbCr.
RGB_TO_YIQ = torch.tensor(
    [
        [0.299, 0.587, 0.114],
        [0.595716, -0.274453, -0.321263],
        [0.211456, -0.522591, 0.311135],
    ]
)
EPS = 1e-5


def _apply(matrix: Tensor, x: Tensor) -> Tensor:
    """Per-pixel y = M x for x: (B, 3, H, W)."""
    return torch.einsum("ij,bjhw->bihw", matrix.to(x), x)


def rgb_to_yiq(x: Tensor) -> Tensor:
    """[Y, I, Q] = M_YIQ · [R, G, B]: (B, 3, H, W) -> (B, 3, H, W)."""
    return _apply(RGB_TO_YIQ, x)


def yiq_to_rgb(x: Tensor) -> Tensor:
    """[R, G, B] = M_YIQ⁻¹ · [Y, I, Q] (not clamped)."""
    return _apply(torch.linalg.inv(RGB_TO_YIQ.double()).float(), x)


def luminance(x: Tensor) -> Tensor:
    """Y = 0.299 R + 0.587 G + 0.114 B: (B, 3, H, W) -> (B, 1, H, W)."""
    return _apply(RGB_TO_YIQ[:1], x)


def match_luminance(y_style: Tensor, y_content: Tensor) -> Tensor:
    """L_s' = σ_c / σ_s · (L_s - μ_s) + μ_c (the paper's eq. 1): the style's luminance with the content's mean
    and standard deviation, statistics over all pixels of each image. (B, 1, H, W) each."""
    mu_s, sd_s = y_style.mean(dim=(-2, -1), keepdim=True), y_style.std(dim=(-2, -1), keepdim=True)
    mu_c, sd_c = y_content.mean(dim=(-2, -1), keepdim=True), y_content.std(dim=(-2, -1), keepdim=True)
    return (y_style - mu_s) * (sd_c / (sd_s + EPS)) + mu_c


def grey(y: Tensor) -> Tensor:
    """A luminance image (B, 1, H, W) as the 3-channel RGB image the network reads, clamped to [0, 1].

    The paper feeds the luminance channel alone; an RGB network needs three equal channels."""
    return y.clamp(0, 1).expand(-1, 3, -1, -1).contiguous()


def with_chroma(y: Tensor, chroma_from: Tensor) -> Tensor:
    """RGB image from luminance y: (B, 1, H, W) and the I, Q channels of ``chroma_from``: (B, 3, H, W);
    the paper's final step (stylised Y + the content's IQ). Clamped to [0, 1]."""
    yiq = rgb_to_yiq(chroma_from)
    return yiq_to_rgb(torch.cat([y, yiq[:, 1:]], dim=1)).clamp(0, 1)


def color_stats(x: Tensor) -> tuple[Tensor, Tensor]:
    """Per-image colour mean μ: (B, 3) and covariance Σ = E[(x-μ)(x-μ)ᵀ]: (B, 3, 3) over pixels."""
    flat = x.flatten(2)  # (B, 3, H·W)
    mu = flat.mean(-1)
    centred = flat - mu.unsqueeze(-1)
    return mu, centred @ centred.transpose(1, 2) / flat.shape[-1]


def _sym_power(a: Tensor, p: float) -> Tensor:
    """A^p = V diag(max(λ, EPS)^p) Vᵀ for a symmetric PSD (B, 3, 3) A; the floor keeps a flat image finite."""
    lam, v = torch.linalg.eigh(a.double())
    return ((v * lam.clamp(min=EPS).pow(p).unsqueeze(-2)) @ v.transpose(-1, -2)).to(a.dtype)


def match_color(source: Tensor, target: Tensor) -> Tensor:
    """Recolour ``source`` to the colour mean and covariance of ``target`` (the paper's sec. 2.1):

        x' = A (x - μ_s) + μ_t,   A = Σ_t^½ Σ_s^-½   (so that A Σ_s Aᵀ = Σ_t)

    with symmetric (eigendecomposition) square roots, the paper's "image analogies" variant; like CORAL
    (Sun et al. 2016). Not clamped: the moments match exactly, and a caller that needs an image clamps."""
    mu_s, cov_s = color_stats(source)
    mu_t, cov_t = color_stats(target)
    a = _sym_power(cov_t, 0.5) @ _sym_power(cov_s, -0.5)  # (B, 3, 3)
    b, c, h, w = source.shape
    out = a @ (source.flatten(2) - mu_s.unsqueeze(-1)) + mu_t.unsqueeze(-1)
    return out.reshape(b, c, h, w)

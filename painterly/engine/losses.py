"""Loss terms as pure functions of tensors. Shapes: features F, P are (B, C, H, W); Grams G, A are (B, C, C).

Each normalisation variant is named after the tutorial that uses it (see presets.py)."""

from __future__ import annotations

import torch
from torch import Tensor

EPS = 1e-8


def content_scale(p: Tensor, norm: str = "target") -> Tensor:
    """c with ``content_loss(F, P, norm) = c · Σ (F-P)²``: the norm's constant, the one table of them."""
    if norm == "target":
        return 1 / (p.numel() * (p.pow(2).mean() + EPS))
    factors = {"half-sum": 0.5, "sum": 1.0, "mean": 1 / p.numel(), "coursera": 1 / (4 * p[0].numel())}
    if norm not in factors:
        raise ValueError(f"unknown content norm {norm!r}")
    return p.new_tensor(factors[norm])


def content_loss(f: Tensor, p: Tensor, norm: str = "target") -> Tensor:
    """Squared feature error between generated features F and target features P.

    - ``target``:   mean((F-P)²) / mean(P²)          ours: 1 for a zero image, size- and weight-independent
    - ``half-sum``: ½ Σ (F-P)²                        Gatys et al. 2016, eq. 1
    - ``sum``:      Σ (F-P)²                          Keras VGG16 post
    - ``mean``:     mean((F-P)²)                      PyTorch blog, Keras VGG19 notebook
    - ``coursera``: Σ (F-P)² / (4 nH nW nC)           deeplearning.ai notebook
    """
    return content_scale(p, norm) * (f - p).pow(2).sum()


class _Gram(torch.autograd.Function):
    """G = F Fᵀ with the backward dF = (dG + dGᵀ) F: one batched matmul where autograd's generic backward
    of ``F @ F.transpose`` runs two (one per operand) and then adds two feature-sized gradients."""

    @staticmethod
    def forward(ctx, flat: Tensor) -> Tensor:  # noqa: ANN001 - autograd's context
        ctx.save_for_backward(flat)
        return flat @ flat.transpose(1, 2)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # noqa: ANN001
        (flat,) = ctx.saved_tensors
        return (grad + grad.transpose(1, 2)) @ flat


def gram_divisor(norm: str, channels: int, positions: int) -> int:
    """n of ``gram``'s G = F Fᵀ / n: 1 (``none``), H·W (``hw``) or C·H·W (``chw``)."""
    return {"none": 1, "hw": positions, "chw": channels * positions}[norm]


def gram_sum(f: Tensor, m: Tensor | None = None) -> Tensor:
    """S = Σ_p m_p f_p f_pᵀ over the positions of f: (B, C, H, W) -> (B, C, C); m: (B, 1, H, W) or None (1).

    The statistic every Gram is a multiple of; being a sum over positions, it also adds up over tiles."""
    b, c, h, w = f.shape
    flat = f.reshape(b, c, h * w)
    if m is None:
        return _Gram.apply(flat)
    return (flat * m.reshape(b, 1, h * w)) @ flat.transpose(1, 2)


def gram(f: Tensor, norm: str = "hw") -> Tensor:
    """G = F Fᵀ / n, F: (B, C, H·W) -> G: (B, C, C), with n = 1 (``none``), H·W (``hw``) or C·H·W (``chw``).

    Gatys et al. 2016, eq. 3 (unnormalised). Dividing by H·W makes G an average over positions, so one
    style weight works at any image size."""
    b, c, h, w = f.shape
    return gram_sum(f) / gram_divisor(norm, c, h * w)


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


# --- Several styles, spatial masks and the mean/covariance (Wasserstein-2) style loss (issue 5) ---


def masked_gram(f: Tensor, m: Tensor, norm: str = "hw") -> Tensor:
    """Gram over a soft region: G = F diag(m) Fᵀ · (H·W / Σm) / n, F: (B, C, H·W), m: (B, 1, H, W) in [0, 1].

    Gatys et al. 2017, "Controlling perceptual factors in neural style transfer", sec. 4 (spatial control),
    with the mask already downsampled to this layer. They weight by m² (masking both factors); we weight by m
    so a grey mask counts a position in proportion, and rescale by H·W / Σm so the region's Gram has the size
    of a whole image's and compares with the style image's under every ``norm`` of ``gram``."""
    b, c, h, w = f.shape
    area = m.reshape(b, 1, h * w).sum(dim=-1, keepdim=True).clamp(min=EPS)  # (B, 1, 1)
    return gram_sum(f, m) * (h * w / area) / gram_divisor(norm, c, h * w)


def mean_cov(f: Tensor, m: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Mean μ = Σ m f / Σ m: (B, C) and covariance Σ = Σ m f fᵀ / Σ m - μ μᵀ: (B, C, C) of features over
    positions, optionally weighted by a soft mask m: (B, 1, H, W). The Gaussian fit of the Wasserstein loss.

    Second moment minus μμᵀ rather than centring first: one Gram-sized matmul and no copy of the features,
    the same cost as ``gram``; float32 loses ~1e-7 of E[f²] to the subtraction, far below what matters."""
    b, c, h, w = f.shape
    flat = f.reshape(b, c, h * w)
    if m is None:
        mu = flat.mean(-1)  # (B, C)
        second = flat @ flat.transpose(1, 2) / (h * w)
    else:
        weights = m.reshape(b, 1, h * w)
        weights = weights / weights.sum(dim=-1, keepdim=True).clamp(min=EPS)  # sums to 1 over positions
        weighted = flat * weights
        mu = weighted.sum(-1)
        second = weighted @ flat.transpose(1, 2)
    return mu, second - mu.unsqueeze(-1) * mu.unsqueeze(-2)


def psd_sqrt(a: Tensor) -> Tensor:
    """Symmetric square root A^½ = V diag(√max(λ, 0)) Vᵀ of a symmetric PSD matrix A = V diag(λ) Vᵀ: (B, C, C).

    For targets only (computed once, no gradient): eigenvalues below 0 are rounding error and clamped."""
    lam, v = torch.linalg.eigh(a)
    return (v * lam.clamp(min=0).sqrt().unsqueeze(-2)) @ v.transpose(-1, -2)


def gaussian_target(mu: Tensor, cov: Tensor) -> dict[str, Tensor]:
    """Everything the Wasserstein loss needs from the style, computed once: μ_s, Σ_s, Σ_s^½ and the
    normaliser |μ_s|² + tr Σ_s = E|f_s|² (the W2² from an all-zero response)."""
    norm = mu.pow(2).sum(-1) + cov.diagonal(dim1=-2, dim2=-1).sum(-1)
    return {"mean": mu, "cov": cov, "cov_sqrt": psd_sqrt(cov), "norm": norm}


def blend_moments(mus: list[Tensor], covs: list[Tensor], weights: list[float]) -> tuple[Tensor, Tensor]:
    """Mean and covariance of the mixture Σ_k w_k N(μ_k, Σ_k) (weights sum to 1): μ = Σ w_k μ_k,
    Σ = Σ w_k (Σ_k + μ_k μ_kᵀ) - μ μᵀ. Blending second moments this way is what blending Grams does."""
    mu = sum(w * m for w, m in zip(weights, mus, strict=True))
    second = sum(w * (c + m.unsqueeze(-1) * m.unsqueeze(-2)) for w, m, c in zip(weights, mus, covs, strict=True))
    return mu, second - mu.unsqueeze(-1) * mu.unsqueeze(-2)


def _sqrt_trace(k: Tensor, eps: float) -> Tensor:
    """tr(K^½) = Σ √λ_i for a symmetric PSD K: (B, n, n), from its eigenvalues only.

    eigvalsh's backward is V diag(∂L/∂λ) Vᵀ (no 1/(λ_i - λ_j) terms), so repeated eigenvalues are harmless.
    Below ``eps`` (the zero eigenvalues of a covariance from few positions) √λ is replaced by the chord
    λ/√eps: d/dλ stays finite (1/√eps instead of 1/(2√λ) -> ∞), exact zeros still add 0, rounding below 0
    adds 0."""
    lam = torch.linalg.eigvalsh(k)
    roots = torch.where(lam > eps, lam.clamp(min=eps).sqrt(), lam.clamp(min=0) / eps**0.5)
    return roots.sum(-1)


def wasserstein_loss(f: Tensor, target: dict[str, Tensor], m: Tensor | None = None, eps: float = 1e-10) -> Tensor:
    """W2² between Gaussian fits of generated features f: (B, C, H, W) and the style (``gaussian_target``):

        ||μ - μ_s||² + tr Σ + tr Σ_s - 2 tr((Σ_s^½ Σ Σ_s^½)^½),   divided by |μ_s|² + tr Σ_s

    Dowson & Landau 1982; as a style loss: Kolkin et al. 2019 (STROTSS) and Vacher et al. 2020 (Gaussian
    texture models). Σ_s^½ comes precomputed. Per step we need only the eigenvalues of the symmetric
    M = Σ_s^½ Σ Σ_s^½, with Σ = Xᵀ X (X: the n × C weighted, centred features). M = Yᵀ Y with Y = X Σ_s^½
    shares its non-zero eigenvalues with Y Yᵀ (n × n), so we decompose whichever is smaller: deep layers at
    small sizes have fewer positions n than channels C. Divided, like the Gram ``target`` norm, by the loss
    of an all-zero response so that it is 1 there at every layer and size. Summed over the batch."""
    b, c, h, w = f.shape
    mu, cov = mean_cov(f, m)
    mean_term = (mu - target["mean"]).pow(2).sum(-1)
    trace_term = cov.diagonal(dim1=-2, dim2=-1).sum(-1) + target["cov"].diagonal(dim1=-2, dim2=-1).sum(-1)
    if h * w < c:
        weights = f.new_ones(b, 1, h * w) if m is None else m.reshape(b, 1, h * w)
        weights = weights / weights.sum(dim=-1, keepdim=True).clamp(min=EPS)
        x = (f.reshape(b, c, h * w) - mu.unsqueeze(-1)) * weights.sqrt()  # (B, C, n): Σ = x xᵀ
        y = target["cov_sqrt"] @ x  # (B, C, n)
        k = y.transpose(1, 2) @ y  # (B, n, n)
    else:
        s = target["cov_sqrt"]
        k = s @ cov @ s  # (B, C, C)
        k = 0.5 * (k + k.transpose(1, 2))  # exactly symmetric for eigvalsh
    scale = float(target["norm"].max()) / c  # eps relative to the style's typical eigenvalue², set once
    cross = _sqrt_trace(k, eps * scale * scale)
    w2 = mean_term + trace_term - 2 * cross
    return (w2 / (target["norm"] + EPS)).sum()

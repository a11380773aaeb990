"""Terms that keep the photo's structure under random features (issue 12): the Laplacian loss of Li et al. 2017
and a per-pair balance of the style term.

With a random backbone the style statistics are dominated by pixel-scale responses of the first layers, so one
fixed content/style ratio keeps the photo on one pair and dissolves it on another. The Laplacian term holds the
photo's edges directly in pixel space, independent of the features; the balance measures how far the photo is
from the painting and scales the style term so every pair starts from the same style pressure."""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import Tensor

from painterly.engine.objective import TERMS, PixelTerm, Term, TermContext, register_term

LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601 luma weights
LAPLACE = ((0.0, 1.0, 0.0), (1.0, -4.0, 1.0), (0.0, 1.0, 0.0))  # the 5-point Laplacian stencil
LEVELS = (128, 32)  # pooling windows as long side / level: Li et al.'s p = 4 and 16 at 512 px
BALANCE_SIDE = 128  # px: where the balance is measured (the coarsest default stage)
BALANCE_FLOOR = 0.05  # the photo's own style loss is clamped here: a photo that already is the painting
EPS = 1e-8


def luminance(x: Tensor) -> Tensor:
    """Y = 0.299 R + 0.587 G + 0.114 B: (B, 3, H, W) RGB -> (B, 1, H, W)."""
    return (x * x.new_tensor(LUMA).view(1, 3, 1, 1)).sum(1, keepdim=True)


def laplacian(y: Tensor) -> Tensor:
    """Δy with the 5-point stencil and replicated borders: (B, 1, H, W) -> (B, 1, H, W)."""
    kernel = y.new_tensor(LAPLACE).view(1, 1, 3, 3)
    return F.conv2d(F.pad(y, (1, 1, 1, 1), mode="replicate"), kernel)


def pool_sizes(size: tuple[int, int], levels: tuple[int, ...] = LEVELS) -> tuple[int, ...]:
    """Average-pooling windows for an (H, W) image: round(long side / level), at least 1 (2 and 8 at 256 px)."""
    return tuple(max(1, round(max(size) / level)) for level in levels)


def laplacian_pyramid(x: Tensor, pools: tuple[int, ...]) -> list[Tensor]:
    """Δ(avgpool_p(Y(x))) for each window p: the edges of the luminance at a few scales."""
    y = luminance(x)
    return [laplacian(F.avg_pool2d(y, p, ceil_mode=True) if p > 1 else y) for p in pools]


def laplacian_loss(x: Tensor, targets: list[Tensor], pools: tuple[int, ...]) -> Tensor:
    """mean_p Σ (Δx_p - Δc_p)² / Σ Δc_p², x: (B, 3, H, W) RGB in [0, 1], ``targets`` = the content's pyramid.

    Li, Xu, Nie & Wang, "Laplacian-Steered Neural Style Transfer" (ACM MM 2017), eq. 3: ‖D(x_c) - D(x)‖² of
    p×p-pooled images. Ours: on luminance only, so the painting's colours are free, and divided by the target's
    energy (1 for a flat image) so one weight suits any photo and size."""
    losses = [(d - t).pow(2).sum() / (t.pow(2).sum() + EPS) for d, t in zip(laplacian_pyramid(x, pools), targets,
                                                                               strict=True)]  # fmt: skip
    return torch.stack(losses).mean()


@register_term("structure")
def _structure(ctx: TermContext) -> Term | None:
    """The Laplacian term, ``structure_weight`` · ``laplacian_loss`` against the content photo. Stylisation
    only: a reconstruction shows what the features alone keep of the photo, so it gets no pixel-space help."""
    weight = ctx.cfg.optimize.structure_weight
    if ctx.content is None or not ctx.styles or weight <= 0:
        return None
    pools = pool_sizes(tuple(ctx.content.shape[-2:]))
    with torch.no_grad():
        targets = laplacian_pyramid(ctx.content, pools)
    return PixelTerm(lambda v: weight * laplacian_loss(ctx.pixels.from_net(v), targets, pools))


# --- per-pair balance of the style term ---


class Scaled(Term):
    """``factor`` × another term, on the plain and the tiled path alike (the sums pass through)."""

    def __init__(self, term: Term, factor: float):
        self.term, self.factor = term, factor
        self.layers, self.tileable = term.layers, term.tileable

    def sums(self, feats, sizes, cells=None):  # noqa: ANN001, ANN201 - Term's signature
        return self.term.sums(feats, sizes, cells)

    def value(self, sums, v, sizes):  # noqa: ANN001, ANN201
        return self.factor * self.term.value(sums, v, sizes)

    def __call__(self, feats: dict[str, Tensor], v: Tensor) -> Tensor:
        return self.factor * self.term(feats, v)


def photo_style_loss(build, ctx: TermContext) -> float:  # noqa: ANN001 - a Builder
    """L_s(c): the unweighted style loss of the photo itself, measured with photo and paintings scaled together
    to a ``BALANCE_SIDE`` px long side, so every coarse-to-fine stage and every output size gets one factor."""
    f = BALANCE_SIDE / max(ctx.content.shape[-2:])

    def scaled(x: Tensor) -> Tensor:
        size = [max(1, round(n * f)) for n in x.shape[-2:]]
        return F.interpolate(x, size=size, mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)

    masks = None if ctx.masks is None else [scaled(m) for m in ctx.masks]
    small = dataclasses.replace(ctx, content=scaled(ctx.content), styles=[scaled(s) for s in ctx.styles], masks=masks)
    term = build(small)
    with torch.no_grad():
        v = small.pixels.to_net(small.content)
        return float(term(small.extractor.net_features(v, term.layers), v)) / term.weight


def balanced(build):  # noqa: ANN001, ANN201 - a Builder in, a Builder out
    """The style builder ``build`` with β·L_s(x) replaced by β·L_s(x) / max(L_s(c), floor) when
    ``balance="photo"``: the style term starts at β on the photo whatever the pair, so a photo far from
    its painting (a night scene under a pale painting) is not pulled harder than one close to it."""

    def build_balanced(ctx: TermContext) -> Term | None:
        term = build(ctx)
        if term is None or ctx.content is None or ctx.cfg.optimize.balance != "photo" or term.weight <= 0:
            return term
        return Scaled(term, 1.0 / max(photo_style_loss(build, ctx), BALANCE_FLOOR))

    build_balanced.balances = build  # marks it, so registering twice does not wrap twice
    return build_balanced


def balance_factor(ctx: TermContext) -> float:
    """The factor ``balanced`` puts on the style term for this context (1 when off)."""
    term = TERMS["style"](ctx)
    return 1.0 if term is None or not isinstance(term, Scaled) else term.factor


if not hasattr(TERMS["style"], "balances"):
    register_term("style", balanced(TERMS["style"]))

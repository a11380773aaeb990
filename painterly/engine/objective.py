"""The objective α·content + β·style + tv_weight·TV of Gatys et al. 2016, with targets computed once.

Several styles, spatial masks, the strength knob and the Wasserstein style loss are issue 5."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from painterly.config import RunConfig
from painterly.engine.backbone import FeatureExtractor
from painterly.engine.losses import (
    blend_moments,
    content_loss,
    gaussian_target,
    gram,
    masked_gram,
    mean_cov,
    style_loss,
    tv_loss,
    wasserstein_loss,
)

STRENGTH_DEFAULT = 0.5  # RunConfig.strength's default: the preset's own weights
STRENGTH_DECADES = 4.0
WASSERSTEIN_SCALE = 0.1  # strength 0 -> style weight / 100, 1 -> style weight × 100


def strength_factor(strength: float) -> float:
    """Multiplier on the style weight: 10^(4·(s - ½)), s in [0, 1].

    Exactly 1 at the default s = ½, so every preset (and its tuning) is unchanged unless the knob moves;
    exponential because the content/style balance acts on a log scale (the papers sweep α/β by decades)."""
    return 10.0 ** (STRENGTH_DECADES * (strength - STRENGTH_DEFAULT))


@dataclass(frozen=True)
class StyleTerm:
    """One style region: its loss weight, its mask at the output size (None: everywhere) and, per layer,
    the target: a Gram matrix, or ``gaussian_target``'s dict for the Wasserstein loss."""

    weight: float
    mask: Tensor | None  # (1, 1, H, W) in [0, 1]
    targets: dict[str, Tensor | dict[str, Tensor]]


def style_terms(
    extractor: FeatureExtractor,
    cfg: RunConfig,
    styles: Sequence[Tensor],
    blend: Sequence[float],
    masks: Sequence[Tensor] | None = None,
) -> list[StyleTerm]:
    """Style targets for one output size. ``blend`` sums to 1; ``masks`` is None, one mask, or one per style.

    Styles sharing a region are blended per layer as weighted statistics (Σ w_k A_k for Grams, the mixture's
    mean and covariance for the Wasserstein loss) into one target. With one mask per style each style gets
    its own term on its own region, weighted n·w_k (1 each for an equal blend)."""
    names = [n for n, _ in cfg.optimize.style_layers]
    stats = []
    with torch.no_grad():
        for s in styles:
            feats = extractor(s)
            if cfg.optimize.style_loss == "gram":
                stats.append({n: gram(feats[n], cfg.optimize.gram_norm) for n in names})
            else:
                stats.append({n: mean_cov(feats[n]) for n in names})
        if masks is not None and len(masks) == len(styles) > 1:
            return [
                StyleTerm(len(styles) * w, m, _targets([st], [1.0], cfg))
                for st, w, m in zip(stats, blend, masks, strict=True)
            ]
        return [StyleTerm(1.0, masks[0] if masks else None, _targets(stats, blend, cfg))]


def _targets(stats: list[dict], blend: Sequence[float], cfg: RunConfig) -> dict:
    """Blend per-style statistics into one target per layer. A single style passes through untouched, so a
    ``1,0`` blend (zero-weight styles are dropped before this) is bit-for-bit the single-style run."""
    out = {}
    for n in stats[0]:
        if cfg.optimize.style_loss == "gram":
            out[n] = stats[0][n] if len(stats) == 1 else sum(w * st[n] for w, st in zip(blend, stats, strict=True))
        else:
            mus, covs = zip(*(st[n] for st in stats), strict=True)
            mu, cov = (mus[0], covs[0]) if len(stats) == 1 else blend_moments(list(mus), list(covs), list(blend))
            out[n] = gaussian_target(mu, cov)
    return out


def layer_mask(mask: Tensor, size: tuple[int, int]) -> Tensor:
    """A (B, 1, H, W) mask averaged down to a layer's (h, w): the share of each feature's cell inside the
    region. Gatys et al. 2017 propagate masks through the pooling layers; area averaging does the same."""
    return mask if tuple(mask.shape[-2:]) == tuple(size) else F.adaptive_avg_pool2d(mask, size)


class Objective:
    """Callable on an image in the network's pixel space; returns the weighted terms and their total.

    ``content`` is an RGB image in [0, 1], (1, 3, H, W); ``style`` one such image or a sequence of them,
    mixed by ``blend`` (default equal). Either may be None (texture mode has no content, reconstruct mode no
    style). ``masks``: None, one mask or one per style, (1, 1, H, W) at the output size; outside their union
    the image is held at the content (``composite``), so masked-out pixels stay the photo."""

    def __init__(
        self,
        extractor: FeatureExtractor,
        cfg: RunConfig,
        content: Tensor | None,
        style: Tensor | Sequence[Tensor] | None,
        *,
        blend: Sequence[float] | None = None,
        masks: Sequence[Tensor] | None = None,
    ):
        self.extractor, self.cfg = extractor, cfg
        styles = [] if style is None else [style] if isinstance(style, Tensor) else list(style)
        blend = list(blend) if blend is not None else [1.0 / len(styles)] * len(styles)
        self.content_layers = (
            cfg.optimize.content_layers if content is not None and cfg.optimize.content_weight > 0 else ()
        )
        self.style_weights = dict(cfg.optimize.style_layers) if styles else {}
        with torch.no_grad():
            self.content_targets = extractor(content) if self.content_layers else {}
            self.content_targets = {n: self.content_targets[n] for n in self.content_layers}
        self.style_terms = style_terms(extractor, cfg, styles, blend, masks) if styles else []
        self.layers = set(self.content_layers) | set(self.style_weights)
        self.region = self.content_net = None
        if masks and content is not None:
            self.region = torch.stack(list(masks)).amax(0).contiguous()  # (1, 1, H, W): union of the regions
            self.content_net = extractor.pixels.to_net(content).contiguous()  # to_tensor's are channels-last

    def composite(self, v: Tensor) -> Tensor:
        """v inside the masked region, the content outside it (grey blends). Network space is an affine
        per-channel map of RGB, so blending here equals blending the RGB images."""
        if self.region is None:
            return v
        return self.content_net + self.region * (v - self.content_net)

    def image(self, v: Tensor) -> Tensor:
        """The RGB image in [0, 1] that the optimiser's v stands for."""
        # contiguous: a channels-last image would make the next stage's L-BFGS gradient unflattenable
        return self.extractor.pixels.from_net(self.composite(v.detach())).clamp(0, 1).contiguous()

    def __call__(self, v: Tensor) -> dict[str, Tensor]:
        cfg = self.cfg
        v = self.composite(v)
        feats = self.extractor.net_features(v, self.layers)
        zero = v.new_zeros(())
        terms = {"content": zero, "style": zero, "tv": zero}
        if self.content_layers:
            per_layer = [
                content_loss(feats[n], self.content_targets[n], cfg.optimize.content_norm) for n in self.content_layers
            ]
            terms["content"] = cfg.optimize.content_weight * torch.stack(per_layer).mean()
        if self.style_terms:
            s = sum(term.weight * self._style(term, feats, v.shape[-2] * v.shape[-1]) for term in self.style_terms)
            terms["style"] = cfg.optimize.style_weight * strength_factor(cfg.strength) * s
        if cfg.optimize.tv_weight > 0:
            terms["tv"] = cfg.optimize.tv_weight * tv_loss(v, cfg.optimize.tv_loss, cfg.optimize.tv_power)
        terms["total"] = terms["content"] + terms["style"] + terms["tv"]
        return terms

    def _style(self, term: StyleTerm, feats: dict[str, Tensor], pixels: int) -> Tensor:
        """Σ_l w_l E_l for one style term (Gatys et al. 2016, eq. 5), on the term's region."""
        cfg = self.cfg
        weights = self.style_weights
        masks = {n: None if term.mask is None else layer_mask(term.mask, feats[n].shape[-2:]) for n in weights}
        if cfg.optimize.style_loss == "wasserstein":
            per_layer = [w * wasserstein_loss(feats[n], term.targets[n], masks[n]) for n, w in weights.items()]
            # W2 is ~10x Gram's size at equal style: scaled so the same strength gives a similar balance
            # (gallery trials: W2 at strength 0.25 looked like Gram at 0.5, i.e. a factor 10^-1)
            return WASSERSTEIN_SCALE * torch.stack(per_layer).sum()
        grams = {
            n: gram(feats[n], cfg.optimize.gram_norm)
            if masks[n] is None
            else masked_gram(feats[n], masks[n], cfg.optimize.gram_norm)
            for n in self.style_weights
        }
        positions = {n: feats[n].shape[-2] * feats[n].shape[-1] for n in self.style_weights}
        return style_loss(grams, term.targets, self.style_weights, cfg.optimize.style_norm, positions, pixels)

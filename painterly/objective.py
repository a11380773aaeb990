"""The objective α·content + β·style + tv_weight·TV of Gatys et al. 2016, with targets computed once."""

from __future__ import annotations

import torch
from torch import Tensor

from painterly.backbone import FeatureExtractor
from painterly.config import RunConfig
from painterly.losses import content_loss, gram, style_loss, tv_loss


class Objective:
    """Callable on an image in the network's pixel space; returns the weighted terms and their total.

    ``content`` and ``style`` are RGB images in [0, 1], (1, 3, H, W); either may be None (texture mode has
    no content, reconstruct mode no style)."""

    def __init__(self, extractor: FeatureExtractor, cfg: RunConfig, content: Tensor | None, style: Tensor | None):
        self.extractor, self.cfg = extractor, cfg
        self.content_layers = cfg.content_layers if content is not None and cfg.content_weight > 0 else ()
        self.style_weights = dict(cfg.style_layers) if style is not None else {}
        with torch.no_grad():
            self.content_targets = extractor(content) if self.content_layers else {}
            self.content_targets = {n: self.content_targets[n] for n in self.content_layers}
            feats = extractor(style) if self.style_weights else {}
            self.style_targets = {n: gram(feats[n], cfg.gram_norm) for n in self.style_weights}
        self.layers = set(self.content_layers) | set(self.style_weights)

    def __call__(self, v: Tensor) -> dict[str, Tensor]:
        cfg = self.cfg
        feats = self.extractor.net_features(v, self.layers)
        zero = v.new_zeros(())
        terms = {"content": zero, "style": zero, "tv": zero}
        if self.content_layers:
            per_layer = [content_loss(feats[n], self.content_targets[n], cfg.content_norm) for n in self.content_layers]
            terms["content"] = cfg.content_weight * torch.stack(per_layer).mean()
        if self.style_weights:
            grams = {n: gram(feats[n], cfg.gram_norm) for n in self.style_weights}
            positions = {n: feats[n].shape[-2] * feats[n].shape[-1] for n in self.style_weights}
            pixels = v.shape[-2] * v.shape[-1]
            s = style_loss(grams, self.style_targets, self.style_weights, cfg.style_norm, positions, pixels)
            terms["style"] = cfg.style_weight * s
        if cfg.tv_weight > 0:
            terms["tv"] = cfg.tv_weight * tv_loss(v, cfg.tv_loss, cfg.tv_power)
        terms["total"] = terms["content"] + terms["style"] + terms["tv"]
        return terms

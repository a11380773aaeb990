"""Exact tiled evaluation of the objective, for images whose activations do not fit in memory.

Every term we tile is a sum over feature positions: the content error Σ_p (F_p - P_p)² and the Gram
statistics S = Σ_p m_p f_p f_pᵀ (m = 1 without a mask). So the image is cut into core tiles whose union
covers it once; each tile is evaluated on core + halo, the halo being at least the receptive-field reach of
the deepest layer, and only the core's feature positions are kept. Two passes per evaluation:

(a) no autograd, tile by tile: accumulate S per style layer and the content error; evaluate the style loss
    on the assembled Grams and take D = ∂L/∂S by autograd on those C×C matrices only;
(b) tile by tile with autograd: backpropagate the surrogate Σ_l ⟨D_l, S_l(tile)⟩ + content(tile), whose
    gradient is exactly the tile's share of ∂L/∂x; shares add up to the full gradient (no seams: each
    feature position is computed from the same pixels as on the whole image).

Peak memory is one tile's activations instead of the whole image's; the cost is one extra forward pass
plus the halos. Tile offsets are multiples of the network's total stride so pooling windows line up, and
zero padding applies only where a tile edge is an image edge, as on the whole image."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from painterly.engine.backbone import FeatureExtractor
from painterly.engine.losses import EPS, style_loss, tv_loss
from painterly.engine.objective import Objective, layer_mask, strength_factor


def geometry(extractor: FeatureExtractor) -> tuple[int, int]:
    """(total stride J, halo in px) of the trunk: halo = receptive-field reach past a J-aligned core, rounded
    up to a multiple of J. VGG19 up to relu5_1: J = 16, reach 70 px -> halo 80."""
    jump, left, right = 1, 0, 0
    for m in extractor.body:
        if isinstance(m, nn.Conv2d):
            k, pad = m.kernel_size[0], m.padding[0]
            left, right = left + pad * jump, right + (k - 1 - pad) * jump
        elif isinstance(m, nn.MaxPool2d | nn.AvgPool2d):
            k = m.kernel_size if isinstance(m.kernel_size, int) else m.kernel_size[0]
            right += (k - 1) * jump
            jump *= 2
    reach = max(left, right - (jump - 1))
    return jump, jump * math.ceil(reach / jump)


@dataclass(frozen=True)
class Tile:
    """Core rows/cols [y0, y1) x [x0, x1) and the evaluated crop [cy0, cy1) x [cx0, cx1), image pixels."""

    y0: int
    y1: int
    x0: int
    x1: int
    cy0: int
    cy1: int
    cx0: int
    cx1: int


def tiles(height: int, width: int, tile: int, extractor: FeatureExtractor) -> list[Tile]:
    """Cores of ``tile`` px (rounded up to the stride) covering the image once, each with its halo."""
    jump, halo = geometry(extractor)
    step = jump * max(1, math.ceil(tile / jump))
    out = []
    for y0 in range(0, height, step):
        for x0 in range(0, width, step):
            y1, x1 = min(height, y0 + step), min(width, x0 + step)
            crop = (max(0, y0 - halo), min(height, y1 + halo), max(0, x0 - halo), min(width, x1 + halo))
            out.append(Tile(y0, y1, x0, x1, *crop))
    return out


def _core(f: Tensor, t: Tile, full: tuple[int, int], image: tuple[int, int]) -> tuple[slice, slice, slice, slice]:
    """Slices of one layer's map: the core inside the tile's features, and the same cells in the full map.

    ``full`` = the layer's (h, w) on the whole image; ``image`` = (H, W). Layer stride s = H // h exactly for
    J-aligned offsets; the last core runs to the map's end (pooling floors odd sizes the same way)."""
    s = image[0] // full[0] if full[0] else 1
    g = (t.y0 // s, full[0] if t.y1 == image[0] else t.y1 // s, t.x0 // s, full[1] if t.x1 == image[1] else t.x1 // s)
    oy, ox = t.cy0 // s, t.cx0 // s
    local = (slice(g[0] - oy, g[1] - oy), slice(g[2] - ox, g[3] - ox))
    return *local, slice(g[0], g[1]), slice(g[2], g[3])


def layer_sizes(extractor: FeatureExtractor, height: int, width: int) -> dict[str, tuple[int, int]]:
    """Each named layer's (h, w) for an input of (height, width): convs keep the size, poolings floor-halve."""
    sizes, (h, w) = {}, (height, width)
    index = {i: n for n, i in extractor.layers.items()}
    for i, m in enumerate(extractor.body):
        if isinstance(m, nn.MaxPool2d | nn.AvgPool2d):
            h, w = h // 2, w // 2
        if i in index:
            sizes[index[i]] = (h, w)
    return sizes


class TiledFeatures:
    """Stands in for a ``FeatureExtractor`` when targets are computed: without autograd, features are
    evaluated tile by tile and stitched, so a 4096 px style image never holds its whole first block at once.
    With autograd on, it is the plain extractor."""

    def __init__(self, extractor: FeatureExtractor, tile: int):
        self.extractor, self.tile = extractor, tile
        self.pixels, self.body, self.layers = extractor.pixels, extractor.body, extractor.layers
        self.description = extractor.description

    def __call__(self, x: Tensor) -> dict[str, Tensor]:
        return self.net_features(self.pixels.to_net(x))

    def net_features(self, v: Tensor, names: Iterable[str] | None = None) -> dict[str, Tensor]:
        if torch.is_grad_enabled() and v.requires_grad:
            return self.extractor.net_features(v, names)
        names = list(self.layers if names is None else names)
        image = tuple(v.shape[-2:])
        sizes = layer_sizes(self.extractor, *image)
        out: dict[str, Tensor] = {}
        with torch.no_grad():
            for t, feats in _tile_features(self.extractor, v, names, self.tile):
                for n, f in feats.items():
                    if n not in out:
                        out[n] = f.new_empty(*f.shape[:2], *sizes[n])
                    ly, lx, gy, gx = _core(f, t, sizes[n], image)
                    out[n][..., gy, gx] = f[..., ly, lx]
        return out


def _tile_features(
    extractor: FeatureExtractor, v: Tensor, names: list[str], tile: int
) -> Iterator[tuple[Tile, dict[str, Tensor]]]:
    for t in tiles(v.shape[-2], v.shape[-1], tile, extractor):
        yield t, extractor.net_features(v[..., t.cy0 : t.cy1, t.cx0 : t.cx1], names)


class TiledObjective:
    """``objective`` evaluated tile by tile (module docstring), same terms and gradient up to rounding.

    Covers Gram style terms (masked or not), every content norm and TV. ``supported`` says whether a
    configuration is covered; the Wasserstein loss is not (its loss needs all moments at once: fine, but
    we have not written its per-tile surrogate yet)."""

    def __init__(self, objective: Objective, tile: int):
        if not supported(objective):
            raise ValueError("tiled evaluation covers the Gram style loss only")
        self.objective, self.tile = objective, tile
        self.extractor = objective.extractor.extractor if isinstance(objective.extractor, TiledFeatures) else None
        self.extractor = self.extractor or objective.extractor

    def image(self, v: Tensor) -> Tensor:
        return self.objective.image(v)

    def composite(self, v: Tensor) -> Tensor:
        return self.objective.composite(v)

    def __call__(self, v: Tensor) -> dict[str, Tensor]:
        obj, cfg = self.objective, self.objective.cfg
        x = obj.composite(v)  # (1, 3, H, W); elementwise, so cheap to keep in the graph at full size
        xd = x.detach()
        image = tuple(xd.shape[-2:])
        sizes = layer_sizes(self.extractor, *image)
        names = sorted(obj.layers)
        scales = self._content_scales()
        masks = self._masks(sizes)
        sums, content = self._statistics(xd, names, sizes, masks)
        style, grads = self._style(sums, sizes, masks, image)
        zero = xd.new_zeros(())
        terms = {"content": zero, "style": style.detach(), "tv": zero}
        if obj.content_layers:
            per_layer = [scales[n] * content[n] for n in obj.content_layers]
            terms["content"] = xd.new_tensor(cfg.optimize.content_weight * sum(per_layer) / len(per_layer))
        surrogate = zero
        if torch.is_grad_enabled() and x.requires_grad:
            g = self._backward(xd, names, sizes, masks, grads, scales)
            surrogate = (x * g).sum()
            surrogate = surrogate - surrogate.detach()  # value 0, gradient g: the two passes' result
        if cfg.optimize.tv_weight > 0:
            terms["tv"] = cfg.optimize.tv_weight * tv_loss(x, cfg.optimize.tv_loss, cfg.optimize.tv_power)
        terms["total"] = terms["content"] + terms["style"] + terms["tv"] + surrogate
        return terms

    def _content_scales(self) -> dict[str, float]:
        """c_l with content_loss = c_l · Σ (F - P)² for each norm of ``losses.content_loss``."""
        obj, norm = self.objective, self.objective.cfg.optimize.content_norm
        scales = {}
        for n in obj.content_layers:
            p = obj.content_targets[n]
            scales[n] = {
                "target": 1 / (p.numel() * (float(p.double().pow(2).mean()) + EPS)),
                "half-sum": 0.5,
                "sum": 1.0,
                "mean": 1 / p.numel(),
                "coursera": 1 / (4 * p[0].numel()),
            }[norm]
        return scales

    def _masks(self, sizes: dict) -> list[dict[str, Tensor | None]]:
        obj = self.objective
        return [
            {n: None if term.mask is None else layer_mask(term.mask, sizes[n]) for n in obj.style_weights}
            for term in obj.style_terms
        ]

    def _partial(self, f: Tensor, m: Tensor | None) -> Tensor:
        """Σ over the core's positions of m f fᵀ: (B, C, C)."""
        b, c = f.shape[:2]
        flat = f.reshape(b, c, -1)
        return (flat if m is None else flat * m.reshape(b, 1, -1)) @ flat.transpose(1, 2)

    def _tile_terms(self, feats: dict, t: Tile, sizes: dict, masks: list, image: tuple) -> tuple[dict, dict]:
        """Per tile: {(term, layer): Σ m f fᵀ over the core} and {layer: Σ (F - P)² over the core}."""
        obj = self.objective
        sums, content = {}, {}
        for n, f in feats.items():
            ly, lx, gy, gx = _core(f, t, sizes[n], image)
            core = f[..., ly, lx]
            for k, mask in enumerate(masks):
                if n in obj.style_weights:
                    m = None if mask[n] is None else mask[n][..., gy, gx]
                    sums[k, n] = self._partial(core, m)
            if n in obj.content_layers:
                content[n] = (core - obj.content_targets[n][..., gy, gx]).pow(2).sum()
        return sums, content

    def _statistics(self, xd: Tensor, names: list, sizes: dict, masks: list) -> tuple[dict, dict]:
        """Pass (a): the whole image's Gram sums and content errors, accumulated in float64 tile by tile."""
        sums: dict = {}
        content: dict = {}
        image = tuple(xd.shape[-2:])
        with torch.no_grad():
            for t, feats in _tile_features(self.extractor, xd, names, self.tile):
                s, c = self._tile_terms(feats, t, sizes, masks, image)
                for key, value in s.items():
                    sums[key] = sums.get(key, 0) + value.double()
                for key, value in c.items():
                    content[key] = content.get(key, 0) + float(value)
        return sums, content

    def _style(self, sums: dict, sizes: dict, masks: list, image: tuple) -> tuple[Tensor, dict]:
        """The style term from the assembled sums, and D = ∂(style term)/∂S per (term, layer)."""
        obj, cfg = self.objective, self.objective.cfg
        if not obj.style_terms:
            return torch.zeros(()), {}
        leaves = {k: s.float().requires_grad_(True) for k, s in sums.items()}
        with torch.enable_grad():
            total = 0
            for k, term in enumerate(obj.style_terms):
                grams = {n: leaves[k, n] * self._gram_factor(n, sizes[n], masks[k][n]) for n in obj.style_weights}
                positions = {n: sizes[n][0] * sizes[n][1] for n in obj.style_weights}
                total = total + term.weight * style_loss(
                    grams, term.targets, obj.style_weights, cfg.optimize.style_norm, positions, image[0] * image[1]
                )
            total = cfg.optimize.style_weight * strength_factor(cfg.strength) * total
            keys = list(leaves)
            d = torch.autograd.grad(total, [leaves[k] for k in keys])
        return total.detach(), dict(zip(keys, d, strict=True))

    def _gram_factor(self, n: str, size: tuple[int, int], mask: Tensor | None) -> float:
        """G = factor · Σ m f fᵀ, matching ``losses.gram`` and ``losses.masked_gram`` on the whole map."""
        hw = size[0] * size[1]
        c = self.objective.style_terms[0].targets[n].shape[-1]
        divisor = {"none": 1, "hw": hw, "chw": c * hw}[self.objective.cfg.optimize.gram_norm]
        if mask is None:
            return 1 / divisor
        return hw / max(float(mask.double().sum()), EPS) / divisor

    def _backward(self, xd: Tensor, names: list, sizes: dict, masks: list, grads: dict, scales: dict) -> Tensor:
        """Pass (b): ∂L/∂x (style and content terms), one tile's graph at a time."""
        obj, cfg = self.objective, self.objective.cfg
        image = tuple(xd.shape[-2:])
        g = torch.zeros_like(xd)
        weight = cfg.optimize.content_weight / max(1, len(obj.content_layers))
        for t in tiles(*image, self.tile, self.extractor):
            crop = xd[..., t.cy0 : t.cy1, t.cx0 : t.cx1].clone().requires_grad_(True)
            with torch.enable_grad():
                feats = self.extractor.net_features(crop, names)
                sums, content = self._tile_terms(feats, t, sizes, masks, image)
                surrogate = sum((grads[k] * s).sum() for k, s in sums.items())
                surrogate = surrogate + sum(weight * scales[n] * e for n, e in content.items())
            if torch.is_tensor(surrogate) and surrogate.requires_grad:
                (tile_grad,) = torch.autograd.grad(surrogate, crop)
                g[..., t.cy0 : t.cy1, t.cx0 : t.cx1] += tile_grad
        return g


def supported(objective: Objective) -> bool:
    """Whether ``TiledObjective`` reproduces this objective exactly (Gram style losses; any content/TV)."""
    return objective.cfg.optimize.style_loss == "gram" or not objective.style_terms

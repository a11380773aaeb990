"""Exact tiled evaluation of the objective, for images whose activations do not fit in memory.

Every feature term of the objective (``objective.Term``) is a function L(S) of sums over feature positions
S = Σ_p s(f_p): the content error Σ_p (F_p - P_p)², the Gram statistics Σ_p m_p f_p f_pᵀ (m = 1 without a
mask). So the image is cut into core tiles whose union covers it once; each tile is evaluated on core + halo,
the halo being at least the receptive-field reach of the deepest layer, and only the core's feature positions
are kept. Two passes per evaluation, over the objective's own list of terms:

(a) no autograd, tile by tile: accumulate every term's S; evaluate each term's L on the assembled sums and
    take D = ∂L/∂S by autograd on those small tensors only;
(b) tile by tile with autograd: backpropagate the surrogate Σ ⟨D, S(tile)⟩, whose gradient is exactly the
    tile's share of ∂L/∂x; shares add up to the full gradient (no seams: each feature position is computed
    from the same pixels as on the whole image). Pixel terms (TV, temporal) are evaluated on the whole image.

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
from painterly.engine.objective import Objective, Term


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
    """``objective`` evaluated tile by tile (module docstring): the same terms, values and gradient up to
    rounding. Every term must be ``tileable`` (``supported``; the Wasserstein style loss is not: its loss needs
    all moments at once, which is fine, but its per-tile surrogate is not written yet)."""

    def __init__(self, objective: Objective, tile: int):
        if not supported(objective):
            off = [n for n, t in objective.terms.items() if not t.tileable]
            raise ValueError(f"tiled evaluation does not cover the term(s) {', '.join(off)}")
        self.objective, self.tile = objective, tile
        inner = objective.extractor
        self.extractor = inner.extractor if isinstance(inner, TiledFeatures) else inner

    def image(self, v: Tensor) -> Tensor:
        return self.objective.image(v)

    def composite(self, v: Tensor) -> Tensor:
        return self.objective.composite(v)

    def __call__(self, v: Tensor) -> dict[str, Tensor]:
        obj = self.objective
        x = obj.composite(v)  # (1, 3, H, W); elementwise, so cheap to keep in the graph at full size
        xd = x.detach()
        sizes = layer_sizes(self.extractor, *xd.shape[-2:])
        deep = {name: t for name, t in obj.terms.items() if t.layers}
        need_grad = torch.is_grad_enabled() and x.requires_grad
        values, grads = self._values(self._statistics(xd, deep, sizes), deep, x, sizes, need_grad)
        values.update({name: t({}, x) for name, t in obj.terms.items() if name not in deep})
        terms = obj.record({name: values[name] for name in obj.terms}, xd)
        if need_grad and grads:
            g = self._backward(xd, deep, sizes, grads)
            surrogate = (x * g).sum()
            terms["total"] = terms["total"] + (surrogate - surrogate.detach())  # value 0, gradient g
        return terms

    def _cores(self, feats: dict, t: Tile, sizes: dict, image: tuple) -> tuple[dict, dict]:
        """One tile's core features per layer, and where they sit in the whole image's maps."""
        core, cells = {}, {}
        for n, f in feats.items():
            ly, lx, gy, gx = _core(f, t, sizes[n], image)
            core[n], cells[n] = f[..., ly, lx], (gy, gx)
        return core, cells

    def _statistics(self, xd: Tensor, deep: dict[str, Term], sizes: dict) -> dict[str, dict]:
        """Pass (a): every feature term's sums over the whole image, accumulated in float64 tile by tile."""
        sums: dict[str, dict] = {name: {} for name in deep}
        image = tuple(xd.shape[-2:])
        names = sorted(set().union(*(t.layers for t in deep.values())))
        with torch.no_grad():
            for t, feats in _tile_features(self.extractor, xd, names, self.tile) if deep else ():
                core, cells = self._cores(feats, t, sizes, image)
                for name, term in deep.items():
                    for key, value in term.sums(core, sizes, cells).items():
                        sums[name][key] = sums[name].get(key, 0) + value.double()
        return sums

    def _values(self, sums: dict, deep: dict[str, Term], x: Tensor, sizes: dict, need_grad: bool) -> tuple:
        """Each feature term's value from the assembled sums and, when a gradient is wanted, D = ∂value/∂sums
        per (term, key)."""
        leaves = {n: {k: s.to(x.dtype).requires_grad_(need_grad) for k, s in st.items()} for n, st in sums.items()}
        with torch.set_grad_enabled(need_grad):
            values = {name: term.value(leaves[name], x, sizes) for name, term in deep.items()}
        if not need_grad or not values:
            return values, {}
        keys = [(name, k) for name in leaves for k in leaves[name]]
        total = sum(values.values())
        d = torch.autograd.grad(total, [leaves[n][k] for n, k in keys], retain_graph=True, allow_unused=True)
        return values, {key: g for key, g in zip(keys, d, strict=True) if g is not None}

    def _backward(self, xd: Tensor, deep: dict[str, Term], sizes: dict, grads: dict) -> Tensor:
        """Pass (b): ∂L/∂x through the features, one tile's graph at a time."""
        image = tuple(xd.shape[-2:])
        names = sorted(set().union(*(t.layers for t in deep.values())))
        g = torch.zeros_like(xd)
        for t in tiles(*image, self.tile, self.extractor):
            crop = xd[..., t.cy0 : t.cy1, t.cx0 : t.cx1].clone().requires_grad_(True)
            with torch.enable_grad():
                core, cells = self._cores(self.extractor.net_features(crop, names), t, sizes, image)
                surrogate = sum(
                    (grads[name, key] * s).sum()
                    for name, term in deep.items()
                    for key, s in term.sums(core, sizes, cells).items()
                    if (name, key) in grads
                )
            if torch.is_tensor(surrogate) and surrogate.requires_grad:
                (tile_grad,) = torch.autograd.grad(surrogate, crop)
                g[..., t.cy0 : t.cy1, t.cx0 : t.cx1] += tile_grad
        return g


def supported(objective: Objective) -> bool:
    """Whether ``TiledObjective`` reproduces this objective exactly: every term is ``tileable``."""
    return all(t.tileable for t in objective.terms.values())

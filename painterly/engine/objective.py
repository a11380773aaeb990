"""The objective: a sum of named, weighted terms built from the config (Gatys et al. 2016: α·content + β·style,
plus TV), with style targets computed once per painting.

A term is one ``Term`` object; the registry ``TERMS`` maps a name to a builder ``build(ctx) -> Term | None``
(None: the term is off for this run). ``register_term`` adds one for every run; ``Objective(..., terms=)``
adds builders for one objective only, and ``extras=`` hands per-run inputs to the builders (video: the warped
previous frame). Feature terms are written as sums over feature positions plus a function of those sums, so
the tiled path (tiling.py) evaluates the very same list. Several styles, masks, the strength knob and the
Wasserstein style loss are issue 5."""

from __future__ import annotations

import hashlib
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from painterly.config import RunConfig
from painterly.engine.backbone import FeatureExtractor, PixelConvention
from painterly.engine.losses import (
    EPS,
    blend_moments,
    content_scale,
    gaussian_target,
    gram,
    gram_divisor,
    gram_sum,
    mean_cov,
    style_loss,
    tv_loss,
    wasserstein_loss,
)

STRENGTH_DEFAULT = 0.5  # RunConfig.strength's default: the preset's own weights
STRENGTH_DECADES = 4.0  # strength 0 -> style weight / 100, 1 -> style weight × 100
WASSERSTEIN_SCALE = 0.1  # why: WassersteinStyleTerm
REPORTED = ("content", "style", "tv")  # in every loss record (0 when off): stable columns; others when built
Sizes = Mapping[str, tuple[int, int]]  # each layer's (h, w) on the whole image
Cells = Mapping[str, tuple[slice, slice]] | None  # per layer, where the features in hand sit in the full map


def strength_factor(strength: float) -> float:
    """Multiplier on the style weight: 10^(4·(s - ½)), s in [0, 1].

    Exactly 1 at the default s = ½, so every preset (and its tuning) is unchanged unless the knob moves;
    exponential because the content/style balance acts on a log scale (the papers sweep α/β by decades)."""
    return 10.0 ** (STRENGTH_DECADES * (strength - STRENGTH_DEFAULT))


def layer_mask(mask: Tensor, size: tuple[int, int]) -> Tensor:
    """A (B, 1, H, W) mask averaged down to a layer's (h, w): the share of each feature's cell inside the
    region. Gatys et al. 2017 propagate masks through the pooling layers; area averaging does the same."""
    return mask if tuple(mask.shape[-2:]) == tuple(size) else F.adaptive_avg_pool2d(mask, size)


def _cut(t: Tensor, cells: Cells, name: str) -> Tensor:
    """The cells of a full-size layer map ``t`` that the features in hand cover (all of them when None)."""
    return t if cells is None else t[..., cells[name][0], cells[name][1]]


# --- Terms and their registry ---


class Term:
    """One weighted summand of the objective.

    A feature term names its ``layers`` and splits into ``sums(feats, sizes, cells)``, statistics that add up
    over feature positions, and ``value(sums, v, sizes)``, the weighted loss from the assembled statistics
    (``sizes``: each layer's (h, w) on the whole image); so the tiled path accumulates the sums tile by tile
    and evaluates the same terms (tiling.py). A pixel term (no layers) only needs ``value``, reading the image
    v (network space, after masking; ``ctx.pixels.from_net(v)`` is RGB). A term that cannot be split sets
    ``tileable = False`` and overrides ``__call__``."""

    layers: frozenset[str] = frozenset()
    tileable = True

    def sums(self, feats: dict[str, Tensor], sizes: Sizes, cells: Cells = None) -> dict[Hashable, Tensor]:
        return {}

    def value(self, sums: dict[Hashable, Tensor], v: Tensor, sizes: Sizes) -> Tensor:
        raise NotImplementedError

    def __call__(self, feats: dict[str, Tensor], v: Tensor) -> Tensor:
        """The term on the whole image: ``value`` of the whole maps' sums."""
        sizes = {n: tuple(feats[n].shape[-2:]) for n in self.layers}
        return self.value(self.sums(feats, sizes), v, sizes)


class PixelTerm(Term):
    """A term of the image alone: ``fn(v)``, v (1, 3, H, W) in network space."""

    def __init__(self, fn: Callable[[Tensor], Tensor]):
        self.fn = fn

    def value(self, sums: dict, v: Tensor, sizes: Sizes) -> Tensor:
        return self.fn(v)


@dataclass(frozen=True)
class TermContext:
    """What a builder sees for one objective (one coarse-to-fine stage): images are RGB in [0, 1] at the stage
    size, ``size`` = (H, W) of the output when known (None in texture mode), ``extras`` the caller's per-run
    inputs by term name."""

    extractor: FeatureExtractor  # or a wrapper of one (TiledFeatures, MixedPrecisionFeatures)
    cfg: RunConfig
    content: Tensor | None
    styles: list[Tensor]
    blend: list[float]
    masks: list[Tensor] | None
    extras: Mapping[str, Any] = field(default_factory=dict)

    @property
    def pixels(self) -> PixelConvention:
        return self.extractor.pixels

    @property
    def size(self) -> tuple[int, int] | None:
        image = self.content if self.content is not None else (self.masks[0] if self.masks else None)
        return None if image is None else tuple(image.shape[-2:])


Builder = Callable[[TermContext], "Term | None"]
TERMS: dict[str, Builder] = {}  # name -> builder, in registration order (the order of the loss records)


def register_term(name: str, build: Builder | None = None) -> Any:
    """Register ``build`` under ``name`` for every objective (re-registering a name replaces it); also a
    decorator, ``@register_term("name")``. ``build(ctx)`` returns the term, or None when it is off."""
    if build is None:
        return lambda b: register_term(name, b)
    if name == "total":
        raise ValueError("'total' is the sum of the terms, not a term name")
    TERMS[name] = build
    return build


class ContentTerm(Term):
    """α · mean_l c_l Σ (F_l - P_l)², i.e. α · mean_l ``content_loss`` (Gatys et al. 2016, eq. 1)."""

    def __init__(self, weight: float, targets: dict[str, Tensor], norm: str):
        self.weight, self.targets = weight, targets
        self.layers = frozenset(targets)
        self.scales = {n: content_scale(p, norm) for n, p in targets.items()}

    def sums(self, feats: dict[str, Tensor], sizes: Sizes, cells: Cells = None) -> dict[Hashable, Tensor]:
        return {n: (feats[n] - _cut(p, cells, n)).pow(2).sum() for n, p in self.targets.items()}

    def value(self, sums: dict, v: Tensor, sizes: Sizes) -> Tensor:
        return self.weight * torch.stack([self.scales[n] * sums[n] for n in self.targets]).mean()


@dataclass(frozen=True)
class StyleRegion:
    """One style region: its loss weight, its mask at the output size (None: everywhere) and, per layer,
    the target: a Gram matrix, or ``gaussian_target``'s dict for the Wasserstein loss."""

    weight: float
    mask: Tensor | None  # (1, 1, H, W) in [0, 1]
    targets: dict[str, Tensor | dict[str, Tensor]]


class GramStyleTerm(Term):
    """β · Σ_k w_k Σ_l w_l E_l(G_kl, A_kl) (Gatys et al. 2016, eq. 5), where G_kl = S_kl · (H·W / Σm) / n and
    S_kl = Σ_p m_p f_p f_pᵀ over region k's soft mask m: ``losses.masked_gram`` (``gram`` when m = 1)."""

    def __init__(self, weight: float, regions: list[StyleRegion], layer_weights: dict[str, float], cfg: RunConfig):
        self.weight, self.regions, self.layer_weights = weight, regions, layer_weights
        self.layers = frozenset(layer_weights)
        self.gram_norm, self.style_norm = cfg.optimize.gram_norm, cfg.optimize.style_norm

    def sums(self, feats: dict[str, Tensor], sizes: Sizes, cells: Cells = None) -> dict[Hashable, Tensor]:
        out = {}
        for k, region in enumerate(self.regions):
            for n in self.layer_weights:
                m = None if region.mask is None else _cut(layer_mask(region.mask, sizes[n]), cells, n)
                out[k, n] = gram_sum(feats[n], m)
        return out

    def value(self, sums: dict, v: Tensor, sizes: Sizes) -> Tensor:
        positions = {n: sizes[n][0] * sizes[n][1] for n in self.layer_weights}
        total = 0
        for k, region in enumerate(self.regions):
            grams = {}
            for n, hw in positions.items():
                s = sums[k, n]  # (B, C, C)
                if region.mask is not None:  # masked_gram's H·W / Σm: the region's Gram at a whole image's size
                    s = s * (hw / layer_mask(region.mask, sizes[n]).sum((1, 2, 3)).clamp(min=EPS).view(-1, 1, 1))
                grams[n] = s / gram_divisor(self.gram_norm, s.shape[-1], hw)
            pixels = v.shape[-2] * v.shape[-1]
            loss = style_loss(grams, region.targets, self.layer_weights, self.style_norm, positions, pixels)
            total = total + region.weight * loss
        return self.weight * total


class WassersteinStyleTerm(Term):
    """β · 0.1 · Σ_k w_k Σ_l w_l W2²(f_l, target_kl) (``losses.wasserstein_loss``). Whole image only: its
    per-tile surrogate is not written yet, so ``tileable`` is False."""

    tileable = False

    def __init__(self, weight: float, regions: list[StyleRegion], layer_weights: dict[str, float]):
        self.weight, self.regions, self.layer_weights = weight, regions, layer_weights
        self.layers = frozenset(layer_weights)

    def __call__(self, feats: dict[str, Tensor], v: Tensor) -> Tensor:
        total = 0
        for region in self.regions:
            per_layer = []
            for n, w in self.layer_weights.items():
                m = None if region.mask is None else layer_mask(region.mask, feats[n].shape[-2:])
                per_layer.append(w * wasserstein_loss(feats[n], region.targets[n], m))
            total = total + region.weight * torch.stack(per_layer).sum()
        # W2 is ~10x Gram's size at equal style: scaled so the same strength gives a similar balance
        # (gallery trials: W2 at strength 0.25 looked like Gram at 0.5, i.e. a factor 10^-1)
        return self.weight * WASSERSTEIN_SCALE * total


# --- The built-in terms ---


@register_term("content")
def _content(ctx: TermContext) -> Term | None:
    opt = ctx.cfg.optimize
    if ctx.content is None or opt.content_weight <= 0 or not opt.content_layers:
        return None
    with torch.no_grad():
        feats = ctx.extractor(ctx.content)
    return ContentTerm(opt.content_weight, {n: feats[n] for n in opt.content_layers}, opt.content_norm)


@register_term("style")
def _style(ctx: TermContext) -> Term | None:
    if not ctx.styles:
        return None
    opt = ctx.cfg.optimize
    weight = opt.style_weight * strength_factor(ctx.cfg.strength)
    regions = style_regions(ctx.extractor, ctx.cfg, ctx.styles, ctx.blend, ctx.masks)
    if opt.style_loss == "wasserstein":
        return WassersteinStyleTerm(weight, regions, dict(opt.style_layers))
    return GramStyleTerm(weight, regions, dict(opt.style_layers), ctx.cfg)


@register_term("tv")
def _tv(ctx: TermContext) -> Term | None:
    """Total variation (``losses.tv_loss``) of the image in network space."""
    opt = ctx.cfg.optimize
    if opt.tv_weight <= 0:
        return None
    return PixelTerm(lambda v: opt.tv_weight * tv_loss(v, opt.tv_loss, opt.tv_power))


# --- Style targets, cached per painting ---


class TargetCache:
    """A bounded, thread-safe LRU of per-style statistics, so a second run (a web session, a video's frames)
    with the same painting at the same size computes none. Values are shared: never modify them in place.

    Two threads missing the same key at once both compute it (the lock is not held while computing); the
    later one's value is kept. ``hits`` and ``misses`` count lookups."""

    def __init__(self, maxsize: int = 16):
        self.maxsize, self.hits, self.misses = maxsize, 0, 0
        self._items: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._items:
                self.hits += 1
                self._items.move_to_end(key)
                return self._items[key]
            self.misses += 1
        value = compute()
        with self._lock:
            self._items[key] = value
            while len(self._items) > self.maxsize:
                self._items.popitem(last=False)
        return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._items)


# 16 entries: a run's coarse-to-fine stages for a few paintings; a VGG19 Gram entry is ~2.4 MB in float32.
STYLE_TARGETS = TargetCache(16)
_WEIGHT_DIGESTS: weakref.WeakKeyDictionary[nn.Module, str] = weakref.WeakKeyDictionary()
_DIGEST_LOCK = threading.Lock()


def _tensor_digest(t: Tensor, step: int = 1) -> str:
    """BLAKE2 of a tensor's values (every ``step``-th), shape and dtype."""
    sample = t.detach().flatten()[::step].cpu()
    data = (sample.float() if sample.dtype == torch.bfloat16 else sample).numpy().tobytes()
    return hashlib.blake2b(data + repr((tuple(t.shape), t.dtype)).encode(), digest_size=16).hexdigest()


def weights_digest(body: nn.Module) -> str:
    """The trunk's weights identity: a digest of ~4k values of each parameter, computed once per module (the
    trunk is frozen; one changed in place after its first use would keep its old digest)."""
    with _DIGEST_LOCK:
        if body not in _WEIGHT_DIGESTS:
            parts = [_tensor_digest(p, max(1, p.numel() // 4096)) for p in body.parameters()]
            _WEIGHT_DIGESTS[body] = hashlib.blake2b("".join(parts).encode(), digest_size=16).hexdigest()
        return _WEIGHT_DIGESTS[body]


def style_statistics(extractor: FeatureExtractor, cfg: RunConfig, style: Tensor) -> dict[str, Any]:
    """Per style layer, the painting's Gram matrix or (mean, covariance) for the Wasserstein loss; from
    ``STYLE_TARGETS`` when this image (by content), size, trunk and loss were seen before."""
    opt = cfg.optimize
    names = tuple(n for n, _ in opt.style_layers)
    key = (
        _tensor_digest(style),  # content, size and dtype of the image at this stage
        str(style.device),
        extractor.description,  # backbone, pooling, weights source, autocast precision
        extractor.pixels.kind,
        weights_digest(extractor.body),
        names,
        opt.style_loss,
        opt.gram_norm,
    )

    def compute() -> dict[str, Any]:
        with torch.no_grad():
            feats = extractor(style)
        if opt.style_loss == "gram":
            return {n: gram(feats[n], opt.gram_norm) for n in names}
        return {n: mean_cov(feats[n]) for n in names}

    return STYLE_TARGETS.get(key, compute)


def style_regions(
    extractor: FeatureExtractor,
    cfg: RunConfig,
    styles: Sequence[Tensor],
    blend: Sequence[float],
    masks: Sequence[Tensor] | None = None,
) -> list[StyleRegion]:
    """Style targets for one output size. ``blend`` sums to 1; ``masks`` is None, one mask, or one per style.

    Styles sharing a region are blended per layer as weighted statistics (Σ w_k A_k for Grams, the mixture's
    mean and covariance for the Wasserstein loss) into one target. With one mask per style each style gets
    its own region, weighted n·w_k (1 each for an equal blend)."""
    stats = [style_statistics(extractor, cfg, s) for s in styles]
    with torch.no_grad():
        if masks is not None and len(masks) == len(styles) > 1:
            return [
                StyleRegion(len(styles) * w, m, _targets([st], [1.0], cfg))
                for st, w, m in zip(stats, blend, masks, strict=True)
            ]
        return [StyleRegion(1.0, masks[0] if masks else None, _targets(stats, blend, cfg))]


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


# --- The objective ---


class Objective:
    """Callable on an image v in the network's pixel space; returns each term's weighted value and their
    ``total`` (``REPORTED`` names always, 0 when off; then any other built term).

    ``content`` is an RGB image in [0, 1], (1, 3, H, W); ``style`` one such image or a sequence of them,
    mixed by ``blend`` (default equal). Either may be None (texture mode has no content, reconstruct mode no
    style). ``masks``: None, one mask or one per style, (1, 1, H, W) at the output size; outside their union
    the image is held at the content (``composite``), so masked-out pixels stay the photo.
    ``extras``: per-run inputs for the builders, by term name; ``terms``: builders for this objective only,
    added to (or replacing, by name) the registered ``TERMS``."""

    def __init__(
        self,
        extractor: FeatureExtractor,
        cfg: RunConfig,
        content: Tensor | None,
        style: Tensor | Sequence[Tensor] | None,
        *,
        blend: Sequence[float] | None = None,
        masks: Sequence[Tensor] | None = None,
        extras: Mapping[str, Any] | None = None,
        terms: Mapping[str, Builder] | None = None,
    ):
        self.extractor, self.cfg = extractor, cfg
        styles = [] if style is None else [style] if isinstance(style, Tensor) else list(style)
        blend = list(blend) if blend is not None else [1.0 / len(styles)] * len(styles)
        masks = list(masks) if masks else None
        ctx = TermContext(extractor, cfg, content, styles, blend, masks, dict(extras or {}))
        built = {name: build(ctx) for name, build in {**TERMS, **(terms or {})}.items()}
        self.terms: dict[str, Term] = {name: term for name, term in built.items() if term is not None}
        self.layers = set().union(*(t.layers for t in self.terms.values()))
        self.region = self.content_net = None
        if masks and content is not None:
            self.region = torch.stack(masks).amax(0).contiguous()  # (1, 1, H, W): union of the regions
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

    def record(self, values: dict[str, Tensor], like: Tensor) -> dict[str, Tensor]:
        """The loss record: ``REPORTED`` (zeros where off), the other terms, and ``total``."""
        out = {name: like.new_zeros(()) for name in REPORTED}
        out.update(values)
        out["total"] = sum(values.values(), like.new_zeros(()))
        return out

    def __call__(self, v: Tensor) -> dict[str, Tensor]:
        v = self.composite(v)
        feats = self.extractor.net_features(v, self.layers) if self.layers else {}
        return self.record({name: term(feats, v) for name, term in self.terms.items()}, v)

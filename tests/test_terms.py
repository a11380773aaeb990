"""The objective as a list of named terms (issue 10, item 5) and the style-target cache (item 6)."""

from __future__ import annotations

import copy
import threading

import pytest
import torch
from torch import Tensor

import painterly
from painterly.api import backbone_for
from painterly.config import build_config
from painterly.engine import objective as objective_module
from painterly.engine.objective import (
    STYLE_TARGETS,
    TERMS,
    Objective,
    PixelTerm,
    TargetCache,
    Term,
    TermContext,
    register_term,
)
from painterly.engine.tiling import TiledFeatures, TiledObjective, tiles

CPU = torch.device("cpu")
# Shallow layers (halo 6 px): a 32 px tile ends inside the image, so the seams are real.
SHALLOW = {  # structure off: the tests below check the list of built terms
    "weights": "random",
    "style_layers": "relu1_1,relu2_1",
    "content_layers": "relu2_2",
    "tv_weight": 0.1,
    "structure_weight": 0.0,
}


@pytest.fixture(scope="module")
def shallow():
    cfg = build_config("stylize", SHALLOW)
    return cfg, backbone_for(cfg, CPU)


def _images(h: int = 48, w: int = 64) -> tuple[Tensor, ...]:
    """content, style, a previous frame, the image evaluated: RGB in [0, 1]."""
    g = torch.Generator().manual_seed(0)
    return tuple(torch.rand(1, 3, h, w, generator=g) for _ in range(4))


def temporal(ctx: TermContext) -> Term | None:
    """Ruder et al. 2016's short-term consistency: Σ m (x - ω)² / Σ m, ω the warped previous frame (RGB)."""
    if "temporal" not in ctx.extras:
        return None
    previous, mask, weight = ctx.extras["temporal"]
    target = ctx.pixels.to_net(previous)
    return PixelTerm(lambda v: weight * (mask * (v - target).pow(2)).sum() / mask.sum())


class MeanFeature(Term):
    """w·|μ|², μ = the mean relu2_1 response over positions: non-linear in a sum over positions, so the tiled
    path must assemble the sum before differentiating."""

    layers = frozenset({"relu2_1"})

    def __init__(self, weight: float):
        self.weight = weight

    def sums(self, feats, sizes, cells=None):
        return {"sum": feats["relu2_1"].sum((0, 2, 3))}  # (C,)

    def value(self, sums, v, sizes):
        h, w = sizes["relu2_1"]
        return self.weight * (sums["sum"] / (h * w)).pow(2).sum()


def _evaluate(objective, v: Tensor) -> tuple[dict[str, float], Tensor]:
    terms = objective(v)
    (grad,) = torch.autograd.grad(terms["total"], v)
    return {k: float(t.detach()) for k, t in terms.items()}, grad


def _both_paths(cfg, extractor, content, style, tile: int = 32, **kwargs) -> list[tuple[dict, Tensor]]:
    v = extractor.pixels.to_net(_images()[3]).requires_grad_(True)
    plain = Objective(extractor, cfg, content, style, **kwargs)
    tiled = TiledObjective(Objective(TiledFeatures(extractor, tile), cfg, content, style, **kwargs), tile)
    return [_evaluate(plain, v), _evaluate(tiled, v)]


def _close(a: Tensor, b: Tensor) -> bool:
    return torch.allclose(a, b, rtol=1e-4, atol=1e-5 * b.abs().max())


@pytest.mark.parametrize("name", ["temporal", "mean_feature"])
def test_a_registered_term_changes_the_loss_and_gradient_on_the_plain_and_tiled_paths_alike(shallow, monkeypatch, name):
    cfg, extractor = shallow
    content, style, previous, _ = _images()
    assert len(tiles(48, 64, 32, extractor)) == 4
    mask = (torch.arange(64) < 40).float().expand(1, 1, 48, 64)
    extras = {"temporal": (previous, mask, 2.0)}
    without = _both_paths(cfg, extractor, content, style, extras=extras)
    monkeypatch.setitem(TERMS, name, temporal if name == "temporal" else lambda ctx: MeanFeature(1.0))
    with_term = _both_paths(cfg, extractor, content, style, extras=extras)

    # The term's own value and gradient, by autograd on the whole image
    v = extractor.pixels.to_net(_images()[3]).requires_grad_(True)
    term = TERMS[name](TermContext(extractor, cfg, content, [style], [1.0], None, extras))
    own = term(extractor.net_features(v, term.layers) if term.layers else {}, v)
    (own_grad,) = torch.autograd.grad(own, v)
    own = own.detach()
    assert float(own) > 1e-3 and own_grad.abs().max() > 0

    for (before, before_grad), (after, after_grad) in zip(without, with_term, strict=True):
        assert list(after) == ["content", "style", "tv", name, "total"]
        assert name not in before
        assert after[name] == pytest.approx(float(own), rel=1e-4)
        assert after["total"] == pytest.approx(before["total"] + float(own), rel=1e-5)
        assert _close(after_grad - before_grad, own_grad)
    (plain, plain_grad), (tiled, tiled_grad) = with_term
    assert tiled == pytest.approx(plain, rel=1e-5)
    assert _close(tiled_grad, plain_grad)


def test_builders_and_extras_given_to_one_objective_reach_that_objective_only(shallow):
    cfg, extractor = shallow
    content, style, previous, _ = _images()
    extras = {"temporal": (previous, torch.ones(1, 1, 48, 64), 1.0)}
    v = extractor.pixels.to_net(content)
    with torch.no_grad():
        one = Objective(extractor, cfg, content, style, extras=extras, terms={"temporal": temporal})(v)
        other = Objective(extractor, cfg, content, style, extras=extras)(v)
    assert "temporal" not in TERMS and "temporal" not in other
    # starting at the content, only the frame difference is left: mean over pixels and channels of (v - ω)²
    expected = (v - extractor.pixels.to_net(previous)).pow(2).sum() / (48 * 64)
    assert float(one["temporal"]) == pytest.approx(float(expected), rel=1e-5)
    assert float(one["total"]) == pytest.approx(float(other["total"] + one["temporal"]), rel=1e-6)


def test_terms_that_are_off_are_reported_as_zero_and_total_is_their_sum(shallow):
    cfg, extractor = shallow
    texture = build_config("texture", {**SHALLOW, "size": 64})
    _, style, _, image = _images()
    with torch.no_grad():
        terms = Objective(extractor, texture, None, style)(extractor.pixels.to_net(image))
    assert list(terms) == ["content", "style", "tv", "total"]
    assert float(terms["content"]) == 0 and float(terms["style"]) > 0
    assert float(terms["total"]) == pytest.approx(float(terms["style"] + terms["tv"]))


def test_register_term_works_as_a_decorator_and_refuses_the_name_total(monkeypatch):
    monkeypatch.setattr(objective_module, "TERMS", dict(TERMS))

    @register_term("nothing")
    def nothing(ctx: TermContext) -> None:
        return None

    assert objective_module.TERMS["nothing"] is nothing
    with pytest.raises(ValueError, match="total"):
        register_term("total", nothing)


class Spy:
    """A feature extractor that records the images its targets are computed from."""

    def __init__(self, extractor):
        self.extractor, self.seen = extractor, []
        self.pixels, self.body, self.layers = extractor.pixels, extractor.body, extractor.layers
        self.description = extractor.description

    def __call__(self, x: Tensor) -> dict[str, Tensor]:
        self.seen.append(x)
        return self.extractor(x)

    def net_features(self, v, names=None):
        return self.extractor.net_features(v, names)

    def styles_seen(self, style: Tensor) -> int:
        return sum(1 for x in self.seen if x.shape == style.shape and torch.equal(x, style))


def test_a_second_objective_with_the_same_painting_computes_no_style_targets(shallow):
    cfg, extractor = shallow
    content, style, _, image = _images()
    STYLE_TARGETS.clear()
    spy = Spy(extractor)
    first = Objective(spy, cfg, content, style)
    assert spy.styles_seen(style) == 1
    second = Objective(spy, cfg, content.flip(-1), style.clone())  # another frame, the same painting
    assert spy.styles_seen(style) == 1 and (STYLE_TARGETS.hits, STYLE_TARGETS.misses) == (1, 1)
    v = extractor.pixels.to_net(image)
    with torch.no_grad():
        assert float(first(v)["style"]) == float(second(v)["style"])


def test_the_style_cache_tells_apart_image_size_weights_and_loss(shallow):
    cfg, extractor = shallow
    _, style, _, _ = _images()
    STYLE_TARGETS.clear()
    reweighted = copy.deepcopy(extractor)
    with torch.no_grad():
        reweighted.body[0].weight.mul_(2)  # same description, other weights
    spy = Spy(extractor)
    Objective(spy, cfg, None, style)
    Objective(spy, cfg, None, style[..., :40, :56])  # other size
    Objective(spy, cfg, None, 1 - style)  # other painting
    Objective(spy, cfg.replace(gram_norm="chw"), None, style)  # other normalisation
    Objective(spy, cfg.replace(style_loss="wasserstein"), None, style)
    Objective(Spy(reweighted), cfg, None, style)
    assert (STYLE_TARGETS.hits, STYLE_TARGETS.misses) == (0, 6)
    Objective(spy, cfg, None, style)
    assert STYLE_TARGETS.hits == 1


def test_the_cache_is_a_bounded_lru():
    cache = TargetCache(maxsize=2)
    cache.get("a", lambda: 1)
    cache.get("b", lambda: 2)
    assert cache.get("a", lambda: -1) == 1  # a hit: "a" is now the most recent
    cache.get("c", lambda: 3)  # evicts "b", the least recently used
    assert len(cache) == 2
    assert cache.get("a", lambda: -1) == 1 and cache.get("b", lambda: 20) == 20  # "b" was recomputed
    assert (cache.hits, cache.misses) == (2, 4)


def test_the_cache_counts_every_lookup_from_many_threads():
    cache = TargetCache(maxsize=4)

    def work(k: int) -> None:
        for i in range(200):
            assert cache.get(i % 8, lambda i=i: i % 8) == i % 8

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert cache.hits + cache.misses == 800 and len(cache) <= 4


def test_a_second_run_with_the_same_painting_computes_no_style_targets(content_path, style_path):
    options = {"size": 48, "iterations": 2, "weights": "random", "style_layers": "relu1_1,relu2_1", "stages": 1}
    cfg = build_config("stylize", options)
    STYLE_TARGETS.clear()
    painterly.run(cfg, content_path, style_path)
    misses = STYLE_TARGETS.misses
    assert misses >= 1
    painterly.run(cfg, content_path, style_path)
    assert STYLE_TARGETS.misses == misses and STYLE_TARGETS.hits >= misses

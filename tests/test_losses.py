"""Every loss formula against hand-computed values, and the total loss's gradient against finite differences."""

from __future__ import annotations

import math

import pytest
import torch

from painterly.config import build_config
from painterly.engine.backbone import load_backbone
from painterly.engine.losses import content_loss, gram, style_layer_loss, tv_loss
from painterly.engine.objective import Objective

F = torch.tensor([[[[1.0, 3.0]]]])  # (1, 1, 1, 2)
P = torch.tensor([[[[1.0, 1.0]]]])  # squared error [0, 4]


@pytest.mark.parametrize(
    ("norm", "expected"),
    [("sum", 4.0), ("half-sum", 2.0), ("mean", 2.0), ("coursera", 4 / (4 * 1 * 2 * 1)), ("target", 2.0 / 1.0)],
)
def test_content_loss_variants_match_hand_computed_values(norm, expected):
    assert content_loss(F, P, norm).item() == pytest.approx(expected)


def test_gram_of_constant_features_is_one():
    assert torch.equal(gram(torch.ones(1, 2, 3, 3), "hw"), torch.ones(1, 2, 2))


@pytest.mark.parametrize(("norm", "divisor"), [("none", 1), ("hw", 2), ("chw", 4)])
def test_gram_normalisations_divide_the_outer_product(norm, divisor):
    f = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])  # (1, C=2, 1, 2)
    expected = torch.tensor([[[5.0, 11.0], [11.0, 25.0]]]) / divisor
    assert torch.allclose(gram(f, norm), expected)


G = torch.tensor([[[2.0, 0.0], [0.0, 2.0]]])
A = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])  # Σ(G-A)² = 2, ΣA² = 2, C = 2


@pytest.mark.parametrize(
    ("norm", "expected"),
    [
        ("target", 1.0),
        ("mean", 0.5),
        ("gatys", 2 / (4 * 2**2 * 3**2)),  # M = H·W = 3 positions
        ("mean-chw", 0.5 / (2 * 3)),
        ("keras-vgg16", 2 / (4 * 3**2 * 10**2)),  # image of 10 pixels
    ],
)
def test_style_layer_loss_variants_match_hand_computed_values(norm, expected):
    assert style_layer_loss(G, A, norm, positions=3, image_pixels=10).item() == pytest.approx(expected)


def test_l2_total_variation_of_a_vertical_edge_is_one():
    x = torch.tensor([[[[0.0, 1.0], [0.0, 1.0]]]])
    assert tv_loss(x, "l2").item() == pytest.approx(1.0)


def test_keras_total_variation_raises_the_summed_squares_to_the_power():
    x = torch.tensor([[[[0.0, 2.0], [1.0, 0.0]]]])  # at (0, 0): Δx = 2, Δy = 1
    assert tv_loss(x, "keras", 1.25).item() == pytest.approx(5**1.25)


def test_losses_are_zero_when_the_image_matches_its_targets():
    f = torch.rand(1, 4, 5, 5)
    assert content_loss(f, f).item() == 0
    assert style_layer_loss(gram(f), gram(f), "target", 25, 25).item() == 0


@pytest.mark.parametrize("preset", ["default", "gatys", "keras-vgg16"])
def test_total_loss_gradient_matches_finite_differences(preset):
    cfg = build_config(
        "stylize",
        dict(
            preset=preset,
            weights="random",
            content_layers="relu2_2",
            style_layers="relu1_1:0.5,relu2_1:0.5",
            tv_weight=0.5 if preset == "default" else None,
        ),
    )
    ex = load_backbone(
        "vgg19", "random", cfg.optimize.pooling, cfg.optimize.pixels, ["relu1_1", "relu2_1", "relu2_2"]
    ).double()
    torch.manual_seed(0)
    content, style = torch.rand(1, 3, 8, 8, dtype=torch.float64), torch.rand(1, 3, 8, 8, dtype=torch.float64)
    objective = Objective(ex, cfg, content, style)
    v = ex.pixels.to_net(torch.rand(1, 3, 8, 8, dtype=torch.float64)).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: objective(x)["total"], (v,), eps=1e-6, atol=1e-5, rtol=1e-3)
    assert math.isfinite(objective(v)["total"].item())

"""Creative control (issue 5): several styles, colour preservation, masks, strength, the Wasserstein loss.

Tiny images (<= 64 px), random weights, a few iterations: every run here takes well under a second."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from painterly.api import backbone_for, pick_device, run
from painterly.cli import main
from painterly.config import build_config
from painterly.engine.losses import gaussian_target, mean_cov, psd_sqrt, wasserstein_loss
from painterly.errors import PainterlyError
from painterly.media.color import color_stats, match_color
from painterly.media.images import resize, to_tensor

FAST = {"weights": "random", "size": 48, "iterations": 4}


@pytest.fixture(scope="module")
def extractor():
    return backbone_for(build_config("stylize", FAST), pick_device("cpu"))


@pytest.fixture
def second_style(tmp_path):
    rng = np.random.default_rng(7)
    blocks = rng.random((8, 8, 3)) * np.array([1.0, 0.3, 0.2])  # reddish squares, unlike the striped painting
    path = tmp_path / "second.png"
    Image.fromarray((blocks * 255).astype(np.uint8)).resize((64, 64), Image.Resampling.NEAREST).save(path)
    return str(path)


def _run(extractor, content, style, mask=None, **options):
    return run(build_config("stylize", {**FAST, **options}), content, style, mask=mask, extractor=extractor)


def _pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.float64) / 255


def test_blend_one_zero_is_exactly_the_single_style_run(extractor, content_path, style_path, second_style):
    single = _run(extractor, content_path, style_path)
    blended = _run(extractor, content_path, [style_path, second_style], style_blend="1,0")
    assert np.array_equal(np.asarray(single.image), np.asarray(blended.image))
    mixed = _run(extractor, content_path, [style_path, second_style], style_blend="0.5,0.5")
    assert not np.array_equal(np.asarray(single.image), np.asarray(mixed.image))
    assert mixed.metadata["inputs"]["style"] == [style_path, second_style]


def _cbcr(rgb: np.ndarray) -> np.ndarray:
    """BT.601 Cb, Cr (centred on 0) of an (H, W, 3) image in [0, 1]: measured independently of YIQ."""
    y = rgb @ np.array([0.299, 0.587, 0.114])
    return np.stack([0.564 * (rgb[..., 2] - y), 0.713 * (rgb[..., 0] - y)], axis=-1)


def test_luminance_mode_keeps_the_content_chroma(extractor, content_path, style_path):
    kept = _run(extractor, content_path, style_path, preserve_color="luminance", strength=0.8)
    plain = _run(extractor, content_path, style_path, strength=0.8)
    photo = _pixels(resize(Image.open(content_path).convert("RGB"), kept.image.size))
    err_kept = np.abs(_cbcr(_pixels(kept.image)) - _cbcr(photo)).mean()
    err_plain = np.abs(_cbcr(_pixels(plain.image)) - _cbcr(photo)).mean()
    assert err_kept < 0.01  # only clamping out-of-gamut pixels and 8-bit rounding move the chroma
    assert err_plain > 3 * err_kept
    assert np.abs(_pixels(kept.image) - photo).mean() > 0.01  # and the luminance was stylised


def test_histogram_matching_moves_the_style_colour_mean_and_covariance_to_the_content():
    g = torch.Generator().manual_seed(0)
    style = torch.rand(1, 3, 20, 24, generator=g) * torch.tensor([1.0, 0.4, 0.2]).view(1, 3, 1, 1)
    content = torch.rand(1, 3, 16, 16, generator=g).pow(2)
    mu, cov = color_stats(match_color(style, content))
    mu_c, cov_c = color_stats(content)
    assert torch.allclose(mu, mu_c, atol=1e-5)
    assert torch.allclose(cov, cov_c, atol=1e-5)


def test_histogram_mode_recolours_the_style_before_transfer(content_path, style_path):
    from painterly.media.inputs import at_size, load_inputs

    cfg = build_config("stylize", {**FAST, "preserve_color": "histogram"})
    scaled = at_size(load_inputs(cfg, content_path, style_path), cfg, (48, 36), [(48, 48)])
    assert scaled.photo.is_contiguous() and scaled.styles[0].is_contiguous()  # channels-last breaks L-BFGS
    raw = to_tensor(resize(Image.open(style_path).convert("RGB"), (48, 48)))
    mu_c, cov_c = color_stats(scaled.photo)
    (mu, cov), (mu_raw, cov_raw) = color_stats(scaled.styles[0]), color_stats(raw)
    # clamping the recoloured style back into [0, 1] costs some exactness, but most of the gap closes
    assert (mu - mu_c).norm() < 0.2 * (mu_raw - mu_c).norm()
    assert (cov - cov_c).norm() < 0.35 * (cov_raw - cov_c).norm()


def test_masked_out_pixels_stay_the_content(extractor, content_path, style_path, tmp_path):
    mask = np.zeros((30, 40), np.uint8)  # a different size from the output: it gets resized
    mask[:, :20] = 255  # left half: stylise; right half: keep the photo
    Image.fromarray(mask).save(tmp_path / "mask.png")
    result = _run(extractor, content_path, style_path, mask=str(tmp_path / "mask.png"), strength=0.9)
    out = _pixels(result.image)
    photo = _pixels(resize(Image.open(content_path).convert("RGB"), result.image.size))
    w = out.shape[1]
    assert np.abs(out[:, w // 2 + 2 :] - photo[:, w // 2 + 2 :]).max() <= 1 / 255
    assert np.abs(out[:, : w // 2 - 2] - photo[:, : w // 2 - 2]).mean() > 0.02
    assert result.metadata["inputs"]["mask"] == [str(tmp_path / "mask.png")]


def test_a_mask_may_be_a_single_channel_tensor():
    from painterly.media.inputs import _load_mask

    mask = torch.zeros(1, 1, 4, 6)
    mask[..., :3] = 1.0
    image = _load_mask(mask)
    assert image.mode == "L" and image.size == (6, 4)
    assert np.array_equal(np.asarray(image)[:, :3], np.full((4, 3), 255)) and np.asarray(image)[:, 3:].max() == 0


def test_one_mask_per_style_gives_each_style_its_region(extractor, content_path, style_path, second_style, tmp_path):
    left = np.zeros((36, 48), np.uint8)
    left[:, :24] = 255
    Image.fromarray(left).save(tmp_path / "left.png")
    Image.fromarray(255 - left).save(tmp_path / "right.png")
    masks = [str(tmp_path / "left.png"), str(tmp_path / "right.png")]
    result = _run(extractor, content_path, [style_path, second_style], mask=masks)
    assert np.isfinite(result.metadata["final_losses"]["total"])
    with pytest.raises(PainterlyError, match="once per style"):
        _run(extractor, content_path, [style_path, second_style], mask=[*masks, masks[0]])


def test_strength_is_monotone_in_the_content_loss(extractor, content_path, style_path):
    losses = []
    for strength in (0.2, 0.5, 0.8):
        result = _run(extractor, content_path, style_path, strength=strength, iterations=6)
        losses.append(result.metadata["final_losses"]["content"])
    assert losses[0] < losses[1] < losses[2]


def test_default_strength_leaves_the_preset_weights_unchanged():
    from painterly.engine.objective import strength_factor

    assert strength_factor(build_config("stylize", {}).strength) == 1.0
    assert strength_factor(0.0) < strength_factor(0.3) < strength_factor(1.0)


def test_wasserstein_is_zero_for_identical_statistics():
    f = torch.randn(1, 4, 6, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64) + 1.0
    assert wasserstein_loss(f, gaussian_target(*mean_cov(f))).abs() < 1e-8


def test_wasserstein_matches_the_hand_computed_value_for_diagonal_covariances():
    # channel 0: mean 0, variance 1; channel 1: mean 1, variance 4; uncorrelated over the 4 positions
    f = torch.tensor([[[[1.0, -1.0], [1.0, -1.0]], [[3.0, 3.0], [-1.0, -1.0]]]], dtype=torch.float64)
    target = gaussian_target(torch.tensor([[1.0, 0.0]]).double(), torch.diag(torch.tensor([4.0, 9.0])).double()[None])
    # |μ - μ_s|² = 1 + 1; Σ (√σ - √σ_s)² = (1 - 2)² + (2 - 3)²; normaliser |μ_s|² + tr Σ_s = 1 + 13
    assert wasserstein_loss(f, target).item() == pytest.approx(4 / 14, abs=1e-9)


def test_wasserstein_with_fewer_positions_than_channels_matches_the_direct_formula():
    g = torch.Generator().manual_seed(2)
    f = torch.randn(1, 12, 2, 3, generator=g, dtype=torch.float64)  # 6 positions < 12 channels
    target = gaussian_target(*mean_cov(torch.randn(1, 12, 5, 5, generator=g, dtype=torch.float64)))
    mu, cov = mean_cov(f)
    s = target["cov_sqrt"]
    direct = (mu - target["mean"]).pow(2).sum() + cov[0].trace() + target["cov"][0].trace()
    direct = direct - 2 * psd_sqrt(s @ cov @ s)[0].trace()
    assert wasserstein_loss(f, target).item() == pytest.approx((direct / target["norm"]).item(), rel=1e-6)


def test_wasserstein_gradient_matches_finite_differences():
    g = torch.Generator().manual_seed(3)
    f = torch.randn(1, 3, 4, 4, generator=g, dtype=torch.float64).requires_grad_()
    target = gaussian_target(*mean_cov(torch.randn(1, 3, 5, 5, generator=g, dtype=torch.float64)))
    mask = torch.rand(1, 1, 4, 4, generator=g, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: wasserstein_loss(x, target), (f,))
    assert torch.autograd.gradcheck(lambda x: wasserstein_loss(x, target, mask), (f,))


def test_wasserstein_gradient_is_finite_for_rank_deficient_features():
    f = torch.zeros(1, 8, 3, 3, dtype=torch.float64)
    f[:, :2] = torch.randn(1, 2, 3, 3, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    f.requires_grad_()  # 6 of 8 channels constant: Σ has zero eigenvalues
    target = gaussian_target(*mean_cov(torch.randn(1, 8, 4, 4, dtype=torch.float64)))
    wasserstein_loss(f, target).backward()
    assert torch.isfinite(f.grad).all()


@pytest.mark.parametrize(
    "options, message",
    [
        ({"strength": 1.5}, "strength"),
        ({"style_blend": "0.5,-1"}, "style-blend"),
        ({"style_blend": "0,0"}, "style-blend"),
        ({"style_loss": "sinkhorn"}, "style-loss"),
        ({"preserve_color": "sepia"}, "preserve-color"),
    ],
)
def test_bad_creative_options_are_refused(options, message):
    with pytest.raises(PainterlyError, match=message):
        build_config("stylize", options)


def test_blend_needs_one_weight_per_style(extractor, content_path, style_path):
    with pytest.raises(PainterlyError, match="2 weights for 1 style"):
        _run(extractor, content_path, style_path, style_blend="0.5,0.5")


def test_cli_takes_several_styles_masks_and_every_creative_flag(tmp_path, content_path, style_path, second_style):
    Image.new("L", (10, 10), 255).save(tmp_path / "all.png")
    out = tmp_path / "out.png"
    args = ["stylize", content_path, "--style", style_path, "--style", second_style, "--style-blend", "0.7,0.3"]
    args += ["--mask", str(tmp_path / "all.png"), "--preserve-color", "histogram", "--strength", "0.6"]
    args += ["--style-loss", "wasserstein", "-o", str(out), "--weights", "random", "--size", "32"]
    assert main([*args, "--iterations", "2", "--quiet"]) == 0
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["options"]["style_blend"] == [0.7, 0.3] and meta["options"]["style_loss"] == "wasserstein"
    assert meta["inputs"]["style"] == [style_path, second_style]

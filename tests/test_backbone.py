"""Backbone: trimming, pixel conventions, random weights, and safe weight loading."""

from __future__ import annotations

import pickle

import pytest
import torch
from safetensors.torch import save_file

from painterly.engine import backbone
from painterly.engine.backbone import PainterlyWarning, PixelConvention, build_trunk, load_backbone
from painterly.errors import ExitCode, PainterlyError

X_1 = [f"relu{i}_1" for i in range(1, 6)]


def test_extractor_stops_at_the_deepest_requested_layer():
    ex = load_backbone("vgg19", "random", "avg", "torch", ["relu1_1", "relu3_1"])
    assert len(ex.body) == 12  # indices 0..11
    assert set(ex(torch.rand(1, 3, 32, 32))) == {"relu1_1", "relu3_1"}


def test_average_pooling_replaces_max_pooling():
    assert any(isinstance(m, torch.nn.AvgPool2d) for m in build_trunk("vgg16", "avg"))
    assert not any(isinstance(m, torch.nn.AvgPool2d) for m in build_trunk("vgg16", "max"))


@pytest.mark.parametrize("kind", ["torch", "caffe"])
def test_pixel_conventions_round_trip(kind):
    x = torch.rand(1, 3, 4, 4)
    assert torch.allclose(PixelConvention(kind).from_net(PixelConvention(kind).to_net(x)), x, atol=1e-5)


def test_caffe_convention_is_bgr_0_255_minus_the_mean():
    white_red = torch.zeros(1, 3, 1, 1)
    white_red[0, 0] = 1.0  # pure red
    v = PixelConvention("caffe").to_net(white_red).flatten().tolist()
    assert v == pytest.approx([-103.939, -116.779, 255 - 123.68])


def test_random_weights_are_deterministic_per_seed():
    x = torch.rand(1, 3, 32, 32)
    a = load_backbone("vgg19", "random", "avg", "torch", ["relu3_1"])(x)["relu3_1"]
    b = load_backbone("vgg19", "random:0", "avg", "torch", ["relu3_1"])(x)["relu3_1"]
    c = load_backbone("vgg19", "random:1", "avg", "torch", ["relu3_1"])(x)["relu3_1"]
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("pooling", ["avg", "max"])
def test_random_activations_neither_vanish_nor_explode_with_depth(pooling):
    ex = load_backbone("vgg19", "random", pooling, "torch", X_1)
    rms = [f.pow(2).mean().sqrt().item() for f in ex(torch.rand(1, 3, 64, 64)).values()]
    assert all(0.3 < r < 3 for r in rms), rms


def test_extractor_is_frozen_and_does_not_modify_its_input():
    ex = load_backbone("vgg16", "random", "max", "torch", ["relu2_2"])
    assert not any(p.requires_grad for p in ex.parameters())
    x = torch.rand(1, 3, 16, 16)
    before = x.clone()
    ex(x)
    assert torch.equal(x, before)


def _trunk_state(name: str = "vgg16") -> dict:
    trunk = build_trunk(name, "max")
    backbone.init_random(trunk, seed=3)
    return {f"features.{k}": v for k, v in trunk.state_dict().items()}


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_state_dict_files_load_safely(tmp_path, suffix):
    path = tmp_path / f"vgg16{suffix}"
    state = _trunk_state()
    (save_file if suffix == ".safetensors" else torch.save)(state, str(path))
    ex = load_backbone("vgg16", str(path), "max", "torch", ["relu1_1"])
    assert torch.equal(ex.body[0].weight, state["features.0.weight"])
    assert str(path) in ex.description


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_a_weights_file_that_would_run_code_is_refused(tmp_path, capsys):
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"features.0.weight": _Evil()}, f, protocol=2)  # torch.save's protocol
    with pytest.raises(PainterlyError) as err:
        load_backbone("vgg16", str(path), "max", "torch", ["relu1_1"])
    assert "refused" in str(err.value) and "pwned" not in capsys.readouterr().out


def test_weights_for_the_wrong_backbone_are_a_clear_error(tmp_path):
    path = tmp_path / "vgg16.pth"
    torch.save(_trunk_state("vgg16"), path)
    with pytest.raises(PainterlyError, match="do not fit"):
        load_backbone("vgg19", str(path), "max", "torch", ["relu1_1"])


def test_offline_imagenet_error_names_the_url_and_the_cache_path(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(backbone, "_reachable", lambda url, timeout=3.0: False)
    with pytest.raises(PainterlyError) as err:
        load_backbone("vgg19", "imagenet", "avg", "torch", ["relu1_1"])
    message = str(err.value)
    assert "vgg19-dcbb9e9d.pth" in message and "https://" in message and str(tmp_path / "checkpoints") in message
    assert err.value.exit_code == ExitCode.RUNTIME


def test_auto_weights_fall_back_to_random_with_a_warning(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(backbone, "_reachable", lambda url, timeout=3.0: False)
    with pytest.warns(PainterlyWarning, match="RANDOM"):
        ex = load_backbone("vgg19", "auto", "avg", "torch", ["relu1_1"])
    assert "random" in ex.description


def test_cached_imagenet_weights_are_used_from_the_hub_cache_without_network(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(backbone, "_reachable", lambda url, timeout=3.0: pytest.fail("network probed"))
    state = _trunk_state("vgg16")
    (tmp_path / "checkpoints").mkdir()
    torch.save(state, tmp_path / "checkpoints" / "vgg16-397923af.pth")
    ex = load_backbone("vgg16", "auto", "max", "torch", ["relu1_1"])
    assert torch.equal(ex.body[0].weight, state["features.0.weight"])
    assert ex.description.startswith("vgg16, max pooling, imagenet")

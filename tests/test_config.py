"""Layer tables and names, option validation, and that each preset resolves to its source's values."""

from __future__ import annotations

import pytest
from torch import nn
from torchvision.models import vgg

from painterly.config import VGG_LAYERS, RunConfig, build_config, parse_style_layers, resolve_layer
from painterly.errors import ExitCode, PainterlyError


@pytest.mark.parametrize(("backbone", "cfg"), [("vgg19", "E"), ("vgg16", "D")])
def test_layer_tables_match_torchvision_module_types(backbone, cfg):
    features = vgg.make_layers(vgg.cfgs[cfg])
    table = VGG_LAYERS[backbone]
    assert len(table) == len(features)
    kinds = {"conv": nn.Conv2d, "relu": nn.ReLU, "pool": nn.MaxPool2d}
    for name, index in table.items():
        assert isinstance(features[index], kinds[name[:4]]), name


@pytest.mark.parametrize(
    ("name", "backbone", "canonical", "index"),
    [
        ("conv4_2", "vgg19", "relu4_2", 22),
        ("relu4_2", "vgg19", "relu4_2", 22),
        ("block4_conv2", "vgg19", "relu4_2", 22),
        ("block5_conv1", "vgg19", "relu5_1", 29),
        ("pool1", "vgg19", "pool1", 4),
        ("block1_pool", "vgg19", "pool1", 4),
        ("block3_conv3", "vgg16", "relu3_3", 15),
        ("Conv5_1", "vgg16", "relu5_1", 25),
    ],
)
def test_torch_caffe_and_keras_names_map_to_the_same_layer(name, backbone, canonical, index):
    assert resolve_layer(name, backbone) == canonical
    assert VGG_LAYERS[backbone][canonical] == index


def test_unknown_layer_lists_valid_names_and_suggests_one():
    with pytest.raises(PainterlyError) as err:
        resolve_layer("relu4_9", "vgg19")
    assert "did you mean" in str(err.value) and "relu5_1" in str(err.value)
    assert err.value.exit_code == ExitCode.USAGE


def test_vgg16_has_no_fourth_conv_in_block_three():
    with pytest.raises(PainterlyError):
        resolve_layer("conv3_4", "vgg16")


def test_style_layers_without_weights_share_one_equally():
    assert parse_style_layers("relu1_1,relu2_1") == (("relu1_1", 0.5), ("relu2_1", 0.5))
    assert parse_style_layers("relu1_1:1,relu2_1:0.7") == (("relu1_1", 1.0), ("relu2_1", 0.7))


@pytest.mark.parametrize(
    "bad",
    [
        {"iterations": 0},
        {"size": 100000},
        {"size": 2},
        {"lr": -1.0},
        {"style_weight": -1.0},
        {"optimizer": "sgd"},
        {"pooling": "min"},
        {"init_noise_ratio": 2.0},
        {"style_layers": "relu1_1:abc"},
        {"iterations": "many"},
        {"preset": "nope"},
        {"colour": "red"},
    ],
)
def test_bad_option_values_are_usage_errors(bad):
    with pytest.raises(PainterlyError) as err:
        build_config("stylize", bad)
    assert err.value.exit_code == ExitCode.USAGE


def test_options_override_the_preset_and_the_preset_is_recorded():
    cfg = build_config("stylize", {"preset": "gatys", "iterations": 7, "content_layers": "block2_conv2"})
    assert (cfg.preset, cfg.iterations, cfg.content_layers, cfg.pixels) == ("gatys", 7, ("relu2_2",), "caffe")


def test_reconstruct_and_texture_start_from_noise_unless_told():
    assert build_config("texture", {}).init == "noise"
    assert build_config("reconstruct", {"init": "content"}).init == "content"
    with pytest.raises(PainterlyError):
        build_config("texture", {"init": "content"})


def test_config_is_frozen():
    with pytest.raises(AttributeError):
        RunConfig().iterations = 3  # type: ignore[misc]


X_1 = tuple(f"relu{i}_1" for i in range(1, 6))


def test_gatys_preset_is_the_paper():
    c = build_config("stylize", {"preset": "gatys"})
    assert (c.backbone, c.pooling, c.pixels, c.content_layers) == ("vgg19", "avg", "caffe", ("relu4_2",))
    assert c.style_layers == tuple((n, 0.2) for n in X_1)
    assert (c.content_norm, c.gram_norm, c.style_norm) == ("half-sum", "none", "gatys")
    assert c.content_weight / c.style_weight == pytest.approx(1e-3)
    assert (c.optimizer, c.init, c.tv_weight) == ("lbfgs", "noise", 0.0)


def test_coursera_preset_is_the_notebook():
    c = build_config("stylize", {"preset": "coursera"})
    assert (c.backbone, c.pooling, c.content_layers, c.size) == ("vgg19", "avg", ("relu4_2",), (400, 300))
    assert c.style_layers == tuple((n, 0.2) for n in X_1)
    assert (c.content_norm, c.gram_norm, c.style_norm) == ("coursera", "none", "gatys")
    assert (c.content_weight, c.style_weight, c.optimizer, c.lr, c.iterations) == (10, 40, "adam", 2.0, 200)
    assert (c.init, c.init_noise_ratio, c.noise_amplitude * 255) == ("content", 0.6, pytest.approx(20))


def test_keras_vgg19_preset_is_the_notebook():
    c = build_config("stylize", {"preset": "keras-vgg19"})
    assert (c.backbone, c.content_layers, c.pixels) == ("vgg19", ("relu2_2",), "caffe")
    assert c.style_layers == tuple((n, 0.2) for n in X_1)  # block1_conv1..block5_conv1, averaged
    assert (c.content_norm, c.gram_norm, c.style_norm) == ("mean", "hw", "mean")


def test_pytorch_blog_preset_is_the_post():
    c = build_config("stylize", {"preset": "pytorch-blog"})
    assert (c.backbone, c.pixels, c.content_layers, c.size) == ("vgg19", "torch", ("relu4_2",), 400)
    assert c.style_layers == tuple(zip(X_1, (1.0, 0.7, 0.5, 0.3, 0.2), strict=True))
    assert (c.content_norm, c.gram_norm, c.style_norm) == ("mean", "none", "mean-chw")
    assert (c.content_weight, c.style_weight) == (1.0, 1e6)
    assert (c.optimizer, c.lr, c.init, c.iterations) == ("adam", 0.003, "content", 3000)


def test_keras_vgg16_preset_is_the_post():
    c = build_config("stylize", {"preset": "keras-vgg16"})
    assert (c.backbone, c.pixels, c.content_layers, c.size) == ("vgg16", "caffe", ("relu2_2",), (260, 260))
    assert [n for n, _ in c.style_layers] == ["relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3"]
    assert sum(w for _, w in c.style_layers) * c.style_weight == pytest.approx(4.5)
    assert len({w for _, w in c.style_layers}) == 1
    assert (c.content_weight, c.content_norm, c.style_norm) == (0.02, "sum", "keras-vgg16")
    assert (c.tv_weight, c.tv_loss, c.tv_power) == (0.995, "keras", 1.25)
    assert (c.optimizer, c.iterations, c.init, c.noise_amplitude * 255) == ("lbfgs", 200, "noise", pytest.approx(128))


def test_runconfig_defaults_are_the_default_preset():
    from painterly.presets import PRESETS

    plain = RunConfig()
    for key, value in PRESETS["default"].values.items():
        assert getattr(build_config("stylize", {}), key) == getattr(plain, key), key
        assert key in ("content_layers", "style_layers") or getattr(plain, key) == value, key

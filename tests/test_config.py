"""Layer tables and names, option validation, and that each preset resolves to its source's values."""

from __future__ import annotations

import pytest
from torch import nn
from torchvision.models import vgg

from painterly.config import (
    VGG_LAYERS,
    OptimizeConfig,
    RunConfig,
    build_config,
    option_named,
    options,
    parse_style_layers,
    resolve_layer,
)
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
    assert (cfg.optimize.preset, cfg.optimize.iterations, cfg.optimize.content_layers, cfg.optimize.pixels) == (
        "gatys",
        7,
        ("relu2_2",),
        "caffe",
    )


def test_reconstruct_and_texture_start_from_noise_unless_told():
    assert build_config("texture", {}).optimize.init == "noise"
    assert build_config("reconstruct", {"init": "content"}).optimize.init == "content"
    with pytest.raises(PainterlyError):
        build_config("texture", {"init": "content"})


def test_config_is_frozen():
    with pytest.raises(AttributeError):
        RunConfig().iterations = 3  # type: ignore[misc]


X_1 = tuple(f"relu{i}_1" for i in range(1, 6))


def test_gatys_preset_is_the_paper():
    c = build_config("stylize", {"preset": "gatys"})
    assert (c.optimize.backbone, c.optimize.pooling, c.optimize.pixels, c.optimize.content_layers) == (
        "vgg19",
        "avg",
        "caffe",
        ("relu4_2",),
    )
    assert c.optimize.style_layers == tuple((n, 0.2) for n in X_1)
    assert (c.optimize.content_norm, c.optimize.gram_norm, c.optimize.style_norm) == ("half-sum", "none", "gatys")
    assert c.optimize.content_weight / c.optimize.style_weight == pytest.approx(1e-3)
    assert (c.optimize.optimizer, c.optimize.init, c.optimize.tv_weight) == ("lbfgs", "noise", 0.0)


def test_coursera_preset_is_the_notebook():
    c = build_config("stylize", {"preset": "coursera"})
    assert (c.optimize.backbone, c.optimize.pooling, c.optimize.content_layers, c.size) == (
        "vgg19",
        "avg",
        ("relu4_2",),
        (400, 300),
    )
    assert c.optimize.style_layers == tuple((n, 0.2) for n in X_1)
    assert (c.optimize.content_norm, c.optimize.gram_norm, c.optimize.style_norm) == ("coursera", "none", "gatys")
    assert (
        c.optimize.content_weight,
        c.optimize.style_weight,
        c.optimize.optimizer,
        c.optimize.lr,
        c.optimize.iterations,
    ) == (10, 40, "adam", 2.0, 200)
    assert (c.optimize.init, c.optimize.init_noise_ratio, c.optimize.noise_amplitude * 255) == (
        "content",
        0.6,
        pytest.approx(20),
    )


def test_keras_vgg19_preset_is_the_notebook():
    c = build_config("stylize", {"preset": "keras-vgg19"})
    assert (c.optimize.backbone, c.optimize.content_layers, c.optimize.pixels) == ("vgg19", ("relu2_2",), "caffe")
    assert c.optimize.style_layers == tuple((n, 0.2) for n in X_1)  # block1_conv1..block5_conv1, averaged
    assert (c.optimize.content_norm, c.optimize.gram_norm, c.optimize.style_norm) == ("mean", "hw", "mean")


def test_pytorch_blog_preset_is_the_post():
    c = build_config("stylize", {"preset": "pytorch-blog"})
    assert (c.optimize.backbone, c.optimize.pixels, c.optimize.content_layers, c.size) == (
        "vgg19",
        "torch",
        ("relu4_2",),
        400,
    )
    assert c.optimize.style_layers == tuple(zip(X_1, (1.0, 0.7, 0.5, 0.3, 0.2), strict=True))
    assert (c.optimize.content_norm, c.optimize.gram_norm, c.optimize.style_norm) == ("mean", "none", "mean-chw")
    assert (c.optimize.content_weight, c.optimize.style_weight) == (1.0, 1e6)
    assert (c.optimize.optimizer, c.optimize.lr, c.optimize.init, c.optimize.iterations) == (
        "adam",
        0.003,
        "content",
        3000,
    )


def test_keras_vgg16_preset_is_the_post():
    c = build_config("stylize", {"preset": "keras-vgg16"})
    assert (c.optimize.backbone, c.optimize.pixels, c.optimize.content_layers, c.size) == (
        "vgg16",
        "caffe",
        ("relu2_2",),
        (260, 260),
    )
    assert [n for n, _ in c.optimize.style_layers] == ["relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3"]
    assert sum(w for _, w in c.optimize.style_layers) * c.optimize.style_weight == pytest.approx(4.5)
    assert len({w for _, w in c.optimize.style_layers}) == 1
    assert (c.optimize.content_weight, c.optimize.content_norm, c.optimize.style_norm) == (0.02, "sum", "keras-vgg16")
    assert (c.optimize.tv_weight, c.optimize.tv_loss, c.optimize.tv_power) == (0.995, "keras", 1.25)
    assert (c.optimize.optimizer, c.optimize.iterations, c.optimize.init, c.optimize.noise_amplitude * 255) == (
        "lbfgs",
        200,
        "noise",
        pytest.approx(128),
    )


def test_runconfig_defaults_are_the_default_preset():
    from painterly.presets import PRESETS

    plain, built = RunConfig().flat(), build_config("stylize", {}).flat()
    for key, value in PRESETS["default"].values.items():
        assert built[key] == plain[key], key
        assert key in ("content_layers", "style_layers") or plain[key] == value, key


def test_config_splits_shared_fields_from_each_methods_block():
    cfg = build_config("stylize", {"iterations": 9, "work_size": 300, "strength": 0.7, "method": "fast"})
    assert (cfg.optimize.iterations, cfg.fast.work_size, cfg.strength, cfg.method) == (9, 300, 0.7, "fast")
    assert not hasattr(cfg, "iterations") and not hasattr(cfg.fast, "strength")
    shared = {o.name for o in options() if o.block == ""}
    assert {"mode", "method", "size", "style_blend", "strength", "device", "seed", "preserve_color"} <= shared
    assert {o.name for o in options() if o.block == "fast"} >= {"model", "work_size"}


def test_every_option_has_help_and_its_choices_or_range_drive_validation():
    for opt in options():
        assert opt.help.strip(), opt.name
    assert option_named("optimizer").choices == ("lbfgs", "adam")
    assert option_named("strength").range == (0, 1)
    for name, bad in [("strength", 1.5), ("iterations", 0), ("optimizer", "sgd"), ("work_size", 10)]:
        with pytest.raises(PainterlyError, match=name.replace("_", "-")):
            build_config("stylize", {name: bad})


def test_replace_takes_flat_names_and_a_preset_brings_its_values():
    cfg = build_config("stylize", {"preset": "gatys", "size": 200})
    assert cfg.replace(iterations=5).optimize.iterations == 5
    back = cfg.replace(preset="default")
    assert back.optimize == build_config("stylize", {}).optimize  # not just the name (the old trap)
    assert back.size == 200  # shared fields are kept
    assert cfg.replace(preset="default", tv_weight=2.0).optimize.tv_weight == 2.0
    with pytest.raises(PainterlyError, match="unknown option"):
        cfg.replace(itertions=5)


def test_texture_config_can_be_built_directly_as_through_build_config():
    assert RunConfig(mode="texture").optimize.init == build_config("texture", {}).optimize.init == "noise"
    with pytest.raises(PainterlyError, match="no content image"):
        RunConfig(mode="texture", optimize=OptimizeConfig(init="content"))
    with pytest.raises(PainterlyError, match="only stylises"):
        RunConfig(mode="texture", method="fast")


def test_auto_style_layers_weight_the_fine_layers_for_a_photo_and_equally_for_a_texture():
    x_1 = [f"relu{i}_1" for i in range(1, 6)]
    photo = build_config("stylize", {}).optimize.style_layers
    assert photo == tuple(zip(x_1, (0.4, 0.3, 0.1, 0.1, 0.1), strict=True))
    for texture in (build_config("texture", {}), RunConfig(mode="texture"), RunConfig(mode="reconstruct")):
        assert texture.optimize.style_layers == tuple((n, 0.2) for n in x_1)
    assert (
        RunConfig().optimize.style_layers
        == photo
        == build_config("stylize", {"style_layers": "auto"}).optimize.style_layers
    )
    given = build_config("texture", {"style_layers": "relu1_1:0.4,relu2_1:0.6"}).optimize.style_layers
    assert given == (("relu1_1", 0.4), ("relu2_1", 0.6))  # given weights are kept in every mode
    assert build_config("stylize", {"preset": "gatys"}).optimize.style_layers == tuple((n, 0.2) for n in x_1)


def test_metadata_options_rebuild_the_same_config():
    cfg = build_config("stylize", {"preset": "coursera", "iterations": 12, "work_size": 256, "style_blend": "2,1"})
    assert build_config("stylize", cfg.flat()) == cfg

"""RunConfig: the one frozen configuration built by the CLI, the Python API and the web form.

Also the VGG layer tables (names are data, STYLE.md pattern 3) and the name resolver."""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
from dataclasses import dataclass
from typing import Literal, get_args

from painterly.errors import PainterlyError

Mode = Literal["stylize", "reconstruct", "texture"]
Backbone = Literal["vgg19", "vgg16"]
Pooling = Literal["max", "avg"]
Pixels = Literal["torch", "caffe"]
ContentNorm = Literal["target", "half-sum", "sum", "mean", "coursera"]
GramNorm = Literal["none", "hw", "chw"]
StyleNorm = Literal["target", "mean", "gatys", "mean-chw", "keras-vgg16"]
TVLoss = Literal["l2", "keras"]
Optimizer = Literal["lbfgs", "adam"]
Init = Literal["content", "noise", "style"]
Device = Literal["auto", "cpu", "cuda", "mps"]
PreserveColor = Literal["none", "luminance", "histogram"]
StyleLoss = Literal["gram", "wasserstein"]
Precision = Literal["auto", "fp32", "bf16", "fp16"]
Size = int | tuple[int, int]

MAX_SIDE = 8192  # beyond this a single image needs > 24 GiB just for VGG's first block


def _layer_table(convs_per_block: tuple[int, ...]) -> dict[str, int]:
    """Index into torchvision's ``vgg.features`` of every conv/relu/pool, by Caffe name.

    torchvision lays each block out as (conv, relu) * n followed by one pool."""
    table, index = {}, 0
    for block, n_convs in enumerate(convs_per_block, start=1):
        for conv in range(1, n_convs + 1):
            table[f"conv{block}_{conv}"] = index
            table[f"relu{block}_{conv}"] = index + 1
            index += 2
        table[f"pool{block}"] = index
        index += 1
    return table


VGG_LAYERS: dict[str, dict[str, int]] = {
    "vgg19": _layer_table((2, 2, 4, 4, 4)),
    "vgg16": _layer_table((2, 2, 3, 3, 3)),
}

_KERAS_NAME = re.compile(r"^block(\d)_(conv(\d)|pool)$")


def resolve_layer(name: str, backbone: Backbone) -> str:
    """Canonical name (``relu4_2`` or ``pool1``) for a torch/Caffe or Keras layer name.

    ``conv4_2``, ``relu4_2`` and ``block4_conv2`` are the same layer: the rectified response. In Caffe the
    ReLU runs in place on the conv blob, so the paper's "conv4_2" *is* rectified; Keras convs carry their
    ReLU; torchvision's inplace ReLU rectifies a stored conv output too."""
    table = VGG_LAYERS[backbone]
    key = name.strip().lower()
    if m := _KERAS_NAME.match(key):
        key = f"pool{m[1]}" if m[2] == "pool" else f"relu{m[1]}_{m[3]}"
    if key.startswith("conv"):
        key = "relu" + key[4:]
    if key not in table:
        valid = [n for n in table if not n.startswith("conv")]
        close = difflib.get_close_matches(key, list(table), n=1)
        hint = f" (did you mean {close[0].replace('conv', 'relu')}?)" if close else ""
        raise PainterlyError(
            f"unknown {backbone} layer {name!r}{hint}; valid: {', '.join(valid)} "
            "(also convN_M and Keras blockN_convM / blockN_pool)"
        )
    return key


def _choice(value: object, kind: object, what: str) -> None:
    choices = get_args(kind)
    if value not in choices:
        raise PainterlyError(f"invalid {what} {value!r}; choose from {', '.join(map(str, choices))}")


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines a run. Built by ``build_config`` from a preset plus overrides."""

    mode: Mode = "stylize"
    preset: str = "default"
    size: Size = 512  # long side, or (W, H): a box for stylize/reconstruct, the exact size for texture
    style_scale: float = 1.0  # style image long side = style_scale * output long side
    backbone: Backbone = "vgg19"
    weights: str = "auto"  # auto | imagenet | random | random:SEED | PATH
    pooling: Pooling = "avg"
    pixels: Pixels = "torch"  # network input convention: torchvision 0-1 mean/std, or Caffe 0-255 BGR - mean
    content_layers: tuple[str, ...] = ("relu4_2",)
    style_layers: tuple[tuple[str, float], ...] = tuple((f"relu{i}_1", 0.2) for i in range(1, 6))
    content_weight: float = 1.0
    style_weight: float = 10.0
    tv_weight: float = 0.0
    content_norm: ContentNorm = "target"
    gram_norm: GramNorm = "hw"
    style_norm: StyleNorm = "target"
    tv_loss: TVLoss = "l2"
    tv_power: float = 1.25  # exponent of the Keras TV loss
    optimizer: Optimizer = "lbfgs"
    lr: float = 1.0
    iterations: int = 300
    tol: float | None = None  # stop when the loss improved by less than this fraction over 20 iterations
    init: Init = "content"
    init_noise_ratio: float = 0.0  # init = ratio * noise + (1 - ratio) * init image
    noise_amplitude: float = 0.5  # noise = ImageNet mean + amplitude * U(-1, 1), in 0-1 pixel units
    seed: int = 0
    device: Device = "auto"
    scales: int | None = None  # coarse-to-fine stages; None: as many as halve the size down to min_size
    min_size: int = 128  # long side of the coarsest stage
    # Creative control (issue 5). Images (extra styles, masks) are inputs to api.run, never config.
    style_blend: tuple[float, ...] = ()  # one weight per style, normalised to sum 1; () = equal
    preserve_color: PreserveColor = "none"  # luminance-only transfer, or recolour the style first
    strength: float = 0.5  # style weight x 10^(4 (strength - 0.5)): 0.5 keeps the preset's weights
    style_loss: StyleLoss = "gram"  # wasserstein: mean/covariance W2, always target-normalised
    precision: Precision = "auto"  # trunk under autocast: auto = bf16 on CUDA, float32 elsewhere (issue 6)

    def __post_init__(self) -> None:
        for name, kind in [
            ("mode", Mode), ("backbone", Backbone), ("pooling", Pooling), ("pixels", Pixels),
            ("content_norm", ContentNorm), ("gram_norm", GramNorm), ("style_norm", StyleNorm),
            ("tv_loss", TVLoss), ("optimizer", Optimizer), ("init", Init), ("device", Device),
            ("preserve_color", PreserveColor), ("style_loss", StyleLoss),
        ]:  # fmt: skip
            _choice(getattr(self, name), kind, name.replace("_", "-"))
        _choice(self.precision, Precision, "precision")
        sides = (self.size,) if isinstance(self.size, int) else self.size
        if not all(isinstance(s, int) and 8 <= s <= MAX_SIDE for s in sides):
            raise PainterlyError(f"invalid size {self.size!r}: each side must be between 8 and {MAX_SIDE} px")
        checks = [
            ("iterations", self.iterations >= 1),
            ("style-scale", 0.05 <= self.style_scale <= 8),
            ("lr", self.lr > 0),
            ("init-noise-ratio", 0 <= self.init_noise_ratio <= 1),
            ("noise-amplitude", 0 <= self.noise_amplitude <= 1),
            ("tv-power", self.tv_power > 0),
            ("tol", self.tol is None or self.tol >= 0),
            ("scales", self.scales is None or (isinstance(self.scales, int) and 1 <= self.scales <= 8)),
            ("min-size", isinstance(self.min_size, int) and 8 <= self.min_size <= MAX_SIDE),
            ("strength", isinstance(self.strength, int | float) and 0 <= self.strength <= 1),
        ]
        checks += [
            (w, getattr(self, w.replace("-", "_")) >= 0) for w in ("content-weight", "style-weight", "tv-weight")
        ]
        for what, ok in checks:
            if not ok:
                raise PainterlyError(f"invalid {what}: {getattr(self, what.replace('-', '_'))!r}")
        object.__setattr__(self, "content_layers", tuple(resolve_layer(n, self.backbone) for n in self.content_layers))
        object.__setattr__(
            self, "style_layers", tuple((resolve_layer(n, self.backbone), float(w)) for n, w in self.style_layers)
        )
        if any(w < 0 for _, w in self.style_layers):
            raise PainterlyError("style layer weights must be >= 0")
        if self.mode != "texture" and not self.content_layers and self.content_weight > 0:
            raise PainterlyError("no content layers given")
        if self.mode == "texture" and self.init == "content":
            raise PainterlyError("texture has no content image: use --init noise or style")
        if self.mode == "reconstruct" and self.init == "style":
            raise PainterlyError("reconstruct has no style image: use --init noise or content")
        _check_blend(self)
        if self.mode != "reconstruct" and not self.style_layers:
            raise PainterlyError("no style layers given")

    def replace(self, **changes: object) -> RunConfig:
        return dataclasses.replace(self, **changes)


def parse_style_layers(text: str) -> tuple[tuple[str, float], ...]:
    """``"relu1_1:1,relu2_1:0.7"`` -> ((name, weight), ...). Layers without a weight share 1 equally."""
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise PainterlyError("--style-layers is empty")
    layers = []
    for item in items:
        name, _, weight = item.partition(":")
        try:
            layers.append((name, float(weight) if weight else 1.0 / len(items)))
        except ValueError as exc:
            raise PainterlyError(f"invalid style layer weight in {item!r}") from exc
    return tuple(layers)


def _check_blend(cfg: RunConfig) -> None:
    """style_blend: finite weights >= 0, not all zero; preserve-color needs a content image."""
    try:
        blend = tuple(float(w) for w in cfg.style_blend)
    except (TypeError, ValueError) as exc:
        raise PainterlyError(f"invalid style-blend {cfg.style_blend!r}: expected numbers, e.g. 0.7,0.3") from exc
    if any(not math.isfinite(w) or w < 0 for w in blend) or (blend and sum(blend) <= 0):
        raise PainterlyError(f"invalid style-blend {cfg.style_blend!r}: weights must be >= 0, not all 0")
    object.__setattr__(cfg, "style_blend", blend)
    if cfg.preserve_color != "none" and cfg.mode != "stylize":
        raise PainterlyError(f"--preserve-color needs a content photo: not available in {cfg.mode}")


def parse_blend(text: str) -> tuple[float, ...]:
    """``"0.7,0.3"`` -> (0.7, 0.3): one weight per --style, in order."""
    try:
        return tuple(float(t) for t in text.split(",") if t.strip())
    except ValueError as exc:
        raise PainterlyError(f"invalid style-blend {text!r}: expected comma-separated numbers, e.g. 0.7,0.3") from exc


def parse_layers(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip())


FIELDS = {f.name for f in dataclasses.fields(RunConfig)} - {"mode"}


def build_config(mode: Mode, options: dict) -> RunConfig:
    """Preset values, then ``options`` (from a TOML file and/or the command line, already merged) on top.

    ``options`` uses RunConfig field names; ``preset`` picks the base values."""
    from painterly.presets import PRESETS  # presets import RunConfig's types; avoid a cycle at import time

    options = {k: v for k, v in options.items() if v is not None}
    name = options.pop("preset", "default")
    if name not in PRESETS:
        raise PainterlyError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    unknown = set(options) - FIELDS
    if unknown:
        raise PainterlyError(f"unknown option(s): {', '.join(sorted(unknown))}")
    values = {**PRESETS[name].values, **options, "mode": mode, "preset": name}
    if mode != "stylize" and "init" not in options:
        values["init"] = "noise"  # reconstruction and texture start from noise (the notebooks' setup)
    if isinstance(values.get("style_layers"), str):
        values["style_layers"] = parse_style_layers(values["style_layers"])
    if isinstance(values.get("style_blend"), str):
        values["style_blend"] = parse_blend(values["style_blend"])
    elif isinstance(values.get("style_blend"), list):  # TOML array
        values["style_blend"] = tuple(values["style_blend"])
    if isinstance(values.get("content_layers"), str):
        values["content_layers"] = parse_layers(values["content_layers"])
    try:
        return RunConfig(**values)
    except TypeError as exc:  # a wrong type from a TOML file or an API keyword
        raise PainterlyError(f"invalid option value: {exc}") from exc

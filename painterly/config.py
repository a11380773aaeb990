"""RunConfig: the one frozen configuration built by the CLI, the Python API and the web form.

A run's config is what every method shares (mode, method, sizes, styles and their blend, colour, strength,
device, precision, seed) plus one block per method: ``optimize`` (Gatys et al.: layers, loss weights, optimiser,
iterations, start, coarse-to-fine) and ``fast`` (one-pass networks). Each field is declared with ``option()``:
its help text and range live beside it, its choices come from its ``Literal`` type, and ``options()`` lists them
for the command line, the web form and validation alike.

Also the VGG layer tables (names are data, STYLE.md pattern 3) and the name resolver."""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import re
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from painterly.errors import PainterlyError

Mode = Literal["stylize", "reconstruct", "texture"]
Method = Literal["optimize", "fast"]
Backbone = Literal["vgg19", "vgg16"]
Pooling = Literal["max", "avg"]
Pixels = Literal["torch", "caffe"]
ContentNorm = Literal["target", "half-sum", "sum", "mean", "coursera"]
GramNorm = Literal["none", "hw", "chw"]
StyleNorm = Literal["target", "mean", "gatys", "mean-chw", "keras-vgg16"]
TVLoss = Literal["l2", "keras"]
Optimizer = Literal["lbfgs", "adam"]
Init = Literal["auto", "content", "color", "noise", "style", "fast"]
Device = Literal["auto", "cpu", "cuda", "mps"]
PreserveColor = Literal["none", "luminance", "histogram"]
StyleLoss = Literal["gram", "wasserstein"]
Balance = Literal["fixed", "photo"]
Precision = Literal["auto", "fp32", "bf16", "fp16"]
Size = int | tuple[int, int]

_X_1 = tuple(f"relu{i}_1" for i in range(1, 6))
AUTO_STYLE_LAYERS = {  # --style-layers auto, by whether there is a photo (stylize) (issue 12, docs/quality.md)
    True: tuple(zip(_X_1, (0.4, 0.3, 0.1, 0.1, 0.1), strict=True)),  # the content and Laplacian terms hold the
    # photo's shapes; the painting's grain lives on the fine layers
    False: tuple((n, 0.2) for n in _X_1),  # a texture from noise: the fine-weighted mix stalls there
}
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


def parse_style_layers(text: str) -> tuple[tuple[str, float], ...] | Literal["auto"]:
    """``"relu1_1:1,relu2_1:0.7"`` -> ((name, weight), ...). Layers without a weight share 1 equally;
    ``"auto"`` stays "auto" (the mode's weighting, ``AUTO_STYLE_LAYERS``)."""
    if text.strip() == "auto":
        return "auto"
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


def parse_blend(text: str) -> tuple[float, ...]:
    """``"0.7,0.3"`` -> (0.7, 0.3): one weight per --style, in order."""
    try:
        return tuple(float(t) for t in text.split(",") if t.strip())
    except ValueError as exc:
        raise PainterlyError(f"invalid style-blend {text!r}: expected comma-separated numbers, e.g. 0.7,0.3") from exc


def parse_layers(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip())


def option(default: Any, help: str, *, range: tuple[float, float] | None = None) -> Any:  # noqa: A002
    """A config field with its help text and (inclusive) numeric range, read by ``options()``."""
    kind = "default_factory" if isinstance(default, list | dict) else "default"
    return field(**{kind: default}, metadata={"help": help, "range": range})


@dataclass(frozen=True)
class Option:
    """One field as a form sees it: ``block`` is "" for shared fields, else "optimize" or "fast"."""

    name: str
    block: str
    help: str
    default: Any
    choices: tuple | None
    range: tuple[float, float] | None
    kind: Any  # the resolved annotation, e.g. int, float | None, Literal[...]


@dataclass(frozen=True)
class OptimizeConfig:
    """Pixel optimisation (Gatys, Ecker & Bethge 2016): what the ``optimize`` method alone reads."""

    preset: str = option("default", "Tutorial setup the values below start from (see `painterly presets`).")
    backbone: Backbone = option("vgg19", "VGG network.")
    weights: str = option("auto", "auto | imagenet | random[:SEED] | PATH (.pth/.safetensors).")
    pooling: Pooling = option("avg", "Pooling layers.")
    pixels: Pixels = option("torch", "Network input convention: torchvision 0-1 mean/std, or Caffe 0-255 BGR.")
    content_layers: tuple[str, ...] = option(("relu4_2",), "Comma-separated content layers, e.g. relu4_2.")
    style_layers: tuple[tuple[str, float], ...] | Literal["auto"] = option(
        "auto",
        "Comma-separated name[:weight] style layers (auto: relu1_1..relu5_1 weighted 0.4,0.3,0.1,0.1,0.1 "
        "to stylise a photo, equally for a texture).",
    )
    content_weight: float = option(1.0, "Weight of the content term (alpha).", range=(0, math.inf))
    style_weight: float = option(80.0, "Weight of the style term (beta).", range=(0, math.inf))
    tv_weight: float = option(0.0, "Weight of the total-variation term.", range=(0, math.inf))
    structure_weight: float = option(0.5, "Weight of the Laplacian term (Li et al. 2017): keeps the photo's "
                                     "edges.", range=(0, math.inf))  # fmt: skip
    balance: Balance = option("fixed", "Style weight per pair: fixed, or photo (divided by the photo's own "
                              "style loss, so every pair starts at the same pressure).")  # fmt: skip
    content_norm: ContentNorm = option("target", "Content loss normalisation.")
    gram_norm: GramNorm = option("hw", "Gram matrix normalisation.")
    style_norm: StyleNorm = option("target", "Per-layer style loss normalisation.")
    style_loss: StyleLoss = option("gram", "gram, or wasserstein (mean/covariance W2).")
    tv_loss: TVLoss = option("l2", "Total variation: l2, or keras (power --tv-power).")
    tv_power: float = option(1.25, "Exponent of the keras TV loss.", range=(1e-6, 10))
    optimizer: Optimizer = option("lbfgs", "Optimiser.")
    lr: float = option(1.0, "Learning rate (network pixel units).", range=(1e-9, 1e6))
    iterations: int = option(300, "Optimisation steps over all stages (quality).", range=(1, 100_000))
    tol: float | None = option(None, "Stop when the loss improves by less than this fraction in 20 steps.",
                               range=(0, 1))  # fmt: skip
    init: Init = option("auto", "Start: content photo, the photo in the painting's colours (color), noise, "
                        "style image, or the one-pass result "
                        "(auto: color for stylize, noise otherwise; --init PATH starts from an image).")  # fmt: skip
    init_noise_ratio: float = option(0.0, "Blend the start: ratio*noise + (1-ratio)*start image.", range=(0, 1))
    noise_amplitude: float = option(0.5, "Noise amplitude in 0-1 pixel units.", range=(0, 1))
    stages: int | None = option(None, "Coarse-to-fine stages; 1 = one size only. [auto: halving to --min-size]",
                                range=(1, 8))  # fmt: skip
    min_size: int = option(128, "Long side of the coarsest stage in px.", range=(8, MAX_SIDE))

    def __post_init__(self) -> None:
        backbone = self.backbone if self.backbone in get_args(Backbone) else "vgg19"  # reported by validate()
        object.__setattr__(self, "content_layers", tuple(resolve_layer(n, backbone) for n in self.content_layers))
        if self.style_layers != "auto":  # "auto" is resolved by RunConfig, which knows the mode
            object.__setattr__(self, "style_layers", _resolved_style_layers(self.style_layers, backbone))
        validate(self)


def _resolved_style_layers(value: Any, backbone: Backbone) -> tuple[tuple[str, float], ...]:
    try:
        layers = tuple((resolve_layer(n, backbone), float(w)) for n, w in value)
    except (TypeError, ValueError) as exc:
        raise PainterlyError(f"invalid style layers {value!r}: expected (name, weight) pairs") from exc
    if any(w < 0 for _, w in layers):
        raise PainterlyError("style layer weights must be >= 0")
    return layers


@dataclass(frozen=True)
class FastConfig:
    """One-pass networks: what the ``fast`` method alone reads (painterly/fast/)."""

    model: str = option("magenta", "One-pass network: magenta (Ghiasi et al. 2017), adain (Huang & Belongie "
                        "2017), or PATH to an AdaIN decoder (.safetensors).")  # fmt: skip
    work_size: int | None = option(None, "Long side the network paints at (stroke size), independent of --size. "
                                   "[auto: the output size up to 1024 px]", range=(64, MAX_SIDE))  # fmt: skip

    def __post_init__(self) -> None:
        validate(self)


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines a run: the shared fields, then one block per method.

    Build it with ``build_config(mode, {flat_name: value})``; derive variants with ``cfg.replace(...)``, which
    takes the same flat names (``cfg.replace(iterations=50, work_size=512)``)."""

    mode: Mode = option("stylize", "What the run makes: a stylised photo, a reconstruction, or a texture.")
    method: Method = option("optimize", "optimize (Gatys et al., slow, tunable) or fast (one pass).")
    size: Size = option(512, "Long side of the output in px, or WxH (a box; the exact size for texture).")
    style_scale: float = option(1.0, "Style image long side relative to the output's.", range=(0.05, 8))
    style_blend: tuple[float, ...] = option((), "Weights of several styles, e.g. 0.7,0.3. [equal]")
    preserve_color: PreserveColor = option("none", "Keep the photo's colours (luminance-only transfer, or "
                                           "recolour the style first).")  # fmt: skip
    strength: float = option(0.5, "Style strength 0..1; 0.5 = the method's default balance.", range=(0, 1))
    device: Device = option("auto", "auto picks CUDA, then MPS, then the CPU.")
    precision: Precision = option("auto", "Network precision; auto = bf16 autocast on CUDA, float32 elsewhere.")
    seed: int = option(0, "Random seed (initial noise, random weights' default).")
    optimize: OptimizeConfig = field(default_factory=OptimizeConfig)
    fast: FastConfig = field(default_factory=FastConfig)

    def __post_init__(self) -> None:
        validate(self)
        sides = (self.size,) if isinstance(self.size, int) else self.size
        if not all(isinstance(s, int) and 8 <= s <= MAX_SIDE for s in sides):
            raise PainterlyError(f"invalid size {self.size!r}: each side must be between 8 and {MAX_SIDE} px")
        _check_blend(self)
        photo = self.mode == "stylize"
        auto = {"init": "color" if photo else "noise", "style_layers": AUTO_STYLE_LAYERS[photo]}
        opt = self.optimize
        if chosen := {k: v for k, v in auto.items() if getattr(opt, k) == "auto"}:
            opt = dataclasses.replace(opt, **chosen)
            object.__setattr__(self, "optimize", opt)
        if self.mode == "texture" and opt.init in ("content", "color", "fast"):
            raise PainterlyError(f"texture has no content image: use --init noise or style, not {opt.init}")
        if self.mode == "reconstruct" and opt.init in ("style", "color", "fast"):
            raise PainterlyError(f"reconstruct has no style image: use --init noise or content, not {opt.init}")
        if self.mode != "texture" and not opt.content_layers and opt.content_weight > 0:
            raise PainterlyError("no content layers given")
        if self.mode != "reconstruct" and not opt.style_layers:
            raise PainterlyError("no style layers given")
        if self.method == "fast" and self.mode != "stylize":
            raise PainterlyError(f"the fast method only stylises: {self.mode} needs --method optimize")

    def replace(self, **changes: Any) -> RunConfig:
        """A copy with ``changes`` by flat field name. ``preset=NAME`` re-applies that preset's values to the
        optimisation block (other changes in the same call win); shared fields are kept."""
        shared, blocks = _route(changes)
        optimize = self.optimize
        if "preset" in blocks["optimize"]:
            optimize = _preset_block(blocks["optimize"]["preset"])
        return dataclasses.replace(
            self,
            **shared,
            optimize=dataclasses.replace(optimize, **blocks["optimize"]),
            fast=dataclasses.replace(self.fast, **blocks["fast"]),
        )

    def flat(self) -> dict[str, Any]:
        """Every field by flat name (the shared ones and each block's), e.g. for metadata or a form."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in BLOCKS}
        for block in BLOCKS:
            values.update(dataclasses.asdict(getattr(self, block)))
        return values


BLOCKS = {"optimize": OptimizeConfig, "fast": FastConfig}


@functools.cache
def options() -> tuple[Option, ...]:
    """Every option, shared fields first: name, block, help, default, choices (Literal), range."""
    found = []
    for block, cls in [("", RunConfig), *BLOCKS.items()]:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.name in BLOCKS:
                continue
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            kind = hints[f.name]
            choices = get_args(kind) if typing.get_origin(kind) is Literal else None
            found.append(Option(f.name, block, f.metadata["help"], default, choices, f.metadata["range"], kind))
    return tuple(found)


def option_named(name: str) -> Option:
    return next(o for o in options() if o.name == name)


def validate(obj: object) -> None:
    """Check each field of a config dataclass against its choices and range: one ``PainterlyError`` line."""
    for opt in options():
        if opt.block != _block_of(obj):
            continue
        value = getattr(obj, opt.name)
        flag = opt.name.replace("_", "-")
        if opt.choices is not None and value not in opt.choices:
            raise PainterlyError(f"invalid {flag} {value!r}; choose from {', '.join(map(str, opt.choices))}")
        if opt.range is not None and value is not None:
            lo, hi = opt.range
            ok = isinstance(value, int | float) and not isinstance(value, bool) and lo <= value <= hi
            if not ok or (int in get_args(opt.kind) + (opt.kind,) and not isinstance(value, int)):
                bounds = f">= {lo:g}" if hi == math.inf else f"between {lo:g} and {hi:g}"
                raise PainterlyError(f"invalid {flag}: {value!r} (must be {bounds})")


def _block_of(obj: object) -> str:
    return next((name for name, cls in BLOCKS.items() if isinstance(obj, cls)), "")


def _route(values: dict[str, Any]) -> tuple[dict, dict[str, dict]]:
    """Split flat ``{name: value}`` into shared fields and one dict per block; unknown names raise."""
    where = {o.name: o.block for o in options()}
    unknown = sorted(set(values) - set(where))
    if unknown:
        raise PainterlyError(f"unknown option(s): {', '.join(unknown)}")
    shared = {k: v for k, v in values.items() if where[k] == ""}
    return shared, {b: {k: v for k, v in values.items() if where[k] == b} for b in BLOCKS}


def _preset_block(name: str) -> OptimizeConfig:
    """The optimisation block as preset ``name`` sets it."""
    from painterly.presets import PRESETS  # presets import this module's types; avoid a cycle at import time

    if name not in PRESETS:
        raise PainterlyError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    _, blocks = _route({k: v for k, v in PRESETS[name].values.items() if k != "size"})
    return OptimizeConfig(**_parsed(blocks["optimize"]), preset=name)


def _parsed(values: dict[str, Any]) -> dict[str, Any]:
    """Text forms (command line, TOML) of the list-valued options turned into tuples."""
    values = dict(values)
    for key, parse in (("style_layers", parse_style_layers), ("content_layers", parse_layers),
                       ("style_blend", parse_blend)):  # fmt: skip
        if isinstance(values.get(key), str):
            values[key] = parse(values[key])
        elif isinstance(values.get(key), list):  # TOML array
            values[key] = tuple(tuple(v) if isinstance(v, list) else v for v in values[key])
    if isinstance(values.get("size"), list):
        values["size"] = tuple(values["size"])
    return values


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


def build_config(mode: Mode, options: dict[str, Any] | None = None) -> RunConfig:
    """The preset's values, then ``options`` (flat field names, from a TOML file and/or the command line,
    already merged) on top. ``preset`` picks the base values of the optimisation block (and the size)."""
    from painterly.presets import PRESETS

    options = _parsed({k: v for k, v in (options or {}).items() if v is not None})
    name = options.pop("preset", "default")
    shared, blocks = _route(options)
    optimize = _preset_block(name)
    if mode != "stylize" and "init" not in blocks["optimize"]:
        optimize = dataclasses.replace(optimize, init="auto")  # reconstruction and texture start from noise
    shared = {"size": PRESETS[name].values.get("size", 512), **shared, "mode": mode}
    try:
        return RunConfig(
            **shared,
            optimize=dataclasses.replace(optimize, **blocks["optimize"]),
            fast=FastConfig(**blocks["fast"]),
        )
    except TypeError as exc:  # a wrong type from a TOML file or an API keyword
        raise PainterlyError(f"invalid option value: {exc}") from exc

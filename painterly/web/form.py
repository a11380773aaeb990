"""Form controls built from the config's own fields (``painterly.config.options()``): the label and help text,
the choices of a ``Literal``, the range of a number; and the way back, from the form's values to the flat
options ``build_config`` takes."""

from __future__ import annotations

import math
import re
import types
import typing
from typing import Any

import gradio as gr

from painterly.config import Option, option_named, options
from painterly.errors import PainterlyError

# Fields the web form never offers: the server picks the device and precision, and a path typed into a form
# would let a visitor make the server read its own files (weights and models are limited to named ones below).
SERVER_ONLY = frozenset({"mode", "device", "precision"})
WEIGHTS = re.compile(r"^(auto|imagenet|random(:\d{1,9})?)$")
MODELS = ("magenta", "adain")


def label(opt: Option) -> str:
    return opt.name.replace("_", " ").capitalize()


def _kinds(opt: Option) -> set:
    kinds = set(typing.get_args(opt.kind)) if isinstance(opt.kind, types.UnionType) else {opt.kind}
    kinds.discard(type(None))
    return kinds


def shown(value: Any) -> str:
    """A default as the form's text shows it (tuples comma-separated, layer weights as name:weight)."""
    if isinstance(value, tuple):
        return ",".join(f"{v[0]}:{v[1]:g}" if isinstance(v, tuple) else str(v) for v in value)
    return "" if value is None else str(value)


def control(name: str, *, preset_default: bool = False, **overrides: Any) -> gr.components.Component:
    """The control for config field ``name``: a dropdown for choices, a slider for a short numeric range, a
    number box for a wide one, else a text box. ``preset_default``: start empty, meaning "the preset's
    value" (the optimisation block's values come from the preset)."""
    opt = option_named(name)
    value = None if preset_default else opt.default
    common = {"label": label(opt), "info": opt.help, "value": value}
    if name == "model":
        return gr.Dropdown(choices=list(MODELS), **{**common, **overrides})
    if opt.choices is not None:
        return gr.Dropdown(choices=list(opt.choices), **{**common, **overrides})
    kinds = _kinds(opt)
    if kinds <= {int, float} and kinds:
        lo, hi = opt.range or (None, None)
        precision = 0 if kinds == {int} else None
        finite = lo is not None and hi is not None and math.isfinite(hi)
        if "step" in overrides or (finite and hi - lo <= 10 and not preset_default):  # a slider
            step = 1 if precision == 0 else (hi - lo) / 200
            return gr.Slider(**{"minimum": lo, "maximum": hi, "step": step, **common, **overrides})
        bounds = {"minimum": lo, "maximum": hi if finite else None}
        return gr.Number(**{"precision": precision, **bounds, **common, **overrides})
    placeholder = f"preset value, e.g. {shown(opt.default)}" if preset_default else shown(opt.default)
    return gr.Textbox(placeholder=placeholder, **{**common, "value": None if preset_default else shown(value),
                                                  **overrides})  # fmt: skip


def advanced_fields(taken: set[str]) -> list[str]:
    """Every field that the main form does not show and the server does not keep to itself."""
    return [o.name for o in options() if o.name not in taken and o.name not in SERVER_ONLY]


def to_options(values: dict[str, Any]) -> dict[str, Any]:
    """The form's values as flat options: empty ones left to the preset, numbers typed as the field is,
    text parsed by ``build_config``. Weights and models are restricted to names (no paths)."""
    found = {}
    for name, value in values.items():
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        opt = option_named(name)
        kinds = _kinds(opt)
        if isinstance(value, str):
            value = value.strip()
            if kinds == {int} or kinds == {float}:
                value = _number(opt, value)
        elif kinds == {int} and isinstance(value, float):
            if not value.is_integer():
                raise PainterlyError(f"{label(opt)}: {value:g} is not a whole number")
            value = int(value)
        found[name] = value
    if "weights" in found and not WEIGHTS.match(str(found["weights"])):
        raise PainterlyError("Weights: choose auto, imagenet, random or random:SEED (no files on this server)")
    if "model" in found and found["model"] not in MODELS:
        raise PainterlyError(f"Model: choose {' or '.join(MODELS)}")
    return found


def _number(opt: Option, text: str) -> int | float:
    try:
        return int(text) if _kinds(opt) == {int} else float(text)
    except ValueError as exc:
        raise PainterlyError(f"{label(opt)}: {text!r} is not a number") from exc

"""The ``painterly`` command line that reproduces a result exactly, from its metadata."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from typing import Any

from painterly.config import build_config


def flag_value(value: Any) -> str:
    """A config value as the command line writes it: sizes ``WxH``, lists comma-separated, layer weights
    ``name:weight``, floats as ``repr`` (which reads back to the same float)."""
    if isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return f"{value[0]}x{value[1]}"
    if isinstance(value, tuple):
        return ",".join(f"{v[0]}:{v[1]!r}" if isinstance(v, tuple) else flag_value(v) for v in value)
    return repr(value) if isinstance(value, float) else str(value)


def option_flags(options: dict[str, Any], mode: str = "stylize") -> list[str]:
    """``--name value`` for each option that differs from its preset's value (and ``--preset`` itself).
    ``build_config(mode, parsed flags)`` gives back the config of ``options``."""
    preset = options.get("preset", "default")
    base = build_config(mode, {"preset": preset}).flat()
    flags = [] if preset == "default" else ["--preset", preset]
    for name, value in options.items():
        if name in ("mode", "preset") or value is None or value == base.get(name):
            continue
        if name == "style_blend" and not value:
            continue
        flags += ["--" + name.replace("_", "-"), flag_value(value)]
    return flags


def command_line(
    metadata: dict,
    content: str,
    styles: Sequence[str],
    output: str,
    *,
    mask: str | None = None,
    init: str | None = None,
) -> str:
    """``painterly stylize CONTENT --style S ... -o OUTPUT [--mask M] [--init I] --option value ...``."""
    words = ["painterly", "stylize", content]
    for style in styles:
        words += ["--style", style]
    words += ["-o", output]
    if mask:
        words += ["--mask", mask]
    if init:
        words += ["--init", init]
    words += option_flags(metadata["options"], metadata.get("mode", "stylize"))
    return shlex.join(words)

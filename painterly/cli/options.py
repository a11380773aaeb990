"""Command-line options generated from the config's own fields (their help, choices and ranges live in
``config.py``), the TOML config file, and the progress bar."""

from __future__ import annotations

import functools
import sys
import types
import typing
from collections.abc import Callable, Sequence
from typing import Literal

import click
from tqdm import tqdm

from painterly.config import Init, Option, build_config, options
from painterly.errors import PainterlyError
from painterly.events import Step
from painterly.media.images import parse_size
from painterly.media.recording import Wanted

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

INIT_CHOICES = typing.get_args(Init)


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def click_type(opt: Option) -> click.ParamType:
    """Choices from a Literal, ints and floats (optionally ``| None``) as such, everything else as text that
    ``build_config`` parses (sizes, layer lists, blend weights)."""
    if opt.choices is not None and opt.name != "init":  # --init also takes a PATH
        return click.Choice(opt.choices)
    kinds = set(typing.get_args(opt.kind)) if isinstance(opt.kind, types.UnionType) else {opt.kind}
    kinds.discard(type(None))
    if kinds == {int}:
        return click.INT
    if kinds == {float}:
        return click.FLOAT
    return click.STRING


def _help(opt: Option) -> str:
    default = opt.default if not isinstance(opt.default, tuple) else ",".join(map(str, opt.default)) or None
    shown = "" if default is None or "[" in opt.help or opt.block == "optimize" else f" [{default}]"
    return opt.help + shown  # optimisation defaults come from the preset: see `painterly presets`


def _size(ctx: click.Context, param: click.Parameter, value: str | None) -> int | tuple[int, int] | None:
    return None if value is None else parse_size(value)


def run_options(
    command: Callable | None = None,
    *,
    fields: Sequence[str] | None = None,
    blocks: Sequence[str] = ("", "optimize"),
    sweep: dict[str, str] | None = None,
) -> Callable:
    """Add the config options of ``blocks`` (or only ``fields``), plus --config and --quiet, to a click command.
    Every flag defaults to None so that the preset, then the TOML file, then the command line decide.

    ``sweep``: options that take a list of values, with their separator (``jobs.sweep.SWEEPABLE``)."""
    if command is None:
        return functools.partial(run_options, fields=fields, blocks=blocks, sweep=sweep)
    for opt in reversed(options()):
        if opt.name == "mode" or (fields is not None and opt.name not in fields):
            continue
        if fields is None and opt.block not in blocks:
            continue
        kind, callback, help_text = click_type(opt), _size if opt.name == "size" else None, _help(opt)
        if opt.name == "init":
            help_text += f" Choices: {', '.join(INIT_CHOICES)}, or PATH."
        if sweep and opt.name in sweep:
            kind, callback = click.STRING, None
            help_text += f" Sweep: values separated by '{sweep[opt.name]}'."
        command = click.option(flag(opt.name), opt.name, type=kind, default=None, help=help_text, callback=callback)(
            command
        )
    command = click.option("--config", "config_file", type=str, help="TOML file of options; the command line wins.")(
        command
    )
    return click.option("--quiet", "-q", is_flag=True, help="No progress bar.")(command)


def artifact_options(command: Callable) -> Callable:
    """Add --save-every, --gif, --plot, --sheet and --report; the command receives them as ``wanted``."""

    @functools.wraps(command)
    def wrapper(*args, save_every: int | None, gif: bool, plot: bool, sheet: bool, report: bool, **kwargs) -> None:
        return command(*args, wanted=Wanted(save_every, gif, plot, sheet, report), **kwargs)

    for option in reversed([
        click.option("--save-every", type=click.IntRange(min=1), help="Write STEM_frames/NNNN.png every N iterations."),
        click.option("--gif", is_flag=True, help="Write STEM.gif, the evolution as a looping animation."),
        click.option("--plot", is_flag=True, help="Write STEM_losses.png, the loss curves (log scale)."),
        click.option("--sheet", is_flag=True, help="Write STEM_sheet.png: content | style | result, captioned."),
        click.option("--report", is_flag=True, help="Write STEM.html, a self-contained page about the run."),
    ]):  # fmt: skip
        wrapper = option(wrapper)
    return wrapper


def make_config(mode: Literal["stylize", "reconstruct", "texture"], values: dict, config_file: str | None) -> tuple:
    """(RunConfig, init image path or None) from the command's option values over the TOML file."""
    merged = merged_options(values, config_file)
    init = merged.get("init")
    if init is not None and init not in INIT_CHOICES:  # a picture to start from
        merged.pop("init")
        return build_config(mode, merged), init
    return build_config(mode, merged), None


def merged_options(cli_values: dict, config_file: str | None) -> dict:
    """Preset <- TOML file <- command line."""
    merged = read_toml(config_file) if config_file else {}
    merged.update({k: v for k, v in cli_values.items() if v is not None})
    return merged


def read_toml(path: str) -> dict:
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise PainterlyError(f"{path}: cannot read config file ({exc.strerror})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise PainterlyError(f"{path}: invalid TOML ({exc})") from exc
    data = {k.replace("-", "_"): v for k, v in data.items()}
    if isinstance(data.get("size"), str):
        data["size"] = parse_size(data["size"])
    for key in ("content_layers", "style_layers"):
        if isinstance(data.get(key), list):
            data[key] = ",".join(map(str, data[key]))
    return data


def progress_bar(quiet: bool, desc: str) -> tuple[Callable[[Step], None], Callable[[], None]]:
    """A tqdm bar (step, losses, ETA) opened at the first step, so errors print no empty bar; a step's note
    (a rejected optimiser step, a stage that ended early) is printed above it."""
    bars: list[tqdm] = []

    def update(p: Step) -> None:
        if not bars:
            bars.append(tqdm(total=p.total, desc=desc, disable=quiet, file=sys.stderr, unit="it", dynamic_ncols=True))
        if p.note:
            bars[0].write(f"painterly: {p.note}", file=sys.stderr)
        bars[0].set_postfix({k: f"{v:.3g}" for k, v in p.losses.items() if k != "tv" or v}, refresh=False)
        bars[0].update(1)

    return update, lambda: bars and bars[0].close()

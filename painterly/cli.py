"""Command line: argv -> RunConfig -> api -> files. Exit codes are chosen here only (STYLE.md pattern 5)."""

from __future__ import annotations

import functools
import sys
import textwrap
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import get_args

import click
from tqdm import tqdm

from painterly import __version__, config
from painterly.api import Result, backbone_for, pick_device, run, scale_schedule
from painterly.config import RunConfig, build_config, parse_layers, resolve_layer
from painterly.engine import memory
from painterly.engine.backbone import PainterlyWarning, load_backbone
from painterly.engine.optimize import Progress
from painterly.errors import ExitCode, PainterlyError
from painterly.jobs.sweep import SWEEPABLE, run_sweep, split_values
from painterly.media import layout
from painterly.media.features import DEFAULT_LAYERS, feature_grid
from painterly.media.images import fit_size, load_image, parse_size, resize, split_alpha
from painterly.media.outputs import IMAGE_SUFFIXES, check_output_path, save_image, sidecar, write_json
from painterly.media.recording import RunRecorder, Wanted
from painterly.presets import PRESETS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def _choice(kind: object) -> click.Choice:
    return click.Choice(get_args(kind))


def _size(ctx: click.Context, param: click.Parameter, value: str | None) -> int | tuple[int, int] | None:
    return None if value is None else parse_size(value)


# (flag, RunConfig field, click type, help). Defaults come from the preset, so every flag defaults to None.
RUN_OPTIONS = [
    ("--preset", "preset", click.Choice(list(PRESETS)), "Tutorial setup to start from (see `painterly presets`)."),
    ("--size", "size", str, "Long side of the output in px, or WxH (a box; exact size for texture). [512]"),
    ("--style-scale", "style_scale", float, "Style image long side relative to the output's. [1]"),
    ("--content-weight", "content_weight", float, "Weight of the content term (alpha)."),
    ("--style-weight", "style_weight", float, "Weight of the style term (beta)."),
    ("--tv-weight", "tv_weight", float, "Weight of the total-variation term."),
    ("--content-layers", "content_layers", str, "Comma-separated content layers, e.g. relu4_2 or block4_conv2."),
    ("--style-layers", "style_layers", str, "Comma-separated name[:weight] style layers."),
    ("--backbone", "backbone", _choice(config.Backbone), "VGG network. [vgg19]"),
    ("--weights", "weights", str, "auto | imagenet | random[:SEED] | PATH (.pth/.safetensors). [auto]"),
    ("--pooling", "pooling", _choice(config.Pooling), "Pooling layers. [avg]"),
    ("--pixels", "pixels", _choice(config.Pixels), "Network input convention: torchvision or Caffe."),
    ("--content-norm", "content_norm", _choice(config.ContentNorm), "Content loss normalisation."),
    ("--gram-norm", "gram_norm", _choice(config.GramNorm), "Gram matrix normalisation."),
    ("--style-norm", "style_norm", _choice(config.StyleNorm), "Per-layer style loss normalisation."),
    ("--tv-loss", "tv_loss", _choice(config.TVLoss), "Total variation: l2 or keras (power --tv-power)."),
    ("--tv-power", "tv_power", float, "Exponent of the keras TV loss. [1.25]"),
    ("--optimizer", "optimizer", _choice(config.Optimizer), "lbfgs or adam. [lbfgs]"),
    ("--lr", "lr", float, "Learning rate (network pixel units)."),
    ("--iterations", "iterations", int, "Optimisation steps. [300]"),
    ("--tol", "tol", float, "Stop early when the loss improves by less than this fraction in 20 steps."),
    ("--init", "init", _choice(config.Init), "Start from the content, noise or the style image."),
    ("--init-noise-ratio", "init_noise_ratio", float, "Blend: ratio*noise + (1-ratio)*init image."),
    ("--noise-amplitude", "noise_amplitude", float, "Noise amplitude in 0-1 pixel units. [0.5]"),
    ("--seed", "seed", int, "Random seed for the initial noise. [0]"),
    ("--device", "device", _choice(config.Device), "auto picks CUDA, then MPS, then CPU. [auto]"),
    ("--scales", "scales", int, "Coarse-to-fine stages; 1 = single scale. [auto: halving down to --min-size]"),
    ("--min-size", "min_size", int, "Long side of the coarsest stage. [128]"),
    ("--style-blend", "style_blend", str, "Weights of several --style images, e.g. 0.7,0.3. [equal]"),
    ("--preserve-color", "preserve_color", _choice(config.PreserveColor), "Keep the photo's colours. [none]"),
    ("--strength", "strength", float, "Style strength 0..1: 0.5 = the preset's weights; +0.25 = 10x style. [0.5]"),
    ("--style-loss", "style_loss", _choice(config.StyleLoss), "gram or wasserstein (mean/covariance). [gram]"),
    ("--precision", "precision", _choice(config.Precision), "Trunk precision; auto = bf16 autocast on CUDA. [auto]"),
]


def run_options(command: Callable, *, fields: Sequence[str] | None = None, sweep: bool = False) -> Callable:
    """Add every RunConfig option (or those of ``fields``), plus --config and --quiet, to a click command.

    ``sweep``: options in ``sweep.SWEEPABLE`` take a list of values, as text parsed by ``_sweep_values``."""
    for flag, field, kind, help_text in reversed(RUN_OPTIONS):
        if fields is not None and field not in fields:
            continue
        callback = _size if field == "size" else None
        if sweep and field in SWEEPABLE:
            kind, callback, help_text = str, None, f"{help_text} Sweep: values separated by '{SWEEPABLE[field]}'."
        command = click.option(flag, field, type=kind, default=None, help=help_text, callback=callback)(command)
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


def _options(mode: config.Mode, cli_values: dict, config_file: str | None) -> RunConfig:
    return build_config(mode, _merged(cli_values, config_file))


def _merged(cli_values: dict, config_file: str | None) -> dict:
    """Preset <- TOML file <- command line."""
    merged = _read_toml(config_file) if config_file else {}
    merged.update({k: v for k, v in cli_values.items() if v is not None})
    return merged


def _read_toml(path: str) -> dict:
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
    elif isinstance(data.get("size"), list):
        data["size"] = tuple(data["size"])
    for key in ("content_layers", "style_layers"):
        if isinstance(data.get(key), list):
            data[key] = ",".join(map(str, data[key]))
    return data


def _progress_bar(quiet: bool, desc: str) -> tuple[Callable[[Progress], None], Callable[[], None]]:
    """A tqdm bar (iteration, losses, ETA) opened at the first iteration, so errors print no empty bar."""
    bars: list[tqdm] = []

    def update(p: Progress) -> None:
        if not bars:
            bars.append(tqdm(total=p.total, desc=desc, disable=quiet, file=sys.stderr, unit="it", dynamic_ncols=True))
        bars[0].set_postfix({k: f"{v:.3g}" for k, v in p.losses.items() if k != "tv" or v}, refresh=False)
        bars[0].update(1)

    return update, lambda: bars and bars[0].close()


def _run_and_save(  # noqa: ANN001
    cfg: RunConfig,
    out: Path,
    quiet: bool,
    content=None,
    style=None,
    extractor=None,
    wanted: Wanted | None = None,
    mask=None,
) -> Result:
    update, close = _progress_bar(quiet, out.name)
    recorder = RunRecorder(out, wanted or Wanted(), cfg.optimize.iterations)
    try:
        result = run(cfg, content, style, mask=mask, callbacks=[update, *recorder.callbacks], extractor=extractor)
    finally:
        close()
    save_image(result.image, out, result.metadata)
    write_json(sidecar(out, ".json"), result.metadata)
    recorder.finish(result.image, result.metadata, result.history, content, style)
    if result.interrupted:
        # not KeyboardInterrupt: click turns that into a bare Abort and the message would be lost
        raise PainterlyError(f"interrupted: saved the best image so far to {out}", ExitCode.INTERRUPTED)
    if not quiet:
        click.echo(f"wrote {out} ({result.metadata['timings']['total_s']:.1f} s)", err=True)
    return result


def _content_files(paths: Sequence[str]) -> list[Path]:
    files = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES | {".gif"})
            if not found:
                raise PainterlyError(f"{p}: folder has no images")
            files += found
        else:
            files.append(p)
    return files


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="painterly")
def cli() -> None:
    """Neural style transfer (Gatys et al.): paint a photo in the style of a painting."""


@cli.command()
@click.argument("content", nargs=-1, required=True)
@click.option("--style", "-s", required=True, multiple=True, help="Style image (a painting); repeat to mix.")
@click.option("--mask", multiple=True, help="Where to stylise (white) or keep the photo; once or per style.")
@click.option("--output", "-o", required=True, help="Output image, or a folder when CONTENT is several files/a folder.")
@run_options
@artifact_options
def stylize(
    content: tuple[str, ...],
    style: tuple[str, ...],
    output: str,
    quiet: bool,
    config_file: str | None,
    wanted: Wanted,
    **values,
) -> None:
    """Paint CONTENT (one or more photos, or a folder) in the style of STYLE (several: mixed, or one per MASK)."""
    masks = list(values.pop("mask")) or None
    style = style[0] if len(style) == 1 else list(style)  # one painting stays a path, as before
    cfg = _options("stylize", values, config_file)
    single = len(content) == 1 and not Path(content[0]).is_dir()
    if single:
        _run_and_save(cfg, check_output_path(output), quiet, content[0], style, wanted=wanted, mask=masks)
        return
    out_dir = Path(output)
    if out_dir.suffix.lower() in IMAGE_SUFFIXES:
        raise PainterlyError(f"{output}: with several content images, -o must be a folder")
    files = _content_files(content)
    out_dir.mkdir(parents=True, exist_ok=True)
    extractor = backbone_for(cfg, pick_device(cfg.device))  # loaded once for the whole batch
    for f in files:
        _run_and_save(cfg, out_dir / f"{f.stem}.png", quiet, f, style, extractor, wanted, mask=masks)


@cli.command()
@click.argument("image")
@click.option("--output", "-o", required=True, help="Output image.")
@click.option("--layer", help="Layer whose features are matched (alias of --content-layers).")
@run_options
@artifact_options
def reconstruct(
    image: str, output: str, layer: str | None, quiet: bool, config_file: str | None, wanted: Wanted, **values
) -> None:
    """Recreate IMAGE from one layer's features, starting from noise."""
    values["content_layers"] = layer or values["content_layers"]
    cfg = _options("reconstruct", values, config_file)
    _run_and_save(cfg, check_output_path(output), quiet, content=image, wanted=wanted)


@cli.command()
@click.argument("style")
@click.option("--output", "-o", required=True, help="Output image.")
@run_options
@artifact_options
def texture(style: str, output: str, quiet: bool, config_file: str | None, wanted: Wanted, **values) -> None:
    """Synthesise a texture from STYLE's Gram matrices alone, starting from noise."""
    cfg = _options("texture", values, config_file)
    _run_and_save(cfg, check_output_path(output), quiet, style=style, wanted=wanted)


@cli.command()
@click.option("--output", "-o", default="demo.png", show_default=True, help="Output image.")
@run_options
@artifact_options
def demo(output: str, quiet: bool, config_file: str | None, wanted: Wanted, **values) -> None:
    """Stylise a bundled photo (Grace Hopper, from matplotlib) as Van Gogh's Starry Night."""
    from importlib.resources import files

    import matplotlib.cbook

    values = {"size": 256, "iterations": 100, **{k: v for k, v in values.items() if v is not None}}
    cfg = _options("stylize", values, config_file)
    photo = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    painting = files("painterly") / "data" / "starry_night.jpg"
    _run_and_save(cfg, check_output_path(output), quiet, str(photo), str(painting), wanted=wanted)


@cli.command()
def presets() -> None:
    """List the presets with their origin and values."""
    for name, preset in PRESETS.items():
        click.echo(click.style(name, bold=True))
        click.echo(textwrap.fill(preset.origin, 100, initial_indent="  ", subsequent_indent="  "))
        for key, value in preset.values.items():
            click.echo(f"    {key.replace('_', '-')}: {value}")
        click.echo()


@cli.command()
@click.argument("images", nargs=-1, required=True)
@click.option("--output", "-o", required=True, help="Output image.")
@click.option("--labels", help="Comma-separated captions, one per image. [the file names]")
@click.option("--height", type=click.IntRange(16, 4096), help="Panel height in px. [smallest input, at most 512]")
def compare(images: tuple[str, ...], output: str, labels: str | None, height: int | None) -> None:
    """Put IMAGES side by side at equal height with captions (e.g. the results of several presets)."""
    out = check_output_path(output)
    captions = [t.strip() for t in labels.split(",")] if labels else [Path(p).name for p in images]
    if len(captions) != len(images):
        raise PainterlyError(f"--labels gives {len(captions)} captions for {len(images)} images")
    loaded = [split_alpha(load_image(p))[0] for p in images]
    height = height or min(512, *(im.height for im in loaded))
    save_image(layout.sheet(list(zip(captions, loaded, strict=True)), height), out)


@cli.command()
@click.argument("image")
@click.option("--output", "-o", required=True, help="Output image.")
@click.option("--layers", default=",".join(DEFAULT_LAYERS), show_default=True, help="Comma-separated layers.")
@click.option("--channels", "-k", type=click.IntRange(1, 64), default=8, show_default=True, help="Channels per layer.")
@click.option("--tile", type=click.IntRange(16, 512), default=96, show_default=True, help="Tile size in px.")
@functools.partial(run_options, fields=("preset", "size", "backbone", "weights", "pooling", "pixels", "device"))
def features(
    image: str, output: str, layers: str, channels: int, tile: int, quiet: bool, config_file: str | None, **values
) -> None:
    """The K most active channels (by mean activation) of each chosen layer on IMAGE, as a labelled grid.

    The image is fed at --size (default 256) through the backbone, weights and pooling of the preset or
    the options."""
    out = check_output_path(output)
    cfg = _options("reconstruct", {"size": 256, **{k: v for k, v in values.items() if v is not None}}, config_file)
    names = tuple(dict.fromkeys(resolve_layer(n, cfg.optimize.backbone) for n in parse_layers(layers)))
    if not names:
        raise PainterlyError("--layers is empty")
    extractor = load_backbone(
        cfg.optimize.backbone,
        cfg.optimize.weights,
        cfg.optimize.pooling,
        cfg.optimize.pixels,
        names,
        pick_device(cfg.device),
    )
    photo = split_alpha(load_image(image))[0]
    save_image(feature_grid(extractor, resize(photo, fit_size(*photo.size, cfg.size)), names, channels, tile), out)
    if not quiet:
        click.echo(f"wrote {out}", err=True)


@cli.command()
@click.argument("content", required=False)
@click.option("--style", "-s", help="Style image (not for --mode reconstruct).")
@click.option("--output", "-o", required=True, help="Output image: the grid.")
@click.option("--mode", type=_choice(config.Mode), default="stylize", show_default=True, help="What each cell runs.")
@functools.partial(run_options, sweep=True)
def sweep(
    content: str | None, style: str | None, output: str, mode: str, quiet: bool, config_file: str | None, **values
) -> None:
    """Run every combination of the options given several values; write one grid labelled by them.

    The last swept option (in --help order) runs along the columns, the others along the rows, e.g.
    painterly sweep photo.jpg -s painting.jpg --content-weight 1,5,25 --style-weight 1e2,1e3 -o grid.png"""
    out = check_output_path(output)
    lists = {k: _sweep_values(k, v) for k, v in values.items() if v is not None and k in SWEEPABLE}
    axes = {k: v for k, v in lists.items() if len(v) > 1}
    fixed = {k: v for k, v in values.items() if v is not None and k not in axes}
    fixed.update({k: v[0] for k, v in lists.items() if len(v) == 1})
    if not axes:
        raise PainterlyError("nothing to sweep: give at least one option several values, e.g. --style-weight 1,10,100")
    base = _merged(fixed, config_file)
    bar = tqdm(desc=out.name, disable=quiet, file=sys.stderr, unit="it", dynamic_ncols=True)
    try:
        result = run_sweep(mode, axes, content, style, base=base, callbacks=[lambda p: bar.update(1)])
    finally:
        bar.close()
    metadata = {
        "sweep": {k: list(v) for k, v in axes.items()},
        "fixed": base,
        "cells": [{**combo, **r.metadata} for combo, r in zip(result.combos, result.cells, strict=True)],
    }
    save_image(result.grid, out, metadata)
    write_json(sidecar(out, ".json"), metadata)
    if not quiet:
        click.echo(f"wrote {out} ({len(result.cells)} runs)", err=True)


def _sweep_values(field: str, text: str) -> list:
    """The values of one sweep option, each converted as the single-valued option would convert it."""
    flag, kind = next((f, k) for f, name, k, _ in RUN_OPTIONS if name == field)
    convert = parse_size if field == "size" else lambda v: click.types.convert_type(kind).convert(v, None, None)
    try:
        return [convert(v) for v in split_values(field, text)]
    except click.BadParameter as exc:
        raise PainterlyError(f"{flag}: {exc.format_message()}") from exc


@cli.command()
@click.argument("content", required=False)
@click.option("--mode", type=_choice(config.Mode), default="stylize", show_default=True, help="What the run does.")
@run_options
def estimate(content: str | None, mode: str, quiet: bool, config_file: str | None, **values) -> None:
    """Estimated peak memory and seconds per iteration of a run at --size on this machine.

    Give CONTENT (or --size WxH) for the exact aspect; otherwise the output is square, the worst case for a
    long side. Nothing is loaded but the image header; time comes from a 0.1 s calibration convolution."""
    cfg = _options(mode, values, config_file)
    if content is not None:
        size = fit_size(*load_image(content).size, cfg.size)
    else:
        size = cfg.size if isinstance(cfg.size, tuple) else (cfg.size, cfg.size)
    device = pick_device(cfg.device)
    available, gflops = memory.available_bytes(device), memory.calibrate(device.type)
    path = None if memory.tiling_supported(cfg) else "plain"
    stages = scale_schedule(size, cfg, memory.smallest_side(cfg))
    plans = [memory.estimate(cfg, s, iterations=n, available=available, gflops=gflops, path=path) for s, n in stages]
    final = plans[-1]
    how = f"tiled path, {final.tile} px tiles" if final.path == "tiled" else "plain path"
    free = f"{memory.describe(available)} available" if available else "available memory unknown"
    click.echo(f"peak memory: {memory.describe(final.peak_bytes)} at {size[0]}x{size[1]} ({how}; {free})")
    total = sum(p.seconds_per_iteration * n for p, (_, n) in zip(plans, stages, strict=True))
    click.echo(
        f"time: {final.seconds_per_iteration:.3g} s/iteration at {size[0]}x{size[1]} "
        f"({final.flops / 1e9:.0f} GFLOP at {gflops:.0f} GFLOP/s measured on {device.type}); "
        f"whole run ~{total:.0f} s for {cfg.optimize.iterations} iterations over {len(stages)} scale(s)"
    )
    if available and final.peak_bytes > memory.HEADROOM * available:
        largest = memory.largest_fitting(cfg, size, available, path=path)
        click.echo(f"does not fit: the largest size that fits is about --size {largest}")


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    click.secho(f"painterly: WARNING: {message}", fg="yellow", bold=True, err=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: run the CLI and translate errors into one stderr line and an exit code."""
    with warnings.catch_warnings():
        warnings.simplefilter("always", PainterlyWarning)
        warnings.showwarning = _show_warning
        try:
            cli.main(args=list(argv) if argv is not None else None, prog_name="painterly", standalone_mode=False)
        except PainterlyError as err:
            kind = "" if err.exit_code == ExitCode.INTERRUPTED else "error: "
            click.echo(f"painterly: {kind}{err}", err=True)
            return int(err.exit_code)
        except click.exceptions.Exit as exc:  # --help, --version
            return exc.exit_code
        except click.ClickException as exc:
            click.echo(f"painterly: error: {exc.format_message()}", err=True)
            return int(ExitCode.USAGE)
        except (KeyboardInterrupt, click.exceptions.Abort) as exc:
            click.echo(f"painterly: {exc.args[0] if exc.args else 'interrupted'}", err=True)
            return int(ExitCode.INTERRUPTED)
    return int(ExitCode.OK)


def entry_point() -> None:
    """Console script ``painterly``."""
    sys.exit(main())

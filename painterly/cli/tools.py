"""Commands that inspect and compare: presets, compare, features, sweep and estimate."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import click

from painterly import config
from painterly.api import pick_device, stage_schedule
from painterly.cli import cli
from painterly.cli.options import click_type, flag, make_config, merged_options, run_options
from painterly.config import option_named, parse_layers, resolve_layer
from painterly.engine import memory
from painterly.engine.backbone import load_backbone
from painterly.errors import PainterlyError
from painterly.jobs.batch import ImagePainter
from painterly.jobs.options import JobOptions, executor_options
from painterly.jobs.sweep import SWEEPABLE, combinations, split_values
from painterly.jobs.sweep_cells import cell_units, grid_from_cells
from painterly.media import layout
from painterly.media.features import DEFAULT_LAYERS, feature_grid
from painterly.media.images import fit_size, load_image, parse_size, resize, split_alpha
from painterly.media.outputs import check_output_path, save_image, sidecar, write_json
from painterly.presets import PRESETS

MODES = click.Choice(config.option_named("mode").choices)


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
@run_options(fields=("preset", "size", "backbone", "weights", "pooling", "pixels", "device"))
def features(
    image: str, output: str, layers: str, channels: int, tile: int, quiet: bool, config_file: str | None, **values
) -> None:
    """The K most active channels (by mean activation) of each chosen layer on IMAGE, as a labelled grid.

    The image is fed at --size (default 256) through the backbone, weights and pooling of the preset or
    the options."""
    out = check_output_path(output)
    cfg, _ = make_config(
        "reconstruct", {"size": 256, **{k: v for k, v in values.items() if v is not None}}, config_file
    )
    opt = cfg.optimize
    names = tuple(dict.fromkeys(resolve_layer(n, opt.backbone) for n in parse_layers(layers)))
    if not names:
        raise PainterlyError("--layers is empty")
    extractor = load_backbone(opt.backbone, opt.weights, opt.pooling, opt.pixels, names, pick_device(cfg.device))
    photo = split_alpha(load_image(image))[0]
    save_image(feature_grid(extractor, resize(photo, fit_size(*photo.size, cfg.size)), names, channels, tile), out)
    if not quiet:
        click.echo(f"wrote {out}", err=True)


@cli.command()
@click.argument("content", required=False)
@click.option("--style", "-s", help="Style image (not for --mode reconstruct).")
@click.option("--output", "-o", required=True, help="Output image: the grid.")
@click.option(
    "--mode",
    type=MODES,
    default="stylize",
    show_default=True,
    help="What each cell runs.",
)
@run_options(sweep=SWEEPABLE)
@executor_options
def sweep(content: str | None, style: str | None, output: str, mode: str, quiet: bool, config_file: str | None,
          job: JobOptions, **values) -> None:  # fmt: skip
    """Run every combination of the options given several values; write one grid labelled by them.

    The last swept option (in --help order) runs along the columns, the others along the rows, e.g.
    painterly sweep photo.jpg -s painting.jpg --content-weight 1,5,25 --style-weight 1e2,1e3 -o grid.png

    Each combination is a unit of a job whose files stay beside the grid in STEM_cells/ (cell_NNN.png, its
    JSON, the manifest): the same command again paints only the missing cells; --executor ray spreads them."""
    out = check_output_path(output)
    lists = {k: _sweep_values(k, v) for k, v in values.items() if v is not None and k in SWEEPABLE}
    axes = {k: v for k, v in lists.items() if len(v) > 1}
    fixed = {k: v for k, v in values.items() if v is not None and k not in axes}
    fixed.update({k: v[0] for k, v in lists.items() if len(v) == 1})
    if not axes:
        raise PainterlyError("nothing to sweep: give at least one option several values, e.g. --style-weight 1,10,100")
    base = merged_options(fixed, config_file)
    folder = sidecar(out, "_cells")
    units = cell_units(mode, axes, folder, content, style, base=base)  # every config built: bad values fail here
    job.run(units, folder, ImagePainter, quiet=quiet, what="cells")
    cells = [json.loads(sidecar(u.output, ".json").read_text()) for u in units]
    metadata = {
        "sweep": {k: list(v) for k, v in axes.items()},
        "fixed": base,
        "cells": [{**combo, **meta} for combo, meta in zip(combinations(axes), cells, strict=True)],
    }
    save_image(grid_from_cells(axes, units), out, metadata)
    write_json(sidecar(out, ".json"), metadata)
    if not quiet:
        click.echo(f"wrote {out} ({len(units)} runs)", err=True)


def _sweep_values(field: str, text: str) -> list:
    """The values of one sweep option, each converted as the single-valued option would convert it."""
    kind = click_type(option_named(field))
    convert = parse_size if field == "size" else lambda v: kind.convert(v, None, None)
    try:
        return [convert(v) for v in split_values(field, text)]
    except click.BadParameter as exc:
        raise PainterlyError(f"{flag(field)}: {exc.format_message()}") from exc


@cli.command()
@click.argument("content", required=False)
@click.option(
    "--mode",
    type=MODES,
    default="stylize",
    show_default=True,
    help="What the run does.",
)
@run_options
def estimate(content: str | None, mode: str, quiet: bool, config_file: str | None, **values) -> None:
    """Estimated peak memory and seconds per iteration of a run at --size on this machine.

    Give CONTENT (or --size WxH) for the exact aspect; otherwise the output is square, the worst case for a
    long side. Nothing is loaded but the image header; time comes from a 0.1 s calibration convolution."""
    cfg, _ = make_config(mode, values, config_file)
    if content is not None:
        size = fit_size(*load_image(content).size, cfg.size)
    else:
        size = cfg.size if isinstance(cfg.size, tuple) else (cfg.size, cfg.size)
    device = pick_device(cfg.device)
    available, gflops = memory.available_bytes(device), memory.calibrate(device.type)
    path = None if memory.tiling_supported(cfg) else "plain"
    stages = stage_schedule(size, cfg, memory.smallest_side(cfg))
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

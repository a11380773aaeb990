"""The commands that make a picture: stylize, reconstruct, texture and demo."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import click

from painterly.api import Result, run
from painterly.cli import cli
from painterly.cli.options import (
    artifact_options,
    make_config,
    progress_bar,
    read_toml,
    run_options,
)
from painterly.config import RunConfig
from painterly.errors import ExitCode, PainterlyError
from painterly.jobs.options import JobOptions, executor_options
from painterly.media.outputs import IMAGE_SUFFIXES, check_output_path, save_image, sidecar, write_json
from painterly.media.recording import RunRecorder, Wanted


def run_and_save(  # noqa: ANN001
    cfg: RunConfig, out: Path, quiet: bool, content=None, style=None, wanted=None, mask=None, init=None
) -> Result:
    """One run with a progress bar, then the image, its JSON and the artifacts asked for, written atomically."""
    update, close = progress_bar(quiet, out.name)
    recorder = RunRecorder(out, wanted or Wanted(), cfg.optimize.iterations)
    try:
        result = run(cfg, content, style, mask=mask, init=init, callbacks=[update, *recorder.callbacks])
    finally:
        close()
    save_image(result.image, out, result.metadata)
    write_json(sidecar(out, ".json"), result.metadata)
    recorder.finish(result.image, result.metadata, result.losses, content, style)
    for note in result.metadata["notes"]:
        click.echo(f"painterly: {note}", err=True)
    if result.interrupted:
        # not KeyboardInterrupt: click turns that into a bare Abort and the message would be lost
        raise PainterlyError(f"interrupted: saved the best image so far to {out}", ExitCode.INTERRUPTED)
    if not quiet:
        click.echo(f"wrote {out} ({result.metadata['timings']['total_s']:.1f} s)", err=True)
    return result


def content_files(paths: Sequence[str]) -> list[Path]:
    """The photos named, folders expanded to their images (sorted)."""
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


def paint_files(  # noqa: ANN001
    cfg: RunConfig, content: Sequence[str], output: str, quiet: bool, job: JobOptions | None = None, *, style,
    wanted=None, mask=None, init=None,
) -> None:  # fmt: skip
    """One photo to ``output`` (a plain run), or several photos (or folders) into the folder ``output`` as a
    job (``jobs/``): one unit per photo on ``job``'s executor, a manifest beside the outputs so the same
    command resumes, a bad photo recorded and skipped, a summary, exit 1 if any failed."""
    if len(content) == 1 and not Path(content[0]).is_dir():
        run_and_save(cfg, check_output_path(output), quiet, content[0], style, wanted, mask, init)
        return
    out_dir = Path(output)
    if out_dir.suffix.lower() in IMAGE_SUFFIXES:
        raise PainterlyError(f"{output}: with several content images, -o must be a folder")
    files = content_files(content)
    (job or JobOptions()).paint_images(cfg, files, out_dir, style=style, mask=mask, init=init, wanted=wanted,
                                       quiet=quiet)  # fmt: skip


@cli.command()
@click.argument("content", nargs=-1, required=True)
@click.option("--style", "-s", required=True, multiple=True, help="Style image (a painting); repeat to mix.")
@click.option("--mask", multiple=True, help="Where to stylise (white) or keep the photo; once or per style.")
@click.option("--output", "-o", required=True, help="Output image, or a folder when CONTENT is several files/a folder.")
@run_options(blocks=("", "optimize", "fast"))
@artifact_options
@executor_options
def stylize(content: tuple[str, ...], style: tuple[str, ...], output: str, quiet: bool, config_file: str | None,
            wanted: Wanted, job: JobOptions, **values) -> None:  # fmt: skip
    """Paint CONTENT (one or more photos, or a folder) in the style of STYLE (several: mixed, or one per MASK)."""
    masks = list(values.pop("mask")) or None
    cfg, init = make_config("stylize", values, config_file)
    style = style[0] if len(style) == 1 else list(style)  # one painting stays a path, as before
    paint_files(cfg, content, output, quiet, job, style=style, wanted=wanted, mask=masks, init=init)


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
    cfg, init = make_config("reconstruct", values, config_file)
    run_and_save(cfg, check_output_path(output), quiet, content=image, wanted=wanted, init=init)


@cli.command()
@click.argument("style")
@click.option("--output", "-o", required=True, help="Output image.")
@run_options
@artifact_options
def texture(style: str, output: str, quiet: bool, config_file: str | None, wanted: Wanted, **values) -> None:
    """Synthesise a texture from STYLE's Gram matrices alone, starting from noise."""
    cfg, init = make_config("texture", values, config_file)
    run_and_save(cfg, check_output_path(output), quiet, style=style, wanted=wanted, init=init)


@cli.command()
@click.option("--output", "-o", default="demo.png", show_default=True, help="Output image.")
@run_options(blocks=("", "optimize", "fast"))
@artifact_options
def demo(output: str, quiet: bool, config_file: str | None, wanted: Wanted, **values) -> None:
    """Stylise a bundled photo (Grace Hopper, from matplotlib) as Van Gogh's Starry Night: one pass of Magenta's
    network at 512 px (seconds, offline); --method optimize runs the optimiser instead (100 iterations, 256 px)."""
    from importlib.resources import files

    import matplotlib.cbook

    given = {k: v for k, v in values.items() if v is not None}
    method = given.get("method") or (read_toml(config_file).get("method") if config_file else None) or "fast"
    defaults = {"method": "fast", "size": 512} if method == "fast" else {"size": 256, "iterations": 100}
    cfg, init = make_config("stylize", {**defaults, **given}, config_file)
    photo = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    painting = files("painterly") / "data" / "starry_night.jpg"
    run_and_save(cfg, check_output_path(output), quiet, str(photo), str(painting), wanted=wanted, init=init)

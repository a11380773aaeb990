"""``painterly fast``: one pass of a trained network (Magenta by default, or AdaIN), files or folders."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import click
from tqdm import tqdm

from painterly.cli import cli
from painterly.cli.options import make_config, run_options
from painterly.cli.run import content_files, paint_files, run_and_save
from painterly.config import RunConfig, options
from painterly.errors import PainterlyError
from painterly.fast.onepass import check_model_name
from painterly.media.outputs import IMAGE_SUFFIXES

# the shared fields and the fast block, less what one pass never reads (the method is this command's own;
# precision, seed and style scale steer only the optimiser)
FIELDS = tuple(
    o.name
    for o in options()
    if o.block in ("", "fast") and o.name not in ("mode", "method", "precision", "seed", "style_scale")
)


@cli.command()
@click.argument("content", nargs=-1, required=True)
@click.option("--style", "-s", required=True, multiple=True, help="Style image (a painting); repeat to mix.")
@click.option("--mask", multiple=True, help="Where each style goes (white); once or per style. Elsewhere: the photo.")
@click.option("--output", "-o", required=True, help="Output image, or a folder when CONTENT is several files/a folder.")
@run_options(fields=FIELDS)
def fast(content: tuple[str, ...], style: tuple[str, ...], output: str, quiet: bool, config_file: str | None,
         **values) -> None:  # fmt: skip
    """Paint CONTENT (photos or folders) in the style of STYLE in one pass of a trained network: Magenta's
    arbitrary-stylization model (offline, any size) or AdaIN. Seconds instead of minutes."""
    masks = list(values.pop("mask")) or None
    cfg, _ = make_config("stylize", {**values, "method": "fast"}, config_file)
    check_model_name(cfg.fast.model)
    styles = style[0] if len(style) == 1 else list(style)
    if len(content) == 1 and not Path(content[0]).is_dir():
        paint_files(cfg, content, output, quiet, style=styles, mask=masks)
    else:
        paint_folder(cfg, content, output, quiet, style=styles, mask=masks)


def paint_folder(cfg: RunConfig, content: Sequence[str], output: str, quiet: bool, **kwargs) -> None:
    """Several photos (or folders) into the folder ``output``, one progress bar over the photos (each is one
    step; the model and the style vector are loaded and computed once)."""
    out_dir = Path(output)
    if out_dir.suffix.lower() in IMAGE_SUFFIXES:
        raise PainterlyError(f"{output}: with several content images, -o must be a folder")
    files = content_files(content)
    out_dir.mkdir(parents=True, exist_ok=True)
    for f in tqdm(files, desc=out_dir.name, unit="img", disable=quiet, file=sys.stderr, dynamic_ncols=True):
        run_and_save(cfg, out_dir / f"{f.stem}.png", True, f, **kwargs)
    if not quiet:
        click.echo(f"wrote {len(files)} images to {out_dir}", err=True)

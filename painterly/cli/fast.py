"""``painterly fast``: one pass of a trained network (Magenta by default, or AdaIN), files or folders."""

from __future__ import annotations

import click

from painterly.cli import cli
from painterly.cli.options import make_config, run_options
from painterly.cli.run import paint_files
from painterly.config import options
from painterly.fast.onepass import check_model_name
from painterly.jobs.options import JobOptions, executor_options

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
@executor_options
def fast(content: tuple[str, ...], style: tuple[str, ...], output: str, quiet: bool, config_file: str | None,
         job: JobOptions, **values) -> None:  # fmt: skip
    """Paint CONTENT (photos or folders) in the style of STYLE in one pass of a trained network: Magenta's
    arbitrary-stylization model (offline, any size) or AdaIN. Seconds instead of minutes."""
    masks = list(values.pop("mask")) or None
    cfg, _ = make_config("stylize", {**values, "method": "fast"}, config_file)
    check_model_name(cfg.fast.model)
    styles = style[0] if len(style) == 1 else list(style)
    paint_files(cfg, content, output, quiet, job, style=styles, mask=masks)  # a folder: a job (jobs/)

"""The video command: paint every frame of a clip, with optical-flow temporal consistency."""

from __future__ import annotations

import functools
import sys
from fractions import Fraction
from pathlib import Path

import click
from tqdm import tqdm

from painterly.cli import cli
from painterly.cli.options import make_config, merged_options, run_options
from painterly.errors import ExitCode, PainterlyError
from painterly.jobs.options import JobOptions, executor_options


@cli.command()
@click.argument("source", metavar="IN")
@click.option("--output", "-o", required=True, help="Video (.mp4 .mov .mkv .webm .avi), .gif, .webp, or a folder.")
@click.option("--style", "-s", required=True, multiple=True, help="Style image (a painting); repeat to mix.")
@click.option("--mask", multiple=True, help="Where to stylise (white) or keep the frame; once or per style.")
@click.option(
    "--temporal",
    type=click.FloatRange(min=0),
    help="Temporal consistency, 0 = every frame on its own. fast: blend weight 0..1 [0.8]; optimize: weight "
    "of the temporal loss term (Ruder et al. 2016) [30].",
)
@click.option("--resume", is_flag=True, help="Continue an interrupted run from its last finished frame.")
@click.option("--start", type=click.FloatRange(min=0), default=0.0, help="First second to paint. [0]")
@click.option("--duration", type=click.FloatRange(min=0, min_open=True), help="Seconds to paint. [to the end]")
@click.option("--fps", type=click.FloatRange(min=0, min_open=True), help="Frame rate of a folder of frames. [25]")
@click.option("--flow", type=click.Choice(["auto", "dis", "raft"]), default="auto", help="Optical flow. [auto]")
@run_options(blocks=("", "optimize", "fast"))
@executor_options
def video(source: str, output: str, style: tuple[str, ...], mask: tuple[str, ...], temporal: float | None,
          resume: bool, start: float, duration: float | None, fps: float | None, flow: str, quiet: bool,
          config_file: str | None, job: JobOptions, **values) -> None:  # fmt: skip
    """Paint every frame of IN (a video, an animated GIF/WebP or a folder of frames) in the style of STYLE.

    Same frame rate, audio kept where the output takes it. --size defaults to the input's size; --method
    defaults to fast."""
    from painterly.jobs.video import TEMPORAL_DEFAULT, api_painter, state_dir, stylize_video
    from painterly.media.video import check_video_output, open_video

    merged = merged_options(values, config_file)
    size = merged.pop("size", None)
    merged.setdefault("method", "fast")
    cfg, init = make_config("stylize", merged, None)
    if init is not None:
        raise PainterlyError("--init PATH does not apply to video (each frame starts from the previous one)")
    src = open_video(source, Fraction(fps).limit_denominator(1001) if fps else None)
    out = check_video_output(output)
    if job.executor != "local":  # segments on workers, joined with the audio (jobs/segments.py)
        return _segments_job(job, source, out, cfg, style, mask, temporal, size, fps, flow, start, duration, quiet)
    painter = api_painter(cfg, list(style), mask=list(mask) or None, temporal=temporal)
    weight = TEMPORAL_DEFAULT if temporal is None else temporal
    settings = {"config": cfg, "style": [str(Path(s).resolve()) for s in style], "mask": list(mask), "flow": flow}
    bar = tqdm(desc=out.name, disable=quiet, file=sys.stderr, unit="frame", dynamic_ncols=True)

    def update(p) -> None:  # noqa: ANN001
        bar.total = p.total
        bar.update(1)

    try:
        result = stylize_video(src, out, painter, blend=cfg.method == "fast", temporal=weight, size=size,
                               start=start, duration=duration, resume=resume, settings=settings, flow=flow,
                               on_frame=update)  # fmt: skip
    except (KeyboardInterrupt, PainterlyError) as exc:
        if getattr(exc, "exit_code", ExitCode.INTERRUPTED) != ExitCode.INTERRUPTED:
            raise
        raise PainterlyError(
            f"interrupted: finished frames are kept in {state_dir(out)}; run again with --resume to continue",
            ExitCode.INTERRUPTED,
        ) from None
    finally:
        bar.close()
    for note in result.notes:
        click.echo(f"painterly: {note}", err=True)
    if not quiet:
        click.echo(f"wrote {out} ({result.frames} frames, {result.fps:.2f} frames/s)", err=True)


def _segments_job(job: JobOptions, source: str, out: Path, cfg, style, mask, temporal, size, fps, flow,  # noqa: ANN001
                  start: float, duration: float | None, quiet: bool) -> None:  # fmt: skip
    """``video --executor ray``: the clip cut into segments of 250 frames, each painted by a worker after 8
    warm-up frames; resumable from ``.OUT.segments/`` (its manifest) until the join succeeds."""
    from painterly.jobs.video import TEMPORAL_DEFAULT, api_painter

    if start or duration is not None:
        raise PainterlyError(f"--start and --duration are not available with --executor {job.executor} yet")
    styles, masks = [str(Path(s).resolve()) for s in style], [str(Path(m).resolve()) for m in mask] or None
    video = {"blend": cfg.method == "fast", "temporal": TEMPORAL_DEFAULT if temporal is None else temporal,
             "size": size, "flow": flow}  # fmt: skip
    make_paint = functools.partial(api_painter, cfg, styles, mask=masks, temporal=temporal)  # built in each worker
    rate = Fraction(fps).limit_denominator(1001) if fps else None
    frames = job.paint_video(source, out, make_paint, cfg, video=video, fps=rate, style=styles, mask=masks,
                             quiet=quiet)  # fmt: skip
    if not quiet:
        click.echo(f"wrote {out} ({frames} frames)", err=True)

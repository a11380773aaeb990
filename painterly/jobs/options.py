"""The CLI side of jobs: ``--executor``, ``--ray-address``, ``--workers``, ``--force`` on any command with many
inputs, and ``JobOptions.run``, which drives a job with a progress bar and a summary line.

This module is the command line's (it prints, with click); the library entry point is ``units.run_job``."""

from __future__ import annotations

import functools
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import click
from tqdm import tqdm

from painterly.config import RunConfig
from painterly.errors import ExitCode, PainterlyError
from painterly.jobs.batch import ImagePainter, image_units
from painterly.jobs.local import local_executor
from painterly.jobs.ray import ray_executor
from painterly.jobs.units import MANIFEST_NAME, Outcome, Summary, Unit, run_job
from painterly.media.recording import Wanted

SEGMENT_FRAMES, WARMUP_FRAMES = 250, 8  # as jobs/segments.py (not imported here: it needs the video extra)

Painter = Callable[[], Callable[[Unit], None]]  # builds, in the worker, what paints one unit


@dataclass(frozen=True)
class JobOptions:
    """How to run a job: where (``executor``, ``ray_address``, ``workers``) and whether to redo done units."""

    executor: str = "local"
    ray_address: str | None = None
    workers: int | None = None
    force: bool = False

    def executor_for(self, painter: Painter) -> Callable:
        if self.executor == "local":
            return local_executor(painter)
        return ray_executor(painter, address=self.ray_address, workers=self.workers)

    def run(self, units: Sequence[Unit], folder: str | Path, painter: Painter, *, quiet: bool, what: str) -> Summary:
        """Run the job with a units bar (done, failed, per second, ETA) and print one summary line; a
        ``PainterlyError`` (exit 1) naming the first failures if any unit failed. An interrupted job (Ctrl-C,
        or a run that was stopped) ends in ``PainterlyError`` with ``ExitCode.INTERRUPTED``: the units not
        finished stay pending in the manifest, and the same command continues with them."""
        bars: list[tqdm] = []

        def plan(todo: int, skipped: int) -> None:
            if skipped and not quiet:
                click.echo(f"{skipped} of {len(units)} {what} already done (--force redoes them)", err=True)
            bars.append(tqdm(total=todo, desc=what, unit=what, disable=quiet, file=sys.stderr, dynamic_ncols=True))

        counts = {"done": 0, "failed": 0}

        def progress(outcome: Outcome) -> None:
            counts[outcome.status] += 1
            if outcome.status == "failed":
                bars[0].set_postfix_str(f"failed={counts['failed']}", refresh=False)
            bars[0].update(1)

        try:
            summary = run_job(units, folder, self.executor_for(painter), force=self.force, on_outcome=progress,
                              on_plan=plan)  # fmt: skip
        except (KeyboardInterrupt, PainterlyError) as exc:
            if isinstance(exc, PainterlyError) and exc.exit_code != ExitCode.INTERRUPTED:
                raise
            raise PainterlyError(
                f"interrupted after {counts['done']} {what} done, {counts['failed']} failed; the others stay pending "
                f"in {Path(folder) / MANIFEST_NAME}: the same command continues with them",
                ExitCode.INTERRUPTED,
            ) from None
        finally:
            for bar in bars:
                bar.close()
        if not quiet:
            click.echo(f"{what}: {summary.line()}; manifest in {folder}", err=True)
        if summary.failed:
            first = "; ".join(f"{name}: {error}" for name, error in summary.failures[:3])
            more = f" (and {summary.failed - 3} more)" if summary.failed > 3 else ""
            raise PainterlyError(f"{summary.failed} of {summary.total} failed: {first}{more}", ExitCode.RUNTIME)
        return summary

    def paint_images(self, cfg: RunConfig, files: Sequence[Path], out_dir: Path, *, style, mask=None, init=None,  # noqa: ANN001
                     wanted: Wanted | None = None, quiet: bool = False) -> Summary:  # fmt: skip
        """Many photos, one config: ``out_dir/STEM.png`` each (with its JSON, losses and the ``wanted``
        artifacts), every run from ``init`` when given; the manifest in ``out_dir``."""
        units = image_units(files, cfg, style, out_dir, mask=mask, init=init)
        painter = functools.partial(ImagePainter, cfg, wanted=wanted)
        return self.run(units, out_dir, painter, quiet=quiet, what="images")

    def paint_video(
        self,
        source: str | Path,
        out: Path,
        make_paint: Painter,
        cfg: RunConfig,
        *,
        video: dict,
        segment_frames: int = SEGMENT_FRAMES,
        warmup: int = WARMUP_FRAMES,
        fps=None,  # noqa: ANN001
        style=None,
        mask=None,
        quiet: bool = False,
    ) -> int:  # noqa: ANN001 - fmt: skip
        """A clip cut into segments painted by the workers (``jobs/segments.py``), then joined into ``out``;
        the segments and the manifest stay in ``.OUT.segments/`` until the join succeeds. Frame count."""
        from painterly.jobs.segments import SegmentPainter, assemble, plan_segments, segment_units
        from painterly.media.video import check_video_output, open_video

        out = check_video_output(out)
        folder = out.with_name(f".{out.name}.segments")
        segments = plan_segments(open_video(source, fps).frame_count, segment_frames, warmup)
        units = segment_units(source, cfg, segments, folder, video, style, mask)
        self.run(units, folder, functools.partial(SegmentPainter, make_paint, fps), quiet=quiet, what="segments")
        frames = assemble(source, [u.output for u in units], out, fps)
        shutil.rmtree(folder, ignore_errors=True)
        return frames


def executor_options(command: Callable) -> Callable:
    """Add --executor, --ray-address, --workers and --force; the command receives them as ``job``."""

    @functools.wraps(command)
    def wrapper(*args, executor: str, ray_address: str | None, workers: int | None, force: bool, **kwargs) -> None:
        if ray_address is not None:
            executor = "ray"  # an address means the cluster
        if executor == "ray":
            from painterly.jobs.ray import import_ray

            import_ray()  # the one-line error naming the extra, before anything runs
        return command(*args, job=JobOptions(executor, ray_address, workers, force), **kwargs)

    for option in reversed([
        click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
                     help='Where many inputs run: this process, or Ray workers (pip install "painterly[cluster]").'),
        click.option("--ray-address", help="Ray cluster to join (auto, HOST:6379, ray://HOST:10001); implies "
                     "--executor ray. [start or join a local Ray]"),
        click.option("--workers", type=click.IntRange(min=1),
                     help="Ray workers. [one per GPU; without GPUs one per node, using all its cores]"),
        click.option("--force", is_flag=True, help="Redo units the manifest records as done (default: resume)."),
    ]):  # fmt: skip
        wrapper = option(wrapper)
    return wrapper

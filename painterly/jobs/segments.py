"""Long videos across workers: a clip cut into segments (units), each painted after a few warm-up frames,
then reassembled in order with the audio.

Segment k owns frames [first, stop). Its worker starts painting ``warmup`` frames earlier and drops those, so
by ``first`` the temporal step (flow-warped previous result, ``jobs/video.py``) has a history, as in one
process; with warmup = 0 the first frame of every segment is painted on its own and may jump. How much of the
seam is left is measured by ``seam_errors``: Lai et al.'s warping error at the seams against inside."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

from painterly.config import RunConfig
from painterly.errors import PainterlyError
from painterly.jobs.units import Unit, absolute
from painterly.jobs.video import Painter, stylize_video
from painterly.media.video import VideoWriter, open_video

SEGMENT_FRAMES = 250  # 10 s at 25 fps: long enough that warm-up (default 8 frames) costs ~3 %
WARMUP_FRAMES = 8


@dataclass(frozen=True)
class Segment:
    """Frames [first, stop) of the clip (stop None: to the end), painted from ``first - warmup``."""

    index: int
    first: int
    stop: int | None
    warmup: int


def plan_segments(frame_count: int, segment_frames: int = SEGMENT_FRAMES, warmup: int = WARMUP_FRAMES) -> list[Segment]:
    """Cut ``frame_count`` frames into segments of ``segment_frames`` (the last one runs to the end)."""
    if segment_frames < 1 or warmup < 0:
        raise PainterlyError(f"segments of {segment_frames} frames with {warmup} warm-up frames: need >= 1 and >= 0")
    starts = list(range(0, max(1, frame_count), segment_frames))
    stops: list[int | None] = [*starts[1:], None]
    return [Segment(k, a, b, min(warmup, a)) for k, (a, b) in enumerate(zip(starts, stops, strict=True))]


def segment_units(
    source: str | Path,
    cfg: RunConfig,
    segments: Sequence[Segment],
    folder: Path,
    video: dict | None = None,
    style: str | Sequence[str] | None = None,
    mask: Sequence[str] | None = None,
) -> list[Unit]:
    """One unit per segment, written to ``folder/segment_NNNNN`` (a folder of PNG frames). ``video``:
    ``stylize_video``'s options (blend, temporal, size, flow); they travel in the unit (and its hash)."""
    style = absolute(style) if style is None or isinstance(style, str | Path) else tuple(map(absolute, style))
    mask = tuple(map(absolute, mask)) if mask else None
    folder = Path(absolute(folder))
    return [
        Unit(f"segment_{s.index:05d}", cfg, folder / f"segment_{s.index:05d}", absolute(source), style, mask,
             {"first": s.first, "stop": s.stop, "warmup": s.warmup, **(video or {})})
        for s in segments
    ]  # fmt: skip


class SegmentPainter:
    """In a worker: builds the frame painter once (loading its model), then paints each segment unit into its
    folder, warm-up frames dropped."""

    def __init__(self, make_paint: Callable[[], Painter], fps: Fraction | None = None) -> None:
        self.paint, self.fps = make_paint(), fps

    def __call__(self, unit: Unit) -> None:
        src = open_video(unit.content, self.fps)
        video = dict(unit.params)
        first, stop, warmup = video.pop("first"), video.pop("stop"), video.pop("warmup")
        rate, begin = float(src.rate), first - warmup
        duration = None if stop is None else (stop - begin) / rate
        work = unit.output.with_name(f".{unit.output.name}_work")  # no suffix: a folder output
        shutil.rmtree(work, ignore_errors=True)
        stylize_video(src, work, self.paint, start=begin / rate, duration=duration, **video)
        for frame in sorted(work.iterdir())[:warmup]:
            frame.unlink()
        shutil.rmtree(unit.output, ignore_errors=True)
        os.replace(work, unit.output)  # a segment's folder is there whole, or not at all


def frame_files(folders: Sequence[Path]) -> list[Path]:
    return [f for folder in folders for f in sorted(folder.glob("*.png"))]


def assemble(source: str | Path, folders: Sequence[Path], out: str | Path, fps: Fraction | None = None) -> int:
    """Write the segments' frames, in order, to ``out`` with the source's frame rate and audio; frame count."""
    src = open_video(source, fps)
    writer = VideoWriter(out, src.rate, src)
    with writer:
        for f in frame_files(folders):
            writer.write(np.asarray(Image.open(f).convert("RGB")))
        writer.close()
    return writer.count


def seam_errors(source: str | Path, folders: Sequence[Path], fps: Fraction | None = None) -> tuple[float, float]:
    """(mean warping error over the frame pairs that cross a seam, mean over the pairs inside segments), with
    Lai et al.'s E (flow and mask from the input frames, ``engine/flow.WarpingError``)."""
    from painterly.engine.flow import WarpingError

    src = open_video(source, fps)
    files = frame_files(folders)
    seams = set(np.cumsum([len(list(f.glob("*.png"))) for f in folders])[:-1].tolist())  # first frame of each
    metric = WarpingError()
    for frame, file in zip(src.frames(), files, strict=False):
        out = np.asarray(Image.open(file).convert("RGB"))
        if frame.shape != out.shape:  # painted at another --size
            frame = np.asarray(Image.fromarray(frame).resize((out.shape[1], out.shape[0]), Image.Resampling.BOX))
        metric.update(frame, out)
    # values[t - 1] compares frames t - 1 and t (0-based t)
    at = [v for t, v in enumerate(metric.values, 1) if t in seams]
    inside = [v for t, v in enumerate(metric.values, 1) if t not in seams]
    return float(np.mean(at)) if at else 0.0, float(np.mean(inside)) if inside else 0.0

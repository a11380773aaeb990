"""What a run can show besides its image: snapshots, an evolution GIF, the loss history as CSV and a plot.

Everything here works in memory (PIL images, bytes, matplotlib figures) so a notebook can use it without
files; ``recording.py`` writes it next to a CLI run's output::

    snaps = Snapshots(every=20)
    result = painterly.run(cfg, content, style, callbacks=[snaps])
    snaps.add_final(result.image, len(result.losses))  # the result as the last frame
    Image.open(io.BytesIO(gif_bytes([s.image for s in snaps.frames])))
    loss_figure(result.losses)                          # a matplotlib Figure
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from PIL import Image

from painterly.events import Step
from painterly.media.images import fit_size, resize, to_pil

if TYPE_CHECKING:
    from matplotlib.figure import Figure  # imported lazily: matplotlib takes a second to import

LOSS_COLUMNS = ("iteration", "total", "content", "style", "tv", "elapsed")
GIF_TARGET_FRAMES = 30  # frames taken when only --gif is given
GIF_MAX_FRAMES = 100  # more snapshots than this are thinned evenly for the GIF
GIF_MAX_SIDE = 512  # GIF frames are scaled down to this long side: 100 frames at 2048 px would be ~1 GB
GIF_SECONDS = 4.0  # the evolution plays in about this long...
GIF_FRAME_MS = (60, 250)  # ...with each frame shown for at least/most this long
GIF_FINAL_MS = 1500  # and the result held before looping


@dataclass(frozen=True)
class Snapshot:
    """The image a run evaluated at ``iteration`` (1-based, like ``Result.losses``) and its losses."""

    iteration: int
    image: Image.Image
    losses: dict[str, float]


class Snapshots:
    """A callback for ``api.run``: at iteration 1 (the starting image) and every ``every`` iterations,
    converts the evaluated image to PIL and keeps it in ``frames`` and/or hands it to ``on_snapshot``.

    ``keep=False`` only calls ``on_snapshot`` (the CLI writes frames to disk without holding them).
    ``max_side`` scales kept frames down, to bound memory for long runs."""

    def __init__(
        self,
        every: int,
        *,
        keep: bool = True,
        on_snapshot: Callable[[Snapshot], None] | None = None,
        max_side: int | None = None,
    ) -> None:
        if every < 1:
            raise ValueError(f"snapshot interval must be >= 1, got {every}")
        self.every, self.keep, self.on_snapshot, self.max_side = every, keep, on_snapshot, max_side
        self.frames: list[Snapshot] = []

    def __call__(self, p: Step) -> None:
        if p.step == 1 or p.step % self.every == 0:
            self._add(Snapshot(p.step, to_pil(p.image()), dict(p.losses)))

    def add_final(self, image: Image.Image, iteration: int, losses: dict[str, float] | None = None) -> Snapshot:
        """Append the run's result as the last frame, numbered by the last iteration run (replacing the
        snapshot of that iteration: the result is the best image seen, which may be an earlier one)."""
        snap = Snapshot(iteration, image.convert("RGB"), dict(losses or {}))
        if self.frames and self.frames[-1].iteration == iteration:
            self.frames.pop()
        self._add(snap)
        return snap

    def _add(self, snap: Snapshot) -> None:
        if self.on_snapshot is not None:
            self.on_snapshot(snap)
        if self.keep:
            image = snap.image
            if self.max_side and max(image.size) > self.max_side:
                image = resize(image, fit_size(*image.size, self.max_side))
            self.frames.append(Snapshot(snap.iteration, image, snap.losses))


def evolution_every(iterations: int, save_every: int | None = None) -> int:
    """Snapshot interval for the GIF and the report's strip: the ``save_every`` snapshots, thinned to at most
    ``GIF_MAX_FRAMES``; without ``save_every``, about ``GIF_TARGET_FRAMES`` frames over the run."""
    if save_every is None:
        return max(1, math.ceil(iterations / GIF_TARGET_FRAMES))
    return save_every * max(1, math.ceil(iterations / save_every / GIF_MAX_FRAMES))


def gif_frame_ms(n_frames: int) -> int:
    """Per-frame time so the evolution plays in about ``GIF_SECONDS``, within ``GIF_FRAME_MS``."""
    low, high = GIF_FRAME_MS
    return int(min(high, max(low, 1000 * GIF_SECONDS / max(1, n_frames - 1))))


def gif_bytes(frames: Sequence[Image.Image], frame_ms: int | None = None, final_ms: int = GIF_FINAL_MS) -> bytes:
    """An endlessly looping GIF of ``frames``, the last one held ``final_ms``. All frames take the last one's
    size (a coarse-to-fine run's first frames are smaller); each gets its own adaptive 256-colour palette."""
    if not frames:
        raise ValueError("a GIF needs at least one frame")
    size = frames[-1].size
    if max(size) > GIF_MAX_SIDE:
        size = fit_size(*size, GIF_MAX_SIDE)
    images = [resize(f.convert("RGB"), size) for f in frames]
    frame_ms = frame_ms or gif_frame_ms(len(images))
    durations = [frame_ms] * (len(images) - 1) + [final_ms]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], duration=durations, loop=0)
    return buffer.getvalue()


def losses_csv(history: Sequence[dict[str, float]]) -> str:
    """``Result.losses`` as CSV: a header, then one row per iteration with the columns ``LOSS_COLUMNS``
    (loss terms weighted, as optimised; elapsed in seconds). Terms added later follow as extra columns."""
    extra = sorted({k for record in history for k in record} - set(LOSS_COLUMNS))
    columns = [*LOSS_COLUMNS, *extra]
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(columns)
    for record in history:
        writer.writerow([int(record["iteration"]), *(_csv_number(record.get(k, 0.0)) for k in columns[1:])])
    return text.getvalue()


def _csv_number(value: float) -> str:
    """Integers (e.g. a coarse-to-fine stage number) as integers, floats at full precision."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else repr(float(value))


def loss_figure(history: Sequence[dict[str, float]], title: str = "losses") -> Figure:
    """A matplotlib ``Figure`` (Agg canvas, no pyplot state): one curve per loss term against the
    iteration, log scale. Terms that are zero throughout (e.g. tv with ``tv_weight=0``) are left out."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 3.6), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    steps = [r["iteration"] for r in history]
    for term, style in (("total", "k-"), ("content", "C0-"), ("style", "C1-"), ("tv", "C2-")):
        values = [r.get(term, 0.0) for r in history]
        if any(v > 0 and math.isfinite(v) for v in values):
            ax.plot(steps, [v if v > 0 and math.isfinite(v) else math.nan for v in values], style, label=term, lw=1.5)
    for prev, record in zip(history, history[1:], strict=False):  # coarse-to-fine: mark where each stage starts
        if record.get("stage", 1) != prev.get("stage", 1):
            ax.axvline(record["iteration"] - 0.5, color="0.6", ls="--", lw=1)
    ax.set_yscale("log")
    totals = [r["total"] for r in history if r.get("total", 0) > 0 and math.isfinite(r["total"])]
    if totals:  # a term near 0 (content at iteration 1, which starts from the photo) would squash the rest
        ax.set_ylim(bottom=max(ax.get_ylim()[0], 1e-4 * min(totals)))
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss (weighted)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    if ax.lines:
        ax.legend()
    return fig


def loss_plot_png(history: Sequence[dict[str, float]], title: str = "losses") -> bytes:
    """``loss_figure`` rendered to PNG bytes (640x360 px)."""
    buffer = io.BytesIO()
    loss_figure(history, title).savefig(buffer, format="png")
    return buffer.getvalue()

"""Files a CLI run writes next to its image ``OUT`` (``STEM`` = OUT without its suffix).

Always ``STEM_losses.csv``; on request ``STEM_frames/NNNN.png`` (--save-every), ``STEM.gif`` (--gif),
``STEM_losses.png`` (--plot), ``STEM_sheet.png`` (--sheet) and ``STEM.html`` (--report). Every file is
written atomically (outputs.py), so an interrupted run never leaves half a file."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from painterly.events import Step
from painterly.media import layout
from painterly.media.artifacts import (
    GIF_MAX_SIDE,
    Snapshot,
    Snapshots,
    evolution_every,
    gif_bytes,
    loss_plot_png,
    losses_csv,
)
from painterly.media.images import ImageSource, load_image, split_alpha
from painterly.media.outputs import atomic_write_bytes, save_image, sidecar
from painterly.media.report import report_html

_FRAME_NAME = re.compile(r"^\d{4,}\.png$")


@dataclass(frozen=True)
class Wanted:
    """Which optional files to write: the CLI's --save-every, --gif, --plot, --sheet and --report."""

    save_every: int | None = None
    gif: bool = False
    plot: bool = False
    sheet: bool = False
    report: bool = False


def frames_dir(out: Path) -> Path:
    return sidecar(out, "_frames")


class RunRecorder:
    """Built before a run (its ``callbacks`` go to ``api.run``); ``finish`` writes the files after it."""

    def __init__(self, out: Path, wanted: Wanted, iterations: int) -> None:
        self.out, self.wanted = out, wanted
        self.frame_files: Snapshots | None = None
        self.evolution: Snapshots | None = None  # frames for the GIF and the report's strip, kept in memory
        if wanted.save_every:
            _clear_frames(frames_dir(out))
            self.frame_files = Snapshots(wanted.save_every, keep=False, on_snapshot=self._write_frame)
        if wanted.gif or wanted.report:
            every = evolution_every(iterations, wanted.save_every)
            self.evolution = Snapshots(every, max_side=GIF_MAX_SIDE)

    @property
    def callbacks(self) -> list[Callable[[Step], None]]:
        return [s for s in (self.frame_files, self.evolution) if s is not None]

    def _write_frame(self, snap: Snapshot) -> None:
        frames_dir(self.out).mkdir(exist_ok=True)  # here, not before the run: a bad input leaves no empty folder
        save_image(snap.image, frames_dir(self.out) / f"{snap.iteration:04d}.png")

    def finish(
        self,
        image: Image.Image,
        metadata: dict,
        history: Sequence[dict],  # the run's loss records (Result.losses)
        content: ImageSource | None = None,
        style: ImageSource | Sequence[ImageSource] | None = None,
    ) -> list[Path]:
        """Write the requested files for a finished (or interrupted) run; return their paths."""
        out, wanted, written = self.out, self.wanted, []

        def write(suffix: str, data: bytes) -> None:
            path = sidecar(out, suffix)
            atomic_write_bytes(path, data)
            written.append(path)

        for snaps in (self.frame_files, self.evolution):
            if snaps is not None and history:  # the result is the best image seen: label it with the best loss
                snaps.add_final(image, history[-1]["iteration"], {"total": min(h["total"] for h in history)})
        if self.frame_files is not None:
            written.append(frames_dir(out))
        if history:  # a one-pass run has no losses: no empty table beside its picture
            write("_losses.csv", losses_csv(history).encode("utf-8"))
        plot = loss_plot_png(history, f"{out.name}: losses") if (wanted.plot or wanted.report) and history else None
        if wanted.plot and plot:
            write("_losses.png", plot)
        gif = gif_bytes([s.image for s in self.evolution.frames]) if wanted.gif and self.evolution.frames else None
        if gif:
            write(".gif", gif)
        inputs = input_panels(content, style) if wanted.sheet or wanted.report else []
        if wanted.sheet:
            save_image(layout.sheet([*inputs, ("result", image)], height=image.height), sidecar(out, "_sheet.png"))
            written.append(sidecar(out, "_sheet.png"))
        if wanted.report:
            links = [(p.name, p.name + ("/" if p.is_dir() else "")) for p in [out, *written] if p.exists()]
            page = report_html(
                metadata,
                image,
                title=f"painterly: {out.name}",
                inputs=inputs,
                frames=self.evolution.frames,
                gif=gif,
                loss_plot=plot,
                links=links,
            )
            write(".html", page.encode("utf-8"))
        return written


def input_panels(content: ImageSource | None, style: ImageSource | Sequence[ImageSource] | None) -> list:
    """[("content: NAME", image), ("style: NAME", image), ...] for the sheet and the report."""
    styles = list(style) if isinstance(style, list | tuple) else [style]
    panels = [(f"content: {_name(content, 'photo')}", content)] if content is not None else []
    panels += [(f"style: {_name(s, 'painting')}", s) for s in styles if s is not None]
    return [(caption, split_alpha(load_image(source))[0]) for caption, source in panels]


def _name(source: ImageSource, fallback: str) -> str:
    return Path(source).name if isinstance(source, str | Path) else fallback


def _clear_frames(folder: Path) -> None:
    """Remove the numbered frames an earlier run left in ``folder`` (they would mix with ours)."""
    if not folder.is_dir():
        return
    for f in folder.iterdir():
        if _FRAME_NAME.match(f.name) and f.is_file():
            f.unlink()

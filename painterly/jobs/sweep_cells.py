"""Sweep cells as units: each combination of a sweep is one unit (so a sweep resumes, and runs on Ray);
the grid is laid out from the cells' files when they are all done."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from painterly.config import Mode
from painterly.jobs.sweep import configs, label, sweep_grid
from painterly.jobs.units import Unit, absolute


def cell_units(mode: Mode, axes: dict[str, Sequence], folder: Path, content=None, style=None, *,  # noqa: ANN001
               base: dict | None = None) -> list[Unit]:  # fmt: skip
    """One unit per combination (``combinations`` order), written to ``folder/cell_NNN.png``; the unit's
    ``params`` keep its combination (for the manifest and the grid's labels)."""
    style = absolute(style) if style is None or isinstance(style, str | Path) else tuple(map(absolute, style))
    folder = Path(absolute(folder))
    return [
        Unit(f"cell_{k:03d}.png", cfg, folder / f"cell_{k:03d}.png", absolute(content), style,
             params={"combo": label(combo)})
        for k, (combo, cfg) in enumerate(configs(mode, dict(base or {}), axes))
    ]  # fmt: skip


def grid_from_cells(axes: dict[str, Sequence], units: Sequence[Unit]) -> Image.Image:
    """The labelled grid of the finished cells, captioned with each run's final loss and time (its JSON)."""
    images, captions = [], []
    for unit in units:
        with Image.open(unit.output) as im:
            images.append(im.convert("RGB"))
        meta = json.loads(unit.output.with_suffix(".json").read_text())
        loss = meta.get("final_losses", {}).get("total")
        seconds = meta.get("timings", {}).get("total_s", 0.0)
        captions.append(f"loss {loss:.3g} · {seconds:.1f} s" if loss is not None else f"{seconds:.1f} s")
    return sweep_grid(axes, images, captions)

"""Parameter sweeps: run every combination of a few options' values and lay the results out as one grid.

The last swept option runs along the columns; the others (their product) along the rows, so the classic
content-weight x style-weight figure is ``axes={"content_weight": [1, 5, 25], "style_weight": [1e2, 1e3]}``."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from PIL import Image

from painterly.api import Callback, Result, run
from painterly.config import Mode, RunConfig, build_config
from painterly.errors import ExitCode, PainterlyError
from painterly.media import layout
from painterly.media.images import ImageSource

# RunConfig fields that can be swept, and what separates their values on the command line. Adding an
# option is one line here; options whose own value is a comma list are separated by ";".
SWEEPABLE: dict[str, str] = {
    "preset": ",",
    "size": ",",
    "style_scale": ",",
    "content_weight": ",",
    "style_weight": ",",
    "tv_weight": ",",
    "strength": ",",
    "style_blend": ";",  # e.g. --style-blend "0.8,0.2;0.5,0.5;0.2,0.8"
    "content_layers": ";",
    "style_layers": ";",
    "backbone": ",",
    "weights": ",",
    "pooling": ",",
    "optimizer": ",",
    "lr": ",",
    "iterations": ",",
    "init": ",",
    "seed": ",",
}


@dataclass
class Sweep:
    """``cells[i]`` is the run with options ``combos[i]``; ``grid`` is the labelled figure."""

    axes: dict[str, list]
    combos: list[dict]
    cells: list[Result]
    grid: Image.Image


def split_values(field: str, text: str) -> list[str]:
    """``"1,5,25"`` -> ["1", "5", "25"] (``";"`` for list-valued options such as content_layers)."""
    if field not in SWEEPABLE:
        raise PainterlyError(f"--{field.replace('_', '-')} cannot be swept; sweepable: {', '.join(SWEEPABLE)}")
    values = [v.strip() for v in text.split(SWEEPABLE[field]) if v.strip()]
    if not values:
        raise PainterlyError(f"--{field.replace('_', '-')}: no values given")
    return values


def combinations(axes: dict[str, Sequence]) -> list[dict]:
    """Every combination, the last axis varying fastest (row-major order of the grid)."""
    names = list(axes)
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*(axes[n] for n in names))]


def configs(mode: Mode, base: dict, axes: dict[str, Sequence]) -> list[tuple[dict, RunConfig]]:
    """(combo, RunConfig) for every combination; builds all first so a bad value fails before any run."""
    return [(combo, build_config(mode, {**base, **combo})) for combo in combinations(axes)]


def format_value(value: object) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple) and all(isinstance(v, int) for v in value):
        return "x".join(map(str, value))  # a WxH size
    if isinstance(value, tuple):
        return ",".join(v if isinstance(v, str) else f"{v[0]}:{v[1]:g}" for v in value)
    return str(value)


def label(combo: dict) -> str:
    return ", ".join(f"{k.replace('_', '-')}={format_value(v)}" for k, v in combo.items())


def sweep_grid(axes: dict[str, Sequence], images: Sequence[Image.Image], captions: Sequence[str] = ()) -> Image.Image:
    """``images`` in ``combinations(axes)`` order as a grid: rows and columns labelled by their values."""
    names = list(axes)
    *row_axes, col_axis = names
    n_cols = len(axes[col_axis])
    rows = [list(images[i : i + n_cols]) for i in range(0, len(images), n_cols)]
    row_labels = [label(c) for c in combinations({n: axes[n] for n in row_axes})] if row_axes else [""]
    col_labels = [label({col_axis: v}) for v in axes[col_axis]]
    cell_captions = [list(captions[i : i + n_cols]) for i in range(0, len(captions), n_cols)] if captions else None
    title = " x ".join(f"{n.replace('_', '-')} ({'columns' if n == col_axis else 'rows'})" for n in names)
    return layout.grid(rows, row_labels, col_labels, cell_captions=cell_captions, title=f"sweep: {title}")


def run_sweep(
    mode: Mode,
    axes: dict[str, Sequence],
    content: ImageSource | None = None,
    style: ImageSource | None = None,
    *,
    base: dict | None = None,
    callbacks: Iterable[Callback] = (),
    on_cell: Callable[[dict, Result], None] | None = None,
    cancel: object | None = None,
) -> Sweep:
    """Run ``mode`` for every combination of ``axes`` (RunConfig field -> values) on top of ``base`` options.

    Backbones are loaded once (``api.backbone_for`` caches them); ``cancel`` (a ``threading.Event``) stops the
    sweep at the next step."""
    if not axes:
        raise PainterlyError("nothing to sweep: give at least one option several values")
    planned = configs(mode, dict(base or {}), axes)
    callbacks = list(callbacks)
    cells = []
    for combo, cfg in planned:
        result = run(cfg, content, style, callbacks=callbacks, cancel=cancel)  # backbones are cached by api
        cells.append(result)
        if on_cell is not None:
            on_cell(combo, result)
        if result.interrupted:
            raise PainterlyError(f"interrupted during the sweep after {len(cells)} of {len(planned)} cells",
                                 ExitCode.INTERRUPTED)  # fmt: skip
    captions = [
        f"loss {min(h['total'] for h in r.losses):.3g} · {r.metadata['timings']['total_s']:.1f} s" for r in cells
    ]
    grid = sweep_grid(axes, [r.image for r in cells], captions)
    return Sweep(dict(axes), [c for c, _ in planned], cells, grid)

"""Snapshots, GIF, loss CSV and plot, sheets and grids: in memory, without running a network."""

from __future__ import annotations

import csv
import io
import math

import pytest
import torch
from PIL import Image

from painterly.events import Step
from painterly.media import layout
from painterly.media.artifacts import (
    GIF_FINAL_MS,
    LOSS_COLUMNS,
    Snapshots,
    evolution_every,
    gif_bytes,
    gif_frame_ms,
    loss_figure,
    loss_plot_png,
    losses_csv,
)


def _progress(i: int, total: int = 10) -> Step:
    image = torch.full((1, 3, 6, 8), i / 15)  # iteration 3: 0.2, exactly 51 in 8 bits
    losses = {"content": 1.0 / i, "style": 10.0 / i, "tv": 0.0, "total": 11.0 / i}
    return Step(i, total, 0.1 * i, lambda: image, losses)


def _history(n: int) -> list[dict]:
    return [{"iteration": i, **_progress(i, n).losses, "elapsed": 0.1 * i} for i in range(1, n + 1)]


def test_snapshots_keep_the_first_iteration_and_every_nth() -> None:
    snaps = Snapshots(every=3)
    for i in range(1, 8):
        snaps(_progress(i))
    assert [s.iteration for s in snaps.frames] == [1, 3, 6]
    assert snaps.frames[1].image.size == (8, 6)
    assert snaps.frames[1].image.getpixel((0, 0)) == (51, 51, 51)
    assert snaps.frames[2].losses["total"] == pytest.approx(11 / 6)


def test_the_final_image_is_the_last_frame_and_replaces_a_snapshot_of_the_same_iteration() -> None:
    seen = []
    snaps = Snapshots(every=2, on_snapshot=lambda s: seen.append(s.iteration))
    for i in range(1, 5):
        snaps(_progress(i))
    final = Image.new("RGB", (8, 6), (255, 0, 0))
    snaps.add_final(final, 4)
    assert [s.iteration for s in snaps.frames] == [1, 2, 4]
    assert snaps.frames[-1].image.getpixel((0, 0)) == (255, 0, 0)
    assert seen == [1, 2, 4, 4]  # a file writer overwrites frame 4 with the result


def test_snapshots_without_keep_only_hand_frames_on_and_max_side_shrinks_kept_ones() -> None:
    handed = []
    streaming = Snapshots(every=1, keep=False, on_snapshot=handed.append)
    small = Snapshots(every=1, max_side=4)
    for i in range(1, 4):
        streaming(_progress(i))
        small(_progress(i))
    assert streaming.frames == [] and len(handed) == 3
    assert small.frames[0].image.size == (4, 3)


def test_evolution_interval_gives_about_thirty_frames_or_thins_snapshots_to_a_hundred() -> None:
    assert evolution_every(300) == 10
    assert evolution_every(5) == 1
    assert evolution_every(300, save_every=20) == 20
    assert evolution_every(1000, save_every=1) == 10


def test_gif_loops_holds_the_last_frame_and_has_one_frame_per_image() -> None:
    frames = [Image.new("RGB", (16, 12), (40 * i, 0, 255 - 40 * i)) for i in range(5)]
    gif = Image.open(io.BytesIO(gif_bytes(frames)))
    assert gif.n_frames == 5 and gif.size == (16, 12) and gif.info["loop"] == 0
    durations = []
    for i in range(gif.n_frames):
        gif.seek(i)
        durations.append(gif.info["duration"])
    assert durations == [gif_frame_ms(5)] * 4 + [GIF_FINAL_MS]
    assert 60 <= gif_frame_ms(5) <= 250 and gif_frame_ms(1000) == 60


def test_gif_frames_take_the_last_frames_size_at_most_512_px() -> None:
    frames = [Image.new("RGB", (256, 150), "black"), Image.new("RGB", (1024, 600), "white")]
    assert Image.open(io.BytesIO(gif_bytes(frames))).size == (512, 300)
    assert Image.open(io.BytesIO(gif_bytes(frames[:1] * 2 + [Image.new("RGB", (64, 38))]))).size == (64, 38)


def test_losses_csv_has_the_columns_and_one_finite_row_per_iteration() -> None:
    rows = list(csv.reader(io.StringIO(losses_csv(_history(7)))))
    assert tuple(rows[0]) == LOSS_COLUMNS
    assert [int(r[0]) for r in rows[1:]] == list(range(1, 8))
    assert all(math.isfinite(float(v)) for r in rows[1:] for v in r)
    assert float(rows[2][1]) == pytest.approx(11 / 2)


def test_loss_plot_draws_one_curve_per_nonzero_term_on_a_log_scale() -> None:
    fig = loss_figure(_history(6))
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    assert [line.get_label() for line in ax.lines] == ["total", "content", "style"]  # tv is zero throughout
    png = Image.open(io.BytesIO(loss_plot_png(_history(6))))
    assert png.format == "PNG" and png.size == (640, 360)


def test_loss_plot_marks_where_each_coarse_to_fine_stage_starts() -> None:
    history = [{**r, "stage": 1 if r["iteration"] <= 3 else 2} for r in _history(6)]
    ax = loss_figure(history).axes[0]
    assert [line.get_xdata()[0] for line in ax.lines if line.get_linestyle() == "--"] == [3.5]
    assert losses_csv(history).splitlines()[4].endswith(",2")  # the stage number stays an integer


def test_sheet_scales_every_panel_to_the_same_height() -> None:
    panels = [("a", Image.new("RGB", (200, 100), "red")), ("b", Image.new("RGB", (30, 60), "blue"))]
    sheet = layout.sheet(panels, height=50)
    gap = layout.GAP
    assert sheet.width == gap + 100 + gap + 25 + gap
    assert sheet.getpixel((gap + 50, gap + 25)) == (255, 0, 0)
    assert sheet.getpixel((gap + 100 + gap + 12, gap + 49)) == (0, 0, 255)
    caption_band = sheet.crop((gap, gap + 50, gap + 100, sheet.height))
    assert caption_band.convert("L").getextrema()[0] < 128  # the caption is drawn


def test_grid_places_cells_under_their_column_labels_and_rejects_mismatched_labels() -> None:
    cells = [[Image.new("RGB", (20, 10), (0, 255, 0)), None], [None, Image.new("RGB", (20, 10), (0, 0, 255))]]
    grid = layout.grid(cells, ["r1", "r2"], ["c1", "c2"], cell_captions=[["x", ""], ["", "y"]], title="t")
    colours = {grid.getpixel((x, y)) for x in range(grid.width) for y in range(grid.height)}
    assert {(0, 255, 0), (0, 0, 255)} <= colours
    with pytest.raises(ValueError, match="labels"):
        layout.grid(cells, ["r1"], ["c1", "c2"])

"""Issue 4 end to end: what a CLI run writes next to its image, the report, compare, features and sweep.

One stylize run with every flag is shared by the tests that only read its files (each run costs seconds)."""

from __future__ import annotations

import base64
import csv
import io
import json
import math
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from painterly.cli import main
from painterly.engine.backbone import FeatureExtractor, PixelConvention
from painterly.jobs.sweep import combinations, sweep_grid
from painterly.media.features import feature_grid, top_channels
from painterly.media.layout import GAP

FAST = ["--weights", "random", "--quiet"]
ITERATIONS = 5


def _image(path: Path, w: int, h: int, seed: int) -> str:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(w, h)
    pixels = np.stack([x, y, 1 - x * y], axis=-1) + 0.2 * rng.random((h, w, 3))
    Image.fromarray((np.clip(pixels, 0, 1) * 255).astype(np.uint8)).save(path)
    return str(path)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """OUT = run/out.png from a 32x24 stylize run with --save-every 2 --gif --plot --sheet --report."""
    d = tmp_path_factory.mktemp("run")
    content, style = _image(d / "photo.png", 48, 36, 0), _image(d / "painting.png", 40, 40, 1)
    (d / "out_frames").mkdir()
    Image.new("RGB", (4, 4)).save(d / "out_frames" / "0099.png")  # left by an earlier, longer run
    args = ["stylize", content, "-s", style, "-o", str(d / "out.png"), "--size", "32"]
    args += ["--iterations", str(ITERATIONS), "--save-every", "2", "--gif", "--plot", "--sheet", "--report"]
    assert main([*args, *FAST]) == 0
    return d


def test_save_every_writes_the_first_every_nth_and_the_final_frame(run_dir: Path) -> None:
    frames = sorted(p.name for p in (run_dir / "out_frames").iterdir())
    assert frames == ["0001.png", "0002.png", "0004.png", "0005.png"]  # 0099.png from before is gone
    final = Image.open(run_dir / "out_frames" / "0005.png")
    assert final.size == (32, 24)
    assert np.array_equal(np.asarray(final), np.asarray(Image.open(run_dir / "out.png").convert("RGB")))


def test_gif_loops_over_the_snapshots_at_the_output_size(run_dir: Path) -> None:
    gif = Image.open(run_dir / "out.gif")
    frames = [np.asarray(Image.open(p)) for p in sorted((run_dir / "out_frames").iterdir())]
    distinct = 1 + sum(not np.array_equal(a, b) for a, b in zip(frames, frames[1:], strict=False))
    assert gif.size == (32, 24) and gif.info["loop"] == 0
    assert gif.n_frames == distinct  # Pillow merges identical consecutive frames


def test_losses_csv_has_one_finite_row_per_iteration(run_dir: Path) -> None:
    with open(run_dir / "out_losses.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0])[:6] == ["iteration", "total", "content", "style", "tv", "elapsed"]  # then any new terms
    assert [int(r["iteration"]) for r in rows] == list(range(1, ITERATIONS + 1))
    assert all(math.isfinite(float(v)) for r in rows for v in r.values())
    elapsed = [float(r["elapsed"]) for r in rows]
    assert elapsed == sorted(elapsed)


def test_plot_and_sheet_are_written_at_their_sizes(run_dir: Path) -> None:
    assert Image.open(run_dir / "out_losses.png").size == (640, 360)
    sheet = Image.open(run_dir / "out_sheet.png")
    # content 48x36 -> 32x24, style 40x40 -> 24x24, result 32x24, all 24 px high
    assert sheet.width == GAP + (32 + GAP) + (24 + GAP) + (32 + GAP)


class _Page(HTMLParser):
    """Checks that tags nest and collects every src/href."""

    VOID = {"meta", "img", "br", "hr", "link", "input"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.refs: list[str] = []
        self.errors: list[str] = []
        self.doctype = False

    def handle_decl(self, decl: str) -> None:
        self.doctype |= decl.lower() == "doctype html"

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.refs += [v for k, v in attrs if k in ("src", "href")]
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack.pop() != tag:
            self.errors.append(f"unexpected </{tag}>")


def test_report_is_valid_html_whose_images_decode_and_links_exist(run_dir: Path) -> None:
    text = (run_dir / "out.html").read_text(encoding="utf-8")
    page = _Page()
    page.feed(text)
    page.close()
    assert page.doctype and not page.errors and not page.stack
    embedded = [r for r in page.refs if r.startswith("data:")]
    linked = [r for r in page.refs if not r.startswith("data:")]
    assert len(embedded) >= 7  # content, style, result, GIF, strip of 4, loss plot
    for ref in embedded:
        Image.open(io.BytesIO(base64.b64decode(ref.split(",", 1)[1]))).load()
    assert {"out.png", "out.gif", "out_losses.csv", "out_frames/"} <= set(linked)
    assert all((run_dir / ref).exists() for ref in linked)
    for needle in ("random (seed 0)", "cpu", "total_s", "content_weight", "photo.png", "iteration 5"):
        assert needle in text


def _chromium() -> str | None:
    return next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)


def test_report_renders_in_headless_chromium_to_a_non_blank_page(run_dir: Path, tmp_path: Path) -> None:
    browser = _chromium()
    if browser is None:
        pytest.skip("no chromium binary (apt-get install -y chromium)")
    shot = tmp_path / "shot.png"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"]
    flags += ["--disable-background-networking", "--disable-component-update", "--disable-sync"]
    flags += [f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1000,1200"]
    subprocess.run([browser, *flags, (run_dir / "out.html").as_uri()], capture_output=True, timeout=90, check=False)
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(float)
    assert pixels.shape == (1200, 1000, 3)
    assert pixels.std() > 20  # a blank or failed page is one flat colour
    assert len(np.unique(pixels.reshape(-1, 3)[::7], axis=0)) > 200  # photos, not only text


def test_texture_gif_without_save_every_takes_frames_from_the_run(tmp_path: Path) -> None:
    style, out = _image(tmp_path / "painting.png", 40, 40, 1), tmp_path / "tex.png"
    assert main(["texture", style, "-o", str(out), "--size", "24", "--iterations", "3", "--gif", *FAST]) == 0
    assert Image.open(tmp_path / "tex.gif").n_frames >= 2  # iteration 1 (noise) and the result at least
    assert not (tmp_path / "tex_frames").exists()
    assert len((tmp_path / "tex_losses.csv").read_text().splitlines()) == 1 + 3


def test_a_bad_save_every_is_a_usage_error_and_a_bad_input_leaves_no_frames_folder(tmp_path: Path) -> None:
    style, out = _image(tmp_path / "painting.png", 40, 40, 1), str(tmp_path / "o.png")
    assert main(["stylize", style, "-s", style, "-o", out, "--save-every", "0", *FAST]) == 2
    assert main(["stylize", str(tmp_path / "missing.png"), "-s", style, "-o", out, "--save-every", "2", *FAST]) == 2
    assert not (tmp_path / "o_frames").exists()


def test_compare_puts_images_side_by_side_at_the_smallest_height(tmp_path: Path) -> None:
    a, b = _image(tmp_path / "a.png", 60, 40, 0), _image(tmp_path / "b.png", 30, 30, 1)
    out = tmp_path / "cmp.png"
    assert main(["compare", a, b, "-o", str(out)]) == 0
    assert Image.open(out).width == GAP + (45 + GAP) + (30 + GAP)
    assert main(["compare", a, b, "-o", str(out), "--labels", "only one"]) == 2


def test_features_cli_draws_a_grid_and_rejects_an_unknown_layer(tmp_path: Path) -> None:
    image, out = _image(tmp_path / "a.png", 40, 30, 0), tmp_path / "feat.png"
    args = ["features", image, "-o", str(out), "--size", "32", "--channels", "3", "--tile", "24", *FAST]
    assert main([*args, "--layers", "relu1_1,relu2_1"]) == 0
    assert Image.open(out).width > 3 * 24
    assert main([*args, "--layers", "relu9_9"]) == 2


def test_top_channels_ranks_by_mean_activation() -> None:
    f = torch.stack([torch.full((2, 2), v) for v in (1.0, 3.0, 2.0)]).unsqueeze(0)  # (1, 3, 2, 2)
    assert [(c, m) for c, m, _ in top_channels(f, 2)] == [(1, 3.0), (2, 2.0)]


def test_feature_grid_has_one_column_per_channel() -> None:
    torch.manual_seed(0)
    body = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.AvgPool2d(2))
    extractor = FeatureExtractor(body, {"relu1_1": 1, "pool1": 2}, PixelConvention("torch"), "tiny")
    image = Image.new("RGB", (16, 12), (90, 140, 200))
    two, three = (feature_grid(extractor, image, ("relu1_1", "pool1"), k, tile=20) for k in (2, 3))
    assert three.width - two.width == 20 + GAP and three.height == two.height


def test_sweep_grid_puts_the_last_option_along_the_columns() -> None:
    axes = {"content_weight": [1.0, 5.0], "style_weight": [10.0, 100.0, 1000.0]}
    combos = combinations(axes)
    assert combos[1] == {"content_weight": 1.0, "style_weight": 100.0}
    colours = [(40 * i, 255 - 40 * i, 0) for i in range(len(combos))]
    grid = np.asarray(sweep_grid(axes, [Image.new("RGB", (10, 8), c) for c in colours]))
    centres = []
    for c in colours:
        ys, xs = np.nonzero(np.all(grid == c, axis=-1))
        centres.append((ys.mean(), xs.mean()))
    assert centres[0][0] == centres[2][0] < centres[3][0]  # same row, then the next row
    assert centres[0][1] < centres[1][1] < centres[2][1] and centres[0][1] == centres[3][1]


def test_sweep_cli_runs_every_combination_and_records_them(tmp_path: Path) -> None:
    content, style = _image(tmp_path / "c.png", 32, 24, 0), _image(tmp_path / "s.png", 24, 24, 1)
    out = tmp_path / "grid.png"
    args = ["sweep", content, "-s", style, "-o", str(out), "--size", "24", "--iterations", "1"]
    assert main([*args, "--content-weight", "1,5", "--style-weight", "1,10", *FAST]) == 0
    meta = json.loads((tmp_path / "grid.json").read_text())
    assert meta["sweep"] == {"content_weight": [1.0, 5.0], "style_weight": [1.0, 10.0]}
    cells = [(c["content_weight"], c["style_weight"]) for c in meta["cells"]]
    assert cells == [(1.0, 1.0), (1.0, 10.0), (5.0, 1.0), (5.0, 10.0)]
    assert [c["options"]["style_weight"] for c in meta["cells"]] == [1.0, 10.0, 1.0, 10.0]
    assert Image.open(out).width > 2 * 24


def test_sweep_rejects_a_bad_value_and_a_sweep_of_nothing(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    base = ["sweep", "c.png", "-s", "s.png", "-o", str(tmp_path / "g.png"), *FAST]
    assert main([*base, "--style-weight", "1,lots"]) == 2
    assert "--style-weight" in capsys.readouterr().err
    assert main([*base, "--style-weight", "10"]) == 2
    assert "nothing to sweep" in capsys.readouterr().err


def test_the_api_hands_snapshots_and_history_to_a_notebook_without_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import painterly

    monkeypatch.chdir(tmp_path)
    content, style = _image(tmp_path / "c.png", 32, 24, 0), _image(tmp_path / "s.png", 24, 24, 1)
    seen: list[int] = []
    snaps = painterly.Snapshots(every=1, on_snapshot=lambda s: seen.append(s.iteration))
    cfg = painterly.build_config("stylize", {"size": 24, "iterations": 2, "weights": "random"})
    result = painterly.run(cfg, content, style, callbacks=[snaps])
    assert seen == [1, 2] and [s.image.size for s in snaps.frames] == [result.image.size] * 2
    assert [s.losses["total"] for s in snaps.frames] == [h["total"] for h in result.losses]
    assert len(painterly.losses_csv(result.losses).splitlines()) == 1 + 2
    assert painterly.loss_figure(result.losses).axes[0].get_yscale() == "log"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.png", "s.png"]

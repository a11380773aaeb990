"""Jobs of many units: the local loop, the manifest (resume, --force, failures) and the Ray executor."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import _painting, _photo
from PIL import Image

from painterly.cli import main
from painterly.config import build_config
from painterly.errors import ExitCode, PainterlyError
from painterly.jobs import MANIFEST_NAME, ImagePainter, Manifest, Unit, image_units, local_executor, run_job

TINY = {"size": 64, "iterations": 2, "weights": "random", "min_size": 64}
TINY_FLAGS = ["--size", "64", "--iterations", "2", "--weights", "random", "--min-size", "64"]


@pytest.fixture
def photos(tmp_path) -> tuple[list[Path], Path]:
    """Six tiny photos, the fourth a broken file, and a painting."""
    folder = tmp_path / "photos"
    folder.mkdir()
    files = []
    for i in range(6):
        path = folder / f"p{i}.png"
        if i == 3:
            path.write_bytes(b"this is not a png")
        else:
            _photo(72, 56, i).save(path)
        files.append(path)
    style = tmp_path / "style.png"
    _painting(64, 64, 1).save(style)
    return files, style


def _records(out: Path) -> dict[str, dict]:
    return Manifest(out).records


class Recorder:
    """A painter that writes a small file per unit (no torch), remembering what it painted; at ``stop_at``
    it is stopped: a run that came back interrupted, or the user's Ctrl-C between runs."""

    def __init__(self, painted: list[str], fail: set[str] = frozenset(), stop_at: str | None = None,
                 stop: BaseException | None = None) -> None:  # fmt: skip
        self.painted, self.fail, self.stop_at = painted, fail, stop_at
        self.stop = stop or PainterlyError("interrupted", ExitCode.INTERRUPTED)

    def __call__(self, unit: Unit) -> None:
        if unit.name == self.stop_at:
            raise self.stop
        if unit.name in self.fail:
            raise PainterlyError(f"{unit.content}: not an image\n(second line)")
        self.painted.append(unit.name)
        unit.output.write_text(unit.name)


def _fake_units(tmp_path: Path, n: int = 4, **cfg_values) -> list[Unit]:
    cfg = build_config("stylize", {**TINY, **cfg_values})
    inputs = []
    for i in range(n):
        path = tmp_path / f"in{i}.txt"
        path.write_text(f"input {i}")
        inputs.append(path)
    return image_units(inputs, cfg, str(inputs[0]), tmp_path / "out", suffix=".txt")


def test_local_job_records_each_unit_and_one_line_errors(tmp_path):
    units, painted = _fake_units(tmp_path), []
    executor = local_executor(lambda: Recorder(painted, fail={"in2.txt"}))
    summary = run_job(units, tmp_path / "out", executor)
    assert painted == ["in0.txt", "in1.txt", "in3.txt"]
    assert (summary.done, summary.failed, summary.skipped, summary.total) == (3, 1, 0, 4)
    records = _records(tmp_path / "out")
    assert [records[u.name]["status"] for u in units] == ["done", "done", "failed", "done"]
    assert records["in2.txt"]["error"].endswith("not an image (second line)")  # one line
    assert records["in0.txt"]["input"]["content"] == str(tmp_path / "in0.txt")
    assert len(records["in0.txt"]["config_hash"]) == 64
    assert summary.failures == [("in2.txt", records["in2.txt"]["error"])]


def test_rerun_skips_done_units_and_retries_failed_ones(tmp_path):
    units, painted = _fake_units(tmp_path), []
    run_job(units, tmp_path / "out", local_executor(lambda: Recorder(painted, fail={"in2.txt"})))
    before = {u.name: u.output.stat().st_mtime_ns for u in units if u.output.exists()}
    painted.clear()
    summary = run_job(units, tmp_path / "out", local_executor(lambda: Recorder(painted)))
    assert painted == ["in2.txt"] and summary.skipped == 3 and summary.done == 1
    assert all(u.output.stat().st_mtime_ns == before[u.name] for u in units if u.name in before)
    painted.clear()
    assert run_job(units, tmp_path / "out", local_executor(lambda: Recorder(painted)), force=True).done == 4
    assert painted == [u.name for u in units]


@pytest.mark.parametrize("stop", [PainterlyError("interrupted", ExitCode.INTERRUPTED), KeyboardInterrupt()])
def test_interrupted_job_resumes_with_only_the_missing_units(tmp_path, stop):
    units, painted = _fake_units(tmp_path), []
    with pytest.raises(type(stop)):
        run_job(units, tmp_path / "out", local_executor(lambda: Recorder(painted, stop_at="in2.txt", stop=stop)))
    statuses = {name: r["status"] for name, r in _records(tmp_path / "out").items()}
    assert statuses == {"in0.txt": "done", "in1.txt": "done", "in2.txt": "pending", "in3.txt": "pending"}
    first = units[0].output.stat().st_mtime_ns
    painted.clear()
    run_job(units, tmp_path / "out", local_executor(lambda: Recorder(painted)))
    assert painted == ["in2.txt", "in3.txt"]
    assert units[0].output.stat().st_mtime_ns == first


def test_a_changed_config_input_or_missing_output_redoes_the_unit(tmp_path):
    units, painted = _fake_units(tmp_path), []
    run_job(units, tmp_path / "out", local_executor(lambda: Recorder(painted)))
    painted.clear()
    run_job(_fake_units(tmp_path, iterations=3), tmp_path / "out", local_executor(lambda: Recorder(painted)))
    assert len(painted) == 4  # another config hash
    painted.clear()
    units = _fake_units(tmp_path, iterations=3)
    (tmp_path / "in1.txt").write_text("edited")
    units[3].output.unlink()
    run_job(units, tmp_path / "out", local_executor(lambda: Recorder(painted)))
    # in0 is every unit's style here, so editing in1 changes only unit 1; unit 3 lost its output
    assert painted == ["in1.txt", "in3.txt"]


def test_a_torn_last_manifest_line_is_ignored(tmp_path):
    units, painted = _fake_units(tmp_path), []
    run_job(units, tmp_path / "out", local_executor(lambda: Recorder(painted)))
    path = tmp_path / "out" / MANIFEST_NAME
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][: len(lines[-1]) // 2])  # crash mid-append
    painted.clear()
    run_job(units, tmp_path / "out", local_executor(lambda: Recorder(painted)))
    assert painted == ["in3.txt"]
    assert all(json.loads(line) for line in path.read_text().splitlines())  # rewritten whole at the start


def test_units_sharing_an_output_name_are_refused(tmp_path):
    units = _fake_units(tmp_path, n=2)
    with pytest.raises(PainterlyError, match="share one output"):
        run_job([units[0], units[0]], tmp_path / "out", local_executor(lambda: Recorder([])))


def test_the_image_painter_writes_each_photo_and_records_the_broken_one(photos, tmp_path):
    files, style = photos
    cfg = build_config("stylize", TINY)
    out = tmp_path / "out"
    summary = run_job(image_units(files, cfg, str(style), out), out, local_executor(ImagePainter))
    assert (summary.done, summary.failed) == (5, 1)
    assert sorted(p.name for p in out.glob("*.png")) == ["p0.png", "p1.png", "p2.png", "p4.png", "p5.png"]
    assert Image.open(out / "p0.png").size == (64, 50)
    assert "p3.png" in _records(out)["p3.png"]["error"]


def test_an_interrupted_photo_stays_pending_and_stops_the_job(photos, tmp_path, monkeypatch):
    import painterly.jobs.batch
    from painterly.jobs.options import JobOptions

    def stopped_at_p1(cfg, content, *args, **kwargs):  # noqa: ANN001, ANN202 - api.run, stopped on p1
        result = painterly.api.run(cfg, content, *args, **kwargs)
        result.interrupted = content.endswith("p1.png")
        return result

    monkeypatch.setattr(painterly.jobs.batch, "run", stopped_at_p1)
    files, style = photos
    out = tmp_path / "out"
    with pytest.raises(PainterlyError, match="interrupted after 1 images done, 0 failed") as err:
        JobOptions().paint_images(build_config("stylize", TINY), files, out, style=str(style), quiet=True)
    assert err.value.exit_code == ExitCode.INTERRUPTED
    statuses = {name: r["status"] for name, r in _records(out).items()}
    assert statuses == {"p0.png": "done", **{f"p{i}.png": "pending" for i in range(1, 6)}}
    assert sorted(p.name for p in out.glob("*.png")) == ["p0.png"]  # the stopped run left no image


def test_ray_is_a_one_line_error_naming_the_extra_when_missing(monkeypatch):
    from painterly.jobs.ray import import_ray

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(PainterlyError, match=r'pip install "painterly\[cluster\]"'):
        import_ray()


# --- Ray: one local instance for the module (starting one takes seconds) ---


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="warning", log_to_driver=False)
    # painters defined here travel by value: the workers cannot import this test module
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield ray
    ray.shutdown()


def _pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def test_ray_gives_the_local_pixels_and_records_the_broken_input(ray_local, photos, tmp_path):
    from painterly.jobs.ray import run_units

    files, style = photos
    cfg = build_config("stylize", TINY)
    local, remote = tmp_path / "local", tmp_path / "ray"
    run_job(image_units(files, cfg, str(style), local), local, local_executor(ImagePainter))
    painter = functools.partial(ImagePainter, cfg)
    summary = run_job(
        image_units(files, cfg, str(style), remote),
        remote,
        lambda units, progress: run_units(units, painter, progress, workers=2),
    )
    assert (summary.done, summary.failed) == (5, 1)
    assert "not" in _records(remote)["p3.png"]["error"]
    for name in ["p0.png", "p1.png", "p2.png", "p4.png", "p5.png"]:
        assert np.array_equal(_pixels(local / name), _pixels(remote / name)), name
    workers = {r["worker"] for r in _records(remote).values()}
    assert len(workers) == 2  # both actors painted


class CrashOnce:
    """Kills its whole worker process on its first unit, once per job (a flag file remembers)."""

    def __init__(self, flag: str) -> None:
        self.flag = Path(flag)

    def __call__(self, unit: Unit) -> None:
        if not self.flag.exists():
            self.flag.write_text(unit.name)
            os._exit(1)
        with open(unit.output, "a") as f:  # appends: a unit painted twice would show
            f.write(unit.name)


def test_ray_retries_a_dead_workers_unit_and_paints_each_exactly_once(ray_local, tmp_path):
    from painterly.jobs.ray import run_units

    units = _fake_units(tmp_path, n=6)
    flag = tmp_path / "crashed"
    painter = functools.partial(CrashOnce, str(flag))
    summary = run_job(units, tmp_path / "out", lambda us, progress: run_units(us, painter, progress, workers=2))
    assert (summary.done, summary.failed) == (6, 0)
    assert flag.exists()  # a worker did die
    assert [u.output.read_text() for u in units] == [u.name for u in units]


# --- long videos: segments with warm-up frames, reassembled with the audio ---


def _flicker(frame, init, mask=None):  # noqa: ANN001, ANN201
    """test_video's flickering painter (here, so it travels to Ray workers by value with this module)."""
    seed = int.from_bytes(hashlib.sha256(frame.numpy().tobytes()).digest()[:4], "little")
    noise = torch.rand(frame.shape, generator=torch.Generator().manual_seed(seed))
    return (0.5 * frame + 0.5 * noise).clamp(0, 1)


def _flicker_painter():  # noqa: ANN202
    return _flicker


def _decoded(path: Path) -> list[np.ndarray]:
    from painterly.media.video import open_video

    return list(open_video(path).frames())


def _segmented(clip: Path, folder: Path, executor, segment_frames: int, warmup: int, temporal: float) -> list[Path]:  # noqa: ANN001
    from painterly.jobs.segments import SegmentPainter, plan_segments, segment_units

    cfg = build_config("stylize", TINY)
    segments = plan_segments(12, segment_frames, warmup)
    units = segment_units(clip, cfg, segments, folder, {"temporal": temporal, "flow": "dis"})
    summary = run_job(units, folder, executor(functools.partial(SegmentPainter, _flicker_painter)))
    assert summary.done == len(segments), summary.failures
    return [u.output for u in units]


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    pytest.importorskip("av")
    from test_video import make_clip, pan_frames

    return make_clip(tmp_path_factory.mktemp("clip") / "pan.mp4", pan_frames())


def test_two_segments_on_ray_give_the_frames_in_order_with_the_audio(ray_local, clip, tmp_path):
    from test_video import audio_streams

    from painterly.jobs.ray import run_units
    from painterly.jobs.segments import assemble, frame_files
    from painterly.jobs.video import stylize_video

    def on_ray(painter):  # noqa: ANN001, ANN202
        return lambda units, progress: run_units(units, painter, progress, workers=2)

    folders = _segmented(clip, tmp_path / "parts", on_ray, 6, 2, temporal=0)
    assert [len(list(f.glob("*.png"))) for f in folders] == [6, 6]  # warm-up frames dropped
    stylize_video(clip, tmp_path / "frames", _flicker, temporal=0)  # one process, lossless
    one = [_pixels(f) for f in sorted((tmp_path / "frames").glob("*.png"))]
    parts = [_pixels(f) for f in frame_files(folders)]
    assert len(parts) == len(one) == 12
    assert all(np.array_equal(a, b) for a, b in zip(parts, one, strict=True))  # same frames, same order
    assert assemble(clip, folders, tmp_path / "joined.mp4") == 12
    stylize_video(clip, tmp_path / "whole.mp4", _flicker, temporal=0)
    joined, whole = _decoded(tmp_path / "joined.mp4"), _decoded(tmp_path / "whole.mp4")
    assert len(joined) == len(whole) == 12
    # (H.264 of these noise-like frames is lossy and two encodes differ by a few levels: pixels compared above)
    assert audio_streams(tmp_path / "joined.mp4") == audio_streams(tmp_path / "whole.mp4") == ["aac"]


def test_video_on_ray_refuses_start_and_duration_in_one_line(clip, tmp_path, capsys):
    pytest.importorskip("ray")
    style = tmp_path / "style.png"
    _painting(64, 64, 1).save(style)
    out = tmp_path / "out.mp4"
    assert main(["video", str(clip), "-s", str(style), "-o", str(out), "--executor", "ray", "--start", "0.2"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "painterly: error: --start and --duration are not available with --executor ray yet"
    ]
    assert not out.exists()


def test_warm_up_frames_carry_temporal_consistency_over_the_seam(clip, tmp_path):
    from painterly.jobs.segments import seam_errors

    cold = seam_errors(clip, _segmented(clip, tmp_path / "cold", local_executor, 6, 0, temporal=0.8))
    warm = seam_errors(clip, _segmented(clip, tmp_path / "warm", local_executor, 6, 6, temporal=0.8))
    # (seam, inside): without warm-up a segment's first frame is painted alone and jumps (docs/benchmarks.md:
    # 22x inside on a 48-frame pan; 2.4x with 4 warm-up frames, 1.13x with 8)
    assert cold[0] > 5 * cold[1]
    assert warm[0] < 2 * warm[1]


def test_a_job_with_a_failure_prints_a_summary_and_raises_exit_1(photos, tmp_path, capsys):
    from painterly.errors import ExitCode
    from painterly.jobs.options import JobOptions

    files, style = photos
    cfg = build_config("stylize", TINY)
    with pytest.raises(PainterlyError, match=r"1 of 6 failed: p3.png: .*p3.png") as err:
        JobOptions().paint_images(cfg, files, tmp_path / "out", style=str(style))
    assert err.value.exit_code == ExitCode.RUNTIME
    assert "images: 5 done, 1 failed of 6" in capsys.readouterr().err
    with pytest.raises(PainterlyError):  # resumed: only the broken one is tried again
        JobOptions().paint_images(cfg, files, tmp_path / "out", style=str(style))
    assert "5 of 6 images already done" in capsys.readouterr().err


def test_executor_options_pass_a_job_and_name_the_extra_when_ray_is_missing(monkeypatch):
    import click
    from click.testing import CliRunner

    from painterly.jobs.options import executor_options

    seen = []

    @click.command()
    @executor_options
    def command(job) -> None:  # noqa: ANN001
        seen.append(job)

    assert CliRunner().invoke(command, ["--workers", "3", "--force"]).exit_code == 0
    assert (seen[-1].executor, seen[-1].workers, seen[-1].force) == ("local", 3, True)
    monkeypatch.setitem(sys.modules, "ray", None)
    result = CliRunner().invoke(command, ["--ray-address", "auto"])  # an address means --executor ray
    assert isinstance(result.exception, PainterlyError) and "painterly[cluster]" in str(result.exception)


def test_sweep_cells_run_as_units_and_make_the_grid(photos, tmp_path):
    from painterly.jobs.sweep_cells import cell_units, grid_from_cells

    files, style = photos
    axes = {"seed": [0, 1], "strength": [0.3, 0.7]}
    units = cell_units("stylize", axes, tmp_path / "cells", str(files[0]), str(style), base=TINY)
    assert [u.params["combo"] for u in units][:2] == ["seed=0, strength=0.3", "seed=0, strength=0.7"]
    assert run_job(units, tmp_path / "cells", local_executor(ImagePainter)).done == 4
    grid = grid_from_cells(axes, units)
    assert grid.width > 2 * 64 and grid.height > 2 * 50
    assert run_job(units, tmp_path / "cells", local_executor(ImagePainter)).skipped == 4  # a sweep resumes


# --- the commands: stylize on a folder, sweep (units through JobOptions, the local executor by default) ---


def test_stylize_on_a_folder_records_the_broken_photo_exits_1_then_resumes_and_force_redoes(photos, tmp_path, capsys):
    files, style = photos
    out = tmp_path / "out"
    args = ["stylize", str(files[0].parent), "-s", str(style), "-o", str(out), *TINY_FLAGS]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "images: 5 done, 1 failed of 6" in err  # the summary line
    assert err.strip().splitlines()[-1].startswith("painterly: error: 1 of 6 failed: p3.png: ")
    good = ["p0.png", "p1.png", "p2.png", "p4.png", "p5.png"]
    assert sorted(p.name for p in out.glob("*.png")) == good
    assert all((out / f"p{i}.json").exists() and (out / f"p{i}_losses.csv").exists() for i in (0, 1, 2, 4, 5))
    record = _records(out)["p3.png"]
    assert record["status"] == "failed" and "p3.png" in record["error"] and "\n" not in record["error"]
    painted = {name: (out / name).stat().st_mtime_ns for name in good}
    assert main(args) == 1  # again: only the broken photo is tried
    assert "5 of 6 images already done" in capsys.readouterr().err
    assert {name: (out / name).stat().st_mtime_ns for name in good} == painted
    assert main([*args, "--force", "-q"]) == 1
    assert all((out / name).stat().st_mtime_ns > painted[name] for name in good)


def test_executor_ray_without_ray_is_one_line_naming_the_extra_and_writes_nothing(photos, tmp_path, capsys,
                                                                                   monkeypatch):  # fmt: skip
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    files, style = photos
    args = ["stylize", str(files[0].parent), "-s", str(style), "-o", str(tmp_path / "out"), *TINY_FLAGS]
    assert main([*args, "--executor", "ray"]) == 2
    assert capsys.readouterr().err.splitlines() == ['painterly: error: the ray executor needs the cluster extra: '
                                                    'pip install "painterly[cluster]"']  # fmt: skip
    assert not (tmp_path / "out").exists()


def test_a_sweep_runs_its_cells_as_units_and_resumes(photos, tmp_path, capsys):
    files, style = photos
    out = tmp_path / "grid.png"
    args = ["sweep", str(files[0]), "-s", str(style), "-o", str(out), "--size", "24", "--iterations", "1",
            "--weights", "random", "--seed", "0,1"]  # fmt: skip
    assert main(args) == 0
    cells = sorted(p.name for p in (tmp_path / "grid_cells").glob("*.png"))
    assert cells == ["cell_000.png", "cell_001.png"] and out.exists()
    assert json.loads((tmp_path / "grid.json").read_text())["cells"][1]["seed"] == 1
    capsys.readouterr()
    assert main(args) == 0
    assert "2 of 2 cells already done" in capsys.readouterr().err


def test_stylize_on_a_folder_on_ray_gives_the_local_pixels(ray_local, photos, tmp_path):
    files, style = photos
    folder = tmp_path / "few"
    folder.mkdir()
    for f in files[:2] + files[3:4]:  # two photos and the broken file
        (folder / f.name).write_bytes(f.read_bytes())
    base = ["stylize", str(folder), "-s", str(style), *TINY_FLAGS, "-q"]
    assert main([*base, "-o", str(tmp_path / "local")]) == 1
    assert main([*base, "-o", str(tmp_path / "ray"), "--executor", "ray", "--workers", "2"]) == 1
    for name in ["p0.png", "p1.png"]:
        assert np.array_equal(_pixels(tmp_path / "local" / name), _pixels(tmp_path / "ray" / name)), name
    records = _records(tmp_path / "ray")
    assert records["p3.png"]["status"] == "failed" and not records["p0.png"]["worker"].endswith(":local")


def test_an_interrupted_unit_on_ray_stops_the_job_and_stays_pending(ray_local, tmp_path):
    from painterly.jobs import ray_executor

    units = _fake_units(tmp_path, n=3)
    painter = functools.partial(Recorder, [], stop_at="in1.txt")
    with pytest.raises(PainterlyError, match="interrupted") as err:
        run_job(units, tmp_path / "out", ray_executor(painter, workers=1))
    assert err.value.exit_code == ExitCode.INTERRUPTED
    assert _records(tmp_path / "out")["in1.txt"]["status"] == "pending"

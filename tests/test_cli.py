"""Each mode end to end through the CLI at tiny sizes with random weights, and every kind of bad input."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from painterly.cli import main
from painterly.engine import optimize
from painterly.media.outputs import read_png_metadata

FAST = ["--weights", "random", "--quiet"]


def _run_ok(args: list[str]) -> dict:
    assert main([*args, *FAST]) == 0
    out = Path(args[args.index("-o") + 1])
    meta = json.loads(out.with_suffix(".json").read_text())
    assert read_png_metadata(out) == meta
    return meta


def test_stylize_lowers_the_loss_by_a_large_factor_and_records_the_run(tmp_path, content_path, style_path):
    out = tmp_path / "out.png"
    meta = _run_ok([
        "stylize", content_path, "--style", style_path, "-o", str(out),
        "--size", "64", "--iterations", "30", "--init", "noise", "--seed", "3",
    ])  # fmt: skip
    assert Image.open(out).size == (64, 48)  # content is 96x72: aspect kept
    assert meta["initial_loss"] > 5 * meta["final_losses"]["total"]  # content and style compete: ~7x at best
    assert meta["backbone"].startswith("vgg19, avg pooling, random (seed 0)")
    assert meta["seed"] == 3 and meta["device"] == "cpu" and meta["iterations_run"] == 30
    assert meta["options"]["iterations"] == 30 and meta["options"]["preset"] == "default"
    assert {"torch", "torchvision", "pillow", "python"} <= set(meta["versions"])
    assert meta["timings"]["total_s"] > 0


def test_reconstruct_recovers_the_image_from_one_layer(tmp_path, content_path):
    out = tmp_path / "rec.png"
    meta = _run_ok(["reconstruct", content_path, "--layer", "conv2_2", "-o", str(out), "--size", "48",
                    "--iterations", "40"])  # fmt: skip
    assert meta["options"]["content_layers"] == ["relu2_2"] and meta["options"]["init"] == "noise"
    assert meta["initial_loss"] > 10 * meta["final_losses"]["total"]
    assert Image.open(out).size == (48, 36)


def test_texture_has_the_exact_requested_size_and_no_content_term(tmp_path, style_path):
    out = tmp_path / "tex.png"
    meta = _run_ok(["texture", style_path, "-o", str(out), "--size", "64x48", "--iterations", "40"])
    assert Image.open(out).size == (64, 48)
    assert meta["final_losses"]["content"] == 0
    assert meta["initial_loss"] > 10 * meta["final_losses"]["total"]


def _pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def test_same_seed_same_picture_other_seed_other_picture(tmp_path, content_path, style_path):
    base = ["stylize", content_path, "--style", style_path, "--size", "32", "--iterations", "5", "--init", "noise"]
    for name, seed in [("a", "1"), ("b", "1"), ("c", "2")]:
        assert main([*base, "-o", str(tmp_path / f"{name}.png"), "--seed", seed, *FAST]) == 0
    assert np.array_equal(_pixels(tmp_path / "a.png"), _pixels(tmp_path / "b.png"))
    assert not np.array_equal(_pixels(tmp_path / "a.png"), _pixels(tmp_path / "c.png"))


def test_a_folder_of_photos_gives_one_output_each(tmp_path, content_path, style_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("one.png", "two.jpg"):
        Image.open(content_path).save(folder / name)
    (folder / "notes.txt").write_text("not an image")
    out = tmp_path / "results"
    assert main(["stylize", str(folder), "--style", style_path, "-o", str(out), "--size", "32",
                 "--iterations", "2", *FAST]) == 0  # fmt: skip
    assert sorted(p.name for p in out.glob("*.png")) == ["one.png", "two.png"]
    assert sorted(p.name for p in out.glob("*.json")) == ["one.json", "two.json"]


def test_config_file_sets_options_and_the_command_line_wins(tmp_path, content_path, style_path):
    toml = tmp_path / "run.toml"
    toml.write_text('size = "40x40"\niterations = 3\nstyle-layers = ["relu1_1", "relu2_1"]\n')
    out = tmp_path / "o.png"
    meta = _run_ok(["stylize", content_path, "--style", style_path, "-o", str(out), "--config", str(toml),
                    "--iterations", "2"])  # fmt: skip
    assert meta["iterations_run"] == 2 and Image.open(out).size == (40, 30)
    assert meta["options"]["style_layers"] == [["relu1_1", 0.5], ["relu2_1", 0.5]]


def test_content_alpha_is_kept_in_the_png_result(tmp_path, content_path, style_path):
    rgba = Image.open(content_path).convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(rgba.size))
    rgba.save(tmp_path / "alpha.png")
    out = tmp_path / "o.png"
    _run_ok(["stylize", str(tmp_path / "alpha.png"), "--style", style_path, "-o", str(out), "--size", "32",
             "--iterations", "2"])  # fmt: skip
    assert Image.open(out).mode == "RGBA"


def test_ctrl_c_keeps_the_best_image_so_far_and_exits_130(tmp_path, content_path, style_path, monkeypatch):
    original = optimize.PixelOptimizer.steps

    def interrupted_steps(self):
        for progress in original(self):
            yield progress
            if progress.step == 3:
                raise KeyboardInterrupt

    monkeypatch.setattr(optimize.PixelOptimizer, "steps", interrupted_steps)
    out = tmp_path / "o.png"
    code = main(["stylize", content_path, "--style", style_path, "-o", str(out), "--size", "32", *FAST])
    assert code == 130 and out.exists()
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["interrupted"] is True and meta["iterations_run"] == 3


def test_presets_command_lists_every_preset(capsys):
    assert main(["presets"]) == 0
    text = capsys.readouterr().out
    for name in ("default", "gatys", "coursera", "keras-vgg19", "pytorch-blog", "keras-vgg16"):
        assert f"{name}\n" in text


def test_demo_uses_bundled_images(tmp_path):
    out = tmp_path / "demo.png"
    assert main(["demo", "-o", str(out), "--size", "32", "--iterations", "2", *FAST]) == 0
    assert max(Image.open(out).size) == 32


def _png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG whose header claims width x height: a decompression bomb as far as the header goes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    )


def _bad_inputs(tmp: Path, content_path: str) -> dict[str, str]:
    good = Path(content_path).read_bytes()
    (tmp / "empty.png").write_bytes(b"")
    (tmp / "text.jpg").write_text("hello, I am not a picture")
    (tmp / "random.png").write_bytes(np.random.default_rng(0).bytes(2000))
    (tmp / "truncated.png").write_bytes(good[: len(good) // 2])
    Image.open(content_path).save(tmp / "full.jpg")
    (tmp / "truncated.jpg").write_bytes((tmp / "full.jpg").read_bytes()[:300])
    _png_header_only(tmp / "bomb.png", 40000, 40000)
    (tmp / "folder").mkdir()
    names = ["empty.png", "text.jpg", "random.png", "truncated.png", "truncated.jpg", "bomb.png", "folder"]
    return {n: str(tmp / n) for n in names} | {"missing": str(tmp / "missing.jpg")}


@pytest.mark.parametrize("which", ["content", "style"])
def test_every_kind_of_bad_image_is_one_line_exit_2_and_no_output(tmp_path, content_path, style_path, capsys, which):
    bad_dir = tmp_path / "bad"
    bad_dir.mkdir()
    for name, bad in _bad_inputs(bad_dir, content_path).items():
        if which == "content" and name == "folder":
            continue  # a folder of content images is a batch; an empty one is tested below
        out = tmp_path / f"out_{name}.png"
        content, style = (bad, style_path) if which == "content" else (content_path, bad)
        code = main(["stylize", content, "--style", style, "-o", str(out), "--size", "32", "--iterations", "2", *FAST])
        err = capsys.readouterr().err
        assert code == 2, (name, err)
        assert err.count("\n") == 1 and err.startswith("painterly: error:") and "Traceback" not in err, (name, err)
        assert not out.exists() and not out.with_suffix(".json").exists(), name
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("out")] == []


@pytest.mark.parametrize(
    "args",
    [
        ["--content-layers", "relu9_9"],
        ["--style-layers", "block1_conv1:x"],
        ["--size", "0"],
        ["--size", "100000"],
        ["--size", "big"],
        ["--iterations", "-3"],
        ["--lr", "0"],
        ["--optimizer", "sgd"],
        ["--preset", "nope"],
        ["--weights", "/nonexistent/weights.pth"],
        ["--device", "tpu"],
        ["--no-such-flag"],
    ],
)
def test_bad_options_are_one_line_exit_2_and_no_output(tmp_path, content_path, style_path, capsys, args):
    out = tmp_path / "o.png"
    code = main(["stylize", content_path, "--style", style_path, "-o", str(out), "--iterations", "2", *args])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert not out.exists()


def test_bad_output_paths_are_refused_before_running(tmp_path, content_path, style_path, capsys):
    for out in [tmp_path / "o.xyz", tmp_path / "nodir" / "o.png", tmp_path]:
        assert main(["stylize", content_path, "--style", style_path, "-o", str(out), *FAST]) == 2
    assert capsys.readouterr().err.count("\n") == 3


def test_out_of_memory_is_a_runtime_error_with_no_output(tmp_path, content_path, style_path, capsys, monkeypatch):
    def explode(self, v):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 40.00 GiB")

    monkeypatch.setattr("painterly.engine.objective.Objective.__call__", explode)
    out = tmp_path / "o.png"
    assert main(["stylize", content_path, "--style", style_path, "-o", str(out), "--size", "32", *FAST]) == 1
    err = capsys.readouterr().err
    assert "out of memory" in err and err.count("\n") == 1 and not out.exists()


def test_empty_folder_of_content_is_a_usage_error(tmp_path, style_path):
    (tmp_path / "empty").mkdir()
    assert main(["stylize", str(tmp_path / "empty"), "--style", style_path, "-o", str(tmp_path / "r"), *FAST]) == 2


def test_coarse_to_fine_runs_every_stage_and_ends_at_the_requested_size(tmp_path, content_path, style_path):
    out = tmp_path / "o.png"
    meta = _run_ok(["stylize", content_path, "--style", style_path, "-o", str(out), "--size", "64",
                    "--min-size", "16", "--iterations", "9"])  # fmt: skip
    sizes = [tuple(stage["size"]) for stage in meta["stages"]]
    assert [stage["iterations"] for stage in meta["stages"]] == [3, 3, 3]
    assert sizes[-1] == (64, 48) and sizes[0][0] < sizes[1][0] < 64
    assert min(sizes[0]) >= 16  # 4 poolings before relu5_1
    assert meta["iterations_run"] == 9 and Image.open(out).size == (64, 48)


def test_a_real_sigint_saves_the_best_image_and_exits_130(tmp_path, content_path, style_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "o.png"
    args = [
        sys.executable,
        "-c",
        "from painterly.cli import entry_point; entry_point()",
        "stylize",
        content_path,
        "-s",
        style_path,
        "-o",
        str(out),
        "--size",
        "64",
        "--iterations",
        "100000",
        "--weights",
        "random",
    ]
    proc = subprocess.Popen(
        args,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        # a job started in the background inherits SIGINT ignored, and Python then installs no handler
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    seen = ""
    deadline = time.monotonic() + 300
    while "5/100000" not in seen and time.monotonic() < deadline:  # tqdm's counter: a few iterations ran
        seen += proc.stderr.read(1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)  # generous: a loaded CI machine can take seconds per step
    assert proc.returncode == 130, err
    assert out.exists() and "saved the best image so far" in err and "Traceback" not in err
    assert json.loads(out.with_suffix(".json").read_text())["interrupted"] is True

"""Tests for painterly.outputs: atomic writes, formats, metadata, output path checks."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from PIL import Image

from painterly.errors import ExitCode, PainterlyError
from painterly.media import outputs
from painterly.media.outputs import (
    IMAGE_SUFFIXES,
    atomic_write_bytes,
    check_output_path,
    read_png_metadata,
    save_image,
    sidecar,
    write_json,
)


def _rgba() -> Image.Image:
    return Image.new("RGBA", (4, 3), (0, 0, 0, 0))


def test_atomic_write_replaces_the_file_and_leaves_no_temp_files(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    atomic_write_bytes(target, b"old")
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    assert os.listdir(tmp_path) == ["out.bin"]


def test_atomic_write_gives_a_new_file_the_usual_permissions(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    old_umask = os.umask(0o022)
    try:
        atomic_write_bytes(target, b"x")
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


def test_failed_replace_leaves_no_temp_file_and_the_old_file_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["out.bin"]


def test_failing_encoder_leaves_nothing_at_the_target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args, **kwargs):
        raise OSError("encoder exploded")

    monkeypatch.setattr(Image.Image, "save", fail)
    with pytest.raises(OSError, match="encoder exploded"):
        save_image(Image.new("RGB", (2, 2)), tmp_path / "out.png")
    assert os.listdir(tmp_path) == []


def test_interrupted_write_leaves_nothing_at_the_target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupt)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(tmp_path / "out.png", b"data")
    assert os.listdir(tmp_path) == []


def test_png_metadata_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "out.png"
    metadata = {
        "style": "starry night.jpg",
        "iterations": 300,
        "weights": [1.0, 1e5],
        "note": "ünïcode",
        "p": path,
    }
    save_image(Image.new("RGB", (2, 2)), path, metadata)
    assert read_png_metadata(path) == {**metadata, "p": str(path)}


def test_png_without_metadata_reads_as_empty(tmp_path: Path) -> None:
    path = tmp_path / "plain.png"
    save_image(Image.new("RGB", (2, 2)), path)
    assert read_png_metadata(path) == {}


@pytest.mark.parametrize("suffix", [".png", ".webp", ".tif", ".tiff"])
def test_formats_with_alpha_keep_transparency(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"out{suffix}"
    save_image(_rgba(), path)
    with Image.open(path) as image:
        assert image.mode == "RGBA"
        assert image.getpixel((0, 0))[3] == 0


@pytest.mark.parametrize(("suffix", "fmt"), [(".jpg", "JPEG"), (".JPEG", "JPEG"), (".bmp", "BMP")])
def test_formats_without_alpha_flatten_over_white(tmp_path: Path, suffix: str, fmt: str) -> None:
    path = tmp_path / f"out{suffix}"
    save_image(_rgba(), path)
    with Image.open(path) as image:
        assert image.format == fmt and image.mode == "RGB"
        assert all(channel >= 250 for channel in image.getpixel((0, 0)))


def test_jpeg_is_saved_at_quality_95(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = {}
    real_save = Image.Image.save

    def spy(self, fp, **options):
        seen.update(options)
        return real_save(self, fp, **options)

    monkeypatch.setattr(Image.Image, "save", spy)
    save_image(Image.new("RGB", (2, 2)), tmp_path / "out.jpg")
    assert seen["quality"] == 95


def test_write_json_is_indented_in_order_with_a_trailing_newline(tmp_path: Path) -> None:
    path = tmp_path / "out.json"
    write_json(path, {"b": 1, "a": Path("x.png")})
    text = path.read_text(encoding="utf-8")
    assert text == '{\n  "b": 1,\n  "a": "x.png"\n}\n'
    assert json.loads(text) == {"b": 1, "a": "x.png"}
    assert os.listdir(tmp_path) == ["out.json"]


def test_sidecar_swaps_the_suffix_for_the_given_one() -> None:
    assert sidecar(Path("a/out.png"), ".json") == Path("a/out.json")
    assert sidecar(Path("a/out.png"), "_losses.csv") == Path("a/out_losses.csv")


def test_check_output_path_accepts_every_image_suffix(tmp_path: Path) -> None:
    assert {".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp"} == IMAGE_SUFFIXES
    for suffix in IMAGE_SUFFIXES:
        assert check_output_path(tmp_path / f"out{suffix.upper()}") == tmp_path / f"out{suffix.upper()}"
    assert check_output_path(str(tmp_path / "out.png")) == tmp_path / "out.png"


@pytest.mark.parametrize(("name", "reason"), [("out.gif", "use one of .bmp, .jpeg"), ("out", "no suffix")])
def test_check_output_path_rejects_unsupported_suffixes_listing_valid_ones(
    tmp_path: Path, name: str, reason: str
) -> None:
    with pytest.raises(PainterlyError, match=reason) as exc_info:
        check_output_path(tmp_path / name)
    assert exc_info.value.exit_code == ExitCode.USAGE
    assert str(tmp_path / name) in str(exc_info.value)


def test_check_output_path_rejects_an_existing_directory(tmp_path: Path) -> None:
    folder = tmp_path / "folder.png"
    folder.mkdir()
    with pytest.raises(PainterlyError, match="is a directory") as exc_info:
        check_output_path(folder)
    assert exc_info.value.exit_code == ExitCode.USAGE


def test_check_output_path_rejects_a_missing_parent_directory(tmp_path: Path) -> None:
    with pytest.raises(PainterlyError, match="does not exist") as exc_info:
        check_output_path(tmp_path / "nowhere" / "out.png")
    assert exc_info.value.exit_code == ExitCode.USAGE
    assert "\n" not in str(exc_info.value)


def test_save_image_rejects_an_unsupported_suffix_without_writing(tmp_path: Path) -> None:
    with pytest.raises(PainterlyError, match="unsupported image format"):
        save_image(Image.new("RGB", (1, 1)), tmp_path / "out.gif")
    assert os.listdir(tmp_path) == []


def test_invalid_metadata_json_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.png"
    info = outputs.PngImagePlugin.PngInfo()
    info.add_itxt(outputs.METADATA_KEY, "{not json")
    Image.new("RGB", (1, 1)).save(path, pnginfo=info)
    with pytest.raises(PainterlyError, match="not valid JSON") as exc_info:
        read_png_metadata(path)
    assert exc_info.value.exit_code == ExitCode.USAGE

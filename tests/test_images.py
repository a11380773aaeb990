"""Tests for painterly.images: every mode and every broken input a user can hand us."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageCms

from painterly.errors import ExitCode, PainterlyError
from painterly.media.images import fit_size, load_image, parse_size, resize, split_alpha, to_pil, to_tensor

_SRGB_ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _png_bytes(image: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **options)
    return buffer.getvalue()


def _gradient(size: tuple[int, int] = (16, 12)) -> Image.Image:
    w, h = size
    x = np.linspace(0, 255, w, dtype=np.uint8)[None, :].repeat(h, 0)
    y = np.linspace(0, 255, h, dtype=np.uint8)[:, None].repeat(w, 1)
    return Image.fromarray(np.stack([x, y, 255 - x], axis=-1))


def _assert_usage_error(exc_info: pytest.ExceptionInfo, path: Path | str) -> None:
    err = exc_info.value
    assert err.exit_code == ExitCode.USAGE
    assert str(path) in str(err)
    assert "\n" not in str(err)


# --- modes -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        (Image.new("1", (2, 2), 1), (255, 255, 255)),
        (Image.new("L", (2, 2), 77), (77, 77, 77)),
        (Image.new("RGB", (2, 2), (1, 2, 3)), (1, 2, 3)),
        (Image.new("CMYK", (2, 2), (255, 0, 0, 0)), (0, 255, 255)),
        (Image.new("YCbCr", (2, 2), (128, 128, 128)), (128, 128, 128)),
        (Image.new("I;16", (2, 2), 65535), (255, 255, 255)),
        (Image.new("I;16", (2, 2), 32896), (128, 128, 128)),
        (Image.new("I;16B", (2, 2), 65535), (255, 255, 255)),
        (Image.new("I", (2, 2), 65535), (255, 255, 255)),
        (Image.new("I", (2, 2), 200), (200, 200, 200)),
        (Image.new("F", (2, 2), 0.5), (128, 128, 128)),
        (Image.new("F", (2, 2), 100.0), (100, 100, 100)),
    ],
    ids=lambda v: v.mode if isinstance(v, Image.Image) else None,
)
def test_opaque_modes_load_as_rgb_with_the_expected_colour(image: Image.Image, expected: tuple) -> None:
    loaded = load_image(image)
    assert loaded.mode == "RGB"
    assert loaded.size == image.size
    assert loaded.getpixel((1, 1)) == expected


def test_cmyk_pure_cyan_is_roughly_cyan() -> None:
    r, g, b = load_image(Image.new("CMYK", (1, 1), (255, 0, 0, 0))).getpixel((0, 0))
    assert r < 20 and g > 235 and b > 235


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        (Image.new("RGBA", (2, 2), (10, 20, 30, 40)), (10, 20, 30, 40)),
        (Image.new("LA", (2, 2), (90, 128)), (90, 90, 90, 128)),
    ],
    ids=["RGBA", "LA"],
)
def test_modes_with_alpha_load_as_rgba(image: Image.Image, expected: tuple) -> None:
    loaded = load_image(image)
    assert loaded.mode == "RGBA"
    assert loaded.getpixel((0, 0)) == expected


def test_palette_with_transparency_loads_as_rgba() -> None:
    image = Image.new("P", (2, 1))
    image.putpalette([255, 0, 0, 0, 255, 0])
    image.putpixel((1, 0), 1)
    image.info["transparency"] = 0
    loaded = load_image(image)
    assert loaded.mode == "RGBA"
    assert loaded.getpixel((0, 0))[3] == 0
    assert loaded.getpixel((1, 0)) == (0, 255, 0, 255)


def test_palette_alpha_mode_loads_as_rgba() -> None:
    image = Image.new("PA", (2, 2))
    image.putpalette([0, 0, 255])
    assert load_image(image).getpixel((0, 0)) == (0, 0, 255, 0)


def test_palette_without_transparency_loads_as_rgb() -> None:
    image = Image.new("P", (2, 2))
    image.putpalette([9, 8, 7])
    assert load_image(image).getpixel((0, 0)) == (9, 8, 7)


def test_sixteen_bit_png_file_scales_to_eight_bits(tmp_path: Path) -> None:
    path = tmp_path / "grey16.png"
    Image.fromarray(np.array([[0, 65535], [257, 32896]], dtype=np.uint16)).save(path)
    loaded = load_image(path)
    assert np.asarray(loaded)[..., 0].tolist() == [[0, 255], [1, 128]]


def test_png_with_transparency_file_loads_as_rgba(tmp_path: Path) -> None:
    path = tmp_path / "alpha.png"
    Image.new("RGBA", (3, 2), (1, 2, 3, 4)).save(path)
    assert load_image(path).getpixel((2, 1)) == (1, 2, 3, 4)


def test_loading_a_pil_image_does_not_mutate_or_return_it() -> None:
    image = Image.new("RGB", (2, 2), (5, 6, 7))
    loaded = load_image(image)
    loaded.putpixel((0, 0), (0, 0, 0))
    assert loaded is not image
    assert image.getpixel((0, 0)) == (5, 6, 7)


def test_exif_orientation_6_rotates_a_4x2_image_to_2x4(tmp_path: Path) -> None:
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display
    Image.new("RGB", (4, 2), (200, 0, 0)).save(path, exif=exif)
    assert load_image(path).size == (2, 4)


def test_image_with_srgb_icc_profile_loads_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "icc.png"
    _gradient().save(path, icc_profile=_SRGB_ICC)
    loaded = load_image(path)
    assert loaded.mode == "RGB"
    diff = np.abs(np.asarray(loaded, dtype=int) - np.asarray(_gradient(), dtype=int))
    assert diff.max() <= 2


def test_embedded_icc_profile_goes_through_a_colour_transform(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = ImageCms.profileToProfile
    monkeypatch.setattr(ImageCms, "profileToProfile", lambda *a, **k: calls.append(a) or real(*a, **k))
    path = tmp_path / "icc.png"
    Image.new("RGBA", (2, 2), (10, 20, 30, 40)).save(path, icc_profile=_SRGB_ICC)
    loaded = load_image(path)
    assert len(calls) == 1
    assert loaded.mode == "RGBA" and loaded.getpixel((0, 0))[3] == 40


def test_image_with_broken_icc_profile_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "broken_icc.png"
    Image.new("RGB", (2, 2), (10, 20, 30)).save(path, icc_profile=b"not an icc profile")
    assert load_image(path).getpixel((0, 0)) == (10, 20, 30)


# --- tensors -----------------------------------------------------------------------------------------


def test_tensor_and_pil_round_trip_is_exact_for_uint8_values() -> None:
    pixels = np.arange(256 * 3, dtype=np.int64).reshape(16, 16, 3) % 256
    image = Image.fromarray(pixels.astype(np.uint8))
    tensor = to_tensor(image)
    assert tensor.shape == (1, 3, 16, 16) and tensor.dtype == torch.float32
    assert np.array_equal(np.asarray(to_pil(tensor)), np.asarray(image))


def test_to_pil_rounds_and_clamps_instead_of_truncating() -> None:
    tensor = torch.tensor([0.999 / 255, 1.6 / 255, -0.5, 2.0]).view(1, 1, 4).expand(3, 1, 4)
    assert np.asarray(to_pil(tensor))[0, :, 0].tolist() == [1, 2, 0, 255]


def test_to_pil_accepts_a_tensor_that_requires_grad() -> None:
    tensor = torch.full((1, 3, 2, 2), 0.5, requires_grad=True)
    assert to_pil(tensor).getpixel((0, 0)) == (128, 128, 128)


def test_load_image_accepts_rgb_and_rgba_tensors() -> None:
    assert load_image(torch.ones(3, 2, 5)).size == (5, 2)
    rgba = load_image(torch.zeros(1, 4, 2, 2))
    assert rgba.mode == "RGBA" and rgba.getpixel((0, 0)) == (0, 0, 0, 0)


@pytest.mark.parametrize("shape", [(2, 4, 4), (4, 4), (2, 3, 4, 4), (1, 3, 0, 4)])
def test_load_image_rejects_a_tensor_of_the_wrong_shape(shape: tuple[int, ...]) -> None:
    with pytest.raises(PainterlyError) as exc_info:
        load_image(torch.zeros(shape))
    assert exc_info.value.exit_code == ExitCode.USAGE
    assert "\n" not in str(exc_info.value)


# --- alpha, sizes ------------------------------------------------------------------------------------


def test_split_alpha_composites_over_the_background() -> None:
    rgb, alpha = split_alpha(Image.new("RGBA", (1, 1), (0, 0, 0, 0)), background=(10, 20, 30))
    assert rgb.mode == "RGB" and rgb.getpixel((0, 0)) == (10, 20, 30)
    assert alpha.mode == "L" and alpha.getpixel((0, 0)) == 0
    half, _ = split_alpha(Image.new("RGBA", (1, 1), (0, 0, 0, 128)))
    assert half.getpixel((0, 0)) == (127, 127, 127)


def test_split_alpha_of_an_rgb_image_has_no_alpha() -> None:
    image = Image.new("RGB", (1, 1))
    assert split_alpha(image) == (image, None)


@pytest.mark.parametrize(
    ("width", "height", "size", "expected"),
    [
        (1024, 768, 256, (256, 192)),
        (768, 1024, 256, (192, 256)),
        (100, 100, (400, 300), (300, 300)),
        (800, 200, (400, 300), (400, 100)),
        (3, 2, 5, (5, 3)),  # 3.33 -> 3
        (4, 3, 2, (2, 2)),  # 1.5 rounds half up
        (1000, 1, 10, (10, 1)),  # never below 1 pixel
        (32, 32, 64, (64, 64)),
    ],
)
def test_fit_size_matches_hand_computed_sizes(width: int, height: int, size, expected: tuple) -> None:
    assert fit_size(width, height, size) == expected


def test_resize_returns_the_same_image_when_the_size_is_unchanged() -> None:
    image = _gradient((8, 6))
    assert resize(image, (8, 6)) is image
    assert resize(image, (4, 3)).size == (4, 3)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("512", 512), (" 64 ", 64), ("400x300", (400, 300)), ("400X300", (400, 300)), ("400×300", (400, 300))],
)
def test_parse_size_accepts_long_side_or_width_by_height(text: str, expected) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "0", "-5", "12.5", "400x0", "x300", "400x", "big", "1x2x3"])
def test_parse_size_rejects_bad_values_naming_them(text: str) -> None:
    with pytest.raises(PainterlyError) as exc_info:
        parse_size(text)
    assert exc_info.value.exit_code == ExitCode.USAGE
    assert repr(text) in str(exc_info.value)


# --- bad files ---------------------------------------------------------------------------------------


def test_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "missing.png"
    with pytest.raises(PainterlyError, match="no such file") as exc_info:
        load_image(path)
    _assert_usage_error(exc_info, path)


def test_directory_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(PainterlyError, match="is a directory") as exc_info:
        load_image(tmp_path)
    _assert_usage_error(exc_info, tmp_path)


def test_unreadable_file_is_a_usage_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "secret.png"
    path.write_bytes(_png_bytes(Image.new("RGB", (1, 1))))

    def deny(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Image, "open", deny)  # chmod does not stop root, so fake the denial
    with pytest.raises(PainterlyError, match="permission denied") as exc_info:
        load_image(path)
    _assert_usage_error(exc_info, path)


def test_zero_byte_file_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.png"
    path.touch()
    with pytest.raises(PainterlyError, match="empty file") as exc_info:
        load_image(path)
    _assert_usage_error(exc_info, path)


@pytest.mark.parametrize(
    ("name", "data"),
    [("notes.jpg", b"this is a text file, not a JPEG\n"), ("noise.png", bytes(range(256)) * 4)],
)
def test_file_that_is_not_an_image_is_a_usage_error(tmp_path: Path, name: str, data: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(PainterlyError, match="not an image") as exc_info:
        load_image(path)
    _assert_usage_error(exc_info, path)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_image_is_a_usage_error(tmp_path: Path, fmt: str) -> None:
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, format=fmt)  # noise: the cut lands in pixel data, not headers
    data = buffer.getvalue()
    path = tmp_path / f"cut.{fmt.lower()}"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(PainterlyError, match="image file is truncated") as exc_info:
        load_image(path)
    _assert_usage_error(exc_info, path)
    assert isinstance(exc_info.value.__cause__, OSError)


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("header.png", b"\x89PNG\r\n\x1a\n" + b"x" * 50),
        ("header.webp", b"RIFF\x20\0\0\0WEBPVP8 " + bytes(24)),
    ],
)
def test_image_with_a_corrupt_header_is_a_usage_error(tmp_path: Path, name: str, data: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(PainterlyError, match=r"corrupt|not an image") as exc_info:
        load_image(path)
    _assert_usage_error(exc_info, path)


def test_image_over_max_pixels_is_a_usage_error_naming_its_size(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    Image.new("RGB", (20, 20)).save(path)
    with pytest.raises(PainterlyError, match="image too large: 20×20 pixels, limit 100") as exc_info:
        load_image(path, max_pixels=100)
    _assert_usage_error(exc_info, path)
    assert load_image(path, max_pixels=400).size == (20, 20)


@pytest.mark.parametrize("pillow_limit", [300, 100], ids=["pillow-warning", "pillow-error"])
def test_images_over_pillows_bomb_limit_are_usage_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pillow_limit: int
) -> None:
    path = tmp_path / "bomb.png"
    Image.new("RGB", (20, 20)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", pillow_limit)  # 400 px: over it (warning), or twice it (error)
    with pytest.raises(PainterlyError, match="image too large") as exc_info:
        load_image(path)
    _assert_usage_error(exc_info, path)

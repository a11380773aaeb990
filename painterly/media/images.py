"""Decode, resize and convert images: files, PIL images and tensors in; 8-bit sRGB PIL images out.

This module reads files but never writes them (writing lives in ``outputs.py``)."""

from __future__ import annotations

import io
import os
import re
import stat
import struct
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from painterly.errors import ExitCode, PainterlyError

ImageSource = str | os.PathLike | Image.Image | torch.Tensor

_SIXTEEN_BIT = frozenset({"I;16", "I;16B", "I;16L", "I;16N"})
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
_PLAIN_CONVERSIONS = {"1": "L", "La": "LA", "RGBa": "RGBA"}  # premultiplied alpha is undone by Pillow
# What a corrupt file makes Pillow's decoders raise, besides OSError ("image file is truncated", ...).
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error)
_SIZE_RE = re.compile(r"(\d+)(?:\s*[xX×]\s*(\d+))?")


def load_image(source: ImageSource, *, max_pixels: int | None = None) -> Image.Image:
    """Return ``source`` as an 8-bit sRGB image: mode "RGBA" if it has any transparency, else "RGB".

    Applies the EXIF orientation and the embedded ICC profile. ``max_pixels`` (default: Pillow's
    ``Image.MAX_IMAGE_PIXELS``) can only tighten Pillow's decompression-bomb limit, never loosen it.
    Every problem with the input raises a one-line ``PainterlyError`` (``ExitCode.USAGE``)."""
    if isinstance(source, torch.Tensor):
        try:
            return Image.fromarray(_tensor_to_array(source, channels=(3, 4)))
        except ValueError as exc:
            raise PainterlyError(f"tensor: {exc}", ExitCode.USAGE) from exc
    if isinstance(source, Image.Image):
        label = _one_line(getattr(source, "filename", "") or "image")
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = _decode(source, label)
        out = _to_srgb(image)
        return out.copy() if out is source else out  # never hand back (and let callers mutate) the input
    return _to_srgb(_read(Path(source), max_pixels))


def _read(path: Path, max_pixels: int | None) -> Image.Image:
    """Open, check and fully decode the image file at ``path``, with EXIF orientation applied."""
    label = _one_line(str(path))
    try:
        st = path.stat()
    except FileNotFoundError as exc:
        raise _error(label, "no such file") from exc
    except OSError as exc:
        raise _error(label, _os_reason(exc)) from exc
    if stat.S_ISDIR(st.st_mode):
        raise _error(label, "is a directory, expected an image file")
    if st.st_size == 0:
        raise _error(label, "empty file")
    limits = [n for n in (max_pixels, Image.MAX_IMAGE_PIXELS) if n is not None]
    with warnings.catch_warnings():
        # Opening reads only the header. Pillow's warning is silenced here because the size check
        # below covers it (limit <= MAX_IMAGE_PIXELS) and can name WxH; decoding turns it into an error.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            opened = Image.open(path)
        except Image.DecompressionBombError as exc:
            raise _error(label, f"image too large ({_one_line(str(exc))})") from exc
        except UnidentifiedImageError as exc:
            raise _error(label, "not an image, or a format Pillow cannot read") from exc
        except OSError as exc:
            raise _error(label, _os_reason(exc)) from exc
        with opened:
            w, h = opened.size
            if limits and w * h > min(limits):
                raise _error(label, f"image too large: {w}×{h} pixels, limit {min(limits)}")
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return _decode(opened, label)


def _decode(image: Image.Image, label: str) -> Image.Image:
    """Force decoding (so truncation shows up here) and apply the EXIF orientation."""
    try:
        image.load()
        return ImageOps.exif_transpose(image)
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise _error(label, f"image too large ({_one_line(str(exc))})") from exc
    except _DECODE_ERRORS as exc:
        raise _error(label, _corrupt(exc)) from exc


def _to_srgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to "RGB" or "RGBA", going through the ICC profile when there is one."""
    has_alpha = image.mode in _ALPHA_MODES or "transparency" in image.info
    icc = image.info.get("icc_profile")
    image = _to_8bit(image)
    alpha = None
    if has_alpha:
        rgba = image.convert("RGBA")  # also turns palette / tRNS transparency into a real alpha channel
        alpha = rgba.getchannel("A")
        image = rgba.convert("L" if image.mode in ("L", "LA") else "RGB")  # keep grey for a grey profile
    elif image.mode not in ("L", "RGB", "CMYK"):
        image = image.convert("RGB")  # P, YCbCr, ...: the profile describes their RGB values
    rgb = _apply_icc(image, icc) if icc else None
    if rgb is None:
        rgb = image if image.mode == "RGB" else image.convert("RGB")
    if alpha is not None:
        rgb.putalpha(alpha)  # rgb is a fresh image here, never the caller's
    return rgb


def _to_8bit(image: Image.Image) -> Image.Image:
    """Rescale 16-bit, 32-bit integer and float greyscale to mode "L"; other modes pass through."""
    if image.mode in _SIXTEEN_BIT:
        values = np.asarray(image).astype(np.float64) / 257.0  # 65535 -> 255
    elif image.mode == "I":
        values = np.asarray(image).astype(np.float64)
        if values.size and values.max() > 255:
            values /= 257.0  # Pillow also opens 16-bit files as "I"
    elif image.mode == "F":
        values = np.nan_to_num(np.asarray(image).astype(np.float64))
        if values.size and values.max() <= 1.0:
            values *= 255.0
    elif image.mode in _PLAIN_CONVERSIONS:
        return image.convert(_PLAIN_CONVERSIONS[image.mode])
    else:
        return image
    return Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8))


def _apply_icc(image: Image.Image, icc: bytes) -> Image.Image | None:
    """Convert ``image`` (no alpha) from its embedded profile to sRGB; None if the profile is unusable."""
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        target = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
        return ImageCms.profileToProfile(image, source, target, outputMode="RGB")
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return None  # broken profile, or one that does not match the image's mode: plain convert instead


def split_alpha(
    image: Image.Image, background: tuple[int, int, int] = (255, 255, 255)
) -> tuple[Image.Image, Image.Image | None]:
    """(RGB image composited over ``background``, alpha as mode "L"), or (RGB image, None) without alpha."""
    if image.mode not in _ALPHA_MODES and "transparency" not in image.info:
        return (image if image.mode == "RGB" else image.convert("RGB")), None
    rgba = image if image.mode == "RGBA" else image.convert("RGBA")
    alpha = rgba.getchannel("A")
    flat = Image.new("RGB", rgba.size, background)
    flat.paste(rgba.convert("RGB"), mask=alpha)  # flat = fg·a + bg·(1 - a)
    return flat, alpha


def fit_size(width: int, height: int, size: int | tuple[int, int]) -> tuple[int, int]:
    """Scale (width, height) so the long side is ``size``, or to the largest size inside a (W, H) box.

    The aspect ratio is kept, each side is rounded half up and is at least 1."""
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    if isinstance(size, int):
        box_w = box_h = size
    else:
        box_w, box_h = size
    if box_w <= 0 or box_h <= 0:
        raise ValueError(f"target size must be positive, got {size}")
    if box_w * height <= box_h * width:  # width is the binding side; exact integer comparison
        return box_w, max(1, _round_div(height * box_w, width))
    return max(1, _round_div(width * box_h, height)), box_h


def _round_div(a: int, b: int) -> int:
    """a / b rounded half up, in integers (no float error at .5)."""
    return (2 * a + b) // (2 * b)


def resize(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Lanczos resize; returns ``image`` itself when it already has that size."""
    if image.size == tuple(size):
        return image
    return image.resize(tuple(size), Image.Resampling.LANCZOS, reducing_gap=3.0)


def to_tensor(image: Image.Image, device: torch.device | str = "cpu") -> torch.Tensor:
    """RGB image -> (1, 3, H, W) float32 in [0, 1] on ``device``."""
    if image.mode != "RGB":
        raise ValueError(f"expected an RGB image, got mode {image.mode!r} (use load_image / split_alpha)")
    pixels = torch.from_numpy(np.array(image, dtype=np.uint8))  # (H, W, 3)
    return pixels.permute(2, 0, 1).unsqueeze(0).to(device=device).float().div_(255.0)


def to_pil(tensor: torch.Tensor) -> Image.Image:
    """(1, 3, H, W) or (3, H, W) float tensor -> RGB image; values clamped to [0, 1] and rounded."""
    return Image.fromarray(_tensor_to_array(tensor, channels=(3,)))


def _tensor_to_array(tensor: torch.Tensor, channels: tuple[int, ...]) -> np.ndarray:
    """Float (C, H, W) or (1, C, H, W) tensor -> uint8 (H, W, C) array; ValueError on a bad shape or dtype."""
    shape = tuple(tensor.shape)
    if len(shape) == 4 and shape[0] == 1:
        tensor = tensor[0]
    if tensor.dim() != 3 or tensor.shape[0] not in channels or 0 in tensor.shape:
        expected = " or ".join(f"({c}, H, W)" for c in channels)
        raise ValueError(f"expected a tensor of shape {expected}, optionally with a batch of 1, got {shape}")
    if not tensor.is_floating_point():
        raise ValueError(f"expected a float tensor with values in [0, 1], got {tensor.dtype}")
    t = tensor.detach().to("cpu", torch.float32).nan_to_num(0.0).clamp(0.0, 1.0)
    return t.mul(255.0).round().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()


def parse_size(text: str) -> int | tuple[int, int]:
    """ "512" -> 512 (long side), "400x300" (or "400X300", "400×300") -> (400, 300)."""
    match = _SIZE_RE.fullmatch(text.strip())
    if match:
        long_side, height = int(match[1]), match[2]
        if height is None and long_side > 0:
            return long_side
        if height is not None and long_side > 0 and int(height) > 0:
            return long_side, int(height)
    raise PainterlyError(
        f"invalid size {_one_line(repr(text))}: expected a positive integer or WxH, e.g. 512 or 400x300",
        ExitCode.USAGE,
    )


def _error(label: str, reason: str) -> PainterlyError:
    return PainterlyError(f"{label}: {reason}", ExitCode.USAGE)


def _os_reason(exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError):
        return "no such file"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, IsADirectoryError):
        return "is a directory, expected an image file"
    if exc.errno is None:  # raised by a Pillow plugin, not the OS
        return _corrupt(exc)
    return f"cannot read file ({_one_line(exc.strerror or str(exc))})"


def _corrupt(exc: BaseException) -> str:
    return f"corrupt or truncated image ({_one_line(str(exc)) or type(exc).__name__})"


def _one_line(text: str) -> str:
    """Collapse whitespace so an error message is always a single line."""
    return " ".join(text.split())

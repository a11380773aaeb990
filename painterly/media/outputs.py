"""Everything that writes files: output path checks, sidecar names, atomic image and JSON writes."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from tempfile import NamedTemporaryFile

from PIL import Image, PngImagePlugin, UnidentifiedImageError

from painterly.errors import ExitCode, PainterlyError
from painterly.media.images import split_alpha

IMAGE_SUFFIXES: frozenset[str] = frozenset({".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp"})
METADATA_KEY = "painterly"  # iTXt chunk holding the run's settings as JSON

_FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".webp": "WEBP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".bmp": "BMP",
}
_KEEPS_ALPHA = frozenset({"PNG", "WEBP", "TIFF"})


def check_output_path(path: str | os.PathLike) -> Path:
    """Return ``path`` as a Path if an image can be written there; else raise ``PainterlyError`` (USAGE)."""
    path = Path(path)
    _image_format(path)
    if path.is_dir():
        raise PainterlyError(f"{path}: is a directory, expected an image file name", ExitCode.USAGE)
    if not path.parent.is_dir():
        raise PainterlyError(f"{path}: directory {path.parent} does not exist", ExitCode.USAGE)
    return path


def sidecar(path: Path, suffix: str) -> Path:
    """``sidecar(Path("a/out.png"), ".json")`` -> ``a/out.json``; "_losses.csv" -> ``a/out_losses.csv``."""
    return path.with_name(path.stem + suffix)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so readers see the old file or the new one, never half of one."""
    path = Path(path)
    mode = _mode_for(path)
    tmp_name = None
    try:
        with NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False) as tmp:
            tmp_name = tmp.name
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.chmod(tmp_name, mode)  # NamedTemporaryFile creates 0600; give the usual permissions
        os.replace(tmp_name, path)
    except BaseException:  # including Ctrl-C: never leave a temp file behind
        if tmp_name is not None:
            Path(tmp_name).unlink(missing_ok=True)
        raise


def save_image(image: Image.Image, path: str | os.PathLike, metadata: dict | None = None) -> None:
    """Encode ``image`` in the format named by the suffix and write it atomically.

    PNG stores ``metadata`` as JSON in an iTXt chunk (see ``read_png_metadata``); other formats ignore it.
    Transparency is kept in PNG, WebP and TIFF and flattened over white for JPEG and BMP."""
    path = Path(path)
    fmt = _image_format(path)
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    if has_alpha and fmt not in _KEEPS_ALPHA:
        image = split_alpha(image)[0]
    elif image.mode not in ("RGB", "RGBA", "L"):
        image = image.convert("RGBA" if has_alpha else "RGB")
    options: dict = {}
    if fmt == "JPEG":
        options["quality"] = 95
    if fmt == "PNG" and metadata is not None:
        info = PngImagePlugin.PngInfo()
        info.add_itxt(METADATA_KEY, json.dumps(metadata, default=str, ensure_ascii=False))
        options["pnginfo"] = info
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    atomic_write_bytes(path, buffer.getvalue())


def write_json(path: str | os.PathLike, obj: dict) -> None:
    """Write ``obj`` as indented JSON with a trailing newline, atomically; odd values go through ``str``."""
    text = json.dumps(obj, indent=2, sort_keys=False, default=str, ensure_ascii=False) + "\n"
    atomic_write_bytes(path, text.encode("utf-8"))


def read_png_metadata(path: str | os.PathLike) -> dict:
    """Return the metadata ``save_image`` stored in a PNG, or {} if there is none."""
    try:
        with Image.open(path) as image:
            text = image.info.get(METADATA_KEY)
    except (OSError, UnidentifiedImageError) as exc:
        raise PainterlyError(f"{path}: cannot read image ({' '.join(str(exc).split())})", ExitCode.USAGE) from exc
    if text is None:
        return {}
    try:
        metadata = json.loads(text)
    except ValueError as exc:
        raise PainterlyError(f"{path}: {METADATA_KEY} metadata is not valid JSON", ExitCode.USAGE) from exc
    if not isinstance(metadata, dict):
        raise PainterlyError(f"{path}: {METADATA_KEY} metadata is not a JSON object", ExitCode.USAGE)
    return metadata


def _image_format(path: Path) -> str:
    """Pillow format name for the suffix of ``path``; ``PainterlyError`` if unsupported."""
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        valid = ", ".join(sorted(IMAGE_SUFFIXES))
        got = repr(path.suffix) if path.suffix else "no suffix"
        raise PainterlyError(f"{path}: unsupported image format ({got}); use one of {valid}", ExitCode.USAGE)
    return fmt


def _mode_for(path: Path) -> int:
    """Permission bits for a new file at ``path``: the existing file's, else 0o666 minus the umask."""
    try:
        return path.stat().st_mode & 0o777
    except OSError:
        return 0o666 & ~_umask()


def _umask() -> int:
    """The process umask, read without setting it (os.umask would briefly change it for every thread)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022

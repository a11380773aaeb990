"""What one server allows, so that it stays up for many users: upload bytes and pixels, output size, iterations,
seconds per optimisation, queue length and how many runs of each kind at once. Also the checks that turn a bad
upload into one line in the page."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field

from PIL import Image

from painterly.errors import PainterlyError
from painterly.media.images import load_image


@dataclass(frozen=True)
class Limits:
    """Server limits; every one is a ``painterly web`` flag of the same name."""

    max_upload_mb: float = field(default=20.0, metadata={"help": "Largest upload in MB."})
    max_pixels: int = field(default=24_000_000, metadata={"help": "Largest upload in decoded pixels (W x H)."})
    max_size: int = field(default=1024, metadata={"help": "Largest output long side in px."})
    max_iterations: int = field(default=1000, metadata={"help": "Most optimisation steps per run."})
    time_limit: float = field(default=600.0, metadata={"help": "Seconds an optimisation may run (keeps the best)."})
    queue_size: int = field(default=16, metadata={"help": "Requests that may wait; more are turned away."})
    concurrency: int = field(default=1, metadata={"help": "Optimisations running at once."})
    fast_concurrency: int = field(default=2, metadata={"help": "One-pass runs at once (beside optimisations)."})

    def __post_init__(self) -> None:
        for name in ("max_upload_mb", "max_pixels", "max_size", "max_iterations", "time_limit", "queue_size",
                     "concurrency", "fast_concurrency"):  # fmt: skip
            if not getattr(self, name) > 0:
                raise PainterlyError(f"invalid --{name.replace('_', '-')}: {getattr(self, name)!r} (must be > 0)")
        if self.max_size < 64:
            raise PainterlyError(f"invalid --max-size: {self.max_size} (must be >= 64)")


def check_image(path: str | None, label: str, limits: Limits, *, required: bool = True) -> str | None:
    """``path`` if it is an image within the limits, else a ``PainterlyError`` naming ``label`` (never the
    server's temporary path). Decodes it fully, so a truncated file is caught here and not mid-run."""
    if not path:
        if required:
            raise PainterlyError(f"{label}: missing, upload an image")
        return None
    try:
        size = os.path.getsize(path)
    except OSError as exc:
        raise PainterlyError(f"{label}: cannot read the upload") from exc
    if size > limits.max_upload_mb * 1e6:
        raise PainterlyError(f"{label}: {size / 1e6:.1f} MB, the limit is {limits.max_upload_mb:g} MB")
    try:
        load_image(path, max_pixels=limits.max_pixels)
    except PainterlyError as err:
        reason = str(err).split(": ", 1)[-1] if str(err).startswith(str(path)) else str(err)
        raise PainterlyError(f"{label}: {reason}") from err
    return path


def image_size(path: str) -> tuple[int, int]:
    with Image.open(path) as image:
        return image.size


class Deadline:
    """A cancel token (``is_set()``) that is set by ``stop()`` or once ``seconds`` have passed."""

    def __init__(self, seconds: float) -> None:
        self._stop = threading.Event()
        self._end = time.monotonic() + seconds
        self.timed_out = False

    def stop(self) -> None:
        self._stop.set()

    def is_set(self) -> bool:
        if self._stop.is_set():
            return True
        if time.monotonic() > self._end:
            self.timed_out = True
            return True
        return False

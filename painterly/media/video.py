"""Decode and encode frame sequences with PyAV (its wheels bundle FFmpeg): video files, animated GIF/WebP and
folders of frames. Frames stream through as (H, W, 3) uint8 RGB arrays, so memory does not grow with length.

Outputs keep the input's frame rate; the audio stream is copied packet by packet when the output container
takes its codec (PyAV cookbook: remux), re-encoded to the container's default audio codec when it does not,
and dropped (with a note) for GIF, WebP and folders. Outputs are written atomically: a temporary file (or
folder) in the same directory, renamed at the end."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image, ImageSequence

from painterly.errors import ExitCode, PainterlyError
from painterly.media.images import load_image
from painterly.media.outputs import IMAGE_SUFFIXES

try:
    import av
except ImportError:  # pragma: no cover - the optional extra is missing
    av = None

ANIMATION_SUFFIXES = frozenset({".gif", ".webp"})  # decoded by Pillow: FFmpeg cannot decode animated WebP
FOLDER_RATE = Fraction(25)  # a folder of frames has no rate of its own
# suffix -> (container format, video codec, pixel format)
VIDEO_OUTPUTS = {
    ".mp4": ("mp4", "libx264", "yuv420p"),
    ".mov": ("mov", "libx264", "yuv420p"),
    ".mkv": ("matroska", "libx264", "yuv420p"),
    ".webm": ("webm", "libvpx-vp9", "yuv420p"),
    ".avi": ("avi", "mpeg4", "yuv420p"),
    ".gif": ("gif", "gif", "pal8"),
    ".webp": ("webp", "libwebp_anim", "bgra"),
}
# x264 with frame threads gave different bits when frames arrived at a different pace (a resumed run);
# one thread is repeatable and still encodes 640x360 far faster than any painter. CRF 16, not x264's usual 18:
# a temporally consistent clip is steady, and at 18 x264 gives it half the bits of independent frames and drops
# the painted detail (zoom clip: sharpness 0.94 of independent frames in the file, 1.02 in the frames; 16: 0.96,
# +28 % bytes)
_CODEC_OPTIONS = {"libx264": {"crf": "16", "preset": "fast", "threads": "1"}, "libvpx-vp9": {"crf": "30", "b": "0"}}
# swscale's automatic slice threads (PyAV's reformat default) gave different pixels from run to run under
# load, so every conversion here runs on one thread: a resumed run must match an uninterrupted one bit for bit
_SWSCALE_THREADS = 1
_CONTAINER_OPTIONS = {"webp": {"loop": "0"}, "gif": {"loop": "0"}}
_NO_AUDIO = frozenset({"gif", "webp"})


def require_av() -> None:
    if av is None:
        raise PainterlyError('video needs PyAV and OpenCV: pip install -e ".[video]"', ExitCode.USAGE)


def _error(path: Path, exc: BaseException | str) -> PainterlyError:
    text = " ".join(str(exc).split()) if str(exc) else type(exc).__name__
    return PainterlyError(f"{path}: not a readable video ({text})", ExitCode.USAGE)


@dataclass
class VideoSource:
    """An opened input: its size, frame rate, frame count (an estimate for video files) and audio stream."""

    path: Path
    kind: str  # "video" | "animation" | "folder"
    width: int
    height: int
    rate: Fraction
    frame_count: int
    audio: str | None = None  # the audio codec's name, None without audio
    _files: list[Path] = field(default_factory=list, repr=False)

    def frames(self, start: float = 0.0, duration: float | None = None) -> Iterator[np.ndarray]:
        """Yield (H, W, 3) uint8 RGB frames whose time t (index / rate for folders and animations) is in
        [start, start + duration)."""
        end = float("inf") if duration is None else start + duration
        source = {"video": self._video_frames, "animation": self._animation_frames, "folder": self._folder_frames}
        for t, frame in source[self.kind](start):
            if t >= end - 1e-9:
                return
            if t >= start - 1e-9:
                yield frame

    def _video_frames(self, start: float) -> Iterator[tuple[float, np.ndarray]]:
        try:
            with av.open(str(self.path)) as box:
                stream = box.streams.video[0]
                stream.thread_type = "AUTO"
                if start > 0:
                    box.seek(int(start / stream.time_base), stream=stream)  # to the keyframe before start
                for k, frame in enumerate(box.decode(stream)):
                    t = float(frame.time) if frame.time is not None else k / float(self.rate)
                    size = {"width": self.width, "height": self.height}
                    yield t, frame.to_ndarray(format="rgb24", threads=_SWSCALE_THREADS, **size)
        except av.error.EOFError:
            return  # a container that ends before its first packet: no frames
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            raise _error(self.path, exc) from exc

    def _animation_frames(self, start: float) -> Iterator[tuple[float, np.ndarray]]:
        try:
            with Image.open(self.path) as image:
                for k, frame in enumerate(ImageSequence.Iterator(image)):
                    yield k / float(self.rate), _rgb(frame, self.width, self.height)
        except (OSError, ValueError, EOFError) as exc:
            raise _error(self.path, exc) from exc

    def _folder_frames(self, start: float) -> Iterator[tuple[float, np.ndarray]]:
        for k, file in enumerate(self._files):
            t = k / float(self.rate)
            if t < start - 1e-9:
                continue
            image = load_image(file)
            if image.size != (self.width, self.height):
                raise PainterlyError(
                    f"{file}: {image.size[0]}x{image.size[1]}, but the first frame is {self.width}x{self.height}"
                )
            yield t, np.asarray(image.convert("RGB"))


def _rgb(frame: Image.Image, width: int, height: int) -> np.ndarray:
    """An animation frame over white (GIF/WebP transparency), as RGB uint8."""
    rgba = frame.convert("RGBA")
    if rgba.size != (width, height):
        rgba = rgba.resize((width, height))
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))


def open_video(path: str | os.PathLike, rate: Fraction | None = None) -> VideoSource:
    """Open and check an input; ``PainterlyError`` (USAGE) for a missing file, a file that is not a video,
    a truncated one, no video stream, an unsupported codec or zero frames. The first frame is decoded here,
    so a run fails before it writes anything. ``rate`` overrides a folder's (default 25 fps)."""
    require_av()
    path = Path(path)
    if not path.exists():
        raise PainterlyError(f"{path}: no such file or folder", ExitCode.USAGE)
    if path.is_dir():
        source = _open_folder(path, rate or FOLDER_RATE)
    elif path.suffix.lower() in ANIMATION_SUFFIXES and _is_pillow_animation(path):
        source = _open_animation(path)
    else:
        source = _open_file(path)
    if next(source.frames(), None) is None:
        raise PainterlyError(f"{path}: no frames", ExitCode.USAGE)
    return source


def _is_pillow_animation(path: Path) -> bool:
    try:
        with Image.open(path) as image:
            return image.format in ("GIF", "WEBP")
    except (OSError, ValueError):
        return False


def _open_folder(path: Path, rate: Fraction) -> VideoSource:
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
    if not files:
        raise PainterlyError(f"{path}: no frames (no image files in the folder)", ExitCode.USAGE)
    width, height = load_image(files[0]).size
    return VideoSource(path, "folder", width, height, Fraction(rate), len(files), None, files)


def _open_animation(path: Path) -> VideoSource:
    try:
        with Image.open(path) as image:
            count = getattr(image, "n_frames", 1)
            image.load()  # WebP reports a frame's duration once it is decoded
            duration = image.info.get("duration") or 100  # ms per frame; browsers treat 0 as 100 ms
            return VideoSource(path, "animation", *image.size, Fraction(1000, int(duration)), count)
    except (OSError, ValueError) as exc:
        raise _error(path, exc) from exc


def _open_file(path: Path) -> VideoSource:
    try:
        with av.open(str(path)) as box:
            if not box.streams.video:
                raise PainterlyError(f"{path}: no video stream", ExitCode.USAGE)
            stream = box.streams.video[0]
            ctx = stream.codec_context
            if ctx is None or not ctx.name or stream.codec_context.codec is None:
                raise PainterlyError(f"{path}: unsupported video codec", ExitCode.USAGE)
            rate = stream.average_rate or stream.guessed_rate or Fraction(25)
            count = stream.frames or round(float((box.duration or 0) / av.time_base) * rate)
            audio = box.streams.audio[0].codec_context.name if box.streams.audio else None
            width, height = ctx.width, ctx.height
    except av.error.EOFError as exc:  # the container ends before its first packet
        raise PainterlyError(f"{path}: no frames", ExitCode.USAGE) from exc
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise _error(path, exc) from exc
    if not width or not height:
        raise PainterlyError(f"{path}: unsupported video codec (no frame size)", ExitCode.USAGE)
    return VideoSource(path, "video", width, height, Fraction(rate), int(count), audio)


def output_kind(path: str | os.PathLike) -> str:
    """'video' for a suffix in ``VIDEO_OUTPUTS``, 'folder' for a path without a suffix; else USAGE error."""
    path = Path(path)
    if path.suffix.lower() in VIDEO_OUTPUTS:
        return "video"
    if not path.suffix or path.is_dir():
        return "folder"
    valid = ", ".join(sorted(VIDEO_OUTPUTS))
    raise PainterlyError(f"{path}: unsupported video output ({path.suffix!r}); use {valid} or a folder name")


def check_video_output(path: str | os.PathLike) -> Path:
    """Return ``path`` if a video (or frame folder) can be written there; else ``PainterlyError`` (USAGE)."""
    path = Path(path)
    kind = output_kind(path)
    if not path.parent.is_dir():
        raise PainterlyError(f"{path}: directory {path.parent} does not exist", ExitCode.USAGE)
    if kind == "video" and path.is_dir():
        raise PainterlyError(f"{path}: is a directory, expected a video file name", ExitCode.USAGE)
    if kind == "folder" and path.is_dir() and any(path.iterdir()):
        raise PainterlyError(f"{path}: folder exists and is not empty", ExitCode.USAGE)
    return path


class VideoWriter:
    """Encode frames into a temporary file (or folder) beside ``path``; ``close()`` renames it into place,
    ``abort()`` removes it. Use as a context manager: an exception aborts.

    ``audio_from``: copy that input's audio stream, cut to [start, start + duration) like the frames and
    interleaved with them. ``notes`` says what happened to the audio (re-encoded, dropped)."""

    def __init__(
        self,
        path: str | os.PathLike,
        rate: Fraction,
        audio_from: VideoSource | None = None,
        start: float = 0.0,
        duration: float | None = None,
    ):
        require_av()
        self.path, self.rate, self.count, self.notes = check_video_output(path), Fraction(rate), 0, []
        self.kind = output_kind(self.path)
        self._box = self._stream = self._audio = None
        if self.kind == "folder":
            self._tmp = Path(tempfile.mkdtemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp"))
            return
        fd, name = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.stem}.", suffix=self.path.suffix)
        os.close(fd)
        self._tmp = Path(name)
        self._fmt, self._codec, self._pix = VIDEO_OUTPUTS[self.path.suffix.lower()]
        if audio_from is not None and audio_from.audio and self._fmt in _NO_AUDIO:
            self.notes.append(f"{self.path.suffix} has no audio track: the input's audio is dropped")
            audio_from = None
        self._audio_src = audio_from if audio_from is not None and audio_from.audio else None
        self._start, self._end = start, float("inf") if duration is None else start + duration

    def write(self, frame: np.ndarray) -> None:
        """Append one (H, W, 3) uint8 RGB frame; every frame must have the first one's size."""
        if self.kind == "folder":
            Image.fromarray(frame).save(self._tmp / f"{self.count + 1:06d}.png")
        else:
            if self._box is None:
                self._open(frame.shape[1], frame.shape[0])
            if self._audio is not None:
                self._audio.pump((self.count + 1) / float(self.rate))
            for packet in self._stream.encode(self._frame(frame)):
                self._box.mux(packet)
        self.count += 1

    def _open(self, width: int, height: int) -> None:
        self._box = av.open(str(self._tmp), "w", format=self._fmt, options=_CONTAINER_OPTIONS.get(self._fmt, {}))
        stream = self._box.add_stream(self._codec, rate=self.rate, options=_CODEC_OPTIONS.get(self._codec, {}))
        # 4:2:0 chroma needs even sizes; odd ones are padded by one edge row/column (see _frame)
        even = self._pix == "yuv420p"
        stream.width, stream.height = width + (even and width % 2), height + (even and height % 2)
        stream.pix_fmt = self._pix
        self._stream = stream
        if self._audio_src is not None:
            self._audio = _AudioCopy(self._audio_src, self._box, self._start, self._end)
            self.notes += self._audio.notes

    def _frame(self, frame: np.ndarray) -> av.VideoFrame:
        pad_h, pad_w = self._stream.height - frame.shape[0], self._stream.width - frame.shape[1]
        if pad_h or pad_w:
            frame = np.pad(frame, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
        if self._pix == "pal8":  # per-frame adaptive palette; FFmpeg's swscale cannot convert RGB to pal8
            q = Image.fromarray(frame).quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
            palette = np.zeros((256, 4), np.uint8)
            rgb = np.asarray(q.getpalette(), np.uint8).reshape(-1, 3)[:256]
            palette[: len(rgb), 1:], palette[:, 0] = rgb, 255  # PyAV takes the palette as A, R, G, B bytes
            out = av.VideoFrame.from_ndarray((np.asarray(q), palette), format="pal8")
        else:
            out = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            out = out.reformat(format=self._pix, threads=_SWSCALE_THREADS)
        out.pts, out.time_base = self.count, 1 / self.rate
        return out

    def close(self) -> Path:
        """Flush the encoder, finish the audio, and rename the temporary output to ``path``."""
        if self.count == 0:
            self.abort()
            raise PainterlyError(f"{self.path}: no frames to write (check --start/--duration)", ExitCode.USAGE)
        try:
            if self.kind == "folder":
                if self.path.is_dir():
                    self.path.rmdir()  # empty (checked in __init__)
                os.replace(self._tmp, self.path)
                return self.path
            for packet in self._stream.encode():
                self._box.mux(packet)
            if self._audio is not None:
                self._audio.finish()
            self._box.close()
            self._box = None
            os.chmod(self._tmp, 0o644)
            os.replace(self._tmp, self.path)
        except BaseException:
            self.abort()
            raise
        return self.path

    def abort(self) -> None:
        """Remove the temporary output; nothing is left behind."""
        if self._audio is not None:
            self._audio.close()
        if self._box is not None:
            try:
                self._box.close()
            except (av.error.FFmpegError, OSError, ValueError):
                pass
            self._box = None
        if self._tmp.is_dir():
            shutil.rmtree(self._tmp, ignore_errors=True)
        else:
            self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:  # noqa: ANN001
        if exc_type is not None:
            self.abort()


class _AudioCopy:
    """The input's first audio stream into ``box``: packets copied as they are when the container takes the
    codec, else decoded and re-encoded to the container's default audio codec. Timestamps are shifted by
    ``start``; packets are muxed up to each video frame's time (``pump``) so the streams interleave."""

    def __init__(self, source: VideoSource, box: av.container.OutputContainer, start: float, end: float):
        self.notes: list[str] = []
        self._in = av.open(str(source.path))
        self._src = self._in.streams.audio[0]
        self._box, self._start, self._end = box, start, end
        self._copy = self._src.codec_context.name in box.supported_codecs
        if self._copy:
            self._out = box.add_stream_from_template(self._src)
        else:
            codec = box.default_audio_codec
            self.notes.append(f"audio re-encoded from {self._src.codec_context.name} to {codec} for {box.format.name}")
            self._out = box.add_stream(codec, rate=self._src.codec_context.sample_rate or 48000)
        if start > 0:
            self._in.seek(int(start / self._src.time_base), stream=self._src)
        self._packets = self._in.demux(self._src)
        self._pending = None

    def pump(self, until: float) -> None:
        """Mux audio whose time (from ``start``) is below ``until`` seconds."""
        for packet in self._packets:
            if packet.pts is None or packet.dts is None:
                continue  # the demuxer's empty flush packet
            t = float(packet.pts * packet.time_base)
            if t < self._start - 1e-9:
                continue
            if t >= self._end - 1e-9:
                break
            self._mux(packet)
            if t - self._start >= until:
                return
        self._packets = iter(())

    def _mux(self, packet: av.Packet) -> None:
        if self._copy:
            shift = int(round(self._start / packet.time_base))
            packet.pts, packet.dts = packet.pts - shift, packet.dts - shift
            packet.stream = self._out
            self._box.mux(packet)
            return
        for frame in packet.decode():
            frame.pts = None  # the encoder counts samples from zero
            for out in self._out.encode(frame):
                self._box.mux(out)

    def finish(self) -> None:
        self.pump(float("inf"))
        if not self._copy:
            for out in self._out.encode():
                self._box.mux(out)
        self.close()

    def close(self) -> None:
        self._in.close()

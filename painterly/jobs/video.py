"""Stylise a clip frame by frame with temporal consistency; frames stream through, runs resume.

For each frame t the optical flow between input frames t-1 and t gives the previous output warped onto the
current frame and a mask of the pixels whose motion is reliable (``engine/flow.py``). Two ways to use them:

- one-pass painters (``blend=True``): O_t = P_t + W·M·(warp(O_{t-1}) − P_t), i.e. the new result is blended
  with the warped previous one on reliable pixels (the blending baseline of Lai et al. 2018), then each
  fine detail is given P_t's power spectrum back (``keep_detail``: blending alone blurs the strokes);
- optimising painters (``blend=False``): the painter gets ``init`` = warp(O_{t-1}) on reliable pixels and
  the frame elsewhere, and ``mask``, for the masked temporal loss of Ruder et al. 2016.

Every finished frame is a PNG in a state folder beside the output (``.NAME.painterly/``) with a manifest;
``resume=True`` reuses them, so an interrupted run continues where it stopped and gives the same output."""

from __future__ import annotations

import functools
import hashlib
import json
import shutil
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image
from torch import Tensor

from painterly.config import RunConfig
from painterly.engine.flow import (
    FlowEstimator,
    WarpingError,
    reliability,
    resize_array,
    temporal_term,
    to_array,
    to_tensor,
    warp,
)
from painterly.errors import ExitCode, PainterlyError
from painterly.media.images import fit_size, load_image
from painterly.media.images import to_tensor as image_tensor
from painterly.media.inputs import Sources, as_list, load_inputs
from painterly.media.outputs import write_json
from painterly.media.video import VideoSource, VideoWriter, check_video_output, open_video

TEMPORAL_DEFAULT = 0.8  # --temporal: see docs/benchmarks.md (Video) for E and style strength against W
DETAIL_RINGS, DETAIL_LOW = 16, 0.1  # keep_detail's gain curve: 8 or 32 rings, low 0.02 or 0.05 measured the same
OPTIMIZE_TEMPORAL_DEFAULT = 30.0  # --temporal with --method optimize: the temporal term's weight (docs/benchmarks.md)


class Painter(Protocol):
    """``paint(frame, init, mask)`` -> the painted frame, (1, 3, H, W) in [0, 1] (any size: it is resized to
    the frame's). ``frame``: (1, 3, H, W) in [0, 1]. ``init`` (optimising painters): the warped previous
    result to start from, None for the first frame or ``temporal=0``; ``mask`` (1, 1, H, W): where it is
    reliable. One-pass painters may ignore both."""

    def __call__(self, frame: Tensor, init: Tensor | None, mask: Tensor | None = None) -> Tensor: ...


@dataclass(frozen=True)
class FrameProgress:
    """One finished frame: ``index`` 1-based, ``total`` an estimate for video files, ``resumed`` when it came
    from the state folder."""

    index: int
    total: int
    elapsed: float
    resumed: bool = False

    @property
    def fps(self) -> float:
        return self.index / self.elapsed if self.elapsed > 0 else 0.0


@dataclass
class VideoResult:
    path: Path | None  # None when cancelled (the state folder is kept for --resume)
    frames: int
    rate: Fraction
    size: tuple[int, int]
    seconds: float
    resumed: int = 0  # frames taken from the state folder
    warping_error: float | None = None  # Lai et al. 2018, when measured
    notes: list[str] = field(default_factory=list)

    @property
    def fps(self) -> float:
        return (self.frames - self.resumed) / self.seconds if self.seconds > 0 else 0.0


class FastPainter:
    """A one-pass painter for a whole clip: styles and masks decoded once, the model loaded once
    (``fast.onepass.load_model``) and each painting's style vector predicted once (the model remembers it);
    per frame only ``fast.onepass.paint``, i.e. the transformer's forward pass (and the frame's own style
    vector when ``strength`` or masks need it). No ``painterly.run`` per frame: no re-decoding, no metadata."""

    def __init__(self, cfg: RunConfig, style: Sources, *, mask: Sources = None) -> None:
        from painterly.api import pick_device
        from painterly.fast import onepass

        # the frames come later: a 1x1 stand-in content lets load_inputs check the styles, blend and masks
        inputs = load_inputs(cfg, Image.new("RGB", (1, 1)), style, mask)
        self.cfg, self.device, self.blend = cfg, pick_device(cfg.device), list(inputs.blend)
        self.styles = [image_tensor(s, self.device).contiguous() for s in inputs.styles]
        self._masks, self._sized = inputs.masks, {}
        onepass.load_model(onepass.settings(cfg).model, self.device)  # a missing model fails before frame 1

    def masks(self, size: tuple[int, int]) -> list[Tensor] | None:
        """The masks at a frame's (W, H), bilinear like ``media/inputs``, resized once per size."""
        if not self._masks:
            return None
        if size not in self._sized:
            resized = (m.resize(size, Image.Resampling.BILINEAR).convert("RGB") for m in self._masks)
            self._sized[size] = [image_tensor(m, self.device)[:, :1].contiguous() for m in resized]
        return self._sized[size]

    def __call__(self, frame: Tensor, init: Tensor | None = None, mask: Tensor | None = None) -> Tensor:
        from painterly.fast.onepass import paint

        h, w = frame.shape[-2:]
        out = paint(self.cfg, frame, self.styles, blend=self.blend, masks=self.masks((w, h)), device=self.device)
        return out.float().cpu()


def api_painter(
    cfg: RunConfig,
    style: Sources,
    *,
    mask: Sources = None,
    extractor: object = None,
    temporal: float | None = None,
) -> Painter:
    """The frame painter for ``cfg``: a ``FastPainter`` for ``cfg.method == "fast"``; else one that runs
    ``painterly.run`` on each frame at the frame's size, an optimisation that starts from ``init`` when it is
    given and adds the masked temporal term (``engine/flow.temporal_term``, weight ``temporal``; None:
    ``OPTIMIZE_TEMPORAL_DEFAULT``) towards ``init`` on the reliable pixels. Styles and masks given as paths
    are decoded once, not per frame."""
    from painterly import api

    if cfg.method == "fast":
        return FastPainter(cfg, style, mask=mask)
    temporal = OPTIMIZE_TEMPORAL_DEFAULT if temporal is None else temporal
    styles = [load_image(s) if isinstance(s, str | Path) else s for s in as_list(style)]
    masks = [load_image(m) if isinstance(m, str | Path) else m for m in as_list(mask)] or None

    def paint(frame: Tensor, init: Tensor | None, reliable: Tensor | None = None) -> Tensor:
        h, w = frame.shape[-2:]
        kwargs = {}
        if init is not None:
            kwargs["init"] = init
            if reliable is not None and temporal > 0:  # init is warp(O_prev) wherever reliable > 0
                kwargs["terms"] = {"temporal": temporal_term(init, reliable, temporal)}
        if extractor is not None:
            kwargs["extractor"] = extractor
        result = api.run(cfg.replace(size=(w, h)), frame, styles if len(styles) > 1 else styles[0], mask=masks,
                         **kwargs)  # fmt: skip
        if result.interrupted:  # Ctrl-C inside the frame's run: stop the clip, keep the finished frames
            raise PainterlyError("interrupted", ExitCode.INTERRUPTED)
        return to_tensor(np.asarray(result.image.convert("RGB")))

    return paint


def state_dir(out: Path) -> Path:
    return out.with_name(f".{out.name}.painterly")


def temporal_blend(painted: np.ndarray, warped: np.ndarray, mask: np.ndarray, weight: float) -> np.ndarray:
    """O = P + w·M·(warp(O_prev) − P): float (H, W, 3) arrays, ``mask`` (H, W) in [0, 1], w in [0, 1]."""
    return painted + (weight * mask)[..., None] * (warped - painted)


def keep_detail(blended: np.ndarray, painted: np.ndarray, rings: int = DETAIL_RINGS, low: float = DETAIL_LOW):
    """Give ``blended`` the fine detail of ``painted`` (the frame's own one-pass result): its power spectrum.

    Blending P_t with warp(O_{t-1}) averages two stroke patterns, which cancels fine detail (on a zoom the
    network paints new strokes, not magnified ones), and the next frame blends the result again: at W = 0.8
    the strokes lost 35-77 % of their Laplacian energy. Here O's Fourier transform is scaled by a gain that
    depends on the frequency's radius |f| only: g(|f|) = 1 below ``low`` (cycles/px: periods over 10 px, the
    blend's colours and shapes, so consistency is kept), above it interpolated linearly between the ring
    gains g_j = (Σ_{f in ring j} |P̂(f)|² / Σ_{f in ring j} |Ô(f)|²)^½ (channels summed) of ``rings``
    equal rings from ``low`` to the corner, so O' = F⁻¹(g · Ô) has P's radial power spectrum (the strokes'
    energy at each scale). One gain curve per frame and frequency: it adds no flicker of its own.
    An earlier version matched the energy of two difference-of-Gaussians bands: within its finest band the
    blend's spectrum still tilted towards the coarser end, which left the zoom at 87 % of the Laplacian."""
    h, w = blended.shape[:2]
    ring, weight, radius, knots, smooth = _rings(h, w, rings, low)
    spectra = [[_periodic(np.ascontiguousarray(x[..., c]), smooth) for c in range(x.shape[2])]
               for x in (blended, painted)]  # fmt: skip
    power = [sum(np.bincount(ring, (weight * np.abs(u - s) ** 2).ravel(), rings + 1)[1:] for u, s in fs)
             for fs in spectra]  # fmt: skip
    gains = np.sqrt(power[1] / np.maximum(power[0], 1e-12))
    curve = np.interp(np.linspace(0, knots[-1] * 2, _LUT), knots, np.r_[1.0, 1.0, gains]).astype(np.float32)
    gain = curve[radius] - 1  # g(|f|) - 1, |f| quantised to 1/_LUT of the range
    return np.stack([np.fft.irfft2(u + gain * (u - s), s=(h, w)) for u, s in spectra[0]], -1).astype(np.float32)


def _periodic(u: np.ndarray, smooth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rfft2(u), rfft2(s)) for the smooth part s of Moisan's periodic + smooth decomposition u = p + s
    (J. Math. Imaging Vis. 2011): ŝ = v̂ / (2 cos(2πq/M) + 2 cos(2πr/N) − 4) with v the jumps across the
    frame's opposite edges. p has no wrap-around edge, whose broadband energy would otherwise enter the
    ring sums and be sharpened. ``smooth``: (1 − e^{2πiq/M}, 1 − e^{2πir/N}, the reciprocal denominator,
    0 at f = 0), so that v̂ = (1 − e^{2πiq/M}) â(r) + b̂(q) (1 − e^{2πir/N}) for the jumps a, b (rows, columns)."""
    rows, cols, smooth = smooth  # v̂ from 1-D DFTs of the two jumps (v is zero inside the frame)
    v = rows * np.fft.rfft(u[-1] - u[0])[None, :] + np.fft.fft(u[:, -1] - u[:, 0])[:, None] * cols
    return np.fft.rfft2(u), v * smooth


_LUT = 4096


@functools.lru_cache(maxsize=4)
def _rings(h: int, w: int, rings: int, low: float) -> tuple[np.ndarray, ...]:
    """For an (h, w) real DFT (``rfft2``, half the plane): each frequency's ring (0 below ``low``, else
    1..``rings``, flat), its weight (2 for the columns that stand for a conjugate pair too, so the sums are
    Parseval's over the whole plane), |f| as an index into the gain curve's table, the curve's knots
    (0, ``low``, the rings' centres; the table spans twice the last centre, beyond the corner), and
    ``_periodic``'s reciprocal denominator."""
    fy, fx = np.fft.fftfreq(h)[:, None], np.fft.rfftfreq(w)[None, :]
    radius = np.hypot(fy, fx)
    edges = np.linspace(low, float(radius.max()) + 1e-6, rings + 1)
    ring = np.digitize(radius, edges).ravel()
    weight = np.full(radius.shape, 2.0, np.float32)
    weight[:, 0] = 1.0
    if w % 2 == 0:
        weight[:, -1] = 1.0
    knots = np.r_[0.0, low, (edges[:-1] + edges[1:]) / 2]
    index = np.minimum(np.rint(radius / (knots[-1] * 2) * (_LUT - 1)), _LUT - 1).astype(np.intp)
    denominator = 2 * np.cos(2 * np.pi * fy) + 2 * np.cos(2 * np.pi * fx) - 4
    denominator[0, 0] = 1.0
    smooth = (1 / denominator).astype(np.float32)
    smooth[0, 0] = 0.0
    rows, cols = (1 - np.exp(2j * np.pi * f).astype(np.complex64) for f in (fy, fx))
    return ring, weight, index, knots, (rows, cols, smooth)


def stylize_video(
    source: str | Path | VideoSource,
    out: str | Path,
    paint: Painter,
    *,
    blend: bool = True,
    temporal: float = TEMPORAL_DEFAULT,
    size: int | tuple[int, int] | None = None,
    start: float = 0.0,
    duration: float | None = None,
    resume: bool = False,
    settings: dict | None = None,
    flow: str | FlowEstimator = "auto",
    measure: bool = False,
    on_frame: Callable[[FrameProgress], None] | None = None,
    cancel: object | None = None,
) -> VideoResult:
    """Paint every frame of ``source`` in [start, start + duration) seconds and write ``out`` (a video, a
    GIF/WebP, or a folder of PNGs) at the input's frame rate, with its audio.

    ``size``: the long side (or a WxH box) the frames are painted at; None keeps the input's. ``settings``:
    what the output depends on besides the input (the painter's options); a resumed run must have the same.
    ``measure``: also compute the warping error. ``cancel.is_set()`` stops after the current frame (the
    state folder is kept); Ctrl-C does the same and re-raises."""
    src = source if isinstance(source, VideoSource) else open_video(source)
    out = check_video_output(out)
    if not 0 <= temporal <= 1 and blend:
        raise PainterlyError(f"--temporal {temporal}: must be between 0 and 1 for one-pass painting")
    if temporal < 0:
        raise PainterlyError(f"--temporal {temporal}: must be >= 0")
    work = fit_size(src.width, src.height, size) if size is not None else (src.width, src.height)
    manifest = _manifest(src, work, blend, temporal, start, duration, settings)
    state = state_dir(out)
    done = _prepare_state(state, manifest, resume)
    estimator = flow if isinstance(flow, FlowEstimator) else FlowEstimator(flow)
    metric = WarpingError(estimator) if measure else None
    writer = VideoWriter(out, src.rate, src, start, duration)
    t0, count, prev, interrupted = time.perf_counter(), 0, None, False
    total = max(1, round(min(src.frame_count / float(src.rate) - start, duration or float("inf")) * float(src.rate)))
    # the flow runs in a second thread while a one-pass painter works (OpenCV and NumPy release the GIL)
    side = ThreadPoolExecutor(1, thread_name_prefix="painterly-video")
    try:
        with writer, side:
            for count, frame in enumerate(src.frames(start, duration), 1):
                cur = resize_array(frame, work)
                flows = None
                if prev is not None and (count > done or metric is not None) and (temporal > 0 or metric):
                    flows = side.submit(_flows, estimator, prev[0], cur)
                if count <= done:
                    result = np.asarray(Image.open(state / "frames" / f"{count:06d}.png").convert("RGB"))
                else:
                    result = _paint_one(paint, cur, prev, flows, blend, temporal)
                    _save_frame(state, count, result, manifest)
                if metric is not None:
                    metric.update(cur, result, flows.result() if flows is not None else None)
                writer.write(result)
                prev = (cur, result)
                if on_frame is not None:
                    on_frame(FrameProgress(count, max(total, count), time.perf_counter() - t0, count <= done))
                if cancel is not None and cancel.is_set():
                    interrupted = True
                    break
            if interrupted:
                writer.abort()
            else:
                writer.close()
    except BaseException as exc:
        stopped = isinstance(exc, KeyboardInterrupt) or getattr(exc, "exit_code", None) == ExitCode.INTERRUPTED
        if not stopped:  # a failed run leaves nothing behind; a stopped one keeps its frames for --resume
            shutil.rmtree(state, ignore_errors=True)
        raise
    if not interrupted:
        shutil.rmtree(state, ignore_errors=True)
    return VideoResult(
        None if interrupted else out,
        count,
        src.rate,
        work,
        time.perf_counter() - t0,
        min(done, count),
        metric.value if metric is not None else None,
        list(writer.notes),
    )


def _flows(estimator: FlowEstimator, prev: np.ndarray, cur: np.ndarray) -> tuple[np.ndarray, ...]:
    """(forward, backward, reliability mask) between two input frames."""
    fwd, bwd = estimator(prev, cur)
    return fwd, bwd, reliability(fwd, bwd)


def _save_frame(state: Path, count: int, result: np.ndarray, manifest: dict) -> None:
    """Frame ``count`` into the state folder, then the manifest that counts it (so --resume never counts a
    frame whose file is unwritten). PNG level 1: ~4x faster than the default 6, ~12 % larger."""
    Image.fromarray(result).save(state / "frames" / f"{count:06d}.png", compress_level=1)
    write_json(state / "manifest.json", {**manifest, "frames_done": count})


def _paint_one(paint: Painter, cur: np.ndarray, prev: tuple | None, flows: Future | None, blend: bool, w: float):
    """One frame through the painter and the temporal step; returns (H, W, 3) uint8. A one-pass painter runs
    while ``flows`` is still being computed; an optimising one needs it first (its start and mask)."""
    h, wd = cur.shape[:2]
    frame = to_tensor(cur)
    if blend or flows is None or w <= 0:
        painted = paint(frame, None, None)
    else:
        _, backward, mask = flows.result()
        warped = warp(prev[1].astype(np.float32) / 255, backward, lanczos=True)
        init = temporal_blend(cur.astype(np.float32) / 255, warped, mask, 1.0)  # warped where reliable
        painted = paint(frame, to_tensor(init), to_tensor(mask[..., None]))
    result = resize_array(to_array(painted.clamp(0, 1)), (wd, h))
    if blend and flows is not None and w > 0:
        _, backward, mask = flows.result()
        warped = warp(prev[1].astype(np.float32) / 255, backward, lanczos=True)
        result = keep_detail(temporal_blend(result, warped, mask, w), result)
    # quantised before it becomes the next frame's "previous": a resumed run then matches exactly
    return np.clip(np.rint(result * 255), 0, 255).astype(np.uint8)


def _manifest(src: VideoSource, work, blend, temporal, start, duration, settings) -> dict:  # noqa: ANN001
    stat = src.path.stat()
    key = {"input": str(src.path.resolve()), "input_bytes": stat.st_size, "input_mtime": stat.st_mtime_ns}
    key.update(size=list(work), blend=blend, temporal=temporal, start=start, duration=duration)
    key["settings"] = json.loads(json.dumps(settings or {}, default=str, sort_keys=True))
    key["key"] = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return key


def _prepare_state(state: Path, manifest: dict, resume: bool) -> int:
    """Create the state folder; return how many finished frames a resumed run can reuse."""
    if resume and (state / "manifest.json").is_file():
        try:
            old = json.loads((state / "manifest.json").read_text())
        except ValueError:
            old = {}
        if old.get("key") != manifest["key"]:
            raise PainterlyError(
                f"{state}: was made from another input or other settings; run without --resume to start over",
                ExitCode.USAGE,
            )
        done = int(old.get("frames_done", 0))
        while done and not (state / "frames" / f"{done:06d}.png").is_file():
            done -= 1
        return done
    shutil.rmtree(state, ignore_errors=True)
    (state / "frames").mkdir(parents=True)
    write_json(state / "manifest.json", {**manifest, "frames_done": 0})
    return 0

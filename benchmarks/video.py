"""Video benchmark (issue 14): warping error with and without temporal consistency, style strength, frames/s.

    python benchmarks/video.py [--frames 24] [--size 640x360] [--methods fast,optimize] [--opt-size 128]
                               [--threads 1] [--gif docs/video/independent_vs_temporal.gif]

Two clips, both made here from a still photo: ``synthetic``, a slow pan (2 px/frame) whose motion is known
exactly, so E uses the exact flow and the mask of pixels still in view; ``real``, a hand-held-like zoom and
drift over another photo, encoded as H.264 and read back, so E uses DIS flow on the decoded input frames.
E (Lai et al. 2018) is the mean over frame pairs of the mean, over reliable pixels and channels, of
(O_t - warp(O_{t-1}))^2 on [0, 1] pixels. Style strength: the mean absolute difference between each painted
frame and its input frame, and the mean Laplacian energy (sharpness), both relative to temporal 0. E and
style are measured on the painted frames as written losslessly (a second, untimed run into PNG frames); the
sharpness of the H.264 file's frames (CRF 16) is printed beside it, since the encoder drops more fine detail
from a steady clip than from a flickering one. fps: the whole pipeline (decode, flow, paint, encode to
H.264) on this machine; CPU-s/frame: the process's CPU time per frame (all threads), which depends little on
other jobs sharing the machine (1 / CPU-s is the frame rate one free core would give). load: the 1-minute
load average when the row started. Prints Markdown table rows.
``--gif``: also write the README's clip (the zoom at 200x112, 18 frames, --temporal 0 beside the default)."""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import torch
from PIL import Image, ImageDraw

from painterly.config import build_config
from painterly.engine.flow import FlowEstimator, pair_error, reliability
from painterly.jobs.video import OPTIMIZE_TEMPORAL_DEFAULT, TEMPORAL_DEFAULT, api_painter, stylize_video
from painterly.media.images import parse_size
from painterly.media.video import open_video

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
STYLE = Path(__file__).resolve().parents[1] / "painterly" / "data" / "starry_night.jpg"
PAN = 2  # px per frame, synthetic clip


def write_clip(path: Path, frames, rate: int = 24) -> Path:
    with av.open(str(path), "w") as box:
        stream = box.add_stream("libx264", rate=rate, options={"crf": "16"})
        for k, frame in enumerate(frames):
            if k == 0:
                stream.width, stream.height, stream.pix_fmt = frame.shape[1], frame.shape[0], "yuv420p"
            f = av.VideoFrame.from_ndarray(frame, format="rgb24")
            f.pts, f.time_base = k, Fraction(1, rate)
            for packet in stream.encode(f):
                box.mux(packet)
        for packet in stream.encode():
            box.mux(packet)
    return path


def synthetic_frames(n: int, w: int, h: int) -> list[np.ndarray]:
    """A pan to the right over tubingen.jpg: frame k is the photo shifted left by PAN·k px (exact integers)."""
    photo = np.asarray(Image.open(DATA / "content" / "tubingen.jpg").convert("RGB"))
    scale = max(h / photo.shape[0], (w + PAN * n) / photo.shape[1])
    photo = np.asarray(
        Image.fromarray(photo).resize((math.ceil(photo.shape[1] * scale), math.ceil(photo.shape[0] * scale)))
    )
    return [np.ascontiguousarray(photo[:h, PAN * k : PAN * k + w]) for k in range(n)]


def real_frames(n: int, w: int, h: int) -> list[np.ndarray]:
    """A slow zoom in (0.4 %/frame) with a smooth hand-held drift over golden_gate.jpg (bicubic resampling)."""
    photo = Image.open(DATA / "content" / "golden_gate.jpg").convert("RGB")
    pw, ph = photo.size
    frames = []
    for k in range(n):
        zoom = 1.0 + 0.004 * k
        cw, ch = pw / (1.3 * zoom), pw / (1.3 * zoom) * h / w
        cx = pw / 2 + 6 * math.sin(k / 5) + 1.5 * k
        cy = ph / 2 + 4 * math.cos(k / 7)
        box = (cx - cw / 2, cy - ch / 2, cx + cw / 2, cy + ch / 2)
        frames.append(np.asarray(photo.resize((w, h), Image.Resampling.BICUBIC, box=box)))
    return frames


def exact_error(inputs: list[np.ndarray], outputs: list[np.ndarray]) -> float:
    """E for the synthetic pan: backward flow is exactly +PAN px in x; mask = pixels whose source is in view."""
    h, w = inputs[0].shape[:2]
    backward = np.zeros((h, w, 2), np.float32)
    backward[..., 0] = PAN
    mask = reliability(-backward, backward)
    out = [o.astype(np.float32) / 255 for o in outputs]
    return float(np.mean([pair_error(a, b, backward, mask) for a, b in zip(out, out[1:], strict=False)]))


def flow_error(inputs: list[np.ndarray], outputs: list[np.ndarray]) -> float:
    flow = FlowEstimator("dis")
    values = []
    for k in range(1, len(inputs)):
        fwd, bwd = flow(inputs[k - 1], inputs[k])
        a, b = (outputs[i].astype(np.float32) / 255 for i in (k - 1, k))
        values.append(pair_error(a, b, bwd, reliability(fwd, bwd)))
    return float(np.mean(values))


def strength(inputs: list[np.ndarray], outputs: list[np.ndarray]) -> tuple[float, float]:
    """(mean |O - I| on [0, 1], mean squared Laplacian of O's grey image)."""
    diff = np.mean([np.abs(o.astype(np.float32) - i).mean() / 255 for i, o in zip(inputs, outputs, strict=True)])
    sharp = np.mean([cv2.Laplacian(cv2.cvtColor(o, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255, cv2.CV_32F).var()
                     for o in outputs])  # fmt: skip
    return float(diff), float(sharp)


def measure(clip: Path, kind: str, method: str, temporal: float, size, iterations: int, tmp: Path) -> dict:
    options = {"method": method, "weights": "random", "iterations": iterations} if method == "optimize" else {}
    cfg = build_config("stylize", {"method": method, **options})
    painter = api_painter(cfg, str(STYLE), temporal=temporal)  # the optimiser's term weight (fast: unused)
    out = tmp / f"{kind}_{method}_{temporal}.mkv"
    load, t0, c0 = os.getloadavg()[0], time.perf_counter(), time.process_time()
    result = stylize_video(clip, out, painter, blend=method == "fast", temporal=temporal, size=size, flow="dis")
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    frames = tmp / f"{kind}_{method}_{temporal:g}_frames".replace(".", "_")  # the same run into PNG frames, untimed
    stylize_video(clip, frames, painter, blend=method == "fast", temporal=temporal, size=size, flow="dis")
    inputs = [cv2.resize(f, result.size, interpolation=cv2.INTER_AREA) for f in open_video(clip).frames()]
    outputs = list(open_video(frames).frames())
    error = exact_error(inputs, outputs) if kind == "synthetic" and size is None else flow_error(inputs, outputs)
    diff, sharp = strength(inputs, outputs)
    sharp_file = strength(inputs, list(open_video(out).frames()))[1]
    return {"E": error, "diff": diff, "sharp": sharp, "sharp_file": sharp_file, "fps": result.frames / seconds,
            "size": result.size, "cpu": cpu / result.frames, "load": load}  # fmt: skip


def write_gif(path: Path, tmp: Path, w: int = 200, h: int = 112, n: int = 18) -> None:
    """Independent frames beside the default temporal blending, fast method, 12 fps, 48 colours."""
    clip = write_clip(tmp / "gif.mkv", real_frames(n, w, h))
    painter = api_painter(build_config("stylize", {"method": "fast"}), str(STYLE))
    sides = []
    for temporal in (0.0, TEMPORAL_DEFAULT):
        stylize_video(clip, tmp / f"gif_{temporal}.mkv", painter, temporal=temporal, flow="dis")
        sides.append(list(open_video(tmp / f"gif_{temporal}.mkv").frames()))
    frames = []
    for a, b in zip(*sides, strict=True):
        im = Image.fromarray(np.concatenate([a, np.full((h, 4, 3), 255, np.uint8), b], 1))
        draw = ImageDraw.Draw(im)
        for x, label in ((4, "--temporal 0"), (w + 8, f"--temporal {TEMPORAL_DEFAULT} (default)")):
            draw.rectangle((x, 2, x + 6 * len(label) + 4, 14), fill=(0, 0, 0))
            draw.text((x + 2, 2), label, fill=(255, 255, 255))
        frames.append(im.quantize(48, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE))
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=1000 // 12, loop=0, optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--size", default="640x360", help="clip size WxH")
    parser.add_argument("--methods", default="fast,optimize")
    parser.add_argument("--opt-size", type=int, default=128, help="long side the optimiser paints at")
    parser.add_argument("--opt-frames", type=int, default=8)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--temporal", type=float, default=TEMPORAL_DEFAULT)
    parser.add_argument("--opt-temporal", type=float, default=OPTIMIZE_TEMPORAL_DEFAULT)
    parser.add_argument("--gif", type=Path, help="also write the README's side-by-side GIF here")
    parser.add_argument("--threads", type=int, help="torch threads (on a loaded machine 1 is fastest)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    w, h = parse_size(args.size)
    print("| clip | method | size | --temporal | E | E / E(0) | mean abs(O-I) | sharpness | sharpness in the file "
          "| frames/s | CPU-s/frame | load |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.gif:
            write_gif(args.gif, tmp)
        for method in args.methods.split(","):
            n = args.frames if method == "fast" else args.opt_frames
            if method == "optimize":  # the optimiser paints small clips: make them at its size
                w2, h2 = args.opt_size, round(args.opt_size * h / w)
            else:
                w2, h2 = w, h
            clips = {"synthetic": write_clip(tmp / f"syn_{method}.mkv", synthetic_frames(n, w2, h2)),
                     "real": write_clip(tmp / f"real_{method}.mkv", real_frames(n, w2, h2))}  # fmt: skip
            for kind, clip in clips.items():
                base = None
                for temporal in (0.0, args.temporal if method == "fast" else args.opt_temporal):
                    r = measure(clip, kind, method, temporal, None, args.iterations, tmp)
                    base = base or r
                    print(f"| {kind} | {method} | {r['size'][0]}x{r['size'][1]} | {temporal:g} | {r['E']:.5f} | "
                          f"{r['E'] / base['E']:.2f} | {r['diff']:.4f} ({r['diff'] / base['diff']:.2f}) | "
                          f"{r['sharp']:.5f} ({r['sharp'] / base['sharp']:.2f}) | "
                          f"{r['sharp_file']:.5f} ({r['sharp_file'] / base['sharp_file']:.2f}) | {r['fps']:.2f} | "
                          f"{r['cpu']:.3f} | {r['load']:.1f} |",
                          flush=True)  # fmt: skip


if __name__ == "__main__":
    main()

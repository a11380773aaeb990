"""Speed and scale benchmark (issue 6), run on demand: writes docs/benchmarks.md.

    python benchmarks/run.py [--out docs/benchmarks.md] [--quick]

Three tables, each measured in this run with random-feature weights (nothing downloaded):
(i)   seconds per iteration at 256/512/1024 px and % of the ceiling: a large 3x3 convolution timed in the same
      process, against the FLOPs of the layers evaluated (convs and Grams, forward + backward to the image);
(ii)  time to the naive baseline's final loss at 512 and 1024 px: the baseline is written below the way the
      classic tutorials do it; both losses are our Objective's at full resolution;
(iii) peak resident memory per size (each size in its own process) and the largest size that runs.
Every measurement runs in a child process so its peak RSS is its own."""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from painterly import api
from painterly.api import backbone_for
from painterly.config import VGG_LAYERS, RunConfig, build_config
from painterly.engine import memory
from painterly.engine.backbone import build_trunk, init_random
from painterly.engine.objective import Objective
from painterly.events import Step
from painterly.media.images import fit_size
from painterly.media.inputs import at_size, load_inputs

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
CONTENT, STYLE = DATA / "content" / "tubingen.jpg", DATA / "style" / "starry_night.jpg"
CPU = torch.device("cpu")


# --- measurements (run in child processes) ---------------------------------------------------------------


def ceiling_gflops(repeats: int = 20) -> float:
    """GFLOP/s of a large 3x3 convolution, 256 -> 256 channels on 128x128, forward, best of ``repeats``.

    Best of many: on this shared machine the same call varies 100-190 GFLOP/s from one second to the next."""
    x, w = torch.randn(1, 256, 128, 128), torch.randn(256, 256, 3, 3)
    best = math.inf
    with torch.no_grad():
        F.conv2d(x, w, padding=1)
        for _ in range(repeats):
            t0 = time.perf_counter()
            F.conv2d(x, w, padding=1)
            best = min(best, time.perf_counter() - t0)
    return 2 * 256 * 256 * 9 * 128 * 128 / best / 1e9


def iteration_flops(cfg: RunConfig, extractor: nn.Module, size: tuple[int, int]) -> float:
    """FLOPs of one evaluation: every conv up to the deepest loss layer and every Gram, forward, times 2
    (the backward to the image costs one transposed conv per conv, and D·F per Gram; no weight gradients)."""
    h, w = size[1], size[0]
    flops = 0.0
    channels = {}
    for i, m in enumerate(extractor.body):
        if isinstance(m, nn.Conv2d):
            flops += 2 * m.in_channels * m.out_channels * 9 * h * w
            c = m.out_channels
        elif isinstance(m, nn.MaxPool2d | nn.AvgPool2d):
            h, w = h // 2, w // 2
        channels[i] = (c if isinstance(m, nn.Conv2d | nn.ReLU) else channels.get(i - 1, (3,))[0], h * w)
    for name, _ in cfg.optimize.style_layers:
        c, hw = channels[extractor.layers[name]]
        flops += 2 * c * c * hw
    return 2 * flops


def worker_speed(size: int, iterations: int, stages: int, style_scale: float = 1.0) -> dict:
    """s/iteration, ceiling, FLOPs and peak RSS of a run at ``size``. Both rates are best-of: the fastest
    iteration after the first, against the fastest ceiling convolution timed before and after the run."""
    ceiling = ceiling_gflops()
    options = {
        "weights": "random",
        "size": size,
        "iterations": iterations,
        "stages": stages,
        "style_scale": style_scale,
    }
    cfg = build_config("stylize", options)
    built, objective_class = [], api.Objective

    def timed_objective(*args: object, **kwargs: object) -> Objective:  # to take target time out of 1 iteration
        t0 = time.perf_counter()
        objective = objective_class(*args, **kwargs)
        built.append(time.perf_counter() - t0)
        return objective

    api.Objective = timed_objective
    result = api.run(cfg, str(CONTENT), str(STYLE))
    times = [h["elapsed"] for h in result.losses]
    steps = sorted(b - a for a, b in zip(times, times[1:], strict=False)) or [times[0] - sum(built)]
    ceiling = max(ceiling, ceiling_gflops())
    out_size = result.image.size
    style_size = tuple(round(style_scale * s) for s in out_size)
    plan = memory.stage_plan(cfg, out_size, [style_size], iterations)
    extractor = backbone_for(cfg, CPU)
    return {
        "size": list(out_size),
        "s_per_it": steps[0],
        "s_per_it_median": steps[len(steps) // 2],
        "ceiling_gflops": ceiling,
        "flops": iteration_flops(cfg, extractor, out_size),
        "path": plan.path,
        "tile": plan.tile,
        "estimated_peak": plan.peak_bytes,
        "estimated_s_per_it": memory.estimate(
            cfg, out_size, style_size=style_size, iterations=iterations, path=plan.path, tile=plan.tile
        ).seconds_per_iteration,
        "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "total_s": result.metadata["timings"]["total_s"],
    }


class ContentLoss(nn.Module):
    """The classic tutorial's loss module: holds its target, records its loss in forward, passes x through."""

    def __init__(self, target: torch.Tensor):
        super().__init__()
        self.target = target.detach()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.loss = (x - self.target).pow(2).mean() / (self.target.pow(2).mean() + 1e-8)
        return x


def _gram(x: torch.Tensor) -> torch.Tensor:
    b, c, h, w = x.shape
    f = x.view(b * c, h * w)
    return f @ f.t() / (h * w)


class StyleLoss(nn.Module):
    def __init__(self, target_feature: torch.Tensor, weight: float):
        super().__init__()
        self.target, self.weight = _gram(target_feature).detach(), weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = _gram(x)
        self.loss = self.weight * (g - self.target).pow(2).sum() / (self.target.pow(2).sum() + 1e-8)
        return x


class Normalization(nn.Module):
    def __init__(self):
        super().__init__()
        self.mean = torch.tensor([0.485, 0.456, 0.406]).view(-1, 1, 1)
        self.std = torch.tensor([0.229, 0.224, 0.225]).view(-1, 1, 1)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return (img - self.mean) / self.std


def naive_baseline(
    cfg: RunConfig, content: torch.Tensor, style: torch.Tensor, start: torch.Tensor, evaluations: int
) -> tuple:
    """The PyTorch tutorial's recipe: the whole VGG19 feature stack with loss modules inserted after the
    loss layers, targets stored on the modules, L-BFGS (default settings: 20 evaluations per step) on the RGB
    image from ``start`` (the content photo, or noise as in Gatys et al.), clamped in the closure; single
    scale. Same weights, layers, norms and weights as ``cfg`` (our default objective).
    Returns (image, [(seconds, loss) per evaluation])."""
    t0 = time.perf_counter()
    trunk = build_trunk(cfg.optimize.backbone, cfg.optimize.pooling)  # all 37 modules: nothing trimmed
    init_random(trunk, 0)
    trunk.requires_grad_(False)
    by_index = {i: n for n, i in VGG_LAYERS[cfg.optimize.backbone].items()}
    style_w = dict(cfg.optimize.style_layers)
    model, content_losses, style_losses = nn.Sequential(), [], []
    model.add_module("normalization", Normalization())  # named: a key "0" would be replaced by conv1_1
    for i, layer in enumerate(trunk):
        model.add_module(str(i), layer)
        name = by_index.get(i)
        plain = nn.Sequential(Normalization(), *trunk[: i + 1])  # targets: style and content differ in size
        if name in cfg.optimize.content_layers:
            loss = ContentLoss(plain(content))
            model.add_module(f"content_{name}", loss)
            content_losses.append(loss)
        if name in style_w:
            loss = StyleLoss(plain(style), style_w[name])
            model.add_module(f"style_{name}", loss)
            style_losses.append(loss)
    image = start.clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS([image])
    trace = []

    def closure() -> torch.Tensor:
        with torch.no_grad():
            image.clamp_(0, 1)
        optimizer.zero_grad()
        model(image)
        c = sum(m.loss for m in content_losses) / len(content_losses)
        s = sum(m.loss for m in style_losses)
        loss = cfg.optimize.content_weight * c + cfg.optimize.style_weight * s
        loss.backward()
        trace.append((time.perf_counter() - t0, float(loss.detach())))
        return loss

    while len(trace) < evaluations:  # each step runs up to 20 evaluations (max_iter=20, the default)
        optimizer.step(closure)
    with torch.no_grad():
        image.clamp_(0, 1)
    return image.detach(), trace


def worker_quality(size: int, evaluations: int, budget: int, init: str = "content") -> dict:
    """(ii): the naive baseline for ``evaluations`` evaluations, then our default run (``--init init``) until
    it reaches the baseline's final loss (our Objective at full resolution, on both final images). Both start
    from the content photo, or both from noise (the naive run from our noise at full size)."""
    cfg = build_config("stylize", {"weights": "random", "size": size, "iterations": budget, "init": init})
    inputs = load_inputs(cfg, str(CONTENT), str(STYLE))
    out = fit_size(*inputs.content.size, size)
    style_size = api.style_size_for(cfg, inputs.styles[0], api.output_size(cfg, inputs.content, inputs.styles[0]))
    scaled = at_size(inputs, cfg, out, [style_size])
    start = api._initial_image(cfg, scaled, None, tuple(scaled.content.shape))
    naive_image, trace = naive_baseline(cfg, scaled.content, scaled.styles[0], start, evaluations)
    extractor = backbone_for(cfg, CPU)
    objective = Objective(extractor, cfg, scaled.content, scaled.styles)
    with torch.no_grad():
        target = float(objective(extractor.pixels.to_net(naive_image))["total"])
    naive_s = next((t for t, loss in trace if loss <= target * 1.001), trace[-1][0])
    reached: dict = {}

    stop = threading.Event()  # api.run returns the best so far once it is set

    def stop_when_reached(p: Step) -> None:
        if p.stage == p.stages and p.losses["total"] <= target and not reached:
            reached.update(seconds=p.elapsed, iteration=p.step)
            stop.set()  # the benchmark needs no more
        if p.elapsed > naive_s:
            stop.set()  # slower than the baseline: the target is missed, stop measuring

    t0 = time.perf_counter()
    result = api.run(cfg, str(CONTENT), str(STYLE), callbacks=[stop_when_reached], cancel=stop)
    setup = result.metadata["timings"]["setup_s"]
    ours_s = reached["seconds"] + setup if reached else None
    best = min(h["total"] for h in result.losses if h["stage"] == len(result.metadata["stages"]))
    return {
        "size": list(out),
        "init": init,
        "naive_evaluations": len(trace),
        "naive_s": naive_s,
        "target_loss": target,
        "ours_s": ours_s,
        "ours_wall_s": time.perf_counter() - t0,
        "ours_iterations": reached.get("iteration"),
        "ours_best_loss": best,
        "schedule": result.metadata["stages"],
    }


# --- orchestration ---------------------------------------------------------------------------------------


def child(kind: str, **kwargs: object) -> dict:
    """Run one measurement in a fresh process; its last stdout line is the JSON result."""
    cmd = [sys.executable, __file__, "--worker", json.dumps({"kind": kind, **kwargs})]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["?"])[-1], "wall_s": time.perf_counter() - t0, **kwargs}
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    print(kind, kwargs, "->", result, f"({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    return result


def gib(n: float) -> str:
    return f"{n / 2**30:.2f}"


def report(speed: list, quality: list, scale: list, command: str, started: float) -> str:
    load = os.getloadavg()
    lines = [
        "# Benchmarks (issue 6)",
        "",
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; command: `{command}`",
        f"- machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
        f"{gib(os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE'))} GiB RAM, Linux {platform.release()}; "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads); load average at the end "
        f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}; "
        f"whole benchmark {(time.perf_counter() - started) / 60:.1f} min",
        "- weights: random (`--weights random`); content tubingen.jpg, style starry_night.jpg (../shared/data); "
        "default objective (VGG19 avg-pool, relu1_1..relu5_1 Gram + relu4_2 content, L-BFGS)",
        "- GPU: none was available to this task, so there is no GPU table.",
        "",
        "## (i) Seconds per iteration and % of the measured ceiling",
        "",
        "| size | s/iteration: best (median) | GFLOP/iteration | achieved GFLOP/s | ceiling GFLOP/s | % of ceiling "
        "| estimate s/it |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in speed:
        if "error" in r:
            lines.append(f"| {r['size']} | failed: {r['error']} | | | | | |")
            continue
        achieved = r["flops"] / r["s_per_it"] / 1e9
        lines.append(
            f"| {r['size'][0]}x{r['size'][1]} | {r['s_per_it']:.2f} ({r.get('s_per_it_median', r['s_per_it']):.2f}) "
            f"| {r['flops'] / 1e9:.0f} | {achieved:.1f} | "
            f"{r['ceiling_gflops']:.1f} | {100 * achieved / r['ceiling_gflops']:.0f} % | "
            f"{r['estimated_s_per_it']:.2f} |"
        )
    lines += [
        "",
        "## (ii) Time to the naive baseline's final loss",
        "",
        "| size | start | naive: evaluations, seconds | target loss | ours: seconds (iteration) | ours / naive |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in quality:
        if "error" in r:
            lines.append(f"| {r['size']} | {r.get('init', 'content')} | failed: {r['error']} | | | |")
            continue
        ours = (
            f"{r['ours_s']:.0f} ({r['ours_iterations']})"
            if r["ours_s"]
            else f"not reached (best {r['ours_best_loss']:.4g})"
        )
        ratio = f"1/{r['naive_s'] / r['ours_s']:.1f}" if r["ours_s"] else "-"
        lines.append(
            f"| {r['size'][0]}x{r['size'][1]} | {r.get('init', 'content')} | {r['naive_evaluations']}, "
            f"{r['naive_s']:.0f} | {r['target_loss']:.4g} "
            f"| {ours} | {ratio} |"
        )
    lines += [
        "",
        "## (iii) Peak memory per size",
        "",
        "| size | path | peak RSS GiB | estimated peak GiB | s/iteration | run total s |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in speed + scale:
        if "error" in r:
            lines.append(f"| {r['size']} | failed: {r['error']} | | | | |")
            continue
        path = r["path"] + (f" ({r['tile']} px tiles)" if r["tile"] else "")
        lines.append(
            f"| {r['size'][0]}x{r['size'][1]} | {path} | {gib(r['peak_rss'])} | {gib(r['estimated_peak'])} | "
            f"{r['s_per_it']:.1f} | {r['total_s']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def _previous(path: Path) -> dict:
    """The raw results a previous run left at the end of ``path``, or {}."""
    if not path.exists() or "<!-- raw results" not in path.read_text():
        return {}
    return json.loads(path.read_text().split("<!-- raw results", 1)[1].rsplit("-->", 1)[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    parser.add_argument("--quick", action="store_true", help="Tiny sizes: check that the script works.")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument(
        "--sections",
        default="speed,quality,scale",
        help="Run only these (speed, quality, scale); the others are "
        "taken from the raw results kept in --out by the previous run.",
    )
    args = parser.parse_args()
    if args.worker:
        spec = json.loads(args.worker)
        kind = spec.pop("kind")
        print(json.dumps({"speed": worker_speed, "quality": worker_quality}[kind](**spec)))
        return
    started = time.perf_counter()
    sections = set(args.sections.split(","))
    previous = _previous(Path(args.out))
    if args.quick:
        speed = [child("speed", size=s, iterations=3, stages=1) for s in (64, 128)]
        quality = [child("quality", size=128, evaluations=6, budget=30, init=i) for i in ("content", "noise")]
        scale = [child("speed", size=256, iterations=1, stages=1)]
    else:
        speed, quality, scale = previous.get("speed", []), previous.get("quality", []), previous.get("scale", [])
        if "speed" in sections:
            speed = [child("speed", size=s, iterations=n, stages=1) for s, n in ((256, 8), (512, 6), (1024, 4))]
        if "quality" in sections:  # ours: 30 (512) and 20 (1024) iterations per stage; stopped at target or naive time
            quality = [
                child("quality", size=size, evaluations=20, budget=budget, init=init)
                for init in ("content", "noise")
                for size, budget in ((512, 90), (1024, 80))
            ]
        if "scale" in sections:  # 4096: style image at 2048 px (--style-scale 0.5): the benchmark stays ~25 min
            scale = [
                child("speed", size=2048, iterations=1, stages=1),
                child("speed", size=4096, iterations=1, stages=1, style_scale=0.5),
            ]
    command = "python benchmarks/run.py" + (" --quick" if args.quick else "")
    command += f" --sections {args.sections}" if sections != {"speed", "quality", "scale"} else ""
    text = report(speed, quality, scale, command, started)
    notes = Path(__file__).with_name("notes.md")  # hand-written analysis of the last full run
    if notes.exists() and not args.quick:
        text += "\n" + notes.read_text()
    raw = json.dumps({"speed": speed, "quality": quality, "scale": scale}, indent=1)
    out = Path(args.out)
    # sections the other benchmarks (fast, video, cluster, guard) keep after the raw results stay as they are
    others = out.read_text().partition("\n-->\n")[2] if out.exists() else ""
    out.write_text(text + "\n<!-- raw results\n" + raw + "\n-->\n" + others)
    print(text)


if __name__ == "__main__":
    main()

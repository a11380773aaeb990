"""Peak memory and time per iteration, estimated before a run: choose the plain or tiled path, or refuse.

The model counts what autograd keeps for one evaluation of the objective (every ReLU output of the trunk,
max-pool indices, the content error) plus the transients of the backward pass at the widest layer, the
L-BFGS history, the images and the process itself. Time is the FLOP count of the convolutions and Gram
products (forward + backward to the image) divided by this machine's rate on one calibration convolution."""

from __future__ import annotations

import contextlib
import ctypes
import math
import os
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F
from torchvision.models import vgg

from painterly.config import VGG_LAYERS, RunConfig
from painterly.engine.backbone import TORCHVISION_CFG

FLOAT = 4  # bytes; autocast on CUDA halves activations, which we ignore: the estimate errs on the safe side
PROCESS = 800 * 2**20  # resident size of a Python process with torch imported and the trunk loaded
HEADROOM = 0.85  # use at most this share of the available memory: other processes and estimate error
TILES = (1024, 768, 512, 384, 256, 128)  # core tile sides to try, largest (least halo overhead) first
EFFICIENCY = 0.75  # measured VGG iteration rate / calibration conv rate on the 2-core benchmark machine
LBFGS_HISTORY = 100
ALLOCATOR_OVERHEAD = 1.4  # peak RSS with freed memory kept / without: up to 1.35x measured (1024 px, benchmark)
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # mallopt(3) parameters (glibc malloc.h)
GLIBC_DEFAULTS = {M_TRIM_THRESHOLD: 128 * 1024, M_MMAP_MAX: 65536}


@dataclass(frozen=True)
class Layer:
    kind: str  # conv | relu | pool
    channels: int  # output channels
    stride: int  # output stride relative to the image
    c_in: int = 0


def trunk_layers(backbone: str, deepest: int) -> list[Layer]:
    """torchvision's VGG layout up to index ``deepest``, as shapes only (no weights built)."""
    layers, c, s = [], 3, 1
    for v in vgg.cfgs[TORCHVISION_CFG[backbone]]:
        if v == "M":
            s *= 2
            layers.append(Layer("pool", c, s))
        else:
            layers += [Layer("conv", v, s, c), Layer("relu", v, s)]
            c = v
    return layers[: deepest + 1]


def _layers(cfg: RunConfig) -> tuple[list[Layer], dict[str, int]]:
    names = set(cfg.optimize.content_layers) | {n for n, _ in cfg.optimize.style_layers}
    table = {n: VGG_LAYERS[cfg.optimize.backbone][n] for n in names}
    return trunk_layers(cfg.optimize.backbone, max(table.values())), table


def _per_pixel(cfg: RunConfig) -> dict[str, float]:
    """Floats per image pixel: ``saved`` by autograd, ``widest`` layer, ``loss`` layers' maps, ``content``
    layers' maps, and forward ``flops`` (convs + Grams) per pixel."""
    layers, table = _layers(cfg)
    area = [1 / (la.stride * la.stride) for la in layers]
    saved = 3 + sum(la.channels * a for la, a in zip(layers, area, strict=True) if la.kind == "relu")
    if cfg.optimize.pooling == "max":  # int64 indices of every pooled output
        saved += sum(2 * la.channels * a for la, a in zip(layers, area, strict=True) if la.kind == "pool")
    widest = max(la.channels * a for la, a in zip(layers, area, strict=True))
    loss = sum(layers[i].channels * area[i] for i in table.values())
    content = sum(layers[table[n]].channels * area[table[n]] for n in cfg.optimize.content_layers)
    flops = sum(2 * la.c_in * la.channels * 9 * a for la, a in zip(layers, area, strict=True) if la.kind == "conv")
    flops += sum(2 * layers[table[n]].channels ** 2 * area[table[n]] for n, _ in cfg.optimize.style_layers)
    return {"saved": saved, "widest": widest, "loss": loss, "content": content, "flops": flops}


@dataclass(frozen=True)
class Estimate:
    """One evaluation plan for an output of ``size`` (W, H). Bytes and seconds are estimates."""

    size: tuple[int, int]
    path: str  # "plain" (whole image in one graph) or "tiled" (tiling.TiledObjective)
    peak_bytes: int
    seconds_per_iteration: float
    tile: int | None = None  # core tile side in px (tiled path)
    lbfgs_pairs: int = LBFGS_HISTORY  # L-BFGS curvature pairs kept (torch's ``history_size``)
    flops: float = 0.0  # per iteration, forward + backward


def estimate(
    cfg: RunConfig,
    size: tuple[int, int],
    *,
    style_size: tuple[int, int] | None = None,
    iterations: int | None = None,
    path: str | None = None,
    tile: int | None = None,
    available: int | None = None,
    gflops: float | None = None,
) -> Estimate:
    """Peak memory and s/iteration for ``size``. ``path`` None: plain if it fits ``available`` (with
    headroom), else tiled with the largest tile that fits (or the smallest tile, which then does not fit).
    ``style_size`` defaults to ``size``·style_scale; ``iterations`` bounds the L-BFGS history."""
    style_size = style_size or tuple(max(1, round(cfg.style_scale * s)) for s in size)
    budget = HEADROOM * available if available else math.inf
    pairs = _lbfgs_pairs(cfg, size, iterations, budget)
    rate = (gflops or calibrate()) * 1e9 * EFFICIENCY
    per = _per_pixel(cfg)
    pixels, style_pixels = size[0] * size[1], style_size[0] * style_size[1]
    fixed = PROCESS + _state_bytes(cfg, pixels, style_pixels, pairs, per)
    plain = fixed + max(_graph_bytes(per, pixels), _targets_bytes(per, max(pixels, style_pixels)))
    if path == "plain" or (path is None and plain <= budget):
        return Estimate(tuple(size), "plain", int(plain), 2 * per["flops"] * pixels / rate, None, pairs,
                        2 * per["flops"] * pixels)  # fmt: skip
    candidates = [tile] if tile else list(TILES)
    for t in candidates:
        peak, flops = _tiled(cfg, per, size, t, fixed, style_pixels)
        if peak <= budget or t == candidates[-1]:
            return Estimate(tuple(size), "tiled", int(peak), flops / rate, t, pairs, flops)
    raise AssertionError("unreachable")


def _lbfgs_pairs(cfg: RunConfig, size: tuple[int, int], iterations: int | None, budget: float) -> int:
    """L-BFGS pairs: all iterations up to 100, but at most a quarter of the budget (at 4096 px one pair of
    image-sized vectors is 400 MB; a short history costs a little convergence speed, not correctness)."""
    pairs = min(LBFGS_HISTORY, iterations or cfg.optimize.iterations)
    if cfg.optimize.optimizer != "lbfgs":
        return 0
    pair = 2 * 3 * size[0] * size[1] * FLOAT
    return max(5, min(pairs, int(0.25 * budget / pair))) if math.isfinite(budget) else pairs


def _state_bytes(cfg: RunConfig, pixels: int, style_pixels: int, pairs: int, per: dict) -> float:
    """What lives for the whole run: images (~10 image-sized tensors: v, its grad, best, L-BFGS work
    vectors, content, composite), the L-BFGS history and the content targets."""
    images = (10 + 2 * pairs) * 3 * pixels + 3 * style_pixels
    return FLOAT * (images + per["content"] * pixels)


def _graph_bytes(per: dict, pixels: int) -> float:
    """One evaluation with autograd: the saved activations, the content error, and ~3 widest-layer
    transients (a ReLU's input and output in the forward; gradients flowing in the backward)."""
    return FLOAT * pixels * (per["saved"] + per["content"] + 3 * per["widest"])


def _targets_bytes(per: dict, pixels: int) -> float:
    """Targets without autograd: every loss layer's map is kept, plus two widest-layer transients."""
    return FLOAT * pixels * (per["loss"] + 2 * per["widest"])


def _tiled(cfg: RunConfig, per: dict, size: tuple[int, int], tile: int, fixed: float, style_pixels: int) -> tuple:
    """(peak bytes, flops per iteration) of the tiled path with ``tile`` px cores."""
    layers, _ = _layers(cfg)
    jump = max(la.stride for la in layers)
    halo = _halo(layers, jump)
    core = jump * math.ceil(tile / jump)
    side = core + 2 * halo
    crop_pixels = min(side, size[0]) * min(side, size[1])
    # Targets are stitched tile by tile, so their peak is the stitched loss-layer maps plus one tile.
    targets = FLOAT * per["loss"] * max(size[0] * size[1], style_pixels) + _targets_bytes(per, crop_pixels)
    opt = _graph_bytes(per, crop_pixels) + FLOAT * 4 * 3 * size[0] * size[1]  # + x, its detached copy, ∂L/∂x
    covered = sum(
        (min(size[1], y + core + halo) - max(0, y - halo)) * (min(size[0], x + core + halo) - max(0, x - halo))
        for y in range(0, size[1], core)
        for x in range(0, size[0], core)
    )
    flops = 3 * per["flops"] * covered  # pass (a) forward + pass (b) forward and backward
    return fixed + max(targets, opt), flops


def _halo(layers: list[Layer], jump: int) -> int:
    """The receptive-field reach past a stride-aligned core, rounded up to the stride (as tiling.geometry)."""
    left = right = 0
    for la in layers:
        if la.kind == "conv":
            left, right = left + la.stride, right + la.stride
        elif la.kind == "pool":
            right += la.stride // 2
    return jump * math.ceil(max(left, right - (jump - 1)) / jump)


def largest_fitting(cfg: RunConfig, aspect: tuple[int, int], available: int, **kwargs: object) -> int | None:
    """The longest side (px, multiple of 16) whose estimate fits ``available``, at the aspect (W, H)."""
    budget = HEADROOM * available

    def fits(long_side: int) -> bool:
        w, h = _fit(aspect, long_side)
        return estimate(cfg, (w, h), available=available, gflops=1.0, **kwargs).peak_bytes <= budget

    lo, hi = 0, 16384 // 16
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if fits(16 * mid) else (lo, mid - 1)
    return 16 * lo or None


def _fit(aspect: tuple[int, int], long_side: int) -> tuple[int, int]:
    w, h = aspect
    scale = long_side / max(w, h)
    return max(1, round(w * scale)), max(1, round(h * scale))


def available_bytes(device: torch.device | str = "cpu") -> int | None:
    """Memory a new allocation can use now: free CUDA memory; on Linux min(MemAvailable, cgroup limit left);
    elsewhere physical memory via sysconf, if the platform has it; None when unknown (no refusal)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    if device.type != "cpu":
        return None
    found = []
    try:
        with open("/proc/meminfo") as f:
            found += [int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:")]
    except OSError:
        pass
    found += [v for v in (_cgroup_left(),) if v is not None]
    if not found and sys.platform != "win32":
        try:
            pages = os.sysconf("SC_AVPHYS_PAGES") if "SC_AVPHYS_PAGES" in os.sysconf_names else None
            pages = pages or os.sysconf("SC_PHYS_PAGES")
            found.append(pages * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError):
            pass
    return min(found) if found else None


def _cgroup_left() -> int | None:
    try:
        with open("/sys/fs/cgroup/memory.max") as f:
            limit = f.read().strip()
        with open("/sys/fs/cgroup/memory.current") as f:
            used = int(f.read())
    except (OSError, ValueError):
        return None
    return None if limit == "max" else int(limit) - used


@lru_cache(maxsize=4)
def calibrate(device: str = "cpu") -> float:
    """GFLOP/s of a 3x3, 256->256 channel convolution on a 64x64 map (best of 3, ~0.3 s on 2 cores)."""
    x = torch.randn(1, 256, 64, 64, device=device)
    w = torch.randn(256, 256, 3, 3, device=device)
    flops = 2 * 256 * 256 * 9 * 64 * 64
    best = math.inf
    with torch.no_grad():
        F.conv2d(x, w, padding=1)  # warm-up: oneDNN picks its kernel
        for _ in range(3):
            if device != "cpu":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            F.conv2d(x, w, padding=1)
            if device != "cpu":
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - t0)
    return flops / best / 1e9


def describe(n: float) -> str:
    """Bytes as ``1.5 GiB`` / ``300 MiB``."""
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def check_fits(
    cfg: RunConfig,
    size: tuple[int, int],
    style_size: tuple[int, int] | None,
    iterations: int,
    device: torch.device | str = "cpu",
    available: int | None = None,
) -> Estimate | None:
    """The plan for the largest stage, or a one-line ``PainterlyError`` (exit code 1: the request is valid,
    this machine lacks the memory now, as when a run is killed for it) naming the need, what is available
    and the largest size that would fit. None when the available memory is unknown: no refusal."""
    from painterly.errors import ExitCode, PainterlyError

    available = available if available is not None else available_bytes(device)
    if available is None:
        return None
    path = None if tiling_supported(cfg) else "plain"
    est = estimate(cfg, size, style_size=style_size, iterations=iterations, available=available, path=path,
                   gflops=1.0)  # fmt: skip
    if est.peak_bytes <= HEADROOM * available:
        return est
    largest = largest_fitting(cfg, size, available, path=path)
    hint = f"the largest that fits is about --size {largest}" if largest else "no size fits"
    also = "" if path is None else " (the tiled path covers the Gram style loss only)"
    raise PainterlyError(
        f"{size[0]}x{size[1]} needs about {describe(est.peak_bytes)} of memory{also}, "
        f"{describe(available)} is available on {torch.device(device).type}: {hint}",
        ExitCode.RUNTIME,
    )


def tiling_supported(cfg: RunConfig) -> bool:
    """Whether ``tiling.TiledObjective`` covers this configuration (it does not the Wasserstein loss)."""
    return cfg.optimize.style_loss == "gram" or cfg.mode == "reconstruct"


def stage_plan(
    cfg: RunConfig,
    size: tuple[int, int],
    style_sizes: list[tuple[int, int]],
    iterations: int,
    device: torch.device | str = "cpu",
) -> Estimate:
    """How to evaluate one coarse-to-fine stage: plain while it fits, else tiled; the L-BFGS history."""
    available = available_bytes(device)
    style_size = max(style_sizes, key=lambda s: s[0] * s[1]) if style_sizes else tuple(size)
    path = None if tiling_supported(cfg) else "plain"
    return estimate(cfg, size, style_size=style_size, iterations=iterations, available=available, path=path,
                    gflops=1.0)  # fmt: skip


def _glibc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL("libc.so.6") if sys.platform.startswith("linux") else None
    except OSError:  # musl and other C libraries: no mallopt
        return None


_kept = {"runs": 0, "lock": threading.Lock()}


@contextlib.contextmanager
def freed_memory_kept(plan: Estimate | None, device: torch.device | str = "cpu") -> Iterator[bool]:
    """Stop glibc handing freed memory back to the OS during CPU runs that have room for it (mallopt(3):
    M_MMAP_MAX = 0, M_TRIM_THRESHOLD = 1 GiB). By default every block over 32 MiB (a 64-channel feature map
    from ~360x360 px) is mmap'ed and unmapped in each evaluation, and the kernel zeroes its pages again: a
    1024x768 iteration took 9.9 s, 4.3 of them system time. Kept: 6.8 s (1.45x; 512 px 1.05x, 256 px within
    noise), for up to 35 % more peak resident memory (fragmentation): only when the plain path fits with 40 %
    to spare.

    The setting is process-wide, so it is counted: the first run that wants it switches it on, the last one
    out restores glibc's defaults; runs in other threads only see their allocations served faster. Yields
    whether this run asked for it."""
    wanted = _wants_kept(plan, device)
    if wanted:
        with _kept["lock"]:
            _kept["runs"] += 1
            if _kept["runs"] == 1:
                _set_kept(True)
    try:
        yield wanted
    finally:
        if wanted:
            with _kept["lock"]:
                _kept["runs"] -= 1
                if _kept["runs"] == 0:
                    _set_kept(False)


def _wants_kept(plan: Estimate | None, device: torch.device | str) -> bool:
    if _glibc() is None or torch.device(device).type != "cpu" or plan is None or plan.path != "plain":
        return False
    available = available_bytes(device)
    return available is not None and plan.peak_bytes * ALLOCATOR_OVERHEAD <= HEADROOM * available


def _set_kept(on: bool) -> None:
    """On: no mmap, trim only above 1 GiB. Off: glibc's defaults, and the free heap returned (malloc_trim)."""
    libc = _glibc()
    values = {M_MMAP_MAX: 0, M_TRIM_THRESHOLD: 2**30} if on else GLIBC_DEFAULTS
    for param, value in values.items():
        libc.mallopt(param, value)
    if not on:
        libc.malloc_trim(0)


def smallest_side(cfg: RunConfig) -> int:
    """Shortest image side the trunk accepts: each pooling before the deepest layer used halves it."""
    layers, _ = _layers(cfg)
    return max(la.stride for la in layers)

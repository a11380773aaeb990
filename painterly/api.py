"""Python API: ``stylize``, ``reconstruct``, ``texture`` (PIL images out) and ``run`` (everything out)."""

from __future__ import annotations

import math
import platform
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import PIL
import PIL.Image
import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor

from painterly import __version__
from painterly.config import RunConfig, build_config
from painterly.engine import memory
from painterly.engine.backbone import IMAGENET_MEAN, FeatureExtractor, load_backbone
from painterly.engine.objective import Objective
from painterly.engine.optimize import PixelOptimizer, Progress
from painterly.engine.precision import MixedPrecisionFeatures, autocast_dtype
from painterly.engine.tiling import TiledFeatures, TiledObjective
from painterly.errors import ExitCode, PainterlyError
from painterly.media.images import ImageSource, fit_size, resize, to_pil
from painterly.media.inputs import Sources, as_list, at_size, finish, load_inputs

Callback = Callable[[Progress], None]


@dataclass
class Result:
    """What a run produced. ``image`` carries ``metadata`` in ``image.info["painterly"]`` too."""

    image: PIL.Image.Image
    metadata: dict
    history: list[dict] = field(default_factory=list)  # one record per iteration
    interrupted: bool = False


def pick_device(name: str) -> torch.device:
    """``auto`` picks CUDA, then Apple MPS, then the CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}
    if not available[name]:
        raise PainterlyError(f"device {name!r} is not available on this machine (use --device auto or cpu)")
    return torch.device(name)


def backbone_for(cfg: RunConfig, device: torch.device) -> FeatureExtractor:
    layers = set(cfg.optimize.content_layers) | {name for name, _ in cfg.optimize.style_layers}
    return load_backbone(
        cfg.optimize.backbone, cfg.optimize.weights, cfg.optimize.pooling, cfg.optimize.pixels, layers, device
    )


def output_size(cfg: RunConfig, content: PIL.Image.Image | None, style: PIL.Image.Image | None) -> tuple[int, int]:
    """(W, H) of the result: the content fitted to ``cfg.size``; for texture, WxH exactly or the style's
    aspect at an int long side."""
    if content is not None:
        return fit_size(*content.size, cfg.size)
    return cfg.size if isinstance(cfg.size, tuple) else fit_size(*style.size, cfg.size)


def style_size_for(cfg: RunConfig, style: PIL.Image.Image, out: tuple[int, int]) -> tuple[int, int]:
    """The style image's (W, H) for an output (stage) of size ``out``: long side = style_scale x out's."""
    return fit_size(*style.size, max(1, round(cfg.style_scale * max(out))))


def scale_schedule(final: tuple[int, int], cfg: RunConfig, min_side: int = 1) -> list[tuple[tuple[int, int], int]]:
    """Coarse-to-fine stages as ((W, H), iterations), smallest first, the last at ``final``.

    Long sides grow geometrically from ``cfg.optimize.min_size`` to the final size (auto: one stage per doubling,
    none when the final size is under 1.5x min_size); no stage's short side is below ``min_side``.
    ``cfg.optimize.iterations`` is split evenly (the remainder goes to the last stage). Each stage starts from the
    previous result, so the costly full-size stage only refines, which is where the time goes."""
    long_side, short_side = max(final), min(final)
    low = min(1.0, max(cfg.optimize.min_size / long_side, min_side / short_side))  # smallest stage / final
    n = cfg.optimize.scales or (1 + max(0, math.ceil(math.log2(1 / low) - 0.5)))
    n = max(1, min(n, cfg.optimize.iterations)) if low < 1 else 1
    ratios = [low ** (1 - k / (n - 1)) if n > 1 else 1.0 for k in range(n)]
    sizes = [(max(1, round(final[0] * r)), max(1, round(final[1] * r))) for r in ratios]
    per_stage = [cfg.optimize.iterations // n] * n
    per_stage[-1] += cfg.optimize.iterations - sum(per_stage)
    return list(zip(sizes, per_stage, strict=True))


def _initial_image(cfg: RunConfig, content: Tensor | None, style: Tensor | None, shape: tuple) -> Tensor:
    """content | noise | style image, optionally blended: ratio·noise + (1-ratio)·image. RGB [0, 1]."""
    g = torch.Generator().manual_seed(cfg.seed)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    noise = mean + cfg.optimize.noise_amplitude * (2 * torch.rand(shape, generator=g) - 1)
    base = {"content": content, "style": style, "noise": None}[cfg.optimize.init]
    if base is None:
        return noise
    base = base.cpu()
    if base.shape != noise.shape:  # the style image, at the output size
        base = torch.nn.functional.interpolate(base, size=shape[-2:], mode="bilinear", align_corners=False)
    return cfg.optimize.init_noise_ratio * noise + (1 - cfg.optimize.init_noise_ratio) * base


def _stage(cfg: RunConfig, inputs, extractor, size, iterations, device, dtype) -> tuple:  # noqa: ANN001
    """One coarse-to-fine stage's inputs at ``size`` and its objective: plain, or evaluated exactly tile by
    tile when one graph would not fit in memory (tiling.py); bf16/fp16 trunk under autocast on a GPU."""
    style_sizes = [style_size_for(cfg, s, size) for s in inputs.styles]
    scaled = at_size(inputs, cfg, size, style_sizes, device)
    plan = memory.stage_plan(cfg, size, style_sizes, iterations, device)
    tiled = plan.path == "tiled"
    trunk = MixedPrecisionFeatures(extractor, dtype) if dtype else extractor
    objective = Objective(
        TiledFeatures(trunk, plan.tile) if tiled else trunk,
        cfg,
        scaled.content if cfg.mode != "texture" else None,
        scaled.styles if cfg.mode != "reconstruct" else None,
        blend=inputs.blend,
        masks=scaled.masks,
    )
    return scaled, TiledObjective(objective, plan.tile) if tiled else objective, plan


def run(
    cfg: RunConfig,
    content: ImageSource | None = None,
    style: Sources = None,
    *,
    mask: Sources = None,
    callbacks: Iterable[Callback] = (),
    extractor: FeatureExtractor | None = None,
) -> Result:
    """Run ``cfg.mode`` and return the best image found. Ctrl-C returns the best so far (``interrupted``).

    ``style`` may be several images (mixed by ``cfg.style_blend``); ``mask``: one image, or one per style,
    white where the result is stylised (see ``control.py``)."""
    t0 = time.perf_counter()
    inputs = load_inputs(cfg, content, style, mask)
    content_im, alpha = inputs.content, inputs.alpha
    style_im = inputs.styles[0] if inputs.styles else None
    if cfg.mode != "texture" and content_im is None:
        raise PainterlyError(f"{cfg.mode} needs a content image")
    if cfg.mode != "reconstruct" and style_im is None:
        raise PainterlyError(f"{cfg.mode} needs a style image")
    device = extractor.body[0].weight.device if extractor is not None else pick_device(cfg.device)
    out_size = output_size(cfg, content_im, style_im)
    style_size = style_size_for(cfg, style_im, out_size) if style_im is not None else None
    fits = memory.check_fits(
        cfg, out_size, style_size, cfg.optimize.iterations, device
    )  # refuse before loading anything big
    kept = memory.keep_freed_memory(fits, device)
    try:
        extractor = extractor or backbone_for(cfg, device)
        min_side = memory.smallest_side(cfg)
        if min(out_size) < min_side:
            raise PainterlyError(
                f"output {out_size[0]}x{out_size[1]} is too small for the layers used: the short side must be "
                f">= {min_side} px"
            )
        schedule = scale_schedule(out_size, cfg, min_side)
        dtype = autocast_dtype(cfg.precision, device)
        setup = time.perf_counter() - t0
        opt, coarse, history, interrupted = None, None, [], False
        start, done = time.perf_counter(), 0
        for k, (size, iterations) in enumerate(schedule):
            scaled, objective, plan = _stage(cfg, inputs, extractor, size, iterations, device, dtype)
            if coarse is None:
                style_t = scaled.styles[0] if scaled.styles else None
                init = _initial_image(cfg, scaled.content, style_t, (1, 3, size[1], size[0])).to(device)
            else:  # coarse-to-fine: the previous stage's best, upsampled (Gatys et al. 2017, sec. 5)
                init = F.interpolate(coarse, size=(size[1], size[0]), mode="bicubic", align_corners=False).clamp(0, 1)
            opt = PixelOptimizer(
                objective,
                extractor.pixels.to_net(init),
                lambda v, o=objective, s=scaled: finish(o.image(v), s, cfg),
                cfg.optimize.optimizer,
                cfg.optimize.lr,
                iterations,
                cfg.optimize.tol,
                numbering=(done, cfg.optimize.iterations, k + 1, len(schedule)),
                start=start,
                history_size=plan.history,
                warm=opt.curvature_at(size, plan.history) if opt is not None else None,
            )
            try:
                for progress in opt.steps():
                    for callback in callbacks:
                        callback(progress)
            except KeyboardInterrupt:
                if opt.best is None and k == 0:
                    raise
                interrupted = True
            history += opt.history
            done += iterations
            if opt.best is not None:
                coarse, final = objective.image(opt.best), finish(objective.image(opt.best), scaled, cfg)
            if interrupted:
                break
    except (RuntimeError, MemoryError) as exc:  # torch.OutOfMemoryError is a RuntimeError
        oom = isinstance(exc, torch.OutOfMemoryError | MemoryError) or "out of memory" in str(exc)
        if not oom and "can't allocate memory" not in str(exc):
            raise
        raise PainterlyError(
            f"out of memory at {out_size[0]}x{out_size[1]} on {device}: try a smaller --size", ExitCode.RUNTIME
        ) from exc
    finally:
        if kept:
            memory.release_freed_memory()
    image = to_pil(final)
    if image.size != tuple(out_size):  # interrupted before the last stage: hand out the requested size
        image = image.resize(out_size, PIL.Image.Resampling.BICUBIC)
    if alpha is not None:
        image.putalpha(resize(alpha, image.size))
    total_s = time.perf_counter() - t0
    metadata = _metadata(cfg, extractor, device, content, style, history, schedule, setup, total_s, interrupted)
    if len(as_list(style)) > 1 or mask is not None:
        styles, masks = as_list(style), as_list(mask)
        metadata["inputs"].update(style=[_describe(s) for s in styles], mask=[_describe(m) for m in masks])
    image.info["painterly"] = metadata
    return Result(image, metadata, history, interrupted)


def _describe(source: ImageSource | None) -> str | None:
    if source is None or isinstance(source, str):
        return source
    return str(source) if not isinstance(source, PIL.Image.Image | Tensor) else f"<{type(source).__name__}>"


def _metadata(cfg, extractor, device, content, style, history, schedule, setup, total, interrupted) -> dict:  # noqa: ANN001
    last = history[-1] if history else {}
    return {
        "painterly": __version__,
        "mode": cfg.mode,
        "inputs": {"content": _describe(content), "style": _describe(style)},
        "options": cfg.flat(),  # flat names: build_config(mode, options) rebuilds it
        "backbone": extractor.description,
        "seed": cfg.seed,
        "device": str(device),
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "torchvision": torchvision.__version__,
            "pillow": PIL.__version__,
        },
        "timings": {
            "setup_s": round(setup, 3),
            "optimize_s": round(last.get("elapsed", 0.0), 3),
            "total_s": round(total, 3),
            "per_iteration_s": round(last.get("elapsed", 0.0) / max(1, len(history)), 4),
        },
        "iterations_run": len(history),
        "scales": [{"size": list(size), "iterations": n} for size, n in schedule],
        "interrupted": interrupted,
        "initial_loss": history[0]["total"] if history else None,
        "final_losses": {k: v for k, v in last.items() if k not in ("iteration", "elapsed", "scale")},
    }


def stylize(
    content: ImageSource, style: Sources, *, mask: Sources = None, callbacks: Iterable[Callback] = (), **options
) -> PIL.Image.Image:
    """Paint ``content`` in the style of ``style`` (one image or several). Options: RunConfig fields, e.g.
    ``preset="gatys"``, ``style_blend=(0.7, 0.3)``, ``preserve_color="luminance"``, ``strength=0.7``,
    ``style_loss="wasserstein"``. ``mask``: one image, or one per style; white = stylise, black = keep."""
    return run(build_config("stylize", options), content, style, mask=mask, callbacks=callbacks).image


def reconstruct(image: ImageSource, *, callbacks: Iterable[Callback] = (), **options) -> PIL.Image.Image:
    """Recreate ``image`` from noise using only one layer's features (``content_layers=("relu4_2",)``)."""
    return run(build_config("reconstruct", options), image, None, callbacks=callbacks).image


def texture(style: ImageSource, *, callbacks: Iterable[Callback] = (), **options) -> PIL.Image.Image:
    """Synthesise a texture from ``style``'s Gram matrices alone, starting from noise."""
    return run(build_config("texture", options), None, style, callbacks=callbacks).image

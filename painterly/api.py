"""Python API, the one door every caller uses: ``iterate`` (a run you can watch and stop), ``run`` (the same,
consumed), and the one-line helpers ``stylize``, ``fast``, ``reconstruct``, ``texture`` (PIL images out).

A run flows config -> method -> events -> result: ``iterate`` decodes the inputs, picks the method
(``optimize``: pixel optimisation, coarse to fine, in ``engine/``; ``fast``: one pass, in ``fast/``), yields a
``Step`` per step and finally the ``Result``."""

from __future__ import annotations

import math
import platform
import threading
import time
from collections.abc import Callable, Generator, Iterable
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
from painterly.engine.optimize import PixelOptimizer
from painterly.engine.precision import MixedPrecisionFeatures, autocast_dtype
from painterly.engine.tiling import TiledFeatures, TiledObjective
from painterly.errors import ExitCode, PainterlyError
from painterly.events import Step
from painterly.media.color import match_color
from painterly.media.images import ImageSource, fit_size, load_image, resize, split_alpha, to_pil, to_tensor
from painterly.media.inputs import Inputs, Sources, as_list, at_size, finish, load_inputs

Callback = Callable[[Step], None]


@dataclass
class Result:
    """What a run produced. ``image`` carries ``metadata`` in ``image.info["painterly"]`` too."""

    image: PIL.Image.Image
    metadata: dict
    losses: list[dict] = field(default_factory=list)  # one record of the loss terms per optimiser iteration
    interrupted: bool = False  # stopped (cancel, close, Ctrl-C) before its last step: the best image so far


class Run:
    """The events of one run: iterate it for ``Step`` events, then the ``Result`` as the last item.

    ``close()`` (or the ``cancel`` token given to ``iterate``) stops the run before its next step; the best
    image so far is then in ``result``. Closing an unstarted or finished run does nothing."""

    def __init__(self, events: Generator[Step | Result, None, None]) -> None:
        self._events = events
        self.result: Result | None = None

    def __iter__(self) -> Run:
        return self

    def __next__(self) -> Step | Result:
        item = next(self._events)
        if isinstance(item, Result):
            self.result = item
        return item

    def close(self) -> Result | None:
        """Stop before the next step and return the best image so far (None if no step had finished)."""
        if self.result is None:
            try:
                item = self._events.throw(_Stop())
                self.result = item if isinstance(item, Result) else None
            except (StopIteration, _Stop):  # never started, or already finished
                pass
            except PainterlyError as err:  # stopped before the first step: nothing to keep
                if err.exit_code != ExitCode.INTERRUPTED:
                    raise
        self._events.close()
        return self.result


class _Stop(Exception):
    """Thrown into a run by ``Run.close``: finish with the best image so far."""


def iterate(
    cfg: RunConfig,
    content: ImageSource | None = None,
    style: Sources = None,
    *,
    mask: Sources = None,
    init: ImageSource | None = None,
    cancel: object | None = None,
    extractor: FeatureExtractor | None = None,
    terms: dict | None = None,
) -> Run:
    """Start a run of ``cfg``: iterate the returned ``Run`` for ``Step`` events, the last item is the ``Result``.

    ``style``: one image or several (mixed by ``cfg.style_blend``); ``mask``: one image, or one per style, white
    where the result is stylised; ``init``: an image (path, PIL or tensor) the optimisation starts from, resized
    to the first stage (``cfg.optimize.init == "fast"``: the one-pass result); ``cancel``: any object with
    ``is_set()`` (a ``threading.Event``), checked before each step; ``terms``: extra loss terms for this run,
    ``{name: build}`` as ``engine.objective.register_term`` takes them (video adds a temporal term)."""
    return Run(_events(cfg, content, style, mask, init, cancel, extractor, terms))


def run(
    cfg: RunConfig,
    content: ImageSource | None = None,
    style: Sources = None,
    *,
    mask: Sources = None,
    init: ImageSource | None = None,
    cancel: object | None = None,
    callbacks: Iterable[Callback] = (),
    extractor: FeatureExtractor | None = None,
    terms: dict | None = None,
) -> Result:
    """``iterate`` consumed: each ``Step`` goes to ``callbacks``; returns the ``Result``. A Ctrl-C returns the
    best image so far with ``interrupted`` set."""
    events = iterate(cfg, content, style, mask=mask, init=init, cancel=cancel, extractor=extractor, terms=terms)
    try:
        for item in events:
            if isinstance(item, Step):
                for callback in callbacks:
                    callback(item)
    except KeyboardInterrupt:  # Ctrl-C in a callback (inside a step, the run itself catches it)
        if events.close() is None:
            raise
    return events.result


def _events(cfg, content, style, mask, init, cancel, extractor, terms) -> Generator:  # noqa: ANN001
    t0 = time.perf_counter()
    inputs = load_inputs(cfg, content, style, mask)
    if cfg.mode != "texture" and inputs.content is None:
        raise PainterlyError(f"{cfg.mode} needs a content image")
    if cfg.mode != "reconstruct" and not inputs.styles:
        raise PainterlyError(f"{cfg.mode} needs a style image")
    device = extractor.body[0].weight.device if extractor is not None else pick_device(cfg.device)
    out_size = output_size(cfg, inputs.content, inputs.styles[0] if inputs.styles else None)
    state = _State(t0)
    try:
        if cfg.method == "fast":
            yield from _fast(cfg, inputs, out_size, cancel, device, state)
        else:
            yield from _optimize(cfg, inputs, out_size, init, cancel, extractor, terms, device, state)
    except (_Stop, KeyboardInterrupt):  # Run.close(), or the user's Ctrl-C: keep the best image so far
        state.interrupted = True
    except (torch.OutOfMemoryError, MemoryError) as exc:
        raise _out_of_memory(out_size, device) from exc
    except RuntimeError as exc:  # the CPU allocator's failure has no type of its own, only this message
        if "can't allocate memory" not in str(exc):
            raise
        raise _out_of_memory(out_size, device) from exc
    if state.final is None:  # stopped before the first step ended: nothing to hand out
        raise PainterlyError("stopped before the first step: no image", ExitCode.INTERRUPTED)
    yield _result(cfg, inputs, out_size, state, device, content, style, mask)


def _out_of_memory(size: tuple[int, int], device: torch.device) -> PainterlyError:
    return PainterlyError(f"out of memory at {size[0]}x{size[1]} on {device}: try a smaller --size", ExitCode.RUNTIME)


@dataclass
class _State:
    """What a method leaves for the result: the best image at the last size reached, and the record."""

    t0: float
    setup_s: float = 0.0
    final: Tensor | None = None  # RGB [0, 1], as handed out
    final_stage: int = 1  # the stage ``final`` comes from
    losses: list[dict] = field(default_factory=list)
    schedule: list = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    interrupted: bool = False
    backbone: str | None = None


def _cancelled(cancel: object | None) -> bool:
    return cancel is not None and cancel.is_set()


# --- the optimisation method --------------------------------------------------------------------------------

_backbones: dict[tuple, FeatureExtractor] = {}
_backbones_lock = threading.Lock()


def backbone_for(cfg: RunConfig, device: torch.device) -> FeatureExtractor:
    """The frozen feature extractor for ``cfg``'s layers, loaded once per (network, weights, pooling, pixels,
    layers, device) and shared by every run in the process (it is never modified)."""
    opt = cfg.optimize
    layers = frozenset(opt.content_layers) | {name for name, _ in opt.style_layers}
    key = (opt.backbone, opt.weights, opt.pooling, opt.pixels, layers, str(device))
    with _backbones_lock:
        if key not in _backbones:
            _backbones[key] = load_backbone(opt.backbone, opt.weights, opt.pooling, opt.pixels, layers, device)
        return _backbones[key]


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


def output_size(cfg: RunConfig, content: PIL.Image.Image | None, style: PIL.Image.Image | None) -> tuple[int, int]:
    """(W, H) of the result: the content fitted to ``cfg.size``; for texture, WxH exactly or the style's
    aspect at an int long side."""
    if content is not None:
        return fit_size(*content.size, cfg.size)
    return cfg.size if isinstance(cfg.size, tuple) else fit_size(*style.size, cfg.size)


def style_size_for(cfg: RunConfig, style: PIL.Image.Image, out: tuple[int, int]) -> tuple[int, int]:
    """The style image's (W, H) for an output (stage) of size ``out``: long side = style_scale x out's."""
    return fit_size(*style.size, max(1, round(cfg.style_scale * max(out))))


def stage_schedule(final: tuple[int, int], cfg: RunConfig, min_side: int = 1) -> list[tuple[tuple[int, int], int]]:
    """Coarse-to-fine stages as ((W, H), iterations), smallest first, the last at ``final``.

    Long sides grow geometrically from ``min_size`` to the final size (auto: one stage per doubling, none when
    the final size is under 1.5x min_size); no stage's short side is below ``min_side``. The iterations are
    split evenly (the remainder goes to the last stage). Each stage starts from the previous result, so the
    costly full-size stage only refines, which is where the time goes."""
    opt = cfg.optimize
    long_side, short_side = max(final), min(final)
    low = min(1.0, max(opt.min_size / long_side, min_side / short_side))  # smallest stage / final
    n = opt.stages or (1 + max(0, math.ceil(math.log2(1 / low) - 0.5)))
    n = max(1, min(n, opt.iterations)) if low < 1 else 1
    ratios = [low ** (1 - k / (n - 1)) if n > 1 else 1.0 for k in range(n)]
    sizes = [(max(1, round(final[0] * r)), max(1, round(final[1] * r))) for r in ratios]
    per_stage = [opt.iterations // n] * n
    per_stage[-1] += opt.iterations - sum(per_stage)
    return list(zip(sizes, per_stage, strict=True))


def _optimize(cfg, inputs, out_size, init, cancel, extractor, terms, device, state) -> Generator:  # noqa: ANN001
    """Gatys et al.: minimise the objective over the pixels, stage by stage, coarse to fine."""
    style_size = style_size_for(cfg, inputs.styles[0], out_size) if inputs.styles else None
    fits = memory.check_fits(cfg, out_size, style_size, cfg.optimize.iterations, device)  # before loading anything
    extractor = extractor or backbone_for(cfg, device)
    state.backbone = extractor.description
    min_side = memory.smallest_side(cfg)
    if min(out_size) < min_side:
        raise PainterlyError(
            f"output {out_size[0]}x{out_size[1]} is too small for the layers used: the short side must be "
            f">= {min_side} px"
        )
    start_image = _start_image(cfg, inputs, init, out_size, device)
    state.schedule = stage_schedule(out_size, cfg, min_side)
    dtype = autocast_dtype(cfg.precision, device)
    state.setup_s = time.perf_counter() - state.t0
    opt, coarse, done, start = None, None, 0, time.perf_counter()
    with memory.freed_memory_kept(fits, device):
        for k, (size, iterations) in enumerate(state.schedule):
            if _cancelled(cancel):
                raise _Stop
            scaled, objective, plan = _stage(cfg, inputs, extractor, size, iterations, device, dtype, terms)
            if coarse is None:
                first = _initial_image(cfg, scaled, inputs.blend, start_image, (1, 3, size[1], size[0])).to(device)
            else:  # coarse-to-fine: the previous stage's best, upsampled (Gatys et al. 2017, sec. 5)
                first = F.interpolate(coarse, size=(size[1], size[0]), mode="bicubic", align_corners=False).clamp(0, 1)
            opt = PixelOptimizer(
                objective,
                extractor.pixels.to_net(first),
                lambda v, o=objective, s=scaled: finish(o.image(v), s, cfg),
                cfg.optimize.optimizer,
                cfg.optimize.lr,
                iterations,
                cfg.optimize.tol,
                numbering=(done, cfg.optimize.iterations, k + 1, len(state.schedule)),
                start=start,
                history_size=plan.lbfgs_pairs,
                warm=opt.curvature_at(size, plan.lbfgs_pairs) if opt is not None else None,
            )
            try:
                for step in opt.steps():
                    yield step
                    if _cancelled(cancel):
                        raise _Stop
            finally:  # also when stopped: keep this stage's best
                state.losses += opt.records
                state.notes += opt.notes
                if opt.best is not None:
                    coarse = objective.image(opt.best)
                    state.final, state.final_stage = finish(coarse, scaled, cfg), k + 1
                elif k > 0:  # never an upsampled coarse picture presented as this stage's result
                    state.notes.append(f"stage {k + 1}: no finite point; the result is stage {k}'s, upsampled")
            done += iterations


def _start_image(cfg: RunConfig, inputs: Inputs, init: ImageSource | None, size, device) -> Tensor | None:  # noqa: ANN001
    """The picture the optimisation starts from at the output size, when it is not built from the config
    alone: the ``init`` image, or the one-pass result (``init="fast"``)."""
    if init is not None:
        if isinstance(init, Tensor):
            image = init.detach().float().reshape(1, *init.shape[-3:])[:, :3].cpu().clamp(0, 1)
            return F.interpolate(image, size=(size[1], size[0]), mode="bicubic", align_corners=False).clamp(0, 1)
        return to_tensor(resize(split_alpha(load_image(init))[0], size))
    if cfg.optimize.init == "fast":
        return _one_pass(cfg, inputs, size, device)
    return None


def _recoloured(scaled, blend: tuple[float, ...]) -> Tensor:  # noqa: ANN001 - media.inputs.Scaled
    """The photo in each painting's colour mean and covariance (``match_color``, Gatys et al. 2016's colour
    transfer the other way round), mixed as the styles are: by the masks where given (the photo itself where
    none covers it, as masked-out pixels keep the content), else by the blend weights."""
    from painterly.fast.onepass import mix_weights

    photo = scaled.content.cpu()
    looks = [match_color(photo, s.cpu()).clamp(0, 1) for s in scaled.styles]
    weights = mix_weights(scaled.masks, list(blend), tuple(photo.shape[-2:]), len(looks), photo.device)
    if weights is None:
        return sum(b * look for b, look in zip(blend, looks, strict=True))
    return sum(weights[:, k : k + 1] * x for k, x in enumerate([*looks, photo]))


def _initial_image(cfg: RunConfig, scaled, blend, start: Tensor | None, shape: tuple) -> Tensor:  # noqa: ANN001
    """The first stage's start: ``start`` resized, or content | colour (``_recoloured``) | noise | style image;
    then ratio·noise + (1 - ratio)·that image. RGB [0, 1]."""
    opt = cfg.optimize
    g = torch.Generator().manual_seed(cfg.seed)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    noise = mean + opt.noise_amplitude * (2 * torch.rand(shape, generator=g) - 1)
    if start is not None:
        base = start
    else:
        starts = {"content": scaled.content, "style": scaled.styles[0] if scaled.styles else None}
        base = _recoloured(scaled, blend) if opt.init == "color" else starts.get(opt.init)
    if base is None:
        return noise
    base = base.cpu()
    if base.shape != noise.shape:  # the style image or the start image, at the stage's size
        base = F.interpolate(base, size=shape[-2:], mode="bicubic", align_corners=False).clamp(0, 1)
    return opt.init_noise_ratio * noise + (1 - opt.init_noise_ratio) * base


def _stage(cfg: RunConfig, inputs, extractor, size, iterations, device, dtype, terms=None) -> tuple:  # noqa: ANN001
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
        terms=terms,
    )
    return scaled, TiledObjective(objective, plan.tile) if tiled else objective, plan


# --- the one-pass method ------------------------------------------------------------------------------------


def _fast(cfg, inputs, out_size, cancel, device, state) -> Generator:  # noqa: ANN001
    """One forward pass of a trained network (painterly/fast/): one step, no losses."""
    state.setup_s = time.perf_counter() - state.t0
    if _cancelled(cancel):
        raise _Stop
    start = time.perf_counter()
    state.final = _one_pass(cfg, inputs, out_size, device)
    yield Step(1, 1, time.perf_counter() - start, lambda: state.final)


def _one_pass(cfg: RunConfig, inputs: Inputs, size: tuple[int, int], device: torch.device) -> Tensor:
    """The one-pass network's picture at ``size``, RGB [0, 1] on the CPU. ``paint`` applies the colour mode
    itself, so it gets the photo and the paintings as they are."""
    from painterly.fast.onepass import paint  # imported on use: the optimiser alone never loads it

    plain = at_size(inputs, cfg.replace(preserve_color="none"), size, [s.size for s in inputs.styles], device)
    painted = paint(cfg, plain.photo, plain.styles, blend=list(inputs.blend), masks=plain.masks, device=device)
    return painted.detach().float().cpu().clamp(0, 1)


# --- the result ----------------------------------------------------------------------------------------------


def _result(cfg, inputs, out_size, state, device, content, style, mask) -> Result:  # noqa: ANN001
    image = to_pil(state.final)
    if image.size != tuple(out_size):  # stopped before the last stage: hand out the requested size
        image = image.resize(out_size, PIL.Image.Resampling.BICUBIC)
    if inputs.alpha is not None:
        image.putalpha(resize(inputs.alpha, image.size))
    metadata = _metadata(cfg, state, device, content, style, time.perf_counter() - state.t0)
    if len(as_list(style)) > 1 or mask is not None:
        metadata["inputs"].update(
            style=[_describe(s) for s in as_list(style)], mask=[_describe(m) for m in as_list(mask)]
        )
    image.info["painterly"] = metadata
    return Result(image, metadata, state.losses, state.interrupted)


def _describe(source: ImageSource | None) -> str | None:
    if source is None or isinstance(source, str):
        return source
    return str(source) if not isinstance(source, PIL.Image.Image | Tensor) else f"<{type(source).__name__}>"


def _metadata(cfg: RunConfig, state: _State, device, content, style, total: float) -> dict:  # noqa: ANN001
    last = state.losses[-1] if state.losses else {}
    best = min((r for r in state.losses if r["stage"] == state.final_stage), key=lambda r: r["total"], default={})
    work_s = total - state.setup_s
    return {
        "painterly": __version__,
        "mode": cfg.mode,
        "method": cfg.method,
        "inputs": {"content": _describe(content), "style": _describe(style)},
        "options": cfg.flat(),  # flat names: build_config(mode, options) rebuilds the config
        "backbone": state.backbone,
        "seed": cfg.seed,
        "device": str(device),
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "torchvision": torchvision.__version__,
            "pillow": PIL.__version__,
        },
        "timings": {
            "setup_s": round(state.setup_s, 3),
            "optimize_s": round(last.get("elapsed", work_s), 3),
            "total_s": round(total, 3),
            "per_iteration_s": round(last.get("elapsed", 0.0) / max(1, len(state.losses)), 4),
        },
        "iterations_run": len(state.losses),
        "stages": [{"size": list(size), "iterations": n} for size, n in state.schedule],
        "interrupted": state.interrupted,
        "notes": state.notes,
        "initial_loss": state.losses[0]["total"] if state.losses else None,
        "final_losses": {k: v for k, v in best.items() if k not in ("iteration", "elapsed", "stage")},  # the result's
    }


# --- one-line helpers ----------------------------------------------------------------------------------------


def stylize(
    content: ImageSource, style: Sources, *, mask: Sources = None, callbacks: Iterable[Callback] = (), **options
) -> PIL.Image.Image:
    """Paint ``content`` in the style of ``style`` (one image or several). Options: config fields by flat name,
    e.g. ``preset="gatys"``, ``style_blend=(0.7, 0.3)``, ``preserve_color="luminance"``, ``strength=0.7``,
    ``style_loss="wasserstein"``, ``method="fast"``. ``mask``: one image, or one per style; white = stylise."""
    return run(build_config("stylize", options), content, style, mask=mask, callbacks=callbacks).image


def fast(content: ImageSource, style: Sources, *, mask: Sources = None, **options) -> PIL.Image.Image:
    """One pass of a trained network (``model="magenta"`` or ``"adain"``): ``stylize`` with ``method="fast"``."""
    return stylize(content, style, mask=mask, **{**options, "method": "fast"})


def reconstruct(image: ImageSource, *, callbacks: Iterable[Callback] = (), **options) -> PIL.Image.Image:
    """Recreate ``image`` from noise using only one layer's features (``content_layers=("relu4_2",)``)."""
    return run(build_config("reconstruct", options), image, None, callbacks=callbacks).image


def texture(style: ImageSource, *, callbacks: Iterable[Callback] = (), **options) -> PIL.Image.Image:
    """Synthesise a texture from ``style``'s Gram matrices alone, starting from noise."""
    return run(build_config("texture", options), None, style, callbacks=callbacks).image

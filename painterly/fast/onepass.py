"""One-pass stylisation: the work size, style vectors, strength, blends, masks and colour around a model.

``paint`` is what ``api.iterate`` calls for ``method="fast"``. The models are loaded once per (model, device)
and shared by threads (``load_model``); they are read-only during a forward pass."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from painterly.errors import ExitCode, PainterlyError
from painterly.fast.magenta import Style
from painterly.media.color import luminance, match_color, with_chroma

DEFAULT_MODEL = "magenta"
AUTO_WORK_SIZE = 1024  # by eye (Tübingen × Starry Night at 1024 px): 384/512 upscaled blur, 768 and 1024 sharp
MULTIPLE = 4  # the transformer halves the picture twice


@dataclass(frozen=True)
class FastSettings:
    """What ``paint`` reads of a run config: ``cfg.fast.model`` and ``cfg.fast.work_size`` plus the shared
    ``strength`` and ``preserve_color``."""

    model: str = DEFAULT_MODEL
    work_size: int | None = None
    strength: float = 0.5
    preserve_color: str = "none"


def settings(cfg: object) -> FastSettings:
    """The one place that reads a run config (``cfg.fast`` may be absent: then the defaults)."""
    fast = getattr(cfg, "fast", None)
    return FastSettings(
        model=str(getattr(fast, "model", DEFAULT_MODEL) or DEFAULT_MODEL),
        work_size=getattr(fast, "work_size", None),
        strength=float(getattr(cfg, "strength", 0.5)),
        preserve_color=str(getattr(cfg, "preserve_color", "none")),
    )


def style_weight(strength: float) -> float:
    """``--strength`` s -> Magenta's interpolation weight w on the style vector, S = S_photo + w (S_style −
    S_photo): w = 2s, so 0 is the photo's own vector, 0.5 (the shared default) Magenta's own w = 1, and 1
    extrapolates to w = 2 (bolder; still a valid CIN parameter set since γ, β are affine in S)."""
    return 2.0 * strength


_MODELS: dict[tuple[str, str], object] = {}
_LOCK = threading.Lock()


def load_model(name: str, device: torch.device) -> object:
    """The model ``name`` on ``device``, built once per process (a lock-protected cache: threads share it)."""
    check_model_name(name)
    key = (name, str(device))
    with _LOCK:
        model = _MODELS.get(key)
        if model is None:
            if name == "magenta":
                from painterly.fast.magenta import Magenta

                model = Magenta.load(device)
            else:
                from painterly.fast.adain import AdaIN

                model = AdaIN.load(name, device)
            _MODELS[key] = model
    return model


def work_shape(height: int, width: int, work_size: int | None) -> tuple[int, int]:
    """The (H, W) the network paints at: the output's aspect ratio with long side ``work_size``; None (auto):
    the output's own size up to 1024 px, above that 1024 (strokes are fixed in network pixels: at 4096 px a
    full-resolution pass makes them 4× finer relative to the picture, close to a noisy photo)."""
    if work_size is None:
        work_size = min(max(height, width), AUTO_WORK_SIZE)
    if work_size == max(height, width):
        return height, width
    scale = work_size / max(height, width)
    return max(MULTIPLE, round(height * scale)), max(MULTIPLE, round(width * scale))


def resample(x: Tensor, size: tuple[int, int]) -> Tensor:
    """Bicubic with antialiasing when shrinking, clamped to [0, 1]; ``x`` itself when already that size.
    Enlarging works on a contiguous NCHW copy of ``x`` (the small side): on a channels-last input (the
    onnxruntime result) the kernel takes ~2× longer than the copy and the NCHW pass together."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    if size[0] * size[1] > x.shape[-2] * x.shape[-1]:
        x = x.contiguous()
    return F.interpolate(x, size=size, mode="bicubic", antialias=True, align_corners=False).clamp_(0, 1)


def pad_to_multiple(x: Tensor, multiple: int = MULTIPLE) -> Tensor:
    """Reflect-pad the bottom and right so H and W are multiples of ``multiple`` (cropped off afterwards)."""
    h, w = x.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    if not (ph or pw):
        return x
    if ph >= h or pw >= w:  # reflection needs more rows than it adds
        return F.pad(x, (0, pw, 0, ph), mode="replicate")
    return F.pad(x, (0, pw, 0, ph), mode="reflect")


def mix_weights(
    masks: list[Tensor] | None, blend: list[float], size: tuple[int, int], k: int, device: torch.device
) -> Tensor | None:
    """(1, k + 1, H, W) per-pixel weights of the k style vectors and, last, the photo's own vector; None
    without masks. Where the masks cover a pixel (Σ m ≤ 1 clipped) the styles share it by blend × mask; the
    rest keeps the photo's own vector (Magenta's "no style"), as masked-out pixels keep the content in
    ``stylize``. One mask serves every style."""
    if not masks:
        return None
    m = torch.cat([resample(mk.to(device, torch.float32), size) for mk in masks], dim=1)  # (1, K or 1, H, W)
    m = m.expand(1, k, *size) if m.shape[1] == 1 else m
    b = torch.tensor(blend, device=device, dtype=torch.float32).view(1, k, 1, 1)
    raw = m * b
    share = raw / raw.sum(dim=1, keepdim=True).clamp_min(1e-8)
    cover = m.amax(dim=1, keepdim=True).clamp(0, 1)  # a pixel fully in any region is fully stylised
    return torch.cat([share * cover, 1 - cover], dim=1)


def paint(
    cfg: object,
    content: Tensor,
    styles: list[Tensor],
    *,
    blend: list[float],
    masks: list[Tensor] | None,
    device: torch.device,
) -> Tensor:
    """One forward pass: ``content`` (1, 3, H, W) RGB in [0, 1] at the output size, ``styles`` (1, 3, h, w),
    ``blend`` one weight per style (normalised here), ``masks`` one (1, 1, H, W) per style (or one shared) or
    None -> (1, 3, H, W) in [0, 1] on ``device``."""
    s = settings(cfg)
    if not styles or len(blend) != len(styles):
        raise PainterlyError(f"fast: {len(styles)} style image(s) with {len(blend)} blend weight(s)")
    if masks is not None and len(masks) not in (1, len(styles)):
        raise PainterlyError(f"fast: give one mask or one per style ({len(styles)}); got {len(masks)}")
    total = float(sum(blend))
    if total <= 0:
        raise PainterlyError("fast: the style blend weights must not all be 0")
    blend = [w / total for w in blend]
    model = load_model(s.model, device)
    photo = content.to(device, torch.float32)
    if s.preserve_color == "histogram":
        styles = [match_color(st.to(device, torch.float32), photo).clamp(0, 1) for st in styles]
    height, width = photo.shape[-2:]
    size = work_shape(height, width, s.work_size)
    with torch.inference_mode():
        out = model.paint(resample(photo, size), [st.to(device, torch.float32) for st in styles], blend,
                          masks, style_weight(s.strength))  # fmt: skip
        out = resample(out, (height, width))
    if s.preserve_color == "luminance":
        out = with_chroma(luminance(out), photo)
    return out.contiguous()


def magenta_style(
    vectors: list[Tensor], own: Tensor, blend: list[float], masks: list[Tensor] | None, w: float,
    size: tuple[int, int],
) -> Style:  # fmt: skip
    """The transformer's conditioning: each style vector pulled towards the photo's own by strength weight w,
    S_k = S_own + w (S_k − S_own); without masks one blended vector Σ b_k S_k, with masks per-pixel weights."""
    pulled = [own + w * (v - own) for v in vectors]  # (1, 100) each
    weights = mix_weights(masks, blend, size, len(vectors), own.device)
    if weights is None:
        return Style(sum(b * v for b, v in zip(blend, pulled, strict=True)))
    return Style(torch.cat([*pulled, own], dim=0), weights)


def check_model_name(name: str) -> None:
    """A clear error for an unknown ``--model`` value (not magenta, adain, or an existing file)."""
    from pathlib import Path

    if name not in ("magenta", "adain") and not Path(name).is_file():
        raise PainterlyError(f"--model {name!r}: expected magenta, adain or an AdaIN decoder file", ExitCode.USAGE)

"""Inputs for creative control (issue 5): several styles, masks and colour preservation.

Three steps a (multi-scale) run calls: ``load_inputs`` once (decode, check, drop zero-weight styles),
``at_size`` per output size (tensors, colour transforms, masks), ``finish`` on each image it hands out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from PIL import Image
from torch import Tensor

from painterly.config import RunConfig
from painterly.errors import PainterlyError
from painterly.media.color import grey, luminance, match_color, match_luminance, with_chroma
from painterly.media.images import ImageSource, load_image, resize, split_alpha, to_tensor

Sources = ImageSource | Sequence[ImageSource] | None


def as_list(source: Sources) -> list[ImageSource]:
    """None -> [], one image (path, PIL image or tensor) -> [it], a list or tuple of them -> a list."""
    if source is None:
        return []
    return list(source) if isinstance(source, list | tuple) else [source]


@dataclass(frozen=True)
class Inputs:
    """A run's decoded images at full resolution."""

    content: Image.Image | None  # RGB
    alpha: Image.Image | None  # the content's transparency, mode "L"
    styles: list[Image.Image]  # RGB, only those with a blend weight > 0
    blend: tuple[float, ...]  # one weight per kept style, summing to 1
    masks: list[Image.Image]  # mode "L": none, one shared, or one per kept style


def load_inputs(cfg: RunConfig, content: ImageSource | None, style: Sources, mask: Sources = None) -> Inputs:
    """Decode and check the images. Styles with blend weight 0 are dropped here (with their masks), so a
    ``1,0`` blend runs exactly the single-style computation."""
    styles, masks = as_list(style), as_list(mask)
    blend = cfg.style_blend or (1.0,) * len(styles)
    if styles and len(blend) != len(styles):
        raise PainterlyError(f"--style-blend has {len(blend)} weights for {len(styles)} style image(s)")
    if masks and (content is None or not styles):
        raise PainterlyError("--mask needs a content photo and a style: masked-out pixels keep the content")
    if len(masks) not in (0, 1, len(styles)):
        raise PainterlyError(f"give --mask once, or once per style ({len(styles)}); got {len(masks)}")
    per_style = len(masks) == len(styles) > 1
    keep = [i for i, w in enumerate(blend) if w > 0]
    content_im, alpha = split_alpha(load_image(content)) if content is not None else (None, None)
    total = sum(blend[i] for i in keep)
    return Inputs(
        content_im,
        alpha,
        [split_alpha(load_image(styles[i]))[0] for i in keep],
        tuple(blend[i] / total for i in keep),
        [_load_mask(masks[i]) for i in keep] if per_style else [_load_mask(m) for m in masks],
    )


def _load_mask(source: ImageSource) -> Image.Image:
    """Any image as a grey mask: white = stylise, black = keep the content; transparent counts as black.
    Tensors may also be single-channel: (H, W), (1, H, W) or (1, 1, H, W) in [0, 1]."""
    if (
        isinstance(source, Tensor)
        and source.dim() in (2, 3, 4)
        and source.numel() == source.shape[-1] * source.shape[-2]
    ):
        values = source.detach().to("cpu", torch.float32).reshape(source.shape[-2:]).nan_to_num(0.0).clamp(0, 1)
        return Image.fromarray(values.mul(255).round().to(torch.uint8).numpy(), "L")
    image = load_image(source)
    if image.mode == "RGBA":
        image = Image.composite(image.convert("RGB"), Image.new("RGB", image.size), image.getchannel("A"))
    return image.convert("L")


@dataclass(frozen=True)
class Scaled:
    """Inputs as (1, C, H, W) tensors in [0, 1] for one output size."""

    content: Tensor | None  # what the network matches: the photo, or its luminance as grey
    styles: list[Tensor]  # recoloured or grey per ``preserve_color``
    masks: list[Tensor] | None  # (1, 1, H, W) at the output size
    photo: Tensor | None  # the content in colour, for ``finish``


def at_size(
    inputs: Inputs,
    cfg: RunConfig,
    out_size: tuple[int, int],
    style_sizes: Sequence[tuple[int, int]],
    device: torch.device | str = "cpu",
) -> Scaled:
    """Resize everything for an output of ``out_size`` (W, H), styles to ``style_sizes``, and apply the colour
    mode (Gatys et al. 2016, "Preserving color..."):

    - ``luminance``: content and styles become their luminance Y (style Y matched to the content's mean and
      standard deviation); ``finish`` puts the content's chroma back.
    - ``histogram``: each style is recoloured to the content's colour mean and covariance, then clamped."""
    photo = _tensor(inputs.content, out_size, device) if inputs.content is not None else None
    styles = [_tensor(s, size, device) for s, size in zip(inputs.styles, style_sizes, strict=True)]
    content = photo
    if cfg.preserve_color == "luminance":
        y_content = luminance(photo)
        content = grey(y_content)
        styles = [grey(match_luminance(luminance(s), y_content)) for s in styles]
    elif cfg.preserve_color == "histogram":
        styles = [match_color(s, photo).clamp(0, 1) for s in styles]
    masks = [_mask_tensor(m, out_size, device) for m in inputs.masks] or None
    return Scaled(content, styles, masks, photo)


def _tensor(image: Image.Image, size: tuple[int, int], device: torch.device | str) -> Tensor:
    """Resized (1, 3, H, W) tensor, contiguous: ``to_tensor`` gives channels-last memory, which would leak
    into the optimised image (through masks' compositing and coarse-to-fine upsampling) and its gradient."""
    return to_tensor(resize(image, size), device).contiguous()


def _mask_tensor(mask: Image.Image, size: tuple[int, int], device: torch.device | str) -> Tensor:
    """Bilinear resize (no ringing, unlike Lanczos: black stays exactly 0) -> (1, 1, H, W) in [0, 1]."""
    resized = mask if mask.size == tuple(size) else mask.resize(tuple(size), Image.Resampling.BILINEAR)
    return to_tensor(resized.convert("RGB"), device)[:, :1].contiguous()  # a strided view makes strided grads


def finish(image: Tensor, scaled: Scaled, cfg: RunConfig) -> Tensor:
    """The picture to hand out from an optimised RGB ``image`` in [0, 1]: in luminance mode its Y with the
    photo's I and Q (the paper's last step); otherwise ``image`` itself."""
    if cfg.preserve_color == "luminance":
        return with_chroma(luminance(image), scaled.photo.to(image.device))
    return image

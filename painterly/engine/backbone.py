"""Frozen VGG feature extractor built from torchvision's definitions, with ImageNet, random or file weights."""

from __future__ import annotations

import math
import os
import socket
import urllib.parse
import warnings
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import Tensor, nn
from torchvision.models import vgg

from painterly.config import VGG_LAYERS
from painterly.errors import ExitCode, PainterlyError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)  # 0-255, the Caffe VGG models' training mean
TORCHVISION_CFG = {"vgg19": "E", "vgg16": "D"}
TORCHVISION_WEIGHTS = {"vgg19": vgg.VGG19_Weights.IMAGENET1K_V1, "vgg16": vgg.VGG16_Weights.IMAGENET1K_V1}


class PainterlyWarning(UserWarning):
    """Something the user should know about (e.g. random weights used); the CLI prints it prominently."""


class PixelConvention:
    """Affine map between RGB images in [0, 1] and the network's input space.

    ``torch``: (x - mean) / std, RGB (torchvision's weights). ``caffe``: 255·x - mean, BGR (Caffe/Keras
    weights). The optimiser works in the network's space, so learning rates and TV weights keep the
    meaning they had in the tutorial that chose them."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        if kind == "torch":
            self.scale = 1 / torch.tensor(IMAGENET_STD)
            self.shift = -torch.tensor(IMAGENET_MEAN) * self.scale
        else:  # caffe
            self.scale = torch.full((3,), 255.0)
            self.shift = -torch.tensor(CAFFE_MEAN_BGR).flip(0)  # stored RGB-ordered, flipped in to_net
        self.scale, self.shift = self.scale.view(1, 3, 1, 1), self.shift.view(1, 3, 1, 1)

    def to_net(self, x: Tensor) -> Tensor:
        v = x * self.scale.to(x) + self.shift.to(x)
        return v.flip(1) if self.kind == "caffe" else v

    def from_net(self, v: Tensor) -> Tensor:
        if self.kind == "caffe":
            v = v.flip(1)
        return (v - self.shift.to(v)) / self.scale.to(v)


class FeatureExtractor(nn.Module):
    """Named activations of a VGG trunk cut after the deepest requested layer (STYLE.md pattern 4)."""

    def __init__(self, body: nn.Sequential, layers: dict[str, int], pixels: PixelConvention, description: str):
        super().__init__()
        self.body, self.layers, self.pixels, self.description = body, layers, pixels, description

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """x: RGB in [0, 1], (B, 3, H, W) -> {layer name: (B, C, h, w)}."""
        return self.net_features(self.pixels.to_net(x))

    def net_features(self, v: Tensor, names: Iterable[str] | None = None) -> dict[str, Tensor]:
        """Features of an input already in the network's pixel convention."""
        wanted = {i: n for n, i in self.layers.items() if names is None or n in names}
        out = {}
        for i, module in enumerate(self.body):
            v = module(v)
            if i in wanted:
                out[wanted[i]] = v
            if len(out) == len(wanted):
                break
        return out


def build_trunk(backbone: str, pooling: str) -> nn.Sequential:
    """torchvision's VGG ``features`` with non-inplace ReLUs and max or average pooling."""
    trunk = vgg.make_layers(vgg.cfgs[TORCHVISION_CFG[backbone]])
    for i, module in enumerate(trunk):
        if isinstance(module, nn.ReLU):
            trunk[i] = nn.ReLU(inplace=False)  # we read the activations, so they must not be overwritten
        elif isinstance(module, nn.MaxPool2d) and pooling == "avg":
            trunk[i] = nn.AvgPool2d(kernel_size=2, stride=2)  # Gatys et al.: "slightly more appealing results"
    return trunk


def pink_noise(generator: torch.Generator, size: int = 96, batch: int = 2) -> Tensor:
    """Images in [0, 1] with a 1/f amplitude spectrum, like natural photos; (batch, 3, size, size)."""
    spectrum = torch.randn(batch, 3, size, size, dtype=torch.complex64, generator=generator)
    fy = torch.fft.fftfreq(size).view(-1, 1)
    fx = torch.fft.fftfreq(size).view(1, -1)
    radius = (fx**2 + fy**2).sqrt().clamp(min=1 / size)
    img = torch.fft.ifft2(spectrum / radius).real
    img = (img - img.mean(dim=(2, 3), keepdim=True)) / img.std(dim=(2, 3), keepdim=True)
    return (0.5 + 0.2 * img).clamp(0, 1)


@torch.no_grad()
def init_random(trunk: nn.Sequential, seed: int) -> None:
    """Seeded random-feature weights (He, Wang & Hopcroft 2016) calibrated so no layer vanishes or explodes.

    Kaiming-normal filters, zero biases, then each conv is rescaled (LSUV-style, Mishkin & Matas 2016) so
    its rectified output has unit RMS on seeded 1/f-noise images: activations keep their scale through all
    16 convs and both pooling types."""
    g = torch.Generator().manual_seed(seed)
    x = PixelConvention("torch").to_net(pink_noise(g))
    for i, module in enumerate(trunk):
        if isinstance(module, nn.Conv2d):
            fan_in = module.in_channels * 9
            module.weight.normal_(0, math.sqrt(2 / fan_in), generator=g)
            module.bias.zero_()
            rms = torch.relu(module(x)).pow(2).mean().sqrt()
            module.weight /= rms
        x = trunk[i](x)


def _imagenet_state(backbone: str, mode: str) -> dict[str, Tensor] | None:
    """torchvision's IMAGENET1K_V1 state dict via torch hub's cache, or None (mode ``auto``, offline)."""
    weights = TORCHVISION_WEIGHTS[backbone]
    cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urllib.parse.urlparse(weights.url).path)
    if not cached.exists() and not _reachable(weights.url):
        if mode == "auto":
            return None
        raise PainterlyError(
            f"cannot download the ImageNet {backbone} weights (offline?): fetch {weights.url} and place it at "
            f"{cached}, or use --weights random",
            ExitCode.RUNTIME,
        )
    try:
        return weights.get_state_dict(progress=True, check_hash=True)
    except (OSError, RuntimeError) as exc:  # URLError is an OSError; a hash mismatch is a RuntimeError
        raise PainterlyError(
            f"could not load the ImageNet {backbone} weights from {weights.url} (cache {cached}): {exc}",
            ExitCode.RUNTIME,
        ) from exc


def _reachable(url: str, timeout: float = 3.0) -> bool:
    host = urllib.parse.urlparse(url).hostname or ""
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def load_state_file(path: str) -> dict[str, Tensor]:
    """A .pth/.pt (``torch.load(weights_only=True)``: no pickled code runs) or .safetensors state dict."""
    if not os.path.isfile(path):
        raise PainterlyError(f"{path}: no such weights file (use --weights auto|imagenet|random|PATH)")
    try:
        if path.endswith(".safetensors"):
            from safetensors.torch import load_file

            return load_file(path)
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure to decode a user's file is a usage error
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        if "weights_only" in str(exc) or "Unsupported global" in str(exc):
            reason = "refused: the file contains pickled code, not just tensors"
        raise PainterlyError(f"{path}: cannot load weights ({reason})") from exc
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise PainterlyError(f"{path}: not a state dict of tensors")
    return state


def _load_into(trunk: nn.Sequential, state: dict[str, Tensor], source: str) -> None:
    """Accept torchvision keys (``features.0.weight``) or trunk keys (``0.weight``); ignore the classifier."""
    trunk_state = {k.removeprefix("features."): v for k, v in state.items() if not k.startswith("classifier.")}
    try:
        trunk.load_state_dict(trunk_state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[1].strip() if len(str(exc).splitlines()) > 1 else str(exc)
        raise PainterlyError(f"{source}: weights do not fit this backbone ({first})") from exc


def load_backbone(
    backbone: str,
    weights: str,
    pooling: str,
    pixels: str,
    layers: Iterable[str],
    device: torch.device | str = "cpu",
) -> FeatureExtractor:
    """A frozen extractor for ``layers`` (canonical names), evaluated only up to the deepest of them."""
    trunk = build_trunk(backbone, pooling)
    kind, _, arg = weights.partition(":")
    if kind in ("auto", "imagenet"):
        state = _imagenet_state(backbone, kind)
        if state is None:
            warnings.warn(
                f"ImageNet {backbone} weights are not cached and cannot be downloaded: using RANDOM weights, "
                "which give rougher results. Run once online with --weights imagenet, or place "
                f"{TORCHVISION_WEIGHTS[backbone].url} in {Path(torch.hub.get_dir()) / 'checkpoints'}",
                PainterlyWarning,
                stacklevel=2,
            )
            kind, arg = "random", ""
        else:
            _load_into(trunk, state, "imagenet")
            description = f"imagenet ({TORCHVISION_WEIGHTS[backbone].url.rsplit('/', 1)[-1]})"
    if kind == "random":
        try:
            seed = int(arg or 0)
        except ValueError as exc:
            raise PainterlyError(f"invalid weights {weights!r}: use random or random:SEED") from exc
        init_random(trunk, seed)
        description = f"random (seed {seed})"
    elif kind not in ("auto", "imagenet"):
        _load_into(trunk, load_state_file(weights), weights)
        description = f"file {weights}"
    table = {name: VGG_LAYERS[backbone][name] for name in layers}
    body = trunk[: max(table.values()) + 1].eval().requires_grad_(False).to(device)
    return FeatureExtractor(body, table, PixelConvention(pixels), f"{backbone}, {pooling} pooling, {description}")

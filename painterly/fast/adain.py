"""AdaIN (Huang & Belongie, "Arbitrary style transfer in real-time with adaptive instance normalization",
ICCV 2017) with the published normalised VGG19 encoder and decoder (naoto0804/pytorch-AdaIN's release,
converted from the authors' Torch models).

Both files are state dicts keyed by ``nn.Sequential`` index ("0.weight", "2.weight", ...); the decoder only
works with its own encoder, whose first 1×1 convolution turns RGB in [0, 1] into the BGR 0–255
mean-subtracted input of the Caffe VGG it was converted from. ``--model PATH`` loads a decoder in
safetensors whose metadata names the encoder it was trained with."""

from __future__ import annotations

import os
import urllib.error
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from painterly.errors import ExitCode, PainterlyError


def adain(content: Tensor, style: Tensor, eps: float = 1e-5) -> Tensor:
    """AdaIN(x, y) = σ(y) · (x − μ(x)) / σ(x) + μ(y), per sample and channel over H and W, with
    σ = √(var + eps) (unbiased variance, as the published code). (B, C, H, W), (B, C, h, w) -> (B, C, H, W)."""
    mc, sc = _mean_std(content, eps)
    ms, ss = _mean_std(style, eps)
    return (content - mc) / sc * ss + ms


def _mean_std(f: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    flat = f.flatten(2)
    return flat.mean(-1)[..., None, None], (flat.var(-1) + eps).sqrt()[..., None, None]


# The published encoder: "C in out" a 3×3 conv after a reflection pad (a 1×1 conv for the first), "P" max pool
# (ceil mode), ReLU after every 3×3 conv. relu4_1 (index 30) is the AdaIN layer; the file holds all of VGG19.
_ENCODER = ("C1 3 3", "C 3 64", "C 64 64", "P", "C 64 128", "C 128 128", "P", "C 128 256", "C 256 256",
            "C 256 256", "C 256 256", "P", "C 256 512", "C 512 512", "C 512 512", "C 512 512", "P", "C 512 512",
            "C 512 512", "C 512 512", "C 512 512")  # fmt: skip
_DECODER = ("C 512 256", "U", "C 256 256", "C 256 256", "C 256 256", "C 256 128", "U", "C 128 128", "C 128 64", "U",
            "C 64 64", "C 64 3 last")  # fmt: skip
RELU4_1 = 31  # encoder[:31] ends with relu4_1
STYLE_SIZE = 512  # styles are encoded at most this long side, as in the published test script


def build(spec: tuple[str, ...]) -> nn.Sequential:
    """An ``nn.Sequential`` with the published indices (pads, ReLUs and pools count as layers)."""
    layers: list[nn.Module] = []
    for item in spec:
        kind, *args = item.split()
        if kind == "C1":
            layers.append(nn.Conv2d(int(args[0]), int(args[1]), 1))
        elif kind == "C":
            layers += [nn.ReflectionPad2d(1), nn.Conv2d(int(args[0]), int(args[1]), 3)]
            if "last" not in args:
                layers.append(nn.ReLU())
        elif kind == "P":
            layers.append(nn.MaxPool2d(2, 2, ceil_mode=True))
        else:
            layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
    return nn.Sequential(*layers)


@dataclass(frozen=True)
class Download:
    """A published file: where to fetch it (first URL, then the mirror) and its pinned SHA-256."""

    name: str
    urls: tuple[str, ...]
    sha256: str | None  # None: not pinned yet (this project's machines have no route to these hosts)


RELEASE = "https://github.com/naoto0804/pytorch-AdaIN/releases/download/v0.0.0"
FILES = {
    "encoder": Download("adain_vgg_normalised.pth", (f"{RELEASE}/vgg_normalised.pth",
                        "https://drive.google.com/uc?export=download&id=108uza-dsmwvbW2zv-G73jtVcMU_2Nb7Y"), None),
    "decoder": Download("adain_decoder.pth", (f"{RELEASE}/decoder.pth",
                        "https://drive.google.com/uc?export=download&id=1w9r1NoYnn7tql1VYG3qDUzkbIks24RBQ"), None),
}  # fmt: skip


def cache_dir() -> Path:
    """torch hub's checkpoint folder (``$TORCH_HOME/hub/checkpoints``, default ``~/.cache/torch/...``)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def fetch(item: Download) -> Path:
    """The cached file, downloaded first if missing (hash-checked when pinned); offline, one line naming the
    URLs and the cache path."""
    path = cache_dir() / item.name
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    for url in item.urls:
        try:
            prefix = item.sha256  # download_url_to_file compares the full SHA-256 when given it
            torch.hub.download_url_to_file(url, str(path), hash_prefix=prefix, progress=False)
            return path
        except (urllib.error.URLError, OSError, RuntimeError, ValueError):
            continue
    raise PainterlyError(
        f"AdaIN weights unavailable offline: fetch {' or '.join(item.urls)} to {path}", ExitCode.RUNTIME
    )


def load_state(path: Path) -> tuple[dict[str, Tensor], dict[str, str]]:
    """(tensors, metadata) from a ``.safetensors`` file or a ``.pth`` via ``torch.load(weights_only=True)``:
    a pickle that would run code is refused."""
    try:
        if path.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as f:
                return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - unpickling/format errors of every kind mean "not a weights file"
        raise PainterlyError(f"{path}: not a safe weights file ({type(exc).__name__})", ExitCode.RUNTIME) from exc
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise PainterlyError(f"{path}: not a state dict of tensors", ExitCode.RUNTIME)
    return dict(state), {}


def load_into(module: nn.Sequential, state: dict[str, Tensor], label: str) -> None:
    """``load_state_dict`` with a one-line error naming the first missing/unexpected/mis-shaped key."""
    own = module.state_dict()
    state = {k: v for k, v in state.items() if k in own or int(k.split(".")[0]) >= len(module)}
    bad = sorted(set(own) ^ {k for k in state if k in own})
    bad += [k for k in own if k in state and state[k].shape != own[k].shape]
    if bad:
        raise PainterlyError(f"{label}: keys do not fit the published layout ({bad[0]})", ExitCode.RUNTIME)
    module.load_state_dict({k: state[k] for k in own})


class AdaIN:
    """Encoder up to relu4_1, AdaIN, decoder (Huang & Belongie 2017, Fig. 2)."""

    def __init__(self, encoder: nn.Sequential, decoder: nn.Sequential) -> None:
        self.encoder, self.decoder = encoder, decoder

    @classmethod
    def load(cls, name: str, device: torch.device) -> AdaIN:
        """``name``: "adain" (the published pair) or a decoder ``.safetensors`` path."""
        encoder, decoder = build(_ENCODER), build(_DECODER)
        enc_state, _ = load_state(fetch(FILES["encoder"]))
        load_into(encoder, enc_state, "AdaIN encoder")
        if name == "adain":
            dec_state, _ = load_state(fetch(FILES["decoder"]))
        else:
            path = Path(os.path.expanduser(name))
            dec_state, meta = load_state(path)
            if meta.get("encoder") != "vgg_normalised":
                raise PainterlyError(
                    f"{path}: decoder metadata must name its encoder (encoder=vgg_normalised), "
                    f"got {meta.get('encoder')!r}",
                    ExitCode.USAGE,
                )
        load_into(decoder, dec_state, "AdaIN decoder")
        encoder = encoder[:RELU4_1]
        return cls(encoder.to(device).eval().requires_grad_(False), decoder.to(device).eval().requires_grad_(False))

    def paint(
        self, photo: Tensor, styles: list[Tensor], blend: list[float], masks: list[Tensor] | None, weight: float
    ) -> Tensor:
        """t = Σ_k b_k m_k AdaIN(f(c), f(s_k)) + (1 − cover) f(c), pulled to the photo by the strength weight
        w: t' = f(c) + w (t − f(c)) (the paper's α); the decoder's output clamped to [0, 1]."""
        from painterly.fast.onepass import mix_weights, resample, work_shape

        h, w = photo.shape[-2:]
        styles = [resample(s, work_shape(*s.shape[-2:], min(max(s.shape[-2:]), STYLE_SIZE))) for s in styles]
        x = F.pad(photo, (0, -w % 8, 0, -h % 8), mode="replicate")  # three poolings
        fc = self.encoder(x)
        targets = [adain(fc, self.encoder(s)) for s in styles]
        mix = mix_weights(masks, blend, (h, w), len(styles), photo.device)
        if mix is None:
            t = sum(b * f for b, f in zip(blend, targets, strict=True))
        else:
            mix = F.interpolate(F.pad(mix, (0, -w % 8, 0, -h % 8), mode="replicate"), size=fc.shape[-2:], mode="area")
            t = sum(mix[:, k : k + 1] * f for k, f in enumerate(targets)) + mix[:, -1:] * fc
        t = fc + weight * (t - fc)
        return self.decoder(t)[..., :h, :w].clamp(0, 1)

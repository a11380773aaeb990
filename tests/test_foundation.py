"""The foundation every caller builds on: runs you can watch and stop (``iterate``), a start from any image
(``init``), and runs side by side in threads."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import _painting, _photo
from PIL import Image

import painterly
from painterly.api import backbone_for, pick_device
from painterly.cli import main
from painterly.config import build_config
from painterly.engine.objective import Objective
from painterly.errors import PainterlyError
from painterly.events import Step
from painterly.media.images import to_tensor

TINY = {"size": 48, "iterations": 6, "weights": "random", "stages": 1}


def test_iterate_yields_method_agnostic_steps_then_the_result():
    cfg = build_config("stylize", TINY)
    items = list(painterly.iterate(cfg, _photo(64, 48, 0), _painting(48, 48, 1)))
    steps, result = items[:-1], items[-1]
    assert all(isinstance(s, Step) for s in steps) and isinstance(result, painterly.Result)
    assert [s.step for s in steps] == list(range(1, 7)) and {s.total for s in steps} == {6}
    assert steps[0].losses.keys() >= {"content", "style", "total"} and steps[-1].elapsed >= steps[0].elapsed
    assert steps[2].image().shape == (1, 3, 36, 48)
    assert not result.interrupted and result.metadata["iterations_run"] == 6


def test_closing_the_run_stops_within_one_step_and_keeps_the_best_image():
    cfg = build_config("stylize", TINY)
    events = painterly.iterate(cfg, _photo(64, 48, 0), _painting(48, 48, 1))
    seen = [next(events), next(events)]
    result = events.close()
    assert result is events.result and result.interrupted
    assert result.metadata["iterations_run"] == 2 and [s.step for s in seen] == [1, 2]
    best = min(seen, key=lambda s: s.losses["total"])
    assert np.array_equal(np.asarray(result.image), np.asarray(painterly.media.images.to_pil(best.image())))
    assert list(events) == [] and events.close() is result  # closed for good; closing again is harmless


def test_a_cancel_token_stops_the_run_before_its_next_step():
    cancel = threading.Event()

    def stop_at_three(step: Step) -> None:
        if step.step == 3:
            cancel.set()

    cfg = build_config("stylize", {**TINY, "iterations": 20})
    result = painterly.run(cfg, _photo(64, 48, 0), _painting(48, 48, 1), callbacks=[stop_at_three], cancel=cancel)
    assert result.interrupted and result.metadata["iterations_run"] == 3 and result.image.size == (48, 36)


def test_a_run_closed_before_its_first_step_hands_out_nothing():
    cfg = build_config("stylize", TINY)
    assert painterly.iterate(cfg, _photo(64, 48, 0), _painting(48, 48, 1)).close() is None
    with pytest.raises(PainterlyError, match="before the first step"):
        cancel = threading.Event()
        cancel.set()
        painterly.run(cfg, _photo(64, 48, 0), _painting(48, 48, 1), cancel=cancel)


def test_init_path_starts_from_that_image(tmp_path):
    """The first recorded loss is the loss of the given picture (at the output size), not of the photo."""
    content, style, start = tmp_path / "c.png", tmp_path / "s.png", tmp_path / "start.png"
    _photo(64, 48, 0).save(content)
    _painting(48, 48, 1).save(style)
    _painting(64, 48, 7).save(start)
    out = tmp_path / "o.png"
    args = ["stylize", str(content), "-s", str(style), "-o", str(out), "--size", "48", "--iterations", "3"]
    assert main([*args, "--stages", "1", "--weights", "random", "--init", str(start), "--quiet"]) == 0
    meta = json.loads(out.with_suffix(".json").read_text())
    cfg = build_config("stylize", TINY)
    extractor = backbone_for(cfg, pick_device("cpu"))
    photo = to_tensor(Image.open(content).convert("RGB").resize((48, 36), Image.Resampling.LANCZOS))
    painting = to_tensor(Image.open(style).convert("RGB").resize((48, 48), Image.Resampling.LANCZOS))
    picture = to_tensor(Image.open(start).convert("RGB").resize((48, 36), Image.Resampling.LANCZOS))
    objective = Objective(extractor, cfg, photo, [painting])
    with torch.no_grad():
        expected = {name: float(objective(extractor.pixels.to_net(picture))[name]) for name in ("total", "style")}
        from_photo = float(objective(extractor.pixels.to_net(photo))["total"])
    assert meta["initial_loss"] == pytest.approx(expected["total"], rel=1e-4)
    assert abs(meta["initial_loss"] - from_photo) > 1e-3 * from_photo
    assert main([*args, "--init", str(tmp_path / "missing.png"), "--weights", "random", "--quiet"]) == 2


def test_two_runs_in_two_threads_give_the_same_pictures_as_one_after_the_other():
    cfgs = [build_config("stylize", {**TINY, "seed": s, "init": "noise"}) for s in (1, 2)]
    inputs = [(_photo(64, 48, i), _painting(48, 48, 10 + i)) for i in range(2)]
    sequential = [np.asarray(painterly.run(c, *x).image) for c, x in zip(cfgs, inputs, strict=True)]
    threaded: list = [None, None]

    def work(i: int) -> None:
        threaded[i] = np.asarray(painterly.run(cfgs[i], *inputs[i]).image)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for a, b in zip(sequential, threaded, strict=True):
        assert np.array_equal(a, b)


def test_the_backbone_is_loaded_once_per_setting():
    cfg = build_config("stylize", TINY)
    assert backbone_for(cfg, pick_device("cpu")) is backbone_for(cfg.replace(iterations=2), pick_device("cpu"))
    assert backbone_for(cfg, pick_device("cpu")) is not backbone_for(cfg.replace(pooling="max"), pick_device("cpu"))


def test_cli_is_thin_and_every_public_name_is_importable_from_the_package():
    cli = Path(painterly.__file__).parent / "cli"
    assert all(len(f.read_text().splitlines()) < 300 for f in cli.glob("*.py"))
    for name in ("iterate", "run", "stylize", "fast", "Result", "RunConfig", "build_config", "Step", "Cancel"):
        assert hasattr(painterly, name), name

"""The web app driven like a user: started on a free loopback port, called through gradio_client and plain
HTTP (and, where Debian's chromium is installed, clicked in a headless browser)."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

gr = pytest.importorskip("gradio")
gradio_client = pytest.importorskip("gradio_client")

from painterly.cli import main  # noqa: E402 - after the skip: the app needs Gradio
from painterly.config import options  # noqa: E402
from painterly.media.outputs import read_png_metadata  # noqa: E402
from painterly.web import Limits, WebApp  # noqa: E402
from painterly.web.form import SERVER_ONLY  # noqa: E402

from conftest import _painting, _photo  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("web-inputs")
    _photo(96, 72, 0).save(folder / "photo.png")
    _painting(80, 80, 1).save(folder / "painting.png")
    (folder / "notes.txt").write_text("not a picture\n")
    return {name: str(folder / name) for name in ("photo.png", "painting.png", "notes.txt")}


@pytest.fixture(scope="module")
def server():
    app = WebApp(Limits(queue_size=32, max_size=256, max_iterations=2000), base={"weights": "random"})
    url = app.launch("127.0.0.1", _free_port(), prevent_thread_lock=True, quiet=True)
    yield app, url
    app.close()


@pytest.fixture(scope="module")
def client(server):
    return gradio_client.Client(server[1], verbose=False)


def _image(path: str) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def _fast(client, images, **kwargs):
    return client.predict(
        content=gradio_client.handle_file(images["photo.png"]),
        style=gradio_client.handle_file(images["painting.png"]),
        api_name="/fast",
        **kwargs,
    )


def _stylize(client, images, **kwargs):
    return client.submit(
        content=gradio_client.handle_file(images["photo.png"]),
        style=gradio_client.handle_file(images["painting.png"]),
        api_name="/stylize",
        **kwargs,
    )


def test_fast_returns_a_one_pass_painting_of_the_requested_size(client, images):
    image, command, files = _fast(client, images, size=64)
    assert Image.open(image).size == (64, 48)
    assert read_png_metadata(image)["method"] == "fast"
    assert command.startswith("painterly stylize photo.png --style style-1.png -o result.png")
    assert "--method fast" in command and "--size 64" in command


def test_stylize_streams_previews_then_a_result_its_command_line_reproduces(client, images, tmp_path, monkeypatch):
    job = _stylize(client, images, size=64, iterations=6, init="content")
    image, command, files = job.result()
    previews = job.outputs()[:-1]
    assert len(previews) >= 2  # the first step and every step after (6 // 25 -> each)
    assert Image.open(image).size == (64, 48)
    meta = read_png_metadata(image)
    assert meta["iterations_run"] == 6 and not meta["interrupted"]
    assert meta["command"] == command
    for f in files:  # what the page offers for download: the result and the inputs as the run used them
        shutil.copy(f, tmp_path / Path(f).name)
    monkeypatch.chdir(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.png", "result.json", "result.png", "style-1.png"]
    os.rename("result.png", "shown.png")
    assert main([*shlex.split(command)[1:], "--quiet"]) == 0
    assert np.array_equal(_image("result.png"), _image("shown.png"))

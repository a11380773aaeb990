"""``painterly web``: start the web app (Gradio) and print its URL."""

from __future__ import annotations

import dataclasses
import threading

import click

from painterly.cli import cli
from painterly.errors import ExitCode, PainterlyError


def _limit_options(command):  # noqa: ANN001, ANN202
    """One flag per ``web.limits.Limits`` field, with its help and default."""
    from painterly.web.limits import Limits

    for f in reversed(dataclasses.fields(Limits)):
        flag = "--" + f.name.replace("_", "-")
        command = click.option(flag, f.name, type=type(f.default), default=f.default, show_default=True,
                               help=f.metadata["help"])(command)  # fmt: skip
    return command


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: every one).")
@click.option("--port", default=7860, show_default=True, type=click.IntRange(0, 65535), help="Port (0: any free).")
@click.option("--weights", default=None, help="Backbone weights for every run: auto, imagenet or random[:SEED].")
@_limit_options
def web(host: str, port: int, weights: str | None, **limits) -> None:
    """Paint in the browser: one-pass preview, live optimisation with Stop, mask brush, exact command line."""
    try:
        from painterly.web.app import WebApp
        from painterly.web.limits import Limits
    except ImportError as exc:
        raise PainterlyError(f"the web app needs Gradio: pip install 'painterly[web]' ({exc})") from exc
    app = WebApp(Limits(**limits), {"weights": weights} if weights else None)
    try:
        try:
            url = app.launch(host, port or None, prevent_thread_lock=True, quiet=True)
        except OSError as exc:
            raise PainterlyError(f"cannot listen on {host}:{port} ({exc})", ExitCode.RUNTIME) from exc
        click.echo(f"painterly web: {url}  (Ctrl-C stops)")
        threading.Event().wait()
    finally:
        app.close()

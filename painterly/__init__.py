"""painterly: neural style transfer (Gatys, Ecker & Bethge 2016) as a library, a CLI and a web app."""

__version__ = "0.1.0"

from painterly.api import Result, reconstruct, run, stylize, texture  # noqa: E402 - after __version__, which api reads
from painterly.config import RunConfig, build_config  # noqa: E402
from painterly.errors import ExitCode, PainterlyError  # noqa: E402

__all__ = [
    "ExitCode",
    "PainterlyError",
    "Result",
    "RunConfig",
    "build_config",
    "reconstruct",
    "run",
    "stylize",
    "texture",
]

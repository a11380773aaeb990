"""painterly: neural style transfer (Gatys, Ecker & Bethge 2016) as a library, a CLI and a web app."""

__version__ = "0.1.0"

from painterly.api import Result, Run, fast, iterate, reconstruct, run, stylize, texture  # noqa: E402 - api reads __version__
from painterly.config import RunConfig, build_config  # noqa: E402
from painterly.errors import ExitCode, PainterlyError  # noqa: E402
from painterly.events import Cancel, Step  # noqa: E402
from painterly.jobs.sweep import run_sweep  # noqa: E402
from painterly.media.artifacts import Snapshot, Snapshots, gif_bytes, loss_figure, losses_csv  # noqa: E402
from painterly.media.features import feature_grid  # noqa: E402
from painterly.media.layout import sheet  # noqa: E402

__all__ = [
    "Cancel",
    "ExitCode",
    "PainterlyError",
    "Result",
    "Run",
    "RunConfig",
    "Snapshot",
    "Snapshots",
    "Step",
    "build_config",
    "fast",
    "feature_grid",
    "gif_bytes",
    "iterate",
    "loss_figure",
    "losses_csv",
    "reconstruct",
    "run",
    "run_sweep",
    "sheet",
    "stylize",
    "texture",
]

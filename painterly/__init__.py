"""painterly: neural style transfer (Gatys, Ecker & Bethge 2016) as a library, a CLI and a web app."""

__version__ = "0.1.0"

from painterly.api import Result, reconstruct, run, stylize, texture  # noqa: E402 - after __version__, which api reads
from painterly.config import RunConfig, build_config  # noqa: E402
from painterly.errors import ExitCode, PainterlyError  # noqa: E402
from painterly.jobs.sweep import run_sweep  # noqa: E402
from painterly.media.artifacts import Snapshot, Snapshots, gif_bytes, loss_figure, losses_csv  # noqa: E402
from painterly.media.features import feature_grid  # noqa: E402
from painterly.media.layout import sheet  # noqa: E402

__all__ = [
    "ExitCode",
    "PainterlyError",
    "Result",
    "RunConfig",
    "Snapshot",
    "Snapshots",
    "build_config",
    "feature_grid",
    "gif_bytes",
    "loss_figure",
    "losses_csv",
    "reconstruct",
    "run",
    "run_sweep",
    "sheet",
    "stylize",
    "texture",
]

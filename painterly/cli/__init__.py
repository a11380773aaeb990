"""Command line: argv -> config -> api/jobs -> files. It parses and prints, nothing else; exit codes are chosen
here only (STYLE.md pattern 5). One module per group of commands: ``run`` (stylize, reconstruct, texture,
demo), ``tools`` (presets, compare, features, sweep, estimate)."""

from __future__ import annotations

import sys
import warnings
from collections.abc import Sequence

import click

from painterly import __version__
from painterly.engine.backbone import PainterlyWarning
from painterly.errors import ExitCode, PainterlyError


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="painterly")
def cli() -> None:
    """Neural style transfer: paint a photo in the style of a painting."""


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    click.secho(f"painterly: WARNING: {message}", fg="yellow", bold=True, err=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: run the CLI and translate errors into one stderr line and an exit code."""
    with warnings.catch_warnings():
        warnings.simplefilter("always", PainterlyWarning)
        warnings.showwarning = _show_warning
        try:
            cli.main(args=list(argv) if argv is not None else None, prog_name="painterly", standalone_mode=False)
        except PainterlyError as err:
            kind = "" if err.exit_code == ExitCode.INTERRUPTED else "error: "
            click.echo(f"painterly: {kind}{err}", err=True)
            return int(err.exit_code)
        except click.exceptions.Exit as exc:  # --help, --version
            return exc.exit_code
        except click.ClickException as exc:
            click.echo(f"painterly: error: {exc.format_message()}", err=True)
            return int(ExitCode.USAGE)
        except (KeyboardInterrupt, click.exceptions.Abort) as exc:
            click.echo(f"painterly: {exc.args[0] if exc.args else 'interrupted'}", err=True)
            return int(ExitCode.INTERRUPTED)
    return int(ExitCode.OK)


def entry_point() -> None:
    """Console script ``painterly``."""
    sys.exit(main())


from painterly.cli import fast, run, tools, video, web  # noqa: E402, F401 - each module registers its commands on ``cli``

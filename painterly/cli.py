"""Command line: argv -> RunConfig -> api -> files. Exit codes are chosen here only (STYLE.md pattern 5)."""

from __future__ import annotations

import sys
import textwrap
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import get_args

import click
from tqdm import tqdm

from painterly import __version__, config
from painterly.api import Result, backbone_for, pick_device, run
from painterly.backbone import PainterlyWarning
from painterly.config import RunConfig, build_config
from painterly.errors import ExitCode, PainterlyError
from painterly.images import parse_size
from painterly.optimize import Progress
from painterly.outputs import IMAGE_SUFFIXES, check_output_path, save_image, sidecar, write_json
from painterly.presets import PRESETS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def _choice(kind: object) -> click.Choice:
    return click.Choice(get_args(kind))


def _size(ctx: click.Context, param: click.Parameter, value: str | None) -> int | tuple[int, int] | None:
    return None if value is None else parse_size(value)


# (flag, RunConfig field, click type, help). Defaults come from the preset, so every flag defaults to None.
RUN_OPTIONS = [
    ("--preset", "preset", click.Choice(list(PRESETS)), "Tutorial setup to start from (see `painterly presets`)."),
    ("--size", "size", str, "Long side of the output in px, or WxH (a box; exact size for texture). [512]"),
    ("--style-scale", "style_scale", float, "Style image long side relative to the output's. [1]"),
    ("--content-weight", "content_weight", float, "Weight of the content term (alpha)."),
    ("--style-weight", "style_weight", float, "Weight of the style term (beta)."),
    ("--tv-weight", "tv_weight", float, "Weight of the total-variation term."),
    ("--content-layers", "content_layers", str, "Comma-separated content layers, e.g. relu4_2 or block4_conv2."),
    ("--style-layers", "style_layers", str, "Comma-separated name[:weight] style layers."),
    ("--backbone", "backbone", _choice(config.Backbone), "VGG network. [vgg19]"),
    ("--weights", "weights", str, "auto | imagenet | random[:SEED] | PATH (.pth/.safetensors). [auto]"),
    ("--pooling", "pooling", _choice(config.Pooling), "Pooling layers. [avg]"),
    ("--pixels", "pixels", _choice(config.Pixels), "Network input convention: torchvision or Caffe."),
    ("--content-norm", "content_norm", _choice(config.ContentNorm), "Content loss normalisation."),
    ("--gram-norm", "gram_norm", _choice(config.GramNorm), "Gram matrix normalisation."),
    ("--style-norm", "style_norm", _choice(config.StyleNorm), "Per-layer style loss normalisation."),
    ("--tv-loss", "tv_loss", _choice(config.TVLoss), "Total variation: l2 or keras (power --tv-power)."),
    ("--tv-power", "tv_power", float, "Exponent of the keras TV loss. [1.25]"),
    ("--optimizer", "optimizer", _choice(config.Optimizer), "lbfgs or adam. [lbfgs]"),
    ("--lr", "lr", float, "Learning rate (network pixel units)."),
    ("--iterations", "iterations", int, "Optimisation steps. [300]"),
    ("--tol", "tol", float, "Stop early when the loss improves by less than this fraction in 20 steps."),
    ("--init", "init", _choice(config.Init), "Start from the content, noise or the style image."),
    ("--init-noise-ratio", "init_noise_ratio", float, "Blend: ratio*noise + (1-ratio)*init image."),
    ("--noise-amplitude", "noise_amplitude", float, "Noise amplitude in 0-1 pixel units. [0.5]"),
    ("--seed", "seed", int, "Random seed for the initial noise. [0]"),
    ("--device", "device", _choice(config.Device), "auto picks CUDA, then MPS, then CPU. [auto]"),
    ("--style-blend", "style_blend", str, "Weights of several --style images, e.g. 0.7,0.3. [equal]"),
    ("--preserve-color", "preserve_color", _choice(config.PreserveColor), "Keep the photo's colours. [none]"),
    ("--strength", "strength", float, "Style strength 0..1: 0.5 = the preset's weights; +0.25 = 10x style. [0.5]"),
    ("--style-loss", "style_loss", _choice(config.StyleLoss), "gram or wasserstein (mean/covariance). [gram]"),
]


def run_options(command: Callable) -> Callable:
    """Add every RunConfig option, plus --config and --quiet, to a click command."""
    for flag, field, kind, help_text in reversed(RUN_OPTIONS):
        callback = _size if field == "size" else None
        command = click.option(flag, field, type=kind, default=None, help=help_text, callback=callback)(command)
    command = click.option("--config", "config_file", type=str, help="TOML file of options; the command line wins.")(
        command
    )
    return click.option("--quiet", "-q", is_flag=True, help="No progress bar.")(command)


def _options(mode: config.Mode, cli_values: dict, config_file: str | None) -> RunConfig:
    """Preset <- TOML file <- command line."""
    merged = _read_toml(config_file) if config_file else {}
    merged.update({k: v for k, v in cli_values.items() if v is not None})
    return build_config(mode, merged)


def _read_toml(path: str) -> dict:
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise PainterlyError(f"{path}: cannot read config file ({exc.strerror})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise PainterlyError(f"{path}: invalid TOML ({exc})") from exc
    data = {k.replace("-", "_"): v for k, v in data.items()}
    if isinstance(data.get("size"), str):
        data["size"] = parse_size(data["size"])
    elif isinstance(data.get("size"), list):
        data["size"] = tuple(data["size"])
    for key in ("content_layers", "style_layers"):
        if isinstance(data.get(key), list):
            data[key] = ",".join(map(str, data[key]))
    return data


def _progress_bar(quiet: bool, desc: str) -> tuple[Callable[[Progress], None], Callable[[], None]]:
    """A tqdm bar (iteration, losses, ETA) opened at the first iteration, so errors print no empty bar."""
    bars: list[tqdm] = []

    def update(p: Progress) -> None:
        if not bars:
            bars.append(tqdm(total=p.total, desc=desc, disable=quiet, file=sys.stderr, unit="it", dynamic_ncols=True))
        bars[0].set_postfix({k: f"{v:.3g}" for k, v in p.losses.items() if k != "tv" or v}, refresh=False)
        bars[0].update(1)

    return update, lambda: bars and bars[0].close()


def _run_and_save(
    cfg: RunConfig, out: Path, quiet: bool, content=None, style=None, extractor=None, mask=None
) -> Result:  # noqa: ANN001
    update, close = _progress_bar(quiet, out.name)
    try:
        result = run(cfg, content, style, mask=mask, callbacks=[update], extractor=extractor)
    finally:
        close()
    save_image(result.image, out, result.metadata)
    write_json(sidecar(out, ".json"), result.metadata)
    if result.interrupted:
        raise KeyboardInterrupt(f"interrupted: saved the best image so far to {out}")
    if not quiet:
        click.echo(f"wrote {out} ({result.metadata['timings']['total_s']:.1f} s)", err=True)
    return result


def _content_files(paths: Sequence[str]) -> list[Path]:
    files = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES | {".gif"})
            if not found:
                raise PainterlyError(f"{p}: folder has no images")
            files += found
        else:
            files.append(p)
    return files


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="painterly")
def cli() -> None:
    """Neural style transfer (Gatys et al.): paint a photo in the style of a painting."""


@cli.command()
@click.argument("content", nargs=-1, required=True)
@click.option("--style", "-s", required=True, multiple=True, help="Style image (a painting); repeat to mix.")
@click.option("--mask", multiple=True, help="Where to stylise (white) or keep the photo; once or per style.")
@click.option("--output", "-o", required=True, help="Output image, or a folder when CONTENT is several files/a folder.")
@run_options
def stylize(
    content: tuple[str, ...], style: tuple[str, ...], output: str, quiet: bool, config_file: str | None, **values
) -> None:
    """Paint CONTENT (one or more photos, or a folder) in the style of STYLE (several: mixed, or one per MASK)."""
    masks = list(values.pop("mask")) or None
    style = style[0] if len(style) == 1 else list(style)  # one painting stays a path, as before
    cfg = _options("stylize", values, config_file)
    single = len(content) == 1 and not Path(content[0]).is_dir()
    if single:
        _run_and_save(cfg, check_output_path(output), quiet, content[0], style, mask=masks)
        return
    out_dir = Path(output)
    if out_dir.suffix.lower() in IMAGE_SUFFIXES:
        raise PainterlyError(f"{output}: with several content images, -o must be a folder")
    files = _content_files(content)
    out_dir.mkdir(parents=True, exist_ok=True)
    extractor = backbone_for(cfg, pick_device(cfg.device))  # loaded once for the whole batch
    for f in files:
        _run_and_save(cfg, out_dir / f"{f.stem}.png", quiet, f, style, extractor, mask=masks)


@cli.command()
@click.argument("image")
@click.option("--output", "-o", required=True, help="Output image.")
@click.option("--layer", help="Layer whose features are matched (alias of --content-layers).")
@run_options
def reconstruct(image: str, output: str, layer: str | None, quiet: bool, config_file: str | None, **values) -> None:
    """Recreate IMAGE from one layer's features, starting from noise."""
    values["content_layers"] = layer or values["content_layers"]
    cfg = _options("reconstruct", values, config_file)
    _run_and_save(cfg, check_output_path(output), quiet, content=image)


@cli.command()
@click.argument("style")
@click.option("--output", "-o", required=True, help="Output image.")
@run_options
def texture(style: str, output: str, quiet: bool, config_file: str | None, **values) -> None:
    """Synthesise a texture from STYLE's Gram matrices alone, starting from noise."""
    cfg = _options("texture", values, config_file)
    _run_and_save(cfg, check_output_path(output), quiet, style=style)


@cli.command()
@click.option("--output", "-o", default="demo.png", show_default=True, help="Output image.")
@run_options
def demo(output: str, quiet: bool, config_file: str | None, **values) -> None:
    """Stylise a bundled photo (Grace Hopper, from matplotlib) as Van Gogh's Starry Night."""
    from importlib.resources import files

    import matplotlib.cbook

    values = {"size": 256, "iterations": 100, **{k: v for k, v in values.items() if v is not None}}
    cfg = _options("stylize", values, config_file)
    photo = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    painting = files("painterly") / "data" / "starry_night.jpg"
    _run_and_save(cfg, check_output_path(output), quiet, str(photo), str(painting))


@cli.command()
def presets() -> None:
    """List the presets with their origin and values."""
    for name, preset in PRESETS.items():
        click.echo(click.style(name, bold=True))
        click.echo(textwrap.fill(preset.origin, 100, initial_indent="  ", subsequent_indent="  "))
        for key, value in preset.values.items():
            click.echo(f"    {key.replace('_', '-')}: {value}")
        click.echo()


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
            click.echo(f"painterly: error: {err}", err=True)
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

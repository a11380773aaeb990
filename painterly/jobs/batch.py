"""Many photos, one style: the units of a folder batch and the painter that runs them in a worker."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from painterly.api import backbone_for, pick_device, run
from painterly.config import RunConfig
from painterly.engine.backbone import FeatureExtractor
from painterly.errors import ExitCode, PainterlyError
from painterly.jobs.units import Unit, absolute
from painterly.media.outputs import save_image, sidecar, write_json
from painterly.media.recording import RunRecorder, Wanted


def image_units(
    files: Sequence[str | Path],
    cfg: RunConfig,
    style: str | Sequence[str],
    out_dir: str | Path,
    *,
    mask: Sequence[str] | None = None,
    init: str | Path | None = None,
    suffix: str = ".png",
) -> list[Unit]:
    """One unit per content file, written to ``out_dir/STEM.png``; the unit's name is that file name.
    ``init``: a picture every run starts from (``--init PATH``); its content is part of each unit's hash."""
    style = absolute(style) if isinstance(style, str | Path) else tuple(map(absolute, style))
    mask = tuple(map(absolute, mask)) if mask else None
    out_dir = Path(absolute(out_dir))
    units = []
    for f in map(Path, files):
        name = f"{f.stem}{suffix}"
        units.append(Unit(name, cfg, out_dir / name, absolute(f), style, mask, init=absolute(init)))
    return units


class ImagePainter:
    """Paints image units in one process; backbones come from ``api.backbone_for``'s process-wide cache.

    Built once per worker (the Ray actor's ``__init__``, or once for the local loop); ``preload`` loads
    that config's backbone there, before the first unit arrives. Each unit writes what ``stylize`` writes for
    one photo: the image, its JSON, ``STEM_losses.csv`` and the artifacts ``wanted`` asks for (--gif, --plot,
    ...; they do not enter the unit's hash: a resumed job does not redo done units to add them). ``cancel``
    (a ``threading.Event``) stops the current run; the unit then stays pending and the job stops."""

    def __init__(
        self, preload: RunConfig | None = None, *, wanted: Wanted | None = None, cancel: object | None = None
    ) -> None:
        self.wanted, self.cancel = wanted or Wanted(), cancel
        if preload is not None:
            self.extractor(preload)

    def extractor(self, cfg: RunConfig) -> FeatureExtractor | None:
        """The backbone an optimisation run of ``cfg`` uses (None for one-pass runs: api.run loads and
        caches their model itself)."""
        return backbone_for(cfg, pick_device(cfg.device)) if cfg.method == "optimize" else None

    def __call__(self, unit: Unit) -> None:
        recorder = RunRecorder(unit.output, self.wanted, unit.cfg.optimize.iterations)
        result = run(unit.cfg, unit.content, unit.style, mask=unit.mask, init=unit.init, cancel=self.cancel,
                     callbacks=recorder.callbacks, extractor=self.extractor(unit.cfg))  # fmt: skip
        if result.interrupted:  # never record half a run as done: the unit stays pending, the job stops
            raise PainterlyError(f"{unit.name}: interrupted", ExitCode.INTERRUPTED)
        save_image(result.image, unit.output, result.metadata)
        write_json(sidecar(unit.output, ".json"), result.metadata)
        recorder.finish(result.image, result.metadata, result.losses, unit.content, unit.style)

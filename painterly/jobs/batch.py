"""Many photos, one style: the units of a folder batch and the painter that runs them in a worker."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from painterly.api import backbone_for, pick_device, run
from painterly.config import RunConfig
from painterly.engine.backbone import FeatureExtractor
from painterly.jobs.units import Unit
from painterly.media.outputs import save_image, sidecar, write_json


def image_units(
    files: Sequence[str | Path],
    cfg: RunConfig,
    style: str | Sequence[str],
    out_dir: str | Path,
    *,
    mask: Sequence[str] | None = None,
    suffix: str = ".png",
) -> list[Unit]:
    """One unit per content file, written to ``out_dir/STEM.png``; the unit's name is that file name."""
    style = style if isinstance(style, str) else tuple(style)
    mask = tuple(mask) if mask else None
    units = []
    for f in map(Path, files):
        name = f"{f.stem}{suffix}"
        units.append(Unit(name, cfg, Path(out_dir) / name, str(f), style, mask))
    return units


class ImagePainter:
    """Paints image units in one process, keeping one backbone per distinct (backbone, layers, device).

    Built once per worker (the Ray actor's ``__init__``, or once for the local loop); ``preload`` loads
    that config's backbone there, before the first unit arrives."""

    def __init__(self, preload: RunConfig | None = None) -> None:
        self._extractors: dict[tuple, FeatureExtractor] = {}
        if preload is not None:
            self.extractor(preload)

    def extractor(self, cfg: RunConfig) -> FeatureExtractor | None:
        """The backbone an optimisation run of ``cfg`` uses (None for one-pass runs: api.run loads and
        caches their model itself)."""
        if getattr(cfg, "method", "optimize") != "optimize":
            return None
        block = getattr(cfg, "optimize", cfg)  # the method's block (foundation config), or the flat config
        key = (block.backbone, block.weights, block.pooling, block.pixels, block.content_layers, block.style_layers)
        key += (cfg.device,)
        if key not in self._extractors:
            self._extractors[key] = backbone_for(cfg, pick_device(cfg.device))
        return self._extractors[key]

    def __call__(self, unit: Unit) -> None:
        result = run(unit.cfg, unit.content, unit.style, mask=unit.mask, extractor=self.extractor(unit.cfg))
        if result.interrupted:  # never record half a run as done
            raise KeyboardInterrupt("interrupted")
        save_image(result.image, unit.output, result.metadata)
        write_json(sidecar(unit.output, ".json"), result.metadata)

"""Coarse-to-fine schedule: sizes, iteration split, and the smallest usable image."""

from __future__ import annotations

import pytest

from painterly.api import stage_schedule
from painterly.config import build_config
from painterly.engine.memory import smallest_side


def _schedule(final, **options):
    return stage_schedule(final, build_config("stylize", options))


def test_auto_schedule_doubles_from_min_size_to_the_final_size():
    assert _schedule((512, 384), iterations=300) == [((128, 96), 100), ((256, 192), 100), ((512, 384), 100)]


def test_one_scale_is_plain_single_scale_optimisation():
    assert _schedule((512, 384), iterations=300, stages=1) == [((512, 384), 300)]
    assert _schedule((160, 120), iterations=50) == [((160, 120), 50)]  # under 1.5 x min_size: one stage


def test_explicit_stages_are_geometric_and_the_remainder_goes_to_the_last():
    stages = _schedule((1000, 500), iterations=10, stages=3, min_size=250)
    assert [size for size, _ in stages] == [(250, 125), (500, 250), (1000, 500)]
    assert [n for _, n in stages] == [3, 3, 4]


def test_no_stage_is_smaller_than_the_network_allows():
    stages = stage_schedule((64, 48), build_config("stylize", {"min_size": 8, "iterations": 4}), min_side=16)
    assert min(stages[0][0]) >= 16


@pytest.mark.parametrize(("layers", "side"), [(["relu1_1"], 1), (["relu3_1"], 4), (["relu5_1"], 16)])
def test_smallest_side_counts_the_poolings_before_the_deepest_layer(layers, side):
    cfg = build_config("stylize", {"content_layers": layers[0], "style_layers": ",".join(layers)})
    assert smallest_side(cfg) == side

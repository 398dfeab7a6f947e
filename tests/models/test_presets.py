import dataclasses

import pytest

from assemble_tf import presets

TABLE_ROWS = (
    [f"table2_c{i}" for i in range(6)]
    + [f"table3_a{i}" for i in range(5)]
    + [f"table6_m{i}" for i in range(5)]
    + [f"table7_e{i}" for i in range(13)]
)
NAMED = [
    "resnet50",
    "resnet50d",
    "resnet101",
    "resnet152",
    "se_resnet50d",
    "sk_resnet50d",
    "assemble_resnet50",
    "assemble_resnet152",
]


def test_every_required_preset_exists_with_a_description():
    for name in NAMED + TABLE_ROWS:
        preset = presets.get(name)
        assert preset.description and preset.name == name


@pytest.mark.parametrize("name", TABLE_ROWS)
def test_table_rows_carry_the_papers_figures(name):
    paper = presets.get(name).paper
    assert paper is not None and paper.source.startswith("Table")
    assert 76.0 < paper.top1 < 85.0
    assert 100 < paper.throughput <= 536


def test_final_models_match_the_paper_and_master():
    a50 = presets.get("assemble_resnet50")
    assert (a50.paper.top1, a50.paper.mce, a50.paper.throughput) == (
        82.78,
        48.89,
        312,
    )
    assert a50.eval_image_size == 256
    assert a50.eval_preprocessing == "imagenet_224_256"
    assert a50.model["big_little"] == (2, 4)
    assert a50.model["shortcut"] == "avg3" and a50.model.get("stem") is None
    a152 = presets.get("assemble_resnet152")
    assert a152.model["big_little"] == (1, 2)
    assert a152.eval_preprocessing == "imagenet_224_256a"
    assert a152.teacher == "EfficientNet-B7" and a50.teacher == "AmoebaNet-A"
    assert a50.recipe["train"]["epochs"] == 600
    assert a50.recipe["augment"]["mixup_type"] == 1
    assert a50.recipe["train"]["dropblock_keep_prob"] == (1.0, 0.9)
    e11, e12 = presets.get("table7_e11"), presets.get("table7_e12")
    assert dataclasses.replace(e11, name=a50.name, description="") == (
        dataclasses.replace(a50, description="")
    )
    assert dataclasses.replace(e12, name=a152.name, description="") == (
        dataclasses.replace(a152, description="")
    )
    assert e11.name == "table7_e11" and e11.paper.source == "Table 7 E11"
    assert presets.get("table7_e0").recipe["augment"]["label_smoothing"] == 0.0
    assert presets.get("table7_e0").teacher is None
    assert (
        presets.get("table2_c0").recipe["train"]["lr_schedule"] == "piecewise"
    )


def test_model_kwargs_are_copies():
    preset = presets.get("assemble_resnet50")
    kwargs = preset.model_kwargs()
    kwargs["dropblock"]["stages"] = (1,)
    assert preset.model["dropblock"]["stages"] == (3, 4)


def test_presets_are_handed_out_as_copies():
    """Before: `get(name).recipe` was the registry's dict; an edit changed
    the preset, and its aliases, for the whole process."""
    presets.get("resnet50").recipe["train"]["epochs"] = 1.0
    assert presets.get("resnet50").recipe["train"]["epochs"] != 1.0
    alias = presets.get("table7_e11")
    assert alias.recipe == presets.get("assemble_resnet50").recipe
    assert alias.recipe is not presets.get("assemble_resnet50").recipe


def test_unknown_preset_lists_known_ones():
    with pytest.raises(ValueError, match="assemble_resnet50"):
        presets.get("assemble50")

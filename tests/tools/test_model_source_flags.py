"""flags.model_source_flags: one definition of the model-source flags."""

import pathlib
import re

import pytest
from absl import flags as absl_flags

from flags import model_source_flags

TOOLS = pathlib.Path(__file__).resolve().parents[2] / "tools"
USERS = ("evaluate", "eval_robustness", "eval_retrieval", "export_saved_model")


def _parse(*args, model_overrides=True):
    fv = absl_flags.FlagValues()
    model_source_flags.define_model_source_flags(
        model_overrides=model_overrides, flag_values=fv
    )
    fv(["prog", *args])
    return fv


def test_values_and_source_dict():
    fv = _parse(
        "--preset=assemble_resnet50",
        "--weights=/w/a50.weights.h5",
        "--num_classes=102",
        '--model_overrides={"block_sizes": [1, 1, 1, 1], "base_width": 8}',
    )
    assert model_source_flags.model_source(fv) == {
        "model_dir": None,
        "checkpoint": None,
        "preset": "assemble_resnet50",
        "weights": "/w/a50.weights.h5",
    }
    assert fv.num_classes == 102
    assert model_source_flags.parse_overrides(fv.model_overrides) == {
        "block_sizes": (1, 1, 1, 1),
        "base_width": 8,
    }
    assert model_source_flags.parse_overrides(None) == {}


def test_unknown_preset_is_refused_with_suggestions():
    with pytest.raises(
        absl_flags.IllegalFlagValueError,
        match=r"--preset='assemble_resnet5' is not a preset\. Did you mean "
        r"assemble_resnet50",
    ):
        _parse("--preset=assemble_resnet5")


@pytest.mark.parametrize("text", ["[1, 2]", "{base_width: 8}", "16"])
def test_overrides_must_be_a_json_object(text):
    with pytest.raises(absl_flags.IllegalFlagValueError, match="JSON object"):
        _parse(f"--model_overrides={text}")
    with pytest.raises(ValueError, match=re.escape(f"Received: {text!r}")):
        model_source_flags.parse_overrides(text)


def test_num_classes_lower_bound_and_optional_overrides():
    with pytest.raises(absl_flags.IllegalFlagValueError):
        _parse("--num_classes=0")
    fv = _parse("--model_dir=/runs/a", model_overrides=False)
    assert "model_overrides" not in fv


@pytest.mark.parametrize("tool", USERS)
def test_binaries_share_the_definition(tool):
    text = (TOOLS / f"{tool}.py").read_text()
    assert "model_source_flags.define_model_source_flags(" in text
    for name in model_source_flags.SOURCE_FLAGS + ("num_classes",):
        assert f'DEFINE_string("{name}"' not in text
        assert f'DEFINE_integer("{name}"' not in text

"""The importer reproduces the logits of the original TF1 graph.

tests/data/golden/* were written by clovaai/assembled-cnn master
(nets/resnet_model.py under tf.compat.v1, inference mode); see the README
there. Acceptance: max |diff| <= 1e-3 x max |logit|.
"""

import functools
import os

import numpy as np
import pytest
import tensorflow as tf

from assemble_tf.convert.original_checkpoint import (
    CheckpointMismatchError,
    build_and_load,
)
from assemble_tf.models import build_model
from tests.conftest import DATA

GOLDEN = os.path.join(DATA, "golden")
CASES = {
    "tiny_vanilla_64": (
        "resnet50",
        {"base_width": 16, "block_sizes": (1, 1, 1, 1)},
        87,
        1_024_729,
    ),
    "tiny_assemble_64": (
        "assemble_resnet50",
        {"base_width": 16, "block_sizes": (2, 2, 2, 1)},
        307,
        1_612_857,
    ),
    # resnet_version=1 with use_resnet_d and SK: the original's ResNet-D
    # shortcut (pooled S1 projection; at 112 px S4 downsamples a 7x7 map,
    # whose padding the original's pool counts).
    "tiny_resnetd_sk_112": (
        "sk_resnet50d",
        {
            "base_width": 16,
            "block_sizes": (1, 1, 1, 1),
            "num_classes": 10,
            "shortcut": "avg2_tf1",
        },
        121,
        748_770,
    ),
}
SIZES = {"tiny_resnetd_sk_112": 112}


def _builder(preset):
    return functools.partial(build_model, preset)


@pytest.mark.parametrize("folder", sorted(CASES))
def test_golden_logits_are_reproduced(folder):
    preset, overrides, num_vars, num_params = CASES[folder]
    prefix = os.path.join(GOLDEN, folder, "model.ckpt")
    model, count = build_and_load(
        prefix,
        _builder(preset),
        image_size=SIZES.get(folder, 64),
        **overrides,
    )
    assert count == num_vars
    assert model.count_params() == num_params
    golden = np.load(os.path.join(GOLDEN, folder, "golden.npz"))
    logits = model(golden["inputs"], training=False).numpy()
    diff = np.abs(logits - golden["logits"]).max()
    assert diff <= 1e-3 * np.abs(golden["logits"]).max()
    assert np.array_equal(logits.argmax(-1), golden["logits"].argmax(-1))


def test_the_paper_resnet_d_shortcut_is_not_the_original_codes():
    """The preset's "avg2" (Bag of Tricks: no pool at stride 1, padding
    excluded) loads the ResNet-D golden's variables but computes other
    logits: hence "avg2_tf1", and the converter's refusal of "avg2"."""
    folder = "tiny_resnetd_sk_112"
    _, overrides, _, _ = CASES[folder]
    golden = np.load(os.path.join(GOLDEN, folder, "golden.npz"))
    diffs = {}
    for shortcut in ("avg2", "avg2_tf1"):
        model, _ = build_and_load(
            os.path.join(GOLDEN, folder, "model.ckpt"),
            _builder("sk_resnet50d"),
            **{**overrides, "shortcut": shortcut},
        )
        logits = model(golden["inputs"], training=False).numpy()
        diffs[shortcut] = np.abs(logits - golden["logits"]).max()
    scale = np.abs(golden["logits"]).max()
    assert diffs["avg2"] > 0.1 * scale  # measured: 12.4 of 48.9
    assert diffs["avg2_tf1"] <= 1e-3 * scale


def test_wrong_preset_lists_every_offending_variable():
    prefix = os.path.join(GOLDEN, "tiny_assemble_64", "model.ckpt")
    with pytest.raises(CheckpointMismatchError) as info:
        build_and_load(
            prefix,
            _builder("resnet50"),
            base_width=16,
            block_sizes=(2, 2, 2, 1),
        )
    text = str(info.value)
    assert "305 in the checkpoint but not in the model" in text
    assert "resnet_model/stage1/big1/sk_block/sk_fc_1/kernel" in text
    # The hint names presets of the checkpoint's kind only (before: "pick
    # a preset of that kind (assemble_resnet50 / resnet50)", resnet50 the
    # preset just refused).
    assert (
        "Hint: the checkpoint is a BigLittleNet (resnet_version=2) graph but "
        "the model is not; pick a preset of that kind (e.g. "
        "assemble_resnet50, table6_m3)."
    ) in text


def test_wrong_class_count_is_a_shape_mismatch():
    prefix = os.path.join(GOLDEN, "tiny_vanilla_64", "model.ckpt")
    with pytest.raises(CheckpointMismatchError) as info:
        build_and_load(
            prefix,
            _builder("resnet50"),
            base_width=16,
            block_sizes=(1, 1, 1, 1),
            num_classes=1000,
        )
    assert (
        "resnet_model/dense/kernel: checkpoint [512, 1001] vs model [512, 1000]"
    ) in str(info.value)


def test_optimizer_slots_are_ignored_and_extras_are_not(tmp_path):
    src = os.path.join(GOLDEN, "tiny_vanilla_64", "model.ckpt")
    reader = tf.train.load_checkpoint(src)
    names = reader.get_variable_to_shape_map()
    variables = {n: tf.Variable(reader.get_tensor(n)) for n in names}
    variables["global_step"] = tf.Variable(7, dtype=tf.int64)
    variables["resnet_model/conv2d/kernel/Momentum"] = tf.Variable(
        np.zeros((7, 7, 3, 16), "float32")
    )
    prefix = str(tmp_path / "with_slots")
    _write_tf1_style(variables, prefix)
    _, count = build_and_load(
        prefix, _builder("resnet50"), base_width=16, block_sizes=(1, 1, 1, 1)
    )
    assert count == 87
    variables["resnet_model/extra_layer/kernel"] = tf.Variable([1.0])
    prefix = str(tmp_path / "with_extra")
    _write_tf1_style(variables, prefix)
    with pytest.raises(CheckpointMismatchError, match="extra_layer/kernel"):
        build_and_load(
            prefix,
            _builder("resnet50"),
            base_width=16,
            block_sizes=(1, 1, 1, 1),
        )


def _write_tf1_style(variables, prefix):
    """Writes a name-keyed (TF1-style) checkpoint with raw save ops."""
    names = sorted(variables)
    tf.raw_ops.SaveV2(
        prefix=prefix,
        tensor_names=names,
        shape_and_slices=[""] * len(names),
        tensors=[variables[n] for n in names],
    )


def test_missing_checkpoint_names_the_prefix(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.ckpt"):
        build_and_load(str(tmp_path / "nothing.ckpt"), _builder("resnet50"))


def test_golden_files_are_in_the_repository():
    for folder in CASES:
        for name in (
            "model.ckpt.index",
            "model.ckpt.data-00000-of-00001",
            "golden.npz",
            "variables.txt",
        ):
            assert os.path.isfile(os.path.join(GOLDEN, folder, name))

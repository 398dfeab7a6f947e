"""The original TF1 scopes and creation order, from our layer names."""

import functools
import os

import keras
import pytest

from assemble_tf.convert import tf1_names
from assemble_tf.convert.original_checkpoint import (
    CheckpointMismatchError,
    build_and_load,
)
from assemble_tf.models import build_model
from tests.conftest import DATA

TINY = {"base_width": 16, "block_sizes": (2, 2, 2, 1), "image_size": 64}


@pytest.mark.parametrize(
    "name,big_little,place",
    [
        ("stem_1_conv", False, ("conv", "resnet_model")),
        ("stem_2_bn", True, ("bn", "resnet_model/stage0_1")),
        ("stem_3_conv", True, ("conv", "resnet_model/stage0")),
        ("stem_bl_little2_bn", True, ("bn", "resnet_model/stage0/pool")),
        (
            "stage1_big_block1_1_conv",
            True,
            ("conv", "resnet_model/stage1/big1"),
        ),
        (
            "stage2_little_block1_sk",
            True,
            ("sk", "resnet_model/stage2/little2"),
        ),
        (
            "stage3_little_expand_bn",
            True,
            ("bn", "resnet_model/stage3/little3"),
        ),
        ("stage3_merge_block1_se", True, ("se", "resnet_model/stage3/merge3")),
        ("stage4_block1_shortcut_bn", True, ("bn", "resnet_model/stage4")),
        ("stage4_block1_2b_conv", False, ("conv", "resnet_model")),
        ("head_embedding_bn", False, ("bn", "resnet_model/embedding")),
        ("head_dense", True, ("dense", "resnet_model")),
    ],
)
def test_layer_names_give_the_original_scope(name, big_little, place):
    assert tf1_names.original_place(name, big_little)[:2] == place


@pytest.mark.parametrize(
    "name",
    ["stem_1_relu", "stage1_merge", "stage1_block1_1_drop", "stem_bl_add"],
)
def test_layers_without_original_variables_have_no_place(name):
    assert tf1_names.original_place(name, True) is None


def test_creation_order_within_a_scope():
    model = build_model("assemble_resnet50", **TINY)
    scopes = tf1_names.original_scopes(model)
    assert [
        layer.name for _, layer in scopes["resnet_model/stage1/little1"]
    ] == [
        "stage1_little_block1_shortcut_conv",
        "stage1_little_block1_shortcut_bn",
        "stage1_little_block1_1_conv",
        "stage1_little_block1_1_bn",
        "stage1_little_block1_sk",
        "stage1_little_block1_3_conv",
        "stage1_little_block1_3_bn",
        "stage1_little_expand_conv",
        "stage1_little_expand_bn",
    ]
    assert tf1_names.is_big_little(model)
    plain = tf1_names.original_scopes(build_model("resnet50", **TINY))
    assert list(plain) == ["resnet_model"]
    names = [layer.name for _, layer in plain["resnet_model"]]
    # Stem, the stages in order, shortcut first in a block, head last.
    assert names[:3] == [
        "stem_1_conv",
        "stem_1_bn",
        "stage1_block1_shortcut_conv",
    ]
    assert names.index("stage1_block2_3_bn") < names.index(
        "stage2_block1_1_conv"
    )
    assert names[-1] == "head_dense"


def test_cosine_head_is_its_own_kind_and_refused():
    model = build_model("resnet50", classifier="cosine", num_classes=5, **TINY)
    head = model.get_layer("head_dense")
    assert ("cosine", head) in tf1_names.original_scopes(model)["resnet_model"]
    prefix = os.path.join(DATA, "golden", "tiny_vanilla_64", "model.ckpt")
    with pytest.raises(CheckpointMismatchError, match="'cosine' layer"):
        build_and_load(
            prefix,
            lambda **kw: build_model("resnet50", classifier="cosine", **kw),
            base_width=16,
            block_sizes=(1, 1, 1, 1),
        )


def test_a_weighted_layer_of_another_model_is_refused():
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(4, 3, name="extra")(inputs))
    with pytest.raises(ValueError, match="extra: a layer with weights"):
        tf1_names.original_scopes(model)


def test_build_and_load_imports_the_golden_checkpoint():
    prefix = os.path.join(DATA, "golden", "tiny_vanilla_64", "model.ckpt")
    _, count = build_and_load(
        prefix,
        functools.partial(build_model, "resnet50"),
        base_width=16,
        block_sizes=(1, 1, 1, 1),
    )
    assert count == 87

"""Multi-scale (P2-P5) outputs: shapes, shared weights, a small FPN head."""

import keras
import numpy as np
import pytest

from assemble_tf.models import build_backbone, build_model, pyramid_outputs
from tests import testing_utils

TINY = dict(base_width=8, block_sizes=(2, 2, 2, 1), num_classes=5)


@pytest.mark.parametrize(
    "preset, channels",
    [
        # Plain R50: stage n has 4 * 8 * 2**(n-1) channels.
        ("resnet50", {"P2": 32, "P3": 64, "P4": 128, "P5": 256}),
        # BigLittleNet: the BL stem gives stride 4 (8 channels), stage 1
        # stride 8, stages 2 and 3 both stride 16 (stage 3 wins).
        ("assemble_resnet50", {"P2": 8, "P3": 32, "P4": 128, "P5": 256}),
    ],
)
def test_levels_have_stride_two_to_the_level(preset, channels):
    model = build_model(preset, image_size=64, **TINY)
    backbone = build_backbone(model)
    shapes = {k: tuple(v.shape) for k, v in backbone.output.items()}
    assert shapes == {
        f"P{lvl}": (None, 64 // 2**lvl, 64 // 2**lvl, channels[f"P{lvl}"])
        for lvl in (2, 3, 4, 5)
    }
    assert list(pyramid_outputs(model)) == ["P2", "P3", "P4", "P5"]


@pytest.mark.parametrize(
    "side, sizes",
    [
        # A rounded log2(side / size) mislabelled these: at 33 px stage 3
        # (5 px) took P3's name over stage 2's and P5 was missing.
        (33, (9, 5, 3, 2)),
        (65, (17, 9, 5, 3)),
        (32, (8, 4, 2, 1)),
    ],
)
def test_odd_fixed_sizes_keep_one_level_per_stage(side, sizes):
    tiny = dict(TINY, block_sizes=(1, 1, 1, 1))
    model = build_model("resnet50", image_size=side, **tiny)
    shapes = {k: tuple(v.shape[1:3]) for k, v in pyramid_outputs(model).items()}
    assert shapes == {
        f"P{level}": (size, size)
        for level, size in zip((2, 3, 4, 5), sizes, strict=True)
    }


def test_sizes_where_strides_16_and_32_both_give_one_pixel_are_refused():
    """Before: a 16-px resnet50 gave stage 4's map as P4 (stage 3's was
    dropped) and no P5, without a word; 17 px is the smallest size whose
    levels can be told."""
    tiny = dict(TINY, block_sizes=(1, 1, 1, 1))
    model = build_model("resnet50", image_size=16, **tiny)
    with pytest.raises(ValueError) as error:
        pyramid_outputs(model)
    assert str(error.value) == (
        "Model 'resnet50' takes 16-px images, where its feature maps reach "
        "1 px before the last stage and their strides cannot be told apart: "
        "build it with an image_size whose maps stay over 1 px until the "
        "last stage (at the default strides, 17 or more), or None, for "
        "pyramid outputs."
    )
    sides = [
        t.shape[1]
        for t in pyramid_outputs(
            build_model("resnet50", image_size=17, **tiny)
        ).values()
    ]
    assert sides == [5, 3, 2, 1]  # P2-P5


@pytest.mark.slow  # over 2 s on 2 cores
def test_backbone_shares_the_classifier_weights_and_features(tmp_path):
    model = build_model("resnet50", image_size=32, **TINY)
    backbone = build_backbone(model)
    assert backbone.name == "resnet50_backbone"
    ids = {id(v) for v in model.weights}
    assert all(id(v) in ids for v in backbone.weights)
    # Head excluded: two variables (dense kernel and bias) fewer.
    assert len(backbone.weights) == len(model.weights) - 2
    x = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype("f4")
    features = keras.Model(model.input, model.get_layer("head_pool").input)
    np.testing.assert_allclose(
        backbone.predict(x, verbose=0)["P5"],
        features.predict(x, verbose=0),
        rtol=1e-6,
        atol=1e-6,
    )
    testing_utils.run_model_saving_test(
        model=backbone, input_data=x, path=tmp_path / "b.keras"
    )


def test_any_size_backbone_from_build_resnet_arguments():
    backbone = build_backbone(depth=18, base_width=8, name="r18")
    assert backbone.name == "r18"
    testing_utils.run_backbone_test(
        backbone=backbone,
        input_data=np.zeros((1, 96, 64, 3), "f4"),
        expected_output_shapes={
            "P2": (1, 24, 16, 8),
            "P3": (1, 12, 8, 16),
            "P4": (1, 6, 4, 32),
            "P5": (1, 3, 2, 64),
        },
    )
    with pytest.raises(ValueError, match="either a model or"):
        build_backbone(build_model("resnet50", **TINY), depth=18)
    plain = keras.Sequential(
        [keras.Input((8, 8, 3)), keras.layers.Conv2D(2, 1)]
    )
    with pytest.raises(ValueError, match="stage1_"):
        pyramid_outputs(plain)


def _fpn_head(backbone, width=16, num_classes=3):
    """Lin et al. 2017: 1x1 laterals, top-down nearest upsampling + add,
    a 3x3 output conv per level; pooled and concatenated into logits."""
    levels = backbone.output
    names = sorted(levels, key=lambda k: -int(k[1:]))  # P5 first
    top, outs = None, []
    for name in names:
        lateral = keras.layers.Conv2D(width, 1, name=f"fpn_lateral_{name}")(
            levels[name]
        )
        if top is not None:
            lateral = keras.layers.Add()(
                [lateral, keras.layers.UpSampling2D(2)(top)]
            )
        top = lateral
        out = keras.layers.Conv2D(width, 3, padding="same")(lateral)
        outs.append(keras.layers.GlobalAveragePooling2D()(out))
    logits = keras.layers.Dense(num_classes)(keras.layers.Concatenate()(outs))
    return keras.Model(backbone.input, logits)


@pytest.mark.slow  # trains
def test_pyramid_feeds_an_fpn_head_and_every_level_trains():
    keras.utils.set_random_seed(0)
    backbone = build_backbone(
        build_model("assemble_resnet50", image_size=64, **TINY)
    )
    model = _fpn_head(backbone)
    model.compile(optimizer=keras.optimizers.SGD(0.002), loss="mse")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 64, 64, 3)).astype("f4")
    y = rng.normal(size=(4, 3)).astype("f4")
    watched = ["stem_bl_merge_conv", "stage1_little_expand_conv"]
    watched += ["stage4_block1_1_conv"]
    watched += [f"fpn_lateral_P{lvl}" for lvl in (2, 3, 4, 5)]
    before = {n: model.get_layer(n).kernel.numpy().copy() for n in watched}
    losses = model.fit(x, y, epochs=4, batch_size=4, verbose=0)
    for n in watched:
        assert np.abs(model.get_layer(n).kernel.numpy() - before[n]).max() > 0
    assert losses.history["loss"][-1] < losses.history["loss"][0]

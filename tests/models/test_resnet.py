import keras
import numpy as np
import pytest

from assemble_tf import presets
from assemble_tf.layers import (
    BlurPool2D,
    DropBlock2D,
    SelectiveKernel,
    set_dropblock_keep_prob,
)
from assemble_tf.models import build_model, build_resnet
from tests import testing_utils

TINY = {"base_width": 16, "block_sizes": (2, 2, 2, 1), "image_size": 64}


@pytest.mark.parametrize("name", presets.names())
def test_every_preset_builds_tiny_and_runs(name):
    model = build_model(name, **TINY)
    x = testing_utils.random_images((2, 64, 64, 3), low=-120, high=130)
    logits = model(x, training=False)
    assert logits.shape == (2, 1001)
    assert keras.backend.standardize_dtype(logits.dtype) == "float32"
    assert np.all(np.isfinite(logits.numpy()))


def test_layer_names_are_deterministic_and_hierarchical():
    names = [
        layer.name for layer in build_model("assemble_resnet50", **TINY).layers
    ]
    keras.backend.clear_session()
    again = [
        layer.name for layer in build_model("assemble_resnet50", **TINY).layers
    ]
    assert names == again
    for expected in [
        "stem_1_conv",
        "stem_bl_big_conv",
        "stem_bl_merge_bn",
        "stage1_big_block1_shortcut_conv",
        "stage1_big_block1_sk",
        "stage1_big_block1_blur",
        "stage1_little_expand_conv",
        "stage1_merge",
        "stage3_merge_block1_3_drop",
        "stage4_block1_sk",
        "head_dense",
        "logits",
    ]:
        assert expected in names


def test_feature_map_shapes():
    plain = build_resnet(50, image_size=224, include_top=False)
    assert plain.output.shape == (None, 7, 7, 2048)
    bl = build_model("assemble_resnet50", image_size=256, include_top=False)
    assert bl.output.shape == (None, 8, 8, 2048)
    basic = build_resnet(18, image_size=96, include_top=False)
    assert basic.output.shape == (None, 3, 3, 512)


def test_dynamic_input_size():
    model = build_model(
        "assemble_resnet50", base_width=16, block_sizes=(2, 2, 2, 1)
    )
    for size in (64, 96):
        x = testing_utils.random_images((1, size, size, 3))
        assert model(x).shape == (1, 1001)


def test_mixed_precision_keeps_float32_logits_and_variables(mixed_precision):
    model = build_model("assemble_resnet50", **TINY)
    x = testing_utils.random_images((2, 64, 64, 3))
    logits = model(x, training=True)
    assert keras.backend.standardize_dtype(logits.dtype) == "float32"
    assert all(v.dtype == "float32" for v in model.weights)
    assert model.get_layer("stage4_block1_sk").compute_dtype == "float16"
    assert model.get_layer("head_dense").compute_dtype == "float16"


def test_tweak_placement():
    model = build_model("assemble_resnet50", **TINY)
    blurs = [
        layer.name for layer in model.layers if isinstance(layer, BlurPool2D)
    ]
    # Every stride-2 block: S1/S2/S3 big block 1, S1/S2 merges, S4 block 1.
    assert blurs == [
        "stage1_big_block1_blur",
        "stage1_merge_block1_blur",
        "stage2_big_block1_blur",
        "stage2_merge_block1_blur",
        "stage3_big_block1_blur",
        "stage4_block1_blur",
    ]
    sks = [
        layer for layer in model.layers if isinstance(layer, SelectiveKernel)
    ]
    assert len(sks) == 10 and all(layer.strides == 1 for layer in sks)
    drops = [layer for layer in model.layers if isinstance(layer, DropBlock2D)]
    assert {
        layer.gamma_scale for layer in drops if layer.name.startswith("stage3")
    } == {0.25}
    assert {
        layer.gamma_scale for layer in drops if layer.name.startswith("stage4")
    } == {1.0}
    assert len(drops) == 16
    assert set_dropblock_keep_prob(model, 0.9) == 16
    assert all(
        float(layer.keep_prob_variable.numpy()) == pytest.approx(0.9)
        for layer in drops
    )
    a2 = build_model("table3_a2", base_width=16, image_size=64)
    names = [layer.name for layer in a2.layers]
    assert "stem_blur" in names and "stage2_block1_shortcut_blur" in names


def test_zero_gamma_only_on_last_bn_of_each_block():
    model = build_model("resnet50", base_width=16, block_sizes=(1, 1, 1, 1))
    gammas = {
        layer.name: layer.gamma.numpy()
        for layer in model.layers
        if isinstance(layer, keras.layers.BatchNormalization)
    }
    for name, gamma in gammas.items():
        if name.endswith("_3_bn"):
            assert np.all(gamma == 0), name
        else:
            assert np.all(gamma == 1), name
    off = build_model(
        "resnet50", base_width=16, block_sizes=(1, 1, 1, 1), zero_gamma=False
    )
    assert np.all(off.get_layer("stage1_block1_3_bn").gamma.numpy() == 1)


def test_conv_init_is_variance_scaling_fan_in():
    model = build_resnet(50, base_width=64, block_sizes=(1, 1, 1, 1))
    kernel = model.get_layer("stage4_block1_2_conv").kernel.numpy()
    fan_in = 3 * 3 * 512
    assert kernel.std() == pytest.approx(np.sqrt(1.0 / fan_in), rel=0.05)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"depth": 51}, "depth=51"),
        ({"big_little": (2, 4), "image_size": 240}, "image_size=240"),
        ({"stem": "space2depth"}, "stem='space2depth'"),
        ({"shortcut": "avg"}, "shortcut='avg'"),
        ({"attention": "cbam"}, "attention='cbam'"),
        ({"attention": ("sk", "sknet")}, "one SK variant"),
        ({"anti_alias": "blur"}, "anti_alias='blur'"),
        ({"anti_alias": "sconv", "anti_alias_size": 9}, "anti_alias_size=9"),
        ({"anti_alias": "max", "big_little": (2, 4)}, "anti_alias='max'"),
        ({"anti_alias": "proj", "shortcut": "avg2"}, "shortcut='avg2'"),
        ({"block_sizes": (3, 4, 6)}, "block_sizes=\\(3, 4, 6\\)"),
        ({"big_little": (2, 4), "block_sizes": (1, 2, 2, 1)}, "at least 2"),
        ({"big_little": (3, 4)}, "alpha"),
        ({"depth": 18, "big_little": (2, 4)}, "depth=18"),
        ({"depth": 200, "big_little": (2, 4)}, "depth=200"),
        ({"dropblock": {"stages": (3,), "gamma_scales": (1, 2)}}, "one value"),
        ({"dropblock": {"size": 7}}, "size"),
        ({"num_classes": 0}, "num_classes=0"),
    ],
)
def test_bad_options_fail_at_build_time_naming_the_value(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_resnet(**kwargs)


def test_build_model_rejects_unknown_preset_and_override():
    with pytest.raises(
        ValueError,
        match=r"--preset='resnet51' is not a preset\. Did you mean resnet50",
    ):
        build_model("resnet51")
    with pytest.raises(ValueError, match="widht"):
        build_model("resnet50", widht=3)


def test_keras_save_and_reload_round_trip(tmp_path):
    model = build_model("assemble_resnet50", **TINY)
    x = testing_utils.random_images((2, 64, 64, 3))
    path = str(tmp_path / "tiny.keras")
    model.save(path)
    revived = keras.models.load_model(path)
    np.testing.assert_allclose(
        revived(x).numpy(), model(x).numpy(), rtol=1e-5, atol=1e-5
    )

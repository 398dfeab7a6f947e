import keras
import numpy as np
import pytest

from assemble_tf import presets
from assemble_tf.layers import (
    BatchNorm,
    BlurPool2D,
    DropBlock2D,
    SelectiveKernel,
    set_dropblock_keep_prob,
)
from assemble_tf.models import build_model, build_resnet
from tests import testing_utils

TINY = {"base_width": 16, "block_sizes": (2, 2, 2, 1), "image_size": 64}


# make test-fast builds one preset per tweak family (plain; SK, SE, SKNet,
# the anti-aliasing variants, Big-Little and DropBlock); make test every
# preset (37, 17 s of test time).
_FAST_PRESETS = (
    "resnet50",
    "assemble_resnet50",
    "table2_c2",
    "table2_c5",
    "table3_a1",
)


@pytest.mark.parametrize(
    "name",
    [
        name
        if name in _FAST_PRESETS
        else pytest.param(name, marks=pytest.mark.slow)
        for name in presets.names()
    ],
)
def test_every_preset_builds_tiny_and_runs(name):
    # One block per stage where the preset allows it (Big-Little needs two
    # in S1-S3): every option of the preset is built and run either way,
    # in half the layers (the suite: 20 -> 13 s).
    tiny = dict(TINY)
    if not presets.get(name).model.get("big_little"):
        tiny["block_sizes"] = (1, 1, 1, 1)
    model = build_model(name, **tiny)
    x = testing_utils.random_images((2, 64, 64, 3), low=-120, high=130)
    logits = model(x, training=False)
    assert logits.shape == (2, 1001)
    assert keras.backend.standardize_dtype(logits.dtype) == "float32"
    assert np.all(np.isfinite(logits.numpy()))


@pytest.mark.slow  # over 2 s on the Zen 3 host
def test_layer_names_are_deterministic_and_hierarchical():
    def all_names(model):
        # The layers inside layers too (an SK unit's padding was named by
        # Keras' global counter: zero_padding2d, then zero_padding2d_3).
        return [
            f"{layer.name}/{inner.name}"
            for layer in model.layers
            for inner in layer._flatten_layers(include_self=False)
        ] + [layer.name for layer in model.layers]

    # SK downsampling itself (no anti-aliasing): its padding layer.
    sk = all_names(build_model("table6_m2", **TINY))
    assert sk == all_names(build_model("table6_m2", **TINY))
    assert "stage2_block1_sk/pad" in sk
    names = all_names(build_model("assemble_resnet50", **TINY))
    keras.backend.clear_session()
    assert names == all_names(build_model("assemble_resnet50", **TINY))
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


@pytest.mark.slow  # over 2 s on the Zen 3 host
def test_feature_map_shapes():
    # Full width; one block per stage (two where BigLittleNet needs them):
    # the depth changes no shape.
    plain = build_resnet(
        50, image_size=224, include_top=False, block_sizes=(1, 1, 1, 1)
    )
    assert plain.output.shape == (None, 7, 7, 2048)
    bl = build_model(
        "assemble_resnet50",
        image_size=256,
        include_top=False,
        block_sizes=(2, 2, 2, 1),
    )
    assert bl.output.shape == (None, 8, 8, 2048)
    basic = build_resnet(
        18, image_size=96, include_top=False, block_sizes=(1, 1, 1, 1)
    )
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
    # The classifier computes in float32 (float16 logits tie near-ties).
    assert model.get_layer("head_dense").compute_dtype == "float32"
    assert model.get_layer("head_pool").compute_dtype == "float16"


@pytest.mark.slow  # over 1.4 s in make test (make test-fast: 2 min)
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


def test_bn_options_reach_every_bn_the_sk_units_included():
    """Before: the SK units' BNs kept 0.997 / 1e-5 whatever was asked."""
    model = build_resnet(
        50,
        base_width=8,
        block_sizes=(1, 1, 1, 1),
        attention=("sk", "se"),
        bn_momentum=0.9,
        bn_epsilon=1e-3,
        num_classes=3,
    )
    found = {}
    for layer in model.layers:
        inner = [v for v in vars(layer).values() if isinstance(v, BatchNorm)]
        for bn in [layer] + inner:
            if isinstance(bn, BatchNorm):
                found[bn.path] = (bn.momentum, bn.epsilon)
    sk = [path for path in found if "_sk/" in path]
    assert len(sk) == 8 and len(found) == 21, sorted(found)
    assert set(found.values()) == {(0.9, 1e-3)}


def test_conv_init_is_variance_scaling_fan_in():
    model = build_resnet(50, base_width=64, block_sizes=(1, 1, 1, 1))
    kernel = model.get_layer("stage4_block1_2_conv").kernel.numpy()
    fan_in = 3 * 3 * 512
    assert kernel.std() == pytest.approx(np.sqrt(1.0 / fan_in), rel=0.05)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"depth": 51}, "depth=51"),
        ({"big_little": (2, 4), "image_size": 240}, "`image_size`=240"),
        ({"stem": "space2depth"}, "stem`='space2depth'"),
        ({"shortcut": "avg"}, "shortcut`='avg'"),
        ({"attention": "cbam"}, "attention='cbam'"),
        ({"attention": ("sk", "sknet")}, "one SK variant"),
        ({"anti_alias": "blur"}, "anti_alias='blur'"),
        ({"anti_alias": "sconv", "anti_alias_size": 9}, "anti_alias_size=9"),
        ({"anti_alias": "max", "big_little": (2, 4)}, "anti_alias='max'"),
        ({"anti_alias": "proj", "shortcut": "avg2"}, "shortcut='avg2'"),
        ({"block_sizes": (3, 4, 6)}, "block_sizes`=3,4,6"),
        ({"big_little": (2, 4), "block_sizes": (1, 2, 2, 1)}, "at least 2"),
        ({"big_little": (3, 4)}, "by the BigLittleNet alpha 3. Received: `b"),
        ({"depth": 18, "big_little": (2, 4)}, "depth=18"),
        ({"depth": 200, "big_little": (2, 4)}, "depth=200"),
        ({"dropblock": {"stages": (3,), "gamma_scales": (1, 2)}}, "one value"),
        ({"dropblock": {"size": 7}}, "size"),
        # Before: a bare TypeError; the second scale of stage 3 won.
        ({"dropblock": {"stages": 3, "gamma_scales": 1.0}}, "be a list, one"),
        ({"dropblock": {"stages": (3, 3), "gamma_scales": (0.1, 1)}}, "once"),
        # Before: bool("no") shared the mask; the layer's argument named.
        ({"dropblock": {"shared_mask": "no"}}, "Received: shared_mask='no'"),
        (
            {"dropblock": {"gamma_scales": (0.25, -1)}},
            r"\(an entry of `dropblock\['gamma_scales'\]`\): `gamma_scale`",
        ),
        ({"num_classes": 0}, "num_classes=0"),
        ({"bn_momentum": 5}, "bn_momentum`=5"),  # built and trained before
        ({"bn_epsilon": 0.0}, "bn_epsilon`=0.0"),
        # Before: accepted; inf epsilon or temperature (every logit 0), and
        # True as a stride of 1.
        ({"bn_epsilon": float("inf")}, "finite number > 0. Received: `bn_ep"),
        (
            {"classifier": "cosine", "cosine_temperature": float("inf")},
            "finite number > 0. Received: `cosine_temperature`=inf",
        ),
        ({"stage_strides": (True, 2, 2, 2)}, "stage_strides`=True,2,2"),
        # Before: Keras' "units=None", "filters=0", "'<=' not supported".
        ({"num_classes": None}, "include_top=False\\). Received: num_c"),
        ({"stem": "deep", "base_width": 1}, "at least 2 with stem='deep'"),
        ({"bn_momentum": "0.9"}, "must be a number. Received: `bn_moment"),
        ({"bn_epsilon": None}, "must be a number. Received: `bn_epsilon`=N"),
        # Before: built "resnet50.0"; built the head; a bare TypeError;
        # named the layer's `ratio` / `reduction` / `min_dim`; ignored.
        ({"depth": 50.0}, "must be an int, one of .*Received: depth=50.0"),
        ({"include_top": "no"}, "True or False. Received: include_top='no'"),
        ({"zero_gamma": "no"}, "True or False. Received: zero_gamma='no'"),
        ({"block_sizes": 5}, "None or 4 ints, one per stage. Received: bl"),
        ({"stage_strides": 5}, "None or 4 ints, one per stage. Received: s"),
        ({"attention": "se", "se_ratio": 0}, "Received: se_ratio=0"),
        ({"attention": "sk", "sk_reduction": 0}, "Received: sk_reduction=0"),
        ({"attention": "sk", "sk_min_dim": -1}, "Received: sk_min_dim=-1"),
        ({"anti_alias_size": 5}, "anti_alias=None leaves out: pass e.g. a"),
        # Before: built, the option ignored.
        ({"se_ratio": 4}, "`se_ratio` sets up what attention=None leaves o"),
        ({"attention": "sk", "se_ratio": 4}, "pass e.g. attention='se' too"),
        ({"attention": "se", "sk_reduction": 4}, "leave sk_reduction out. "),
        ({"sk_min_dim": 8}, "Received: sk_min_dim=8"),
        ({"cosine_temperature": 2.0}, "classifier='dense' leaves out: pass c"),
        ({"include_top": False, "pooling": "gem"}, "include_top=False leave"),
        ({"include_top": False, "embedding_size": 8}, "`embedding_size` set"),
    ],
)
def test_bad_options_fail_at_build_time_naming_the_value(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_resnet(**kwargs)


def test_numpy_block_counts_are_taken_as_ints():
    """Before: `block_sizes=tuple(np.array([1, 2, 1, 1]))` was refused
    ("must be 4 positive ints") where `base_width=np.int64(8)` was taken."""
    sizes = tuple(np.array([1, 2, 1, 1]))
    model = build_resnet(
        50, base_width=np.int64(8), block_sizes=sizes, num_classes=3
    )
    names = [layer.name for layer in model.layers]
    assert "stage2_block2_1_conv" in names
    assert "stage2_block3_1_conv" not in names
    assert "stage3_block2_1_conv" not in names


def test_even_anti_alias_sizes_build_on_maps_of_odd_side():
    """Before: anti_alias_size=4 at 200 px failed to build (a blurred map
    one pixel smaller than its shortcut); at any size it failed at run
    time."""
    options = dict(
        base_width=8,
        block_sizes=(1, 1, 1, 1),
        anti_alias=("sconv", "proj", "max"),
        anti_alias_size=4,
        num_classes=3,
    )
    fixed = build_resnet(50, image_size=200, **options)
    x = testing_utils.random_images((1, 200, 200, 3)) * 50
    assert fixed.get_layer("stage4_block1_blur").output.shape == (
        None,
        7,
        7,
        64,
    )
    anysize = build_resnet(50, **options)
    anysize.set_weights(fixed.get_weights())
    want = fixed(x).numpy()
    np.testing.assert_allclose(anysize(x).numpy(), want, rtol=1e-5)


def test_a_channels_first_keras_setting_is_refused():
    """Before: NHWC images read as NCHW, a wrong model without a word."""
    keras.config.set_image_data_format("channels_first")
    try:
        with pytest.raises(ValueError) as info:
            build_resnet(50, base_width=8, block_sizes=(1, 1, 1, 1))
    finally:
        keras.config.set_image_data_format("channels_last")
    assert str(info.value) == (
        "The ResNet models are channels_last (NHWC); Keras' image data "
        "format is 'channels_first' (keras.config.set_image_data_format, or "
        "~/.keras/keras.json): set it to 'channels_last' before building."
    )


def test_an_override_turning_a_preset_feature_off_takes_its_options():
    """Before: attention=None on an SK preset was refused for the preset's
    sk_reduction, and anti_alias=None on an anti-aliased one for its
    anti_alias_size: options the user never passed."""
    tiny = {"base_width": 8, "block_sizes": (1, 1, 1, 1), "image_size": 32}
    plain = build_model("resnet50", **tiny)
    for preset, off in (
        ("table2_c4", {"attention": None}),
        ("table3_a1", {"anti_alias": None}),
    ):
        model = build_model(preset, **tiny, **off)
        assert model.count_params() == plain.count_params(), preset
    # An option given with its feature off is still refused.
    with pytest.raises(ValueError, match="Received: sk_reduction=4"):
        build_model("table2_c4", attention=None, sk_reduction=4, **tiny)
    # The head's options with include_top=False, num_classes included
    # (before: num_classes=10 was accepted and did nothing).
    with pytest.raises(ValueError, match="Received: num_classes=10"):
        build_resnet(50, include_top=False, num_classes=10)


def test_big_little_block_sizes_error_names_the_flag():
    """A tiny Assemble preset with one block per stage: the binaries print
    the flag and a size that works (before: a ValueError ending
    "Received: block_sizes=(1, 1, 1, 1)", no flag)."""
    from official.utils.misc.validation import OptionError

    with pytest.raises(OptionError) as raised:
        build_model("assemble_resnet50", block_sizes=(1, 1, 1, 1))
    assert raised.value.as_flag() == (
        "BigLittleNet stages S1-S3 need at least 2 nominal blocks (the big "
        "branch has n - 1): --block_sizes=1,1,1,1; e.g. --block_sizes=2,2,2,1 "
        "for a tiny model."
    )


def test_build_model_rejects_unknown_preset_and_override():
    with pytest.raises(
        ValueError,
        match=r"`preset`='resnet51' is not a preset\. Did you mean resnet50",
    ):
        build_model("resnet51")
    with pytest.raises(ValueError) as e:
        build_model("resnet50", widht=3)
    # Named as the binaries' --model_overrides (before: "Unknown
    # override(s)", no flag); a teacher's build calls it
    # --teacher_overrides (tests/training/test_teacher_logits.py).
    assert e.value.as_flag().startswith(
        "--model_overrides sets widht, which 'resnet50' does not take; it "
        "takes depth, image_size, "
    )
    renamed = e.value.renamed({"model_overrides": "teacher_overrides"})
    assert renamed.as_flag().startswith("--teacher_overrides sets widht")


@pytest.mark.slow  # over 2 s on 2 cores
def test_keras_save_and_reload_round_trip(tmp_path):
    model = build_model("assemble_resnet50", **TINY)
    x = testing_utils.random_images((2, 64, 64, 3))
    revived = testing_utils.run_model_saving_test(
        model=model, input_data=x, path=str(tmp_path / "tiny.keras")
    )
    assert revived.name == model.name


COSINE_TINY = {
    "base_width": 8,
    "block_sizes": (1, 1, 1, 1),
    "image_size": 32,
    "num_classes": 5,
}


def _cosine_inputs():
    return testing_utils.random_images((3, 32, 32, 3), low=-120, high=130)


@pytest.mark.parametrize("embedding_size", [16, None])
def test_cosine_classifier_head(embedding_size):
    from assemble_tf.layers import CosineClassifier
    from assemble_tf.models import count_params

    kw = dict(COSINE_TINY, embedding_size=embedding_size)
    dense = build_model("resnet50", **kw)
    cosine = build_model("resnet50", classifier="cosine", **kw)
    head = cosine.get_layer("head_dense")
    assert isinstance(head, CosineClassifier)
    assert head.units == 5 and head.temperature == 0.05
    # The dense head's bias is the only difference in parameters.
    assert count_params(cosine)[1] == count_params(dense)[1] - 5
    assert count_params(cosine)[2] == count_params(dense)[2]
    names = [layer.name for layer in cosine.layers]
    if embedding_size:
        # Dense: BN, ReLU, Dense; cosine: on the BN output (no ReLU).
        assert "head_embedding_relu" in [layer.name for layer in dense.layers]
        assert "head_embedding_relu" not in names
        source = "head_embedding_bn"
    else:
        source = "head_pool"
    assert head.input is cosine.get_layer(source).output
    assert names[-2:] == ["head_dense", "logits"]
    testing_utils.randomize_bn(cosine)
    logits = cosine(_cosine_inputs(), training=False).numpy()
    assert logits.shape == (3, 5) and np.all(np.isfinite(logits))
    assert np.all(np.abs(logits) <= 1 / 0.05 * (1 + 1e-6))
    assert np.ptp(logits) > 0
    hot = build_model(
        "resnet50", classifier="cosine", cosine_temperature=0.5, **kw
    )
    hot.set_weights(cosine.get_weights())
    np.testing.assert_allclose(
        hot(_cosine_inputs(), training=False).numpy(),
        logits * 0.05 / 0.5,
        rtol=1e-5,
        atol=1e-6,
    )


def test_default_classifier_keeps_the_dense_head_and_its_counts():
    from assemble_tf.models import count_params

    kw = dict(COSINE_TINY, embedding_size=16)
    default = build_model("resnet50", **kw)
    explicit = build_model("resnet50", classifier="dense", **kw)
    assert isinstance(default.get_layer("head_dense"), keras.layers.Dense)
    # The counts of this model before the classifier option existed.
    assert count_params(default) == (135053, 132605, 2448)
    assert count_params(explicit) == count_params(default)
    assert count_params(build_model("resnet50", **COSINE_TINY)) == (
        132093,
        129677,
        2416,
    )


def test_cosine_classifier_keras_save_and_reload(tmp_path):
    model = build_model(
        "resnet50", classifier="cosine", embedding_size=16, **COSINE_TINY
    )
    testing_utils.randomize_bn(model)
    x = _cosine_inputs()
    path = str(tmp_path / "cosine.keras")
    model.save(path)
    revived = keras.models.load_model(path)
    assert type(revived.get_layer("head_dense")).__name__ == "CosineClassifier"
    assert revived.get_layer("head_dense").get_config() == (
        model.get_layer("head_dense").get_config()
    )
    np.testing.assert_allclose(
        revived(x, training=False).numpy(),
        model(x, training=False).numpy(),
        rtol=1e-5,
        atol=1e-5,
    )


def test_cosine_classifier_float32_under_mixed_precision(mixed_precision):
    model = build_model(
        "resnet50", classifier="cosine", embedding_size=16, **COSINE_TINY
    )
    logits = model(_cosine_inputs(), training=True)
    assert keras.backend.standardize_dtype(logits.dtype) == "float32"
    assert all(v.dtype == "float32" for v in model.weights)
    assert model.get_layer("head_embedding_bn").compute_dtype == "float16"
    assert model.get_layer("head_dense").compute_dtype == "float32"
    assert np.all(np.abs(logits.numpy()) <= 1 / 0.05 * (1 + 1e-6))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"classifier": "arcface"}, "classifier`='arcface'"),
        ({"classifier": None}, "classifier`=None"),
        ({"classifier": "cosine", "cosine_temperature": 0}, "temperature`=0"),
        ({"cosine_temperature": -1.0}, "cosine_temperature`=-1.0"),
        ({"cosine_temperature": "0.05"}, "cosine_temperature`='0.05'"),
    ],
)
def test_bad_classifier_options_fail_naming_the_value(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_resnet(**kwargs)


def test_model_config_threads_the_classifier():
    from assemble_tf.config import ModelConfig

    assert "classifier" not in ModelConfig().build_overrides(5)
    assert "cosine_temperature" not in ModelConfig().build_overrides(5)
    config = ModelConfig(
        preset="resnet50",
        base_width=8,
        block_sizes="1,1,1,1",
        embedding_size=16,
        classifier="cosine",
        cosine_temperature=0.1,
    )
    overrides = config.build_overrides(5, 32)
    assert overrides["classifier"] == "cosine"
    assert overrides["cosine_temperature"] == 0.1
    head = build_model("resnet50", **overrides).get_layer("head_dense")
    assert type(head).__name__ == "CosineClassifier"
    assert head.temperature == 0.1 and head.units == 5


@pytest.mark.parametrize("preset", ["assemble_resnet50", "table2_c5"])
@pytest.mark.slow  # over 2 s on 2 cores
def test_the_export_clone_folds_every_bn(preset):
    """`fold_bn_graph` keeps every layer but the folded BNs (names and
    types); each folded conv gains a bias, each SK unit is rebuilt with
    `fold_bn=True`; the logits stay."""
    from assemble_tf.export.optimize import fold_bn_graph, folded_copy

    model = build_model(preset, **TINY)
    testing_utils.randomize_bn(model)
    clone, count = folded_copy(model)
    kept = [
        layer
        for layer in model.layers
        if not isinstance(layer, keras.layers.BatchNormalization)
    ]
    assert sorted((type(a).__name__, a.name) for a in clone.layers) == sorted(
        (type(b).__name__, b.name) for b in kept
    )
    biased = {
        w.path.split("/")[0] for w in clone.weights if w.path.endswith("bias")
    }
    # The convs feeding the model-level BNs (the stem, the blocks, the
    # shortcuts) are exactly the biased `_conv` layers.
    assert {n for n in biased if n.endswith("_conv")} == {
        b.name[: -len("_bn")] + "_conv"
        for b in model.layers
        if isinstance(b, keras.layers.BatchNormalization)
    }
    assert all(
        layer.fold_bn for layer in clone.layers if layer.name.endswith("_sk")
    )

    # Every BN is folded, the SK units' own (two per unit) included.
    def bns(m):
        return [
            layer
            for layer in m._flatten_layers(include_self=False)
            if isinstance(layer, keras.layers.BatchNormalization)
        ]

    sk_units = [layer for layer in model.layers if layer.name.endswith("_sk")]
    assert len(sk_units) > 0
    assert count == len(bns(model))
    assert count == (
        sum(layer.name.endswith("_bn") for layer in model.layers)
        + 2 * len(sk_units)
    )
    assert bns(clone) == []
    x = testing_utils.random_images((2, 64, 64, 3), low=-120, high=130)
    expected = model(x, training=False).numpy()
    diff = np.abs(clone(x, training=False).numpy() - expected).max()
    assert diff <= 1e-5 * np.abs(expected).max()
    assert fold_bn_graph(clone).count_params() == clone.count_params()


def test_the_shortcut_option_reaches_the_model():
    """`shortcut` in a run's model options (and the tools' flags) takes
    the builder's choices; avg2_tf1 adds the pools of the original code's
    ResNet-D shortcut, the first stage's stride-1 one included."""
    from assemble_tf.config import ModelConfig
    from assemble_tf.models import resnet

    assert "shortcut" not in ModelConfig().build_overrides(5)
    with pytest.raises(ValueError, match="shortcut"):
        ModelConfig(shortcut="avg4").validate()
    for kind in resnet.SHORTCUTS:
        config = ModelConfig(preset="resnet50", shortcut=kind)
        config.validate()
        assert config.build_overrides(5)["shortcut"] == kind
    overrides = ModelConfig(
        preset="resnet50d",
        base_width=8,
        block_sizes="1,1,1,1",
        shortcut="avg2_tf1",
    ).build_overrides(5)
    model = build_model("resnet50d", **overrides)
    pools = {
        layer.name: layer.strides
        for layer in model.layers
        if layer.name.endswith("_shortcut_pool")
    }
    assert pools == {
        f"stage{s}_block1_shortcut_pool": (1, 1) if s == 1 else (2, 2)
        for s in (1, 2, 3, 4)
    }
    assert [
        layer.padding
        for layer in model.layers
        if layer.name.endswith("_shortcut_pool_pad")
    ] == [((0, 1), (0, 1))] * 3

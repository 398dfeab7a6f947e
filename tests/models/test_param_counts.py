"""Exact parameter counts and GMACs of full-size models.

Numbers: counted on the original master graph of clovaai/assembled-cnn
under tf.compat.v1, the paper's Table 12, keras-hub and Model Garden for
the plain / D counts. "total" includes BN moving stats.
"""

import functools
import re

import keras
import numpy as np
import pytest

from assemble_tf.models import (
    build_model,
    build_model_to_count,
    count_macs,
    count_params,
)

COUNTS = [
    # preset, overrides, total, trainable, non-trainable
    ("resnet50", {}, 25_612_201, 25_559_081, 53_120),
    ("table2_c3", {}, 38_838_313, 38_773_865, 64_448),  # R50 + SK
    ("assemble_resnet50", {}, 41_925_801, 41_848_489, 77_312),
    (
        "assemble_resnet50",
        {"num_classes": 1000},
        41_923_752,
        41_846_440,
        77_312,
    ),
    ("assemble_resnet152", {}, 117_255_849, 117_006_249, 249_600),
    (
        "assemble_resnet152",
        {"num_classes": 1000},
        117_253_800,
        117_004_200,
        249_600,
    ),
    ("resnet152", {}, 60_346_281, 60_194_857, 151_424),
    ("resnet50d", {"num_classes": 1000}, 25_629_512, 25_576_264, 53_248),
    ("sk_resnet50d", {"num_classes": 1000}, 38_855_624, 38_791_048, 64_576),
    # BL-R50 (alpha 2, beta 4) and BL-R152 (alpha 1, beta 2) without SK.
    ("table6_m4", {"attention": None}, 28_470_953, 28_405_673, 65_280),
    (
        "table6_m4",
        {"attention": None, "num_classes": 1000},
        28_468_904,
        28_403_624,
        65_280,
    ),
    (
        "assemble_resnet152",
        {"attention": None},
        75_445_929,
        75_242_409,
        203_520,
    ),
]


# Full-size models are built once per module, without drawing their
# weights (`build_model_to_count`; an Assemble-R152 in 1 s, 5 s with): the
# parameter counts and GMACs of a preset read the same model.
_SIZE = {"table6_m3": 256}


@functools.cache
def _built(preset, image_size=224, **overrides):
    return build_model_to_count(preset, image_size=image_size, **overrides)


def _model(preset, image_size=None, **overrides):
    return _built(preset, image_size or _SIZE.get(preset, 224), **overrides)


@pytest.fixture(scope="module", autouse=True)
def _free_the_models():
    yield
    _built.cache_clear()
    keras.backend.clear_session()


def _head_params(model):
    """Parameters of one logit of the dense head (its kernel row and
    bias): a C-class model has C - 1000 times them more than the same
    model with 1000 classes."""
    return model.get_layer("head_dense").kernel.shape[0] + 1


@pytest.mark.slow
@pytest.mark.parametrize("preset,overrides,total,trainable,frozen", COUNTS)
def test_parameter_counts(preset, overrides, total, trainable, frozen):
    overrides = dict(overrides)
    num_classes = overrides.pop("num_classes", 1001)
    model = _model(preset, **overrides)
    assert model.get_layer("head_dense").units == 1001
    # Only the head depends on the class count: the 1000-class rows are
    # the 1001-class model less one logit's parameters (2,049 for a
    # 2,048-wide head), counted on the same build.
    fewer = (1001 - num_classes) * _head_params(model)
    assert count_params(model) == (total + fewer, trainable + fewer, frozen)


@pytest.mark.slow  # over 2 s on 2 cores
def test_a_1000_class_build_has_one_logit_fewer():
    # What the derivation above relies on, on a small model.
    a = build_model("assemble_resnet50", base_width=16, num_classes=1001)
    b = build_model("assemble_resnet50", base_width=16, num_classes=1000)
    assert (
        count_params(a)[0] - count_params(b)[0]
        == _head_params(a)
        == (16 * 32 + 1)
    )


def test_a_model_to_count_is_the_model_without_weight_values():
    """What the counts above rely on: the same variables, shapes, layers
    and multiply-adds as `build_model`, no values drawn."""
    kwargs = {"base_width": 16, "block_sizes": (2, 2, 2, 1), "image_size": 64}
    real = build_model("assemble_resnet50", **kwargs)
    counted = build_model_to_count("assemble_resnet50", **kwargs)

    def variables(model):
        # A SeedGenerator's name holds a process-wide counter.
        return [
            (re.sub(r"seed_generator_\d+", "seed_generator", v.path), v.shape)
            for v in model.variables
        ]

    assert variables(counted) == variables(real)
    assert [layer.name for layer in counted.layers] == [
        layer.name for layer in real.layers
    ]
    assert count_params(counted) == count_params(real)
    assert count_macs(counted) == count_macs(real) > 0
    assert counted.variables[0]._value is None  # nothing drawn
    x = np.random.default_rng(0).normal(size=(1, 64, 64, 3)).astype("float32")
    assert np.abs(real(x)).max() > 0
    with pytest.raises(ValueError, match="has no weight values"):
        counted(x)  # not zeros from uninitialized variables


@pytest.mark.parametrize(
    "overrides,trainable",
    [
        # Headless backbones (Model Garden resnet_test / keras-hub presets).
        ({"depth": 50, "include_top": False}, 23_508_032),
        ({"depth": 18, "num_classes": 1000}, 11_689_512),
        ({"depth": 34, "num_classes": 1000}, 21_797_672),
        ({"depth": 101, "num_classes": 1000}, 44_549_160),
    ],
)
def test_plain_resnets_match_torchvision_counts(overrides, trainable):
    model = _model("resnet50", **overrides)
    assert count_params(model)[1] == trainable


@pytest.mark.slow
def test_headless_backbone_totals():
    # keras-hub's ResNet presets: headless R50 23,561,152 and R50-D
    # 23,580,512 in total.
    assert _model("resnet50", include_top=False).count_params() == 23_561_152
    assert _model("resnet50d", include_top=False).count_params() == 23_580_512


@pytest.mark.slow
@pytest.mark.parametrize(
    "preset,size,gmacs",
    [
        ("resnet50", 224, 4.09),
        ("resnet50d", 224, 4.33),
        ("sk_resnet50d", 224, 6.18),
        ("table6_m3", 256, 5.44),
        ("assemble_resnet50", 224, 5.73),
        ("assemble_resnet50", 256, 7.48),
        ("assemble_resnet152", 224, 15.68),
    ],
)
def test_gmacs_within_one_percent(preset, size, gmacs):
    macs = count_macs(_model(preset, image_size=size)) / 1e9
    assert macs == pytest.approx(gmacs, rel=0.01)

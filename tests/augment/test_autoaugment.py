"""AutoAugment / RandAugment: policies, level mapping, distort()."""

import collections

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image, ImageEnhance, ImageOps

from assemble_tf.augment import (
    LEVEL_TO_ARG,
    NAME_TO_FUNC,
    POLICIES,
    RANDAUGMENT_OPS,
    AutoAugment,
    RandAugment,
    level_to_arg,
    ops,
)

RNG = np.random.default_rng(7)
IMAGE = RNG.integers(20, 221, (37, 53, 3), dtype=np.uint8)
SPEC = tf.TensorSpec([None, None, 3], tf.uint8)

# The ImageNet policy of the AutoAugment paper (Cubuk et al. 2019,
# arXiv 1805.09501, Table 9), as TF TPU `autoaugment.py` writes it.
EXPECTED_IMAGENET = [
    (("Posterize", 0.4, 8), ("Rotate", 0.6, 9)),
    (("Solarize", 0.6, 5), ("AutoContrast", 0.6, 5)),
    (("Equalize", 0.8, 8), ("Equalize", 0.6, 3)),
    (("Posterize", 0.6, 7), ("Posterize", 0.6, 6)),
    (("Equalize", 0.4, 7), ("Solarize", 0.2, 4)),
    (("Equalize", 0.4, 4), ("Rotate", 0.8, 8)),
    (("Solarize", 0.6, 3), ("Equalize", 0.6, 7)),
    (("Posterize", 0.8, 5), ("Equalize", 1.0, 2)),
    (("Rotate", 0.2, 3), ("Solarize", 0.6, 8)),
    (("Equalize", 0.6, 8), ("Posterize", 0.4, 6)),
    (("Rotate", 0.8, 8), ("Color", 0.4, 0)),
    (("Rotate", 0.4, 9), ("Equalize", 0.6, 2)),
    (("Equalize", 0.0, 7), ("Equalize", 0.8, 8)),
    (("Invert", 0.6, 4), ("Equalize", 1.0, 8)),
    (("Color", 0.6, 4), ("Contrast", 1.0, 8)),
    (("Rotate", 0.8, 8), ("Color", 1.0, 2)),
    (("Color", 0.8, 8), ("Solarize", 0.8, 7)),
    (("Sharpness", 0.4, 7), ("Invert", 0.6, 8)),
    (("ShearX", 0.6, 5), ("Equalize", 1.0, 9)),
    (("Color", 0.4, 0), ("Equalize", 0.6, 3)),
    (("Equalize", 0.4, 7), ("Solarize", 0.2, 4)),
    (("Solarize", 0.6, 5), ("AutoContrast", 0.6, 5)),
    (("Invert", 0.6, 4), ("Equalize", 1.0, 8)),
    (("Color", 0.6, 4), ("Contrast", 1.0, 8)),
    (("Equalize", 0.8, 8), ("Equalize", 0.6, 3)),
]


def _op_counts(policy):
    return dict(collections.Counter(e[0] for sub in policy for e in sub))


# ----------------------------------------------------------------------------
# Policies.
# ----------------------------------------------------------------------------


def test_imagenet_policy_exact():
    assert [tuple(sub) for sub in POLICIES["imagenet"]] == EXPECTED_IMAGENET


def test_other_policies_sizes_and_contents():
    assert sorted(POLICIES) == ["good", "imagenet", "test", "v0"]
    good, v0 = POLICIES["good"], POLICIES["v0"]
    assert len(good) == 95 and len(v0) == 25
    assert all(len(sub) == 2 for sub in good + v0)
    # Spec Appendix A, counted independently.
    assert _op_counts(good) == {
        "AutoContrast": 35,
        "Brightness": 13,
        "Color": 13,
        "Contrast": 6,
        "Cutout": 3,
        "Equalize": 40,
        "Invert": 6,
        "Posterize": 2,
        "Rotate": 3,
        "Sharpness": 7,
        "ShearX": 4,
        "ShearY": 7,
        "Solarize": 24,
        "TranslateX": 4,
        "TranslateY": 23,
    }
    assert _op_counts(v0) == {
        "AutoContrast": 2,
        "Color": 9,
        "Equalize": 12,
        "Invert": 1,
        "Posterize": 2,
        "Rotate": 7,
        "ShearX": 2,
        "ShearY": 4,
        "Solarize": 8,
        "SolarizeAdd": 2,
        "TranslateY": 1,
    }
    probs = [e[1] for sub in good for e in sub]
    levels = [e[2] for sub in good for e in sub]
    assert sum(probs) == pytest.approx(90.2) and sum(levels) == 890
    assert sum(e[2] for sub in v0 for e in sub) == 240
    assert good[0] == (("Invert", 0.1, 7), ("Contrast", 0.2, 6))
    assert good[5] == (("Solarize", 0.4, 5), ("AutoContrast", 0.9, 3))
    assert good[61] == (("Cutout", 0.2, 4), ("Equalize", 0.1, 1))
    assert good[-1] == (("Equalize", 0.6, 9), ("Equalize", 0.4, 4))
    assert v0[0] == (("Equalize", 0.8, 1), ("ShearY", 0.8, 4))
    assert v0[6] == (("Equalize", 0.4, 8), ("SolarizeAdd", 0.8, 3))
    assert v0[-1] == (("Color", 0.8, 6), ("Rotate", 0.4, 5))
    assert POLICIES["test"] == (
        (("TranslateX", 1.0, 4), ("Equalize", 1.0, 10)),
    )
    assert len(NAME_TO_FUNC) == 16 and set(RANDAUGMENT_OPS) == set(NAME_TO_FUNC)
    assert set(LEVEL_TO_ARG["original"]) == set(NAME_TO_FUNC)
    assert set(LEVEL_TO_ARG["paper"]) == set(NAME_TO_FUNC)


# ----------------------------------------------------------------------------
# Level -> argument.
# ----------------------------------------------------------------------------


def test_original_level_to_arg_table():
    # The level-to-argument mapping of TF TPU / clovaai/assembled-cnn
    # `autoaugment.py`.
    def args(op, levels):
        return [level_to_arg(op, level) for level in levels]

    assert args("Posterize", [5, 6, 7, 8]) == [2, 2, 2, 3]
    # The TPU code's int(4 l) is 0 below level 2.5, but its shift of a
    # uint8 by 8 was clamped to 7 by TensorFlow: 1 bit kept (before: 0, a
    # black image).
    assert args("Posterize", [0, 2, 10]) == [1, 1, 4]
    image = tf.constant([[[0, 100, 200]]], tf.uint8)
    shift = tf.constant(8, tf.uint8)  # the TPU code's shift for 0 bits
    tpu = tf.bitwise.left_shift(tf.bitwise.right_shift(image, shift), shift)
    assert tpu.numpy().tolist() == [[[0, 0, 128]]]
    from assemble_tf.augment import ops

    assert ops.posterize(image, args("Posterize", [2])[0]).numpy().tolist() == (
        tpu.numpy().tolist()
    )
    assert args("Solarize", [3, 4, 5, 7, 8]) == [76, 102, 128, 179, 204]
    assert args("SolarizeAdd", [3, 7, 10]) == [33, 77, 110]
    assert args("Cutout", [3, 4, 10]) == [30, 40, 100]
    np.testing.assert_allclose(args("Rotate", [3, 8, 9]), [9, 24, 27])
    np.testing.assert_allclose(
        args("Color", [0, 2, 4, 8]), [0.10, 0.46, 0.82, 1.54]
    )
    assert level_to_arg("Contrast", 8) == pytest.approx(1.54)
    assert level_to_arg("Sharpness", 7) == pytest.approx(1.36)
    assert level_to_arg("Brightness", 10) == pytest.approx(1.9)
    assert level_to_arg("ShearX", 5) == pytest.approx(0.15)
    assert level_to_arg("ShearY", 10) == pytest.approx(0.3)
    assert args("TranslateX", [4, 10]) == [100.0, 250.0]
    assert level_to_arg("TranslateY", 4, translate_const=100) == 40.0
    assert [level_to_arg(op, 7) for op in ("AutoContrast", "Invert")] == [
        None,
        None,
    ]


def test_paper_level_to_arg_table():
    def args(op, levels):
        return [level_to_arg(op, level, "paper") for level in levels]

    assert args("Posterize", [0, 5, 8, 10]) == [8, 6, 5, 4]
    assert args("Solarize", [0, 3, 5, 10]) == [256, 180, 128, 0]
    np.testing.assert_allclose(args("TranslateX", [10]), [150 / 331])
    assert args("Cutout", [5, 10]) == [15, 30]
    np.testing.assert_allclose(args("Rotate", [9]), [27])
    np.testing.assert_allclose(args("Color", [8]), [1.54])


def test_randaugment_defaults():
    ra = RandAugment()
    assert (ra.num_layers, ra.magnitude) == (2, 10)
    assert (ra.translate_const, ra.cutout_const) == (100.0, 40)
    aa = AutoAugment()
    assert aa.policy_name == "imagenet" and aa.mapping == "original"
    assert (aa.translate_const, aa.cutout_const) == (250.0, 100)
    assert AutoAugment(mapping="paper").cutout_const == 30


# ----------------------------------------------------------------------------
# distort().
# ----------------------------------------------------------------------------


def test_distort_keeps_shape_dtype_and_is_seeded():
    for name in POLICIES:
        aa = AutoAugment(name)
        for seed in (0, 1, 2):
            out = aa.distort(IMAGE, seed=seed)
            assert out.dtype == tf.uint8 and out.shape == IMAGE.shape
            np.testing.assert_array_equal(out, aa.distort(IMAGE, seed=seed))
    # A seeded augmenter replays the same sequence without explicit seeds.
    runs = []
    for _ in range(2):
        aa = AutoAugment("imagenet", seed=3)
        runs.append(np.stack([aa.distort(IMAGE).numpy() for _ in range(6)]))
    np.testing.assert_array_equal(runs[0], runs[1])
    assert len({r.tobytes() for r in runs[0]}) >= 3


def test_prob_one_sub_policy_gives_the_op_result():
    # test policy: TranslateX +-100 px (level 4 x 250 / 10), then Equalize.
    out = AutoAugment("test").distort(IMAGE, seed=11).numpy()
    candidates = [
        ops.equalize(ops.translate_x(IMAGE, px)).numpy() for px in (100, -100)
    ]
    # 100 px > 53 px: the image is fully gray, equalize keeps it.
    np.testing.assert_array_equal(candidates[0], np.full_like(IMAGE, 128))
    assert any(np.array_equal(out, c) for c in candidates)
    # Colour ops compared with PIL directly.
    aa = AutoAugment([[("Contrast", 1.0, 8), ("Posterize", 1.0, 8)]])
    ref = ImageOps.posterize(
        ImageEnhance.Contrast(Image.fromarray(IMAGE)).enhance(1.54), 3
    )
    np.testing.assert_array_equal(aa.distort(IMAGE, seed=0), np.asarray(ref))
    aa = AutoAugment([[("Solarize", 1.0, 5)], [("Solarize", 1.0, 5)]])
    ref = ImageOps.solarize(Image.fromarray(IMAGE), 128)
    np.testing.assert_array_equal(aa.distort(IMAGE, seed=5), np.asarray(ref))
    # Probability 0 never applies.
    aa = AutoAugment([[("Invert", 0.0, 0), ("Equalize", 0.0, 3)]])
    np.testing.assert_array_equal(aa.distort(IMAGE, seed=1), IMAGE)
    # Signed op: ShearX level 5 is +-0.15.
    out = AutoAugment([[("ShearX", 1.0, 5)]]).distort(IMAGE, seed=4).numpy()
    assert any(
        np.array_equal(out, ops.shear_x(IMAGE, s)) for s in (0.15, -0.15)
    )
    # Paper mapping: translate 150/331 of the width at level 10.
    aa = AutoAugment([[("TranslateX", 1.0, 10)]], mapping="paper")
    out = aa.distort(IMAGE, seed=2).numpy()
    px = 150 / 331 * 53
    assert any(
        np.array_equal(out, ops.translate_x(IMAGE, s)) for s in (px, -px)
    )


def test_sub_policy_choice_and_probabilities_are_uniform():
    aa = AutoAugment(
        [[("Invert", 1.0, 0)], [("Invert", 0.0, 0)], [("Invert", 0.3, 0)]]
    )
    distort = tf.function(lambda s: aa.distort(IMAGE, seed=s))
    n = 600
    inverted = sum(
        int(np.array_equal(distort(tf.constant([i, 7], tf.int64)), 255 - IMAGE))
        for i in range(n)
    )
    # Expected (1 + 0 + 0.3) / 3 = 0.433; sd of the mean 0.02.
    assert abs(inverted / n - 1.3 / 3) < 0.07


def _dataset():
    sizes = [(37, 53), (24, 24), (16, 41)]
    images = [RNG.integers(0, 256, s + (3,), dtype=np.uint8) for s in sizes]
    ds = tf.data.Dataset.from_generator(
        lambda: iter(images), output_signature=SPEC
    )
    return ds, sizes


def _check_outputs(dataset, sizes):
    assert dataset.element_spec.shape.as_list() == [None, None, 3]
    outs = list(dataset)
    assert [tuple(o.shape[:2]) for o in outs] == sizes
    assert all(o.dtype == tf.uint8 for o in outs)
    return outs


@pytest.mark.slow  # over 2 s on 2 cores
def test_distort_in_tf_data_with_unknown_shape():
    ds, sizes = _dataset()
    aa = AutoAugment("imagenet", seed=0)
    _check_outputs(ds.map(aa.distort, num_parallel_calls=2), sizes)
    # Per-element seeds from Dataset.random make the pipeline reproducible.
    seeded = tf.data.Dataset.zip(ds, tf.data.Dataset.random(5).batch(2))
    seeded = seeded.map(lambda x, s: aa.distort(x, seed=s))
    first = _check_outputs(seeded, sizes)
    for a, b in zip(first, list(seeded), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow  # over 2 s on 2 cores
def test_randaugment_applies_num_layers_ops():
    for layers, expected in [(0, IMAGE), (1, 255 - IMAGE), (2, IMAGE)]:
        ra = RandAugment(num_layers=layers, magnitude=5, ops=["Invert"])
        np.testing.assert_array_equal(ra.distort(IMAGE, seed=0), expected)
    # Brightness at magnitude 0 has factor 0.1; three layers compound.
    ra = RandAugment(num_layers=3, magnitude=0, ops=("Brightness",))
    x = IMAGE.astype(np.float32)
    for _ in range(3):
        x = np.floor(np.float32(0.1) * x)
    np.testing.assert_array_equal(ra.distort(IMAGE, seed=0), x)
    # Default op list, inside tf.data with unknown shapes.
    ds, sizes = _dataset()
    ra = RandAugment(num_layers=2, magnitude=10, seed=1)
    outs = _check_outputs(ds.map(ra.distort), sizes)
    assert not np.array_equal(outs[0], list(ds)[0])


def test_validation_echoes_bad_values():
    with pytest.raises(ValueError, match="'cifar'"):
        AutoAugment("cifar")
    with pytest.raises(ValueError, match="'tpu'"):
        AutoAugment(mapping="tpu")
    with pytest.raises(ValueError, match="'Blur'"):
        AutoAugment([[("Blur", 0.5, 3)]])
    with pytest.raises(ValueError, match="1.5"):
        AutoAugment([[("Invert", 1.5, 3)]])
    with pytest.raises(ValueError, match="11"):
        AutoAugment([[("Rotate", 0.5, 11)]])
    with pytest.raises(ValueError, match="11"):
        RandAugment(magnitude=11)
    with pytest.raises(ValueError, match="-1"):
        RandAugment(num_layers=-1)
    with pytest.raises(ValueError, match="'Zoom'"):
        RandAugment(ops=["Invert", "Zoom"])
    with pytest.raises(ValueError, match="'Zoom'"):
        level_to_arg("Zoom", 3)
    with pytest.raises(ValueError, match="float32"):
        AutoAugment().distort(IMAGE.astype(np.float32))

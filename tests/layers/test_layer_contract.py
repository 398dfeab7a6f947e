"""Every layer of assemble_tf.layers through one Keras contract check
(`testing_utils.run_layer_test`, after keras-hub's `run_layer_test`)."""

import numpy as np
import pytest

from assemble_tf.layers import (
    BatchNorm,
    BigLittleMerge,
    BlurPool2D,
    Conv2D,
    CosineClassifier,
    DropBlock2D,
    GeMPooling2D,
    PaddedAveragePool2D,
    SelectiveKernel,
    SqueezeExcite,
)
from tests import testing_utils

X = testing_utils.random_images

# (layer, inputs, output shape, trainable / non-trainable weight variables,
# training mode for the shape and precision checks)
CASES = {
    # gamma, beta / moving mean and variance.
    "BatchNorm": (
        lambda: BatchNorm(momentum=0.9, name="bn"),
        X((2, 4, 4, 8)),
        (2, 4, 4, 8),
        2,
        2,
        False,
    ),
    # A fixed binomial filter, stride 2: no weights.
    "BlurPool2D": (
        lambda: BlurPool2D(3),
        X((2, 8, 8, 3)),
        (2, 4, 4, 3),
        0,
        0,
        False,
    ),
    # Kernel and bias; in training its 6 x 6 output takes the MatMul
    # weight gradient (float32 rule: at most 7 x 7 positions).
    "Conv2D": (
        lambda: Conv2D(4, 3, padding="same", name="conv"),
        X((2, 6, 6, 3)),
        (2, 6, 6, 4),
        2,
        0,
        True,
    ),
    # One bias-free class-weight kernel (computed in float32, output in
    # the compute dtype).
    "CosineClassifier": (
        lambda: CosineClassifier(4, temperature=0.1),
        X((2, 6)),
        (2, 4),
        1,
        0,
        False,
    ),
    # The keep probability and the noise seed are state, not weights.
    "DropBlock2D": (
        lambda: DropBlock2D(0.8, 3),
        X((2, 8, 8, 4)),
        (2, 8, 8, 4),
        0,
        0,
        True,
    ),
    # p fixed (the original's GeM is not learned).
    "GeMPooling2D": (
        lambda: GeMPooling2D(p=3.0),
        np.abs(X((2, 4, 4, 5))) + 0.1,
        (2, 5),
        0,
        0,
        False,
    ),
    # A constant window, zeros counted: no weights.
    "PaddedAveragePool2D": (
        lambda: PaddedAveragePool2D(3, strides=2, padding=1),
        X((2, 8, 8, 3)),
        (2, 4, 4, 3),
        0,
        0,
        False,
    ),
    # 2F-channel conv, its BN, fc1, the attention BN, fc2 (no biases).
    "SelectiveKernel": (
        lambda: SelectiveKernel(8),
        X((2, 8, 8, 4)),
        (2, 8, 8, 8),
        7,
        4,
        True,
    ),
    # Two bias-free 1x1 kernels.
    "SqueezeExcite": (
        lambda: SqueezeExcite(4),
        X((2, 4, 4, 8), low=0.0, high=2.0),  # ReLU in fc1 alive
        (2, 4, 4, 8),
        2,
        0,
        False,
    ),
    # Upsample-and-add of the big branch onto the little one.
    "BigLittleMerge": (
        lambda: BigLittleMerge(),
        [X((2, 2, 2, 3)), X((2, 4, 4, 3))],
        (2, 4, 4, 3),
        0,
        0,
        False,
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_layer_contract(name):
    layer_fn, inputs, shape, trainable, frozen, training = CASES[name]
    layer = testing_utils.run_layer_test(
        layer_fn=layer_fn,
        input_data=inputs,
        expected_output_shape=shape,
        expected_num_trainable_weights=trainable,
        expected_num_non_trainable_weights=frozen,
        training=training,
    )
    assert type(layer).__name__ == name


def test_every_exported_layer_is_checked():
    import assemble_tf.layers as layers

    exported = {
        n for n in layers.__all__ if isinstance(getattr(layers, n), type)
    }
    assert exported == set(CASES)


@pytest.mark.parametrize(
    "make, shown",
    [
        # Truthy strings switched features on.
        (lambda: SelectiveKernel(8, fold_bn="no"), "fold_bn='no'"),
        (lambda: GeMPooling2D(trainable_p="no"), "trainable_p='no'"),
        # NaN and inf gave NaN, all-zero or never-dropped outputs.
        (lambda: GeMPooling2D(p=float("nan")), "p=nan"),
        (lambda: GeMPooling2D(p=float("inf")), "p=inf"),
        (lambda: GeMPooling2D(epsilon=float("inf")), "epsilon=inf"),
        (lambda: DropBlock2D(0.9, 3, gamma_scale=float("inf")), "gamma_sc"),
        (lambda: DropBlock2D(0.9, 3, gamma_scale=float("nan")), "gamma_sc"),
        (lambda: CosineClassifier(4, temperature=float("inf")), "rature=inf"),
        # Values build_resnet refuses.
        (lambda: SelectiveKernel(8, bn_momentum=5.0), "bn_momentum=5.0"),
        (lambda: SelectiveKernel(8, bn_epsilon=-1.0), "bn_epsilon=-1.0"),
        # Bools taken as 1 (and kept as True in the config).
        (lambda: BlurPool2D(strides=True), "strides=True"),
        (lambda: SelectiveKernel(8, strides=True), "strides=True"),
        (lambda: DropBlock2D(True), "keep_prob=True"),
        # A float size failed at the first call, naming no argument.
        (lambda: BlurPool2D(3.0), "filter_size=3.0"),
        (lambda: DropBlock2D(0.9).set_keep_prob("x"), "keep_prob='x'"),
    ],
)
def test_bad_constructor_values_are_refused_echoing_them(make, shown):
    with pytest.raises(ValueError) as error:
        make()
    assert shown in str(error.value)


def test_numpy_integers_and_floats_are_taken():
    """As Python's (numpy's int64 strides were refused by BlurPool2D)."""
    layer = BlurPool2D(np.int64(3), strides=np.int64(2))
    assert layer.get_config()["strides"] == 2
    assert type(layer.get_config()["strides"]) is int
    assert GeMPooling2D(p=np.float32(2.0)).p == 2.0
    DropBlock2D(np.float32(0.5)).set_keep_prob(np.float64(0.7))

"""BN statistics re-estimated for fine-tuning, on every Keras backend
(`assemble_tf.runs.warm_start.reestimate_bn_statistics`: one compiled
training-mode pass per batch; under JAX op by op compiled every op)."""

import keras
import numpy as np
import pytest

from assemble_tf.models import build_model
from assemble_tf.runs import warm_start


def test_bn_reestimation_is_the_exact_mean_of_batch_statistics():
    keras.utils.set_random_seed(1)
    model = build_model(
        "resnet50", num_classes=4, base_width=8, block_sizes=(1, 1, 1, 1)
    )
    # A frozen backbone (--freeze_backbone) is re-estimated too: frozen
    # BatchNorms compute no batch statistics, and theirs stayed 0 / 1.
    for layer in model.layers:
        if not layer.name.startswith("head_"):
            layer.trainable = False
    rng = np.random.default_rng(0)
    batches = [
        rng.normal(0, 50, (3, 32, 32, 3)).astype("float32") for _ in range(3)
    ]
    conv = keras.Model(model.input, model.get_layer("stem_1_conv").output)
    outs = [np.asarray(conv(b)) for b in batches]
    want_mean = np.mean([o.mean(axis=(0, 1, 2)) for o in outs], axis=0)
    want_var = np.mean([o.var(axis=(0, 1, 2)) for o in outs], axis=0)
    count = warm_start.reestimate_bn_statistics(model, iter(batches), 3)
    assert count == sum(
        isinstance(layer, keras.layers.BatchNormalization)
        for layer in model.layers
    )
    bn = model.get_layer("stem_1_bn")
    mean = keras.ops.convert_to_numpy(bn.moving_mean)
    assert not model.get_layer("stem_1_bn").trainable  # frozen again
    variance = keras.ops.convert_to_numpy(bn.moving_variance)
    np.testing.assert_allclose(mean, want_mean, rtol=1e-4)
    np.testing.assert_allclose(variance, want_var, rtol=1e-4)
    assert bn.momentum == 0.997  # restored
    # A deeper layer moved too: every BN of the model, not the first only.
    last = keras.ops.convert_to_numpy(
        model.get_layer("stage4_block1_3_bn").moving_variance
    )
    assert np.abs(last - 1.0).max() > 1e-3
    with pytest.raises(ValueError, match="only 3 batches"):
        warm_start.reestimate_bn_statistics(model, iter(batches), 5)
    # Nothing changed when the data ran out.
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(bn.moving_mean), mean
    )

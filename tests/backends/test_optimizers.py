"""SGD with momentum in the original's form (TF1 `MomentumOptimizer`),
on every Keras backend (`make test` runs this folder under both)."""

import keras
import numpy as np
import pytest

from assemble_tf.training import optimizers


class _Rates(keras.optimizers.schedules.LearningRateSchedule):
    """0.1, 0.3, 0.05, ...: a rate that moves every step."""

    def __call__(self, step):
        rates = keras.ops.convert_to_tensor([0.1, 0.3, 0.05, 0.2])
        return keras.ops.take(rates, keras.ops.minimum(step, 3))

    def get_config(self):
        return {}


def _steps(optimizer, grads):
    w = keras.Variable(np.array([1.0, -2.0], np.float32))
    optimizer.build([w])
    for g in grads:
        optimizer.apply([keras.ops.convert_to_tensor(g)], [w])
    return keras.ops.convert_to_numpy(w.value)


def test_updates_are_tf1_momentum_with_the_current_rate():
    """a <- 0.9 a + g; w <- w - lr_t a, by hand (spec 8.1: tf.train.
    MomentumOptimizer); Keras' SGD (v <- 0.9 v - lr_t g; w <- w + v)
    gives other weights as soon as the rate moves."""
    grads = [np.array([1.0, 0.5]), np.array([-2.0, 1.0]), np.array([0.5, 3])]
    w, a = np.array([1.0, -2.0]), np.zeros(2)
    for lr, g in zip([0.1, 0.3, 0.05], grads, strict=True):
        a = 0.9 * a + g
        w = w - lr * a
    got = _steps(optimizers.MomentumSGD(_Rates(), momentum=0.9), grads)
    np.testing.assert_allclose(got, w, rtol=1e-6)
    np.testing.assert_allclose(got, [1.2545, -2.70025], rtol=1e-6)
    keras_sgd = _steps(keras.optimizers.SGD(_Rates(), momentum=0.9), grads)
    assert np.abs(keras_sgd - w).max() > 0.05
    # At a constant rate the two forms agree.
    np.testing.assert_allclose(
        _steps(optimizers.MomentumSGD(0.1, momentum=0.9), grads),
        _steps(keras.optimizers.SGD(0.1, momentum=0.9), grads),
        rtol=1e-6,
    )
    # Momentum 0: plain SGD, no slot variables.
    plain = optimizers.MomentumSGD(0.1, momentum=0.0)
    np.testing.assert_allclose(
        _steps(plain, grads), [1.0, -2.0] - 0.1 * np.sum(grads, 0), rtol=1e-6
    )
    assert len(plain.variables) == 2  # iterations and the learning rate


def test_config_round_trip_and_bad_momentum():
    optimizer = optimizers.MomentumSGD(0.2, momentum=0.8)
    again = optimizers.MomentumSGD.from_config(optimizer.get_config())
    assert again.momentum == 0.8
    assert float(again.learning_rate) == pytest.approx(0.2)
    assert (
        keras.saving.get_registered_object("assemble_tf>MomentumSGD")
        is optimizers.MomentumSGD
    )
    with pytest.raises(ValueError, match="momentum=1.0"):
        optimizers.MomentumSGD(0.1, momentum=1.0)
    with pytest.raises(ValueError, match="optimizer='adam'"):
        optimizers.make_optimizer("adam", 0.1, 0.9)
    assert isinstance(
        optimizers.make_optimizer("keras_sgd", 0.1, 0.9), keras.optimizers.SGD
    )


def test_a_run_trains_with_the_option_s_optimizer(tmp_path):
    """New runs: the original's form; `optimizer=keras_sgd`: Keras' SGD
    (what runs written before the option trained with)."""
    from assemble_tf import config as config_lib
    from assemble_tf.training import step_lib

    def parts(**train):
        config = config_lib.make_config(
            str(tmp_path),
            "resnet50",
            {
                "model": {"base_width": 8, "block_sizes": "1,1,1,1"},
                "data": {"synthetic": True, "num_classes": 3},
                "train": {"momentum": 0.8, **train},
            },
        )
        return step_lib.build_parts(config, step_lib.make_plan(config))

    new = parts().optimizer
    assert type(new) is optimizers.MomentumSGD and new.momentum == 0.8
    old = parts(optimizer="keras_sgd").optimizer
    assert type(old) is keras.optimizers.SGD and old.momentum == 0.8

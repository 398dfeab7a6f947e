"""SGD with momentum in the original's form.

Lee et al., "Compounding the Performance Improvements of Assembled
Techniques in a Convolutional Neural Network", https://arxiv.org/abs/2001.06268
(clovaai/assembled-cnn `nets/optimizer_setting.py`) train with TF1's
`tf.train.MomentumOptimizer(lr, momentum=0.9)`, which accumulates gradients
and scales the sum by the current learning rate:

    a <- momentum * a + g
    w <- w - lr_t * a

`keras.optimizers.SGD` puts the learning rate into its velocity instead
(`v <- momentum * v - lr_t * g; w <- w + v`): each past gradient keeps the
rate of its own step. The two agree while the rate is constant and differ
whenever it moves. For a constant gradient, 500 warm-up steps and a
cosine to step 1,000: Keras' steps are 0.53x the original's at step 1,
0.91x at step 100 and 1.19x at step 900, and its last step is 0.19 % of
the peak step where the original's is 0.001 % (189x). PyTorch's
`torch.optim.SGD` uses the original's form too. `MomentumSGD` is that
form on every Keras backend.
"""

import keras
from keras import ops

from assemble_tf.layers import common

# The `train.optimizer` values: this module's form, and Keras' own (what
# runs written before the field existed trained with).
MOMENTUM = "momentum"
KERAS_SGD = "keras_sgd"
OPTIMIZERS = (MOMENTUM, KERAS_SGD)


@keras.saving.register_keras_serializable(package="assemble_tf")
class MomentumSGD(keras.optimizers.Optimizer):
    """SGD with TF1 / PyTorch momentum: `a = momentum * a + g`,
    `w -= learning_rate * a` (no Nesterov, no dampening).

    Args:
        learning_rate: a float or a `LearningRateSchedule`.
        momentum: float in [0, 1). 0 is plain SGD.
        name: the optimizer's name.
        **kwargs: the base optimizer's arguments (`loss_scale_factor`, ...).
    """

    def __init__(
        self, learning_rate=0.01, momentum=0.9, name="momentum_sgd", **kwargs
    ):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.momentum = common.check_number(
            "momentum", momentum, 0.0, True, 1.0
        )

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        # "accumulator", as TF1 names the slot: not Keras SGD's "momentum"
        # (another quantity, `-lr * a` at a constant rate).
        self.accumulators = (
            self.add_optimizer_variables(variables, "accumulator")
            if self.momentum
            else []
        )

    def update_step(self, gradient, variable, learning_rate):
        learning_rate = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        if not self.momentum:
            self.assign_sub(variable, ops.multiply(gradient, learning_rate))
            return
        a = self.accumulators[self._get_variable_index(variable)]
        momentum = ops.cast(self.momentum, variable.dtype)
        self.assign(a, ops.add(ops.multiply(a, momentum), gradient))
        self.assign_sub(variable, ops.multiply(a, learning_rate))

    def get_config(self):
        config = super().get_config()
        config["momentum"] = self.momentum
        return config


def make_optimizer(kind, learning_rate, momentum):
    """The optimizer a run's `train.optimizer` names.

    Args:
        kind: `MOMENTUM` (`MomentumSGD`, the original's form) or
            `KERAS_SGD` (`keras.optimizers.SGD`, what runs written before
            the option existed trained with).
        learning_rate: a float or a `LearningRateSchedule`.
        momentum: the momentum.
    """
    if kind == MOMENTUM:
        return MomentumSGD(learning_rate=learning_rate, momentum=momentum)
    if kind == KERAS_SGD:
        return keras.optimizers.SGD(
            learning_rate=learning_rate, momentum=float(momentum)
        )
    raise ValueError(
        f"`optimizer` must be one of {OPTIMIZERS}. Received: optimizer={kind!r}"
    )

"""The JAX train step: one `jax.jit` of a stateless step, data parallel.

Under `KERAS_BACKEND=jax` the recipe of Lee et al. 2020
(https://arxiv.org/abs/2001.06268) trains as a pure function, the pattern of
Keras' own JAX trainer and of Flax / Orbit-style loops:

    (trainable, non_trainable, optimizer) state, uint8 batch, seed, step
        -> new state, loss, weight-decay loss

with `model.stateless_call` (BN statistics and DropBlock's random-generator
state come back as new non-trainable values), `jax.grad`, and
`optimizer.stateless_apply`; the state's buffers are donated, so a step
updates them in place. The batch post-processing and the loss are
`step_lib`'s, shared with the TensorFlow step; the DropBlock keep
probability is computed from the step inside the jitted function and fed
to the layers with `keep_prob_override`.

`train_loop` dispatches `n` steps asynchronously and adds their losses on
the device; nothing waits for the device until the `Trainer` reads the mean
loss, once per loop. Batches come from the same `tf.data` pipeline as
numpy, and are put on the devices one batch ahead.

Data parallel: `runtime.setup_runtime` sets a `keras.distribution.
DataParallel` over the local devices; variables are then replicated, every
batch is sharded along its first axis, and XLA inserts the gradient
all-reduce (GSPMD). Multi-host runs call `jax.distributed.initialize()`
first (docs/training.md).

Checkpoints: `checkpoints.KerasCheckpointManager` (`.weights.h5` for the
TensorFlow tools, `.state.npz` for an exact resume).
"""

import collections

import jax
import jax.numpy as jnp
import keras
import numpy as np

from assemble_tf.layers.drop_block import keep_prob_override
from assemble_tf.runs import checkpoints
from assemble_tf.training import step_lib

# The tf.data pipeline and the metrics are imported where they are used:
# the step itself (and the training benchmark) needs no TensorFlow.


class JaxStep:
    """The model, optimizer, checkpoints and steps under JAX.

    Args:
        config: `ExperimentConfig`.
        plan: `step_lib.Plan`.
        runtime: `runtime.JaxRuntime` (devices and the batch sharding).
    """

    backend = "jax"
    is_chief = True

    def __init__(self, config, plan, runtime):
        self.config = config
        self.plan = plan
        self.runtime = runtime
        self.strategy = None
        self.num_replicas = len(runtime.devices)
        self.parts = step_lib.build_parts(config, plan)
        model = self.model
        trainable = model.trainable_variables
        ids = {id(v): i for i, v in enumerate(trainable)}
        self._decayed_index = [
            ids[id(v)] for v in self.parts.decayed if id(v) in ids
        ]
        self.manager = checkpoints.KerasCheckpointManager(
            model,
            self.optimizer,
            f"{config.model_dir}/checkpoints",
            config.train.keep_checkpoints,
        )
        self._epoch = 0
        self._step = 0
        self.state = None  # set by the first train_loop
        self._jit_step = jax.jit(self._train_step, donate_argnums=(0,))
        self._jit_logits = jax.jit(self._logits)

    model = property(lambda self: self.parts.model)
    optimizer = property(lambda self: self.parts.optimizer)
    post = property(lambda self: self.parts.post)

    @property
    def step(self):
        return self._step

    @property
    def epoch(self):
        return self._epoch

    # The pure step --------------------------------------------------------

    def _train_step(self, state, images, batch, seed, step):
        trainable, non_trainable, opt_vars = state
        model, optimizer = self.model, self.optimizer
        layers = self.parts.dropblock_layers
        keep = self.plan.keep_prob(step) if self.plan.dropblock else 1.0

        def loss_fn(trainable):
            new_non_trainable = []

            def logits_fn(x):
                with keep_prob_override(layers, keep):
                    logits, values = model.stateless_call(
                        trainable, non_trainable, x, training=True
                    )
                new_non_trainable.extend(values)
                return logits

            decayed = [trainable[i] for i in self._decayed_index]
            total, wd = step_lib.step_loss(
                self.config,
                self.parts,
                images,
                batch,
                seed,
                logits_fn,
                decayed,
                1,
            )
            scaled = total
            if hasattr(optimizer, "scale_loss"):
                mapping = list(zip(optimizer.variables, opt_vars, strict=True))
                with keras.StatelessScope(state_mapping=mapping):
                    scaled = optimizer.scale_loss(total)
            return scaled, (total, wd, new_non_trainable)

        grads, (total, wd, non_trainable) = jax.grad(loss_fn, has_aux=True)(
            trainable
        )
        grads = step_lib.scale_gradients(grads, self.parts.lr_multipliers)
        trainable, opt_vars = optimizer.stateless_apply(
            opt_vars, grads, trainable
        )
        # The iterations count the steps run, a loss-scaled step skipped
        # for its non-finite gradients included (see `tf_step._one_step`):
        # the learning-rate schedule reads them.
        index = [
            i
            for i, v in enumerate(optimizer.variables)
            if v is optimizer.iterations
        ][0]
        opt_vars = list(opt_vars)
        opt_vars[index] = jnp.asarray(step + 1, opt_vars[index].dtype)
        return (trainable, non_trainable, opt_vars), total, wd

    def _logits(self, trainable, non_trainable, images):
        logits, _ = self.model.stateless_call(
            trainable, non_trainable, images, training=False
        )
        return logits

    # The loop -------------------------------------------------------------

    def _current_state(self):
        if self.state is None:
            self.state = (
                [v.value for v in self.model.trainable_variables],
                [v.value for v in self.model.non_trainable_variables],
                [v.value for v in self.optimizer.variables],
            )
        return self.state

    def train_loop(self, iterator, seed_base, num_steps):
        """Dispatches `num_steps` steps; returns the mean loss and the last
        weight-decay loss as device arrays (nothing here waits for them)."""
        state = self._current_state()
        total = jnp.zeros((), jnp.float32)
        wd = total
        base = np.uint32(int(seed_base) % 2**32)
        for _ in range(num_steps):
            images, batch = next(iterator)
            seed = np.array([base, self._step % 2**32], np.uint32)
            state, loss, wd = self._jit_step(
                state, images, batch, seed, np.int32(self._step)
            )
            total = total + loss
            self._step += 1
        self.state = state
        return total / num_steps, wd

    def train_function(self):
        """One step, `fn(iterator, seed_base) -> (loss, wd loss)` (for the
        benchmark: the same jitted step as `train_loop`)."""
        return lambda iterator, seed_base: self.train_loop(
            iterator, seed_base, 1
        )

    def sync(self):
        """Writes the device state back into the Keras variables (before an
        evaluation, a checkpoint or the end of training)."""
        if self.state is None:
            return
        trainable, non_trainable, opt_vars = self.state
        for group, values in (
            (self.model.trainable_variables, trainable),
            (self.model.non_trainable_variables, non_trainable),
            (self.optimizer.variables, opt_vars),
        ):
            for v, value in zip(group, values, strict=True):
                v.assign(value)
        # The next step donates the state's buffers, which the variables
        # now hold: it starts again from copies.
        self.state = None

    def keep_prob(self):
        """The DropBlock keep probability at the current step, or None."""
        if not self.parts.dropblock_layers:
            return None
        if not self.plan.dropblock:
            return 1.0
        return float(self.plan.keep_prob(self._step))

    # Data, evaluation, checkpoints ----------------------------------------

    def dataset(self, epoch, stats=None, skip_steps=0):
        """The train set of `epoch` as device batches, one ahead, after
        its first `skip_steps` steps."""
        from assemble_tf.data import input_pipeline
        from assemble_tf.runs import inputs

        cfg = inputs.input_config(self.config, True, epoch, skip_steps)
        if self.config.data.synthetic:
            ds = input_pipeline.build_synthetic_dataset(cfg)
        else:
            ds = input_pipeline.build_dataset(cfg, None, stats)
        return self._device_iterator(ds)

    def _device_iterator(self, dataset):
        sharding = self.runtime.batch_sharding
        queue = collections.deque()
        for images, batch in dataset.as_numpy_iterator():
            batch = step_lib.numeric_entries(batch)
            queue.append(jax.device_put((images, batch), sharding))
            if len(queue) > 1:
                yield queue.popleft()
        while queue:
            yield queue.popleft()

    def evaluate(self, dataset=None):
        """Top-1, top-5, ECE (10 bins) and loss over the whole split."""
        from assemble_tf.data import input_pipeline
        from assemble_tf.evaluation.evaluator import metrics_report
        from assemble_tf.evaluation.metrics import ClassificationMetrics
        from assemble_tf.runs import inputs

        stats = None
        if dataset is None:
            cfg = inputs.input_config(self.config, False)
            stats = input_pipeline.PipelineStats()
            dataset = input_pipeline.build_dataset(cfg, None, stats)
        self.sync()
        trainable = [v.value for v in self.model.trainable_variables]
        non_trainable = [v.value for v in self.model.non_trainable_variables]
        metrics = ClassificationMetrics(num_bins=10, top_k=5)
        with input_pipeline.reraise_data_errors():
            for images, batch in dataset.as_numpy_iterator():
                logits = self._jit_logits(trainable, non_trainable, images)
                metrics.update_state(
                    batch["labels"], np.asarray(logits, np.float32)
                )
        return metrics_report(metrics, stats)

    @property
    def latest_checkpoint(self):
        return self.manager.latest_checkpoint

    def restore(self):
        """Restores the latest checkpoint; returns its prefix or None."""
        latest = self.manager.latest_checkpoint
        if latest:
            self._epoch, step = self.manager.restore(latest)
            # The steps run: the optimizer's iterations lag behind them
            # where a loss-scaled (mixed_float16) step was skipped, and a
            # resume from them ran the schedules a step behind.
            if step is None:  # a checkpoint written before steps were kept
                step = int(np.asarray(self.optimizer.iterations.value))
            self._step = step
            self.state = None
        return latest

    def incomplete_checkpoint(self, restored):
        """A checkpoint newer than `restored` with one of its two files
        only, or None."""
        return checkpoints.newer_incomplete_keras_checkpoint(
            self.manager.directory, restored
        )

    def repair_weights(self, prefix):
        """Rewrites the restored checkpoint's `.weights.h5` where it cannot
        be opened; returns why, or None."""
        return self.manager.repair_weights(prefix)

    def save(self, epoch):
        """Writes the checkpoint of `epoch` (done); returns its prefix."""
        self.sync()
        self._epoch = epoch
        return self.manager.save(epoch, epoch, step=self._step)

    @property
    def checkpoint_dir(self):
        return self.manager.directory

    @property
    def graceful_termination(self):
        """Whether SIGTERM may stop this process alone after a save (not
        across JAX processes, which step together)."""
        return jax.process_count() == 1

    def _preempted_manager(self):
        return checkpoints.KerasCheckpointManager(
            self.model,
            self.optimizer,
            checkpoints.preempted_dir(self.manager.directory),
            3,  # pruned by the controller (`checkpoints.prune_preempted`)
        )

    def save_preempted(self, number):
        """Writes the mid-epoch checkpoint `number` (the epochs done and
        the steps run with it); returns its prefix."""
        self.sync()
        return self._preempted_manager().save(
            number, self._epoch, step=self._step
        )

    def restore_preempted(self, prefix):
        """Restores the mid-epoch checkpoint `prefix`."""
        self._epoch, self._step = self._preempted_manager().restore(prefix)
        self.state = None

    def set_epoch(self, epoch):
        self._epoch = epoch

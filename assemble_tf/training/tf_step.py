"""The TensorFlow train step: any tf.distribute strategy, loops on device.

A `strategy.run` step in the shape of TF Model Garden's and the authors'
tf2.1 branch (Keras 3.15's `model.fit` fails under
MultiWorkerMirroredStrategy, keras-team/keras#20585), driven by the
backend-neutral `Trainer` (Lee et al. 2020,
https://arxiv.org/abs/2001.06268). Per replica: normalize and mix the uint8
batch, run the model, `step_lib.step_loss` (scaled so that the optimizer's
cross-replica gradient sum is the global mean: Keras 3 optimizers
all-reduce-sum gradients), loss scaling under mixed_float16, the DropBlock
keep probability from the step counter.

`train_loop` runs `n` steps inside one `tf.function` (a `tf.while_loop`, as
Orbit's `StandardTrainer`) and returns the mean loss: the host reads it once
per loop. Every function here is traced without autograph, as Keras traces
its own train step: the step is backend-neutral code (no tensor-valued
Python control flow) and converting it costs seconds per trace.

`jit_compile` (off by default) XLA-compiles the per-replica step: the batch
is taken from the iterator and the DropBlock schedule set in a plain
`tf.function` around `strategy.run` (XLA has no `IteratorGetNext`). With one
replica the optimizer update is compiled too; with several it runs after
the compiled forward / backward pass, since its cross-replica gradient sum
cannot run in a nested `tf.function`. On CPU XLA makes the step ~2.6-2.8x
slower (Keras' own step alike): it is for GPUs and TPUs.

Checkpoints are a `tf.train.CheckpointManager` (model, optimizer, epoch).
"""

import os

import tensorflow as tf

from assemble_tf.data import input_pipeline
from assemble_tf.evaluation.evaluator import Evaluator
from assemble_tf.layers import batch_norm_layers
from assemble_tf.runs import checkpoints, inputs
from assemble_tf.runs.warm_start import is_rng_state
from assemble_tf.training import step_lib


class TFStep:
    """The model, optimizer, checkpoints and steps under TensorFlow.

    Args:
        config: `ExperimentConfig`.
        plan: `step_lib.Plan`.
        strategy: a `tf.distribute.Strategy` (from `setup_runtime`).
    """

    backend = "tensorflow"

    def __init__(self, config, plan, strategy):
        self.config = config
        self.plan = plan
        self.strategy = strategy
        self.num_replicas = strategy.num_replicas_in_sync
        with strategy.scope():
            # Slots are built inside the scope, before the first
            # tf.function call (Keras 3 + strategy requirement).
            self.parts = step_lib.build_parts(config, plan)
            self.epoch_variable = tf.Variable(0, dtype=tf.int64)
            self.evaluator = Evaluator(self.model, strategy)
        # The model's random-generator states (DropBlock's SeedGenerator)
        # are Keras variables that tf.train.Checkpoint does not reach
        # through the model: a resumed run drew other DropBlock masks than
        # an uninterrupted one (the JAX state.npz always held them).
        # Restores read them where present: older checkpoints lack them.
        self._rng = [v.value for v in self.model.variables if is_rng_state(v)]
        self.checkpoint = tf.train.Checkpoint(
            model=self.model,
            optimizer=self.optimizer,
            epoch=self.epoch_variable,
            rng=self._rng,
        )
        # Every worker saves (the save is collective under multi-worker);
        # only the chief writes into model_dir, the others to a scratch dir.
        self.is_chief, ckpt_dir = checkpoints.chief_and_dir(
            strategy, config.model_dir
        )
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, ckpt_dir, max_to_keep=config.train.keep_checkpoints
        )
        self._step_fn = None
        self._loop_fn = None
        self._xla = None  # the XLA replica step, built on first use
        self._average_fn = None  # `sync`'s, built on first use

    model = property(lambda self: self.parts.model)
    optimizer = property(lambda self: self.parts.optimizer)
    post = property(lambda self: self.parts.post)

    @property
    def step(self):
        return int(self.optimizer.iterations.numpy())

    @property
    def epoch(self):
        return int(self.epoch_variable.numpy())

    # Steps ---------------------------------------------------------------

    def _replica_gradients(self, images, batch, seed):
        """One replica's forward pass, loss and gradients.

        Returns:
            (gradients of the trainable variables, scaled under
            mixed_float16 and by their learning-rate multipliers; the
            replica's share of the loss; its share of the weight decay).
        """
        parts = self.parts
        with tf.GradientTape() as tape:
            total, wd = step_lib.step_loss(
                self.config,
                parts,
                images,
                batch,
                self._replica_seed(seed),
                lambda x: self.model(x, training=True),
                parts.decayed,
                self.num_replicas,
            )
            scaled = (
                self.optimizer.scale_loss(total)
                if hasattr(self.optimizer, "scale_loss")
                else total
            )
        grads = tape.gradient(scaled, self.model.trainable_variables)
        return step_lib.scale_gradients(grads, parts.lr_multipliers), total, wd

    def _replica_seed(self, seed):
        """This replica's seed, [seed_base, step * replicas + replica]:
        each replica mixes its share of the batch with its own draws
        (before: every replica drew the same Mixup / CutMix lambdas and
        boxes, so 8 GPUs drew an eighth of the distinct ones a global batch
        needs; the JAX step draws for the whole global batch). One
        replica's is the step's seed itself."""
        if self.num_replicas == 1:
            return seed
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        return tf.stack(
            [
                seed[0],
                seed[1] * self.num_replicas + tf.cast(replica, seed.dtype),
            ]
        )

    def _replica_train_step(self, images, batch, seed):
        """One replica's step: gradients, then the optimizer update (which
        sums the gradients across replicas)."""
        grads, total, wd = self._replica_gradients(images, batch, seed)
        self.optimizer.apply(grads, self.model.trainable_variables)
        return total, wd

    def _xla_replica_step(self):
        """`_replica_train_step` with its computation compiled by XLA.

        With one replica the whole step (optimizer update included) is one
        XLA computation. With several, the update sums the gradients across
        replicas through a `merge_call`, which cannot run inside a nested
        `tf.function`: XLA computes the gradients, the update runs outside.
        """
        whole = self.num_replicas == 1
        compiled = tf.function(
            self._replica_train_step if whole else self._replica_gradients,
            jit_compile=True,
            autograph=False,
        )

        def step(images, batch, seed):
            # XLA takes no strings (the batch's filenames).
            batch = {k: v for k, v in batch.items() if v.dtype != tf.string}
            if whole:
                return compiled(images, batch, seed)
            grads, total, wd = compiled(images, batch, seed)
            self.optimizer.apply(grads, self.model.trainable_variables)
            return total, wd

        return step

    def _one_step(self, iterator, seed_base):
        """Traced body of one global step: (loss, wd loss)."""
        replica_step = self._replica_train_step
        if self.config.train.jit_compile:
            if self._xla is None:
                self._xla = self._xla_replica_step()
            replica_step = self._xla
        images, batch = next(iterator)
        step = tf.cast(self.optimizer.iterations, tf.int64)
        if self.plan.dropblock and self.parts.dropblock_layers:
            keep = self.plan.keep_prob(step)
            for layer in self.parts.dropblock_layers:
                layer.keep_prob_variable.assign(keep)
        seed = tf.stack([seed_base, step])
        total, wd = self.strategy.run(replica_step, args=(images, batch, seed))
        # The iterations count the steps run, a loss-scaled step skipped
        # for its non-finite gradients included (as the original's global
        # step under its static loss scale): Keras' LossScaleOptimizer does
        # not advance them there, and the trainer's step, the schedules and
        # the per-step seed fell a step behind the batches per skip (a
        # mixed_float16 resume trained a batch twice).
        self.optimizer.iterations.assign(
            tf.cast(step + 1, self.optimizer.iterations.dtype)
        )
        return (
            self.strategy.reduce("SUM", total, axis=None),
            self.strategy.reduce("SUM", wd, axis=None),
        )

    def train_function(self):
        """One compiled step, `fn(iterator, seed_base) -> (loss, wd loss)`.

        `iterator` yields the distributed `(uint8 images, batch dict)` of
        `dataset`; `seed_base` is an int64 scalar (the per-step seed is
        `[seed_base, step]`).
        """
        if self._step_fn is None:
            self._step_fn = tf.function(
                self._one_step, jit_compile=False, autograph=False
            )
        return self._step_fn

    def train_loop(self, iterator, seed_base, num_steps):
        """Runs `num_steps` steps in one `tf.function`; returns the mean
        loss over them and the last weight-decay loss (device tensors)."""
        if self._loop_fn is None:

            def loop(iterator, seed_base, num_steps):
                def body(i, total, wd):
                    loss, wd = self._one_step(iterator, seed_base)
                    return i + 1, total + loss, wd

                zero = tf.constant(0.0, tf.float32)
                _, total, wd = tf.while_loop(
                    lambda i, *_: i < num_steps,
                    body,
                    (tf.constant(0, tf.int32), zero, zero),
                )
                return total / tf.cast(num_steps, tf.float32), wd

            # No autograph, as Keras' own train step: the step is written
            # for every backend (no tensor-valued Python control flow), and
            # converting it costs seconds of every trace.
            self._loop_fn = tf.function(
                loop, jit_compile=False, autograph=False
            )
        return self._loop_fn(
            iterator,
            tf.constant(seed_base, tf.int64),
            tf.constant(num_steps, tf.int32),
        )

    def keep_prob(self):
        """The DropBlock keep probability at the current step (the
        schedule's value after the steps done, as the JAX step reports it;
        the layers hold the last step's), or None without layers."""
        layers = self.parts.dropblock_layers
        if not layers:
            return None
        if not self.plan.dropblock:
            return float(layers[0].keep_prob_variable.numpy())
        return float(self.plan.keep_prob(self.step))

    def sync(self):
        """Averages the BatchNorm moving statistics over the replicas
        (before an evaluation, a checkpoint or the end of training).

        Each replica normalizes with its own batch's moments and updates
        its own copy of the moving statistics (Keras' BatchNormalization
        variables aggregate nothing): the copies drifted apart, a
        checkpoint kept replica 0's, and the evaluation of each epoch
        (each replica with its copy) described no saved model, nor did
        the best-kept ones. The moving averages are linear in the batch
        moments, so their mean over replicas at the end equals averaging
        the moments at every step, without a collective per step.
        """
        if self.num_replicas < 2:
            return
        if self._average_fn is None:
            stats = [
                v
                for layer in batch_norm_layers(self.model)
                for v in (layer.moving_mean, layer.moving_variance)
            ]

            def average():
                context = tf.distribute.get_replica_context()
                means = context.all_reduce(
                    tf.distribute.ReduceOp.MEAN,
                    [tf.identity(v.value) for v in stats],
                )
                for v, mean in zip(stats, means, strict=True):
                    v.assign(mean)  # this replica's copy

            self._average_fn = (
                tf.function(lambda: self.strategy.run(average), autograph=False)
                if stats
                else lambda: None
            )
        self._average_fn()

    # Data, evaluation, checkpoints ----------------------------------------

    def dataset(self, epoch, stats=None, skip_steps=0):
        """The distributed train set of `epoch` (counted into `stats`),
        after its first `skip_steps` steps."""
        cfg = inputs.input_config(self.config, True, epoch, skip_steps)
        if self.config.data.synthetic:
            return self.strategy.distribute_datasets_from_function(
                lambda ctx: input_pipeline.build_synthetic_dataset(cfg, ctx)
            )
        return self.strategy.distribute_datasets_from_function(
            lambda ctx: input_pipeline.build_dataset(cfg, ctx, stats)
        )

    def evaluate(self, dataset=None):
        """Top-1, top-5, ECE (10 bins) and loss over the whole split."""
        if dataset is not None:
            return self.evaluator.evaluate(dataset)
        stats = input_pipeline.PipelineStats()
        dataset = self.evaluator.dataset(
            inputs.input_config(self.config, False), stats
        )
        return self.evaluator.evaluate(dataset, stats=stats)

    @property
    def latest_checkpoint(self):
        return self.manager.latest_checkpoint

    def restore(self):
        """Restores the newest checkpoint whose files are there (the
        `checkpoint` state file may list one whose files were deleted);
        returns its prefix or None.

        Raises:
            ValueError: the state file lists checkpoints, none of whose
                files are there.
        """
        listed = self.manager.checkpoints
        if not listed:
            # The state file is gone (deleted, or not copied with the
            # run): the newest checkpoint in the folder (before: the run
            # trained over them from the start). Those stay unlisted: the
            # manager prunes the ones it saves from here.
            latest = checkpoints.latest_tf_checkpoint(self.manager.directory)
            listed = [latest] if latest else []
        if not listed:
            return None
        present = [p for p in listed if tf.io.gfile.exists(p + ".index")]
        if not present:
            folder = self.manager.directory
            names = ", ".join(os.path.basename(p) for p in listed)
            raise ValueError(
                f"{os.path.join(folder, 'checkpoint')} lists {names}, but "
                "their files are missing: restore them from a copy, or "
                f"delete {folder} to train from the start."
            )
        latest = present[-1]
        self._restore(latest)
        return latest

    def _restore(self, prefix):
        """The model, optimizer and epoch (all required), then the random
        generator states where the checkpoint has them (partial: the first
        restore leaves them to the second, which TensorFlow warned about,
        one line per state, on every resume)."""
        tf.train.Checkpoint(
            model=self.model,
            optimizer=self.optimizer,
            epoch=self.epoch_variable,
        ).restore(prefix).assert_existing_objects_matched().expect_partial()
        if self._rng:
            tf.train.Checkpoint(rng=self._rng).restore(prefix).expect_partial()

    def save(self, epoch):
        """Writes the checkpoint of `epoch` (done); returns its prefix."""
        self.epoch_variable.assign(epoch)
        return self.manager.save(checkpoint_number=epoch)

    @property
    def checkpoint_dir(self):
        return self.manager.directory

    @property
    def graceful_termination(self):
        """Whether SIGTERM may stop this process alone after a save (not
        under a multi-worker strategy, where the save is collective)."""
        extended = self.strategy.extended
        return (
            self.is_chief
            and not getattr(extended, "_in_multi_worker_mode", lambda: False)()
        )

    def save_preempted(self, number):
        """Writes the mid-epoch checkpoint `number` (the epochs done and
        the steps run with it); returns its prefix."""
        # The one before stays until progress.json names the new one
        # (`checkpoints.prune_preempted`): a kill in between left a
        # progress.json naming a deleted checkpoint.
        manager = tf.train.CheckpointManager(
            self.checkpoint,
            checkpoints.preempted_dir(self.manager.directory),
            max_to_keep=None,  # (its state file lists pruned ones)
        )
        return manager.save(checkpoint_number=number)

    def restore_preempted(self, prefix):
        """Restores the mid-epoch checkpoint `prefix`."""
        self._restore(prefix)

    def incomplete_checkpoint(self, restored):
        """A checkpoint newer than `restored` whose save was cut short (its
        temporary folder, or data without an index), or None."""
        return checkpoints.newer_incomplete_tf_checkpoint(
            self.manager.directory, restored
        )

    @staticmethod
    def repair_weights(prefix):
        """None: a TensorFlow checkpoint is one set of files, which the
        restore has read whole."""
        del prefix
        return None

    def set_epoch(self, epoch):
        self.epoch_variable.assign(epoch)

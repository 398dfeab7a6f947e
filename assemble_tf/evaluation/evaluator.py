"""Evaluation over a whole validation split: top-1, top-5, loss, ECE.

Shared by the training loop (periodic validation) and `tools.evaluate`.
Every image counts: the eval pipeline keeps the last partial batch (the
tf2.1 branch of clovaai/assembled-cnn dropped it).
"""

import tensorflow as tf

from assemble_tf.data import input_pipeline
from assemble_tf.evaluation.metrics import ClassificationMetrics
from official.utils.misc import interrupts


class Evaluator:
    """Runs `model` over a dataset under `strategy` and reports metrics.

    Create it inside `strategy.scope()` (the metric state is per replica).

    Args:
        model: a Keras classifier returning logits.
        strategy: the `tf.distribute.Strategy` the model lives in.
        per_class: also count images and top-1 per class (the result's
            "per_class": {"images": [...], "top1": [...]}).
    """

    def __init__(self, model, strategy, per_class=False):
        self.model = model
        self.strategy = strategy
        width = int(model.outputs[0].shape[-1]) if per_class else None
        self.metrics = ClassificationMetrics(
            num_bins=10, top_k=5, num_classes=width
        )
        self._fn = None

    def _make_fn(self):
        def update(images, labels):
            logits = self.model(images, training=False)
            self.metrics.update_state(labels, logits)
            return tf.constant(True)

        if isinstance(self.strategy, tf.distribute.TPUStrategy):
            # XLA on TPUs compiles static shapes: as before.
            return tf.function(
                lambda images, batch: self.strategy.run(
                    update, args=(images, batch["labels"])
                ),
                autograph=False,
                reduce_retracing=True,
            )

        def replica_eval(images, labels):
            # A replica gets no image of a last batch shorter than the
            # replicas, or of a split smaller than a replica's share of
            # the batch (17 images at --eval_batch_size=100 on 2 GPUs):
            # traced with a batch of unknown size and skipped when empty.
            # Before: the model traced on a batch of 0 failed ("Shape must
            # be rank 1 but is rank 2 ... [0,1,1,256], [0,256]") after the
            # epoch had trained, and oneDNN failed on one at run time.
            images = tf.compat.v1.placeholder_with_default(
                images, [None, *images.shape[1:]]
            )
            tf.cond(
                tf.size(labels) > 0,
                lambda: update(images, labels),
                lambda: tf.constant(False),
            )

        def eval_fn(images, batch):
            self.strategy.run(replica_eval, args=(images, batch["labels"]))

        # No autograph (as Keras' own steps); one trace for every batch
        # size (the last, partial batch would trace the model again).
        return tf.function(eval_fn, autograph=False, reduce_retracing=True)

    def dataset(self, input_config, stats=None):
        """The distributed eval set (its records counted into `stats`, an
        `input_pipeline.PipelineStats`)."""
        return self.strategy.distribute_datasets_from_function(
            lambda ctx: input_pipeline.build_dataset(input_config, ctx, stats)
        )

    def evaluate(self, dataset, progress=None, stats=None):
        """Returns top1, top5, ece, loss, count and the reliability bins
        (and `skipped`, the unusable records, with the dataset's `stats`:
        this worker's, where several workers read a shard each; `count`
        is over all of them).
        """
        if self._fn is None:
            self._fn = self._make_fn()
        self.metrics.reset()
        with input_pipeline.reraise_data_errors():
            for images, batch in dataset:
                interrupts.check()  # a Ctrl-C or SIGTERM swallowed on its way
                self._fn(images, batch)
                if progress is not None:
                    progress.update(1)
        return metrics_report(self.metrics, stats)


def metrics_report(metrics, stats=None):
    """The dict of a finished evaluation: top1, top5, ece, loss, count and
    the reliability bins of `metrics` (a `ClassificationMetrics`); with
    the pass's `input_pipeline.PipelineStats`, also `skipped`: the records
    read and not counted (not images, not decodable, labels out of
    range).

    Raises:
        DataError: no example was counted.
    """
    result = metrics.result()
    if not result.get("count"):
        raise input_pipeline.DataOptionError(
            "data_dir",
            "The evaluation split yielded no usable image (every record "
            "was skipped, or the split is empty); check {field} and "
            "{validation_pattern} (or {validation_split}).",
            ["validation_pattern", "validation_split"],
        )
    if stats is not None:
        result["skipped"] = stats.skipped
    count, confidence, accuracy = metrics.bins()
    result["reliability"] = {
        "count": count.tolist(),
        "confidence": confidence.tolist(),
        "accuracy": accuracy.tolist(),
    }
    if metrics.num_classes is not None:
        images, top1 = metrics.per_class()
        result["per_class"] = {
            "images": images.tolist(),
            "top1": [None if x != x else float(x) for x in top1],
        }
    return result

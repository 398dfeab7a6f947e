"""Agreement of a reduced-precision model with its float32 self.

bfloat16 serving (`tools.export_saved_model` with precision bfloat16) moves
the logits a little; `tools.evaluate` with precision bfloat16 measures how much
on a labelled split, running both precisions on the same batches. With
float32 logits a_i and bfloat16 logits b_i of image i (N images):

* top-1 of each precision, as `ClassificationMetrics` counts it;
* top-1 delta: 100 * (top-1 bfloat16 - top-1 float32), in points;
* top-1 agreement: the fraction of images with argmax b_i == argmax a_i,
  labels aside (ties go to the smaller class index, as in `metrics`);
* mean relative logit L2: the mean over images of ||b_i - a_i|| / ||a_i||
  (0 for an image whose two logit vectors are equal, infinite for one
  whose float32 logits are all zero and whose bfloat16 ones are not).

`AgreementMetrics` streams the last two (under a `tf.distribute` strategy
as `ClassificationMetrics` does), `AgreementEvaluator` runs both models over
a dataset, and `precision_agreement` computes the whole report from arrays.
"""

import numpy as np
import tensorflow as tf

from assemble_tf.evaluation.evaluator import Evaluator
from assemble_tf.evaluation.metrics import ClassificationMetrics, topk_accuracy

_ACC_DTYPE = tf.float64


def _first_argmax(logits):
    """Argmax with ties to the smaller index (tf.argmax leaves them open)."""
    num_classes = logits.shape[-1]
    ids = tf.range(num_classes, dtype=tf.int32)[tf.newaxis, :]
    top = tf.reduce_max(logits, axis=-1, keepdims=True)
    return tf.reduce_min(
        tf.where(tf.equal(logits, top), ids, num_classes), axis=-1
    )


def _relative_l2(reference, logits):
    diff = tf.norm(logits - reference, axis=-1)
    return tf.where(
        tf.equal(diff, 0.0),
        tf.zeros_like(diff),
        diff / tf.norm(reference, axis=-1),
    )


class AgreementMetrics:
    """Streaming top-1 agreement and mean relative logit L2 of two models.

    Created, updated, read and reset as `ClassificationMetrics` (replica
    context for `update_state`, cross-replica for the rest).

    Args:
        name: prefix of the variable names.
    """

    def __init__(self, name="agreement_metrics"):
        def make(var_name):
            return tf.Variable(
                tf.zeros((), _ACC_DTYPE),
                trainable=False,
                name=f"{name}/{var_name}",
                synchronization=tf.VariableSynchronization.ON_READ,
                aggregation=tf.VariableAggregation.SUM,
            )

        self._count = make("count")
        self._same_top1 = make("same_top1")
        self._relative_l2_sum = make("relative_l2_sum")

    @property
    def variables(self):
        return [self._count, self._same_top1, self._relative_l2_sum]

    def update_state(self, reference_logits, logits):
        """Adds one batch.

        Args:
            reference_logits: [B, K] float logits of the reference
                (float32) model.
            logits: [B, K] float logits of the other model, same images.

        Raises:
            ValueError: the two shapes differ or are not [B, K].
        """
        reference = tf.cast(reference_logits, _ACC_DTYPE)
        logits = tf.cast(logits, _ACC_DTYPE)
        if reference.shape.rank != 2 or not reference.shape.is_compatible_with(
            logits.shape
        ):
            raise ValueError(
                "Expected two [B, K] logit tensors of one shape, got "
                f"{reference.shape} and {logits.shape}."
            )
        same = tf.equal(_first_argmax(reference), _first_argmax(logits))
        self._count.assign_add(tf.cast(tf.shape(reference)[0], _ACC_DTYPE))
        self._same_top1.assign_add(tf.reduce_sum(tf.cast(same, _ACC_DTYPE)))
        self._relative_l2_sum.assign_add(
            tf.reduce_sum(_relative_l2(reference, logits))
        )

    def reset(self):
        for variable in self.variables:
            variable.assign(tf.zeros_like(variable.read_value()))

    def result(self):
        """{"top1_agreement", "mean_relative_logit_l2", "count"} so far
        (NaN with no image)."""
        count, same, rel = (
            float(np.asarray(tf.convert_to_tensor(v.read_value())))
            for v in self.variables
        )
        nan = float("nan")
        return {
            "top1_agreement": same / count if count else nan,
            "mean_relative_logit_l2": rel / count if count else nan,
            "count": int(round(count)),
        }


def summarize(top1, top1_float32, agreement, precision="bfloat16"):
    """The agreement report.

    Args:
        top1: top-1 accuracy (fraction) of the reduced-precision model.
        top1_float32: top-1 accuracy of the float32 model.
        agreement: `AgreementMetrics.result()`.
        precision: the reduced precision's name (a key suffix).

    Returns:
        {f"top1_{precision}", "top1_float32", "top1_delta_points",
        "top1_agreement", "mean_relative_logit_l2", "count"}.
    """
    return {
        f"top1_{precision}": top1,
        "top1_float32": top1_float32,
        "top1_delta_points": 100.0 * (top1 - top1_float32),
        "top1_agreement": agreement["top1_agreement"],
        "mean_relative_logit_l2": agreement["mean_relative_logit_l2"],
        "count": agreement["count"],
    }


def precision_agreement(labels, reference_logits, logits, precision="bfloat16"):
    """The agreement report from whole arrays (numpy, float64).

    Args:
        labels: [N] integer labels.
        reference_logits: [N, K] float32 logits.
        logits: [N, K] logits of the reduced-precision model.
        precision: the reduced precision's name (a key suffix).

    Returns:
        As `summarize`.
    """
    ref = np.asarray(reference_logits, np.float64)
    got = np.asarray(logits, np.float64)
    if ref.shape != got.shape or ref.ndim != 2:
        raise ValueError(
            "Expected two [N, K] logit arrays of one shape, got "
            f"{ref.shape} and {got.shape}."
        )
    diff = np.linalg.norm(got - ref, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(diff == 0, 0.0, diff / np.linalg.norm(ref, axis=-1))
    agreement = {
        # np.argmax takes the first of tied maxima, as `_first_argmax`.
        "top1_agreement": float(np.mean(ref.argmax(-1) == got.argmax(-1))),
        "mean_relative_logit_l2": float(rel.mean()),
        "count": len(ref),
    }
    return summarize(
        topk_accuracy(got, labels, 1),
        topk_accuracy(ref, labels, 1),
        agreement,
        precision,
    )


class AgreementEvaluator(Evaluator):
    """Evaluates `model` and its float32 `reference` on the same batches.

    `evaluate` returns `Evaluator.evaluate`'s result for `model` (top1,
    top5, ece, loss, count, reliability) plus "float32" (the reference's
    top1, top5, ece, loss, count) and "agreement" (`summarize`).

    Args:
        model: the reduced-precision classifier (e.g. computing in
            bfloat16).
        reference: the same classifier in float32.
        strategy: the `tf.distribute.Strategy` both live in (create the
            evaluator inside its scope).
        precision: the name of `model`'s precision (a report key suffix).
        per_class: count `model`'s images and top-1 per class.
    """

    def __init__(
        self,
        model,
        reference,
        strategy,
        precision="bfloat16",
        per_class=False,
    ):
        super().__init__(model, strategy, per_class)
        self.reference = reference
        self.precision = precision
        self.reference_metrics = ClassificationMetrics(
            num_bins=10, top_k=5, name="reference_metrics"
        )
        self.agreement = AgreementMetrics()

    def _make_fn(self):
        def replica_eval(images, labels):
            logits = self.model(images, training=False)
            reference = self.reference(images, training=False)
            self.metrics.update_state(labels, logits)
            self.reference_metrics.update_state(labels, reference)
            self.agreement.update_state(reference, logits)

        def eval_fn(images, batch):
            self.strategy.run(replica_eval, args=(images, batch["labels"]))

        return tf.function(eval_fn, autograph=False, reduce_retracing=True)

    def evaluate(self, dataset, progress=None, stats=None):
        self.reference_metrics.reset()
        self.agreement.reset()
        result = super().evaluate(dataset, progress, stats)
        result["float32"] = self.reference_metrics.result()
        result["agreement"] = summarize(
            result["top1"],
            result["float32"]["top1"],
            self.agreement.result(),
            self.precision,
        )
        return result


def agreement_markdown(result, precision="bfloat16"):
    """A markdown report of `AgreementEvaluator.evaluate`'s result."""
    a, ref = result["agreement"], result["float32"]
    lines = [
        f"| metric | float32 | {precision} |",
        "|---|---|---|",
    ]
    for key, name in (("top1", "top-1"), ("top5", "top-5"), ("ece", "ECE")):
        if key in result and key in ref:
            lines.append(f"| {name} | {ref[key]:.4f} | {result[key]:.4f} |")
    lines += [
        "",
        "| agreement | value |",
        "|---|---|",
        f"| top-1 delta (points) | {a['top1_delta_points']:+.2f} |",
        f"| top-1 agreement | {a['top1_agreement']:.4f} |",
        f"| mean relative logit L2 | {a['mean_relative_logit_l2']:.4f} |",
        f"| images | {a['count']} |",
    ]
    return "\n".join(lines) + "\n"

"""Classification metrics: top-1 / top-k accuracy, cross-entropy and ECE.

`ClassificationMetrics` is a streaming accumulator for a custom TensorFlow
training or evaluation loop. Its state is a handful of `tf.Variable`s
created with `synchronization=ON_READ` and `aggregation=SUM` (the way Keras
metrics keep their state): under a `tf.distribute` strategy each replica
adds into its own copy inside `strategy.run`, and reading the variables in
cross-replica context sums over the replicas. The same object works without
any strategy and inside `tf.function`.

Calibration is measured by the expected calibration error of Guo et al.
2017, "On Calibration of Modern Neural Networks"
(https://arxiv.org/abs/1706.04599): the confidence of an example is its
largest softmax probability, examples are put into `num_bins` equal-width
confidence bins over [0, 1], and

    ECE = sum_b |acc_b - conf_b| * n_b / N,

with acc_b and conf_b the accuracy and mean confidence of bin b. Bin i
covers (i / num_bins, (i + 1) / num_bins]; the first bin also holds 0. The
Assemble-ResNet paper (Lee et al. 2020, https://arxiv.org/abs/2001.06268)
reports ECE with 10 bins, as computed by `metric/ece_metric.py` of the
original repository https://github.com/clovaai/assembled-cnn; this module is
an independent implementation of the same definition.

The numpy functions at the end (`topk_accuracy`, `calibration_bins`,
`expected_calibration_error`, `calibration_error_from_bins`) compute the
same numbers from whole arrays, for cross-checking and offline analysis.

Ties: an example is top-k correct when fewer than k classes rank ahead of
its label, where a class ranks ahead if its logit is larger, or equal with a
smaller class index (the order of a stable sort by decreasing logit). Top-1
correctness is also the "correct" used by ECE.
"""

import numpy as np
import tensorflow as tf

from official.utils.misc.validation import check_positive_int

_FLOAT_DTYPES = (tf.float16, tf.bfloat16, tf.float32, tf.float64)
_INT_DTYPES = (tf.int32, tf.int64, tf.int16, tf.int8, tf.uint8)

# Accumulator dtype: float64 keeps counts exact and sums precise over a
# whole ImageNet validation set.
_ACC_DTYPE = tf.float64


def _bin_edges(num_bins, dtype=np.float64):
    """The num_bins + 1 edges 0, 1/num_bins, ..., 1 in `dtype`."""
    return np.linspace(0.0, 1.0, num_bins + 1).astype(dtype)


def _checked(labels, logits):
    """(int32 labels, float32 logits) after the static checks, with the
    run-time ones (batch sizes, label range) as control dependencies."""
    labels = tf.convert_to_tensor(labels)
    logits = tf.convert_to_tensor(logits)
    if labels.dtype not in _INT_DTYPES:
        raise TypeError(
            f"labels must be an integer tensor, got dtype {labels.dtype}."
        )
    if logits.dtype not in _FLOAT_DTYPES:
        raise TypeError(
            f"logits must be a float tensor, got dtype {logits.dtype}."
        )
    if labels.shape.rank != 1:
        raise ValueError(
            f"labels must have shape [B], got shape {labels.shape}."
        )
    if logits.shape.rank != 2:
        raise ValueError(
            f"logits must have shape [B, K], got shape {logits.shape}."
        )
    num_classes = logits.shape[1]
    if num_classes is None or num_classes < 1:
        raise ValueError(
            "logits must have a static number of classes K >= 1, got "
            f"shape {logits.shape}."
        )
    if (
        labels.shape[0] is not None
        and logits.shape[0] is not None
        and labels.shape[0] != logits.shape[0]
    ):
        raise ValueError(
            f"labels and logits batch sizes differ: {labels.shape} vs "
            f"{logits.shape}."
        )
    labels = tf.cast(labels, tf.int32)
    checks = [
        tf.debugging.assert_equal(
            tf.shape(labels)[0],
            tf.shape(logits)[0],
            message="labels and logits batch sizes differ",
        ),
        tf.debugging.assert_non_negative(labels, message="labels must be >= 0"),
        tf.debugging.assert_less(
            labels,
            tf.constant(num_classes, tf.int32),
            message=f"labels must be < K = {num_classes}",
        ),
    ]
    with tf.control_dependencies(checks):
        logits = tf.cast(logits, tf.float32)
    return labels, logits


def _label_rank_tf(labels, logits):
    """The rank of each label among the classes, by decreasing logit
    (ties: the lower class id first), [B] int32; K (never among the top k)
    for a row with a NaN or infinite logit, which every comparison would
    rank first (an overflowed float16 model scored top-1 1.0)."""
    num_classes = logits.shape[1]
    label_logit = tf.gather(logits, labels, axis=1, batch_dims=1)
    label_logit = label_logit[:, tf.newaxis]
    class_ids = tf.range(num_classes, dtype=tf.int32)[tf.newaxis, :]
    ahead = tf.logical_or(
        logits > label_logit,
        tf.logical_and(
            tf.equal(logits, label_logit),
            class_ids < labels[:, tf.newaxis],
        ),
    )
    rank = tf.reduce_sum(tf.cast(ahead, tf.int32), axis=1)
    finite = tf.reduce_all(tf.math.is_finite(logits), axis=1)
    return tf.where(finite, rank, num_classes)


class ClassificationMetrics:
    """Streaming top-1, top-k, mean cross-entropy and ECE.

    Create it (under `strategy.scope()` when a distribution strategy is
    used), call `update_state(labels, logits)` once per batch (inside
    `strategy.run` when distributed; it may be traced by `tf.function`),
    then read `result()` / `bins()` eagerly and `reset()` between
    evaluations.

    Example::

        metrics = ClassificationMetrics()

        @tf.function
        def eval_step(images, labels):
            metrics.update_state(labels, model(images, training=False))

        for images, labels in dataset:
            eval_step(images, labels)
        print(metrics.result())  # {"top1": ..., "top5": ..., ...}

    Args:
        num_bins: number of equal-width confidence bins of the ECE.
        top_k: the k of the top-k accuracy; batches with fewer than k
            classes use k = number of classes. The result key is
            f"top{top_k}".
        name: prefix of the variable names.
        num_classes: K, to also count images and top-1 hits per class
            (`per_class`); None: not counted.
    """

    def __init__(
        self,
        num_bins=10,
        top_k=5,
        name="classification_metrics",
        num_classes=None,
    ):
        self.num_bins = check_positive_int("num_bins", num_bins)
        self.top_k = check_positive_int("top_k", top_k)
        if not isinstance(name, str) or not name:
            raise ValueError(f"name must be a non-empty str, got {name!r}.")
        self.name = name
        self.num_classes = num_classes
        if num_classes is not None:
            check_positive_int("num_classes", num_classes)

        def make(var_name, shape=()):
            return tf.Variable(
                tf.zeros(shape, _ACC_DTYPE),
                trainable=False,
                name=f"{name}/{var_name}",
                synchronization=tf.VariableSynchronization.ON_READ,
                aggregation=tf.VariableAggregation.SUM,
            )

        self._count = make("count")
        self._top1_correct = make("top1_correct")
        self._topk_correct = make(f"top{self.top_k}_correct")
        self._loss_sum = make("cross_entropy_sum")
        self._bin_count = make("bin_count", (self.num_bins,))
        self._bin_confidence = make("bin_confidence_sum", (self.num_bins,))
        self._bin_correct = make("bin_correct_sum", (self.num_bins,))
        self._per_class = ()
        if num_classes is not None:
            self._per_class = (
                make("class_count", (num_classes,)),
                make("class_top1_correct", (num_classes,)),
            )
        # Inner edges 1/num_bins, ..., (num_bins - 1)/num_bins: the bin of a
        # confidence c is the number of inner edges strictly below c.
        self._inner_edges = tf.constant(
            _bin_edges(self.num_bins, np.float32)[1:-1], tf.float32
        )

    @property
    def variables(self):
        """All state variables, in a fixed order."""
        return [
            self._count,
            self._top1_correct,
            self._topk_correct,
            self._loss_sum,
            self._bin_count,
            self._bin_confidence,
            self._bin_correct,
            *self._per_class,
        ]

    def update_state(self, labels, logits):
        """Adds one batch to the accumulators.

        Call it in replica context (plain code, or inside `strategy.run`).

        Args:
            labels: integer class ids, shape [B].
            logits: float16 / bfloat16 / float32 / float64 logits, shape
                [B, K] with K known statically. Everything is computed in
                float32.

        Raises:
            TypeError: labels are not integers or logits not floats.
            ValueError: wrong ranks, unknown K, or static batch sizes that
                differ.
            tf.errors.InvalidArgumentError: (at run time) a label outside
                [0, K) or batch sizes that differ.
        """
        labels, logits = _checked(labels, logits)
        num_classes = logits.shape[1]
        rank = _label_rank_tf(labels, logits)
        k = min(self.top_k, num_classes)
        top1 = tf.cast(rank < 1, _ACC_DTYPE)
        topk = tf.cast(rank < k, _ACC_DTYPE)

        cross_entropy = tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=labels, logits=logits
        )
        confidence = tf.reduce_max(tf.nn.softmax(logits, axis=-1), axis=-1)
        bin_ids = tf.reduce_sum(
            tf.cast(
                confidence[:, tf.newaxis] > self._inner_edges[tf.newaxis, :],
                tf.int32,
            ),
            axis=1,
        )

        def per_bin(values):
            return tf.math.unsorted_segment_sum(values, bin_ids, self.num_bins)

        batch = tf.cast(tf.shape(labels)[0], _ACC_DTYPE)
        self._count.assign_add(batch)
        self._top1_correct.assign_add(tf.reduce_sum(top1))
        self._topk_correct.assign_add(tf.reduce_sum(topk))
        self._loss_sum.assign_add(
            tf.reduce_sum(tf.cast(cross_entropy, _ACC_DTYPE))
        )
        self._bin_count.assign_add(per_bin(tf.ones_like(top1)))
        self._bin_confidence.assign_add(
            per_bin(tf.cast(confidence, _ACC_DTYPE))
        )
        self._bin_correct.assign_add(per_bin(top1))
        if self._per_class:
            if num_classes != self.num_classes:
                raise ValueError(
                    f"Logits of {num_classes} classes for metrics counting "
                    f"{self.num_classes} per class."
                )
            count, correct = self._per_class
            count.assign_add(
                tf.math.unsorted_segment_sum(
                    tf.ones_like(top1), labels, self.num_classes
                )
            )
            correct.assign_add(
                tf.math.unsorted_segment_sum(top1, labels, self.num_classes)
            )

    # Short alias.
    update = update_state

    def reset(self):
        """Sets every accumulator to zero (call in cross-replica context)."""
        for variable in self.variables:
            variable.assign(tf.zeros_like(variable.read_value()))

    reset_state = reset

    def _read(self, variable):
        # In cross-replica context this sums the per-replica copies.
        return np.asarray(tf.convert_to_tensor(variable.read_value()))

    def totals(self):
        """The raw accumulators as numpy float64, summed over replicas.

        Returns:
            dict with "count", "top1_correct", "topk_correct",
            "cross_entropy_sum" (scalars) and "bin_count",
            "bin_confidence_sum", "bin_correct_sum" ([num_bins] arrays).
        """
        return {
            "count": float(self._read(self._count)),
            "top1_correct": float(self._read(self._top1_correct)),
            "topk_correct": float(self._read(self._topk_correct)),
            "cross_entropy_sum": float(self._read(self._loss_sum)),
            "bin_count": self._read(self._bin_count),
            "bin_confidence_sum": self._read(self._bin_confidence),
            "bin_correct_sum": self._read(self._bin_correct),
        }

    def result(self):
        """The metrics so far, as Python numbers (call eagerly).

        Returns:
            {"top1", f"top{top_k}", "ece", "loss", "count"}: accuracies and
            ECE as fractions in [0, 1], "loss" the mean cross-entropy and
            "count" the number of examples (int). With no examples every
            value but "count" is NaN.
        """
        t = self.totals()
        count = t["count"]
        if count == 0:
            nan = float("nan")
            return {
                "top1": nan,
                f"top{self.top_k}": nan,
                "ece": nan,
                "loss": nan,
                "count": 0,
            }
        ece = float(
            np.sum(np.abs(t["bin_correct_sum"] - t["bin_confidence_sum"]))
            / count
        )
        return {
            "top1": t["top1_correct"] / count,
            f"top{self.top_k}": t["topk_correct"] / count,
            "ece": ece,
            "loss": t["cross_entropy_sum"] / count,
            "count": int(round(count)),
        }

    def per_class(self):
        """(images, top1) per class: int64 and float64 arrays of length
        `num_classes`; top-1 is NaN for a class without images.

        Raises:
            ValueError: made without `num_classes`.
        """
        if not self._per_class:
            raise ValueError("Made without num_classes: nothing per class.")
        count, correct = (self._read(v) for v in self._per_class)
        top1 = np.full(count.shape, np.nan)
        np.divide(correct, count, out=top1, where=count > 0)
        return np.round(count).astype(np.int64), top1

    def bins(self):
        """Per-bin statistics for a reliability diagram.

        Returns:
            (count, confidence, accuracy): numpy arrays of length num_bins;
            count is int64, confidence the mean confidence and accuracy the
            top-1 accuracy of each bin (float64, 0 for empty bins).
        """
        t = self.totals()
        return _bins_from_sums(
            t["bin_count"], t["bin_confidence_sum"], t["bin_correct_sum"]
        )


def _bins_from_sums(counts, confidence_sums, correct_sums):
    counts = np.asarray(counts, np.float64)
    safe = np.maximum(counts, 1.0)
    confidence = np.where(counts > 0, confidence_sums / safe, 0.0)
    accuracy = np.where(counts > 0, correct_sums / safe, 0.0)
    return np.rint(counts).astype(np.int64), confidence, accuracy


# ---------------------------------------------------------------------------
# Numpy reference implementations.
# ---------------------------------------------------------------------------


def _check_labels(labels, num_rows, num_classes):
    labels = np.asarray(labels)
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"labels must be integers, got dtype {labels.dtype}.")
    if labels.ndim != 1:
        raise ValueError(f"labels must have shape [N], got {labels.shape}.")
    if labels.shape[0] != num_rows:
        raise ValueError(
            f"labels has {labels.shape[0]} entries but the scores have "
            f"{num_rows} rows."
        )
    bad = (labels < 0) | (labels >= num_classes)
    if np.any(bad):
        raise ValueError(
            f"labels must be in [0, {num_classes}), got {labels[bad][:5]}."
        )
    return labels.astype(np.int64)


def _check_scores(scores, name):
    scores = np.asarray(scores)
    if not np.issubdtype(scores.dtype, np.floating):
        raise TypeError(f"{name} must be floats, got dtype {scores.dtype}.")
    if scores.ndim != 2 or scores.shape[1] < 1:
        raise ValueError(
            f"{name} must have shape [N, K] with K >= 1, got {scores.shape}."
        )
    return scores


def _label_rank(scores, labels):
    """How many classes rank ahead of the label (stable, decreasing); K
    for a row with a NaN or infinite score (counted wrong at any k)."""
    label_score = np.take_along_axis(scores, labels[:, None], axis=1)
    ids = np.arange(scores.shape[1])[None, :]
    ahead = (scores > label_score) | (
        (scores == label_score) & (ids < labels[:, None])
    )
    finite = np.isfinite(scores).all(axis=1)
    return np.where(finite, ahead.sum(axis=1), scores.shape[1])


def topk_accuracy(logits, labels, k):
    """Fraction of examples whose label is among the k best logits.

    Ties are broken towards the smaller class index; k >= K gives 1.0; a
    row with a NaN or infinite logit counts as wrong.

    Args:
        logits: float array [N, K] (probabilities work equally).
        labels: int array [N] in [0, K).
        k: int >= 1.

    Returns:
        float in [0, 1]; NaN when N == 0.
    """
    k = check_positive_int("k", k)
    logits = _check_scores(logits, "logits").astype(np.float64)
    labels = _check_labels(labels, logits.shape[0], logits.shape[1])
    if logits.shape[0] == 0:
        return float("nan")
    k = min(k, logits.shape[1])
    return float(np.mean(_label_rank(logits, labels) < k))


def calibration_bins(probs, labels, num_bins=10):
    """Per-bin (count, mean confidence, accuracy) of a reliability diagram.

    Args:
        probs: float array [N, K] of class probabilities in [0, 1].
        labels: int array [N] in [0, K).
        num_bins: number of equal-width bins over [0, 1]; bin i covers
            (i / num_bins, (i + 1) / num_bins], the first one also holds 0.
            The edges are compared in the dtype of `probs`.

    Returns:
        (count int64, confidence float64, accuracy float64) arrays of
        length num_bins; 0 confidence and accuracy for empty bins.
    """
    num_bins = check_positive_int("num_bins", num_bins)
    probs = _check_scores(probs, "probs")
    labels = _check_labels(labels, probs.shape[0], probs.shape[1])
    if probs.size and (
        not np.all(np.isfinite(probs)) or probs.min() < 0.0 or probs.max() > 1.0
    ):
        raise ValueError(
            "probs must be finite and in [0, 1], got values in "
            f"[{probs.min()}, {probs.max()}]."
        )
    confidence = probs.max(axis=1)
    correct = (_label_rank(probs, labels) < 1).astype(np.float64)
    inner = _bin_edges(num_bins, probs.dtype)[1:-1]
    bin_ids = np.searchsorted(inner, confidence, side="left")
    counts = np.bincount(bin_ids, minlength=num_bins).astype(np.float64)
    confidence_sums = np.bincount(
        bin_ids, weights=confidence.astype(np.float64), minlength=num_bins
    )
    correct_sums = np.bincount(bin_ids, weights=correct, minlength=num_bins)
    return _bins_from_sums(counts, confidence_sums, correct_sums)


def calibration_error_from_bins(count, confidence, accuracy):
    """ECE = sum_b |accuracy_b - confidence_b| * count_b / sum_b count_b.

    Args:
        count, confidence, accuracy: equal-length 1-D arrays, as returned by
            `calibration_bins` or `ClassificationMetrics.bins`.

    Returns:
        float; NaN when every bin is empty.
    """
    count = np.asarray(count, np.float64)
    confidence = np.asarray(confidence, np.float64)
    accuracy = np.asarray(accuracy, np.float64)
    if not (count.ndim == confidence.ndim == accuracy.ndim == 1) or not (
        count.shape == confidence.shape == accuracy.shape
    ):
        raise ValueError(
            "count, confidence and accuracy must be 1-D arrays of one "
            f"length, got shapes {count.shape}, {confidence.shape}, "
            f"{accuracy.shape}."
        )
    if np.any(count < 0):
        raise ValueError(f"bin counts must be >= 0, got {count}.")
    total = count.sum()
    if total == 0:
        return float("nan")
    return float(np.sum(np.abs(accuracy - confidence) * count) / total)


def expected_calibration_error(probs, labels, num_bins=10):
    """ECE of Guo et al. 2017 with `num_bins` equal-width bins.

    Args:
        probs: float array [N, K] of class probabilities in [0, 1].
        labels: int array [N] in [0, K).
        num_bins: number of bins (10 in Assemble-ResNet).

    Returns:
        float in [0, 1]; NaN when N == 0.
    """
    return calibration_error_from_bins(
        *calibration_bins(probs, labels, num_bins)
    )

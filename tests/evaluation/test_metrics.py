"""Streaming metrics vs hand-computed values and the numpy references."""

import math
import os

import numpy as np
import pytest
import tensorflow as tf

from assemble_tf.evaluation import metrics as M
from assemble_tf.evaluation import plots
from tests import testing_utils

# Five examples over K = 6 classes, given as probabilities; the logits are
# their logs, so softmax(logits) gives the probabilities back.
HAND_PROBS = np.array(
    [
        [0.75, 0.05, 0.05, 0.05, 0.05, 0.05],  # label 0: top1 yes, conf .75
        [0.03, 0.03, 0.03, 0.03, 0.03, 0.85],  # label 0: rank 1, conf .85
        [0.12, 0.20, 0.35, 0.13, 0.05, 0.15],  # label 4: rank 5, conf .35
        [0.05, 0.55, 0.10, 0.10, 0.10, 0.10],  # label 1: top1 yes, conf .55
        [0.04, 0.04, 0.04, 0.04, 0.12, 0.72],  # label 4: rank 1, conf .72
    ]
)
HAND_LABELS = np.array([0, 0, 4, 1, 4])
# top1 = 2/5 = 0.4 (rows 0, 3); top5 = 4/5 = 0.8 (all but row 2, whose
# label has the smallest probability, rank 5).
# Bins (i/10, (i+1)/10]: bin 3 {.35, wrong}, bin 5 {.55, right},
# bin 7 {.75 right, .72 wrong}, bin 8 {.85, wrong}.
# ECE = (|0 - .35| * 1 + |1 - .55| * 1 + |.5 - .735| * 2 + |0 - .85| * 1) / 5
#     = (.35 + .45 + .47 + .85) / 5 = 2.12 / 5 = 0.424.
# loss = -(ln .75 + ln .03 + ln .05 + ln .55 + ln .12) / 5 = 1.9016145...
HAND_ECE = 0.424
HAND_LOSS = 1.9016145560562930


def _softmax(logits):
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _random(n, k, seed, scale=3.0):
    rng = np.random.default_rng(seed)
    logits = (rng.normal(size=(n, k)) * scale).astype(np.float32)
    # Make the labels correlate with the logits so top-1 is not ~1/K.
    labels = np.where(
        rng.uniform(size=n) < 0.5,
        logits.argmax(axis=1),
        rng.integers(0, k, size=n),
    )
    return labels.astype(np.int64), logits


def _cross_entropy(logits, labels):
    logits = logits.astype(np.float64)
    z = logits - logits.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-np.mean(log_p[np.arange(len(labels)), labels]))


def test_hand_example_exact_values():
    m = M.ClassificationMetrics()
    m.update_state(HAND_LABELS, np.log(HAND_PROBS).astype(np.float32))
    r = m.result()
    assert set(r) == {"top1", "top5", "ece", "loss", "count"}
    assert r["count"] == 5 and isinstance(r["count"], int)
    assert r["top1"] == pytest.approx(0.4, abs=1e-12)
    assert r["top5"] == pytest.approx(0.8, abs=1e-12)
    assert r["ece"] == pytest.approx(HAND_ECE, abs=1e-6)
    assert r["loss"] == pytest.approx(HAND_LOSS, abs=1e-6)

    count, confidence, accuracy = m.bins()
    np.testing.assert_array_equal(count, [0, 0, 0, 1, 0, 1, 0, 2, 1, 0])
    np.testing.assert_allclose(
        confidence, [0, 0, 0, 0.35, 0, 0.55, 0, 0.735, 0.85, 0], atol=1e-6
    )
    np.testing.assert_allclose(
        accuracy, [0, 0, 0, 0, 0, 1, 0, 0.5, 0, 0], atol=1e-12
    )
    assert M.calibration_error_from_bins(*m.bins()) == pytest.approx(
        HAND_ECE, abs=1e-6
    )


def test_hand_example_per_class():
    """Labels 0, 0, 4, 1, 4 with top-1 hits on rows 0 and 3: class 0 is
    1 of 2, class 1 1 of 1, class 4 0 of 2; classes 2, 3, 5 have none."""
    m = M.ClassificationMetrics(num_classes=6)
    m.update_state(HAND_LABELS, np.log(HAND_PROBS).astype(np.float32))
    images, top1 = m.per_class()
    assert images.dtype == np.int64
    np.testing.assert_array_equal(images, [2, 1, 0, 0, 2, 0])
    np.testing.assert_array_equal(top1, [0.5, 1.0, np.nan, np.nan, 0.0, np.nan])
    m.update_state(HAND_LABELS[:1], np.log(HAND_PROBS[:1]).astype(np.float32))
    np.testing.assert_array_equal(m.per_class()[1][[0, 4]], [2 / 3, 0.0])
    m.reset()
    np.testing.assert_array_equal(m.per_class()[0], [0] * 6)
    with pytest.raises(ValueError, match="Logits of 6 classes for metrics"):
        M.ClassificationMetrics(num_classes=7).update_state(
            HAND_LABELS, np.log(HAND_PROBS).astype(np.float32)
        )
    with pytest.raises(ValueError, match="nothing per class"):
        M.ClassificationMetrics().per_class()


def test_hand_example_numpy_helpers():
    assert M.expected_calibration_error(
        HAND_PROBS, HAND_LABELS
    ) == pytest.approx(HAND_ECE, abs=1e-12)
    logits = np.log(HAND_PROBS)
    assert M.topk_accuracy(logits, HAND_LABELS, 1) == pytest.approx(0.4)
    assert M.topk_accuracy(logits, HAND_LABELS, 5) == pytest.approx(0.8)
    assert M.topk_accuracy(logits, HAND_LABELS, 6) == 1.0
    # One bin: ECE = |mean acc - mean conf| = |.4 - 3.22 / 5| = .244.
    assert M.expected_calibration_error(
        HAND_PROBS, HAND_LABELS, num_bins=1
    ) == pytest.approx(0.244, abs=1e-12)


def test_bin_edges_are_right_closed():
    # conf 0 -> bin 0, 0.5 -> bin 4 (0.4, 0.5], 0.50001 -> bin 5, 1 -> bin 9.
    probs = np.array([[0.0, 0.0], [0.5, 0.5], [0.50001, 0.49999], [1.0, 0.0]])
    count, confidence, accuracy = M.calibration_bins(probs, [0, 0, 1, 0])
    np.testing.assert_array_equal(count, [1, 0, 0, 0, 1, 1, 0, 0, 0, 1])
    np.testing.assert_allclose(confidence[[0, 4, 5, 9]], [0, 0.5, 0.50001, 1])
    # Ties go to the smaller index: [.5, .5] with label 0 is correct.
    np.testing.assert_array_equal(accuracy[[0, 4, 5, 9]], [1, 1, 0, 1])


def test_ties_break_towards_smaller_class_index():
    logits = np.array([[1.0, 1.0, 1.0], [2.0, 2.0, 0.0]], np.float32)
    labels = np.array([1, 1])
    # Row 0: class 0 ranks ahead of label 1 -> rank 1. Row 1: rank 1 too.
    m = M.ClassificationMetrics(top_k=2)
    m.update_state(labels, logits)
    r = m.result()
    assert r["top1"] == 0.0 and r["top2"] == 1.0
    assert M.topk_accuracy(logits, labels, 1) == 0.0
    assert M.topk_accuracy(logits, labels, 2) == 1.0


def test_streaming_matches_numpy_over_several_updates():
    labels, logits = _random(1000, 37, seed=3)
    m = M.ClassificationMetrics()
    for lo, hi in [(0, 1), (1, 250), (250, 251), (251, 700), (700, 1000)]:
        m.update_state(labels[lo:hi], logits[lo:hi])
    r = m.result()
    assert r["count"] == 1000
    assert r["top1"] == M.topk_accuracy(logits, labels, 1)
    assert r["top5"] == M.topk_accuracy(logits, labels, 5)
    assert 0.5 < r["top1"] < 0.6  # about half the labels are the argmax
    probs = _softmax(logits.astype(np.float64))
    assert r["ece"] == pytest.approx(
        M.expected_calibration_error(probs, labels), abs=1e-5
    )
    assert r["loss"] == pytest.approx(_cross_entropy(logits, labels), 1e-5)
    # Same bins as the float32 softmax of TensorFlow.
    probs32 = tf.nn.softmax(logits).numpy()
    for ours, ref in zip(
        m.bins(), M.calibration_bins(probs32, labels), strict=True
    ):
        np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-6)
    assert m.bins()[0].sum() == 1000


def test_inside_tf_function_and_reset():
    labels, logits = _random(96, 10, seed=4)
    m = M.ClassificationMetrics()

    @tf.function(
        input_signature=[
            tf.TensorSpec([None], tf.int32),
            tf.TensorSpec([None, 10], tf.float32),
        ]
    )
    def step(y, z):
        m.update_state(y, z)

    for i in range(0, 96, 32):
        step(labels[i : i + 32].astype(np.int32), logits[i : i + 32])
    r = m.result()
    assert r["count"] == 96
    assert r["top1"] == M.topk_accuracy(logits, labels, 1)
    assert r["top5"] == M.topk_accuracy(logits, labels, 5)
    m.reset()
    empty = m.result()
    assert empty["count"] == 0
    assert all(math.isnan(empty[k]) for k in ("top1", "top5", "ece", "loss"))
    assert m.bins()[0].sum() == 0
    step(labels[:8].astype(np.int32), logits[:8])
    assert m.result()["count"] == 8


def test_float16_logits():
    labels, logits = _random(256, 20, seed=5)
    half = logits.astype(np.float16)
    m = M.ClassificationMetrics()
    m.update_state(tf.constant(labels), tf.constant(half))
    r = m.result()
    ref = half.astype(np.float32)
    assert r["top1"] == M.topk_accuracy(ref, labels, 1)
    assert r["top5"] == M.topk_accuracy(ref, labels, 5)
    assert r["loss"] == pytest.approx(_cross_entropy(ref, labels), 1e-5)
    assert r["ece"] == pytest.approx(
        M.expected_calibration_error(tf.nn.softmax(ref).numpy(), labels),
        abs=1e-6,
    )


def test_rows_with_nan_or_inf_logits_count_as_wrong():
    """Every comparison with NaN is false, so a NaN row ranked its label
    first: top-1 2/3 here, and 1.0 for a float16 model whose logit
    overflowed to inf."""
    labels = np.array([0, 2, 1, 0])
    logits = np.array(
        [[np.nan, 0, 0], [0, np.nan, 1], [1, 2, 3], [np.inf, 0, 0]],
        np.float32,
    )
    assert M.topk_accuracy(logits, labels, 1) == 0.0
    assert M.topk_accuracy(logits, labels, 2) == 0.25
    assert M.topk_accuracy(logits, labels, 3) == 0.25  # k = K
    assert M.topk_accuracy(logits[2:3], labels[2:3], 9) == 1.0
    m = M.ClassificationMetrics(top_k=3)
    m.update_state(labels, logits)
    result = m.result()
    assert result["top1"] == 0.0 and result["top3"] == 0.25
    assert np.isnan(result["loss"])


def test_fewer_than_five_classes():
    # K = 3: top-5 becomes top-3, which is always right.
    logits = np.array([[3.0, 0.0, 0.0], [0.0, 0.0, 3.0], [0.0, 1.0, 0.0]])
    labels = np.array([0, 0, 1])
    m = M.ClassificationMetrics()
    m.update_state(labels, logits.astype(np.float32))
    r = m.result()
    assert r["top1"] == pytest.approx(2 / 3)
    assert r["top5"] == 1.0
    # K = 1: everything is right with confidence 1 -> ECE 0, loss 0.
    one = M.ClassificationMetrics()
    one.update_state([0, 0], np.zeros((2, 1), np.float32))
    r = one.result()
    assert (r["top1"], r["top5"], r["ece"], r["loss"]) == (1, 1, 0, 0)
    np.testing.assert_array_equal(one.bins()[0], [0] * 9 + [2])


def test_custom_bins_and_k():
    m = M.ClassificationMetrics(num_bins=3, top_k=2)
    m.update_state(HAND_LABELS, np.log(HAND_PROBS).astype(np.float32))
    r = m.result()
    # Label ranks are 0, 1, 5, 0, 1 -> top2 = 4/5.
    assert set(r) == {"top1", "top2", "ece", "loss", "count"}
    assert r["top2"] == pytest.approx(0.8)
    # Thirds: (1/3, 2/3] {.35 wrong, .55 right}: |1 - .9| = .1;
    # (2/3, 1] {.75 right, .85 wrong, .72 wrong}: |1 - 2.32| = 1.32;
    # ECE = (.1 + 1.32) / 5 = .284.
    assert r["ece"] == pytest.approx(0.284, abs=1e-6)
    np.testing.assert_array_equal(m.bins()[0], [0, 2, 3])
    np.testing.assert_allclose(m.bins()[2], [0, 0.5, 1 / 3])


def test_input_validation():
    with pytest.raises(ValueError, match="Received: num_bins=0$"):
        M.ClassificationMetrics(num_bins=0)
    with pytest.raises(ValueError, match="Received: top_k=2.5$"):
        M.ClassificationMetrics(top_k=2.5)
    assert M.ClassificationMetrics(top_k=np.int64(3)).top_k == 3
    m = M.ClassificationMetrics()
    with pytest.raises(TypeError, match="float32"):
        m.update_state(np.zeros(2, np.float32), np.zeros((2, 3), np.float32))
    with pytest.raises(TypeError, match="int32"):
        m.update_state([0, 1], np.zeros((2, 3), np.int32))
    with pytest.raises(ValueError, match=r"\(2, 3, 1\)"):
        m.update_state([0, 1], np.zeros((2, 3, 1), np.float32))
    with pytest.raises(ValueError, match=r"\(3,\) vs \(2, 3\)"):
        m.update_state([0, 1, 2], np.zeros((2, 3), np.float32))
    with pytest.raises(tf.errors.InvalidArgumentError, match="< K = 3"):
        m.update_state([0, 3], np.zeros((2, 3), np.float32))
    with pytest.raises(tf.errors.InvalidArgumentError, match=">= 0"):
        m.update_state([-1, 0], np.zeros((2, 3), np.float32))
    assert m.result()["count"] == 0
    with pytest.raises(ValueError, match=r"\[0, 3\), got \[7\]"):
        M.topk_accuracy(np.zeros((2, 3)), [0, 7], 1)
    with pytest.raises(ValueError, match="Received: k=0$"):
        M.topk_accuracy(np.zeros((2, 3)), [0, 1], 0)
    with pytest.raises(ValueError, match=r"\[-0.5, 1.5\]"):
        M.expected_calibration_error(np.array([[1.5, -0.5]]), [0])
    with pytest.raises(TypeError, match="int64"):
        M.expected_calibration_error(np.zeros((1, 2), np.int64), [0])
    assert math.isnan(M.calibration_error_from_bins([0, 0], [0, 0], [0, 0]))


def _two_replica_metrics():
    """Two steps of `ClassificationMetrics.update_state` under a two-replica
    MirroredStrategy, then reset and the same steps again."""
    strategy = testing_utils.two_replica_strategy()
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 2, 16, 7)).astype(np.float32) * 2
    labels = rng.integers(0, 7, size=(2, 2, 16))
    with strategy.scope():
        m = M.ClassificationMetrics(num_classes=7)

    @tf.function
    def step(y, z):
        strategy.run(m.update_state, args=(y, z))

    def run_all():
        for s in range(2):  # two steps, each with 16 examples per replica
            y, z = strategy.experimental_distribute_values_from_function(
                lambda ctx, s=s: (
                    tf.constant(labels[s, ctx.replica_id_in_sync_group]),
                    tf.constant(logits[s, ctx.replica_id_in_sync_group]),
                )
            )
            step(y, z)

    run_all()
    flat_z = logits.reshape(-1, 7)
    flat_y = labels.reshape(-1)
    probs = tf.nn.softmax(flat_z).numpy()
    out = {
        "replicas": strategy.num_replicas_in_sync,
        "result": m.result(),
        "bins": m.bins()[0].tolist(),
        "ref_top1": M.topk_accuracy(flat_z, flat_y, 1),
        "ref_top5": M.topk_accuracy(flat_z, flat_y, 5),
        "ref_ece": M.expected_calibration_error(probs, flat_y),
        "ref_bins": M.calibration_bins(probs, flat_y)[0].tolist(),
        "per_class": [a.tolist() for a in m.per_class()],
        "ref_per_class": [
            np.bincount(flat_y, minlength=7).tolist(),
            [
                float(np.mean(flat_z[flat_y == c].argmax(-1) == c))
                for c in range(7)
            ],
        ],
    }
    m.reset()
    out["after_reset"] = m.result()["count"]
    run_all()
    out["again"] = m.result()
    return out


def test_mirrored_strategy_sums_over_two_replicas():
    out = _two_replica_metrics()
    assert out["replicas"] == 2
    r = out["result"]
    assert r["count"] == 64  # 2 steps x 2 replicas x 16
    assert r["top1"] == out["ref_top1"]
    assert r["top5"] == out["ref_top5"]
    assert r["ece"] == pytest.approx(out["ref_ece"], abs=1e-6)
    assert out["bins"] == out["ref_bins"] and sum(out["bins"]) == 64
    # Per class, summed over the replicas.
    assert out["per_class"][0] == out["ref_per_class"][0]
    np.testing.assert_allclose(out["per_class"][1], out["ref_per_class"][1])
    assert out["after_reset"] == 0
    assert out["again"] == r


def _png_ok(path):
    with open(path, "rb") as f:
        head = f.read(8)
    return head == b"\x89PNG\r\n\x1a\n" and os.path.getsize(path) > 1000


def test_reliability_diagram_writes_png(tmp_path):
    m = M.ClassificationMetrics()
    m.update_state(HAND_LABELS, np.log(HAND_PROBS).astype(np.float32))
    path = plots.reliability_diagram(
        m.bins(), tmp_path / "sub" / "reliability.png", title="hand"
    )
    assert path == str(tmp_path / "sub" / "reliability.png")
    assert _png_ok(path)
    with pytest.raises(ValueError, match="'x.jpg'"):
        plots.reliability_diagram(m.bins(), "x.jpg")
    # All-empty bins still plot (ECE n/a).
    empty = plots.reliability_diagram(
        (np.zeros(10), np.zeros(10), np.zeros(10)), tmp_path / "empty.png"
    )
    assert _png_ok(empty)


def test_training_curves_writes_png(tmp_path):
    history = [
        {"step": 0, "epoch": 0.0, "train_loss": 6.9, "learning_rate": 0.0},
        {"step": 100, "epoch": 0.5, "train_loss": 5.1, "learning_rate": 0.1},
        {
            "step": 200,
            "epoch": 1.0,
            "train_loss": 4.2,
            "learning_rate": 0.1,
            "val_top1": 0.21,
            "val_top5": 0.45,
            "val_loss": 4.0,
        },
        {"step": 300, "epoch": 1.5, "train_loss": float("nan")},
        {"step": 400, "epoch": 2.0, "val_top1": 0.33, "val_top5": 0.6},
    ]
    path = plots.training_curves(history, str(tmp_path / "curves.png"))
    assert _png_ok(path)
    # No epoch, no learning rate, no accuracy: still a plot.
    only_steps = [{"step": 1, "train_loss": 1.0}, {"step": 2}]
    assert _png_ok(plots.training_curves(only_steps, tmp_path / "s.png"))
    with pytest.raises(ValueError, match="empty"):
        plots.training_curves([], tmp_path / "e.png")
    with pytest.raises(TypeError, match=r"history\[1\] must be a dict"):
        plots.training_curves([{"step": 1}, 3], tmp_path / "e.png")

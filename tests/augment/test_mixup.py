"""Mixup / CutMix post-process: pairing, lambda, targets, teacher."""

import numpy as np
import pytest
import tensorflow as tf

from assemble_tf.augment.mixup import (
    MixupAndCutmix,
    sample_lambda,
    smooth_targets,
)

K = 4


def _batch(n):
    # Image i is the constant i, so a mixed pixel reveals lambda.
    images = tf.broadcast_to(
        tf.range(n, dtype=tf.float32)[:, None, None, None], [n, 6, 8, 3]
    )
    labels = tf.range(n) // 2 % K  # i and i + 4 always differ
    teacher = tf.nn.softmax(tf.random.stateless_normal([n, K], [1, 2]))
    return {
        "images": images,
        "targets": tf.one_hot(labels, K),
        "teacher_probs": teacher,
        "labels": labels,
        "seed": tf.constant([3, 4]),
    }


def test_lambda_statistics_for_a_fixed_seed():
    lam = sample_lambda(20000, 0.2, tf.constant([0, 1])).numpy()
    # Beta(0.2, 0.2): mean 1/2, variance ab/((a+b)^2 (a+b+1)) = 0.1786.
    assert lam.mean() == pytest.approx(0.5, abs=0.01)
    assert lam.var() == pytest.approx(0.04 / (0.16 * 1.4), abs=0.01)
    assert ((lam < 0.1) | (lam > 0.9)).mean() > 0.5  # U-shaped
    again = sample_lambda(20000, 0.2, tf.constant([0, 1])).numpy()
    np.testing.assert_array_equal(lam, again)


def test_type1_consumes_two_batches_and_mixes_teacher_with_image_lambda():
    batch = _batch(8)
    out = MixupAndCutmix(mixup_type=1)(batch)
    lam = out["lambda"].numpy()
    assert out["images"].shape == (4, 6, 8, 3)
    # Example i pairs with i + 4: pixel = lam * i + (1 - lam) * (i + 4).
    pix = out["images"].numpy()[:, 0, 0, 0]
    np.testing.assert_allclose(
        pix,
        lam * np.arange(4) + (1 - lam) * (np.arange(4) + 4),
        rtol=1e-5,
        atol=1e-5,
    )
    t = batch["teacher_probs"].numpy()
    np.testing.assert_allclose(
        out["teacher_probs"].numpy(),
        lam[:, None] * t[:4] + (1 - lam[:, None]) * t[4:],
        rtol=1e-5,
    )
    targets = out["targets"].numpy()
    np.testing.assert_allclose(targets.sum(-1), 1.0, rtol=1e-6)
    first = np.arange(4) // 2 % K
    np.testing.assert_allclose(targets[np.arange(4), first], lam, rtol=1e-5)
    np.testing.assert_allclose(
        targets[np.arange(4), (np.arange(4) + 4) // 2 % K],
        1 - lam,
        rtol=1e-5,
        atol=1e-6,
    )
    assert out["labels"].numpy().tolist() == first.tolist()


def test_type2_keeps_the_batch_and_pairs_with_the_reverse():
    out = MixupAndCutmix(mixup_type=2)(_batch(8))
    lam = out["lambda"].numpy()
    pix = out["images"].numpy()[:, 0, 0, 0]
    partner = np.array([4, 5, 6, 7, 7, 6, 5, 4])
    first = np.array([0, 1, 2, 3, 0, 1, 2, 3])
    np.testing.assert_allclose(
        pix, lam * first + (1 - lam) * partner, rtol=1e-5, atol=1e-5
    )
    # The teacher of the second half is the teacher (the original's bug
    # used the one-hot labels there).
    t = _batch(8)["teacher_probs"].numpy()
    np.testing.assert_allclose(
        out["teacher_probs"].numpy()[4:],
        lam[4:, None] * t[:4] + (1 - lam[4:, None]) * t[[7, 6, 5, 4]],
        rtol=1e-5,
    )


def test_label_smoothing_is_applied_after_mixing():
    ls = 0.1
    plain = MixupAndCutmix(mixup_type=1)(_batch(8))
    smooth = MixupAndCutmix(mixup_type=1, label_smoothing=ls)(_batch(8))
    np.testing.assert_allclose(
        smooth["targets"].numpy(),
        plain["targets"].numpy() * (1 - ls) + ls / K,
        rtol=1e-6,
    )
    np.testing.assert_allclose(
        smooth_targets(tf.one_hot([2], K), ls).numpy(),
        [[0.025, 0.025, 0.925, 0.025]],
        rtol=1e-6,
    )


def test_cutmix_lambda_is_the_kept_area():
    out = MixupAndCutmix(mixup_type=1, mode="cutmix")(_batch(8))
    images = out["images"].numpy()[..., 0]
    lam = out["lambda"].numpy()
    for i in range(4):
        kept = (images[i] == i).mean()
        assert set(np.unique(images[i])) <= {i, i + 4}
        assert kept == pytest.approx(lam[i], abs=1e-6)


def test_type0_only_smooths_and_bad_options_are_named():
    out = MixupAndCutmix(mixup_type=0, label_smoothing=0.2)(_batch(4))
    assert out["images"].shape[0] == 4
    assert out["targets"].numpy().min() == pytest.approx(0.05)
    with pytest.raises(ValueError, match="mixup_type=3"):
        MixupAndCutmix(mixup_type=3)
    with pytest.raises(ValueError, match="mode='mix'"):
        MixupAndCutmix(mode="mix")

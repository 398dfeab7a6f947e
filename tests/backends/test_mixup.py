"""Mixup / CutMix post-process: pairing, lambda, targets, teacher, on every
Keras backend (`make test` runs this folder under TensorFlow and JAX)."""

import keras
import numpy as np
import pytest

from assemble_tf.augment.mixup import (
    MixupAndCutmix,
    sample_lambda,
    smooth_targets,
)

K = 4


def np_(x):
    return keras.ops.convert_to_numpy(x)


def _batch(n):
    # Image i is the constant i, so a mixed pixel reveals lambda.
    images = np.broadcast_to(
        np.arange(n, dtype=np.float32)[:, None, None, None], (n, 6, 8, 3)
    ).copy()
    labels = (np.arange(n) // 2 % K).astype(np.int32)  # i, i + 4 differ
    logits = np.random.default_rng(12).normal(size=(n, K))
    teacher = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    return {
        "images": images,
        "targets": np.eye(K, dtype=np.float32)[labels],
        "teacher_probs": teacher.astype(np.float32),
        "labels": labels,
        "seed": np.array([3, 4], np.int32),
    }


def test_lambda_statistics_for_a_fixed_seed():
    lam = np_(sample_lambda(20000, 0.2, np.array([0, 1], np.int32)))
    # Beta(0.2, 0.2): mean 1/2, variance ab/((a+b)^2 (a+b+1)) = 0.1786.
    assert lam.mean() == pytest.approx(0.5, abs=0.01)
    assert lam.var() == pytest.approx(0.04 / (0.16 * 1.4), abs=0.01)
    assert ((lam < 0.1) | (lam > 0.9)).mean() > 0.5  # U-shaped
    again = np_(sample_lambda(20000, 0.2, np.array([0, 1], np.int32)))
    np.testing.assert_array_equal(lam, again)


def test_type1_consumes_two_batches_and_mixes_teacher_with_image_lambda():
    batch = _batch(8)
    out = MixupAndCutmix(mixup_type=1)(batch)
    lam = np_(out["lambda"])
    assert out["images"].shape == (4, 6, 8, 3)
    # Example i pairs with i + 4: pixel = lam * i + (1 - lam) * (i + 4).
    pix = np_(out["images"])[:, 0, 0, 0]
    np.testing.assert_allclose(
        pix,
        lam * np.arange(4) + (1 - lam) * (np.arange(4) + 4),
        rtol=1e-5,
        atol=1e-5,
    )
    t = batch["teacher_probs"]
    np.testing.assert_allclose(
        np_(out["teacher_probs"]),
        lam[:, None] * t[:4] + (1 - lam[:, None]) * t[4:],
        rtol=1e-5,
    )
    targets = np_(out["targets"])
    np.testing.assert_allclose(targets.sum(-1), 1.0, rtol=1e-6)
    first = np.arange(4) // 2 % K
    np.testing.assert_allclose(targets[np.arange(4), first], lam, rtol=1e-5)
    np.testing.assert_allclose(
        targets[np.arange(4), (np.arange(4) + 4) // 2 % K],
        1 - lam,
        rtol=1e-5,
        atol=1e-6,
    )
    assert np_(out["labels"]).tolist() == first.tolist()


def test_type2_keeps_the_batch_and_pairs_with_the_reverse():
    out = MixupAndCutmix(mixup_type=2)(_batch(8))
    lam = np_(out["lambda"])
    pix = np_(out["images"])[:, 0, 0, 0]
    partner = np.array([4, 5, 6, 7, 7, 6, 5, 4])
    first = np.array([0, 1, 2, 3, 0, 1, 2, 3])
    np.testing.assert_allclose(
        pix, lam * first + (1 - lam) * partner, rtol=1e-5, atol=1e-5
    )
    # The teacher of the second half is the teacher (the original's bug
    # used the one-hot labels there).
    t = _batch(8)["teacher_probs"]
    np.testing.assert_allclose(
        np_(out["teacher_probs"])[4:],
        lam[4:, None] * t[:4] + (1 - lam[4:, None]) * t[[7, 6, 5, 4]],
        rtol=1e-5,
    )


def test_label_smoothing_is_applied_after_mixing():
    ls = 0.1
    plain = MixupAndCutmix(mixup_type=1)(_batch(8))
    smooth = MixupAndCutmix(mixup_type=1, label_smoothing=ls)(_batch(8))
    np.testing.assert_allclose(
        np_(smooth["targets"]),
        np_(plain["targets"]) * (1 - ls) + ls / K,
        rtol=1e-6,
    )
    np.testing.assert_allclose(
        np_(smooth_targets(np.eye(K, dtype=np.float32)[[2]], ls)),
        [[0.025, 0.025, 0.925, 0.025]],
        rtol=1e-6,
    )


def test_cutmix_lambda_is_the_kept_area():
    out = MixupAndCutmix(mixup_type=1, mode="cutmix")(_batch(8))
    images = np_(out["images"])[..., 0]
    lam = np_(out["lambda"])
    for i in range(4):
        kept = (images[i] == i).mean()
        assert set(np.unique(images[i])) <= {i, i + 4}
        assert kept == pytest.approx(lam[i], abs=1e-6)


def test_type0_only_smooths_and_bad_options_are_named():
    out = MixupAndCutmix(mixup_type=0, label_smoothing=0.2)(_batch(4))
    assert out["images"].shape[0] == 4
    assert np_(out["targets"]).min() == pytest.approx(0.05)
    with pytest.raises(ValueError, match="mixup_type=3"):
        MixupAndCutmix(mixup_type=3)
    with pytest.raises(ValueError, match="mode='mix'"):
        MixupAndCutmix(mode="mix")
    # Called directly: uint8 images (before: a TypeError naming nothing)
    # and an odd batch (before: its last image dropped without a word).
    uint8 = dict(_batch(4), images=np.zeros((4, 6, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="`images` are uint8: cast them"):
        MixupAndCutmix(mixup_type=1)(uint8)
    for mixup_type in (1, 2):
        with pytest.raises(ValueError, match="a batch of 5 images would"):
            MixupAndCutmix(mixup_type=mixup_type)(_batch(5))


def test_low_precision_batches_are_mixed_in_float32_then_cast():
    """BatchPostprocess mixes float32 images, then casts: in bfloat16 the
    image weight was lambda rounded to 8 bits (0.5977) while the target
    took the exact lambda (0.5974); pixels differed by up to 1.0."""
    from assemble_tf.data.postprocess import BatchPostprocess, MixingConfig

    post = BatchPostprocess(
        MixingConfig(mixup_type=1, mixup_alpha=0.2, mixup_mode="mixup")
    )
    rng = np.random.default_rng(4)
    batch = {
        "images": rng.integers(0, 256, (8, 6, 8, 3)).astype(np.uint8),
        "targets": np.eye(K, dtype=np.float32)[np.arange(8) % K],
        "labels": (np.arange(8) % K).astype(np.int32),
    }
    seed = np.array([5, 6], np.int32)
    images32, out32 = post(batch, seed)
    images16, out16 = post(batch, seed, dtype="bfloat16")
    assert keras.backend.standardize_dtype(images16.dtype) == "bfloat16"
    np.testing.assert_array_equal(
        np_(keras.ops.cast(images32, "bfloat16")).astype(np.float32),
        np_(images16).astype(np.float32),
    )
    np.testing.assert_array_equal(np_(out32["targets"]), np_(out16["targets"]))

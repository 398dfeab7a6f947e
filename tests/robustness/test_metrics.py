"""mCE / relative mCE / FP / mFR against published test vectors (Hendrycks &
Dietterich, ICLR 2019, and hendrycks/robustness)."""

import numpy as np
import pytest

from assemble_tf.robustness import metrics

# torchvision ResNet-50 top-1 accuracy (%) per corruption, mean over the 5
# severities (Geirhos et al. `clean_results.txt`).
R50_ACCURACY = {
    "gaussian_noise": 29.29,
    "shot_noise": 27.03,
    "impulse_noise": 23.81,
    "defocus_blur": 38.75,
    "glass_blur": 26.79,
    "motion_blur": 38.67,
    "zoom_blur": 36.24,
    "snow": 32.53,
    "frost": 38.14,
    "fog": 45.83,
    "brightness": 68.02,
    "contrast": 39.06,
    "elastic_transform": 45.25,
    "pixelate": 44.79,
    "jpeg_compression": 53.41,
}
R50_CE = {  # Geirhos et al.'s CE column
    "gaussian_noise": 79.77,
    "shot_noise": 81.58,
    "impulse_noise": 82.58,
    "defocus_blur": 74.71,
    "glass_blur": 88.61,
    "motion_blur": 78.03,
    "zoom_blur": 79.86,
    "snow": 77.83,
    "frost": 74.84,
    "fog": 66.11,
    "brightness": 56.64,
    "contrast": 71.43,
    "elastic_transform": 84.75,
    "pixelate": 76.92,
    "jpeg_compression": 76.82,
}
R50_ERRORS = {k: 1 - v / 100 for k, v in R50_ACCURACY.items()}
# Hendrycks & Dietterich Table 3, ResNet-50 flip rates (%).
R50_FR = dict(
    zip(
        metrics.TEST_PERTURBATIONS,
        (59, 58, 64, 72, 63, 62, 44, 52, 57, 48),
        strict=True,
    )
)


def test_resnet50_mce_is_76_70():
    assert metrics.mce(R50_ERRORS) == pytest.approx(76.70, abs=0.005)


def test_resnet50_ce_per_corruption_matches_published():
    ce = metrics.corruption_errors(R50_ERRORS)
    for name, value in R50_CE.items():
        assert ce[name] == pytest.approx(value, abs=0.01), name


def test_alexnet_own_errors_give_100():
    errors = metrics.ALEXNET_ERROR_BY_SEVERITY
    ce = metrics.corruption_errors(errors)
    assert all(v == pytest.approx(100.0, abs=1e-9) for v in ce.values())
    assert metrics.mce(errors) == pytest.approx(100.0, abs=1e-9)
    assert metrics.relative_mce(errors, 0.4345) == pytest.approx(100.0)


def test_some_severities_are_normalised_by_the_same_severities():
    """CE_c = sum_s E_s / sum_s E^AlexNet_s over the severities evaluated:
    AlexNet's own errors at severities 1-2 give 100, not the 79.7 that
    the mean over all 5 gave (AlexNet's error grows with severity)."""
    table = metrics.ALEXNET_ERROR_BY_SEVERITY
    first = {c: [v[0], v[1], None, None, None] for c, v in table.items()}
    assert metrics.mce(first) == pytest.approx(100.0, abs=1e-9)
    assert metrics.relative_mce(first, 0.4345) == pytest.approx(100.0)
    # fog at severities 1-3 of a model 0.3 error each: by hand.
    fog = [0.3, 0.3, 0.3, None, None]
    expected = 100 * 0.9 / (0.67474 + 0.76050 + 0.84378)
    ce = metrics.corruption_errors({"fog": fog})["fog"]
    assert ce == pytest.approx(expected, rel=1e-12)
    assert ce == pytest.approx(
        39.49, abs=0.01
    )  # the mean over all 5 gave 36.62
    # Relative: sum_s (E_s - E_clean) / sum_s (A_s - A_clean), same s.
    relative = (
        100 * 3 * (0.3 - 0.2) / (0.67474 + 0.76050 + 0.84378 - 3 * 0.4345)
    )
    assert metrics.relative_corruption_errors({"fog": fog}, 0.2)[
        "fog"
    ] == pytest.approx(relative, rel=1e-12)
    assert relative == pytest.approx(30.75, abs=0.01)
    # The extras' AlexNet errors per severity are not published.
    with pytest.raises(ValueError, match="evaluate all 5 severities"):
        metrics.corruption_errors({"spatter": [0.5, None, None, None, None]})
    assert metrics.corruption_errors(
        {"spatter": [0.5, None, None, None, None]}, "none"
    )["spatter"] == pytest.approx(50.0)
    with pytest.raises(ValueError, match="No severity evaluated"):
        metrics.corruption_errors({"fog": [None] * 5})


def test_resnet50_relative_mce():
    assert metrics.relative_mce(R50_ERRORS, 0.2387) == pytest.approx(
        104.85, abs=0.05
    )
    # With torchvision AlexNet's clean error (43.478 %): 104.95.
    assert metrics.relative_mce(
        R50_ERRORS, 0.2387, alexnet_clean_error=0.43478
    ) == pytest.approx(104.95, abs=0.05)


def test_nineteen_corruption_mean_uses_extras():
    errors = dict(R50_ERRORS)
    errors.update(
        {c: metrics.ALEXNET_ERROR[c] for c in metrics.EXTRA_CORRUPTIONS}
    )
    m19 = metrics.mce(errors, metrics.ALL_CORRUPTIONS)
    assert m19 == pytest.approx((76.70 * 15 + 100.0 * 4) / 19, abs=0.01)


def test_mce_missing_and_bad_values():
    errors = dict(R50_ERRORS)
    del errors["fog"]
    with pytest.raises(ValueError, match="fog"):
        metrics.mce(errors)
    with pytest.raises(ValueError, match="Unknown corruption 'blur'"):
        metrics.corruption_errors({"blur": 0.5})
    with pytest.raises(ValueError, match="fractions"):
        metrics.corruption_errors({"fog": 54.17})


def test_resnet50_fr_row_averages_57_9():
    fp = {
        p: fr / 100 * metrics.ALEXNET_FLIP_PROBABILITY[p]
        for p, fr in R50_FR.items()
    }
    assert metrics.flip_rates(fp)["rotate"] == pytest.approx(52.0)
    assert metrics.mfr(fp) == pytest.approx(57.9, abs=1e-9)


def test_flip_probability_consecutive_frames():
    preds = np.array([[1, 1, 2, 2, 1], [3, 3, 3, 3, 3]])
    # Video 1: flips at 1->2 and 2->1 of 4 pairs; video 2: none.
    assert metrics.flip_probability(preds) == pytest.approx((2 / 4 + 0) / 2)


def test_flip_probability_noise_compares_with_first_frame():
    preds = np.array([[1, 2, 2, 2, 1]])
    assert metrics.flip_probability(preds, noise=True) == pytest.approx(3 / 4)
    assert metrics.flip_probability(preds) == pytest.approx(2 / 4)


def test_flip_probability_with_step():
    preds = np.array([[0, 5, 1, 5, 1, 6]])
    # step 2: offsets 0 -> frames 0,1,1 (preds 0,1,1): 1 flip of 2;
    # offset 1 -> 5,5,6: 1 flip of 2. Mean 2/4.
    assert metrics.flip_probability(preds, step=2) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="step=6"):
        metrics.flip_probability(preds, step=6)


def test_top5_distance():
    same = np.tile(np.arange(8), (1, 3, 1))
    assert metrics.top5_distance(same) == 0.0
    swapped = np.array([[[0, 1, 2, 3, 4, 5], [1, 0, 2, 3, 4, 5]]])
    # class 0 moves to rank 1 (|0-1|), class 1 to rank 0 (|1-0|): 2.
    assert metrics.top5_distance(swapped) == 2.0
    dropped = np.array([[[0, 1, 2, 3, 4, 5], [9, 1, 2, 3, 4, 0]]])
    # class 0 leaves the top-5 (rank 5): |0-5| = 5.
    assert metrics.top5_distance(dropped) == 5.0


def test_flip_probability_rejects_bad_shapes():
    with pytest.raises(ValueError, match="n >= 2"):
        metrics.flip_probability(np.zeros((3, 1), int))

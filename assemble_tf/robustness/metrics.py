"""mCE, relative mCE, flip probability and mFR.

Hendrycks & Dietterich, "Benchmarking Neural Network Robustness to Common
Corruptions and Perturbations", ICLR 2019, https://arxiv.org/abs/1903.12261,
section 4; the AlexNet normalisers are those of the reference code
(github.com/hendrycks/robustness, as tabulated in google-research/augmix
`imagenet.py`) and of Assemble-ResNet's `mce/eval_robustness.py`
(github.com/clovaai/assembled-cnn) for the four extra corruptions and the
flip probabilities.

* CE_c = sum_s E_{s,c} / sum_s E^AlexNet_{s,c}; mCE = mean over the 15
  standard corruptions (x100). The Assemble-ResNet paper averages over all 19
  (the 15 plus speckle_noise, gaussian_blur, spatter, saturate): both are
  reported.
* Relative CE_c = sum_s (E_{s,c} - E_clean) / sum_s (E^AlexNet_{s,c} -
  E^AlexNet_clean).
* Flip probability of a perturbation over m sequences of n frames: the mean
  over sequences of the fraction of consecutive frame pairs whose top-1
  differs; noise sequences compare every frame with the first. With a
  difficulty (frame step) d > 1, frames d apart are compared, averaged over
  the d offsets (reference `ImageNet-P/test.py`). FR_p = FP_p / FP^AlexNet_p;
  mFR = mean over the 10 test perturbations.
* Top-5 distance: for the first frame's top-5 classes in order, the sum of
  |i - min(rank in the next frame, 5)| (0-based ranks), averaged like FP.
"""

import numpy as np

from official.utils.misc.validation import OptionError

STANDARD_CORRUPTIONS = (
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "defocus_blur",
    "glass_blur",
    "motion_blur",
    "zoom_blur",
    "snow",
    "frost",
    "fog",
    "brightness",
    "contrast",
    "elastic_transform",
    "pixelate",
    "jpeg_compression",
)
EXTRA_CORRUPTIONS = ("speckle_noise", "gaussian_blur", "spatter", "saturate")
ALL_CORRUPTIONS = STANDARD_CORRUPTIONS + EXTRA_CORRUPTIONS

# AlexNet top-1 error per corruption, mean over the 5 severities.
ALEXNET_ERROR = {
    "gaussian_noise": 0.886428,
    "shot_noise": 0.894468,
    "impulse_noise": 0.922640,
    "defocus_blur": 0.819880,
    "glass_blur": 0.826268,
    "motion_blur": 0.785948,
    "zoom_blur": 0.798360,
    "snow": 0.866816,
    "frost": 0.826572,
    "fog": 0.819324,
    "brightness": 0.564592,
    "contrast": 0.853204,
    "elastic_transform": 0.646056,
    "pixelate": 0.717840,
    "jpeg_compression": 0.606500,
    # Four digits only (Assemble-ResNet's ALEXNET_CE).
    "speckle_noise": 0.8454,
    "gaussian_blur": 0.7871,
    "spatter": 0.7175,
    "saturate": 0.6583,
}

# AlexNet top-1 error per severity 1..5 (15 standard corruptions).
ALEXNET_ERROR_BY_SEVERITY = {
    "gaussian_noise": (0.69528, 0.82542, 0.93554, 0.98138, 0.99452),
    "shot_noise": (0.71224, 0.85108, 0.93574, 0.98182, 0.99146),
    "impulse_noise": (0.78374, 0.89808, 0.94870, 0.98720, 0.99548),
    "defocus_blur": (0.65624, 0.73202, 0.85036, 0.91364, 0.94714),
    "glass_blur": (0.64308, 0.75054, 0.88806, 0.91622, 0.93344),
    "motion_blur": (0.58430, 0.70048, 0.82108, 0.89750, 0.92638),
    "zoom_blur": (0.70008, 0.76992, 0.80784, 0.84198, 0.87198),
    "snow": (0.71726, 0.88392, 0.86468, 0.91870, 0.94952),
    "frost": (0.61390, 0.79734, 0.88790, 0.89942, 0.93430),
    "fog": (0.67474, 0.76050, 0.84378, 0.87260, 0.94500),
    "brightness": (0.45140, 0.48502, 0.54048, 0.62166, 0.72440),
    "contrast": (0.64548, 0.76150, 0.88874, 0.97760, 0.99270),
    "elastic_transform": (0.52596, 0.70116, 0.55686, 0.64076, 0.80554),
    "pixelate": (0.52218, 0.54620, 0.73728, 0.87092, 0.91262),
    "jpeg_compression": (0.51002, 0.54718, 0.57294, 0.65458, 0.74778),
}

# AlexNet clean top-1 error (Hendrycks & Dietterich: 43.5 %).
ALEXNET_CLEAN_ERROR = 0.4345

TEST_PERTURBATIONS = (
    "gaussian_noise",
    "shot_noise",
    "motion_blur",
    "zoom_blur",
    "snow",
    "brightness",
    "translate",
    "rotate",
    "tilt",
    "scale",
)
VALIDATION_PERTURBATIONS = (
    "speckle_noise",
    "gaussian_blur",
    "spatter",
    "shear",
)
ALL_PERTURBATIONS = TEST_PERTURBATIONS + VALIDATION_PERTURBATIONS
NOISE_PERTURBATIONS = ("gaussian_noise", "shot_noise", "speckle_noise")

ALEXNET_FLIP_PROBABILITY = {
    "gaussian_noise": 0.23653,
    "shot_noise": 0.30062,
    "motion_blur": 0.09297,
    "zoom_blur": 0.05942,
    "snow": 0.11928,
    "brightness": 0.04889,
    "translate": 0.11007,
    "rotate": 0.13104,
    "tilt": 0.07050,
    "scale": 0.23531,
    "speckle_noise": 0.18649,
    "gaussian_blur": 0.02775,
    "spatter": 0.05053,
    "shear": 0.10658,
}


def _check_name(name, table, what):
    if name not in table:
        raise ValueError(
            f"Unknown {what} {name!r}; expected one of {sorted(table)}."
        )


def _check_error(name, value):
    if not 0.0 <= value <= 1.0:
        raise ValueError(
            f"Error rate of {name} is {value!r}; pass fractions in [0, 1]."
        )


def evaluated_severities(errors):
    """Indices (0..4) of the severities a per-severity sequence holds
    (None marks one not evaluated); None for a single mean."""
    if np.ndim(errors) == 0:
        return None
    if len(errors) != 5:
        raise ValueError(
            f"Expected 5 per-severity errors or one mean, got {len(errors)}."
        )
    present = [i for i, e in enumerate(errors) if e is not None]
    if not present:
        raise ValueError("No severity evaluated: all 5 errors are None.")
    return present


def mean_error(errors):
    """Mean of a per-severity sequence (None for a severity not evaluated:
    the mean of the others) or a single mean, of error rates."""
    present = evaluated_severities(errors)
    if present is None:
        return float(errors)
    return float(np.mean([errors[i] for i in present], dtype=np.float64))


def alexnet_error(name, errors):
    """AlexNet's mean error at the severities `errors` holds: the mean over
    all 5 (`ALEXNET_ERROR`) for a single mean or a full sequence, else over
    the same severities (CE_c sums both over the same s).

    Raises:
        ValueError: severities missing from one of the four extra
            corruptions, whose per-severity AlexNet errors are not
            published.
    """
    _check_name(name, ALEXNET_ERROR, "corruption")
    present = evaluated_severities(errors)
    if present is None or len(present) == 5:
        return ALEXNET_ERROR[name]
    if name not in ALEXNET_ERROR_BY_SEVERITY:
        raise ValueError(
            f"{name}: AlexNet's errors per severity are published for the "
            "15 standard corruptions only; evaluate all 5 severities of "
            f"{name} (severities {[i + 1 for i in present]} given)."
        )
    return float(np.mean([ALEXNET_ERROR_BY_SEVERITY[name][i] for i in present]))


NORMALIZATIONS = ("alexnet", "none")


def _check_normalization(normalization):
    if normalization not in NORMALIZATIONS:
        raise OptionError(
            "normalization",
            "{field}={value!r} is not one of {allowed}.",
            value=normalization,
            allowed=NORMALIZATIONS,
        )


def corruption_errors(errors, normalization="alexnet"):
    """CE per corruption (x100): model error / AlexNet error.

    Args:
        errors: dict corruption -> 5 per-severity top-1 errors (fractions;
            None for a severity not evaluated: AlexNet's errors at the same
            severities normalise it) or their mean over all 5.
        normalization: "alexnet" (the ImageNet-C protocol) or "none": the
            plain error in percent, as the Assemble-ResNet paper reports on
            Food-101-C (Table 8: "not normalised by AlexNet's errors").

    Returns:
        dict corruption -> CE in percent.
    """
    _check_normalization(normalization)
    result = {}
    for name, value in errors.items():
        _check_name(name, ALEXNET_ERROR, "corruption")
        err = mean_error(value)
        _check_error(name, err)
        plain = normalization != "alexnet"
        reference = 1 if plain else alexnet_error(name, value)
        result[name] = 100.0 * err / reference
    return result


def mce(errors, corruptions=STANDARD_CORRUPTIONS, normalization="alexnet"):
    """Mean CE (x100) over `corruptions` (default: the 15 standard ones);
    with normalization="none" the plain mean corruption error in percent.

    Raises:
        ValueError: a corruption of `corruptions` is missing from `errors`.
    """
    missing = [c for c in corruptions if c not in errors]
    if missing:
        raise ValueError(f"mCE needs errors for {missing}.")
    ce = corruption_errors({c: errors[c] for c in corruptions}, normalization)
    return float(np.mean([ce[c] for c in corruptions]))


def relative_corruption_errors(
    errors, clean_error, alexnet_clean_error=ALEXNET_CLEAN_ERROR
):
    """Relative CE per corruption (x100), standard corruptions only
    (`errors` as for `corruption_errors`)."""
    _check_error("clean", clean_error)
    result = {}
    for name, value in errors.items():
        _check_name(name, ALEXNET_ERROR_BY_SEVERITY, "standard corruption")
        ref = alexnet_error(name, value)
        result[name] = (
            100.0
            * (mean_error(value) - clean_error)
            / (ref - alexnet_clean_error)
        )
    return result


def relative_mce(errors, clean_error, alexnet_clean_error=ALEXNET_CLEAN_ERROR):
    """Relative mCE (x100) over the 15 standard corruptions."""
    missing = [c for c in STANDARD_CORRUPTIONS if c not in errors]
    if missing:
        raise ValueError(f"Relative mCE needs errors for {missing}.")
    rel = relative_corruption_errors(
        {c: errors[c] for c in STANDARD_CORRUPTIONS},
        clean_error,
        alexnet_clean_error,
    )
    return float(np.mean(list(rel.values())))


def _pairs(num_frames, noise, step):
    """(reference frame, frame) index pairs compared for one sequence."""
    if noise:
        return [(0, j) for j in range(1, num_frames)]
    pairs = []
    for offset in range(step):
        frames = list(range(offset, num_frames, step))
        pairs += list(zip(frames[:-1], frames[1:], strict=True))
    return pairs


def _check_sequences(array, name, ndim):
    array = np.asarray(array)
    if array.ndim != ndim or array.shape[1] < 2:
        raise ValueError(
            f"{name} must have shape {'[m, n]' if ndim == 2 else '[m, n, k]'}"
            f" with n >= 2 frames; got {array.shape}."
        )
    return array


def flip_probability(predictions, noise=False, step=1):
    """Flip probability of top-1 predictions over perturbation sequences.

    Args:
        predictions: int array [m, n]: top-1 class of frame j of sequence i.
        noise: compare each frame with the first (noise perturbations)
            instead of with the previous one.
        step: difficulty = frame step of the non-noise perturbations.

    Returns:
        FP as a fraction.
    """
    preds = _check_sequences(predictions, "predictions", 2)
    if step < 1 or (not noise and step >= preds.shape[1]):
        raise ValueError(f"step={step!r} must be in [1, {preds.shape[1]}).")
    pairs = np.array(_pairs(preds.shape[1], noise, step))
    flips = preds[:, pairs[:, 0]] != preds[:, pairs[:, 1]]
    return float(flips.mean(axis=1).mean())


def top5_distance(top5, noise=False, step=1):
    """Mean top-5 distance between compared frames (reference definition).

    Args:
        top5: int array [m, n, k >= 5]: the classes of each frame ranked
            by score (best first). Classes outside a frame's top-k count as
            rank k (only ranks below 5 matter).
        noise, step: as for `flip_probability`.
    """
    ranks = _check_sequences(top5, "top5", 3)
    if ranks.shape[2] < 5:
        raise ValueError(f"top5 needs k >= 5 classes; got {ranks.shape}.")
    pairs = _pairs(ranks.shape[1], noise, step)
    per_video = np.zeros(ranks.shape[0])
    for i, video in enumerate(ranks):
        total = 0.0
        for a, b in pairs:
            for pos, cls in enumerate(video[a, :5]):
                hit = np.flatnonzero(video[b] == cls)
                rank = min(int(hit[0]) if hit.size else 5, 5)
                total += abs(pos - rank)
        per_video[i] = total / len(pairs)
    return float(per_video.mean())


def flip_rates(flip_probabilities):
    """FR per perturbation (x100): FP / AlexNet FP."""
    result = {}
    for name, fp in flip_probabilities.items():
        _check_name(name, ALEXNET_FLIP_PROBABILITY, "perturbation")
        result[name] = 100.0 * fp / ALEXNET_FLIP_PROBABILITY[name]
    return result


def mfr(flip_probabilities, perturbations=TEST_PERTURBATIONS):
    """Mean flip rate (x100) over the 10 test perturbations."""
    missing = [p for p in perturbations if p not in flip_probabilities]
    if missing:
        raise ValueError(f"mFR needs flip probabilities for {missing}.")
    fr = flip_rates({p: flip_probabilities[p] for p in perturbations})
    return float(np.mean(list(fr.values())))

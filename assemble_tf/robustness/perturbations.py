"""ImageNet-P perturbation sequences.

Hendrycks & Dietterich, "Benchmarking Neural Network Robustness to Common
Corruptions and Perturbations", ICLR 2019 (arXiv 1903.12261), section 4:
ImageNet-P turns each ImageNet validation image into a short video whose
frames drift through a perturbation; a classifier is scored by how often its
prediction flips between frames (flip rate, mFR over the ten test
perturbations). Assemble-ResNet (Lee et al., arXiv 2001.06268) reports mFR
on such sequences. The perturbations, their frame counts, steps and
constants below are those of the reference generator, hendrycks/robustness
`ImageNet-P/create_p/make_imagenet_p.py` ("Test Data" and "Validation Data"
sections), and the evaluation conventions (noise sequences compared with
frame 1, `<name>_2` / `<name>_3` folders for the harder noise levels) those
of its `ImageNet-P/test.py`. The code is written anew in numpy / OpenCV;
motion blur and the snow layer come from `assemble_tf.robustness.filters`
(an ImageMagick-free re-implementation), so those two perturbations match
the release in their parameters, not bit for bit.

The reference resizes the shorter side of each image to 256 (bilinear),
applies the perturbation and centre-crops 224. The geometric perturbations
(translate, rotate, tilt, scale, shear and the zooms of zoom_blur) warp the
whole resized image before the crop, so the border brings in real content;
the others perturb the crop. `sequence(..., crop_size=224)` does the same
with the resized image as input.

Frames, n = `FRAME_COUNTS[name]`, frame index i = 0..n-1 (frame 1 in the
paper's notation is i = 0):

| name | set | n | frame i | frame 1 |
|---|---|---|---|---|
| gaussian_noise | test | 31 | x + N(0, s), s = .03/.05/.08 | clean |
| shot_noise | test | 31 | Poisson(x l) / l, l = 300/120/60 | clean |
| motion_blur | test | 31 | blur r 10, sigma 3, angle 4(i-30) | angle -120 |
| zoom_blur | test | 31 | mean of zooms 1 + .004k, k = 0..i | clean |
| snow | test | 31 | one layer, blur r 14, sigma 4, angle 4i-150 | angle -150 |
| brightness | test | 31 | HSV value + .02(i-15) | value - .30 |
| translate | test | 41 | shift right by i-20 px | shift -20 |
| rotate | test | 31 | rotate i-15 deg clockwise | -15 deg |
| tilt | test | 31 | 3-D tilt about x and y by i-15 deg | -15 deg |
| scale | test | 31 | scale (2.5i + 40) / 100 about the centre | .40 |
| speckle_noise | validation | 31 | x + x N(0, s), s = .05/.10/.15 | clean |
| gaussian_blur | validation | 31 | Gaussian sigma .25 + .035i | sigma .25 |
| spatter | validation | 31 | a liquid layer flowing down | first layer |
| shear | validation | 31 | x-shear i-15 deg | -15 deg |

Noise frames 2..n are independent noisings of the clean frame 1 (the
evaluation compares each with frame 1); the other sequences are temporal
(consecutive frames are compared). The middle frame of brightness (c = 0),
translate (shift 0), rotate, shear (angle 0) and scale (i = 24, scale 1) is
the clean image up to rounding.

Conventions where the reference depends on library details (documented so
the numbers can be checked):

* Affine warps follow the torchvision 0.2 `affine` the reference ran on:
  forward matrix scale * [[cos a, -sin(a + s)], [sin a, cos(a + s)]] about
  the image centre (a = angle, s = shear; positive a turns clockwise on
  screen), computed as it did: PIL's bilinear affine transform about pixel
  index (W / 2, H / 2), black fill; translate is an exact integer shift.
* The crop offsets are torchvision 0.2.1 CenterCrop's int(round((n - 224)
  / 2.)) (half to even), `center_crop`.
* Tilt is the reference's homography K [R | f] with focal length
  f = sqrt(W^2 + H^2), R = Rx(t) Ry(t) and the image plane at z = 1 (so the
  untilted frame i = 15 is shrunk by f / (f + 1) about the centre),
  bilinear, black fill, on the whole resized image.
* zoom_blur zooms the whole resized image with the same affine transform
  (scale 1.004 k, as the reference's torchvision `affine`), not with
  `filters.clipped_zoom` (ImageNet-C's helper, which crops a whole number
  of pixels and so cannot zoom by 0.4 %); frame i is the truncated float32
  mean of the clean crop and zooms 1..i, as torchvision computed it.
* The constants are the 224-px ones at every size. The reference's 299-px
  generator (`make_imagenet_p_inception.py`) raises six of them for its
  larger frames; no 256-px version exists, so flip rates of sequences made
  at 292 -> 256 (as Assemble-ResNet's 256-px models would need) are not
  comparable with any published mFR.
* Float-to-uint8 conversions truncate (numpy `uint8`, torchvision
  `ToPILImage`) as in the reference; motion blur and snow round, as the
  8-bit ImageMagick output did.
* Brightness is skimage's float64 rgb2hsv / hsv2rgb round trip, as the
  reference's, restated bit for bit: hsv2rgb is V' times per-pixel factors
  of (H, S) (`filters.hsv_factors`), computed once for all 31 frames.
* Scale frame i is (2.5 i + 40) / 100, the reference's expression (the
  float differs from .40 + .025 i in 11 of the 31 frames).
"""

import math
import zlib

import numpy as np

from assemble_tf.robustness import inputs, metrics

# Names (and which ones compare frames with frame 1, as `'noise' in name`
# in the reference test.py) are shared with the metrics tables.
TEST_PERTURBATIONS = metrics.TEST_PERTURBATIONS
VALIDATION_PERTURBATIONS = metrics.VALIDATION_PERTURBATIONS
PERTURBATIONS = metrics.ALL_PERTURBATIONS
NOISE_PERTURBATIONS = metrics.NOISE_PERTURBATIONS
# Warped before the centre crop, as in the reference.
GEOMETRIC_PERTURBATIONS = (
    "zoom_blur",
    "translate",
    "rotate",
    "tilt",
    "scale",
    "shear",
)

FRAME_COUNTS = {name: 31 for name in PERTURBATIONS}
FRAME_COUNTS["translate"] = 41

# Noise level per difficulty 1, 2, 3 (folders name, name_2, name_3).
DIFFICULTY_LEVELS = {
    "gaussian_noise": (0.03, 0.05, 0.08),  # std of additive noise
    "shot_noise": (300.0, 120.0, 60.0),  # Poisson photons per unit
    "speckle_noise": (0.05, 0.10, 0.15),  # std of multiplicative noise
}
DIFFICULTIES = (1, 2, 3)

# Constants of the temporal perturbations.
MOTION_BLUR_RADIUS, MOTION_BLUR_SIGMA = 10.0, 3.0
ZOOM_BLUR_STEP = 0.004
SNOW_LOC, SNOW_SCALE, SNOW_ZOOM, SNOW_THRESHOLD = 0.05, 0.3, 3.0, 0.5
SNOW_BLUR_RADIUS, SNOW_BLUR_SIGMA = 14.0, 4.0
SNOW_MIX = 0.85  # x' = .85 x + .15 max(x, 1.5 grey + .5)
BRIGHTNESS_STEP = 0.02
# Scale (SCALE_STEP_PERCENT i + SCALE_START_PERCENT) / 100, as the reference.
SCALE_START_PERCENT, SCALE_STEP_PERCENT = 40.0, 2.5
GAUSSIAN_BLUR_START, GAUSSIAN_BLUR_STEP, GAUSSIAN_BLUR_TRUNCATE = 0.25, 0.035, 6
SPATTER_LOC, SPATTER_SCALE, SPATTER_SIGMA = 0.65, 0.27, 3.7
SPATTER_THRESHOLD, SPATTER_GAIN = 0.69, 0.6
SPATTER_COLOR = (175.0 / 255, 238.0 / 255, 238.0 / 255)  # pale turquoise
# Per frame the liquid layer is convolved down the rows with this filter
# (numpy `convolve(..., mode="same")`): out[r] = .05 a[r+1] + .1 a[r] +
# .15 a[r-1] + .7 a[r-2].
SPATTER_FLOW = (0.05, 0.1, 0.15, 0.7)


def _check_name(name):
    if name not in FRAME_COUNTS:
        raise ValueError(
            f"Unknown perturbation {name!r}. Valid: test "
            f"{', '.join(TEST_PERTURBATIONS)}; validation "
            f"{', '.join(VALIDATION_PERTURBATIONS)}."
        )


def _check_difficulty(name, difficulty):
    if difficulty not in DIFFICULTIES:
        raise ValueError(
            f"difficulty must be one of {DIFFICULTIES}; received "
            f"{difficulty!r}."
        )
    if difficulty != 1 and name not in NOISE_PERTURBATIONS:
        raise ValueError(
            f"{name} has one sequence; difficulty {difficulty} applies to "
            f"the noise perturbations ({', '.join(NOISE_PERTURBATIONS)}) "
            f"only. For the others the evaluation's difficulty is the frame "
            f"step (test.py compares frames difficulty apart), not a "
            f"different video; generate them with difficulty=1."
        )


def folder_name(name, difficulty=1):
    """The release's folder of a perturbation: `gaussian_noise`,
    `gaussian_noise_2`, ... (difficulty > 1 only for the noise ones)."""
    _check_name(name)
    _check_difficulty(name, difficulty)
    return name if difficulty == 1 else f"{name}_{difficulty}"


def frame_parameters(name, difficulty=1):
    """The parameter that drives each frame, float64 [n].

    gaussian / speckle noise: noise std; shot_noise: Poisson photons per
    unit (0 and inf mean the clean frame 1); motion_blur, snow: blur angle in
    degrees; zoom_blur: zoom of the newest frame in the running mean;
    brightness: value offset; translate: shift in px (right); rotate,
    tilt, shear: degrees; scale: scale factor; gaussian_blur: sigma;
    spatter: frames of flow.
    """
    _check_name(name)
    _check_difficulty(name, difficulty)
    n = FRAME_COUNTS[name]
    i = np.arange(n, dtype=np.float64)
    if name in NOISE_PERTURBATIONS:
        level = DIFFICULTY_LEVELS[name][difficulty - 1]
        clean = np.inf if name == "shot_noise" else 0.0
        return np.where(i == 0, clean, level)
    return {
        "motion_blur": 4.0 * (i - 30),
        "zoom_blur": 1.0 + ZOOM_BLUR_STEP * i,
        "snow": 4.0 * i - 150,
        "brightness": BRIGHTNESS_STEP * (i - 15),
        "translate": i - 20,
        "rotate": i - 15,
        "tilt": i - 15,
        "scale": (SCALE_STEP_PERCENT * i + SCALE_START_PERCENT) / 100,
        "gaussian_blur": GAUSSIAN_BLUR_START + GAUSSIAN_BLUR_STEP * i,
        "spatter": i,
        "shear": i - 15,
    }[name]


# --------------------------------------------------------------------------
# Helpers.


def _check_image(image):
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3 or min(image.shape[:2]) < 1:
        raise ValueError(
            f"image must be uint8 [height, width, 3] RGB; received shape "
            f"{image.shape}."
        )
    if image.dtype != np.uint8:
        raise ValueError(
            f"image must be uint8 (0..255); received dtype {image.dtype}."
        )
    return image


def center_crop(image, size, rounding="round"):
    """The central size x size window of [..., H, W, C] arrays; offsets
    `inputs.crop_offset(H, size, rounding)` and likewise for W ("round":
    torchvision 0.2.1's CenterCrop, as the reference)."""
    height, width = image.shape[-3], image.shape[-2]
    if not 1 <= size <= min(height, width):
        raise ValueError(
            f"crop size {size} does not fit an image of {height} x {width}."
        )
    rounding = inputs.resolve_crop_rounding(rounding, size)
    top = inputs.crop_offset(height, size, rounding)
    left = inputs.crop_offset(width, size, rounding)
    return image[..., top : top + size, left : left + size, :]


def _truncate_uint8(x):
    """[0, 1] floats to uint8 by truncation, as np.uint8(255 * x)."""
    return (np.clip(x, 0, 1) * 255).astype(np.uint8)


def _round_uint8(x):
    return np.clip(np.asarray(x) * 255 + 0.5, 0, 255).astype(np.uint8)


def inverse_affine(height, width, angle=0.0, shear=0.0, scale=1.0):
    """The 6 coefficients torchvision 0.2.1's `affine` hands to PIL.

    PIL maps each output point to an input point (pixel centres at k + .5);
    the centre is (W / 2 + .5, H / 2 + .5) in those coordinates, i.e.
    pixel index (W / 2, H / 2). The forward map is scale * [[cos a,
    -sin(a + s)], [sin a, cos(a + s)]] about it.
    """
    a, s = math.radians(angle), math.radians(shear)
    cx, cy = width * 0.5 + 0.5, height * 0.5 + 0.5
    inverse_scale = 1.0 / scale
    det = math.cos(a + s) * math.cos(a) + math.sin(a + s) * math.sin(a)
    m = [
        math.cos(a + s),
        math.sin(a + s),
        0.0,
        -math.sin(a),
        math.cos(a),
        0.0,
    ]
    # In torchvision's order of operations, so the floats agree exactly.
    m = [inverse_scale / det * v for v in m]
    m[2] += m[0] * -cx + m[1] * -cy
    m[5] += m[3] * -cx + m[4] * -cy
    m[2] += cx
    m[5] += cy
    return m


def _affine(image, **kwargs):
    """torchvision 0.2.1 `affine(..., resample=BILINEAR)`: PIL's bilinear
    affine transform, black fill."""
    from PIL import Image

    height, width = image.shape[:2]
    return np.asarray(
        Image.fromarray(image).transform(
            (width, height),
            Image.Transform.AFFINE,
            inverse_affine(height, width, **kwargs),
            Image.Resampling.BILINEAR,
        )
    )


def tilt_homography(height, width, degrees):
    """The reference's tilt as a 3x3 homography (source -> destination).

    A pixel (x, y) becomes the 3-D point (x - W/2, y - H/2, 1), is rotated
    by Ry(degrees) then Rx(degrees) (Ry with the reference's sign,
    [[c, 0, -s], [0, 1, 0], [s, 0, c]]), pushed back by f = sqrt(W^2 + H^2)
    and projected with focal length f and principal point (W/2, H/2).
    """
    t = math.radians(degrees)
    c, s = math.cos(t), math.sin(t)
    rot_x = np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    rot_y = np.array([[c, 0, -s], [0, 1, 0], [s, 0, c]])
    f = math.hypot(width, height)
    to_centre = np.array(
        [[1, 0, -width / 2], [0, 1, -height / 2], [0, 0, 1]], np.float64
    )
    camera = np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1]])
    push = np.zeros((3, 3))
    push[2, 2] = f  # (x, y, 1) -> + (0, 0, f)
    return camera @ (rot_x @ rot_y @ to_centre + push)


def _rng(seed, name, difficulty):
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an int >= 0; received {seed!r}.")
    if seed < 0:
        raise ValueError(f"seed must be an int >= 0; received {seed}.")
    key = zlib.crc32(name.encode())
    return np.random.default_rng([int(seed), key, int(difficulty)])


# --------------------------------------------------------------------------
# The perturbations. Each takes the uint8 image (the crop, or the whole
# resized image for the geometric ones) and returns uint8 [n, H, W, 3].


def _noise(x, name, rng, difficulty):
    n = FRAME_COUNTS[name] - 1
    level = DIFFICULTY_LEVELS[name][difficulty - 1]
    if name == "gaussian_noise":
        x01 = x.astype(np.float32) / 255
        noise = rng.standard_normal((n,) + x.shape, dtype=np.float32)
        noisy = x01 + np.float32(level) * noise
    elif name == "speckle_noise":
        x01 = x.astype(np.float64) / 255
        noisy = x01 + x01 * rng.normal(0.0, level, (n,) + x.shape)
    else:  # shot_noise
        x01 = x.astype(np.float64) / 255
        noisy = rng.poisson(x01 * level, (n,) + x.shape) / level
    return np.concatenate([x[None], _truncate_uint8(noisy)])


def _motion_blur(x, params):
    from assemble_tf.robustness import filters

    x01 = x.astype(np.float32) / 255
    return np.stack(
        [
            _round_uint8(
                filters.motion_blur(
                    x01, MOTION_BLUR_RADIUS, MOTION_BLUR_SIGMA, float(angle)
                )
            )
            for angle in params
        ]
    )


def _zoom_blur(image, params, crop_size, rounding):
    """Frame i: truncated mean of the crop and its zooms 1.004 .. 1.004 i."""
    zooms = [image] + [_affine(image, scale=float(z)) for z in params[1:]]
    stack = np.stack(zooms)
    if crop_size:
        stack = center_crop(stack, crop_size, rounding)
    # As the reference: float32 ToTensor images summed, divided by the
    # count and truncated back to uint8 (ToPILImage).
    total = np.cumsum(stack.astype(np.float32) / 255, axis=0)
    count = np.arange(1, len(params) + 1, dtype=np.float32)
    return (total / count[:, None, None, None] * 255).astype(np.uint8)


def _snow(x, params, rng):
    import cv2

    from assemble_tf.robustness import filters

    height, width = x.shape[:2]
    x01 = x.astype(np.float32) / 255
    grey = cv2.cvtColor(x01, cv2.COLOR_RGB2GRAY)[..., None]
    base = SNOW_MIX * x01 + (1 - SNOW_MIX) * np.maximum(x01, grey * 1.5 + 0.5)
    # One random layer for the whole sequence, streaked at each angle: the
    # generator is restarted from the same state for every frame.
    layer_seed = rng.integers(0, 2**63)
    frames = []
    for angle in params:
        layer = filters.snow_layer(
            (height, width),
            SNOW_LOC,
            SNOW_SCALE,
            SNOW_ZOOM,
            SNOW_THRESHOLD,
            SNOW_BLUR_RADIUS,
            SNOW_BLUR_SIGMA,
            float(angle),
            np.random.default_rng(layer_seed),
        )
        layer = np.round(layer * 255) / 255  # the reference's 8-bit layer
        flakes = layer + np.rot90(layer, k=2)
        frames.append(_truncate_uint8(base + flakes[..., None]))
    return np.stack(frames)


def _brightness(x, params):
    # The reference: np.uint8(hsv2rgb(V + c clipped) * 255), skimage float64.
    from assemble_tf.robustness import filters

    hue, saturation, value = filters.rgb_to_hsv(x / 255.0)
    factors = filters.hsv_factors(hue, saturation)
    frames = np.empty((len(params),) + x.shape, np.uint8)
    for frame, offset in zip(frames, params, strict=True):
        new_value = np.clip(value + offset, 0, 1)[..., None]
        frame[...] = new_value * factors * 255
    return frames


def _translate(image, params):
    """Exact integer shifts to the right (left for negative), black fill;
    a shift of the whole width or more leaves a black frame (a resize
    below the release's 20-pixel shifts)."""
    frames = np.zeros((len(params),) + image.shape, np.uint8)
    width = image.shape[1]
    for frame, shift in zip(frames, params.astype(int), strict=True):
        if abs(shift) >= width:
            continue
        if shift >= 0:
            frame[:, shift:] = image[:, : width - shift]
        else:
            frame[:, : width + shift] = image[:, -shift:]
    return frames


def _affine_sequence(image, name, params):
    keyword = {"rotate": "angle", "shear": "shear", "scale": "scale"}[name]
    return np.stack([_affine(image, **{keyword: float(p)}) for p in params])


def _tilt(image, params):
    import cv2

    height, width = image.shape[:2]
    return np.stack(
        [
            cv2.warpPerspective(
                image,
                tilt_homography(height, width, float(degrees)),
                (width, height),
                flags=cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_CONSTANT,
                borderValue=(0, 0, 0),
            )
            for degrees in params
        ]
    )


def _gaussian_blur(x, params):
    from scipy import ndimage

    x01 = x.astype(np.float64) / 255
    return np.stack(
        [
            _truncate_uint8(
                ndimage.gaussian_filter(
                    x01,
                    sigma=(sigma, sigma, 0),
                    mode="nearest",
                    truncate=GAUSSIAN_BLUR_TRUNCATE,
                )
            )
            for sigma in params
        ]
    )


def spatter_flow(layer):
    """One frame of flow: numpy `convolve(column, SPATTER_FLOW, "same")`
    down every column, zeros beyond the edges."""
    w0, w1, w2, w3 = SPATTER_FLOW
    padded = np.pad(layer, ((2, 1), (0, 0)))
    return (
        w0 * padded[3:]
        + w1 * padded[2:-1]
        + w2 * padded[1:-2]
        + w3 * padded[:-3]
    )


def _spatter(x, params, rng):
    import cv2
    from scipy import ndimage

    x01 = x.astype(np.float32) / 255
    liquid = rng.normal(SPATTER_LOC, SPATTER_SCALE, x.shape[:2])
    liquid = ndimage.gaussian_filter(liquid, SPATTER_SIGMA, mode="nearest")
    liquid[liquid < SPATTER_THRESHOLD] = 0
    colour = np.array(SPATTER_COLOR, np.float32)
    emboss = np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]], np.float32)
    frames = []
    for _ in params:
        drops = np.clip(liquid * 255, 0, 255).astype(np.uint8)
        edges = 255 - cv2.Canny(drops, 50, 150)
        dist = cv2.distanceTransform(edges, cv2.DIST_L2, 5)
        dist = np.minimum(dist, 20)
        dist = cv2.blur(dist, (3, 3)).astype(np.uint8)
        dist = cv2.equalizeHist(dist)
        dist = cv2.filter2D(dist, cv2.CV_8U, emboss)
        dist = cv2.blur(dist, (3, 3)).astype(np.float32)
        mask = drops.astype(np.float32) * dist
        peak = mask.max()
        mask = mask * (SPATTER_GAIN / peak) if peak > 0 else mask
        frames.append(_truncate_uint8(x01 + mask[..., None] * colour))
        liquid = spatter_flow(liquid)
    return np.stack(frames)


def sequence(
    image, name, seed=0, difficulty=1, crop_size=None, crop_rounding="auto"
):
    """The ImageNet-P sequence of one clean image.

    Frame 1 (index 0) is the clean image for gaussian_noise, shot_noise,
    speckle_noise and zoom_blur, and the first perturbed frame (the start of
    the sweep, e.g. a -20 px shift or -15 degree rotation) for the others,
    exactly as the reference writes them; see the module docstring for each
    sweep.

    Args:
        image: uint8 [H, W, 3] RGB. With `crop_size`, the shorter-side
            resized image (the reference: 256); without, the image itself
            is perturbed and frames keep its size (geometric warps then
            fill the uncovered border with black).
        name: one of `PERTURBATIONS`.
        seed: int >= 0. Noise, snow and spatter draw from
            np.random.default_rng([seed, crc32(name), difficulty]); no
            global numpy state is used or changed. Same seed, same frames.
        difficulty: 1, 2 or 3 for the noise perturbations (the noise level,
            `DIFFICULTY_LEVELS`); must be 1 for the others.
        crop_size: int or None. Frames are the central crop_size squares
            (`center_crop`); geometric perturbations warp the whole image
            first.
        crop_rounding: the crop offset's rounding, one of
            `inputs.CROP_ROUNDINGS` ("auto": the reference's half-to-even
            rounding for a 224 crop, floor otherwise).

    Returns:
        uint8 [FRAME_COUNTS[name], H', W', 3], H' = W' = crop_size or the
        input size.

    Raises:
        ValueError: unknown name (the message lists the valid ones), bad
            image, seed, difficulty or crop_size.
    """
    _check_name(name)
    _check_difficulty(name, difficulty)
    image = _check_image(image)
    if crop_size is not None:
        if isinstance(crop_size, bool) or not isinstance(
            crop_size, (int, np.integer)
        ):
            raise ValueError(
                f"crop_size must be an int; received {crop_size!r}."
            )
        center_crop(image, int(crop_size), crop_rounding)  # validates
    rng = _rng(seed, name, difficulty)
    params = frame_parameters(name, difficulty)

    if name in GEOMETRIC_PERTURBATIONS:
        if name == "zoom_blur":
            return _zoom_blur(image, params, crop_size, crop_rounding)
        if name == "translate":
            frames = _translate(image, params)
        elif name == "tilt":
            frames = _tilt(image, params)
        else:
            frames = _affine_sequence(image, name, params)
        if crop_size:
            return center_crop(frames, crop_size, crop_rounding).copy()
        return frames

    x = center_crop(image, crop_size, crop_rounding) if crop_size else image
    x = np.ascontiguousarray(x)
    if name in NOISE_PERTURBATIONS:
        return _noise(x, name, rng, difficulty)
    if name == "motion_blur":
        return _motion_blur(x, params)
    if name == "snow":
        return _snow(x, params, rng)
    if name == "brightness":
        return _brightness(x, params)
    if name == "gaussian_blur":
        return _gaussian_blur(x, params)
    return _spatter(x, params, rng)

"""The reference ImageNet-C corruptions, restated plainly (a test helper).

A restatement, in our own structure, of the 19 corruption functions of
hendrycks/robustness `ImageNet-C/create_c/make_imagenet_c.py` (written for
224 x 224 images) as generalised to other sizes by the Assemble generator,
clovaai/assembled-cnn `datasets/CE_dataset/CE_validation_generator.py`
(which replaces the hard-coded 224 with its crop size). It exists to check
`assemble_tf.robustness.corruptions` against the reference's own formulas
and libraries, so it deliberately uses what the reference uses: the global
numpy RNG (`np.random`; the caller seeds it with `np.random.seed(k)`),
scikit-image's `gaussian` / `random_noise` / `rgb2hsv`, scipy's
`ndimage.zoom` / `map_coordinates`, OpenCV, and PIL for JPEG and BOX
resizing. It is slower than ours (glass blur runs the reference's
per-pixel loop) and is not part of the package.

The output is what the generator hands to its JPEG writer,
`Image.fromarray(np.uint8(img))`: the float result in [0, 255] truncated to
uint8 (pixelate / JPEG return PIL images, which np.uint8 turns into their
uint8 pixels). The generator then saves a quality-85 JPEG; that storage step
is not part of the corruption and is left out here, as in `corrupt`.

Where the reference cannot be restated with its own tools:

* ImageMagick (Wand) `motion_blur` (the motion_blur corruption and the snow
  streaks) is replaced by `assemble_tf.robustness.filters.motion_blur`, our
  restatement of ImageMagick's kernel; its result is rounded to 8 bits as
  ImageMagick's PNG output is. So these two corruptions compare the rest of
  the pipeline, not the kernel.
* Frost reads the release's photographs frost1-5 from the
  `imagecorruptions` wheel's package data (`FROST_DIR`, located without
  importing that package; the files are byte-identical to the release's).
  Without the wheel, `FROST_DIR` is None and frost cannot be restated.
* `skimage.util.random_noise` (impulse noise) no longer reads the global
  numpy RNG in current scikit-image (it takes its own `rng`); we pass it a
  seed drawn from `np.random`, so `np.random.seed(k)` still fixes the
  result.
* scikit-image's `multichannel=True` is spelled `channel_axis=-1` today.
* The fog fractal is 256 x 256 in the reference (cropped to the image); we
  use the next power of two >= max(256, H, W) so that larger images work
  (the same as the reference up to 256 px).

`python -m tests.robustness.reference_imagenet_c` prints a markdown table
of how closely our corruptions follow this restatement on scikit-image's
photos (see `fidelity_table`).
"""

import functools
import importlib.util
import io
import os
import sys

import cv2
import numpy as np
import skimage.color
import skimage.util
from PIL import Image
from scipy import ndimage
from skimage.filters import gaussian

from assemble_tf.robustness import corruptions, filters

# ---------------------------------------------------------------- helpers


def _skgauss(x, sigma, **kwargs):
    """skimage's Gaussian over the two image axes of an H x W x C array."""
    return gaussian(x, sigma=sigma, channel_axis=-1, **kwargs)


def _disk(radius, alias_blur):
    """The reference's anti-aliased defocus disk."""
    half = 8 if radius <= 8 else radius
    ksize = (3, 3) if radius <= 8 else (5, 5)
    grid = np.arange(-half, half + 1)
    xx, yy = np.meshgrid(grid, grid)
    disk = (xx**2 + yy**2 <= radius**2).astype(np.float32)
    disk /= disk.sum()
    return cv2.GaussianBlur(disk, ksize=ksize, sigmaX=alias_blur)


def _clipped_zoom(img, zoom_factor):
    """The reference's centre crop + scipy zoom + centre trim, per axis
    (the Assemble generator's H x W version)."""
    h, w = img.shape[:2]
    ch = int(np.ceil(h / zoom_factor))
    cw = int(np.ceil(w / zoom_factor))
    top, left = (h - ch) // 2, (w - cw) // 2
    zoomed = ndimage.zoom(
        img[top : top + ch, left : left + cw],
        (zoom_factor, zoom_factor, 1),
        order=1,
    )
    trim_h = (zoomed.shape[0] - h) // 2
    trim_w = (zoomed.shape[1] - w) // 2
    return zoomed[trim_h : trim_h + h, trim_w : trim_w + w]


def _plasma(mapsize, decay):
    """The reference's diamond-square fog map (global RNG), in [0, 1]."""
    grid = np.zeros((mapsize, mapsize))
    step, wibble = mapsize, 100.0

    def noisy(total):
        return total / 4 + wibble * np.random.uniform(
            -wibble, wibble, total.shape
        )

    while step >= 2:
        half = step // 2
        corners = grid[0:mapsize:step, 0:mapsize:step]
        squares = corners + np.roll(corners, -1, axis=0)
        squares += np.roll(squares, -1, axis=1)
        grid[half:mapsize:step, half:mapsize:step] = noisy(squares)
        centres = grid[half:mapsize:step, half:mapsize:step]
        corners = grid[0:mapsize:step, 0:mapsize:step]
        left_right = (
            centres
            + np.roll(centres, 1, axis=0)
            + corners
            + np.roll(corners, -1, axis=1)
        )
        grid[0:mapsize:step, half:mapsize:step] = noisy(left_right)
        up_down = (
            centres
            + np.roll(centres, 1, axis=1)
            + corners
            + np.roll(corners, -1, axis=0)
        )
        grid[half:mapsize:step, 0:mapsize:step] = noisy(up_down)
        step = half
        wibble /= decay
    grid -= grid.min()
    return grid / grid.max()


def glass_draws(max_delta, visits):
    """The (dx, dy) offsets that glass blur's per-pixel
    `np.random.randint(-d, d, size=(2,))` calls return over `visits`
    pixels, drawn in one call: legacy `randint` takes its values one after
    another from the global generator and carries nothing over between
    calls, so the numbers and the generator's final state are the same
    (checked by the tests)."""
    return np.random.randint(-max_delta, max_delta, size=(visits, 2))


def _imagemagick_motion_blur(image_u8, radius, sigma, angle):
    """Stands in for Wand's MagickMotionBlurImage on an 8-bit PNG: our
    kernel (`filters.motion_blur`), the result rounded to 8 bits."""
    out = filters.motion_blur(image_u8.astype(np.float32), radius, sigma, angle)
    return np.rint(np.clip(out, 0, 255)).astype(np.uint8)


# ---------------------------------------------------------- corruptions
# Each takes the uint8 H x W x 3 image and the severity's constants and
# returns what the reference returns (floats in 0..255, or a uint8 array /
# PIL image), before the generator's np.uint8.


def _gaussian_noise(img, c):
    x = img / 255.0
    return np.clip(x + np.random.normal(size=x.shape, scale=c), 0, 1) * 255


def _shot_noise(img, c):
    x = img / 255.0
    return np.clip(np.random.poisson(x * c) / c, 0, 1) * 255


def _impulse_noise(img, c):
    seed = np.random.randint(2**32)  # see the module docstring
    x = skimage.util.random_noise(img / 255.0, mode="s&p", amount=c, rng=seed)
    return np.clip(x, 0, 1) * 255


def _speckle_noise(img, c):
    x = img / 255.0
    noisy = x + x * np.random.normal(size=x.shape, scale=c)
    return np.clip(noisy, 0, 1) * 255


def _gaussian_blur(img, c):
    return np.clip(_skgauss(img / 255.0, c), 0, 1) * 255


def _glass_blur(img, c):
    sigma, d, iterations = c
    x = np.uint8(_skgauss(img / 255.0, sigma) * 255)
    height, width = x.shape[:2]
    visits = max(height - 2 * d, 0) * max(width - 2 * d, 0)
    for _ in range(iterations):
        # The reference calls np.random.randint(-d, d, size=(2,)) at every
        # visited pixel; one call for the whole pass returns the same
        # numbers in the same order (`glass_draws`) in a fraction of the
        # time.
        draws = iter(glass_draws(d, visits).tolist())
        for h in range(height - d, d, -1):
            for w in range(width - d, d, -1):
                dx, dy = next(draws)
                h2, w2 = h + dy, w + dx
                # Literally the reference's "swap": both right-hand sides
                # are views, so (h, w) takes the value of (h2, w2), which
                # keeps it (a copy, not a swap).
                x[h, w], x[h2, w2] = x[h2, w2], x[h, w]
    return np.clip(_skgauss(x / 255.0, sigma), 0, 1) * 255


def _defocus_blur(img, c):
    x = img / 255.0
    kernel = _disk(*c)
    blurred = np.stack(
        [cv2.filter2D(x[:, :, k], -1, kernel) for k in range(3)], axis=-1
    )
    return np.clip(blurred, 0, 1) * 255


def _motion_blur(img, c):
    angle = np.random.uniform(-45, 45)
    return _imagemagick_motion_blur(img, c[0], c[1], angle)


def _zoom_blur(img, c):
    stop, step = c
    zooms = np.arange(1, stop, step)
    x = (img / 255.0).astype(np.float32)
    total = np.zeros_like(x)
    for z in zooms:
        total += _clipped_zoom(x, z)
    return np.clip((x + total) / (len(zooms) + 1), 0, 1) * 255


def _snow(img, c):
    loc, scale, zoom, thr, radius, sigma, blend = c
    x = np.array(img, dtype=np.float32) / 255.0
    h, w = x.shape[:2]
    layer = np.random.normal(size=(h, w), loc=loc, scale=scale)
    layer = _clipped_zoom(layer[..., None], zoom)
    layer[layer < thr] = 0
    layer8 = (np.clip(layer[..., 0], 0, 1) * 255).astype(np.uint8)
    angle = np.random.uniform(-135, -45)
    flakes = _imagemagick_motion_blur(layer8, radius, sigma, angle) / 255.0
    flakes = flakes[..., None]
    grey = cv2.cvtColor(x, cv2.COLOR_RGB2GRAY).reshape(h, w, 1)
    x = blend * x + (1 - blend) * np.maximum(x, grey * 1.5 + 0.5)
    return np.clip(x + flakes + np.rot90(flakes, k=2), 0, 1) * 255


def _find_frost_dir():
    """imagecorruptions/frost of the installed wheel, or None (find_spec
    locates a top-level package without running its __init__)."""
    spec = importlib.util.find_spec("imagecorruptions")
    for root in (spec and spec.submodule_search_locations) or ():
        folder = os.path.join(root, "frost")
        if os.path.isdir(folder):
            return folder
    return None


FROST_DIR = _find_frost_dir()
_FROST_NAMES = ("frost1.png", "frost2.png", "frost3.png", "frost4.jpg")
_FROST_NAMES += ("frost5.jpg", "frost6.jpg")


@functools.cache
def _imread(name):
    """cv2.imread of a frost photo (BGR), read once: the release reads the
    file on every call, with the same result."""
    return cv2.imread(os.path.join(FROST_DIR, name))


def _frost(img, c):
    if FROST_DIR is None:
        raise RuntimeError("frost needs the imagecorruptions wheel's photos.")
    h, w = img.shape[:2]
    frost = _imread(_FROST_NAMES[np.random.randint(5)])
    top = np.random.randint(0, frost.shape[0] - h)
    left = np.random.randint(0, frost.shape[1] - w)
    frost = frost[top : top + h, left : left + w][..., [2, 1, 0]]
    return np.clip(c[0] * np.array(img) + c[1] * frost, 0, 255)


def _fog(img, c):
    strength, decay = c
    x = img / 255.0
    h, w = x.shape[:2]
    mapsize = 256
    while mapsize < max(h, w):
        mapsize *= 2
    peak = x.max()
    x += strength * _plasma(mapsize, decay)[:h, :w][..., None]
    return np.clip(x * peak / (peak + strength), 0, 1) * 255


def _brightness(img, c):
    hsv = skimage.color.rgb2hsv(img / 255.0)
    hsv[:, :, 2] = np.clip(hsv[:, :, 2] + c, 0, 1)
    return np.clip(skimage.color.hsv2rgb(hsv), 0, 1) * 255


def _contrast(img, c):
    x = img / 255.0
    means = x.mean(axis=(0, 1), keepdims=True)
    return np.clip((x - means) * c + means, 0, 1) * 255


def _elastic_transform(img, c):
    alpha, sigma, affine = c
    image = np.array(img, dtype=np.float32) / 255.0
    shape = image.shape
    # As the reference: (H // 2, W // 2) used as (x, y) points, which is
    # only the centre of a square image (ours swaps them for H != W).
    centre = np.float32(shape[:2]) // 2
    size = min(shape[:2]) // 3
    src = np.float32(
        [
            centre + size,
            [centre[0] + size, centre[1] - size],
            centre - size,
        ]
    )
    dst = src + np.random.uniform(-affine, affine, size=src.shape).astype(
        np.float32
    )
    matrix = cv2.getAffineTransform(src, dst)
    image = cv2.warpAffine(
        image, matrix, shape[:2][::-1], borderMode=cv2.BORDER_REFLECT_101
    )

    def field():
        noise = np.random.uniform(-1, 1, size=shape[:2])
        smooth = gaussian(noise, sigma, mode="reflect", truncate=3)
        return (smooth * alpha).astype(np.float32)[..., None]

    dx = field()
    dy = field()
    xs, ys, zs = np.meshgrid(
        np.arange(shape[1]), np.arange(shape[0]), np.arange(shape[2])
    )
    coords = (
        np.reshape(ys + dy, (-1, 1)),
        np.reshape(xs + dx, (-1, 1)),
        np.reshape(zs, (-1, 1)),
    )
    warped = ndimage.map_coordinates(image, coords, order=1, mode="reflect")
    return np.clip(warped.reshape(shape), 0, 1) * 255


def _pixelate(img, c):
    h, w = img.shape[:2]
    pil = Image.fromarray(img)
    pil = pil.resize((int(w * c), int(h * c)), Image.BOX)
    return pil.resize((w, h), Image.BOX)


def _jpeg_compression(img, c):
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=c)
    return Image.open(buf)


def _spatter(img, c):
    loc, scale, sigma, thr, intensity, mode = c
    x = np.array(img, dtype=np.float32) / 255.0
    liquid = np.random.normal(size=x.shape[:2], loc=loc, scale=scale)
    liquid = gaussian(liquid, sigma=sigma)
    liquid[liquid < thr] = 0
    if mode == 0:  # water
        liquid = (liquid * 255).astype(np.uint8)
        dist = 255 - cv2.Canny(liquid, 50, 150)
        dist = cv2.distanceTransform(dist, cv2.DIST_L2, 5)
        _, dist = cv2.threshold(dist, 20, 20, cv2.THRESH_TRUNC)
        dist = cv2.blur(dist, (3, 3)).astype(np.uint8)
        dist = cv2.equalizeHist(dist)
        emboss = np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]])
        dist = cv2.filter2D(dist, cv2.CV_8U, emboss)
        dist = cv2.blur(dist, (3, 3)).astype(np.float32)
        mask = cv2.cvtColor(liquid * dist, cv2.COLOR_GRAY2BGRA)
        mask /= np.max(mask, axis=(0, 1))
        mask *= intensity
        ones = np.ones_like(mask[..., :1])
        colour = np.concatenate(
            [v / 255.0 * ones for v in (175, 238, 238)], axis=2
        )
        colour = cv2.cvtColor(colour, cv2.COLOR_BGR2BGRA)
        x = cv2.cvtColor(x, cv2.COLOR_BGR2BGRA)
        out = np.clip(x + mask * colour, 0, 1)
        return cv2.cvtColor(out, cv2.COLOR_BGRA2BGR) * 255
    # mud
    mask = np.where(liquid > thr, 1, 0).astype(np.float32)
    mask = gaussian(mask, sigma=intensity)
    mask[mask < 0.8] = 0
    ones = np.ones_like(x[..., :1])
    colour = np.concatenate([v / 255.0 * ones for v in (63, 42, 20)], axis=2)
    colour *= mask[..., None]
    x *= 1 - mask[..., None]
    return np.clip(x + colour, 0, 1) * 255


def _saturate(img, c):
    hsv = skimage.color.rgb2hsv(img / 255.0)
    hsv[:, :, 1] = np.clip(hsv[:, :, 1] * c[0] + c[1], 0, 1)
    return np.clip(skimage.color.hsv2rgb(hsv), 0, 1) * 255


_REFERENCE = {
    "gaussian_noise": _gaussian_noise,
    "shot_noise": _shot_noise,
    "impulse_noise": _impulse_noise,
    "defocus_blur": _defocus_blur,
    "glass_blur": _glass_blur,
    "motion_blur": _motion_blur,
    "zoom_blur": _zoom_blur,
    "snow": _snow,
    "frost": _frost,
    "fog": _fog,
    "brightness": _brightness,
    "contrast": _contrast,
    "elastic_transform": _elastic_transform,
    "pixelate": _pixelate,
    "jpeg_compression": _jpeg_compression,
    "speckle_noise": _speckle_noise,
    "gaussian_blur": _gaussian_blur,
    "spatter": _spatter,
    "saturate": _saturate,
}
# zoom_blur's reference constants are the np.arange(1, stop, step) ranges.
_ZOOM = ((1.11, 0.01), (1.16, 0.01), (1.21, 0.02), (1.26, 0.02), (1.31, 0.03))


def reference_corrupt(x_uint8, name, severity):
    """The reference corruption `name` at `severity`, as the generator
    stores it before JPEG encoding (np.uint8 of the result).

    Random corruptions draw from the global numpy RNG, as the reference
    does: call `np.random.seed(k)` first for a reproducible result.

    Args:
      x_uint8: uint8 H x W x 3 RGB image (the generator's resized crop).
      name: one of `corruptions.CORRUPTIONS`.
      severity: 1..5.

    Returns:
      uint8 H x W x 3 array.
    """
    corruptions.validate_name(name)
    corruptions.validate_severity(severity)
    img = np.ascontiguousarray(x_uint8, dtype=np.uint8)
    if name == "zoom_blur":
        c = _ZOOM[severity - 1]
    else:
        c = corruptions.PARAMS[name][severity - 1]
    return np.uint8(_REFERENCE[name](img, c))


# ------------------------------------------------------- fidelity table

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")
DETERMINISTIC = tuple(
    n for n in corruptions.CORRUPTIONS if n not in corruptions.RANDOM
)


def load_photos(names=PHOTOS, resize=256, crop=224):
    """scikit-image sample photos, resized and centre-cropped as the
    ImageNet-C generator does."""
    import skimage.data

    return [
        corruptions.resize_center_crop(getattr(skimage.data, n)(), resize, crop)
        for n in names
    ]


def deterministic_diff(photos, name, severity):
    """|ours - reference| in grey levels (int array) over `photos`."""
    diffs = [
        np.abs(
            corruptions.corrupt(p, name, severity).astype(int)
            - reference_corrupt(p, name, severity).astype(int)
        )
        for p in photos
    ]
    return np.concatenate([d.ravel() for d in diffs])


def strengths(photos, name, severity, n_seeds):
    """Mean |corrupted - clean| (grey levels) per (photo, seed), ours and
    the reference's.

    Photo i gets seeds i * n_seeds .. (i + 1) * n_seeds - 1 (ours through
    `corrupt(..., seed=k)`, the reference after `np.random.seed(k)`), so
    that no two photos share a noise field and every pair is an independent
    draw. The global numpy state is restored afterwards.

    Returns:
      (ours, ref): float arrays [len(photos), n_seeds].
    """
    ours = np.zeros((len(photos), n_seeds))
    ref = np.zeros_like(ours)
    state = np.random.get_state()
    try:
        for i, photo in enumerate(photos):
            clean = photo.astype(np.float64)
            for j in range(n_seeds):
                seed = i * n_seeds + j
                out = corruptions.corrupt(photo, name, severity, seed=seed)
                ours[i, j] = np.abs(out - clean).mean()
                np.random.seed(seed)
                out = reference_corrupt(photo, name, severity)
                ref[i, j] = np.abs(out - clean).mean()
    finally:
        np.random.set_state(state)
    return ours, ref


def ratio_and_error(ours, ref):
    """Strength ratio ours / ref and its standard error estimated from the
    seed-to-seed spread (relative std per photo, pooled over photos, of
    ours and ref, divided by sqrt(number of pairs))."""
    ratio = ours.mean() / ref.mean()
    if ours.shape[1] < 2:
        return ratio, float("nan")

    def spread(a):
        return np.sqrt(np.mean((a.std(1, ddof=1) / a.mean(1)) ** 2))

    error = np.hypot(spread(ours), spread(ref)) / np.sqrt(ours.size)
    return ratio, ratio * error


def fidelity_table(photos, n_seeds):
    """Markdown lines: per corruption, how closely ours follows the
    reference restatement. Deterministic: |ours - ref| in grey levels over
    all severities and photos. Random: the strength ratio ours / ref per
    severity over photos x seeds, and the largest standard error of those
    ratios (from the seed-to-seed spread)."""
    lines = [
        f"{len(photos)} photos (scikit-image, resized 256, crop 224); "
        f"random corruptions: {n_seeds} seeds per photo.",
        "",
        "| corruption | kind | max abs diff | mean abs diff | within 1 (%) "
        "| ratio s1 | s2 | s3 | s4 | s5 | ratio SE |",
        "| --- | --- | --: | --: | --: | --: | --: | --: | --: | --: | --: |",
    ]
    for name in corruptions.CORRUPTIONS:
        if name in DETERMINISTIC:
            diff = np.concatenate(
                [deterministic_diff(photos, name, s) for s in range(1, 6)]
            )
            lines.append(
                f"| {name} | deterministic | {diff.max()} "
                f"| {diff.mean():.3f} | {100 * (diff <= 1).mean():.2f} "
                "| | | | | | |"
            )
        else:
            cells, errors = [], []
            for s in range(1, 6):
                ratio, error = ratio_and_error(
                    *strengths(photos, name, s, n_seeds)
                )
                cells.append(f"{ratio:.3f}")
                errors.append(error)
            lines.append(
                f"| {name} | random | | | | {' | '.join(cells)} "
                f"| {max(errors):.3f} |"
            )
    return lines


def main(argv=None):
    """Prints the fidelity table: the 4 photos, `argv[0]` seeds per photo
    for the random corruptions (default 4)."""
    argv = sys.argv[1:] if argv is None else argv
    n_seeds = int(argv[0]) if argv else 4
    for line in fidelity_table(load_photos(), n_seeds):
        print(line, flush=True)


if __name__ == "__main__":
    main()

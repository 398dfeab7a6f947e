"""Low-level image filters for the ImageNet-C / ImageNet-P corruptions.

Hendrycks & Dietterich, "Benchmarking Neural Network Robustness to Common
Corruptions and Perturbations", ICLR 2019 (arXiv 1903.12261) build their
corruptions from a handful of primitives: a disk (defocus) kernel, an
ImageMagick motion blur, a centre zoom, a diamond-square plasma fractal, a
snow-flake layer and photographs of frost. Assemble-ResNet (Lee et al.,
arXiv 2001.06268, github.com/clovaai/assembled-cnn) regenerates the sets with
the same primitives at 224 and 256 px.

This module re-implements those primitives with vectorised numpy / OpenCV so
that no ImageMagick (Wand) install and no frost photographs are needed. The
parameters and their meaning follow hendrycks/robustness
`ImageNet-C/create_c/make_imagenet_c.py` and bethgelab/imagecorruptions; the
code is our own. Differences from the reference are documented per function:

* `motion_blur` builds ImageMagick's `-motion-blur` kernel explicitly.
* `clipped_zoom` zooms about the exact centre with one affine warp and works
  for non-square images (the reference crops a square).
* `frost_texture` is SYNTHETIC: procedurally generated ice crystals in place
  of the reference's frost1-5 photographs.

Images are float32 arrays in [0, 1], HxW or HxWxC, unless stated otherwise.
Every random function takes an explicit `np.random.Generator`.
"""

import functools
import math

import cv2
import numpy as np

__all__ = [
    "disk_kernel",
    "gaussian",
    "motion_blur_kernel",
    "motion_blur",
    "clipped_zoom",
    "plasma_fractal",
    "snow_layer",
    "frost_texture",
    "local_shuffle",
]


def _check_image(image, name="image"):
    image = np.asarray(image)
    if image.ndim not in (2, 3) or min(image.shape[:2]) < 1:
        raise ValueError(
            f"{name} must be HxW or HxWxC with H, W >= 1, got shape "
            f"{image.shape}."
        )
    return image


def disk_kernel(radius, alias_blur):
    """Returns the normalised, Gaussian-smoothed disk used by defocus blur.

    As in ImageNet-C: the aliased disk x^2 + y^2 <= radius^2 is drawn on a
    17x17 grid for radius <= 8 (a (2r+1)^2 grid above), normalised to sum 1
    and smoothed by a 3x3 (5x5 for radius > 8) Gaussian of sigma
    `alias_blur` to anti-alias its rim.

    Args:
      radius: disk radius in pixels, > 0.
      alias_blur: sigma of the anti-aliasing Gaussian, > 0.

    Returns:
      float32 square kernel of odd size that sums to 1 (up to rounding).
    """
    if not radius > 0:
        raise ValueError(f"disk_kernel radius must be > 0, got {radius!r}.")
    if not alias_blur > 0:
        raise ValueError(
            f"disk_kernel alias_blur must be > 0, got {alias_blur!r}."
        )
    half = 8 if radius <= 8 else int(math.ceil(radius))
    ksize = 3 if radius <= 8 else 5
    coords = np.arange(-half, half + 1, dtype=np.float32)
    inside = (coords[None, :] ** 2 + coords[:, None] ** 2) <= radius**2
    kernel = inside.astype(np.float32)
    kernel /= kernel.sum()
    return cv2.GaussianBlur(kernel, (ksize, ksize), alias_blur)


def gaussian(image, sigma, truncate=4.0, mode="nearest"):
    """Gaussian blur equal to `skimage.filters.gaussian` on float images.

    The kernel radius is int(truncate * sigma + 0.5) as in scipy.ndimage;
    mode "nearest" (edge replicate, skimage's default) or "reflect"
    (d c b a | a b c d, scipy's "reflect"). Channels are blurred
    independently. Uses OpenCV's separable filter (much faster than scipy).

    Args:
      image: float array HxW or HxWxC (C <= 4 for one OpenCV call).
      sigma: standard deviation in pixels, >= 0 (0 returns a copy).
      truncate: kernel half-width in sigmas.
      mode: "nearest" or "reflect".

    Returns:
      float32 array of the input's shape.
    """
    image = _check_image(image).astype(np.float32, copy=False)
    if sigma < 0:
        raise ValueError(f"gaussian sigma must be >= 0, got {sigma!r}.")
    borders = {"nearest": cv2.BORDER_REPLICATE, "reflect": cv2.BORDER_REFLECT}
    if mode not in borders:
        raise ValueError(
            f"gaussian mode must be one of {sorted(borders)}, got {mode!r}."
        )
    if sigma == 0:
        return image.copy()
    radius = int(truncate * sigma + 0.5)
    ksize = 2 * radius + 1
    out = cv2.GaussianBlur(
        image, (ksize, ksize), sigma, sigmaY=sigma, borderType=borders[mode]
    )
    return out.reshape(image.shape)


def _motion_taps(radius, sigma, angle_deg):
    """ImageMagick MotionBlurImage taps: (weights, dx, dy), merged."""
    if not radius > 0:
        raise ValueError(f"motion blur radius must be > 0, got {radius!r}.")
    if not sigma > 0:
        raise ValueError(f"motion blur sigma must be > 0, got {sigma!r}.")
    width = 2 * int(math.ceil(radius)) + 1
    i = np.arange(width, dtype=np.float64)
    weights = np.exp(-(i**2) / (2.0 * sigma**2))
    weights /= weights.sum()
    theta = math.radians(angle_deg)
    # ImageMagick rounds with ceil(v - 0.5) (ties go down).
    dx = np.ceil(i * math.cos(theta) - 0.5).astype(np.int64)
    dy = np.ceil(i * math.sin(theta) - 0.5).astype(np.int64)
    # Several taps can round to the same pixel: add their weights.
    keys, inverse = np.unique(
        np.stack([dy, dx], 1), axis=0, return_inverse=True
    )
    merged = np.bincount(inverse.ravel(), weights=weights)
    return merged, keys[:, 1], keys[:, 0]


def motion_blur_kernel(radius, sigma, angle_deg):
    """Returns ImageMagick's `-motion-blur RxS+A` as a 2-D correlation kernel.

    ImageMagick's MotionBlurImage uses width = 2*ceil(radius)+1 taps with
    weights exp(-i^2 / (2 sigma^2)), i = 0..width-1 (normalised to sum 1):
    a ONE-SIDED Gaussian-weighted line. Tap i reads the pixel at offset
    (round(i cos A), round(i sin A)) in (x right, y down) image coordinates,
    so the line starts at the pixel itself and points along the angle A; a
    bright dot is smeared towards -A. Most of the weight lies within ~2 sigma
    of the pixel, so the visible streak is ~min(2 sigma, 2 radius) long.

    Args:
      radius: ImageMagick radius, > 0 (the line has 2*ceil(radius)+1 taps).
      sigma: ImageMagick sigma, > 0.
      angle_deg: direction in degrees, 0 = +x (right), 90 = +y (down).

    Returns:
      float32 (2n+1)x(2n+1) kernel, n = 2*ceil(radius), summing to 1, with
      the origin at the centre; use with correlation (cv2.filter2D).
    """
    weights, dx, dy = _motion_taps(radius, sigma, angle_deg)
    n = 2 * int(math.ceil(radius))
    kernel = np.zeros((2 * n + 1, 2 * n + 1), np.float64)
    np.add.at(kernel, (dy + n, dx + n), weights)
    return kernel.astype(np.float32)


def motion_blur(image, radius, sigma, angle_deg):
    """Linear motion blur that replaces ImageMagick's `-motion-blur`.

    Our own implementation of the kernel described in `motion_blur_kernel`:
    out(x, y) = sum_i w_i * in(x + round(i cos A), y + round(i sin A)), with
    edge pixels replicated (ImageMagick's default "edge" virtual pixels).
    Computed as a weighted sum of shifted copies of an edge-padded array,
    which is exact and faster than a dense 2-D convolution.

    Args:
      image: float array HxW or HxWxC.
      radius: ImageMagick radius, > 0.
      sigma: ImageMagick sigma, > 0.
      angle_deg: direction in degrees (0 = right, 90 = down).

    Returns:
      float32 array of the input's shape.
    """
    image = _check_image(image).astype(np.float32, copy=False)
    weights, dx, dy = _motion_taps(radius, sigma, angle_deg)
    h, w = image.shape[:2]
    top, bottom = max(0, -dy.min()), max(0, dy.max())
    left, right = max(0, -dx.min()), max(0, dx.max())
    pad = [(top, bottom), (left, right)] + [(0, 0)] * (image.ndim - 2)
    padded = np.pad(image, pad, mode="edge")
    out = np.zeros_like(image)
    for weight, ox, oy in zip(weights, dx, dy, strict=True):
        y0, x0 = top + oy, left + ox
        out += np.float32(weight) * padded[y0 : y0 + h, x0 : x0 + w]
    return out


def clipped_zoom(image, zoom_factor):
    """Zooms about the image centre and crops back to the input size.

    The ImageNet-C helper crops the central ceil(h / z) square, upsamples it
    bilinearly by z (scipy.ndimage.zoom, order 1) and trims to h x h. We do
    the same in one bilinear affine warp, out(p) = in(c + (p - c) / z) with
    c the exact centre ((n - 1) / 2 per axis), for any H x W; borders are
    replicated (only reached for z < 1). Sub-pixel alignment differs from the
    reference by < 1 px.

    Args:
      image: float array HxW or HxWxC (C <= 4).
      zoom_factor: magnification, > 0 (1 returns a copy).

    Returns:
      float32 array of the input's shape.
    """
    image = _check_image(image).astype(np.float32, copy=False)
    if not zoom_factor > 0:
        raise ValueError(
            f"clipped_zoom zoom_factor must be > 0, got {zoom_factor!r}."
        )
    if zoom_factor == 1:
        return image.copy()
    h, w = image.shape[:2]
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    z = float(zoom_factor)
    # Destination -> source map, applied by OpenCV via WARP_INVERSE_MAP.
    matrix = np.array(
        [[1 / z, 0, cx - cx / z], [0, 1 / z, cy - cy / z]], np.float64
    )
    out = cv2.warpAffine(
        image,
        matrix,
        (w, h),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )
    return out.reshape(image.shape)


def plasma_fractal(size, wibble_decay, rng):
    """Diamond-square plasma fractal (the ImageNet-C fog layer).

    Starts from a single zero corner on a periodic size x size grid and
    halves the step until 1. Each square centre gets the mean of its 4
    corners and each diamond centre the mean of its 4 neighbours, plus noise
    wibble * U(-wibble, wibble); wibble starts at 100 and is divided by
    `wibble_decay` after every step (the reference's parameterisation, whose
    noise scales as wibble^2). Larger decay gives a smoother fog. The map
    is wrapped (toroidal) and finally rescaled to [0, 1].

    Args:
      size: side length, a power of two >= 2.
      wibble_decay: > 1 (ImageNet-C uses 1.4 .. 2).
      rng: np.random.Generator.

    Returns:
      float64 size x size array with min 0 and max 1.
    """
    if not isinstance(size, (int, np.integer)) or size < 2 or size & (size - 1):
        raise ValueError(
            f"plasma_fractal size must be a power of two >= 2, got {size!r}."
        )
    if not wibble_decay > 0:
        raise ValueError(
            f"plasma_fractal wibble_decay must be > 0, got {wibble_decay!r}."
        )
    size = int(size)
    grid = np.zeros((size, size), np.float64)
    step = size
    wibble = 100.0

    def noisy_mean(total):
        return total / 4.0 + wibble * rng.uniform(-wibble, wibble, total.shape)

    while step >= 2:
        half = step // 2
        corners = grid[0::step, 0::step]
        # Square step: centre = mean of the 4 surrounding corners.
        vert = corners + np.roll(corners, -1, axis=0)
        grid[half::step, half::step] = noisy_mean(vert + np.roll(vert, -1, 1))
        centres = grid[half::step, half::step]
        # Diamond step: edge midpoints = mean of 2 corners + 2 centres.
        row_mid = (
            corners
            + np.roll(corners, -1, axis=1)
            + centres
            + np.roll(centres, 1, axis=0)
        )
        grid[0::step, half::step] = noisy_mean(row_mid)
        col_mid = (
            corners
            + np.roll(corners, -1, axis=0)
            + centres
            + np.roll(centres, 1, axis=1)
        )
        grid[half::step, 0::step] = noisy_mean(col_mid)
        step = half
        wibble /= wibble_decay
    grid -= grid.min()
    peak = grid.max()
    return grid / peak if peak > 0 else grid


def snow_layer(
    shape_hw,
    loc,
    scale,
    zoom,
    threshold,
    blur_radius,
    blur_sigma,
    angle_deg,
    rng,
):
    """The ImageNet-C snow-flake layer, with our own motion blur.

    Normal noise N(loc, scale) per pixel is zoomed about the centre by `zoom`
    (bigger flakes), values below `threshold` are zeroed, the rest clipped to
    [0, 1] and streaked by `motion_blur(radius, sigma, angle)` (the reference
    round-trips an 8-bit PNG through ImageMagick; we stay in float).

    Args:
      shape_hw: (height, width) of the layer.
      loc, scale: mean and std of the per-pixel normal noise.
      zoom: clipped_zoom factor (> 0).
      threshold: values below it become 0.
      blur_radius, blur_sigma, angle_deg: motion blur parameters.
      rng: np.random.Generator.

    Returns:
      float32 HxW array in [0, 1].
    """
    if len(shape_hw) != 2 or min(shape_hw) < 1:
        raise ValueError(
            f"snow_layer shape_hw must be (height, width), got {shape_hw!r}."
        )
    noise = rng.normal(loc, scale, size=tuple(shape_hw)).astype(np.float32)
    flakes = clipped_zoom(noise, zoom)
    flakes[flakes < threshold] = 0
    np.clip(flakes, 0, 1, out=flakes)
    return np.clip(
        motion_blur(flakes, blur_radius, blur_sigma, angle_deg), 0, 1
    )


# --------------------------------------------------------------------------
# Synthetic frost.

# Per index: (crystal seeds per 100k px, branch length px, haze level,
#             line gain, glow sigma) - five visibly different frost "photos".
_FROST_STYLES = {
    1: (60, 40, 0.45, 0.60, 3.0),
    2: (110, 25, 0.50, 0.55, 2.0),
    3: (35, 70, 0.40, 0.70, 4.0),
    4: (80, 35, 0.60, 0.50, 2.5),
    5: (150, 18, 0.55, 0.55, 1.5),
}
FROST_INDICES = tuple(sorted(_FROST_STYLES))
_FROST_MEAN = 0.4  # mean intensity of every texture (before the tint)
_FROST_BASE = 512  # side of the cached base texture (cropped per call)


def _fbm(rng, h, w, octaves, base_cells):
    """Fractal value noise in [0, 1]: upsampled random grids, halving gain."""
    total = np.zeros((h, w), np.float32)
    gain, norm = 1.0, 0.0
    for octave in range(octaves):
        cells = base_cells * 2**octave
        grid = rng.random((cells + 1, cells + 1)).astype(np.float32)
        total += gain * cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
        norm += gain
        gain *= 0.5
    total /= norm
    total -= total.min()
    return total / max(float(total.max()), 1e-6)


def _draw_dendrite(canvas, rng, x, y, angle, length, depth, thickness):
    """Draws one ice dendrite: a jittered line with 60-degree side branches."""
    h, w = canvas.shape
    segments = max(2, int(length / 6))
    step = length / segments
    for s in range(segments):
        angle += rng.normal(0, 0.12)
        nx = x + step * math.cos(angle)
        ny = y + step * math.sin(angle)
        cv2.line(
            canvas,
            (int(round(x * 16)), int(round(y * 16))),
            (int(round(nx * 16)), int(round(ny * 16))),
            1.0 - 0.15 * depth,
            thickness,
            cv2.LINE_AA,
            4,
        )
        if depth < 2 and rng.random() < 0.35:
            side = math.pi / 3 * (1 if rng.random() < 0.5 else -1)
            _draw_dendrite(
                canvas,
                rng,
                nx,
                ny,
                angle + side,
                length * (1 - s / segments) * 0.45,
                depth + 1,
                1,
            )
        x, y = nx, ny
        if not (-step <= x <= w + step and -step <= y <= h + step):
            break


@functools.lru_cache(maxsize=8)
def _frost_base(index, side):
    """The deterministic base texture of frost `index` (cached per process)."""
    density, length, haze_level, line_gain, glow = _FROST_STYLES[index]
    rng = np.random.default_rng([20010626, index])  # fixed per index
    haze = _fbm(rng, side, side, octaves=5, base_cells=3)
    grain = _fbm(rng, side, side, octaves=3, base_cells=48)
    lines = np.zeros((side, side), np.float32)
    n_seeds = max(4, int(density * side * side / 1e5))
    for _ in range(n_seeds):
        x, y = rng.uniform(0, side, 2)
        arms = int(rng.integers(3, 7))
        start = rng.uniform(0, 2 * math.pi)
        for a in range(arms):
            angle = start + 2 * math.pi * a / arms + rng.normal(0, 0.2)
            arm = length * rng.uniform(0.5, 1.5)
            _draw_dendrite(lines, rng, x, y, angle, arm, 0, 1)
    sharp = cv2.GaussianBlur(lines, (0, 0), 0.7)
    halo = cv2.GaussianBlur(lines, (0, 0), glow)
    # Ice is brighter where the haze is thick; grain gives a crystalline
    # speckle everywhere.
    intensity = (
        haze_level * (0.35 + 0.65 * haze) * (0.7 + 0.3 * grain)
        + line_gain * (0.6 + 0.4 * haze) * sharp
        + 0.8 * line_gain * halo
    )
    # Same mean brightness for every index, so that the random choice of
    # texture adds little variance to the frost distortion.
    intensity *= _FROST_MEAN / float(intensity.mean())
    intensity = np.clip(intensity, 0, 1)
    tint = np.array([0.82, 0.92, 1.0], np.float32)  # bluish white (RGB)
    rgb = intensity[..., None] * tint + 0.06 * haze[..., None] * (1 - tint)
    rgb = np.clip(rgb, 0, 1).astype(np.float32)
    rgb.setflags(write=False)
    return rgb


def frost_texture(height, width, rng, index):
    """Returns a random crop of SYNTHETIC frost texture `index` (1..5).

    ImageNet-C blends the image with a random crop of one of five frost
    photographs (frost1-5; frost6 is listed but never drawn). Those photos
    cannot be shipped, so each index here is a procedurally generated,
    deterministic ice texture: multi-scale value noise (haze and grain) plus
    branching dendrites (jittered lines with 60-degree side branches, as in
    hexagonal ice) with a soft glow, tinted bluish white. Styles differ per
    index (crystal density, branch length, haze); all are scaled to a mean
    intensity of 0.4. Statistics are only roughly those of the photos, so
    frost errors are NOT comparable with the official ImageNet-C frost set.

    The base texture is a square whose side is the next power of two >=
    max(512, H, W), generated once per process (~0.5 s per index at 512)
    and cached; `rng` picks the crop offset, like the reference's random
    crop of the photo.

    Args:
      height, width: crop size (>= 1).
      rng: np.random.Generator for the crop offset.
      index: texture number in 1..5.

    Returns:
      float32 height x width x 3 RGB array in [0, 1] (read-only view).
    """
    if index not in _FROST_STYLES:
        raise ValueError(
            f"frost_texture index must be one of {FROST_INDICES}, got "
            f"{index!r}."
        )
    if height < 1 or width < 1:
        raise ValueError(
            f"frost_texture needs height, width >= 1, got {height}x{width}."
        )
    side = max(_FROST_BASE, int(height), int(width))
    # Round the cache key up so that nearby sizes share one texture.
    side = int(2 ** math.ceil(math.log2(side)))
    base = _frost_base(int(index), side)
    top = int(rng.integers(0, side - height + 1))
    left = int(rng.integers(0, side - width + 1))
    return base[top : top + height, left : left + width]


# --------------------------------------------------------------------------
# Local pixel shuffling (glass blur).


def local_shuffle(image, max_delta, passes, rng, rounds=6):
    """Vectorised local pixel shuffling (the core of ImageNet-C glass blur).

    The reference visits every pixel (h, w) with d < h, w <= size - d in
    reverse raster order and swaps it with the pixel at (h + dy, w + dx),
    dx, dy ~ U{-d, ..., d - 1} (d = max_delta), one swap at a time in pure
    Python. Here each pass is a set of DISJOINT swaps done at once:

    * in each of `rounds` rounds, every interior pixel not yet swapped in
      this pass becomes a proposer with probability 1/2 and draws an offset
      from the same U{-d..d-1}^2 (zero offsets are no-ops, as in the
      reference); a proposal is valid when its target is a non-proposer not
      yet swapped in this pass, and every target with valid proposals takes
      one of them at random;
    * the accepted pairs swap values simultaneously.

    So in one pass every pixel takes part in at most one swap and moves at
    most d pixels (Chebyshev): at most d * passes over all passes. Six rounds
    swap 73-77 % of the interior pixels per pass (d = 1..4, 224 px); the
    reference touches ~all of them and can carry one value along several
    swaps, which `corruptions` compensates with 2 passes per iteration.

    Args:
      image: array HxW or HxWxC (any dtype).
      max_delta: d >= 1.
      passes: number of passes >= 1.
      rng: np.random.Generator.
      rounds: proposal rounds per pass.

    Returns:
      array of the input's shape and dtype.
    """
    image = _check_image(image)
    if int(max_delta) != max_delta or max_delta < 1:
        raise ValueError(f"max_delta must be an int >= 1, got {max_delta!r}.")
    if int(passes) != passes or passes < 1:
        raise ValueError(f"passes must be an int >= 1, got {passes!r}.")
    d = int(max_delta)
    h, w = image.shape[:2]
    out = image.copy()
    flat = out.reshape(h * w, -1)
    rows = np.arange(d + 1, h - d + 1)
    cols = np.arange(d + 1, w - d + 1)
    if rows.size == 0 or cols.size == 0:
        return out
    interior = (rows[:, None] * w + cols[None, :]).ravel()
    open_target = np.zeros(h * w, bool)  # free non-proposers this round
    winner = np.full(h * w, -1, np.int64)
    for _ in range(int(passes)):
        free = interior
        for _ in range(rounds):
            if free.size < 2:
                break
            proposer = rng.random(free.size) < 0.5
            src = free[proposer]
            open_target[free[~proposer]] = True
            off = rng.integers(-d, d, size=(2, src.size))
            dst = src + off[0] * w + off[1]
            valid = open_target[dst]
            src, dst = src[valid], dst[valid]
            # Random winner per target: write in a random order, the last
            # write to each target wins.
            order = rng.permutation(src.size)
            winner[dst[order]] = order
            won = winner[dst] == np.arange(src.size)
            src, dst = src[won], dst[won]
            winner[dst] = -1
            open_target[free] = False
            flat[src], flat[dst] = flat[dst], flat[src].copy()
            swapped = np.zeros(h * w, bool)
            swapped[src] = True
            swapped[dst] = True
            free = free[~swapped[free]]
    return out

"""AutoAugment / RandAugment image ops on uint8 tensors, matching Pillow.

Cubuk et al., "AutoAugment: Learning Augmentation Strategies from Data",
CVPR 2019, https://arxiv.org/abs/1805.09501, and Cubuk et al., "RandAugment:
Practical automated data augmentation with a reduced search space", CVPRW
2020, https://arxiv.org/abs/1909.13719, define their ops through PIL
(`ImageOps`, `ImageEnhance`, `Image.transform`). The op set, the argument
conventions (fill 128, NEAREST sampling, `solarize_add`, `cutout`) follow
tensorflow/tpu `models/official/efficientnet/autoaugment.py`, which
clovaai/assembled-cnn `preprocessing/autoaugment.py` ported for
Assemble-ResNet (Lee et al. 2020, https://arxiv.org/abs/2001.06268). The
numerics follow Pillow (checked against Pillow 13.0):

* `to_grayscale`: PIL's `convert("L")`,
  L = (19595 R + 38470 G + 7471 B + 32768) >> 16 (the 299/587/114 weights
  in 16-bit fixed point), exact.
* blends (`color`, `contrast`, `brightness`, `sharpness`): PIL's
  `Image.blend`, out = deg + f * (img - deg) in float32, truncated, clipped
  to [0, 255] when extrapolating; exact.
* `contrast`: the degenerate image is the *mean gray level* of the L image,
  `int(mean + 0.5)`, as in `ImageEnhance.Contrast`. The TPU code used
  `sum(histogram) / 256`, i.e. the pixel count / 256 (196 for 224 x 224),
  an acknowledged upstream bug (tensorflow/models #8328, tensorflow/tpu
  #825) that we do not reproduce.
* `sharpness`: PIL's SMOOTH kernel [[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13
  rounded to nearest, border pixels copied from the original; exact.
* `auto_contrast`, `equalize`, `invert`, `posterize`, `solarize`: Pillow's
  look-up tables (autocontrast in float64 like Python), exact.
* `posterize(bits=0)` gives black, as PIL's mask ~(2 ** 8 - 1) does
  (Pillow 13 now rejects 0 bits); the TPU code shifted a uint8 by 8, which
  TF on CPU clamps to 7, so it kept 1 bit.
* geometric ops: `Image.transform(AFFINE)` semantics, output pixel (x, y)
  samples input (a x + b y + c, d x + e y + f) in continuous coordinates
  (pixel centres at +0.5), run by `tf.raw_ops.ImageProjectiveTransformV3`
  (which has a fill value) rather than tensorflow-addons (end of life) or
  `tf.contrib` (gone). NEAREST sampling (TPU and PIL default) agrees with PIL
  up to float32 rounding of the coefficients; `rotate` turns
  counter-clockwise about the image centre like `Image.rotate`.

All ops take and return a uint8 H x W x 3 tensor, work eagerly and inside
`tf.function` / `tf.data` with unknown H and W, and accept Python numbers or
scalar tensors as arguments.
"""

import math

import tensorflow as tf

_INTERPOLATIONS = {"nearest": "NEAREST", "bilinear": "BILINEAR"}


def check_image(image):
    """Converts `image` to a tensor and checks it is a uint8 H x W x C image.

    Args:
        image: A uint8 tensor-like of shape [H, W, C].

    Returns:
        The image as a `tf.Tensor`.

    Raises:
        ValueError: If the dtype is not uint8, the static rank is not 3 or
            the static channel count is not 1 or 3.
    """
    image = tf.convert_to_tensor(image)
    if image.dtype != tf.uint8:
        raise ValueError(
            f"Expected a uint8 image, got dtype {image.dtype.name!r}."
        )
    if image.shape.rank is not None and image.shape.rank != 3:
        raise ValueError(
            f"Expected an image of shape [H, W, C], got shape {image.shape}."
        )
    if image.shape.rank == 3 and image.shape[-1] not in (None, 1, 3):
        # The colour ops weigh 3 channels (or 1): 4 failed deep in a
        # random branch, for some seeds only.
        raise ValueError(
            f"Expected an RGB (3-channel) or greyscale (1-channel) image, "
            f"got shape {image.shape}."
        )
    return image


def _check_fill(fill):
    if isinstance(fill, (int, float)) and not 0 <= fill <= 255:
        raise ValueError(f"fill must be in [0, 255], got {fill!r}.")
    return fill


def _check_factor(factor):
    if isinstance(factor, (int, float)) and factor < 0:
        raise ValueError(f"Enhance factor must be >= 0, got {factor!r}.")
    return factor


def _to_uint8(x):
    """Truncates a non-negative float tensor to uint8, clipping to 255."""
    return tf.cast(tf.clip_by_value(tf.floor(x), 0.0, 255.0), tf.uint8)


def blend(degenerate, image, factor):
    """PIL `Image.blend(degenerate, image, factor)` on uint8 images.

    Computes degenerate + factor * (image - degenerate) in float32 and
    truncates, clipping to [0, 255] (needed when factor > 1 extrapolates).

    Args:
        degenerate: uint8 tensor broadcastable to `image`.
        image: uint8 tensor.
        factor: float or scalar tensor; 0 gives `degenerate`, 1 `image`.

    Returns:
        The blended uint8 tensor, shaped like `image`.
    """
    factor = tf.cast(_check_factor(factor), tf.float32)
    deg = tf.cast(degenerate, tf.float32)
    img = tf.cast(image, tf.float32)
    return _to_uint8(deg + factor * (img - deg))


def to_grayscale(image):
    """PIL `convert("L")` of an RGB uint8 image, shape [H, W, 1], exact."""
    rgb = tf.cast(check_image(image), tf.int32)
    weights = tf.constant([19595, 38470, 7471], tf.int32)
    lum = tf.reduce_sum(rgb * weights, axis=-1, keepdims=True) + 32768
    return tf.cast(tf.bitwise.right_shift(lum, 16), tf.uint8)


# ----------------------------------------------------------------------------
# Histogram / look-up-table ops (ImageOps).
# ----------------------------------------------------------------------------


def auto_contrast(image):
    """`ImageOps.autocontrast` (cutoff 0): stretch each channel to [0, 255].

    Per channel, lo/hi are the min/max values; a value p maps to
    int(p * scale + offset) with scale = 255 / (hi - lo) and
    offset = -lo * scale in float64 as in PIL. Constant channels are kept.

    Args:
        image: uint8 tensor [H, W, C].

    Returns:
        uint8 tensor [H, W, C].
    """
    image = check_image(image)
    pixels = tf.cast(image, tf.float64)
    lo = tf.reduce_min(pixels, axis=[0, 1])
    hi = tf.reduce_max(pixels, axis=[0, 1])
    scale = 255.0 / tf.maximum(hi - lo, 1.0)
    offset = -lo * scale
    stretched = _to_uint8(tf.maximum(pixels * scale + offset, 0.0))
    return tf.where(hi > lo, stretched, image)


def equalize(image):
    """`ImageOps.equalize`: PIL's per-channel histogram equalization.

    Per channel with histogram h: step = (sum(h) - h[last nonzero]) // 255;
    if step is 0 the channel is kept, else value i maps to
    (step // 2 + sum(h[:i])) // step, clipped to 255.

    Args:
        image: uint8 tensor [H, W, C].

    Returns:
        uint8 tensor [H, W, C].
    """
    image = check_image(image)
    channels = tf.shape(image)[-1]
    # One flat histogram: bin = value + 256 * channel.
    index = tf.cast(image, tf.int32) + 256 * tf.range(channels)
    hist = tf.math.bincount(
        tf.reshape(index, [-1]),
        minlength=256 * channels,
        maxlength=256 * channels,
        dtype=tf.int64,
    )
    hist = tf.reshape(hist, [channels, 256])
    bins = tf.range(256, dtype=tf.int64)
    last_bin = tf.reduce_max(tf.where(hist > 0, bins, -1), axis=1)
    last_count = tf.gather(hist, tf.maximum(last_bin, 0), batch_dims=1)
    step = (tf.reduce_sum(hist, axis=1) - last_count) // 255
    step = step[:, None]
    cumulative = tf.cumsum(hist, axis=1, exclusive=True)
    lut = (step // 2 + cumulative) // tf.maximum(step, 1)
    lut = tf.where(step > 0, tf.minimum(lut, 255), bins[None, :])
    flat_lut = tf.cast(tf.reshape(lut, [-1]), tf.uint8)
    return tf.gather(flat_lut, index)


def invert(image):
    """`ImageOps.invert`: 255 - p."""
    return 255 - check_image(image)


def posterize(image, bits):
    """`ImageOps.posterize`: keep the `bits` most significant bits.

    Args:
        image: uint8 tensor [H, W, C].
        bits: int in [0, 8] (Python or scalar tensor); the mask is
            ~(2 ** (8 - bits) - 1) as in PIL, so 0 gives black.

    Returns:
        uint8 tensor [H, W, C].
    """
    image = check_image(image)
    if isinstance(bits, (int, float)) and not (
        int(bits) == bits and 0 <= bits <= 8
    ):
        raise ValueError(
            f"Posterize bits must be an int in [0, 8], got {bits!r}."
        )
    shift = 8 - tf.cast(bits, tf.int32)
    mask = 256 - tf.bitwise.left_shift(1, shift)
    return tf.bitwise.bitwise_and(image, tf.cast(mask, tf.uint8))


def solarize(image, threshold=128):
    """`ImageOps.solarize`: p < threshold stays, otherwise 255 - p.

    Args:
        image: uint8 tensor [H, W, C].
        threshold: int (or scalar tensor); 256 or more leaves the image.

    Returns:
        uint8 tensor [H, W, C].
    """
    image = check_image(image)
    below = tf.cast(image, tf.int32) < tf.cast(threshold, tf.int32)
    return tf.where(below, image, 255 - image)


def solarize_add(image, addition, threshold=128):
    """TPU `solarize_add`: p < threshold becomes clip(p + addition, 0, 255).

    Has no PIL counterpart; used by the `v0` policy and RandAugment.

    Args:
        image: uint8 tensor [H, W, C].
        addition: int (or scalar tensor) added to the dark pixels.
        threshold: int; pixels at or above it are kept.

    Returns:
        uint8 tensor [H, W, C].
    """
    image = check_image(image)
    pixels = tf.cast(image, tf.int32)
    added = tf.clip_by_value(pixels + tf.cast(addition, tf.int32), 0, 255)
    below = pixels < tf.cast(threshold, tf.int32)
    return tf.where(below, tf.cast(added, tf.uint8), image)


# ----------------------------------------------------------------------------
# Enhance ops (ImageEnhance): blend with a degenerate image.
# ----------------------------------------------------------------------------


def color(image, factor):
    """`ImageEnhance.Color(image).enhance(factor)`: blend with grayscale.

    Args:
        image: uint8 RGB tensor [H, W, 3].
        factor: float >= 0; 0 gives the L image, 1 the input, > 1 more
            saturated.

    Returns:
        uint8 tensor [H, W, 3].
    """
    return blend(to_grayscale(image), image, factor)


def contrast(image, factor):
    """`ImageEnhance.Contrast(image).enhance(factor)`: blend with mean gray.

    The degenerate image is the constant int(mean(L) + 0.5), the true mean
    of the L image as in PIL (not the TPU code's pixel count / 256).

    Args:
        image: uint8 RGB tensor [H, W, 3].
        factor: float >= 0; 0 gives a flat mean-gray image.

    Returns:
        uint8 tensor [H, W, 3].
    """
    gray = tf.cast(to_grayscale(image), tf.float64)
    # Integer sums are exact in float64; sum / count + 0.5 as in PIL.
    mean = tf.reduce_sum(gray) / tf.cast(tf.size(gray), tf.float64)
    mean = tf.floor(mean + 0.5)
    return blend(tf.cast(mean, tf.uint8), image, factor)


def brightness(image, factor):
    """`ImageEnhance.Brightness(image).enhance(factor)`: blend with black."""
    image = check_image(image)
    return blend(tf.zeros([], tf.uint8), image, factor)


def sharpness(image, factor):
    """`ImageEnhance.Sharpness(image).enhance(factor)`.

    The degenerate image is PIL's SMOOTH filter, round(S / 13) with S the
    3 x 3 sum weighted [[1, 1, 1], [1, 5, 1], [1, 1, 1]], computed exactly
    in integers; the one-pixel border is copied from the original, so it is
    never changed. Images smaller than 3 x 3 are returned unchanged.

    Args:
        image: uint8 tensor [H, W, C].
        factor: float >= 0; 0 gives the smoothed image, > 1 sharpens.

    Returns:
        uint8 tensor [H, W, C].
    """
    image = check_image(image)
    channels = tf.shape(image)[-1]
    kernel = tf.constant([[1, 1, 1], [1, 5, 1], [1, 1, 1]], tf.float32)
    kernel = tf.tile(kernel[:, :, None, None], [1, 1, channels, 1])
    # Integer sums up to 13 * 255 are exact in float32.
    sums = tf.nn.depthwise_conv2d(
        tf.cast(image, tf.float32)[None],
        kernel,
        strides=[1, 1, 1, 1],
        padding="SAME",
    )[0]
    smooth = (2 * tf.cast(sums, tf.int32) + 13) // 26
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    rows = tf.range(height)
    cols = tf.range(width)
    inner_rows = (rows > 0) & (rows < height - 1)
    inner_cols = (cols > 0) & (cols < width - 1)
    inner = inner_rows[:, None, None] & inner_cols[None, :, None]
    degenerate = tf.where(inner, tf.cast(smooth, tf.uint8), image)
    return blend(degenerate, image, factor)


# ----------------------------------------------------------------------------
# Geometric ops (Image.transform AFFINE / Image.rotate).
# ----------------------------------------------------------------------------


def affine_transform(image, matrix, fill=128, interpolation="nearest"):
    """`Image.transform(size, Image.AFFINE, matrix)` with a constant fill.

    Output pixel (x, y) takes the input at (a x + b y + c, d x + e y + f),
    in PIL's continuous coordinates where pixel centres sit at +0.5. The
    matrix is moved to index coordinates (centres at integers) for
    `tf.raw_ops.ImageProjectiveTransformV3`:
    c' = c + (a + b - 1) / 2, f' = f + (d + e - 1) / 2.

    Args:
        image: uint8 tensor [H, W, C].
        matrix: 6 floats or scalar tensors (a, b, c, d, e, f).
        fill: value in [0, 255] for pixels that map outside the input.
        interpolation: "nearest" (PIL and TPU default) or "bilinear"
            (truncated like PIL; TF blends edge pixels with the fill where
            PIL clamps, so a one-pixel rim differs).

    Returns:
        uint8 tensor [H, W, C].
    """
    image = check_image(image)
    fill = _check_fill(fill)
    if interpolation not in _INTERPOLATIONS:
        raise ValueError(
            f"Unknown interpolation {interpolation!r}; known: "
            f"{sorted(_INTERPOLATIONS)}."
        )
    if len(matrix) != 6:
        raise ValueError(f"Expected 6 affine coefficients, got {matrix!r}.")
    a, b, c, d, e, f = (tf.cast(m, tf.float64) for m in matrix)
    transform = tf.stack(
        [
            a,
            b,
            c + 0.5 * (a + b - 1.0),
            d,
            e,
            f + 0.5 * (d + e - 1.0),
            tf.constant(0.0, tf.float64),
            tf.constant(0.0, tf.float64),
        ]
    )
    transform = tf.cast(transform, tf.float32)[None]
    bilinear = interpolation == "bilinear"
    images = tf.cast(image, tf.float32) if bilinear else image
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=images[None],
        transforms=transform,
        output_shape=tf.shape(image)[:2],
        fill_value=tf.cast(fill, tf.float32),
        interpolation=_INTERPOLATIONS[interpolation],
        fill_mode="CONSTANT",
    )[0]
    if bilinear:
        # PIL's bilinear filter truncates its float result.
        out = _to_uint8(out)
    out.set_shape(image.shape)
    return out


def rotate(image, degrees, fill=128, interpolation="nearest"):
    """`Image.rotate(degrees, fillcolor=fill)`: counter-clockwise, about the
    image centre (W / 2, H / 2), same output size.

    Args:
        image: uint8 tensor [H, W, C].
        degrees: float or scalar tensor.
        fill: value for the uncovered corners.
        interpolation: "nearest" or "bilinear".

    Returns:
        uint8 tensor [H, W, C].
    """
    image = check_image(image)
    shape = tf.cast(tf.shape(image), tf.float64)
    center_y, center_x = shape[0] / 2.0, shape[1] / 2.0
    theta = -tf.cast(degrees, tf.float64) * (math.pi / 180.0)
    cos, sin = tf.cos(theta), tf.sin(theta)
    # PIL: (a, b, d, e) = (cos, sin, -sin, cos), rotation about the centre.
    a, b, d, e = cos, sin, -sin, cos
    c = center_x - a * center_x - b * center_y
    f = center_y - d * center_x - e * center_y
    return affine_transform(image, (a, b, c, d, e, f), fill, interpolation)


def shear_x(image, level, fill=128, interpolation="nearest"):
    """PIL AFFINE (1, level, 0, 0, 1, 0): x_in = x + level * y."""
    return affine_transform(
        image, (1.0, level, 0.0, 0.0, 1.0, 0.0), fill, interpolation
    )


def shear_y(image, level, fill=128, interpolation="nearest"):
    """PIL AFFINE (1, 0, 0, level, 1, 0): y_in = level * x + y."""
    return affine_transform(
        image, (1.0, 0.0, 0.0, level, 1.0, 0.0), fill, interpolation
    )


def translate_x(image, pixels, fill=128, interpolation="nearest"):
    """PIL AFFINE (1, 0, pixels, 0, 1, 0): content moves left by `pixels`."""
    return affine_transform(
        image, (1.0, 0.0, pixels, 0.0, 1.0, 0.0), fill, interpolation
    )


def translate_y(image, pixels, fill=128, interpolation="nearest"):
    """PIL AFFINE (1, 0, 0, 0, 1, pixels): content moves up by `pixels`."""
    return affine_transform(
        image, (1.0, 0.0, 0.0, 0.0, 1.0, pixels), fill, interpolation
    )


# ----------------------------------------------------------------------------
# Cutout.
# ----------------------------------------------------------------------------


def cutout(image, pad_size, fill=128, seed=None, center=None):
    """TPU `cutout`: fill a square of side 2 * pad_size with `fill`.

    Rows [cy - pad_size, cy + pad_size) and the same columns around a centre
    (cy, cx) drawn uniformly over the image, clipped to the image.

    Args:
        image: uint8 tensor [H, W, C].
        pad_size: int >= 0 (or scalar tensor), half the side of the square.
        fill: value in [0, 255].
        seed: optional shape-[2] integer seed for a stateless draw of the
            centre; None uses the global stateful RNG.
        center: optional (cy, cx) that overrides the random centre.

    Returns:
        uint8 tensor [H, W, C].
    """
    image = check_image(image)
    fill = _check_fill(fill)
    if isinstance(pad_size, (int, float)) and pad_size < 0:
        raise ValueError(f"Cutout pad_size must be >= 0, got {pad_size!r}.")
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    if center is None:
        if seed is None:
            cy = tf.random.uniform([], 0, height, dtype=tf.int32)
            cx = tf.random.uniform([], 0, width, dtype=tf.int32)
        else:
            seeds = tf.random.split(tf.convert_to_tensor(seed), 2)
            cy = tf.random.stateless_uniform(
                [], seeds[0], 0, height, dtype=tf.int32
            )
            cx = tf.random.stateless_uniform(
                [], seeds[1], 0, width, dtype=tf.int32
            )
    else:
        cy, cx = (tf.cast(v, tf.int32) for v in center)
    pad = tf.cast(pad_size, tf.int32)
    rows = tf.range(height)
    cols = tf.range(width)
    in_rows = (rows >= cy - pad) & (rows < cy + pad)
    in_cols = (cols >= cx - pad) & (cols < cx + pad)
    inside = in_rows[:, None, None] & in_cols[None, :, None]
    return tf.where(inside, tf.cast(fill, tf.uint8), image)

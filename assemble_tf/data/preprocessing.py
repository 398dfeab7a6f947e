"""Train and eval image preprocessing of the original Assemble-ResNet.

Follows clovaai/assembled-cnn `preprocessing/imagenet_preprocessing.py` and
`utils/data_util.py: preprocess_image` (itself the TF official ResNet
preprocessing), Lee et al. 2020 (https://arxiv.org/abs/2001.06268):

* Train: `sample_distorted_bounding_box` (min object covered 0.1, aspect
  ratio [0.75, 1.33], area [0.05, 1.0], 100 attempts, whole image as the
  fallback), decode-and-crop of the JPEG, random horizontal flip, bilinear
  resize to the train size without keeping the aspect ratio, optional
  augmentation on uint8, mean subtraction.
* Eval (`preprocessing_type`): decode, aspect-preserving resize of the
  shorter side to R (new side = int(side * R / shorter)), center crop S
  (offset floor((dim - S) / 2)), mean subtraction. `imagenet` 256 -> 224,
  `imagenet_224_256` 292 -> 256, `imagenet_224_256a` 257 -> 256,
  `imagenet_NNN` int(NNN / 0.875) -> NNN, `imagenet_NNNa` NNN + 1 -> NNN.

All resizes are TF1's legacy bilinear (`half_pixel_centers=False`), which the
released checkpoints were trained and evaluated with; TF2's
`tf.image.resize` gives slightly different pixels. JPEGs are decoded with
`dct_method="INTEGER_ACCURATE"` as in master.
"""

import tensorflow as tf

from assemble_tf.data.schema import MEAN_RGB
from assemble_tf.data.sizes import eval_sizes  # noqa: F401 (re-exported)

# sample_distorted_bounding_box parameters of the original.
MIN_OBJECT_COVERED = 0.1
ASPECT_RATIO_RANGE = (0.75, 1.33)
AREA_RANGE = (0.05, 1.0)
MAX_ATTEMPTS = 100
DCT_METHOD = "INTEGER_ACCURATE"


# Images above this many pixels are resized from their own dtype, not
# from a float32 copy (see `resize_bilinear_legacy`).
FLOAT_COPY_MAX_PIXELS = 4096 * 4096


def resize_bilinear_legacy(image, size):
    """TF1 bilinear resize (no half-pixel centers) of HxWxC to float32."""

    def resize(images):
        return tf.raw_ops.ResizeBilinear(
            images=images,
            size=tf.cast(size, tf.int32),
            align_corners=False,
            half_pixel_centers=False,
        )[0]

    images = image[tf.newaxis]
    if images.dtype == tf.float32:
        return resize(images)
    # The kernel computes in float32 whatever the input, so both branches
    # give the same result. It reads float32 input ~1.6x faster than uint8
    # (360 vs 580 us for a 260x300 crop to 224x224 on one core, the cast
    # included), but the copy takes 4 bytes a pixel: a 187 KB 8000x8000
    # PNG sent to the serving signature took 1.9 GB instead of 0.2.
    pixels = tf.reduce_prod(tf.cast(tf.shape(image)[:2], tf.int64))
    return tf.cond(
        pixels <= FLOAT_COPY_MAX_PIXELS,
        lambda: resize(tf.cast(images, tf.float32)),
        lambda: resize(images),
    )


# An eval resize above this many pixels (the shorter side at R, so an
# aspect ratio beyond ~1:256) computes only the center crop's pixels (see
# `crop_of_resize_bilinear_legacy`).
RESIZED_MAX_PIXELS = 4096 * 4096


def crop_of_resize_bilinear_legacy(image, size, top, left, crop_size):
    """The `crop_size` square at (top, left) of `resize_bilinear_legacy(
    image, size)`, computing those pixels only.

    The same arithmetic as TensorFlow's ResizeBilinear kernel (legacy
    scaler: source = float32(i) * in / out, lerp between floor and ceil,
    rows after columns), so the same values; the whole resize of a 1x8000
    JPEG with its shorter side at 256 took 7 GB and 22 s.
    """
    shape = tf.shape(image)

    def axis(start, in_size, out_size):
        scale = tf.cast(in_size, tf.float32) / tf.cast(out_size, tf.float32)
        x = tf.cast(tf.range(start, start + crop_size), tf.float32) * scale
        lower = tf.floor(x)
        upper = tf.minimum(tf.math.ceil(x), tf.cast(in_size - 1, tf.float32))
        lower = tf.maximum(lower, 0.0)
        return tf.cast(lower, tf.int32), tf.cast(upper, tf.int32), x - lower

    y0, y1, y_lerp = axis(top, shape[0], size[0])
    x0, x1, x_lerp = axis(left, shape[1], size[1])

    def corner(rows, cols):
        index = tf.stack(tf.meshgrid(rows, cols, indexing="ij"), axis=-1)
        return tf.cast(tf.gather_nd(image, index), tf.float32)

    x_lerp = x_lerp[tf.newaxis, :, tf.newaxis]
    top_row = corner(y0, x0) + (corner(y0, x1) - corner(y0, x0)) * x_lerp
    bottom = corner(y1, x0) + (corner(y1, x1) - corner(y1, x0)) * x_lerp
    return top_row + (bottom - top_row) * y_lerp[:, tf.newaxis, tf.newaxis]


def aspect_preserving_size(height, width, resize_side):
    """New (h, w) with the shorter side at `resize_side` (float32 math)."""
    h = tf.cast(height, tf.float32)
    w = tf.cast(width, tf.float32)
    scale = tf.cast(resize_side, tf.float32) / tf.minimum(h, w)
    return (
        tf.cast(h * scale, tf.int32),
        tf.cast(w * scale, tf.int32),
    )


def center_crop(image, crop_size):
    shape = tf.shape(image)
    top = (shape[0] - crop_size) // 2
    left = (shape[1] - crop_size) // 2
    return tf.slice(image, [top, left, 0], [crop_size, crop_size, -1])


def normalize(image, mean=MEAN_RGB, stddev=None):
    """Subtracts the RGB mean; divides by `stddev` only when given."""
    image = tf.cast(image, tf.float32) - tf.constant(mean, tf.float32)
    if stddev is not None:
        image = image / tf.constant(stddev, tf.float32)
    return image


def normalize_batch(images, dtype=tf.float32, stddev=None):
    """uint8 (or float) [B, H, W, 3] -> mean-subtracted `dtype` images."""
    return tf.cast(normalize(images, stddev=stddev), dtype)


def decode_jpeg(image_bytes):
    return tf.io.decode_jpeg(image_bytes, channels=3, dct_method=DCT_METHOD)


_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def is_supported_image(image_bytes):
    """True for JPEG (any), PNG, GIF or BMP bytes (tfds / folder sources)."""
    head = tf.strings.substr(image_bytes, 0, 8)
    return (
        tf.io.is_jpeg(image_bytes)
        | tf.equal(head, _PNG_MAGIC)
        | tf.equal(tf.strings.substr(image_bytes, 0, 3), b"GIF")
        | tf.equal(tf.strings.substr(image_bytes, 0, 2), b"BM")
    )


def _header_ints(image_bytes, start, count, size, big_endian):
    """`count` unsigned `size`-byte integers at `start` of the bytes, int64
    (zeros where the bytes are too short to hold them)."""
    end = start + count * size
    raw = tf.cond(
        tf.strings.length(image_bytes) >= end,
        lambda: tf.strings.substr(image_bytes, start, count * size),
        lambda: tf.constant(b"\0" * (count * size)),
    )
    digits = tf.reshape(
        tf.cast(tf.io.decode_raw(raw, tf.uint8), tf.int64), [count, size]
    )
    weights = [256 ** (size - 1 - i) for i in range(size)]
    if not big_endian:
        weights = weights[::-1]
    return tf.reduce_sum(digits * tf.constant(weights, tf.int64), axis=1)


def image_size_from_header(image_bytes):
    """(height, width) int64 of JPEG, PNG, GIF or BMP bytes, read from the
    header (no decoding); (0, 0) for another format or bytes too short to
    hold one. A damaged JPEG header raises InvalidArgumentError, as its
    decoding would."""
    head = tf.strings.substr(image_bytes, 0, 8)
    # PNG: IHDR width then height, big-endian 32-bit, at byte 16.
    png = _header_ints(image_bytes, 16, 2, 4, True)[::-1]
    # GIF: the logical screen's width then height, little-endian 16-bit.
    gif = _header_ints(image_bytes, 6, 2, 2, False)[::-1]
    # BMP: width then height, little-endian signed 32-bit at byte 18 (a
    # negative height: rows stored top-down).
    bmp = _header_ints(image_bytes, 18, 2, 4, False)[::-1]
    bmp = tf.where(bmp >= 1 << 31, (1 << 32) - bmp, bmp)
    return tf.case(
        [
            (
                tf.io.is_jpeg(image_bytes),
                lambda: tf.cast(
                    tf.io.extract_jpeg_shape(image_bytes)[:2], tf.int64
                ),
            ),
            (tf.equal(head, _PNG_MAGIC), lambda: png),
            (tf.equal(tf.strings.substr(head, 0, 3), b"GIF"), lambda: gif),
            (tf.equal(tf.strings.substr(head, 0, 2), b"BM"), lambda: bmp),
        ],
        default=lambda: tf.zeros([2], tf.int64),
    )


# The most pixels the input pipelines decode: what the TFRecord builder
# stores (Pillow's decompression-bomb error, twice `Image.MAX_IMAGE_PIXELS`).
# Before, a 90 KB PNG of 20,000 x 20,000 in an image folder took 17 GB to
# decode before it failed.
MAX_DECODE_PIXELS = 2 * 89_478_485


def checked_pixels(
    image_bytes,
    limit=None,
    what=("Image of",),
    tail="the input pipelines decode",
):
    """`image_bytes` after asserting, from its header, that the image holds
    at most `limit` pixels (default `MAX_DECODE_PIXELS`): an
    InvalidArgumentError before any decoding (a record the pipelines skip,
    as one that does not decode), saying `what`, the size, "more than the
    <limit>" and `tail`."""
    check = _pixel_check(image_size_from_header(image_bytes), limit, what, tail)
    with tf.control_dependencies([check]):
        return tf.identity(image_bytes)


def _pixel_check(size, limit=None, what=("Image of",), tail=None):
    """The assertion of `checked_pixels` on `size` ((height, width, ...)
    from a header)."""
    limit = MAX_DECODE_PIXELS if limit is None else limit
    tail = tail or "the input pipelines decode"
    size = tf.cast(size, tf.int64)  # 65,535 x 65,535 overflows int32
    return tf.debugging.Assert(
        size[0] * size[1] <= limit,
        [
            *what,
            size[1],
            "x",
            size[0],
            f"pixels (width x height), more than the {limit:,} {tail}",
        ],
    )


def decode_image(image_bytes):
    """JPEG (INTEGER_ACCURATE, as the original) or PNG/GIF/BMP -> uint8 RGB,
    of at most `MAX_DECODE_PIXELS` pixels (`checked_pixels`)."""
    image_bytes = checked_pixels(image_bytes)
    return tf.cond(
        tf.io.is_jpeg(image_bytes),
        lambda: decode_jpeg(image_bytes),
        lambda: decode_other(image_bytes),
    )


def decode_other(image_bytes):
    """PNG, GIF or BMP bytes -> uint8 RGB, transparency composed onto
    white as the TFRecord builder stores it (`builder.images.
    flatten_alpha`): a transparent PNG read from a folder, a tfds set or
    a serving request is the image the records hold (before: black where
    transparent, white in the records)."""
    return _onto_white(_decode_rgba(image_bytes))


def _decode_rgba(image_bytes):
    """PNG, GIF or BMP bytes -> uint8 RGBA (a GIF, whose decoder gives
    RGB only, opaque)."""
    is_gif = tf.equal(tf.strings.substr(image_bytes, 0, 3), b"GIF")

    def gif():
        rgb = tf.io.decode_image(
            image_bytes, channels=3, expand_animations=False
        )
        opaque = tf.fill(tf.concat([tf.shape(rgb)[:2], [1]], 0), 255)
        return tf.concat([rgb, tf.cast(opaque, tf.uint8)], -1)

    return tf.cond(
        is_gif,
        gif,
        lambda: tf.io.decode_image(
            image_bytes, channels=4, expand_animations=False
        ),
    )


def _onto_white(rgba):
    """uint8 RGBA -> RGB over an opaque white background (opaque pixels
    exactly as they are)."""
    rgb = tf.cast(rgba[..., :3], tf.float32)
    alpha = tf.cast(rgba[..., 3:], tf.float32) / 255.0
    return tf.cast(tf.round(rgb * alpha + 255.0 * (1.0 - alpha)), tf.uint8)


def decode_jpeg_or_png(image_bytes):
    """JPEG (as the original: INTEGER_ACCURATE) or PNG bytes -> uint8 RGB,
    for serving: anything else fails with InvalidArgumentError saying the
    input is not a JPEG or PNG image."""
    is_jpeg = tf.io.is_jpeg(image_bytes)
    is_png = tf.equal(tf.strings.substr(image_bytes, 0, 8), _PNG_MAGIC)
    check = tf.debugging.Assert(
        is_jpeg | is_png,
        [
            "Input is not a JPEG or PNG image (first bytes:",
            tf.strings.substr(image_bytes, 0, 8),
            ")",
        ],
    )
    with tf.control_dependencies([check]):
        return tf.cond(
            is_jpeg,
            lambda: decode_jpeg(image_bytes),
            lambda: _onto_white(tf.io.decode_png(image_bytes, channels=4)),
        )


def preprocess_bytes(image_bytes, preprocessing_type):
    """Encoded JPEG / PNG bytes -> the eval crop of `preprocessing_type`
    (float32), as the SavedModel's `serving_default` computes it."""
    return eval_crop(decode_jpeg_or_png(image_bytes), preprocessing_type)


def eval_crop(
    image, preprocessing_type="imagenet", dtype=tf.float32, stddev=None
):
    """Decoded uint8 HxWx3 -> the original eval crop, mean-subtracted."""
    _, resize_side, crop_size = eval_sizes(preprocessing_type)
    shape = tf.shape(image)
    new_h, new_w = aspect_preserving_size(shape[0], shape[1], resize_side)
    size = tf.stack([new_h, new_w])
    image = tf.cond(
        tf.cast(new_h, tf.int64) * tf.cast(new_w, tf.int64)
        <= RESIZED_MAX_PIXELS,
        lambda: center_crop(resize_bilinear_legacy(image, size), crop_size),
        lambda: crop_of_resize_bilinear_legacy(
            image,
            size,
            (new_h - crop_size) // 2,
            (new_w - crop_size) // 2,
            crop_size,
        ),
    )
    image = normalize(image, stddev=stddev)
    image.set_shape([crop_size, crop_size, 3])
    return tf.cast(image, dtype)


def preprocess_eval(
    image_bytes,
    preprocessing_type="imagenet",
    dtype=tf.float32,
    stddev=None,
):
    """JPEG (or PNG) bytes -> the original eval crop, normalized, `dtype`."""
    return eval_crop(
        decode_image(image_bytes), preprocessing_type, dtype, stddev
    )


def sample_crop_window(image_bytes, bboxes, seed, area_range=AREA_RANGE):
    """Samples the random crop window (offset_y, offset_x, h, w).

    Args:
        image_bytes: scalar string, a JPEG.
        bboxes: float32 [N, 4] (ymin, xmin, ymax, xmax) normalized boxes, or
            an empty [0, 4] tensor for the whole image (the original's
            classifier path).
        seed: int32 [2], a stateless seed.

    Returns:
        int32 [4] crop window for `tf.image.decode_and_crop_jpeg`.
    """
    return _crop_window(
        tf.image.extract_jpeg_shape(image_bytes), bboxes, seed, area_range
    )


def _crop_window(shape, bboxes, seed, area_range):
    whole = tf.constant([[0.0, 0.0, 1.0, 1.0]], tf.float32)
    boxes = tf.cond(tf.shape(bboxes)[0] > 0, lambda: bboxes, lambda: whole)[
        tf.newaxis
    ]
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        shape,
        bounding_boxes=boxes,
        seed=seed,
        min_object_covered=MIN_OBJECT_COVERED,
        aspect_ratio_range=ASPECT_RATIO_RANGE,
        area_range=area_range,
        max_attempts=MAX_ATTEMPTS,
        use_image_if_no_bounding_boxes=True,
    )
    return tf.stack([begin[0], begin[1], size[0], size[1]])


def preprocess_train(
    image_bytes,
    seed,
    image_size=224,
    bboxes=None,
    augmenter=None,
    dtype=tf.float32,
    stddev=None,
    area_range=AREA_RANGE,
    assume_jpeg=False,
):
    """JPEG bytes -> a random training crop, mean-subtracted, `dtype`.

    Args:
        image_bytes: scalar string, a JPEG.
        seed: int32 [2] stateless seed (crop and flip are reproducible).
        image_size: int. Output side.
        bboxes: None or float32 [N, 4] boxes to sample around.
        augmenter: None or an object with `distort(uint8 image, seed)
            -> uint8` (AutoAugment, RandAugment), applied after the resize
            with a stateless seed, so augmented runs replay exactly too.
        dtype: output dtype; `uint8` returns the resized (rounded) pixels
            without normalization, for `normalize_batch` on the device.
        stddev: None (the original: mean only) or per-channel stddevs.
        area_range: (min, max) crop area fraction ((0.05, 1.0) as the
            original; small images may want a larger minimum).
        assume_jpeg: the caller has checked that the bytes are a JPEG:
            skip the branch that decodes other formats.
    """
    if bboxes is None:
        bboxes = tf.zeros([0, 4], tf.float32)
    seeds = tf.random.experimental.stateless_split(
        tf.cast(seed, tf.int64), num=3
    )

    # Each branch checks the pixel count before it decodes (`checked_pixels`;
    # the JPEG one on the shape its crop window reads anyway).
    def jpeg():
        shape = tf.image.extract_jpeg_shape(image_bytes)
        with tf.control_dependencies([_pixel_check(shape)]):
            window = _crop_window(shape, bboxes, seeds[0], area_range)
        return tf.image.decode_and_crop_jpeg(
            image_bytes, window, channels=3, dct_method=DCT_METHOD
        )

    def other():  # PNG / GIF / BMP from tfds or image folders
        full = _decode_rgba(checked_pixels(image_bytes))
        w = _crop_window(tf.shape(full), bboxes, seeds[0], area_range)
        # Composed onto white after the crop: per pixel, the same image
        # (`decode_other`), at the crop's cost rather than the image's.
        return _onto_white(full[w[0] : w[0] + w[2], w[1] : w[1] + w[3]])

    if assume_jpeg:
        image = jpeg()
    else:
        image = tf.cond(tf.io.is_jpeg(image_bytes), jpeg, other)
    image = tf.image.stateless_random_flip_left_right(image, seeds[1])
    image = resize_bilinear_legacy(image, [image_size, image_size])
    if augmenter is not None:
        # The original clips, truncates to uint8, augments, casts back.
        image = tf.cast(tf.clip_by_value(image, 0.0, 255.0), tf.uint8)
        image = augmenter.distort(image, seed=seeds[2])
    image.set_shape([image_size, image_size, 3])
    if dtype == tf.uint8 or dtype == "uint8":
        # Normalization happens later on the batch (on the accelerator):
        # a quarter of the bytes to batch and to copy to the device.
        if image.dtype != tf.uint8:
            image = tf.cast(tf.round(image), tf.uint8)
        return image
    image = normalize(image, stddev=stddev)
    return tf.cast(image, dtype)

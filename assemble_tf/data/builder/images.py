"""Checking and re-encoding one image file (Pillow): RGB JPEGs that end
with their end-of-image marker are kept byte for byte, anything else
becomes an RGB JPEG; unreadable files are skipped with a reason."""

import io
import warnings

import numpy as np

from assemble_tf.data.builder.config import DEFAULT_JPEG_QUALITY

SKIP_EMPTY = "empty file"

JPEG_END = b"\xff\xd9"  # EOI, the last two bytes of a whole JPEG


SKIP_TRUNCATED = "truncated"


SKIP_UNREADABLE = "unreadable"

# More pixels than Pillow decodes (its decompression-bomb guard, twice
# `Image.MAX_IMAGE_PIXELS`: 179 million); it was reported as unreadable.
SKIP_TOO_LARGE = "too large"

# The file could not be opened or read (its permissions, an I/O error): a
# rerun rebuilds its shard once it reads (`run._unfinished_shards`), since
# fixing permissions changes neither the file's size nor its modification
# time, which the resume compares.
SKIP_NOT_READ = "could not be read"


class SkipImage(Exception):
    """An input file that cannot become a record; `reason` is one of the
    `SKIP_*` strings and `detail` says why."""

    def __init__(self, reason, detail):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def encode_image(data, jpeg_quality=DEFAULT_JPEG_QUALITY):
    """Checks one image file and returns it as an RGB JPEG.

    Args:
        data: bytes, the whole file.
        jpeg_quality: int, the quality used when re-encoding.

    Returns:
        `(jpeg_bytes, height, width, conversion)`: `conversion` is None when
        the file was already an RGB JPEG (returned byte for byte), else a
        "FORMAT MODE" string such as "JPEG CMYK" or "PNG RGBA".

    Raises:
        SkipImage: the file is empty, truncated or not a readable image.
    """
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise SkipImage(SKIP_EMPTY, "0 bytes")
    try:
        with warnings.catch_warnings():
            # Pillow warns from `Image.MAX_IMAGE_PIXELS` on, without the
            # file's name (a raw line in the builder's output), and refuses
            # from twice that, which is the rule here (`SKIP_TOO_LARGE`).
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            image.load()  # decodes every pixel: catches truncated files
    except UnidentifiedImageError:
        raise SkipImage(
            SKIP_UNREADABLE, "not an image format Pillow recognizes"
        ) from None
    except Image.DecompressionBombError as e:
        raise SkipImage(
            SKIP_TOO_LARGE, f"{e} Downscale it to use it."
        ) from None
    except Exception as e:  # noqa: BLE001 - any decoder failure skips
        message = f"{type(e).__name__}: {e}"
        reason = SKIP_TRUNCATED if "truncat" in str(e).lower() else None
        raise SkipImage(reason or SKIP_UNREADABLE, message) from None
    width, height = image.size
    if image.format in ("JPEG", "MPO") and image.mode == "RGB":
        if data.endswith(JPEG_END):
            return data, height, width, None
        # Decodable, but the training and evaluation pipelines drop a JPEG
        # that does not end with its end-of-image marker (their check of a
        # cut-off file): a lost marker or data after it is re-encoded.
        conversion = "JPEG RGB without a final end-of-image marker"
    else:
        conversion = f"{image.format} {image.mode}"
    buffer = io.BytesIO()
    _to_rgb(image).save(buffer, format="JPEG", quality=int(jpeg_quality))
    return buffer.getvalue(), height, width, conversion


WIDE_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")


def eight_bit(image):
    """A Pillow image of 16-bit, 32-bit or float samples (`WIDE_MODES`) as
    8-bit RGB, scaled as `_to_rgb` does; any other image unchanged. Pillow's
    own `convert("RGB")` clips such samples at 255: a 16-bit PNG came out
    white."""
    return _to_rgb(image) if image.mode in WIDE_MODES else image


def _to_rgb(image):
    """RGB copy of a Pillow image; transparency is composed onto white."""
    from PIL import Image

    mode = image.mode
    if mode == "RGB":
        return image
    if mode in WIDE_MODES:
        pixels = np.asarray(image, dtype=np.float64)
        # 16-bit samples by the mode (a PNG has no 32-bit integers): a
        # dark 16-bit image (all values <= 255) was kept as 8-bit values,
        # bright, where TensorFlow's decoder (folders, serving) gives it
        # dark. Other integer or float images: by their range.
        sixteen_bit = mode.startswith("I;16") or (
            mode == "I" and image.format == "PNG"
        )
        high = pixels.max(initial=0)
        if high > 65535:
            # Beyond 16 bits (a 32-bit integer or float TIFF): by its own
            # range, 0..max (before: divided as 16-bit, clipped near white).
            pixels = pixels * (255.0 / high)
        elif sixteen_bit or high > 255:
            pixels = pixels / 257.0
        elif mode == "F" and high <= 1 and pixels.min(initial=0) >= 0:
            # Float samples in [0, 1], the float convention (a float TIFF
            # of 0..1 came out black: every sample rounded to 0 or 1).
            pixels = pixels * 255.0
        pixels = np.clip(np.round(pixels), 0, 255).astype(np.uint8)
        return Image.fromarray(pixels, mode="L").convert("RGB")
    if has_alpha(image):
        return flatten_alpha(image)
    return image.convert("RGB")  # CMYK (Adobe inversion handled), L, P, ...


def has_alpha(image):
    """Whether a Pillow image has transparency (an alpha channel, or a
    palette with a transparent entry)."""
    return image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (
        image.mode == "P" and "transparency" in image.info
    )


def flatten_alpha(image):
    """A Pillow image with transparency as RGB composed onto white, as the
    builder stores it (so that the ImageNet-C / -P generators make the same
    images from a folder as from the builder's records); any other image
    unchanged."""
    from PIL import Image

    if not has_alpha(image):
        return image
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")

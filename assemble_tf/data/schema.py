"""The TFRecord schema of the original ImageNet records.

Keys follow clovaai/assembled-cnn `datasets/build_imagenet_data.py` (itself
the TF Inception/ResNet ImageNet converter). ImageNet labels are 1..1000
with 0 the unused background, so the original 1001-way checkpoints score as
published; other datasets are written 0-based (`label_offset=0`).
"""

IMAGE = "image/encoded"
LABEL = "image/class/label"
SYNSET = "image/class/synset"
TEXT = "image/class/text"
HEIGHT = "image/height"
WIDTH = "image/width"
CHANNELS = "image/channels"
COLORSPACE = "image/colorspace"
FORMAT = "image/format"
FILENAME = "image/filename"
BBOX_XMIN = "image/object/bbox/xmin"
BBOX_YMIN = "image/object/bbox/ymin"
BBOX_XMAX = "image/object/bbox/xmax"
BBOX_YMAX = "image/object/bbox/ymax"
BBOX_LABEL = "image/object/bbox/label"
LOGIT = "image/logit"

IMAGENET_LABEL_OFFSET = 1  # label = index of the sorted synset + 1
MEAN_RGB = (123.68, 116.78, 103.94)

# Shard names: `{split}-{index:05d}-of-{num_shards:05d}`.
SHARD_PATTERN = "{split}-{index:05d}-of-{num_shards:05d}"


def shard_name(split, index, num_shards):
    return SHARD_PATTERN.format(split=split, index=index, num_shards=num_shards)


def feature_spec(num_logits=None):
    """The `tf.io.parse_single_example` spec; logits only when asked."""
    import tensorflow as tf  # the key constants above stay TF-free

    spec = {
        IMAGE: tf.io.FixedLenFeature([], tf.string, default_value=""),
        LABEL: tf.io.FixedLenFeature([], tf.int64, default_value=-1),
        FILENAME: tf.io.FixedLenFeature([], tf.string, default_value=""),
        BBOX_XMIN: tf.io.VarLenFeature(tf.float32),
        BBOX_YMIN: tf.io.VarLenFeature(tf.float32),
        BBOX_XMAX: tf.io.VarLenFeature(tf.float32),
        BBOX_YMAX: tf.io.VarLenFeature(tf.float32),
    }
    if num_logits:
        # VarLen: a missing or mis-sized feature is checked, not raised.
        spec[LOGIT] = tf.io.VarLenFeature(tf.float32)
    return spec


def _bytes(values):
    import tensorflow as tf

    return tf.train.Feature(bytes_list=tf.train.BytesList(value=values))


def _ints(values):
    import tensorflow as tf

    return tf.train.Feature(int64_list=tf.train.Int64List(value=values))


def _floats(values):
    import tensorflow as tf

    return tf.train.Feature(float_list=tf.train.FloatList(value=values))


def make_example(
    encoded_jpeg,
    label,
    height,
    width,
    filename="",
    synset="",
    text="",
    bboxes=None,
    logits=None,
):
    """Builds a `tf.train.Example` in the original format.

    Args:
        encoded_jpeg: bytes of an RGB JPEG.
        label: int, already offset (ImageNet 1..1000).
        height, width: ints, the image size.
        filename: str, the source file's base name.
        synset, text: str, the class id (wnid) and its readable name.
        bboxes: None or a list of (xmin, ymin, xmax, ymax), normalized.
        logits: None or a float sequence (teacher logits for KD).

    Returns:
        A `tf.train.Example`.
    """
    import tensorflow as tf

    bboxes = bboxes or []
    feature = {
        IMAGE: _bytes([encoded_jpeg]),
        LABEL: _ints([int(label)]),
        SYNSET: _bytes([synset.encode()]),
        TEXT: _bytes([text.encode()]),
        HEIGHT: _ints([int(height)]),
        WIDTH: _ints([int(width)]),
        CHANNELS: _ints([3]),
        COLORSPACE: _bytes([b"RGB"]),
        FORMAT: _bytes([b"JPEG"]),
        FILENAME: _bytes([filename.encode()]),
        BBOX_XMIN: _floats([b[0] for b in bboxes]),
        BBOX_YMIN: _floats([b[1] for b in bboxes]),
        BBOX_XMAX: _floats([b[2] for b in bboxes]),
        BBOX_YMAX: _floats([b[3] for b in bboxes]),
        BBOX_LABEL: _ints([int(label)] * len(bboxes)),
    }
    if logits is not None:
        feature[LOGIT] = _floats([float(v) for v in logits])
    return tf.train.Example(features=tf.train.Features(feature=feature))

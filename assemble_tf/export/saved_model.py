"""SavedModel export with serving signatures, verified after writing.

Follows the serving export of clovaai/assembled-cnn `utils/export_utils.py`
(Lee et al. 2020, https://arxiv.org/abs/2001.06268: an encoded-image
signature with the eval preprocessing in the graph, plus a preprocessed-
input one) and fixes its pitfall 17: the preprocessed signature takes the
preset's eval size, not a fixed 224. Signatures:

* `serving_default(images: string [N])`: JPEG or PNG bytes -> the preset's
  eval preprocessing -> `classes` int64 [N], `probabilities` float32 [N, K],
  `logits` float32 [N, K];
* `preprocessed(images: float32 [N, S, S, 3])`: mean-subtracted crops ->
  the same three outputs;
* `feature_vector(images: float32 [N, S, S, 3])`: -> `features` [N, C], the
  pooled (pre-classifier) features.

The export is written to a temporary folder next to the target, reloaded
with `tf.saved_model.load`, compared signature by signature with the
in-memory model, and only then renamed into place: a failure never leaves a
half export.
"""

import os
import shutil
import tempfile

import numpy as np
import tensorflow as tf

from assemble_tf.data import preprocessing

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def decode_any(image_bytes):
    """JPEG (as the original: INTEGER_ACCURATE) or PNG bytes -> uint8 RGB.

    Raises InvalidArgumentError saying the input is not a JPEG or PNG image.
    """
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
            lambda: preprocessing.decode_jpeg(image_bytes),
            lambda: tf.io.decode_png(image_bytes, channels=3),
        )


def preprocess_bytes(image_bytes, preprocessing_type):
    """Encoded bytes -> the eval crop of `preprocessing_type` (float32)."""
    return preprocessing.eval_crop(decode_any(image_bytes), preprocessing_type)


def feature_model(model):
    """The sub-model from the input to the pooled features."""
    import keras

    return keras.Model(model.inputs, model.get_layer("head_pool").output)


class ServingModule(tf.Module):
    """Holds the model and the three signature functions."""

    def __init__(self, model, preprocessing_type, jit_compile=False):
        super().__init__()
        self.model = model
        self.features = feature_model(model)
        self.preprocessing_type = preprocessing_type
        size = preprocessing.eval_sizes(preprocessing_type)[2]
        self.size = size
        spec = tf.TensorSpec([None, size, size, 3], tf.float32, name="images")
        self.preprocessed = tf.function(
            self._outputs, input_signature=[spec], jit_compile=jit_compile
        )
        self.feature_vector = tf.function(
            lambda images: {
                "features": tf.cast(
                    self.features(images, training=False), tf.float32
                )
            },
            input_signature=[spec],
        )
        self.serving_default = tf.function(
            self._serve_bytes,
            input_signature=[tf.TensorSpec([None], tf.string, name="images")],
        )

    def _outputs(self, images):
        logits = tf.cast(self.model(images, training=False), tf.float32)
        return {
            "classes": tf.argmax(logits, axis=-1),
            "probabilities": tf.nn.softmax(logits),
            "logits": logits,
        }

    def _serve_bytes(self, images):
        batch = tf.map_fn(
            lambda b: preprocess_bytes(b, self.preprocessing_type),
            images,
            fn_output_signature=tf.TensorSpec(
                [self.size, self.size, 3], tf.float32
            ),
        )
        return self.preprocessed(batch)

    def signatures(self):
        return {
            "serving_default": self.serving_default,
            "preprocessed": self.preprocessed,
            "feature_vector": self.feature_vector,
        }


def export_saved_model(
    model,
    export_dir,
    preprocessing_type,
    check_images=None,
    check_bytes=None,
    jit_compile=False,
    overwrite=False,
    atol=1e-4,
):
    """Writes, reloads and verifies a SavedModel; returns the max diffs.

    Args:
        model: the Keras classifier (float32 logits).
        export_dir: the final folder (must not exist unless `overwrite`).
        preprocessing_type: the eval preprocessing put in the graph.
        check_images: float32 [N, S, S, 3] for the verification, or None
            for random ones.
        check_bytes: a list of encoded images for the bytes signature, or
            None for generated ones.
        jit_compile: compile `preprocessed` with XLA.
        overwrite: replace an existing `export_dir`.
        atol: allowed max |difference| of logits after reloading.

    Raises:
        FileExistsError: `export_dir` exists and `overwrite` is False.
        ValueError: a signature of the reloaded SavedModel disagrees.
    """
    export_dir = os.path.abspath(export_dir)
    if os.path.exists(export_dir) and not overwrite:
        raise FileExistsError(
            f"--export_dir={export_dir} exists; pass --overwrite to replace it."
        )
    size = preprocessing.eval_sizes(preprocessing_type)[2]
    if check_images is None:
        check_images = (
            np.random.default_rng(0)
            .uniform(-120, 130, (2, size, size, 3))
            .astype("float32")
        )
    if check_bytes is None:
        check_bytes = [
            _sample_jpeg(size + 37, size + 11),
            _sample_png(size, size + 20),
        ]
    module = ServingModule(model, preprocessing_type, jit_compile)
    parent = os.path.dirname(export_dir)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".export_", dir=parent)
    try:
        tf.saved_model.save(module, tmp, signatures=module.signatures())
        diffs = verify(tmp, module, check_images, check_bytes, atol)
        if os.path.exists(export_dir):
            shutil.rmtree(export_dir)
        os.replace(tmp, export_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return diffs


def verify(path, module, images, image_bytes, atol):
    """Compares every signature of the SavedModel at `path` with `module`."""
    loaded = tf.saved_model.load(path)
    sigs = loaded.signatures
    diffs = {}
    want = module.preprocessed(tf.constant(images))
    got = sigs["preprocessed"](images=tf.constant(images))
    diffs["preprocessed"] = _max_diff(want["logits"], got["logits"])
    want_f = module.feature_vector(tf.constant(images))["features"]
    got_f = sigs["feature_vector"](images=tf.constant(images))["features"]
    diffs["feature_vector"] = _max_diff(want_f, got_f)
    data = tf.constant(image_bytes)
    want_b = module.serving_default(data)
    got_b = sigs["serving_default"](images=data)
    diffs["serving_default"] = _max_diff(want_b["logits"], got_b["logits"])
    if not np.array_equal(want_b["classes"].numpy(), got_b["classes"].numpy()):
        raise ValueError("Reloaded serving_default disagrees on classes.")
    bad = {k: v for k, v in diffs.items() if not v <= atol}
    if bad:
        raise ValueError(
            f"The reloaded SavedModel differs from the model: {bad} "
            f"(allowed {atol})."
        )
    return diffs


def _max_diff(a, b):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))))


def _sample_jpeg(height, width):
    image = (np.indices((height, width)).sum(0)[..., None] * [1, 2, 3]) % 256
    return tf.io.encode_jpeg(image.astype("uint8")).numpy()


def _sample_png(height, width):
    image = (np.indices((height, width))[0][..., None] * [3, 1, 2]) % 256
    return tf.io.encode_png(image.astype("uint8")).numpy()

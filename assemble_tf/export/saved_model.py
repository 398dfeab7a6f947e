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
twice, with `tf.saved_model.load` and with the graph-and-session loader that
`saved_model_cli run` and TF Serving use, compared signature by signature
with the in-memory model, and only then renamed into place (with the
umask's permissions, not the temporary folder's 0700): a failure never
leaves a half export.
"""

import os
import shutil
import tempfile

import numpy as np
import tensorflow as tf

from assemble_tf.data import preprocessing


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
        # Track the TensorFlow variables themselves. Through the Keras
        # objects alone the SavedModel restores them under other handles
        # than the functions read, which `tf.saved_model.load` tolerates but
        # the C++ session loader of `saved_model_cli run` and TF Serving
        # does not ("Could not find variable ...").
        self.serving_variables = [v.value for v in model.variables]
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
            lambda b: preprocessing.preprocess_bytes(
                b, self.preprocessing_type
            ),
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
        os.chmod(tmp, 0o777 & ~_umask())
        if os.path.exists(export_dir):
            shutil.rmtree(export_dir)
        os.replace(tmp, export_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return diffs


def verify(path, module, images, image_bytes, atol):
    """Compares every signature of the SavedModel at `path` with `module`,
    loaded by TF2 (`tf.saved_model.load`) and by the TF1 session loader of
    `saved_model_cli run` and TF Serving; returns the larger max diffs."""
    inputs = {
        "preprocessed": np.asarray(images, np.float32),
        "feature_vector": np.asarray(images, np.float32),
        "serving_default": np.asarray(image_bytes, object),
    }
    want = {
        name: {k: v.numpy() for k, v in fn(tf.constant(inputs[name])).items()}
        for name, fn in module.signatures().items()
    }
    sigs = tf.saved_model.load(path).signatures
    loaders = {
        "tf.saved_model.load": {
            name: {
                k: v.numpy()
                for k, v in sigs[name](images=tf.constant(x)).items()
            }
            for name, x in inputs.items()
        },
        "session loader": run_in_session(path, inputs),
    }
    diffs = {}
    for loader, results in loaders.items():
        for name, expected in want.items():
            key = "features" if name == "feature_vector" else "logits"
            diff = _max_diff(expected[key], results[name][key])
            diffs[name] = max(diffs.get(name, 0.0), diff)
            if "classes" in expected and not np.array_equal(
                expected["classes"], results[name]["classes"]
            ):
                raise ValueError(
                    f"The SavedModel's {name} signature, loaded by the "
                    f"{loader}, disagrees with the model on classes."
                )
    bad = {k: v for k, v in diffs.items() if not v <= atol}
    if bad:
        raise ValueError(
            f"The reloaded SavedModel differs from the model: {bad} "
            f"(allowed {atol})."
        )
    return diffs


def run_in_session(path, inputs, tags=("serve",)):
    """Runs signatures as TF Serving does: the SavedModel's graph imported
    into a TF1 session, variables restored by its saver.

    Args:
        path: the SavedModel folder.
        inputs: {signature name: numpy value of its `images` input}.
        tags: the MetaGraph's tag set.

    Returns:
        {signature name: {output name: numpy value}}.
    """
    out = {}
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        meta = tf.compat.v1.saved_model.load(sess, list(tags), path)
        for name, value in inputs.items():
            sig = meta.signature_def[name]
            fetches = {k: t.name for k, t in sig.outputs.items()}
            out[name] = sess.run(
                fetches, feed_dict={sig.inputs["images"].name: value}
            )
    return out


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _max_diff(a, b):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))))


def _sample_jpeg(height, width):
    image = (np.indices((height, width)).sum(0)[..., None] * [1, 2, 3]) % 256
    return tf.io.encode_jpeg(image.astype("uint8")).numpy()


def _sample_png(height, width):
    image = (np.indices((height, width))[0][..., None] * [3, 1, 2]) % 256
    return tf.io.encode_png(image.astype("uint8")).numpy()

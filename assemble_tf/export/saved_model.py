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

The export is written to a temporary folder next to the target
(`placement`), reloaded twice and compared signature by signature with the
in-memory model (`verification`), and only then renamed into place: a
failure never leaves a half export. Bad inputs fail at the signature with
an `InvalidArgumentError` saying what it takes.

A bfloat16 export (`precision.bfloat16_copy` of the model) keeps the same
float32 (and string) inputs and float32 outputs; the verification then also
compares it with the float32 model (`verification.ReferenceCheck`).

Beside the variables, an export carries the class names
(`assets/class_names.txt`) and its eval preprocessing type
(`assets/preprocessing.txt`, `saved_preprocessing`).
"""

import functools
import os
import shutil
import tempfile

import tensorflow as tf

from assemble_tf import models
from assemble_tf.data import preprocessing
from assemble_tf.export import placement, verification


class ServingModule(tf.Module):
    """Holds the model and the three signature functions.

    Args:
        model: the Keras classifier.
        preprocessing_type: the eval preprocessing of `serving_default`.
        jit_compile: XLA-compile the network of `preprocessed` (and so of
            `serving_default`, which calls it).
        class_names: the name of each logit (`class_names` outputs), or
            None for their indices ("0", "1", ...).
    """

    def __init__(
        self, model, preprocessing_type, jit_compile=False, class_names=None
    ):
        super().__init__()
        width = int(model.outputs[0].shape[-1])
        if class_names is None:
            class_names = [str(i) for i in range(width)]
        if len(class_names) != width:
            raise ValueError(
                f"{len(class_names)} class names for a model of {width} logits."
            )
        # A tensor, not a list attribute (which the SavedModel would keep
        # as an empty child object).
        self._names = tf.constant(list(class_names), tf.string)
        # Logits and features from one traced function, which all three
        # signatures call: the SavedModel holds the network once, and the
        # export traces it once (the feature signature computes the
        # classifier's matmul too, which it does not return). The
        # two-output model is held by a closure, not as a tracked
        # attribute: its object graph (the same layers as `model`'s) would
        # be saved and restored again for nothing (a tiny Assemble-R50
        # exports 7 % faster).
        network = models.feature_model(model, with_logits=True)
        self._network = lambda images: network(images, training=False)
        # Track the TensorFlow variables themselves, and not the Keras
        # model: through the Keras objects the SavedModel restores them
        # under other handles than the functions read, which
        # `tf.saved_model.load` tolerates but the C++ session loader of
        # `saved_model_cli run` and TF Serving does not ("Could not find
        # variable ..."); and saving a tracked Keras model traces its
        # default signature (`_default_save_signature`, the whole network
        # again, kept beside ours: a tiny Assemble-R50's saved_model.pb was
        # 3.0 MB instead of 1.4, and its export took half as long again).
        # Warm starts read the variables by their paths from this list
        # (`runs.checkpoints.read_model_variables`).
        self.serving_variables = [v.value for v in model.variables]
        self.preprocessing_type = preprocessing_type
        size = preprocessing.eval_sizes(preprocessing_type)[2]
        self.size = size
        spec = tf.TensorSpec([None, size, size, 3], tf.float32, name="images")
        # No autograph: the signatures hold no tensor-valued Python control
        # flow, and converting the model's code took seconds of each trace.
        signature = functools.partial(tf.function, autograph=False)
        self.forward = signature(self._forward, input_signature=[spec])
        # With jit_compile, `preprocessed` runs the network XLA-compiled
        # and its input checks and class names (string ops, which XLA has
        # not; its Assert does nothing) outside.
        forward = self.forward
        if jit_compile:
            forward = signature(self._forward, jit_compile=True)
        self._crops_forward = lambda images: forward(images)
        self.preprocessed = signature(self._outputs, input_signature=[spec])
        self.feature_vector = signature(self._features, input_signature=[spec])
        self.serving_default = signature(
            self._serve_bytes,
            input_signature=[tf.TensorSpec([None], tf.string, name="images")],
        )

    @property
    def class_names(self):
        """The name of each logit (what `class_names` outputs return)."""
        return [name.decode() for name in self._names.numpy()]

    def _check_crops(self, images, signature):
        """`images` after asserting it is a non-empty batch of S x S x 3
        crops of finite values of magnitude at most `MAX_CROP_MAGNITUDE`
        (InvalidArgumentError naming the signature, not one from inside
        the model). The session loader of TF Serving
        feeds any shape: the rank is checked before the sizes. NaN or Inf
        are refused: the exported graph's fused convolutions turn them into
        finite, confident logits (Grappler's remapper), where the Keras
        model gives NaN. Control dependencies, not `gated`'s cond: the
        TFLite converter does not take the model after a cond (its Conv2D
        is left to TF Select), and `preprocessed` converts as it is."""
        size = self.size
        shape = tf.shape(images)
        padded = tf.concat([shape, tf.zeros([4], tf.int32)], 0)
        good_shape = tf.logical_and(
            tf.equal(tf.size(shape), 4),
            tf.reduce_all(tf.equal(padded[1:4], [size, size, 3])),
        )
        checks = [
            tf.debugging.Assert(
                good_shape,
                [
                    f"{signature} takes float32 crops of shape "
                    f"[N, {size}, {size}, 3] (the eval size of "
                    f"{self.preprocessing_type}); got shape",
                    shape,
                ],
                summarize=5,
            ),
            tf.debugging.Assert(
                tf.logical_or(tf.logical_not(good_shape), padded[0] > 0),
                [f"{signature}: the batch of images is empty"],
            ),
        ]
        with tf.control_dependencies(checks):
            images = tf.identity(images)
        finite = tf.reduce_all(tf.math.is_finite(images), axis=[1, 2, 3])
        first_bad = tf.argmin(tf.cast(finite, tf.int32), output_type=tf.int32)
        check = tf.debugging.Assert(
            tf.reduce_all(finite),
            [
                f"{signature}: the crops hold NaN or Inf values; index of "
                "the first such image:",
                first_bad,
            ],
        )
        with tf.control_dependencies([check]):
            # Finite crops far off the scale: values of 1e38 overflowed in
            # the network, and a plain export's fused convolutions turned
            # the NaNs into finite, confident logits (the same for 1e38
            # and -3e38).
            largest = tf.reduce_max(tf.abs(images), axis=[1, 2, 3])
            first_off = tf.argmax(largest, output_type=tf.int32)
            scale = tf.debugging.Assert(
                tf.reduce_all(largest <= MAX_CROP_MAGNITUDE),
                [
                    f"{signature}: the crops are off the input scale; the "
                    "image at index",
                    first_off,
                    "reaches a magnitude of",
                    largest[first_off],
                    "(more than "
                    f"{MAX_CROP_MAGNITUDE:,.0f}); crops are RGB on the 0-255 "
                    "scale minus the ImageNet mean (magnitudes up to 152)",
                ],
            )
        with tf.control_dependencies([scale]):
            return tf.identity(images)

    def _check_outputs(self, outputs, images, signature):
        """`outputs` (float32 [N, C]) after asserting they are finite. Finite
        crops far off the normalised scale (values of 1e38) overflow inside
        the network: NaN logits would give a class and probabilities of
        NaN. The message names the first such image and its largest crop
        value, which tells a crop off the scale from weights that are not
        finite."""
        finite = tf.reduce_all(tf.math.is_finite(outputs), axis=-1)
        first_bad = tf.argmin(tf.cast(finite, tf.int32), output_type=tf.int32)
        largest = tf.reduce_max(tf.abs(tf.gather(images, first_bad)))
        check = tf.debugging.Assert(
            tf.reduce_all(finite),
            [
                f"{signature}: the network outputs are not finite for the "
                "image at index",
                first_bad,
                "whose crop values reach a magnitude of",
                largest,
                "; crops are RGB on the 0-255 scale minus the ImageNet mean "
                "(magnitudes up to 152)",
            ],
        )
        with tf.control_dependencies([check]):
            return tf.identity(outputs)

    def _forward(self, images):
        out = self._network(images)
        return {k: tf.cast(v, tf.float32) for k, v in out.items()}

    def _features(self, images):
        images = self._check_crops(images, "feature_vector")
        features = self.forward(images)["features"]
        return {
            "features": self._check_outputs(features, images, "feature_vector")
        }

    def _outputs(self, images):
        images = self._check_crops(images, "preprocessed")
        logits = self._crops_forward(images)["logits"]
        logits = self._check_outputs(logits, images, "preprocessed")
        classes = tf.argmax(logits, axis=-1)
        return {
            "classes": classes,
            "class_names": tf.gather(self._names, classes),
            "probabilities": tf.nn.softmax(logits),
            "logits": logits,
        }

    def _serve_bytes(self, images):
        images = check_encoded_images(images)

        def preprocess(args):
            index, image = args
            image = check_image_pixels(image, index)
            return preprocessing.preprocess_bytes(
                image, self.preprocessing_type
            )

        batch = tf.map_fn(
            preprocess,
            (tf.range(tf.size(images)), images),
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


# The largest crop magnitude the float signatures take: 0-255 RGB minus
# the ImageNet mean reaches 152, 0-255 unnormalised 255.
MAX_CROP_MAGNITUDE = 1000.0
JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def check_encoded_images(images):
    """`images` (string [N]) after asserting it is a non-empty batch of JPEG
    or PNG bytes.

    The messages hold no bytes of the input (a BMP's or WebP's first bytes
    in an error message are no UTF-8: Python clients then fail decoding the
    message instead of raising the error); the index of the first bad image
    is given.

    Raises:
        tf.errors.InvalidArgumentError: (when run) an empty batch, or an
            image that is neither JPEG nor PNG.
    """
    # The session loader of TF Serving feeds any shape: a scalar (one
    # image not in a batch) or [N, 1] is named, not a ConcatOp error. The
    # rank is counted from the shape's values: the signature's [N] spec
    # let Grappler fold tf.rank / tf.size(shape) to 1, and the check
    # vanished. What follows reads the batch only through `gated`'s cond:
    # with control dependencies alone, Grappler removed the reshape
    # ([None] -> [-1]) they hung on, and the ops after it raced the check
    # (a ConcatOp error won now and then once the signature had run).
    shape = tf.shape(images)
    rank = tf.math.count_nonzero(shape + 1, dtype=tf.int32)
    flat = gated(
        tf.equal(rank, 1),
        lambda: tf.reshape(images, [-1]),
        [
            "serving_default takes a batch of encoded images: string "
            "[N], one JPEG or PNG each; got shape",
            shape,
        ],
        tf.zeros([0], tf.string),
    )
    flat = gated(
        tf.size(flat) > 0,
        lambda: flat,
        ["serving_default: the batch of images is empty"],
        flat,
    )
    ok = tf.logical_or(
        tf.equal(tf.strings.substr(flat, 0, len(JPEG_MAGIC)), JPEG_MAGIC),
        tf.equal(tf.strings.substr(flat, 0, len(PNG_MAGIC)), PNG_MAGIC),
    )
    first_bad = tf.argmin(tf.cast(ok, tf.int32), output_type=tf.int32)
    return gated(
        tf.reduce_all(ok),
        lambda: flat,
        [
            "serving_default: input is not a JPEG or PNG image (the "
            "accepted formats); index of the first such image:",
            first_bad,
        ],
        flat,
    )


def gated(condition, passed, message, placeholder):
    """`passed()` where `condition` holds, else an `InvalidArgumentError`
    with `message` (a list of strings and tensors, `tf.debugging.Assert`'s
    data): what follows reads the value through a cond, so no op can run
    before the check (and fail with its own error first), whatever
    Grappler removes. `placeholder` is the failing branch's value (never
    returned) of `passed()`'s type."""

    def refuse():
        check = tf.debugging.Assert(False, message, summarize=5)
        with tf.control_dependencies([check]):
            return tf.identity(placeholder)

    return tf.cond(condition, passed, refuse)


# PIL's decompression-bomb threshold (Image.MAX_IMAGE_PIXELS): a 187 KB
# PNG can hold 8000 x 8000 pixels, and a JPEG up to 65,535 x 65,535 (12.9
# GB decoded). 8,000 x 8,000 passes; 9,500 x 9,500 does not.
MAX_IMAGE_PIXELS = 89_478_485


def check_image_pixels(image, index):
    """`image` (JPEG or PNG bytes) after asserting, from its header, that it
    holds at most `MAX_IMAGE_PIXELS` pixels (InvalidArgumentError naming
    its index in the batch and its size)."""
    return preprocessing.checked_pixels(
        image,
        MAX_IMAGE_PIXELS,
        ("serving_default: image", index, "is"),
        "this export decodes; send it resized",
    )


def export_saved_model(
    model,
    export_dir,
    preprocessing_type,
    check_images=None,
    check_bytes=None,
    jit_compile=False,
    overwrite=False,
    atol=1e-4,
    reference=None,
    rtol=None,
    log=lambda text: None,
    class_names=None,
):
    """Writes, reloads and verifies a SavedModel; returns the max diffs.

    Args:
        model: the Keras classifier (float32 logits; computing in float32,
            or in bfloat16 as made by `precision.bfloat16_copy`).
        export_dir: the final folder (must not exist unless `overwrite`).
        preprocessing_type: the eval preprocessing put in the graph.
        check_images: float32 [N, S, S, 3] for the verification, or None
            for random ones (2, or `reference.num_images`).
        check_bytes: a list of encoded images for the bytes signature, or
            None for generated ones (as many as random `check_images`).
        jit_compile: compile `preprocessed` with XLA.
        overwrite: replace an existing `export_dir`.
        atol: allowed max |difference| of logits after reloading.
        reference: a `verification.ReferenceCheck` (the float32 model a
            bfloat16 export must stay close to; `measured` filled in).
        rtol: the reloaded outputs' allowed mean relative L2
            (`verification.reload_failure`); None: 0 in float32, 0.05
            computing in bfloat16 / float16 (the reloaded graph fuses conv
            + bias + ReLU: 0.008 on a tiny trained Assemble-R50).
        log: called with a line for each temporary folder of a dead
            export removed from `export_dir`'s parent.
        class_names: the name of each logit, or None for their indices:
            the `class_names` outputs, and `assets/class_names.txt` (one
            per line, logit 0 first).

    Returns:
        {signature: max |difference| of the reloaded SavedModel's logits
        (features) from `model`'s}, the larger of the two loaders.

    The temporary folder `.export_<pid>@<host>.<random>` beside
    `export_dir` is removed on any error, or if killed by the next export
    into that parent on that host (`placement.remove_stale_exports`).

    Raises:
        PathExistsError (a FileExistsError and an `OptionError`):
            `export_dir` exists and `overwrite` is False, also when it
            appeared during the export (another export into it): the final
            rename never replaces a folder without `overwrite`.
        ValueError: a signature of the reloaded SavedModel disagrees with
            `model`, or is further from `reference.model` than allowed (an
            `OptionError` naming `precision`).
    """
    export_dir = os.path.abspath(export_dir)
    if os.path.exists(export_dir):
        placement.check_replaceable(export_dir, overwrite)
    check_images, check_bytes = verification.verification_inputs(
        preprocessing_type, check_images, check_bytes, reference
    )
    if rtol is None:
        rtol = 0.0 if model.compute_dtype == "float32" else 0.05
    module = ServingModule(model, preprocessing_type, jit_compile, class_names)
    tmp = placement.temp_export_dir(export_dir, log)
    try:
        save_module(module, tmp)
        diffs = verification.verify(
            tmp, module, check_images, check_bytes, atol, reference, rtol
        )
        placement.move_into_place(tmp, export_dir, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return diffs


# The asset naming the eval preprocessing of `serving_default`: what a
# consumer of the crop signatures (a KD teacher, retrieval) must apply.
PREPROCESSING_FILE = "preprocessing.txt"


def save_module(module, path):
    """Saves the `ServingModule` `module` to `path` with its class names as
    the asset `class_names.txt` (`tf.saved_model.load(path).class_names_file`)
    and its eval preprocessing type as `preprocessing.txt`: what
    `export_saved_model` writes, before it verifies and renames it.
    The names are written to a temporary folder beside `path`, named as the
    export's own (before: in the system's temporary folder, where a killed
    export left it; the next export removes it with the export's)."""
    parent = os.path.dirname(os.path.abspath(path))
    folder = tempfile.mkdtemp(prefix=placement.temp_prefix(), dir=parent)
    try:
        names = os.path.join(folder, "class_names.txt")
        with open(names, "w", encoding="utf-8") as f:
            f.writelines(f"{name}\n" for name in module.class_names)
        module.class_names_file = tf.saved_model.Asset(names)
        kind = os.path.join(folder, PREPROCESSING_FILE)
        with open(kind, "w", encoding="utf-8") as f:
            f.write(f"{module.preprocessing_type}\n")
        module.preprocessing_file = tf.saved_model.Asset(kind)
        tf.saved_model.save(
            module,
            path,
            signatures=module.signatures(),
            options=verification.SAVE_OPTIONS,
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def saved_preprocessing(path):
    """The eval preprocessing type an export of ours names in
    `assets/preprocessing.txt`, else None (an export from before it, or
    another program's SavedModel). Reads the file alone: no TensorFlow
    graph is loaded."""
    asset = os.path.join(path, "assets", PREPROCESSING_FILE)
    if not tf.io.gfile.exists(asset):
        return None
    with tf.io.gfile.GFile(asset) as f:
        kind = f.read().strip()
    try:
        preprocessing.eval_sizes(kind)
    except ValueError:
        raise ValueError(
            f"{asset} names the eval preprocessing {kind!r}, not a type "
            "this version knows ('imagenet', 'imagenet_NNN', "
            "'imagenet_NNNa', ...): export the model again with python -m "
            "tools.export_saved_model."
        ) from None
    return kind

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
umask's permissions, not the temporary folder's 0700), never over a
folder that appeared meanwhile unless `overwrite`: a failure never leaves
a half export, and the temporary folder a killed export left
(`.export_<pid>@<host>.*`) goes with the next export beside it. Bad inputs
fail at the signature with an `InvalidArgumentError` saying what it takes.

A bfloat16 export (`precision.bfloat16_copy` of the model) keeps the same
float32 (and string) inputs and float32 outputs; the verification then also
compares every signature, as the session loader runs it, with the float32
model (`ReferenceCheck`): mean relative L2 of logits and features <= 0.15,
top-1 agreement >= 0.8 on the 32 verification images (crops, and as
many encoded images for `serving_default`).
"""

import contextlib
import ctypes
import dataclasses
import errno
import functools
import os
import re
import shutil
import socket
import tempfile

import numpy as np
import tensorflow as tf

from assemble_tf.data import preprocessing
from assemble_tf.export import precision
from official.utils.misc.validation import (
    OptionError,
    PathExistsError,
    PathNotWritableError,
    check_creatable_path,
)


def feature_model(model, with_logits=False):
    """The sub-model from the input to the model's embedding (its
    embedding head's batch-normalised output, else the pooled features:
    `models.embedding_layer`, what retrieval embeds); with `with_logits`,
    to {"logits", "features"} (one pass for both)."""
    import keras

    from assemble_tf.models import embedding_layer

    # The single input itself, not `model.inputs` (a list): a sub-model
    # built on a list warns that a tensor "doesn't match the expected
    # structure" each time it is called with one.
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    # Before: always head_pool, so an embedding-head (retrieval) model's
    # export served another vector than the one it was evaluated on.
    features = model.get_layer(embedding_layer(model) or "head_pool").output
    if with_logits:
        outputs = {"logits": model.outputs[0], "features": features}
        return keras.Model(inputs, outputs)
    return keras.Model(inputs, features)


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
        self.model = model
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
        network = feature_model(model, with_logits=True)
        self._network = lambda images: network(images, training=False)
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
        crops of finite values (InvalidArgumentError naming the signature,
        not one from inside the model). The session loader of TF Serving
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


def image_size_from_header(image):
    """(height, width) int64 of JPEG or PNG bytes, read from the header
    (no decoding); (0, 0) for a PNG too short to hold one."""
    png_size = tf.cond(
        tf.strings.length(image) >= 24,
        lambda: tf.cast(
            tf.io.decode_raw(
                tf.strings.substr(image, 16, 8), tf.uint8, little_endian=False
            ),
            tf.int64,
        ),
        lambda: tf.zeros([8], tf.int64),
    )
    # IHDR: width then height, big-endian 32-bit.
    weights = tf.constant([1 << 24, 1 << 16, 1 << 8, 1], tf.int64)
    png = tf.stack(
        [
            tf.reduce_sum(png_size[4:] * weights),
            tf.reduce_sum(png_size[:4] * weights),
        ]
    )
    return tf.cond(
        tf.io.is_jpeg(image),
        lambda: tf.cast(tf.io.extract_jpeg_shape(image)[:2], tf.int64),
        lambda: png,
    )


def check_image_pixels(image, index):
    """`image` (JPEG or PNG bytes) after asserting, from its header, that it
    holds at most `MAX_IMAGE_PIXELS` pixels (InvalidArgumentError naming
    its index in the batch and its size)."""
    size = image_size_from_header(image)
    check = tf.debugging.Assert(
        size[0] * size[1] <= MAX_IMAGE_PIXELS,
        [
            "serving_default: image",
            index,
            "is",
            size[1],
            "x",
            size[0],
            f"pixels (width x height), more than the {MAX_IMAGE_PIXELS:,} "
            "this export decodes; send it resized",
        ],
    )
    with tf.control_dependencies([check]):
        return tf.identity(image)


@dataclasses.dataclass
class ReferenceCheck:
    """Tolerances of an export against another model (bfloat16 vs float32).

    The defaults are the bfloat16 ones. Measured on random weights and 32
    noise images: a mean relative L2 of logits of 0.004-0.034 (R50 and
    Assemble-R50 at 224 px, base-width-8 models at 32-64 px); top-1
    agreement 0.91-1.0, noisy where random logits nearly tie (a flip needs
    a top-2 margin within the bfloat16 error), so its bound only catches
    gross failures. The trained demo model: docs/benchmarks.md.

    Attributes:
        model: the reference Keras model (the float32 one).
        max_mean_relative_l2: the largest allowed mean over the verification
            images of ||out - ref|| / ||ref|| (logits, and features of the
            `feature_vector` signature).
        min_top1_agreement: the smallest allowed fraction of verification
            images whose class is the reference's (`preprocessed`, the one
            signature with enough images for a fraction to mean something).
        num_images: random verification images when none are passed.
        measured: set by `verify`: {signature: `precision.compare_logits`
            of its output against the reference's (no top-1 agreement for
            `feature_vector`)}.
    """

    model: object
    max_mean_relative_l2: float = 0.15
    min_top1_agreement: float = 0.8
    num_images: int = 32
    measured: dict = dataclasses.field(default_factory=dict)

    def tolerance(self):
        return {
            "max_mean_relative_l2": self.max_mean_relative_l2,
            "min_top1_agreement": self.min_top1_agreement,
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
        reference: a `ReferenceCheck` (the float32 model a bfloat16 export
            must stay close to), or None; its `measured` is filled in.
        rtol: 0: the reloaded outputs within `atol` of the model's; > 0:
            their mean relative L2 <= rtol, and the same classes where the
            top-2 margin exceeds 2 atol + rtol max |output|
            (`reload_failure`). None: 0 in float32, 0.05 computing in
            bfloat16 / float16 (the reloaded graph fuses conv + bias + ReLU
            and rounds otherwise: 0.008 on a tiny trained Assemble-R50).
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
    into that parent on that host (`remove_stale_exports`).

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
        _check_replaceable(export_dir, overwrite)
    check_images, check_bytes = _verification_inputs(
        preprocessing_type, check_images, check_bytes, reference
    )
    if rtol is None:
        rtol = 0.0 if model.compute_dtype == "float32" else 0.05
    module = ServingModule(model, preprocessing_type, jit_compile, class_names)
    tmp = _temp_export_dir(export_dir, log)
    try:
        save_module(module, tmp)
        diffs = verify(
            tmp, module, check_images, check_bytes, atol, reference, rtol
        )
        _move_into_place(tmp, export_dir, overwrite)
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
    folder = tempfile.mkdtemp(prefix=_temp_prefix(), dir=parent)
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
            module, path, signatures=module.signatures(), options=SAVE_OPTIONS
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# The options of every save. `tf.saved_model.save` traces the signatures
# under them, and TensorFlow keys its traces by them: `verify` calls the
# module's signatures under the same options, reusing those traces instead
# of tracing the network and every signature again (about 2 s of a tiny
# Assemble-R50's 16-18 s export); the graph saved is the one compared.
SAVE_OPTIONS = tf.saved_model.SaveOptions()


def _run_as_saved(functions, inputs):
    """{name: {output: numpy value}} of `functions[name](inputs[name])`,
    run with the traces `save_module` made (see `SAVE_OPTIONS`)."""
    try:  # TensorFlow's own module, not its API: without it, traced again
        from tensorflow.python.saved_model import save_context

        options = save_context.save_context(SAVE_OPTIONS)
    except (ImportError, AttributeError):
        options = contextlib.nullcontext()
    with options:
        return {
            name: {
                k: v.numpy() for k, v in fn(tf.constant(inputs[name])).items()
            }
            for name, fn in functions.items()
        }


def _verification_inputs(preprocessing_type, images, image_bytes, reference):
    """The crops and encoded images the export is verified on.

    Args:
        preprocessing_type: the eval preprocessing (its size is the crops').
        images: float32 [N, S, S, 3], or None for random ones (2, or
            `reference.num_images`).
        image_bytes: encoded images, or None for as many generated ones.
        reference: a `ReferenceCheck` or None.

    Returns:
        (images, image_bytes), the given ones or made ones.
    """
    size = preprocessing.eval_sizes(preprocessing_type)[2]
    count = 2 if reference is None else reference.num_images
    if images is None:
        images = (
            np.random.default_rng(0)
            .uniform(-120, 130, (count, size, size, 3))
            .astype("float32")
        )
    if image_bytes is None:
        image_bytes = sample_images(size, count)
    return images, image_bytes


def _temp_export_dir(export_dir, log):
    """A new temporary folder beside `export_dir` to write the export to.

    Makes the parent folder and first removes the temporary folders of
    dead exports there (`remove_stale_exports`), logging each.

    Returns:
        The temporary folder's path (`.export_<pid>@<host>.<random>`).
    """
    parent = os.path.dirname(export_dir)
    # Named as the flag (before: "[Errno 17] File exists: <parent>" where a
    # file sits in the way, which sent users to --overwrite).
    check_creatable_path("export_dir", export_dir)
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as e:
        raise PathNotWritableError(
            "export_dir",
            "{field}={path} cannot be created ({reason}); export to a "
            "folder you can write to.",
            errno_code=e.errno,
            path=export_dir,
            reason=e.strerror or e,
        ) from None
    for stale in remove_stale_exports(parent):
        log(f"Removed {stale}, the temporary folder of a dead export.")
    try:
        return tempfile.mkdtemp(prefix=_temp_prefix(), dir=parent)
    except OSError as e:  # named by the temporary folder, unknown to users
        raise PathNotWritableError(
            "export_dir",
            "{field}={path} cannot be written: no folder can be made in "
            "{parent} ({reason}); export to a folder you can write to.",
            errno_code=e.errno,
            path=export_dir,
            parent=parent,
            reason=e.strerror or e,
        ) from None


def _move_into_place(tmp, export_dir, overwrite):
    """Renames the verified export `tmp` to `export_dir`, with the umask's
    permissions (not the temporary folder's 0700).

    Raises:
        PathExistsError: `export_dir` exists and not `overwrite` (also
            when it appeared during the export).
    """
    os.chmod(tmp, 0o777 & ~_umask())
    if overwrite and os.path.exists(export_dir):
        _check_replaceable(export_dir, overwrite)
        # Swapped, then the old one removed: TF Serving, polling the
        # version folder, never finds it missing (it was deleted, then
        # the new one renamed: a poll in between unloaded the version).
        _exchange(tmp, export_dir)
        shutil.rmtree(tmp)
        return
    _rename_no_replace(tmp, export_dir)


def _renameat2(src, dst, flags):
    """Linux' renameat2(src, dst, flags): 0, or the errno (ENOSYS where
    the C library has no renameat2)."""
    libc = ctypes.CDLL(None, use_errno=True)
    rename = getattr(libc, "renameat2", None)
    if rename is None:
        return errno.ENOSYS
    result = rename(
        _AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), flags
    )
    return 0 if result == 0 else ctypes.get_errno()


def _exchange(a, b):
    """Swaps the folders `a` and `b` in one step: Linux' renameat2(
    RENAME_EXCHANGE) where available, else `b` renamed aside, `a` renamed
    to `b`, and the old `b` renamed to `a` (an instant without `b`)."""
    code = _renameat2(a, b, _RENAME_EXCHANGE)
    if code == 0:
        return
    if code not in (errno.EINVAL, errno.ENOSYS):  # unsupported: below
        raise OSError(code, os.strerror(code), b)
    aside = a + ".old"
    os.rename(b, aside)
    os.rename(a, b)
    os.rename(aside, a)


def verify(path, module, images, image_bytes, atol, reference=None, rtol=0.0):
    """Compares every signature of the SavedModel at `path` with `module`,
    loaded by TF2 (`tf.saved_model.load`) and by the TF1 session loader of
    `saved_model_cli run` and TF Serving; returns the larger max
    |differences| (what each loader must meet: `reload_failure`). With a
    `ReferenceCheck`, also compares the session loader's outputs with its
    model (see `check_reference`)."""
    inputs = {
        "preprocessed": np.asarray(images, np.float32),
        "feature_vector": np.asarray(images, np.float32),
        "serving_default": np.asarray(image_bytes, object),
    }
    want = _run_as_saved(module.signatures(), inputs)
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
    diffs, allowed, bad = {}, {}, {}
    for loader, results in loaders.items():
        for name, expected in want.items():
            key = "features" if name == "feature_vector" else "logits"
            allowed[name] = atol + rtol * float(np.max(np.abs(expected[key])))
            diff = _max_diff(expected[key], results[name][key])
            diffs[name] = max(diffs.get(name, 0.0), diff)
            failure = reload_failure(
                expected[key], results[name][key], atol, rtol
            )
            if failure:
                bad[f"{name} ({loader})"] = failure
            if "classes" not in expected:
                continue
            sure = (
                _top2_margin(expected[key]) > 2 * allowed[name]
                if rtol
                else slice(None)
            )
            for output in ("classes", "class_names"):
                if not np.array_equal(
                    expected[output][sure], results[name][output][sure]
                ):
                    raise ValueError(
                        f"The SavedModel's {name} signature, loaded by the "
                        f"{loader}, disagrees with the model on {output}."
                    )
    if bad:
        raise ValueError(
            "The reloaded SavedModel differs from the model: "
            + "; ".join(f"{name}: {text}" for name, text in bad.items())
            + "."
        )
    if reference is not None:
        check_reference(
            reference,
            loaders["session loader"],
            images,
            image_bytes,
            module.preprocessing_type,
        )
    return diffs


def check_reference(reference, results, images, image_bytes, ptype):
    """Compares a SavedModel's outputs with `reference.model`'s.

    Args:
        reference: the `ReferenceCheck`; its `measured` is filled in.
        results: {signature: {output: value}} of the SavedModel on `images`
            (`preprocessed`, `feature_vector`) and `image_bytes`
            (`serving_default`).
        images: the float32 verification crops.
        image_bytes: the encoded verification images.
        ptype: the eval preprocessing of the bytes signature.

    Raises:
        OptionError: (field `precision`) a signature's mean relative L2 or
            top-1 agreement is outside the tolerance; names the signature
            and the numbers.
    """
    model = reference.model
    crops = tf.stack(
        [
            preprocessing.preprocess_bytes(tf.constant(b), ptype)
            for b in image_bytes
        ]
    )
    want = {
        "preprocessed": ("logits", model(images, training=False)),
        "serving_default": ("logits", model(crops, training=False)),
        "feature_vector": (
            "features",
            feature_model(model)(images, training=False),
        ),
    }
    failures = []
    for name, (key, expected) in want.items():
        got = precision.compare_logits(
            np.asarray(expected, np.float32), results[name][key]
        )
        if key == "features":  # an argmax of features means nothing
            del got["top1_agreement"]
        reference.measured[name] = got
        if not got["mean_relative_l2"] <= reference.max_mean_relative_l2:
            failures.append(
                f"{name}: mean relative L2 of {key} "
                f"{got['mean_relative_l2']:.4g} > "
                f"{reference.max_mean_relative_l2}"
            )
        if (
            name == "preprocessed"
            and got["top1_agreement"] < reference.min_top1_agreement
        ):
            failures.append(
                f"{name}: top-1 agreement {got['top1_agreement']:.4g} < "
                f"{reference.min_top1_agreement} on {got['count']} images"
            )
    if failures:
        raise OptionError(
            "precision",
            "The exported model is further from the reference (float32) "
            "model than allowed: {failures}. Export with {field}=float32, "
            "or check the model's bfloat16 accuracy with tools.evaluate "
            "{field}=bfloat16.",
            failures="; ".join(failures),
        )
    return reference.measured


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
    # `SavedModelLoader.load` is what `tf.compat.v1.saved_model.load` (and
    # so saved_model_cli) runs, without that function's deprecation warning.
    from tensorflow.python.saved_model import loader_impl

    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        meta = loader_impl.SavedModelLoader(path).load(sess, list(tags))
        for name, value in inputs.items():
            sig = meta.signature_def[name]
            fetches = {k: t.name for k, t in sig.outputs.items()}
            out[name] = sess.run(
                fetches, feed_dict={sig.inputs["images"].name: value}
            )
    return out


_TEMP_NAME = re.compile(r"\.export_(\d+)@(.*)\.[^.]+$")


def _temp_prefix():
    return f".export_{os.getpid()}@{socket.gethostname()}."


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_stale_exports(parent):
    """Removes the temporary folders of dead exports from `parent`.

    A temporary export folder is named `.export_<pid>@<host>.<random>`;
    one of this host whose process no longer runs was left by a killed
    export and is removed (folders of other hosts, which may share the
    file system, are kept).

    Returns:
        The removed folders' paths.
    """
    removed = []
    host = socket.gethostname()
    for name in sorted(os.listdir(parent)):
        match = _TEMP_NAME.match(name)
        path = os.path.join(parent, name)
        if (
            match
            and match.group(2) == host
            and not _pid_alive(int(match.group(1)))
            and os.path.isdir(path)
        ):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _check_replaceable(export_dir, overwrite):
    """Raises unless `overwrite` and `export_dir` is a SavedModel or an
    empty folder: `--overwrite` once replaced any folder (a training run,
    a dataset) or failed on a file with a traceback."""
    if not overwrite:
        raise _exists_error(export_dir)
    if os.path.isdir(export_dir):
        names = sorted(os.listdir(export_dir))
        if not names or {"saved_model.pb", "saved_model.pbtxt"} & set(names):
            return
        what = f"a folder holding {', '.join(names[:4])}"
        what += ", ..." if len(names) > 4 else ""
    else:
        what = "a file"
    raise PathExistsError(
        "export_dir",
        "{field}={path} is {what}, not a SavedModel: {overwrite} replaces "
        "only a SavedModel or an empty folder. Choose another {field}.",
        others=("overwrite",),
        path=export_dir,
        what=what,
    )


def _exists_error(export_dir):
    return PathExistsError(
        "export_dir",
        "{field}={path} exists; pass {overwrite} to replace it.",
        others=("overwrite",),
        path=export_dir,
    )


_RENAME_NOREPLACE = 1
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _rename_no_replace(src, dst):
    """Renames `src` to `dst`, failing if `dst` exists (even empty).

    Linux' renameat2(RENAME_NOREPLACE) where available, else a check and
    `os.rename` (which refuses a non-empty `dst`).

    Raises:
        PathExistsError (a FileExistsError): `dst` exists.
    """
    code = _renameat2(src, dst, _RENAME_NOREPLACE)
    if code == 0:
        return
    if code == errno.EEXIST:
        raise _exists_error(dst)
    if code not in (errno.EINVAL, errno.ENOSYS):  # unsupported: below
        raise OSError(code, os.strerror(code), dst)
    if os.path.lexists(dst):
        raise _exists_error(dst)
    try:
        os.rename(src, dst)
    except OSError as e:
        if e.errno in (errno.EEXIST, errno.ENOTEMPTY):
            raise _exists_error(dst) from e
        raise


def sample_images(size, count):
    """`count` encoded images (JPEG, PNG alternately) of sizes around
    `size`, for the verification of the bytes signature."""
    return [
        (_sample_jpeg if i % 2 == 0 else _sample_png)(
            size + (37 + 7 * i) % 45, size + (11 + 13 * i) % 50
        )
        for i in range(count)
    ]


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _top2_margin(logits):
    """Per row, the largest logit minus the second (inf with one class)."""
    logits = np.asarray(logits, np.float64)
    if logits.shape[-1] < 2:
        return np.full(logits.shape[:-1], np.inf)
    top2 = np.sort(logits, axis=-1)[..., -2:]
    return top2[..., 1] - top2[..., 0]


# A reduced-precision reload may move one image further than the mean
# allows (measured: 0.19 at a mean of 0.008), but not this much further.
IMAGE_RTOL_FACTOR = 10


def reload_failure(expected, got, atol, rtol):
    """Why the reloaded outputs `got` [N, K] differ too much from the
    model's `expected`, or None.

    rtol == 0 (float32): every |difference| <= `atol`. rtol > 0 (bfloat16,
    float16): the mean over the images of |got - expected| / |expected|
    (L2 norms per image) <= `rtol`, and no image's above
    `IMAGE_RTOL_FACTOR` * rtol. One number's share of the largest output
    is no measure there: a reloaded BN-folded bfloat16 graph fuses conv +
    bias + ReLU and rounds each image a little differently, and a run with
    large activations differed by 12 % of its largest logit on one image
    of 32 (19 % of that image's norm) at a mean of 0.8 %, all classes
    agreeing.
    """
    expected = np.asarray(expected, np.float64)
    got = np.asarray(got, np.float64)
    if not rtol:
        diff = _max_diff(expected, got)
        return None if diff <= atol else f"max |difference| {diff:.3g} > {atol}"
    norms = np.linalg.norm(expected.reshape(len(expected), -1), axis=-1)
    errors = np.linalg.norm((got - expected).reshape(len(got), -1), axis=-1)
    # An all-zero row (features of a dark image) against the batch's scale.
    floor = max(atol, 1e-3 * float(norms.max(initial=0.0)))
    relative = errors / np.maximum(norms, floor)
    if relative.max(initial=0.0) > IMAGE_RTOL_FACTOR * rtol:
        worst = int(np.argmax(relative))
        return (
            f"image {worst}: relative L2 {relative[worst]:.3g} > "
            f"{IMAGE_RTOL_FACTOR * rtol:.3g}"
        )
    if relative.mean() > rtol:
        return f"mean relative L2 {relative.mean():.3g} > {rtol}"
    return None


def _max_diff(a, b):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))))


def _sample_jpeg(height, width):
    image = (np.indices((height, width)).sum(0)[..., None] * [1, 2, 3]) % 256
    return tf.io.encode_jpeg(image.astype("uint8")).numpy()


def _sample_png(height, width):
    image = (np.indices((height, width))[0][..., None] * [3, 1, 2]) % 256
    return tf.io.encode_png(image.astype("uint8")).numpy()


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

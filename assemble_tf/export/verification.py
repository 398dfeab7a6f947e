"""The verification of a written SavedModel against the model it serves.

`export_saved_model` reloads its export twice, with `tf.saved_model.load`
and with the graph-and-session loader that `saved_model_cli run` and TF
Serving use, and compares every signature with the in-memory model
(`verify`, within `reload_failure`'s tolerances) before it is renamed into
place. A bfloat16 export is also compared, as the session loader runs it,
with the float32 model (`ReferenceCheck`, `check_reference`): mean relative
L2 of logits and features <= 0.15, top-1 agreement >= 0.8 on the 32
verification images (crops, and as many encoded images for
`serving_default`).
"""

import contextlib
import dataclasses

import numpy as np
import tensorflow as tf

from assemble_tf.data import preprocessing
from assemble_tf.export import precision
from assemble_tf.models import feature_model
from official.utils.misc.validation import OptionError


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


# The options of every save. `tf.saved_model.save` traces the signatures
# under them, and TensorFlow keys its traces by them: `verify` calls the
# module's signatures under the same options, reusing those traces instead
# of tracing the network and every signature again (about 2 s of a tiny
# Assemble-R50's 16-18 s export); the graph saved is the one compared.
SAVE_OPTIONS = tf.saved_model.SaveOptions()


def run_as_saved(functions, inputs):
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


def verification_inputs(preprocessing_type, images, image_bytes, reference):
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


def verify(path, module, images, image_bytes, atol, reference=None, rtol=0.0):
    """Compares every signature of the SavedModel at `path` with `module`,
    loaded by TF2 (`tf.saved_model.load`) and by the TF1 session loader of
    `saved_model_cli run` and TF Serving; returns the larger max
    |differences| (what each loader must meet: `reload_failure`, and the
    model's classes wherever its top-2 margin exceeds 2 atol + rtol max
    |output|; all of them with rtol 0). With a
    `ReferenceCheck`, also compares the session loader's outputs with its
    model (see `check_reference`)."""
    inputs = {
        "preprocessed": np.asarray(images, np.float32),
        "feature_vector": np.asarray(images, np.float32),
        "serving_default": np.asarray(image_bytes, object),
    }
    want = run_as_saved(module.signatures(), inputs)
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


def sample_images(size, count):
    """`count` encoded images (JPEG, PNG alternately) of sizes around
    `size`, for the verification of the bytes signature."""
    return [
        (_sample_jpeg if i % 2 == 0 else _sample_png)(
            size + (37 + 7 * i) % 45, size + (11 + 13 * i) % 50
        )
        for i in range(count)
    ]


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

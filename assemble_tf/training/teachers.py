"""The teachers of knowledge distillation: the network whose logits
`tools.extract_teacher_logits` stores in the records.

Knowledge distillation (Hinton et al. 2015,
https://arxiv.org/abs/1503.02531) as Assemble-ResNet trains it (Lee et al.
2020, clovaai/assembled-cnn, whose `kd/extract_embeddings.py` ran
AmoebaNet / EfficientNet offline on center crops). A teacher is

* a training run of ours (`teacher_weights=<model_dir>`, built from its
  config.json and restored from its latest checkpoint, or the prefix or
  weights file given);
* a preset with weights (`teacher_preset`, `teacher_weights`, and the
  `teacher_overrides` / `teacher_num_classes` it was trained with);
* a SavedModel (`teacher_saved_model`): its `preprocessed` signature, as
  `tools.export_saved_model` writes it, else a `serving_default` that takes
  float images and returns `logits` (or one output only).

Each is loaded as a `Teacher`: a call from float32 mean-subtracted crops
to float32 logits, its logits width, and its identity (what was read, with
a digest of the files), which `teacher_logits` records with the shards so
that a rerun with another teacher behind the same path is refused. The
options object is `teacher_logits.TeacherLogitsOptions` (read by
attribute here).
"""

import dataclasses
import hashlib
import os

import tensorflow as tf

from assemble_tf.data import sizes
from assemble_tf.runs.warm_start import run_config_path
from official.utils.misc.validation import OptionError, first_line

PREPROCESSED = "preprocessed"  # our export: float crops -> logits
SERVING_DEFAULT = "serving_default"
LOGITS = "logits"


def _abs(path):
    return path if "://" in path else os.path.abspath(path)


def saved_model_as_weights(path):
    """The error for a SavedModel passed as `teacher_weights`."""
    return OptionError(
        "teacher_weights",
        "{field}={path} is a SavedModel: pass it as "
        "{teacher_saved_model}={path}, without {teacher_preset}.",
        ["teacher_saved_model", "teacher_preset"],
        path=path,
    )


@dataclasses.dataclass(frozen=True)
class Teacher:
    """A loaded teacher.

    Attributes:
        call: float32 [N, S, S, 3] mean-subtracted crops -> float32 [N, K]
            logits.
        num_logits: K.
        source: what it is, for the summary (the preset and weights, or
            the SavedModel, its signature and output).
    """

    call: object
    num_logits: int
    source: dict


def crop_size(options):
    """The side of the teacher's eval crops (`teacher_preprocessing`).

    Raises:
        OptionError: naming `teacher_preprocessing` (before: the error named
            `preprocessing_type`, an option the binary has not).
    """
    return sizes.eval_sizes(
        options.teacher_preprocessing, field="teacher_preprocessing"
    )[2]


def load_teacher(options):
    """The `Teacher` of `options` (one call on a blank crop tells its
    logits width).

    Raises:
        OptionError: the teacher cannot be read or used (names the option).
    """
    size = crop_size(options)
    if options.teacher_saved_model:
        call, source = _saved_model_teacher(options, size)
    else:
        call, source = _preset_teacher(options)
    logits = call(tf.zeros([1, size, size, 3]))
    if logits.shape.rank != 2:
        field = "teacher_preset"
        if options.teacher_saved_model:
            field = "teacher_saved_model"
        raise OptionError(
            field,
            "{field}: the teacher returns {shape}, not [N, classes] logits.",
            shape=logits.shape.as_list(),
        )
    return Teacher(call, int(logits.shape[-1]), source)


# `build_model` and warm-start options as a teacher names them.
_TEACHER_NAMES = {
    "preset": "teacher_preset",
    "model_overrides": "teacher_overrides",
    "num_classes": "teacher_num_classes",
    "warm_start": "teacher_weights",
}


def _preset_teacher(options):
    """(call, source) of a preset restored from `teacher_weights`, or of
    the training run it names (built from its config.json)."""
    from assemble_tf.models import build_model
    from assemble_tf.runs import checkpoints
    from assemble_tf.runs.warm_start import warm_start_model

    path = options.teacher_weights
    if not tf.io.gfile.exists(path) and not checkpoints.checkpoint_exists(path):
        raise OptionError(
            "teacher_weights", "{field}={path} does not exist.", path=path
        )
    if tf.io.gfile.exists(os.path.join(path, "saved_model.pb")):
        raise saved_model_as_weights(path)
    if not options.teacher_preset:
        return _run_teacher(path)
    overrides = dict(options.teacher_overrides)
    overrides["num_classes"] = options.teacher_num_classes
    try:
        model = build_model(options.teacher_preset or "", **overrides)
    except OptionError as e:
        # Named as this job's options (before: `preset`, no such flag).
        raise e.renamed(_TEACHER_NAMES) from None
    try:
        warm_start_model(model, path, load_head=True)
    except (OSError, ValueError) as e:
        if isinstance(e, OptionError) and e.values.get("head_only"):
            # Before: the warm start's advice (leave its head out), cut
            # short inside this message.
            raise OptionError(
                "teacher_num_classes",
                "{field}={classes} does not fit the head of "
                "{teacher_weights}={path} ({shapes}): pass the class count "
                "the weights were trained with.",
                ["teacher_weights"],
                classes=options.teacher_num_classes,
                path=path,
                shapes=", ".join(e.values["some_mismatched"]),
            ) from None
        if isinstance(e, OptionError):
            e = e.renamed(_TEACHER_NAMES)
        reason = (
            getattr(e, "values", {}).get("detail") or first_line(e)
        ).rstrip(".:")
        raise OptionError(
            "teacher_weights",
            "{field}={path} cannot be loaded into {preset} with "
            "{teacher_num_classes}={classes} ({reason}): pass the preset, "
            "{teacher_overrides} and {teacher_num_classes} it was trained "
            "with.",
            ["teacher_num_classes", "teacher_overrides"],
            path=path,
            preset=options.teacher_preset,
            classes=options.teacher_num_classes,
            reason=reason,
        ) from None
    source = {"preset": options.teacher_preset, "weights": _abs(path)}
    return _logits_call(model), {
        **source,
        "overrides": overrides,
        **_weights_identity(path),
    }


def _run_teacher(path):
    """(call, source) of the training run `path` names: its model built
    from its config.json, restored from its latest checkpoint (or the
    prefix given)."""
    from assemble_tf import config as config_lib
    from assemble_tf.runs import checkpoints
    from assemble_tf.runs.models import build_run_model
    from assemble_tf.runs.warm_start import checkpoint_prefix

    config = config_lib.ExperimentConfig.from_json(run_config_path(path))
    model = build_run_model(config)
    if os.path.isfile(path) and path.endswith(checkpoints.KERAS_WEIGHTS):
        prefix = path  # a weights file of the run (a JAX checkpoint's)
        checkpoints.restore(model, weights=path)
    else:
        prefix = checkpoint_prefix(path.removesuffix(".index"))
        if not prefix:
            raise OptionError(
                "teacher_weights",
                "{field}={path} is a training run without a checkpoint yet.",
                path=path,
            )
        checkpoints.restore(model, prefix)
    # The run's folder, however it was named (its model_dir, checkpoints/
    # or a checkpoint prefix): the checkpoint and its digest tell which
    # weights (before: the same checkpoint named by its prefix was refused
    # as another teacher, "teacher.run '<run>' -> '<run>/.../ckpt-1'").
    run = os.path.dirname(run_config_path(path))
    source = {"run": _abs(run), "preset": config.model.preset}
    # The identity of what was restored (a later checkpoint of a run still
    # training is not it).
    return _logits_call(model), {**source, **_weights_identity(prefix)}


def _logits_call(model):
    """float32 logits of `model` in inference mode, traced once per
    shape."""
    return tf.function(
        lambda images: tf.cast(model(images, training=False), tf.float32),
        reduce_retracing=True,
        autograph=False,
    )


def _weights_identity(path):
    """{"checkpoint", "sha256"}: the file or checkpoint prefix the weights
    were read from (a run folder's latest) and a digest of its content,
    recorded with the shards: a rerun after the teacher behind the same
    path changed (retrained, replaced) is refused as another teacher
    (before: the path alone was compared, and one folder held logits of
    two teachers)."""
    from assemble_tf.runs import checkpoints
    from assemble_tf.runs.warm_start import checkpoint_prefix

    if tf.io.gfile.exists(path) and not tf.io.gfile.isdir(path):
        where, files = path, [path]
    else:
        where = checkpoint_prefix(path) or path
        index = where + ".index"
        files = [index if tf.io.gfile.exists(index) else where]
        if not tf.io.gfile.exists(files[0]):
            files = [where + checkpoints.KERAS_WEIGHTS]
    return {"checkpoint": _abs(where), "sha256": _digest(files)}


def _digest(paths):
    """sha256 of the files' contents, in order (a TensorFlow checkpoint's
    .index holds a checksum of every tensor)."""
    digest = hashlib.sha256()
    for path in paths:
        with tf.io.gfile.GFile(path, "rb") as f:
            while chunk := f.read(1 << 22):
                digest.update(chunk)
    return digest.hexdigest()


def _saved_model_teacher(options, size):
    """(call, source) of the SavedModel's usable signature."""
    path = options.teacher_saved_model
    if not tf.io.gfile.isdir(path):
        raise OptionError(
            "teacher_saved_model",
            "{field}={path} is not a SavedModel folder.",
            path=path,
        )
    try:
        loaded = tf.saved_model.load(path)
    except (OSError, ValueError, tf.errors.OpError) as e:
        raise OptionError(
            "teacher_saved_model",
            "{field}={path} is not a readable SavedModel: {reason}",
            path=path,
            reason=first_line(e),
        ) from None
    name, input_name, spec, output = pick_signature(loaded.signatures, path)
    _check_crop(spec, size, options, name)

    def call(images):  # the closure keeps `loaded` (its variables) alive
        inputs = {input_name: tf.cast(images, spec.dtype)}
        return tf.cast(loaded.signatures[name](**inputs)[output], tf.float32)

    source = {"saved_model": _abs(path), "signature": name, "output": output}
    index = os.path.join(path, "variables", "variables.index")
    files = [os.path.join(path, "saved_model.pb")]
    files += [index] if tf.io.gfile.exists(index) else []
    return call, {**source, "sha256": _digest(files)}


def pick_signature(signatures, path=""):
    """The signature a teacher is called through, by name.

    `preprocessed` (our export) when it takes float images and returns
    `logits`; else `serving_default` when its single input takes float
    images [N, S, S, 3] and it returns `logits` (or one output only).

    Args:
        signatures: a loaded SavedModel's `signatures`.
        path: the SavedModel, for the message.

    Returns:
        (signature name, input name, input `tf.TensorSpec`, output name).

    Raises:
        OptionError: no signature fits (names `teacher_saved_model`, the
            signatures found and what is needed).
    """
    for name, only_logits in ((PREPROCESSED, True), (SERVING_DEFAULT, False)):
        if name in signatures:
            found = _usable(signatures[name], only_logits)
            if found:
                return (name, *found)
    found = "; ".join(_describe(n, f) for n, f in sorted(signatures.items()))
    raise OptionError(
        "teacher_saved_model",
        "{field}={path} has no signature a teacher can be called through "
        "(found: {found}). Needed: `preprocessed` (float32 [N, S, S, 3] "
        "mean-subtracted crops -> `logits`, as tools.export_saved_model "
        "writes it), or a `serving_default` whose single input takes such "
        "float images and whose output is `logits` (or its only one).",
        path=path,
        found=found or "none",
    )


def _usable(fn, only_logits):
    """(input name, input spec, output name) of a signature that takes one
    float image batch and returns logits, else None."""
    args, kwargs = fn.structured_input_signature
    outputs = fn.structured_outputs
    if args or len(kwargs) != 1 or not isinstance(outputs, dict):
        return None
    ((input_name, spec),) = kwargs.items()
    shape = spec.shape
    images = shape.rank == 4 and shape[-1] in (3, None)
    if not spec.dtype.is_floating or not images:
        return None
    if LOGITS in outputs:
        return input_name, spec, LOGITS
    if not only_logits and len(outputs) == 1:
        return input_name, spec, next(iter(outputs))
    return None


def _describe(name, fn):
    """'name(input: dtype [shape] -> output, ...)' of a signature."""
    _, kwargs = fn.structured_input_signature
    inputs = ", ".join(
        f"{k}: {s.dtype.name} {s.shape.as_list() if s.shape.rank else '?'}"
        for k, s in sorted(kwargs.items())
    )
    outputs = ", ".join(sorted(getattr(fn, "structured_outputs", {}) or {}))
    return f"{name}({inputs} -> {outputs})"


def _check_crop(spec, size, options, name):
    """Refuses a preprocessing whose crops the signature cannot take."""
    side = [d for d in spec.shape.as_list()[1:3] if d is not None]
    if side and side != [size] * len(side):
        raise OptionError(
            "teacher_preprocessing",
            "{field}={value} makes {size}-px crops, but the {name} signature "
            "of {path} takes {side}-px images: pass the teacher's own eval "
            "preprocessing (e.g. {field}=imagenet_{side}).",
            value=options.teacher_preprocessing,
            size=size,
            name=name,
            path=options.teacher_saved_model,
            side=side[0],
        )

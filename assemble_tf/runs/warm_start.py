"""Warm start and BN re-estimation for fine-tuning.

Lee et al. 2020 (https://arxiv.org/abs/2001.06268), transfer learning: the
authors' Food-101 scripts (clovaai/assembled-cnn) start from ImageNet
weights with the classifier re-initialised and, restoring trainable
variables only, BN statistics reset; the statistics can
then be re-estimated on the new data.
"""

import os
import warnings
import zipfile

import keras
import numpy as np
import tensorflow as tf

from assemble_tf import config as config_lib
from assemble_tf.layers import batch_norm_layers, set_dropblock_keep_prob
from assemble_tf.runs import checkpoints
from assemble_tf.runs.models import (
    REINIT_LAYERS,
    build_run_model,
    is_head_variable,
)
from official.utils.misc.validation import MissingPathError, OptionError


def _missing(path):
    return MissingPathError(
        "warm_start", "{field}={path} does not exist.", path=path
    )


def _layer_of(path):
    return path.split("/")[0]


def _unreadable(path, error):
    """The one-line error of a warm start whose files at `path` do not
    read: as tools.evaluate's and a resume's, naming `warm_start` (before:
    IndexError "Read less bytes than requested" from a cut-off .data
    file, or TensorFlow's "not an sstable" from a cut-off .index)."""
    return checkpoints.unreadable_error(
        path,
        error,
        "Restore them from a copy, or warm start from another checkpoint, "
        "SavedModel or weights file ({field}=PATH).",
        "warm_start",
    )


def _read_model_variables(prefix):
    """`checkpoints.read_model_variables`, with `_unreadable`'s error."""
    try:
        return checkpoints.read_model_variables(prefix)
    except (IndexError, OSError, checkpoints.tf_errors()) as e:
        raise _unreadable(prefix, e) from None


def _source_weights(path):
    """{variable path: numpy value} of a SavedModel or a run checkpoint
    whose model differs from ours (another class count or head), or None
    when the checkpoint can be restored directly."""
    if os.path.isfile(os.path.join(path, "saved_model.pb")):
        # Read by variable path, without loading the graph or building its
        # model: the export's head may differ from ours (another class
        # count, a new embedding head or GeM pooling), and the values are
        # numpy arrays, which a model of any backend takes (before: refused
        # under JAX).
        weights = None
        if tf.io.gfile.exists(os.path.join(path, "variables")):
            weights = _read_model_variables(
                os.path.join(path, "variables", "variables")
            )
        if not weights:
            raise OptionError(
                "warm_start",
                "{field}={path} is not a SavedModel of "
                "tools.export_saved_model (no model variables).",
                path=path,
            )
        return weights
    cfg = run_config_path(path)
    prefix = checkpoint_prefix(path) if cfg else None
    if not prefix:
        return None
    if not checkpoints.is_keras_checkpoint(prefix):
        # A TensorFlow checkpoint is read by variable path, as a SavedModel
        # is; its model need not be built (before: built, then restored).
        weights = _read_model_variables(prefix)
        if weights is not None:
            return weights
    source = build_run_model(config_lib.ExperimentConfig.from_json(cfg))
    checkpoints.restore(source, prefix, unreadable=_unreadable)
    return {v.path: v.numpy() for v in source.variables}


def run_config_path(path):
    """The config.json of the training run `path` is in (its model_dir,
    checkpoints/ folder or a checkpoint prefix there), or None."""
    if not path or "://" in path:
        return None
    path = path.rstrip("/") or "/"
    folder = path if os.path.isdir(path) else os.path.dirname(path)
    for candidate in (folder, os.path.dirname(folder)):
        config = os.path.join(candidate, "config.json")
        if os.path.isfile(config):
            return config
    return None


def head_names_note(path, names):
    """Where the run `path` is in names its logits otherwise than `names`
    (the new data's), a note saying so: a warm-started head keeps the
    run's logit order, so its logit i starts as the run's class i, whatever
    the data now call class i (before: loaded without a word). None where
    they agree, or where either side names no classes."""
    from assemble_tf.runs import class_names

    config = run_config_path(path)
    if config is None or not names:
        return None
    file = os.path.join(os.path.dirname(config), class_names.FILE)
    if not os.path.isfile(file):
        return None
    try:
        before = class_names.read(file)
    except ValueError:
        return None
    if before == names:
        return None
    return (
        f"the head comes from a run whose {file} names the logits otherwise "
        f"than the data ({class_names.difference(before, names)}): each "
        "logit starts as the run's class of that index."
    )


def _load_all_but_the_head(model, path):
    """`load_weights` that may skip the head only: Keras' skip_mismatch
    skips any layer whose shapes differ, and a file of another
    architecture (another width or depth) loaded nothing, silently.

    Every other variable is set to NaN first, so one the file did not fill
    is found afterwards.

    Raises:
        OptionError: (field `warm_start`) variables outside the head were
            not loaded.
    """
    body = [
        v
        for v in model.variables
        if not is_rng_state(v)
        and not is_head_variable(v)  # a new embedding head has no source
        and "float" in str(v.dtype)
    ]
    for v in body:
        v.assign(keras.ops.full(v.shape, float("nan"), v.dtype))
    with warnings.catch_warnings():
        # Without the head its shape may differ (e.g. 1001 -> 102): Keras
        # warns about the skipped layer, which is intended here. Keras
        # 3.15 retries a functional model's `_operations_by_depth`
        # container with skip_mismatch, meets the skipped head again and
        # warns that "affected layers" keep their initial weights: only
        # the head does (the NaN check below proves it).
        warnings.filterwarnings("ignore", message=".*could not be loaded.*")
        warnings.filterwarnings("ignore", message="Skipping nested container.*")
        model.load_weights(path, skip_mismatch=True)
    left = [
        v.path for v in body if np.isnan(keras.ops.convert_to_numpy(v)).any()
    ]
    if left:
        raise OptionError(
            "warm_start",
            "{field}={path} does not fit the model: {left} of its {total} "
            "variables outside the head were not loaded (e.g. {some}), so "
            "it holds another architecture (or NaN values). Use the preset "
            "(and overrides) the weights were trained with.",
            path=path,
            left=len(left),
            total=len(body),
            some=left[:3],
        )


def checkpoint_prefix(path):
    """The checkpoint a warm-start path names: a prefix, the latest in a
    run's model_dir or checkpoints/ dir (TensorFlow or Keras format), or
    the best in its best/ dir."""
    if not os.path.isdir(path):
        return path if checkpoints.checkpoint_exists(path) else None
    if os.path.isfile(os.path.join(path, "best.json")):
        # A run's best/ folder: its best checkpoint, as tools.evaluate
        # --checkpoint=best (before: "no checkpoint found").
        run = os.path.dirname(os.path.normpath(path))
        entries = checkpoints.BestKeeper(run, 0).entries
        return entries[0]["prefix"] if entries else None
    for folder in (path, os.path.join(path, "checkpoints")):
        found = checkpoints.latest_in(folder)
        if found:
            return found
    return None


def is_rng_state(variable):
    """True for the state of a `keras.random.SeedGenerator` (DropBlock's
    noise): not a weight, and named by a process-wide counter
    (`seed_generator_<n>`) that differs between two builds of one model."""
    return variable.path.rsplit("/", 1)[-1] == "seed_generator_state"


def _assign_by_path(model, weights, load_head, origin):
    """Copies `weights` ({path: value}) into `model`; returns the count.
    Random generator states are neither copied nor required."""
    missing, mismatched, count, unfit = [], [], 0, []
    for v in model.variables:
        if is_rng_state(v):
            continue
        head = _layer_of(v.path) in REINIT_LAYERS
        if not load_head and head:
            continue
        value = weights.get(v.path)
        if value is None:
            missing.append(v.path)
        elif tuple(value.shape) != tuple(v.shape):
            mismatched.append(f"{v.path} {value.shape} vs {tuple(v.shape)}")
        else:
            v.assign(value)
            count += 1
            continue
        unfit.append(head)
    if missing or mismatched:
        raise _does_not_fit(
            origin, missing, mismatched, weights, head_only=all(unfit)
        )
    return count


def _does_not_fit(origin, missing, mismatched, weights, head_only=False):
    folded = os.path.isfile(os.path.join(origin, "saved_model.pb")) and not [
        path for path in weights if path.endswith("/moving_mean")
    ]
    if folded:
        fix = (
            "A SavedModel exported with fold_bn has no BatchNorms (they are "
            "folded into the convolutions): warm start from an export made "
            "without fold_bn, or from the training run."
        )
    elif head_only:
        # Before: "use the preset ..." where only the head (another class
        # count, another head) differed.
        fix = (
            "Only the head differs (another class count or head): leave out "
            "{warm_start_head} to start the head afresh."
        )
    else:
        fix = "Use the preset (and overrides) the weights were trained with."
    # The kinds there are (before: "0 of another shape (e.g. [])").
    found = [
        text
        for count, text in (
            (missing, "{missing} variables missing (e.g. {some_missing})"),
            (
                mismatched,
                "{mismatched} of another shape (e.g. {some_mismatched})",
            ),
        )
        if count
    ]
    return OptionError(
        "warm_start",
        "{field}={path} does not fit the model: "
        + ", ".join(found)
        + ". "
        + fix,
        ["warm_start_head"],
        path=origin,
        missing=len(missing),
        some_missing=missing[:3],
        mismatched=len(mismatched),
        some_mismatched=mismatched[:3],
        head_only=head_only,
    )


def warm_start_model(model, path, load_head=False, keep_bn_stats=True):
    """Loads pretrained weights for fine-tuning.

    Args:
        model: the freshly built model.
        path: a `.weights.h5` file (e.g. from the checkpoint importer) or
            a whole-model `.keras` file (its weights are read), a
            run's model_dir / checkpoints dir / checkpoint prefix (its
            config.json may have another class count), or a SavedModel
            exported by `tools.export_saved_model`.
        load_head: also take the classifier; False re-initialises it (its
            shape may differ: 1001 ImageNet classes vs the new task).
        keep_bn_stats: keep BN moving statistics; False resets them to
            0 / 1 (the original warm start restored trainable variables
            only).

    Without `load_head` the source's head may differ from the model's
    (another class count, no embedding head). BN-folded SavedModels cannot
    be used.
    """
    if path.endswith((".weights.h5", ".keras")):  # Keras reads both
        if not os.path.isfile(path):
            raise _missing(path)
        try:
            if load_head:
                checkpoints.load_weights_file(model, path, "warm_start")
            else:
                _load_all_but_the_head(model, path)
        except (OSError, zipfile.BadZipFile) as e:  # h5py's, a .keras zip's
            raise _unreadable(path, e) from None
    elif not tf.io.gfile.exists(path) and not checkpoints.checkpoint_exists(
        path
    ):
        raise _missing(path)
    else:
        weights = _source_weights(path)
        if weights is not None:
            _assign_by_path(model, weights, load_head, path)
        else:
            prefix = checkpoint_prefix(path)
            if not prefix:
                raise MissingPathError(
                    "warm_start",
                    "{field}={path}: no checkpoint found (pass a run's "
                    "model_dir or checkpoints/ dir, a prefix, a SavedModel, "
                    "a .weights.h5 or a .keras file).",
                    path=path,
                )
            checkpoints.restore(model, prefix, unreadable=_unreadable)
    if not load_head:
        _reinitialise_head(model)
    if not keep_bn_stats:
        for layer in batch_norm_layers(model):
            layer.moving_mean.assign(tf.zeros_like(layer.moving_mean))
            layer.moving_variance.assign(tf.ones_like(layer.moving_variance))


# The variables of the `REINIT_LAYERS` kinds (Dense, CosineClassifier,
# BatchNormalization) and their initializers' attributes.
_INITIALIZERS = (
    ("kernel", "kernel_initializer"),
    ("bias", "bias_initializer"),
    ("gamma", "gamma_initializer"),
    ("beta", "beta_initializer"),
    ("moving_mean", "moving_mean_initializer"),
    ("moving_variance", "moving_variance_initializer"),
)


def _reinitialise_head(model):
    """Gives the `REINIT_LAYERS` of `model` their initial values (before:
    the embedding head's BN kept the source's statistics and scale, which
    described the source's projection, not the new one)."""
    for name in REINIT_LAYERS:
        try:
            layer = model.get_layer(name)
        except ValueError:
            continue
        for variable, initializer in _INITIALIZERS:
            var = getattr(layer, variable, None)
            if var is not None:
                init = getattr(layer, initializer)
                var.assign(init(var.shape, var.dtype))


def reestimate_bn_statistics(model, batches, steps, dtype="float32"):
    """Sets BN moving statistics to the mean over `steps` batches.

    Fine-tuning from weights whose statistics were reset (the original
    restored trainable variables only) or that come from another domain:
    each BN layer's moving mean (variance) becomes exactly the mean of its
    `steps` batch means (variances), as a training call with momentum
    k / (k + 1) for batch k would leave it. DropBlock is switched off (keep
    probability 1) meanwhile. The statistics of each batch come from one
    compiled training-mode forward pass (`model.stateless_call`; under JAX
    op by op would compile each op of each shape once: 26 s for a tiny
    Assemble-R50 on CPU), and nothing changes unless all `steps` batches
    came.

    Args:
        model: the model (its BN layers are updated in place).
        batches: an iterable of normalized image batches.
        steps: number of batches to use.
        dtype: compute dtype the images are cast to.

    Returns:
        The number of BN layers updated.

    Raises:
        OptionError: (field `bn_reestimate_steps`) `batches` ran out first.
    """
    layers = batch_norm_layers(model)
    # Frozen ones too (`freeze_backbone`): a BatchNorm that is not
    # trainable computes no batch statistics, so those of a frozen
    # backbone stayed at their reset 0 / 1. Trainable meanwhile.
    frozen = [layer for layer in layers if not layer.trainable]
    for layer in frozen:
        layer.trainable = True
    try:
        return _reestimate(model, layers, batches, steps, dtype)
    finally:
        for layer in frozen:
            layer.trainable = False


def _reestimate(model, layers, batches, steps, dtype):
    stats = [
        v
        for layer in layers
        for v in (layer.moving_mean, layer.moving_variance)
    ]
    momentum = [layer.momentum for layer in layers]
    set_dropblock_keep_prob(model, 1.0)
    sums, done = None, 0
    try:
        for layer in layers:  # a training call sets them to the batch's
            layer.momentum = 0.0
        batch_statistics = _batch_statistics_fn(model, stats)
        for k, images in enumerate(batches):
            if k >= steps:
                break
            # Host arrays: the batches are tf.data's, the model any backend's.
            x = keras.ops.cast(np.asarray(images), dtype)
            values = [np.asarray(v, np.float64) for v in batch_statistics(x)]
            sums = (
                values
                if sums is None
                else [a + b for a, b in zip(sums, values, strict=True)]
            )
            done += 1
    finally:
        for layer, m in zip(layers, momentum, strict=True):
            layer.momentum = m
    if done < steps:
        raise OptionError(
            "bn_reestimate_steps",
            "{field}={steps}: the data gave only {done} batches.",
            steps=steps,
            done=done,
        )
    if done:  # (steps 0: nothing to average)
        for variable, total in zip(stats, sums, strict=True):
            variable.assign((total / done).astype(variable.dtype))
    return len(layers)


def _batch_statistics_fn(model, stats):
    """images -> the values `stats` (BN moving statistics of `model`, their
    momentum 0) take after one training-mode call on `images`: one jitted
    (JAX) or traced (TensorFlow) `stateless_call`."""
    position = {id(v): i for i, v in enumerate(model.non_trainable_variables)}
    where = [position[id(v)] for v in stats]
    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]

    def batch_statistics(images):
        _, state = model.stateless_call(
            trainable, non_trainable, images, training=True
        )
        return [state[i] for i in where]

    if keras.backend.backend() == "jax":
        import jax

        return jax.jit(batch_statistics)
    if keras.backend.backend() == "tensorflow":
        return tf.function(batch_statistics, autograph=False)
    return batch_statistics

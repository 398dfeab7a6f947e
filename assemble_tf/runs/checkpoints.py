"""A run folder's checkpoints, best-N keeper and history.

`<model_dir>/checkpoints` holds the latest N checkpoints in one of two
formats, and every reader here takes both:

* TensorFlow runs: a `tf.train.CheckpointManager` (`ckpt-N.index` /
  `.data-*`);
* runs trained under another Keras backend (JAX): `ckpt-N.weights.h5`
  (the model, Keras' own backend-neutral format, loadable by any Keras
  model of the preset) plus `ckpt-N.state.npz` (every model and optimizer
  variable and the epoch, for an exact resume), written by
  `KerasCheckpointManager`.


`<model_dir>/checkpoints/preempted` holds at most one checkpoint written
within an epoch, on SIGTERM (a preempted machine), with `progress.json`
saying where in the epoch it stopped; the next epoch checkpoint replaces
it. Only a resume reads it: the tools read the epoch checkpoints.

`<model_dir>/best` (the N best by validation top-1, `best.json` naming them
inside the folder so that a moved run stays whole) and `history.json` (one
record per epoch), written atomically.
"""

import glob
import os
import re
import shutil

import numpy as np

from official.utils.misc import file_utils
from official.utils.misc.validation import MissingPathError


def _tf():
    """TensorFlow, imported when a TensorFlow-format checkpoint is touched
    (a JAX-only machine writes and reads Keras-format ones without it)."""
    import tensorflow as tf

    return tf


def find_checkpoint(model_dir, which="latest"):
    """A run's checkpoint prefix: "latest", "best" or an explicit prefix."""
    if which == "latest":
        ckpt_dir = os.path.join(model_dir, "checkpoints")
        found = latest_in(ckpt_dir)
    elif which == "best":
        entries = BestKeeper(model_dir, 0).entries
        found = entries[0]["prefix"] if entries else None
    else:
        # A prefix as given, or named inside the run (before: "ckpt-1" was
        # looked for in the current folder only).
        candidates = (
            which,
            os.path.join(model_dir, which),
            os.path.join(model_dir, "checkpoints", which),
        )
        found = next((c for c in candidates if checkpoint_exists(c)), None)
        if not found:
            available = _available_checkpoints(model_dir)
            raise MissingPathError(
                "checkpoint",
                "{field}={which}: no such checkpoint, in {model_dir} or its "
                "checkpoints/ folder; the run has {available}.",
                which=which,
                model_dir=model_dir,
                available=", ".join(available[:8])
                + (", ..." if len(available) > 8 else "")
                if available
                else "none",
            )
    if not found:
        preempted = which == "latest" and os.path.isdir(
            preempted_dir(os.path.join(model_dir, "checkpoints"))
        )
        raise MissingPathError(
            "checkpoint",
            "No checkpoint '{which}' under {model_dir}; "
            + (
                "the run was stopped before its first epoch checkpoint (only "
                "checkpoints/preempted, which resumes training): rerun its "
                "training to finish an epoch, or pass "
                if preempted
                else "train first or pass "
            )
            + "{field}=PREFIX / {weights}=FILE.",
            ["weights"],
            which=which,
            model_dir=model_dir,
        )
    return found


def _available_checkpoints(model_dir):
    """The checkpoint prefixes of a run's checkpoints/ and best/ folders,
    relative to it (TensorFlow's `.index`, Keras-format `.state.npz`
    files), sorted; any file system TensorFlow reads."""
    root = glob.escape(model_dir)
    found = set()
    for pattern in ("checkpoints/*", "best/*", "best/*/*"):
        for suffix in (".index", KERAS_STATE):
            for path in _tf().io.gfile.glob(
                os.path.join(root, pattern + suffix)
            ):
                prefix = path[: -len(suffix)]
                found.add(prefix[len(model_dir) :].lstrip("/"))
    return sorted(found)


def restore(model, checkpoint=None, weights=None, unreadable=None):
    """Loads `weights` (.weights.h5) or the checkpoint prefix into `model`.

    `unreadable(path, error)`: the error to raise where the files do not
    read (default: `unreadable_error`, its fix naming --checkpoint), for a
    caller whose option named them otherwise (a warm start).

    Raises:
        ValueError: the files are damaged or incomplete (named, with what
            to do), or do not fit `model`.
    """
    if not (weights or checkpoint):
        raise ValueError("restore() needs a checkpoint or weights.")
    try:
        if weights:
            load_weights_file(model, weights)
        elif is_keras_checkpoint(checkpoint):
            load_weights_file(model, checkpoint + KERAS_WEIGHTS, "checkpoint")
        elif _keras_backend() != "tensorflow":
            restore_tensorflow_checkpoint(model, checkpoint)
        else:
            _restore_objects(model, checkpoint)
    except FileNotFoundError:
        raise
    except (IndexError, OSError, tf_errors()) as e:
        if unreadable is not None:
            raise unreadable(weights or checkpoint, e) from None
        raise unreadable_error(
            weights or checkpoint,
            e,
            "Restore them from a copy, or choose another checkpoint "
            "(--checkpoint=PREFIX) or weights file.",
        ) from None
    return model


def _restore_objects(model, checkpoint):
    """`tf.train.Checkpoint(model=model).restore`, after a check that the
    checkpoint's variables have the model's shapes: a model built with
    other options is named in one line (before: TensorFlow's message
    naming neither the checkpoint nor the fix, and at exit a warning per
    value the failed restore left, 56 for a tiny run)."""
    from assemble_tf.runs.warm_start import is_rng_state
    from official.utils.misc.validation import first_line

    tf = _tf()
    # Random-generator states are not weights (older checkpoints lack
    # them). Variables the checkpoint lacks are refused too: a layer the
    # run did not have (e.g. --model_overrides='{"embedding_size": 512}')
    # shifted the restore's matching by layer order, which failed half-way
    # (and left 210 warnings at exit) or would leave a layer initialized.
    differences = model_differences(model, checkpoint, is_rng_state)
    missing, mismatched = differences or ([], [])
    if missing or mismatched:
        listed = (missing + mismatched)[:2]
        raise _another_model(
            checkpoint,
            f"{len(missing)} variables missing, {len(mismatched)} of another "
            f"shape, e.g. {', '.join(listed)}",
        )
    try:
        tf.train.Checkpoint(model=model).restore(checkpoint).expect_partial()
    except ValueError as e:
        raise _another_model(checkpoint, first_line(e, 200)) from None


def model_differences(model, checkpoint, skip=None):
    """(missing, mismatched): the paths of `model`'s variables an
    object-based checkpoint (a run's, or a SavedModel's variables) lacks,
    and 'head_dense/bias (3,) vs (5,)' for those it holds in another
    shape; None for another kind of checkpoint. `skip(variable)` leaves
    variables out. Checked before a restore, which would fail half-way
    and leave TensorFlow a warning per unrestored value at exit."""
    reader = _tf().train.load_checkpoint(checkpoint)
    keys = _model_keys(reader)
    if keys is None:
        return None
    return _differences(model, reader, keys, skip)


def _differences(model, reader, keys, skip=None):
    """`model_differences` of an open checkpoint `reader` and its
    `_model_keys`."""
    shapes = reader.get_variable_to_shape_map()
    missing, mismatched = [], []
    for v in model.variables:
        if skip is not None and skip(v):
            continue
        key = keys.get(v.path)
        if key is None:
            missing.append(v.path)
        elif tuple(shapes[key]) != tuple(v.shape):
            mismatched.append(_shape_difference(v, shapes[key]))
    return missing, mismatched


def _shape_difference(variable, stored_shape):
    """'head_dense/bias (3,) vs (5,)': the checkpoint's shape, then the
    model's."""
    return f"{variable.path} {tuple(stored_shape)} vs {tuple(variable.shape)}"


def _another_model(checkpoint, reason):
    return ValueError(
        f"{checkpoint} holds another model than the one built ({reason}): "
        "build it with the preset and model options it was trained with."
    )


def _model_keys(reader):
    """{variable path: checkpoint key} of the model variables of a
    TensorFlow 2 object-based checkpoint (the object graph keeps each
    variable's path as its full name), or None for another checkpoint.

    The model's variables are the nodes reachable from the root's `model`
    child (a training run's checkpoint, and a SavedModel exported before
    2026-12-08), else from its `serving_variables` (a SavedModel of
    `export.saved_model.ServingModule`). Their keys need not start with
    "model/": a variable is saved once, under the first path to it, and a
    training run's trainable variables are reached through
    `optimizer/_trainable_variables/N` first (warm starts under JAX from
    runs of tools.train found 189 of them missing)."""
    from tensorflow.core.protobuf import trackable_object_graph_pb2

    if not reader.has_tensor(OBJECT_GRAPH):
        return None
    graph = trackable_object_graph_pb2.TrackableObjectGraph()
    graph.ParseFromString(reader.get_tensor(OBJECT_GRAPH))
    children = {c.local_name: c.node_id for c in graph.nodes[0].children}
    todo = [
        children[name]
        for name in ("model", "serving_variables")
        if name in children
    ][:1]
    seen = set()
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo.extend(c.node_id for c in graph.nodes[node].children)
    return {
        a.full_name: a.checkpoint_key
        for node in sorted(seen)
        for a in graph.nodes[node].attributes
    }


def read_model_variables(prefix):
    """{variable path: numpy value} of the model variables of a TensorFlow
    2 object-based checkpoint (a run's, or a SavedModel's `variables/
    variables`), without building the model; None for another
    checkpoint."""
    reader = _tf().train.load_checkpoint(prefix)
    keys = _model_keys(reader)
    if keys is None:
        return None
    return {path: reader.get_tensor(key) for path, key in keys.items()}


def load_weights_file(model, path, field="weights"):
    """`model.load_weights(path)` with one line where the file does not
    fit: Keras' error prints the variable's values (20 lines of numbers)
    and warns about each container it skips.

    Raises:
        MissingPathError: (`field`) no such file.
        OptionError: (`field`) the file holds another architecture or
            class count; names the first variable that differs.
    """
    import warnings

    from official.utils.misc.validation import OptionError

    if "://" not in path and not os.path.isfile(path):
        # Before: h5py's "[Errno 2] Unable to synchronously open file ...".
        raise MissingPathError(
            field, "{field}={path}: no such file.", path=path
        )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Skipping nested container")
        try:
            model.load_weights(path)
        except ValueError as e:
            if str(e).startswith("File format not supported"):
                # Before: Keras' message, naming no option.
                raise OptionError(
                    field,
                    "{field}={path} is no weights file by its name: Keras "
                    "reads .weights.h5, .keras and legacy .h5 files.",
                    path=path,
                ) from None
            detail, classes = _mismatch(str(e))
            if detail is None:  # not a misfit
                raise
            raise OptionError(
                field,
                "{field}={path} does not fit the model ({detail}): "
                + (
                    "the file's head has {classes} classes: set "
                    "{num_classes}={classes}, or use"
                    if classes
                    else "use"
                )
                + " the preset, model overrides and class count the weights "
                "were saved with.",
                ["num_classes"],
                path=path,
                detail=detail,
                classes=classes,
            ) from None


def _mismatch(text):
    """(the first differing variable of Keras' load error, in a phrase;
    the file's class count where that variable is the classifier's
    (`head_dense`) of another width, else None); (None, None) for another
    error."""
    count = re.search(r"A total of (\d+) objects could not be loaded", text)
    shapes = re.search(
        r"variable\.shape=(\(.*?\)), Received: value\.shape=(\(.*?\))", text
    )
    name = re.search(r"Target variable: <Variable path=([^,]+)", text)
    if shapes and name:
        detail = (
            f"{name.group(1)} has shape {shapes.group(1)} in the model and "
            f"{shapes.group(2)} in the file"
        )
        if count and count.group(1) != "1":
            detail += f"; {count.group(1)} layers differ"
        model, file = (
            [int(d) for d in re.findall(r"\d+", shape)]
            for shape in shapes.groups()
        )
        head = re.search(r"head_dense/(kernel|bias)$", name.group(1))
        classes = None
        if head and model[:-1] == file[:-1] and model[-1:] != file[-1:]:
            classes = file[-1]
        return detail, classes
    if count or "could not be loaded" in text:
        first = text.strip().splitlines()[0]
        return first[:300], None
    return None, None


def unreadable_error(path, error, fix, field=None):
    """The one-line error of checkpoint or weights files at `path` that do
    not read (`error`, its first line kept), ending with `fix`: a
    `ValueError`, or with `field` (the option that named the files) an
    `OptionError` whose `fix` is a template that may name it (`{field}`).

    Files no longer there after the failed read were deleted while they
    were read: by the training run that wrote them, which keeps only its
    last checkpoints (before: called damaged, "restore them from a copy",
    when tools.evaluate read a checkpoint the run then pruned)."""
    from official.utils.misc.validation import OptionError, first_line

    others = ["keep_checkpoints", "keep_best"]
    if _gone(path):
        template = (
            "{path} was deleted while it was being read ({kind}: {reason}): "
            "a training run keeps only its last {keep_checkpoints} "
            "checkpoints (and {keep_best} best), deleting older ones as it "
            "saves. Rerun to read one it holds now."
        )
    else:
        template = (
            "{path} cannot be read ({kind}: {reason}): its files are damaged "
            "or incomplete. " + (fix if field else "{fix}")
        )
    values = {
        "path": path,
        "kind": type(error).__name__,
        "reason": first_line(error, 200),
    }
    if field is not None:
        return OptionError(field, template, others, **values)
    flags = {name: f"--{name}" for name in others}
    return ValueError(template.format(fix=fix, **flags, **values))


def _gone(path):
    """True where neither a checkpoint nor a file is at `path`."""
    try:
        return not checkpoint_exists(path) and not _tf().io.gfile.exists(path)
    except ImportError:  # no TensorFlow: local Keras-format files
        return not is_keras_checkpoint(path) and not os.path.exists(path)


def tf_errors():
    """TensorFlow's OpError, where TensorFlow is installed."""
    try:
        return _tf().errors.OpError
    except ImportError:
        return OSError


def _keras_backend():
    import keras

    return keras.backend.backend()


# The variable every TensorFlow 2 object-based checkpoint holds: the graph
# of saved objects, with each variable's name.
OBJECT_GRAPH = "_CHECKPOINTABLE_OBJECT_GRAPH"


def restore_tensorflow_checkpoint(model, prefix):
    """Loads the model variables of a TensorFlow run's checkpoint into
    `model` under any Keras backend: each variable by its path, which the
    checkpoint keeps as the variable's full name (before: refused under
    JAX, and no tool wrote the .weights.h5 the refusal asked for).
    Random-generator states are not weights and are left as they are.

    Raises:
        ValueError: not an object-based checkpoint, or one of another
            model (the missing and mismatched variables named).
    """
    from assemble_tf.runs.warm_start import is_rng_state

    reader = _tf().train.load_checkpoint(prefix)
    keys = _model_keys(reader)
    if keys is None:
        raise ValueError(
            f"{prefix} is not a TensorFlow 2 checkpoint of a training run "
            "(no object graph)."
        )
    missing, mismatched = _differences(model, reader, keys, is_rng_state)
    if missing or mismatched:
        listed = (missing + mismatched)[:5]
        raise _another_model(
            prefix,
            f"{len(missing)} variables missing, {len(mismatched)} of another "
            f"shape, e.g. {', '.join(listed)}",
        )
    for variable in model.variables:
        if not is_rng_state(variable):
            variable.assign(reader.get_tensor(keys[variable.path]))


KERAS_WEIGHTS = ".weights.h5"
KERAS_STATE = ".state.npz"


def is_keras_checkpoint(prefix):
    """True when `prefix` names a `KerasCheckpointManager` checkpoint."""
    return os.path.isfile(prefix + KERAS_WEIGHTS) and os.path.isfile(
        prefix + KERAS_STATE
    )


def checkpoint_exists(prefix):
    """True for a TensorFlow or a Keras-format checkpoint prefix."""
    return is_keras_checkpoint(prefix) or bool(
        _tf().io.gfile.glob(prefix + ".index")
    )


def _numbered_checkpoints(directory, suffix):
    """[(number, prefix)] of the `ckpt-N<suffix>` files in `directory`,
    by number: found from the files themselves."""
    found = []
    for path in glob.glob(os.path.join(directory, "ckpt-*" + suffix)):
        prefix = path[: -len(suffix)]
        match = re.fullmatch(r"ckpt-(\d+)", os.path.basename(prefix))
        if match:
            found.append((int(match.group(1)), prefix))
    return sorted(found)


def newer_incomplete_keras_checkpoint(directory, restored):
    """The newest Keras-format checkpoint in `directory` newer than
    `restored` (a prefix, or None) with one of its two files only (a save
    cut short, or a file deleted), or None."""
    done = int(restored.rsplit("-", 1)[1]) if restored else 0
    numbers = {
        number: prefix
        for suffix in (KERAS_STATE, KERAS_WEIGHTS)
        for number, prefix in _numbered_checkpoints(directory, suffix)
        if number > done
    }
    return numbers[max(numbers)] if numbers else None


_TF_PARTIAL = re.compile(r"^ckpt-(\d+)(?:_temp|\.data-\d+-of-\d+)$")


def newer_incomplete_tf_checkpoint(directory, restored):
    """The newest TensorFlow checkpoint in `directory` newer than
    `restored` (a prefix, or None) whose save was cut short: its
    temporary folder (`ckpt-N_temp/`, where TensorFlow writes the shards
    it merges) or data without its `.index`; None if none (before: a run
    stopped while it saved its first checkpoint could not be restarted)."""
    done = int(restored.rsplit("-", 1)[1]) if restored else 0
    if not os.path.isdir(directory):
        return None
    numbers = set()
    for name in os.listdir(directory):
        match = _TF_PARTIAL.match(name)
        if match and int(match.group(1)) > done:
            prefix = os.path.join(directory, f"ckpt-{match.group(1)}")
            if name.endswith("_temp") or not os.path.exists(prefix + ".index"):
                numbers.add(int(match.group(1)))
    if not numbers:
        return None
    return os.path.join(directory, f"ckpt-{max(numbers)}")


def _keras_checkpoints(directory):
    """[(number, prefix)] of the complete Keras-format checkpoints."""
    return [
        (number, prefix)
        for number, prefix in _numbered_checkpoints(directory, KERAS_STATE)
        if os.path.isfile(prefix + KERAS_WEIGHTS)
    ]


def latest_in(directory):
    """The newest checkpoint prefix in `directory`, of either format: a
    Keras-format one, else the one TensorFlow's `checkpoint` state file
    names, else the newest TensorFlow one by its files (a run copied
    without its state file); None if none."""
    return (
        latest_keras_checkpoint(directory)
        or _tf().train.latest_checkpoint(directory)
        or latest_tf_checkpoint(directory)
    )


def latest_tf_checkpoint(directory):
    """The newest TensorFlow-format checkpoint prefix in `directory` whose
    index is there, or None: from the files, as `latest_keras_checkpoint`
    (the `checkpoint` state file may be gone, or list a newest one whose
    files are not)."""
    found = _numbered_checkpoints(directory, ".index")
    return found[-1][1] if found else None


def latest_keras_checkpoint(directory):
    """The newest Keras-format checkpoint prefix in `directory`, or None."""
    found = _keras_checkpoints(directory)
    return found[-1][1] if found else None


class KerasCheckpointManager:
    """Latest-N checkpoints of a model and optimizer on any Keras backend.

    `ckpt-N.weights.h5` is the model (`model.save_weights`): what the
    TensorFlow tools (evaluate, export, fine-tune) load. `ckpt-N.state.npz`
    holds every model variable (random-generator states included) and
    optimizer variable in order, and the epoch: what a resume restores.
    Both are written to temporary names and renamed, the state last, so a
    kill leaves either a whole checkpoint or none.

    Args:
        model: the Keras model.
        optimizer: its built optimizer.
        directory: where checkpoints go.
        max_to_keep: checkpoints kept (older ones are deleted).
    """

    def __init__(self, model, optimizer, directory, max_to_keep):
        self.model = model
        self.optimizer = optimizer
        self.directory = directory
        self.max_to_keep = max_to_keep

    @property
    def latest_checkpoint(self):
        return latest_keras_checkpoint(self.directory)

    def save(self, checkpoint_number, epoch, step=None):
        """Writes checkpoint `checkpoint_number` (with the epoch and, when
        given, the steps run); returns its prefix."""
        os.makedirs(self.directory, exist_ok=True)
        prefix = os.path.join(self.directory, f"ckpt-{checkpoint_number}")
        tmp = prefix + ".tmp"
        self.model.save_weights(tmp + KERAS_WEIGHTS)
        os.replace(tmp + KERAS_WEIGHTS, prefix + KERAS_WEIGHTS)
        arrays = {"epoch": np.asarray(epoch, np.int64)}
        if step is not None:
            arrays["step"] = np.asarray(step, np.int64)
        for group, variables in (
            ("model", self.model.variables),
            ("optimizer", self.optimizer.variables),
        ):
            for i, v in enumerate(variables):
                arrays[f"{group}/{i:05d}"] = np.asarray(v.value)
        with open(tmp + KERAS_STATE, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp + KERAS_STATE, prefix + KERAS_STATE)
        for _, old in _keras_checkpoints(self.directory)[: -self.max_to_keep]:
            for suffix in (KERAS_STATE, KERAS_WEIGHTS):
                os.remove(old + suffix)
        return prefix

    def restore(self, prefix):
        """Loads checkpoint `prefix`; returns `(epoch, steps run or None)`.

        Raises:
            ValueError: the checkpoint holds another model or optimizer.
        """
        with np.load(prefix + KERAS_STATE) as data:
            for group, variables in (
                ("model", self.model.variables),
                ("optimizer", self.optimizer.variables),
            ):
                keys = sorted(k for k in data.files if k.startswith(group))
                if len(keys) != len(variables):
                    raise ValueError(
                        f"{prefix}{KERAS_STATE} holds {len(keys)} {group} "
                        f"variables, the run's {group} has {len(variables)}: "
                        "it was written by another configuration."
                    )
                for key, v in zip(keys, variables, strict=True):
                    value = data[key]
                    if tuple(value.shape) != tuple(v.shape):
                        raise ValueError(
                            f"{prefix}{KERAS_STATE}: {v.path} has shape "
                            f"{value.shape}, the run's {tuple(v.shape)}."
                        )
                    v.assign(value)
            step = int(data["step"]) if "step" in data.files else None
            return int(data["epoch"]), step

    def repair_weights(self, prefix):
        """Rewrites `prefix`.weights.h5 from the model, restored from
        `prefix`, where the file cannot be opened (truncated, overwritten):
        the resume reads only the state, and the TensorFlow tools only the
        weights file (before: the resume went on, and tools.evaluate of the
        run failed on it). Returns why it was rewritten, or None."""
        import h5py

        path = prefix + KERAS_WEIGHTS
        try:
            with h5py.File(path, "r"):
                return None
        except OSError as e:
            reason = f"{type(e).__name__}: {str(e).splitlines()[0]}"
        tmp = prefix + ".tmp" + KERAS_WEIGHTS
        self.model.save_weights(tmp)
        os.replace(tmp, path)
        return reason


def chief_and_dir(strategy, model_dir):
    """(is_chief, checkpoint dir) following the multi-worker convention."""
    resolver = getattr(strategy, "cluster_resolver", None)
    task_type = getattr(resolver, "task_type", None)
    task_id = getattr(resolver, "task_id", 0) or 0
    if task_type is None or task_type == "chief":
        chief = True
    else:
        spec = resolver.cluster_spec().as_dict() if resolver else {}
        chief = "chief" not in spec and task_type == "worker" and task_id == 0
    base = os.path.join(model_dir, "checkpoints")
    if chief:
        return True, base
    return False, os.path.join(model_dir, f".scratch_{task_type}{task_id}")


class BestKeeper:
    """Copies the N best checkpoints by validation top-1 to model_dir/best.

    best.json stores each prefix by name inside `best/` (a moved run
    stays whole); `entries` holds them as full paths, best first.

    Args:
        model_dir: the run's folder.
        keep: how many to keep (0: keep what is there).
        scores: {epoch: (top1, cut)} of the run's evaluated epochs, as
            training offered them (from its history): where best.json is
            damaged, or missing while best/ holds checkpoints, `entries`
            are rebuilt from those checkpoints and `rebuilt` says so (a
            warning). Without `scores` (a reader of the run), a
            `ValueError` names the file and the fix.
    """

    def __init__(self, model_dir, keep, scores=None):
        self.dir = os.path.join(model_dir, "best")
        self.keep = keep
        self.index_path = os.path.join(self.dir, "best.json")
        self.entries = []
        self.rebuilt = None
        found = self._checkpoints()
        names = ", ".join(_name(prefix) for _, prefix in found)
        # What to do where best.json does not read, or is missing.
        if scores is not None:
            fix = (
                f"keeping the best anew from the checkpoints in {self.dir} "
                f"({names or 'none'}), ranked by their val_top1 in "
                "history.json"
            )
            unranked = [_name(p) for e, p in found if e not in scores]
            if unranked:
                fix += (
                    f" (none for {', '.join(unranked)}: left there, unranked)"
                )
        elif found:
            fix = (
                "rerun the run's training to rebuild it from history.json "
                f"and the checkpoints in {self.dir} ({names}), or pass one "
                f"of them by its path (e.g. {found[-1][1]})"
            )
        else:
            fix = f"delete it: {self.dir} holds no checkpoint to rank"
        # Before: json.load's own error, naming no file ("Unterminated
        # string starting at ..."), or a TypeError traceback for JSON of
        # another shape; this blocked a resume too. A missing best.json
        # beside checkpoints read as "No checkpoint 'best' ... train
        # first".
        try:
            if os.path.isfile(self.index_path):
                self.entries = self._read(fix)
            elif found:
                raise ValueError(
                    f"{self.index_path} is missing, though its folder holds "
                    f"checkpoints; {fix}."
                )
        except ValueError as e:
            if scores is None:
                raise
            # The checkpoints in best/ stay: none is deleted unranked, and
            # each keeps the top-1 and cut mark it was offered with, so
            # the first prune keeps what best.json held.
            self.rebuilt = str(e)
            for epoch, prefix in found:
                if epoch in scores:
                    top1, cut = scores[epoch]
                    entry = {"epoch": epoch, "top1": top1, "prefix": prefix}
                    if cut:
                        entry["cut"] = True
                    self.entries.append(entry)
            self.entries.sort(key=lambda e: (-e["top1"], e["epoch"]))

    def _read(self, fix):
        """best.json's entries, checked (`ValueError`: named, with
        `fix`)."""
        stored = file_utils.read_json(self.index_path, fix)
        if not isinstance(stored, list) or not all(
            isinstance(e, dict)
            and isinstance(e.get("epoch"), int)
            and isinstance(e.get("top1"), (int, float))
            and isinstance(e.get("prefix"), str)
            for e in stored
        ):
            raise ValueError(
                f'{self.index_path} is not a list of best checkpoints ([{{"'
                f'epoch": 3, "top1": 0.71, "prefix": "epoch0003"}}, ...]); '
                f"{fix}."
            )
        # basename: older runs stored absolute paths.
        return [
            dict(e, prefix=os.path.join(self.dir, _name(e["prefix"])))
            for e in stored
        ]

    def _checkpoints(self):
        """[(epoch, prefix)] of the whole checkpoints in `best/` (of
        either format), by epoch."""
        found = {}
        for suffix in (".index", KERAS_STATE):
            for path in glob.glob(
                os.path.join(glob.escape(self.dir), "epoch*" + suffix)
            ):
                prefix = path[: -len(suffix)]
                match = re.fullmatch(r"epoch(\d+)", os.path.basename(prefix))
                if match and (
                    os.path.isfile(prefix + ".index")
                    or is_keras_checkpoint(prefix)
                ):
                    found[int(match.group(1))] = prefix
        return sorted(found.items())

    def offer(self, prefix, top1, epoch, cut=False):
        """Copies the checkpoint at `prefix` in as `epoch`'s (replacing
        an earlier offer of that epoch) and keeps the best. A `cut` epoch
        (one `max_steps` stopped, which a rerun completes and offers
        again) is kept where it ranks among the `keep` best without
        pushing a whole epoch out (before: it did, and the completed epoch
        could then rank lower: the better checkpoint was lost)."""
        if self.keep <= 0:
            return
        os.makedirs(self.dir, exist_ok=True)
        name = f"epoch{epoch:04d}"
        for src in glob.glob(glob.escape(prefix) + ".*"):
            suffix = src[len(prefix) :]
            shutil.copyfile(src, os.path.join(self.dir, name + suffix))
        self.entries = [e for e in self.entries if e["epoch"] != epoch]
        entry = {
            "epoch": epoch,
            "top1": top1,
            "prefix": os.path.join(self.dir, name),
        }
        if cut:
            entry["cut"] = True
        self.entries.append(entry)
        self._keep_best()

    def prune(self):
        """Removes the kept checkpoints beyond `keep` (a rerun of a
        finished run with a lower keep_best: before, `best/` kept them, as
        only a new epoch pruned). keep 0 keeps what is there."""
        if self.keep > 0 and self.entries:
            self._keep_best()

    def _keep_best(self):
        """The `keep` best whole epochs, and a cut one ranked among the
        first `keep` of all."""
        ranked = sorted(self.entries, key=lambda e: (-e["top1"], e["epoch"]))
        whole = [e for e in ranked if not e.get("cut")][: self.keep]
        kept = [
            e
            for i, e in enumerate(ranked)
            if e in whole or (e.get("cut") and i < self.keep)
        ]
        for gone in ranked:
            if gone in kept:
                continue
            for f in glob.glob(glob.escape(gone["prefix"]) + ".*"):
                os.remove(f)
        self.entries = kept
        stored = [dict(e, prefix=_name(e["prefix"])) for e in self.entries]
        file_utils.atomic_write_json(self.index_path, stored, indent=1)


def _name(prefix):
    return os.path.basename(prefix.replace("\\", "/"))


def history_path(model_dir):
    return os.path.join(model_dir, "history.json")


def load_history(model_dir):
    """The run's history.json records (one dict per epoch), or [].

    Raises:
        ValueError: the file is not such a list (named, with the fix).
    """
    path = history_path(model_dir)
    if not os.path.isfile(path):
        return []
    fix = (
        "restore it from a copy, or delete it: the run resumes, and its "
        "history and curves start at the next epoch"
    )
    records = file_utils.read_json(path, fix)
    if not isinstance(records, list) or not all(
        isinstance(r, dict) and isinstance(r.get("epoch"), int) for r in records
    ):
        raise ValueError(
            f'{path} is not a list of epoch records ({{"epoch": 1, '
            f"...}}); {fix}."
        )
    return records


def save_history(model_dir, history):
    file_utils.atomic_write_json(history_path(model_dir), history, indent=1)


PREEMPTED = "preempted"
_PROGRESS = "progress.json"
# What progress.json holds, each an int except the floats below.
PROGRESS_FIELDS = (
    "backend",  # the Keras backend that wrote the checkpoint
    "checkpoint",  # its file name prefix, in the same folder
    "epoch",  # the epoch in progress, 0-based (= epochs done)
    "step",  # global steps run
    "epoch_steps",  # the epoch's steps
    "epoch_steps_done",  # of which done
    "loss_sum",  # their summed loss (the epoch's train_loss to come)
    "records_skipped",  # unusable records skipped in them
    "weight_decay_loss",  # of the last step (float)
    "train_images_per_sec",  # of the last loop (float)
)
_FLOAT_FIELDS = ("loss_sum", "weight_decay_loss", "train_images_per_sec")


def preempted_dir(checkpoint_dir):
    """Where `checkpoint_dir`'s mid-epoch (SIGTERM) checkpoint goes."""
    return os.path.join(checkpoint_dir, PREEMPTED)


def save_preempted_progress(checkpoint_dir, progress):
    """Writes progress.json beside the mid-epoch checkpoint (after it: a
    kill before leaves the progress of the checkpoint before, which stays
    until `prune_preempted`)."""
    missing = set(PROGRESS_FIELDS) - set(progress)
    if missing:
        raise ValueError(f"progress lacks {sorted(missing)}")
    file_utils.atomic_write_json(
        os.path.join(preempted_dir(checkpoint_dir), _PROGRESS),
        progress,
        indent=1,
    )


def load_preempted(checkpoint_dir):
    """`(prefix, progress dict)` of the mid-epoch checkpoint, or None.

    Raises:
        ValueError: progress.json is damaged (named, with the fix).
    """
    folder = preempted_dir(checkpoint_dir)
    path = os.path.join(folder, _PROGRESS)
    if not os.path.isfile(path):
        return None
    fix = f"delete {folder} to resume from the last epoch checkpoint instead"
    progress = file_utils.read_json(path, fix)
    if not isinstance(progress, dict) or any(
        not isinstance(progress.get(k), float if k in _FLOAT_FIELDS else int)
        for k in PROGRESS_FIELDS
        if k not in ("backend", "checkpoint")
    ):
        raise ValueError(
            f"{path} is not the progress of a mid-epoch checkpoint "
            f"(fields {', '.join(PROGRESS_FIELDS)}); {fix}."
        )
    return os.path.join(folder, str(progress["checkpoint"])), progress


def load_preempted_name(checkpoint_dir):
    """The checkpoint progress.json names (None: none, or unreadable)."""
    try:
        found = load_preempted(checkpoint_dir)
    except ValueError:
        return None
    return found[0] if found else None


def prune_preempted(checkpoint_dir, prefix):
    """Removes the mid-epoch checkpoints other than `prefix` (None: all),
    and what a save cut short left (TensorFlow's `<prefix>_temp/`)."""
    folder = preempted_dir(checkpoint_dir)
    if not os.path.isdir(folder):
        return
    keep = os.path.basename(prefix) if prefix else None
    for name in os.listdir(folder):
        if not name.startswith("ckpt-") or name.split(".")[0] == keep:
            continue
        path = os.path.join(folder, name)
        if os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.remove(path)


def clear_preempted(checkpoint_dir):
    """Removes the mid-epoch checkpoint (an epoch checkpoint replaced
    it)."""
    shutil.rmtree(preempted_dir(checkpoint_dir), ignore_errors=True)

"""One experiment, end to end: check, train, evaluate, summarise.

Shared by `tools.train`, `tools.finetune` and `tools.demo`, in the shape of
TF Model Garden's `train_lib.run_experiment` under a ~20-line `train.py`:
the binaries turn flags into an `ExperimentConfig`; this runs it (Lee et
al. 2020, https://arxiv.org/abs/2001.06268, recipes in
`assemble_tf.presets`).
"""

import dataclasses
import os

from assemble_tf import config as config_lib
from assemble_tf.data import checks
from assemble_tf.evaluation import plots
from assemble_tf.runs import checkpoints, class_names, inputs, runtime
from assemble_tf.training import trainer as trainer_lib
from official.utils.misc.validation import OptionError

# Fields a resume may change: where the data is, how the loop is run and
# reported, not what it trains (the learning-rate and DropBlock schedules,
# the data, the model and the strategy stay as they were).
RESUME_MAY_CHANGE = (
    # The same records mounted elsewhere (a preempted job back on another
    # machine; before: refused, and unresumable once the old path was
    # gone). Other data is refused by its size and class names
    # (`checks.check_training_data`, `class_names`).
    ("data", "data_dir"),
    ("train", "steps_per_loop"),
    ("train", "log_every"),
    # When to checkpoint and evaluate: the weights trained are the same.
    ("train", "checkpoint_every_epochs"),
    ("train", "eval_every_epochs"),
    ("train", "keep_checkpoints"),
    ("train", "keep_best"),
    ("train", "eval_batch_size"),
    # How many GPUs (a job back on fewer): the global batch and the
    # schedules stay; the strategy itself must not change.
    ("runtime", "num_gpus"),
    # Where this invocation stops: the schedules span `epochs` (a rerun
    # with a larger or no max_steps continues the same run).
    ("train", "max_steps"),
)


def check_resume(config):
    """An existing config.json in model_dir must equal `config` when the
    run has a checkpoint to resume from (without one, the rerun replaces
    it: nothing would be lost), except in `RESUME_MAY_CHANGE`.

    Returns:
        The changes allowed, as `OptionError`s not raised ("`steps_per_loop`:
        100 -> 3"; "--steps_per_loop: 100 -> 3" in a binary), or [].

    Raises:
        OptionError: naming `model_dir` and listing the differences; or
            checkpoints without a config.json to compare with.
    """
    path = os.path.join(config.model_dir, "config.json")
    if not os.path.isdir(os.path.join(config.model_dir, "checkpoints")):
        return []
    try:
        found = checkpoints.find_checkpoint(config.model_dir)
    except FileNotFoundError:
        # Stopped on SIGTERM within the first epoch: a checkpoint too.
        preempted = checkpoints.load_preempted(
            os.path.join(config.model_dir, "checkpoints")
        )
        if preempted is None:
            return []
        found = preempted[0]
    if not os.path.isfile(path):
        raise OptionError(
            "model_dir",
            "{field}={path} holds checkpoints ({name}) but no config.json "
            "(deleted?): what they were trained with is unknown. Restore "
            "config.json from a copy to resume, or pick a new {field}.",
            path=config.model_dir,
            name=os.path.basename(found),
        )
    # Runs written before config.json kept absolute paths: theirs as seen
    # from here (a rerun of the same command).
    old = config_lib.absolute_paths(config_lib.ExperimentConfig.from_json(path))
    # Options the run's other options ignored (an earlier version stored
    # them) are not a difference.
    a = config_lib.without_ignored_options(old).to_dict()
    b = config_lib.without_ignored_options(config).to_dict()
    diffs = [
        (g, k)
        for g in config_lib.GROUPS
        for k in a[g]
        if a[g][k] != b[g][k] and not _follows(old, config, g, k)
    ]
    refused = [(g, k) for g, k in diffs if (g, k) not in RESUME_MAY_CHANGE]
    if refused:
        raise _other_configuration(config, refused, a, b)
    return [
        OptionError(k, "{field}: {old!r} -> {new!r}", old=a[g][k], new=b[g][k])
        for g, k in diffs
    ]


def _other_configuration(config, refused, old, new):
    """The refusal of a resume whose options differ in `refused` ([(group,
    field)]; `old` and `new` the two configs' dicts): each difference
    names its option ("--mixup_type: 0 -> 2" in the binaries; before:
    "augment.mixup_type: 0 -> 2", the config's own names)."""
    legacy = _legacy_flags(old["train"], new["train"], config.model.preset)
    hint = (
        " (runs written before these defaults changed: add "
        + " ".join(f"{{{name}}}={value}" for name, value in legacy)
        + " to resume one)"
        if legacy
        else ""
    )
    values = {}
    for i, (g, k) in enumerate(refused):
        values[f"old{i}"], values[f"new{i}"] = old[g][k], new[g][k]
    listed = "; ".join(
        f"{{{k}}}: {{old{i}!r}} -> {{new{i}!r}}"
        for i, (_, k) in enumerate(refused)
    )
    return OptionError(
        "model_dir",
        "{field}={path} holds a run with a different configuration ("
        + listed
        + "). Rerun with the same options to resume"
        + hint
        + ", or pick a new {field}.",
        [k for _, k in refused] + [name for name, _ in legacy],
        path=config.model_dir,
        **values,
    )


def _legacy_flags(old, new, preset):
    """[(option, value)] that resume a run written before a default
    changed, where the same command now means another run: Keras' SGD
    before `optimizer` (the original's momentum now), and for `resnet50`
    the cosine before its step-LR recipe (Table 1's baseline now)."""
    if (old["optimizer"], new["optimizer"]) != ("keras_sgd", "momentum"):
        return []
    flags = [("optimizer", "keras_sgd")]
    if preset == "resnet50" and (old["lr_schedule"], new["lr_schedule"]) == (
        "cosine",
        "piecewise",
    ):
        flags.append(("lr_schedule", "cosine"))
    return flags


def _follows(old, new, group, field):
    """Whether the difference in `group.field` follows from another: one
    side's value would be ignored by the other side's options (listed
    themselves; before: `warm_start_bn_stats` beside a changed
    `warm_start`, whose removal reset it)."""
    for config, other in ((old, new), (new, old)):
        values = getattr(config, group)
        value = getattr(getattr(other, group), field)
        try:  # a group's own checks may refuse the mix: not ignored
            swapped = dataclasses.replace(
                config,
                **{group: dataclasses.replace(values, **{field: value})},
            )
            ignored = config_lib.ignored_options(swapped)
        except ValueError:
            continue
        if any((g, k) == (group, field) for g, k, *_ in ignored):
            return True
    return False


@runtime.keeps_dtype_policy
def run_experiment(config, log=None):
    """Trains and evaluates `config`; returns the final summary dict.

    The data are checked and the run resumed or warm-started before
    config.json is written: a failed start leaves nothing behind.

    Raises:
        ValueError (and its `DataError`), FileNotFoundError: bad config or
            data, naming the option or file.
        NonFiniteLossError: the loss diverged.
        OptionError: another process trains into `model_dir`.
    """
    with _held(config):  # a failed start leaves no folder
        return _run(config, log)


def _held(config):
    """`model_dir` held by this run (`file_utils.folder_lock`; before, two
    runs into one folder both trained from scratch over each other's
    files, exit 0) where one process writes it: not across the workers of
    a multi-worker, TPU or multi-process JAX run, which share it."""
    import contextlib

    import keras

    from official.utils.misc import file_utils

    shared = config.runtime.distribution_strategy in (
        "multi_worker_mirrored",
        "tpu",
    )
    if keras.backend.backend() == "jax":
        import jax

        shared = jax.process_count() > 1
    if shared or file_utils.is_url(config.model_dir):
        return contextlib.nullcontext()
    return file_utils.folder_lock(config.model_dir, "model_dir", "training run")


def _run(config, log):
    """`run_experiment` in a held `model_dir`."""
    changed = check_resume(config)
    strategy = runtime.setup_runtime(config)
    checks.check_training_data(config)
    inputs.check_source_splits(config.data)
    trainer = trainer_lib.Trainer(config, strategy, log)
    trainer.prepare()  # resume or warm start
    if changed:  # resumed: only a run with checkpoints has changes
        trainer.log(
            "Resuming with other settings of where the data is or how the "
            f"loop runs (not of what it trains): "
            f"{'; '.join(map(str, changed))}."
        )
    config.to_json(os.path.join(config.model_dir, "config.json"))
    # What each logit means, kept with the run (the export serves it).
    names = class_names.from_data(config.data)
    if names:
        class_names.write(config.model_dir, names)
    history = trainer.train()
    final = history[-1] if history else {}
    summary = {
        "model_dir": config.model_dir,
        "preset": config.model.preset,
        "steps": trainer.step,
        "epochs": final.get("epoch"),
        "train_loss": final.get("train_loss"),
        "top1": final.get("val_top1"),
        "top5": final.get("val_top5"),
        "ece": final.get("val_ece"),
        "train_images_per_sec": final.get("train_images_per_sec"),
        "checkpoint": trainer.backend.latest_checkpoint,
        "history": checkpoints.history_path(config.model_dir),
    }
    png = os.path.join(config.model_dir, "training_curves.png")
    plots.training_curves(history, png)
    summary["training_curves"] = png
    return summary

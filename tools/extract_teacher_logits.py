r"""Adds teacher logits (`image/logit`) to TFRecord shards for distillation.

    # a preset teacher and its weights
    python -m tools.extract_teacher_logits --input_dir=/data/imagenet \
        --output_dir=/data/imagenet_kd --teacher_preset=assemble_resnet152 \
        --teacher_weights=a152.weights.h5 \
        --teacher_preprocessing=imagenet_224_256a
    # a training run of ours (its config.json builds the model)
    python -m tools.extract_teacher_logits --input_dir=/data/imagenet \
        --output_dir=/data/imagenet_kd --teacher_weights=/runs/a152 \
        --teacher_preprocessing=imagenet_224_256a
    # an export of ours (tools.export_saved_model) as the teacher
    python -m tools.extract_teacher_logits --input_dir=/data/imagenet \
        --output_dir=/data/imagenet_kd --teacher_saved_model=/exports/a152/1 \
        --teacher_preprocessing=imagenet_224_256a

Knowledge distillation (Hinton et al. 2015,
https://arxiv.org/abs/1503.02531) from logits stored in the records, as
Assemble-ResNet trains it (Lee et al. 2020, clovaai/assembled-cnn
`kd/extract_embeddings.py`, `image/logit`): the teacher runs once over
every record with eval preprocessing (no augmentation) and each shard is
written again, record for record, with `image/logit` added, so KD training
needs no teacher at run time. The teacher is a preset with weights
(`.weights.h5` or a run's checkpoint), a training run (built from its
config.json) or a SavedModel: its `preprocessed`
signature (as our exports have; float mean-subtracted crops -> `logits`),
else a `serving_default` whose single input takes such float images and
whose output is `logits` (or its only one). `--prepend_zero` adds a 0
background logit (1000-class teachers for the 1001-way original format).
The output folder gets `labels.txt` and `summary.json` (the class count
training reads); finished shards are kept on rerun, and a failure leaves
no partial file. Prints one JSON line. The work is
`assemble_tf.training.teacher_logits`.
"""

import dataclasses
import json

from absl import flags

from official.utils.flags import core as flags_core

FLAGS = flags.FLAGS


def define_flags():
    """Defines the flags (names match `TeacherLogitsOptions` fields)."""
    flags.DEFINE_string("input_dir", None, "Folder of TFRecord shards.")
    flags.DEFINE_list("patterns", ["train-*", "validation-*"], "Shard globs.")
    flags.DEFINE_string("output_dir", None, "Where the new shards go.")
    _define_teacher_flags()
    flags.DEFINE_bool("prepend_zero", False, "Prepend a 0 background logit.")
    flags.DEFINE_integer("batch_size", 64, "Teacher batch size.", lower_bound=1)
    flags.DEFINE_bool("overwrite", False, "Redo shards that already exist.")
    flags.DEFINE_bool("progress", True, "Show a progress bar (on stderr).")
    flags.mark_flags_as_required(["input_dir", "output_dir"])


def _define_teacher_flags():
    """The teacher: a preset with weights, or a SavedModel."""
    flags.DEFINE_string("teacher_preset", None, "Teacher preset name.")
    flags.DEFINE_string(
        "teacher_weights",
        None,
        ".weights.h5 or checkpoint of --teacher_preset, or a training run "
        "(model_dir; then no --teacher_preset: its config.json builds it).",
    )
    flags.DEFINE_integer("teacher_num_classes", 1001, "Teacher logits.")
    flags.DEFINE_string(
        "teacher_overrides",
        None,
        "build_model overrides as JSON, e.g. '{\"base_width\": 32}'.",
    )
    flags.DEFINE_string(
        "teacher_saved_model",
        None,
        "SavedModel teacher (instead of a preset): its `preprocessed` "
        "signature (our exports), else a `serving_default` taking float "
        "mean-subtracted crops and returning `logits` (or one output).",
    )
    _define_teacher_preprocessing_flag()


def _define_teacher_preprocessing_flag():
    flags.DEFINE_string(
        "teacher_preprocessing",
        None,
        "Eval resize/crop for the teacher (default: a training run's own, a "
        "preset's eval preprocessing, an export's own, else imagenet).",
    )


def options_from_flags(flag_values):
    """The `TeacherLogitsOptions` of the parsed flags.

    Raises:
        ValueError: --teacher_overrides is not a JSON object.
    """
    from assemble_tf import config as config_lib
    from assemble_tf.training import teacher_logits

    fields = dataclasses.fields(teacher_logits.TeacherLogitsOptions)
    values = {
        f.name: flag_values[f.name].value
        for f in fields
        if f.name in flag_values
    }
    text = values["teacher_overrides"]
    try:
        values["teacher_overrides"] = config_lib.parse_model_overrides(text)
    except ValueError:
        raise ValueError(
            "--teacher_overrides must be a JSON object, e.g. "
            f"'{{\"base_width\": 32}}'. Received: {text!r}"
        ) from None
    values["patterns"] = tuple(values["patterns"])
    return teacher_logits.TeacherLogitsOptions(**values)


def main(argv):
    del argv
    from assemble_tf.training import teacher_logits

    options = options_from_flags(FLAGS)
    summary = teacher_logits.extract_teacher_logits(options)
    print(json.dumps(teacher_logits.console_line(summary)))


if __name__ == "__main__":
    define_flags()
    flags_core.run(main, tensorflow_only=True)

"""Adds teacher logits (`image/logit`) to TFRecord shards for distillation.

    python -m tools.extract_teacher_logits --input_dir=/data/imagenet \
        --output_dir=/data/imagenet_kd --teacher_preset=assemble_resnet152 \
        --teacher_weights=a152.weights.h5 \
        --teacher_preprocessing=imagenet_224_256a

Runs the teacher once over every record with eval preprocessing (no
augmentation; the original computed AmoebaNet / EfficientNet logits offline
on center crops, Lee et al. 2020, clovaai/assembled-cnn
`kd/extract_embeddings.py`) and writes each shard again, record for record,
with `image/logit` added, so KD training needs no teacher at run time. The
teacher is a preset with weights (`.weights.h5` or a run's checkpoint) or a
SavedModel whose `serving_default` takes mean-subtracted float images.
`--prepend_zero` adds a 0 background logit (1000-class teachers for the
1001-way original format). Finished shards are kept on rerun.
"""

import os
import sys

from absl import flags

from official.utils.flags import core as flags_core

flags.DEFINE_string("input_dir", None, "Folder of TFRecord shards.")
flags.DEFINE_list("patterns", ["train-*", "validation-*"], "Shard globs.")
flags.DEFINE_string("output_dir", None, "Where the new shards go.")
flags.DEFINE_string("teacher_preset", None, "Teacher preset name.")
flags.DEFINE_string(
    "teacher_weights", None, ".weights.h5 or checkpoint of the preset."
)
flags.DEFINE_integer("teacher_num_classes", 1001, "Teacher logits.")
flags.DEFINE_string(
    "teacher_overrides",
    None,
    "build_model overrides as JSON, e.g. '{\"base_width\": 32}'.",
)
flags.DEFINE_string(
    "teacher_saved_model", None, "SavedModel teacher (instead of a preset)."
)
flags.DEFINE_string(
    "teacher_preprocessing", "imagenet", "Eval resize/crop for the teacher."
)
flags.DEFINE_bool("prepend_zero", False, "Prepend a 0 background logit.")
flags.DEFINE_integer("batch_size", 64, "Teacher batch size.", lower_bound=1)
flags.DEFINE_bool("overwrite", False, "Redo shards that already exist.")
flags.mark_flags_as_required(["input_dir", "output_dir"])
FLAGS = flags.FLAGS


def load_teacher(preset, weights, num_classes, saved_model, overrides=None):
    """Returns a callable images -> float32 logits."""
    import tensorflow as tf

    if saved_model:
        loaded = tf.saved_model.load(saved_model)
        fn = loaded.signatures["serving_default"]

        def call(images):
            out = fn(images)
            return tf.cast(next(iter(out.values())), tf.float32)

        return call
    if not preset or not weights:
        raise ValueError(
            "Pass --teacher_preset with --teacher_weights, or "
            "--teacher_saved_model."
        )
    from assemble_tf.models import build_model
    from assemble_tf.runs.warm_start import warm_start_model

    overrides = dict(overrides or {})
    overrides["num_classes"] = num_classes
    model = build_model(preset, **overrides)
    warm_start_model(model, weights, load_head=True)
    return tf.function(
        lambda images: tf.cast(model(images, training=False), tf.float32)
    )


def extract_shard(src, dst, teacher, preprocessing, batch_size, prepend_zero):
    """Writes `dst` = `src` with logits; returns (read, written)."""
    import numpy as np
    import tensorflow as tf

    from assemble_tf.data import preprocessing as pp
    from assemble_tf.data import schema

    def parse(serialized):
        image = tf.io.parse_single_example(
            serialized, {schema.IMAGE: tf.io.FixedLenFeature([], tf.string)}
        )[schema.IMAGE]
        return serialized, pp.preprocess_eval(image, preprocessing)

    read = sum(1 for _ in tf.data.TFRecordDataset(src))
    ds = (
        tf.data.TFRecordDataset(src)
        .map(parse, num_parallel_calls=tf.data.AUTOTUNE)
        .ignore_errors()
        .batch(batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )
    tmp = os.path.join(os.path.dirname(dst), "." + os.path.basename(dst))
    written = 0
    with tf.io.TFRecordWriter(tmp) as writer:
        for serialized, images in ds:
            logits = np.asarray(teacher(images))
            if prepend_zero:
                logits = np.pad(logits, [[0, 0], [1, 0]])
            for raw, row in zip(serialized.numpy(), logits, strict=True):
                example = tf.train.Example.FromString(raw)
                feature = example.features.feature[schema.LOGIT]
                del feature.float_list.value[:]
                feature.float_list.value.extend(row.tolist())
                writer.write(example.SerializeToString(deterministic=True))
                written += 1
    os.replace(tmp, dst)
    return read, written


def main(argv):
    del argv
    import json

    import tensorflow as tf
    from tqdm import tqdm

    files = []
    for pattern in FLAGS.patterns:
        files += sorted(
            tf.io.gfile.glob(os.path.join(FLAGS.input_dir, pattern))
        )
    if not files:
        raise FileNotFoundError(
            f"No shards match {FLAGS.patterns} in --input_dir="
            f"{FLAGS.input_dir}."
        )
    if os.path.abspath(FLAGS.input_dir) == os.path.abspath(FLAGS.output_dir):
        raise ValueError("--output_dir must differ from --input_dir.")
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    try:
        overrides = json.loads(FLAGS.teacher_overrides or "{}")
    except json.JSONDecodeError as e:
        raise ValueError(
            f"--teacher_overrides is not JSON: {FLAGS.teacher_overrides!r}"
        ) from e
    teacher = load_teacher(
        FLAGS.teacher_preset,
        FLAGS.teacher_weights,
        FLAGS.teacher_num_classes,
        FLAGS.teacher_saved_model,
        overrides,
    )
    report = {"shards": {}, "skipped_records": 0}
    for src in tqdm(files, desc="shards", unit="shard", file=sys.stderr):
        dst = os.path.join(FLAGS.output_dir, os.path.basename(src))
        if os.path.exists(dst) and not FLAGS.overwrite:
            report["shards"][os.path.basename(src)] = "kept"
            continue
        read, written = extract_shard(
            src,
            dst,
            teacher,
            FLAGS.teacher_preprocessing,
            FLAGS.batch_size,
            FLAGS.prepend_zero,
        )
        report["shards"][os.path.basename(src)] = written
        report["skipped_records"] += read - written
    with open(os.path.join(FLAGS.output_dir, "teacher_logits.json"), "w") as f:
        json.dump(report, f, indent=1)
    print(
        json.dumps(
            {
                "output_dir": FLAGS.output_dir,
                "shards": len(files),
                "skipped_records": report["skipped_records"],
            }
        )
    )


if __name__ == "__main__":
    flags_core.run(main)

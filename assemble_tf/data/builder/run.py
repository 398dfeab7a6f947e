"""The build: plan, claim the folder, write the missing shards on a
bounded worker pool, summarise (`builder.build`)."""

import collections
import glob
import os
import time

from assemble_tf.data import metadata, schema
from assemble_tf.data.builder.config import (
    LABELS,
    MAX_LISTED,
    BuildConfig,
)
from assemble_tf.data.builder.images import SKIP_NOT_READ
from assemble_tf.data.builder.output import make_manifest, prepare_output
from assemble_tf.data.builder.plan import plan, resolve_config
from assemble_tf.data.builder.shards import (
    ShardTask,
    finalize_split,
    load_state,
    reads_now,
    remove_split,
    write_shard,
)
from official.utils.misc import jobs
from official.utils.misc.validation import OptionError


def build(config):
    """Builds (or resumes) the TFRecords of `config`; returns the summary.

    Args:
        config: a `BuildConfig`.

    Returns:
        The summary dict also written to `output_dir/summary.json`.

    Raises:
        OptionError (a ValueError; MissingPathError, a FileNotFoundError,
            for a missing input): a bad option or input, named.
        OutputMismatchError (a FileExistsError): `output_dir` holds another
            build.
    """
    start = time.time()
    config = resolve_config(config)
    classes, texts, plans = plan(config)
    manifest = prepare_output(
        config, make_manifest(config, classes, plans), plans
    )
    out = config.output_dir
    metadata.write_labels(
        os.path.join(out, LABELS),
        [(i + config.label_offset, c, texts[c]) for i, c in enumerate(classes)],
    )
    todo, resumed = _unfinished_shards(out, plans)
    _write_shards(config, todo)
    for split, p in plans.items():
        finalize_split(out, split, p.digests)
    summary = summarize(config, classes, plans, manifest, resumed)
    _refuse_empty_splits(summary, plans)
    summary["elapsed_s"] = round(time.time() - start, 2)
    jobs.write_summary(out, summary)
    return summary


def _unfinished_shards(out, plans):
    """`([(split plan, shard index)] to write, {split: shards with images
    kept from an earlier run})`; removes an interrupted run's temp files."""
    todo, resumed = [], collections.Counter()
    for split, p in plans.items():
        for stale in glob.glob(os.path.join(out, f".{split}-*.tmp")):
            os.remove(stale)  # left by an interrupted run
        for index in range(p.num_shards):
            name = schema.shard_name(split, index, p.num_shards)
            state = load_state(out, name, p.digests[index])
            if state is None or reads_now(p.root, state):
                todo.append((p, index))
            elif state["images"]:
                resumed[split] += 1
    return todo, resumed


def _write_shards(config, todo):
    """Writes the shards of `todo` in-process or on worker processes; the
    tasks are made as the workers take them (logits can be large)."""

    def make_task(p, index):
        shard = p.shards[index]
        return ShardTask(
            split=p.split,
            index=index,
            num_shards=p.num_shards,
            root=p.root,
            output_dir=config.output_dir,
            entries=[p.entries[i] for i in shard],
            bboxes=[p.bboxes[i] for i in shard],
            logits=None if p.logits is None else p.logits[shard],
            jpeg_quality=int(config.jpeg_quality),
            sha256=p.digests[index],
        )

    for _ in jobs.run_tasks(
        write_shard,
        (make_task(p, index) for p, index in todo),
        min(config.num_workers, len(todo)),
        total=sum(len(p.shards[index]) for p, index in todo),
        progress=config.progress,
        initializer=_init_worker,
        size=lambda task: len(task.entries),
        reports_progress=True,
        # With overwrite, the same command would start over.
        resume="Rerun the same command"
        + (" without the overwrite option" if config.overwrite else "")
        + " to resume: finished shards are kept.",
        workers_option="num_workers",
    ):
        pass


def _refuse_empty_splits(summary, plans):
    """Raises (after removing its shards) when a split of this build wrote
    no image: training on it could only fail later, less clearly."""
    out = summary["output_dir"]
    for split in plans:
        entry = summary["splits"][split]
        if entry["images"]:
            continue
        remove_split(out, split)
        skipped = [s for s in summary["skipped"] if s["split"] == split]
        examples = "; ".join(
            f"{s['file']}: {s['reason']} ({s['detail']})" for s in skipped[:3]
        )
        raise OptionError(
            f"{split}_dir",
            "{field}={root}: none of its {files} files is a readable image"
            + (" (e.g. {examples})" if examples else "")
            + ". No {split} shards were kept in {out}; fix or remove the "
            "files and rerun.",
            root=plans[split].root,
            files=entry["files"],
            examples=examples,
            split=split,
            out=out,
        )


def _init_worker():
    """Worker set-up, before TensorFlow loads: no GPU, quiet logs."""
    from official.utils.logs import startup

    os.environ["CUDA_VISIBLE_DEVICES"] = ""
    startup.quiet_tensorflow_startup()


def summarize(config, classes, plans, manifest, resumed=None):
    """Collects the shard states of every split in the manifest."""
    resumed = resumed or {}
    out = config.output_dir
    splits, skipped = {}, []
    for split, section in sorted(manifest["splits"].items()):
        states = _states(out, split, section)
        for state in states:
            skipped.extend({"split": split, **s} for s in state["skipped"])
        entry = _split_summary(section, states, resumed.get(split, 0))
        per_class = entry["per_class"]
        if split in plans:
            entry["per_class"] = {c: per_class.get(c, 0) for c in classes}
            entry["source"] = plans[split].root
            entry["ignored_files"] = plans[split].ignored
            if config.bbox_csv:
                entry["files_with_boxes"] = sum(
                    1 for b in plans[split].bboxes if b
                )
        splits[split] = entry
    skipped.sort(key=lambda s: (s["split"], s["file"]))
    return {
        "output_dir": out,
        "layout": config.layout,
        "label_offset": config.label_offset,
        "num_classes": len(classes),
        "jpeg_quality": int(config.jpeg_quality),
        "seed": int(config.seed),
        "splits": splits,
        "skipped": skipped,
        "synsets_without_folder": _synsets_without_folder(config, classes),
        "validation_labels_unused": _unused_validation_labels(config),
    }


def _first(names):
    """The first three names, then ", ..." if there are more."""
    return ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")


def _unused_validation_labels(config):
    """The `validation_labels` lines naming no image of the folder."""
    if not (config.validation_labels and config.validation_dir):
        return []
    from assemble_tf.data.builder import inputs

    names, _ = inputs.list_images(config.validation_dir)
    return inputs.unused_validation_labels(config.validation_labels, names)


def _synsets_without_folder(config, classes):
    """The `synsets_file` classes with no class folder: labels follow the
    folders, so with one missing the later ones are not ImageNet's usual
    numbers (the original converter numbered the synsets list)."""
    if not config.synsets_file:
        return []
    from assemble_tf.data.builder.inputs import read_synsets

    return [w for w in read_synsets(config.synsets_file) if w not in classes]


def _states(out, split, section):
    """The states of the finished shards of one split of the manifest."""
    num_shards = section["num_shards"]
    states = (
        load_state(out, schema.shard_name(split, index, num_shards), sha)
        for index, sha in enumerate(section["shard_sha256"])
    )
    return [state for state in states if state is not None]


def _split_summary(section, states, resumed):
    """One split's entry of the summary. `shards` counts the shard files:
    the planned shards without the empty ones (`empty_shards`, whose
    files were all unreadable; `finalize_split` numbers the others)."""
    per_class = collections.Counter()
    reencoded = collections.Counter()
    for state in states:
        per_class.update(state["per_class"])
        reencoded.update(state["reencoded"])
    empty = sum(1 for state in states if not state["images"])
    return {
        "files": section["num_files"],
        "images": sum(state["images"] for state in states),
        "skipped": sum(len(state["skipped"]) for state in states),
        "shards": section["num_shards"] - empty,
        "shards_done": len(states) - empty,
        "shards_resumed": resumed,
        "empty_shards": empty,
        "complete": len(states) == section["num_shards"],
        "num_logits": section.get("num_logits"),
        "reencoded": dict(sorted(reencoded.items())),
        "per_class": dict(sorted(per_class.items())),
    }


def format_summary(summary):
    """The summary as a few readable lines."""
    lines = [
        f"Wrote {summary['output_dir']} ({summary['layout']} layout, "
        f"{summary['num_classes']} classes, label offset "
        f"{summary['label_offset']})"
    ]
    for split, s in summary["splits"].items():
        lines += _split_lines(split, s)
    lines += _warning_lines(summary)
    lines += jobs.format_problems(
        summary["skipped"],
        lambda s: (
            f"skipped {s['split']}/{s['file']}: {s['reason']} ({s['detail']})"
        ),
        limit=MAX_LISTED,
        noun="skipped files",
    )
    if any(s["reason"] == SKIP_NOT_READ for s in summary["skipped"]):
        lines.append(
            "Files that could not be read are read again by a rerun of the "
            "same command (their shards are rebuilt), e.g. once their "
            "permissions are fixed."
        )
    return "\n".join(lines)


def _split_lines(split, s):
    """`format_summary`'s lines of one split's summary `s`."""
    counts = list(s["per_class"].values()) or [0]
    lines = [
        f"  {split}: {s['images']} images in {s['shards_done']}/"
        f"{s['shards']} shards ({s['shards_resumed']} kept from an "
        f"earlier run), {s['skipped']} skipped, "
        # Of the images stored, by this run or the one that wrote a
        # kept shard (before: "re-encoded", read as this run's work).
        f"{sum(s['reencoded'].values())} stored re-encoded as RGB JPEG, "
        f"{min(counts)}..{max(counts)} images per class"
        + ("" if s["complete"] else "  [INCOMPLETE]")
    ]
    for kind, count in s["reencoded"].items():
        lines.append(f"    re-encoded {kind}: {count}")
    ignored = s.get("ignored_files", [])
    if ignored:
        lines.append(
            f"    not read (no image file extension, sub-folders, "
            f"broken links, names not UTF-8): {len(ignored)}, "
            f"e.g. {', '.join(ignored[:3])} (ignored_files in "
            "summary.json)"
        )
    if "files_with_boxes" in s:
        lines.append(
            f"    files with bounding boxes: {s['files_with_boxes']} of "
            f"{s['files']}"
        )
    return lines


def _warning_lines(summary):
    """`format_summary`'s WARNING lines about the classes and labels."""
    lines = []
    missing = summary.get("synsets_without_folder") or []
    if missing:
        lines.append(
            f"WARNING: {_count(len(missing), 'synset', 'synsets')} of the "
            "synsets file without a class folder "
            f"({_first(missing)}): labels number the "
            f"{summary['num_classes']} folders there are, so they are not "
            "the synsets file's numbering."
        )
    if summary["num_classes"] == 1:
        # Before: built without a word, then refused by tools.train ("a
        # classifier needs at least 2").
        lines.append(
            "WARNING: 1 class: tools.train and tools.finetune need at "
            "least 2 (a classifier); add the other class folders."
        )
    unused = summary.get("validation_labels_unused") or []
    if unused:
        lines.append(
            f"WARNING: {len(unused)} lines of the validation labels name no "
            f"image of the validation folder ({_first(unused)}): not used."
        )
    for split, s in summary["splits"].items():
        empty = [c for c, n in s["per_class"].items() if not n]
        if empty:
            what = (
                "the model learns nothing of them"
                if split == "train"
                else "they are not evaluated"
            )
            lines.append(
                f"WARNING: {split}: {_count(len(empty), 'class', 'classes')} "
                f"without an image ({_first(empty)}): their labels exist, "
                f"and {what}."
            )
    return lines


JOB = jobs.Job(BuildConfig, build, format_summary, files=(("labels", LABELS),))


def _count(n, one, many):
    """ "1 class", "2 classes"."""
    return f"{n} {one if n == 1 else many}"

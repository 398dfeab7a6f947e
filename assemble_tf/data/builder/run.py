"""The build: plan, claim the folder, write the missing shards on a
bounded worker pool, summarise (`builder.build`)."""

import collections
import functools
import glob
import json
import os
import time

from assemble_tf.data import metadata, schema
from assemble_tf.data.builder.config import (
    LABELS,
    MAX_LISTED,
    SUMMARY,
)
from assemble_tf.data.builder.output import make_manifest, prepare_output
from assemble_tf.data.builder.plan import plan, resolve_config
from assemble_tf.data.builder.shards import (
    ShardTask,
    load_state,
    remove_split,
    write_shard,
)
from official.utils.misc import file_utils, worker_pool


def build(config):
    """Builds (or resumes) the TFRecords of `config`; returns the summary.

    Args:
        config: a `BuildConfig`.

    Returns:
        The summary dict also written to `output_dir/summary.json`.

    Raises:
        ValueError, FileNotFoundError: bad flags or inputs (the message
            names the flag and the fix).
        FileExistsError: `output_dir` holds another build.
    """
    start = time.time()
    config = resolve_config(config)
    classes, texts, plans = plan(config)
    manifest = prepare_output(config, make_manifest(config, classes, plans))
    out = config.output_dir
    metadata.write_labels(
        os.path.join(out, LABELS),
        [(i + config.label_offset, c, texts[c]) for i, c in enumerate(classes)],
    )

    todo, resumed = [], collections.Counter()
    for split, p in plans.items():
        for stale in glob.glob(os.path.join(out, f".{split}-*.tmp")):
            os.remove(stale)  # left by an interrupted run
        for index in range(p.num_shards):
            name = schema.shard_name(split, index, p.num_shards)
            if load_state(out, name, p.digests[index]) is None:
                todo.append((p, index))
            else:
                resumed[split] += 1

    def make_task(p, index):  # built on demand: logits can be large
        shard = p.shards[index]
        return ShardTask(
            split=p.split,
            index=index,
            num_shards=p.num_shards,
            root=p.root,
            output_dir=out,
            entries=[p.entries[i] for i in shard],
            bboxes=[p.bboxes[i] for i in shard],
            logits=None if p.logits is None else p.logits[shard],
            jpeg_quality=int(config.jpeg_quality),
            sha256=p.digests[index],
        )

    _run_tasks(
        (make_task(p, index) for p, index in todo),
        num_tasks=len(todo),
        num_images=sum(len(p.shards[index]) for p, index in todo),
        num_workers=config.num_workers,
        progress=config.progress,
    )
    summary = summarize(config, classes, plans, manifest, resumed)
    _refuse_empty_splits(summary, plans)
    summary["elapsed_s"] = round(time.time() - start, 2)
    file_utils.atomic_write(
        os.path.join(out, SUMMARY), json.dumps(summary, indent=1)
    )
    return summary


def _refuse_empty_splits(summary, plans):
    """Raises (after removing its empty shards) when a split of this build
    wrote no image: training on it could only fail later, less clearly."""
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
        raise ValueError(
            f"--{split}_dir={plans[split].root}: none of its "
            f"{entry['files']} files is a readable image"
            + (f" (e.g. {examples})" if examples else "")
            + f". No {split} shards were kept in {out}; fix or remove the "
            "files and rerun."
        )


def _init_worker():
    """Worker set-up, before TensorFlow loads: no GPU, quiet logs."""
    from official.utils.logs import startup

    os.environ["CUDA_VISIBLE_DEVICES"] = ""
    startup.quiet_tensorflow_startup()


def _run_tasks(tasks, num_tasks, num_images, num_workers, progress):
    """Runs shard tasks (an iterable) in-process or on worker processes
    (`official.utils.misc.worker_pool`)."""
    from tqdm import tqdm

    with tqdm(
        total=num_images, unit="img", desc="images", disable=not progress
    ) as bar:
        workers = min(num_workers, num_tasks)
        # In-process, the bar moves per image; with workers, per shard.
        fn = (
            write_shard
            if workers > 1
            else functools.partial(write_shard, progress=bar.update)
        )
        for task, _ in worker_pool.imap_bounded(
            fn, tasks, workers, initializer=_init_worker
        ):
            if workers > 1:
                bar.update(len(task.entries))


def summarize(config, classes, plans, manifest, resumed=None):
    """Collects the shard states of every split in the manifest."""
    resumed = resumed or {}
    out = config.output_dir
    splits, skipped = {}, []
    for split, section in sorted(manifest["splits"].items()):
        per_class = collections.Counter()
        reencoded = collections.Counter()
        done, images = 0, 0
        num_shards = section["num_shards"]
        for index, sha in enumerate(section["shard_sha256"]):
            name = schema.shard_name(split, index, num_shards)
            state = load_state(out, name, sha)
            if state is None:
                continue
            done += 1
            images += state["images"]
            per_class.update(state["per_class"])
            reencoded.update(state["reencoded"])
            skipped.extend({"split": split, **s} for s in state["skipped"])
        entry = {
            "files": section["num_files"],
            "images": images,
            "skipped": sum(1 for s in skipped if s["split"] == split),
            "shards": num_shards,
            "shards_done": done,
            "shards_resumed": resumed.get(split, 0),
            "complete": done == num_shards,
            "num_logits": section.get("num_logits"),
            "reencoded": dict(sorted(reencoded.items())),
            "per_class": {c: per_class.get(c, 0) for c in classes}
            if split in plans
            else dict(sorted(per_class.items())),
        }
        if split in plans:
            entry["source"] = plans[split].root
            entry["ignored_files"] = plans[split].ignored
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
    }


def format_summary(summary):
    """The summary as a few readable lines."""
    lines = [
        f"Wrote {summary['output_dir']} ({summary['layout']} layout, "
        f"{summary['num_classes']} classes, label offset "
        f"{summary['label_offset']})"
    ]
    for split, s in summary["splits"].items():
        counts = list(s["per_class"].values()) or [0]
        lines.append(
            f"  {split}: {s['images']} images in {s['shards_done']}/"
            f"{s['shards']} shards ({s['shards_resumed']} kept from an "
            f"earlier run), {s['skipped']} skipped, "
            f"{sum(s['reencoded'].values())} re-encoded as RGB JPEG, "
            f"{min(counts)}..{max(counts)} images per class"
            + ("" if s["complete"] else "  [INCOMPLETE]")
        )
        for kind, count in s["reencoded"].items():
            lines.append(f"    re-encoded {kind}: {count}")
    for s in summary["skipped"][:MAX_LISTED]:
        lines.append(
            f"  skipped {s['split']}/{s['file']}: {s['reason']} ({s['detail']})"
        )
    if len(summary["skipped"]) > MAX_LISTED:
        lines.append(
            f"  ... {len(summary['skipped']) - MAX_LISTED} more skipped "
            f"files in {SUMMARY}"
        )
    return "\n".join(lines)

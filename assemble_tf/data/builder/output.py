"""The output folder: the manifest of a build, and the refusal of a
different build in the same folder."""

import dataclasses
import functools
import glob
import hashlib
import json
import os

from assemble_tf.data.builder.config import (
    FORMAT_VERSION,
    MANIFEST,
    SPLITS,
    STATE_DIR,
)
from assemble_tf.data.builder.shards import remove_split
from official.utils.misc import jobs


def make_manifest(config, classes, plans):
    return {
        "format_version": FORMAT_VERSION,
        "options": {
            "layout": config.layout,
            "label_offset": config.label_offset,
            "jpeg_quality": int(config.jpeg_quality),
            "seed": int(config.seed),
            "num_classes": len(classes),
            "classes_sha256": hashlib.sha256(
                "\n".join(classes).encode()
            ).hexdigest(),
        },
        "splits": {
            split: {
                "num_shards": p.num_shards,
                # None: the default, which follows the number of images.
                "shards_option": getattr(config, f"{split}_shards"),
                "num_files": len(p.entries),
                "num_logits": None if p.logits is None else p.logits.shape[1],
                "shard_sha256": p.digests,
            }
            for split, p in plans.items()
        },
    }


def _differences(old, new, inputs=None):
    """Why `new` is not the build recorded in `old`: message templates
    naming the options as `{name}` (`jobs.OutputRecord.compare`).
    `inputs(split)`: the split's changed files as a phrase, or None."""
    reasons = []
    old_options, options = old.get("options", {}), new["options"]
    for key, value in options.items():
        before = old_options.get(key)
        if before == value:
            continue
        if key in ("layout", "label_offset", "jpeg_quality", "seed"):
            reasons.append(_change(jobs.named(key), before, value))
        elif key == "num_classes":
            reasons.append(_change("number of classes", before, value))
        elif old_options.get("num_classes") == options["num_classes"]:
            reasons.append("the class names (sorted class folders) differ")
    for split, section in new["splits"].items():
        before = old.get("splits", {}).get(split)
        if before is not None:
            reasons += _split_differences(split, before, section, inputs)
    return reasons


def _change(label, before, value):
    return (
        f"{label}: existing build {jobs.literal(before)}, now "
        f"{jobs.literal(value)}"
    )


def _split_differences(split, before, section, inputs=None):
    """The reasons why one split of the new build is not the old one."""
    files = before.get("num_files"), section["num_files"]
    shards = before.get("num_shards"), section["num_shards"]
    if shards[0] != shards[1]:
        flag = jobs.named(f"{split}_shards")
        if files[0] != files[1] and section.get("shards_option") is None:
            # Before: "--train_shards: existing build 35, now 36" to a user
            # who had added an image and never passed the flag; then
            # without the files that changed.
            return [
                f"the {split} inputs differ ({files[0]} files before, "
                f"{files[1]} now), and with them the default {flag} "
                f"({shards[0]} before, {shards[1]} now)"
                + _which_inputs(split, inputs)
            ]
        return [_change(flag, *shards)]
    reasons = []
    if before.get("num_logits") != section["num_logits"]:
        reasons.append(
            _change(
                f"{split} logits per image",
                before.get("num_logits"),
                section["num_logits"],
            )
        )
    changed = sum(
        a != b
        for a, b in zip(
            before.get("shard_sha256", []),
            section["shard_sha256"],
            strict=False,
        )
    )
    if changed:
        reasons.append(
            f"the {split} inputs (files, their sizes or modification "
            "times, labels, texts, boxes or logits) "
            f"differ in {changed} of {section['num_shards']} shards "
            f"({before.get('num_files')} files before, "
            f"{section['num_files']} now)" + _which_inputs(split, inputs)
        )
    return reasons


def _which_inputs(split, inputs):
    """': changed a; new b' of the split's files (`inputs(split)`), as a
    template fragment (file names' braces are no fields), or ''."""
    which = inputs(split) if inputs else None
    if not which:
        return ""
    return ": " + which.replace("{", "{{").replace("}", "}}")


def changed_inputs(out, plan, limit=5):
    """The files of `plan`'s split that differ from the earlier build in
    `out` (its shard states' input stamps), as "changed a, b; new c;
    removed d" (at most `limit` of each, then a count), or None where the
    states hold no stamps (older builds) or the files are the same (boxes,
    texts or logits changed)."""
    from assemble_tf.data.builder.shards import input_stamp

    before = {}
    pattern = os.path.join(out, STATE_DIR, f"{plan.split}-*.json")
    for path in sorted(glob.glob(pattern)):
        try:
            with open(path, encoding="utf-8") as f:
                stamps = json.load(f).get("inputs")
        except (OSError, ValueError, AttributeError):
            return None
        if stamps is None:
            return None
        before.update(line.split("\t", 1) for line in stamps)
    now = dict(input_stamp(plan.root, e).split("\t", 1) for e in plan.entries)
    groups = (
        ("changed", [f for f in now if f in before and now[f] != before[f]]),
        ("new", [f for f in now if f not in before]),
        ("removed", [f for f in before if f not in now]),
    )
    parts = [
        f"{label} {_listed(sorted(files), limit)}"
        for label, files in groups
        if files
    ]
    return "; ".join(parts) or None


def _listed(names, limit):
    shown = ", ".join(names[:limit])
    more = len(names) - limit
    return shown + (f" and {more} more" if more > 0 else "")


_OUTPUT = jobs.OutputRecord(
    what="shards",
    format_version=FORMAT_VERSION,
    file_name=MANIFEST,
    stray=tuple(f"{s}-{'[0-9]' * 5}-of-{'[0-9]' * 5}" for s in SPLITS),
    compare=_differences,
)


def prepare_output(config, manifest, plans=None):
    """Creates or checks `config.output_dir`; returns the manifest to keep.

    A split missing from the folder's build (e.g. validation after train)
    is added to its manifest; `config.overwrite` replaces another build.

    Raises:
        OutputMismatchError (a FileExistsError): the folder holds another
            build (or shards without a manifest) and `config.overwrite` is
            False.
    """
    output = _OUTPUT
    if plans:
        output = dataclasses.replace(
            _OUTPUT,
            compare=functools.partial(
                _differences,
                inputs=lambda split: changed_inputs(
                    config.output_dir, plans[split]
                ),
            ),
        )
    return jobs.claim_output_dir(
        config.output_dir,
        manifest,
        output,
        overwrite=bool(config.overwrite),
        keep=functools.partial(
            _keep, config.output_dir, manifest, config.overwrite
        ),
    )


def _keep(out, manifest, overwrite, old):
    """The manifest to write once the folder is accepted; removes the
    shards of the splits it replaces."""
    if old is None:
        replaced, kept = SPLITS, manifest
    elif overwrite and old.get("options") != manifest["options"]:
        replaced = set(old.get("splits", {})) | set(SPLITS)
        kept = manifest
    else:
        replaced = set(manifest["splits"]) if overwrite else ()
        kept = {
            **old,
            "splits": {**old.get("splits", {}), **manifest["splits"]},
        }
    for split in sorted(replaced):
        remove_split(out, split)
    os.makedirs(os.path.join(out, STATE_DIR), exist_ok=True)
    return kept

"""The output folder: the manifest of a build, and the refusal of a
different build in the same folder."""

import hashlib
import json
import os

from assemble_tf.data.builder.config import (
    FORMAT_VERSION,
    MANIFEST,
    SPLITS,
    STATE_DIR,
)
from assemble_tf.data.builder.shards import remove_split, shard_files
from official.utils.misc import file_utils


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
                "num_files": len(p.entries),
                "num_logits": None if p.logits is None else p.logits.shape[1],
                "shard_sha256": p.digests,
            }
            for split, p in plans.items()
        },
    }


def _differences(old, new):
    """Readable reasons why `new` is not the build recorded in `old`."""
    reasons = []
    old_options, options = old.get("options", {}), new["options"]
    flags = {"layout", "label_offset", "jpeg_quality", "seed"}
    for key, value in options.items():
        before = old_options.get(key)
        if before == value:
            continue
        if key in flags:
            reasons.append(f"--{key}: existing build {before}, now {value}")
        elif key == "num_classes":
            reasons.append(
                f"number of classes: existing build {before}, now {value}"
            )
        elif old_options.get("num_classes") == options["num_classes"]:
            reasons.append("the class names (sorted class folders) differ")
    for split, section in new["splits"].items():
        before = old.get("splits", {}).get(split)
        if before is None:
            continue
        if before.get("num_shards") != section["num_shards"]:
            reasons.append(
                f"--{split}_shards: existing build {before.get('num_shards')}"
                f", now {section['num_shards']}"
            )
            continue
        if before.get("num_logits") != section["num_logits"]:
            reasons.append(
                f"{split} logits per image: existing build "
                f"{before.get('num_logits')}, now {section['num_logits']}"
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
                f"the {split} inputs (files, labels, texts, boxes or logits) "
                f"differ in {changed} of {section['num_shards']} shards "
                f"({before.get('num_files')} files before, "
                f"{section['num_files']} now)"
            )
    return reasons


def prepare_output(config, manifest):
    """Creates or checks `config.output_dir`; returns the manifest to keep.

    Raises:
        FileExistsError: the folder holds another build (or shards without
            a manifest) and `config.overwrite` is False.
    """
    out = config.output_dir
    if os.path.exists(out) and not os.path.isdir(out):
        raise FileExistsError(f"--output_dir={out} is a file, not a folder.")
    os.makedirs(os.path.join(out, STATE_DIR), exist_ok=True)
    path = os.path.join(out, MANIFEST)
    old = None
    if os.path.exists(path):
        try:
            with open(path, encoding="utf-8") as f:
                old = json.load(f)
        except ValueError:
            if not config.overwrite:
                raise FileExistsError(
                    f"--output_dir={out}: {MANIFEST} is not valid JSON; "
                    f"pass --overwrite to rebuild from scratch."
                ) from None
            old = {"options": {}, "splits": {}}
    if old is None:
        stray = [f for s in SPLITS for f in shard_files(out, s)]
        if stray and not config.overwrite:
            raise FileExistsError(
                f"--output_dir={out} already holds {len(stray)} shards "
                f"({os.path.basename(stray[0])}, ...) from another build "
                f"(no {MANIFEST}); pass --overwrite to replace them or "
                f"choose another --output_dir."
            )
        for split in SPLITS:
            remove_split(out, split)
        kept = manifest
    else:
        reasons = _differences(old, manifest)
        if reasons and not config.overwrite:
            raise FileExistsError(
                f"--output_dir={out} holds a different build: "
                + "; ".join(reasons)
                + ". Rerun with the same flags to resume it, pass "
                "--overwrite to replace it, or choose another --output_dir."
            )
        if config.overwrite:
            if old.get("options") != manifest["options"]:
                replaced = set(old.get("splits", {})) | set(SPLITS)
                kept = manifest
            else:
                replaced = set(manifest["splits"])
                kept = {**old, "splits": {**old["splits"]}}
                kept["splits"].update(manifest["splits"])
            for split in sorted(replaced):
                remove_split(out, split)
        else:
            kept = {**old, "splits": {**old.get("splits", {})}}
            kept["splits"].update(manifest["splits"])
    kept["format_version"] = FORMAT_VERSION
    file_utils.atomic_write(path, json.dumps(kept, indent=1, sort_keys=True))
    return kept

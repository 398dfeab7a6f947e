"""Evaluates a classifier on ImageNet-C folders and ImageNet-P videos.

Hendrycks & Dietterich, ICLR 2019 (https://arxiv.org/abs/1903.12261); the
folder layouts are those of the official releases
(github.com/hendrycks/robustness): ImageNet-C
`<root>/<corruption>/<severity>/<wnid>/<file>.JPEG`, ImageNet-P
`<root>/<perturbation>/<wnid>/<name>.mp4` (noise perturbations at a higher
difficulty in `<perturbation>_<d>`). As in Assemble-ResNet's
`mce/eval_robustness.py` (github.com/clovaai/assembled-cnn), images are fed
as they are stored (decoded with INTEGER_ACCURATE, mean-subtracted, no
resize): generate the sets at the model's evaluation size (`tools.
make_imagenet_c` with resize 292 and crop 256 for the 256-px models;
docs/robustness.md).

Results are cached per corruption / perturbation under `cache_dir`, so an
interrupted evaluation continues where it stopped.
"""

import collections
import fnmatch
import glob
import hashlib
import json
import os
import re

import numpy as np
import tensorflow as tf

from assemble_tf.data import metadata, preprocessing
from assemble_tf.data.schema import IMAGENET_LABEL_OFFSET
from assemble_tf.robustness import metrics, video
from assemble_tf.robustness.inputs import IMAGE_EXTENSIONS
from official.utils.misc import file_utils
from official.utils.misc.validation import MissingPathError, OptionError


def _not_a_directory(root):
    return MissingPathError(
        "data_dir", "{field}={root} is not a directory.", root=root
    )


def find_imagenet_c(root, corruptions=None, skipped=None):
    """Lists a corrupted set: {corruption: {severity: [(path, wnid)]}}.

    Args:
        root: the set's top folder.
        corruptions: names to keep (default: every known one present).
        skipped: a list that, when given, receives the paths under the
            corruption folders that are not read: other than severity
            folders 1-5 with class folders of images (hidden ones aside).

    Raises:
        FileNotFoundError: `root` missing (a `MissingPathError` naming
            `data_dir`) or holding no known corruption.
        ValueError: a requested corruption is unknown or absent.
    """
    if not os.path.isdir(root):
        raise _not_a_directory(root)
    _check_finished(root, "make_imagenet_c")
    present = [
        c
        for c in metrics.ALL_CORRUPTIONS
        if os.path.isdir(os.path.join(root, c))
    ]
    if corruptions:
        unknown = sorted(set(corruptions) - set(metrics.ALL_CORRUPTIONS))
        if unknown:
            raise OptionError(
                "names",
                "{field}: unknown corruptions {unknown}; known: {known}.",
                unknown=unknown,
                known=", ".join(metrics.ALL_CORRUPTIONS),
            )
        absent = [c for c in corruptions if c not in present]
        if absent:
            raise ValueError(f"{root} has no folder for {absent}.")
        present = [c for c in present if c in corruptions]
    if not present:
        raise FileNotFoundError(
            f"{root} holds none of the ImageNet-C corruption folders "
            f"({', '.join(metrics.ALL_CORRUPTIONS[:3])}, ...); expected "
            "<root>/<corruption>/<severity>/<wnid>/<file>.JPEG."
        )
    found = {}
    for c in present:
        if skipped is not None:
            skipped += [
                os.path.join(root, c, name)
                for name in sorted(os.listdir(os.path.join(root, c)))
                if name not in ("1", "2", "3", "4", "5")
                and not name.startswith(".")
            ]
        severities = {}
        for s in range(1, 6):
            folder = os.path.join(root, c, str(s))
            if not os.path.isdir(folder):
                continue
            items = _class_files(folder, IMAGE_EXTENSIONS, skipped)
            if items:
                severities[s] = items
        if not severities:
            videos = glob.glob(os.path.join(root, c, "*", "*.mp4"))
            raise FileNotFoundError(
                f"{os.path.join(root, c)} has no severity folders 1-5 with "
                "images in class folders"
                + (
                    "; it holds .mp4 videos: an ImageNet-P set (kind p)?"
                    if videos
                    else " (<severity>/<wnid>/<file>.JPEG)."
                )
            )
        found[c] = severities
    return found


# The hidden names make_imagenet_c (`file_utils.atomic_write`) and
# make_imagenet_p (`video.write_video`) write a file under until it is
# complete.
_UNFINISHED = (file_utils.ATOMIC_TEMP_GLOB, video.TEMP_GLOB)


def _class_files(folder, extensions, skipped=None):
    """[(path, wnid)] of `<folder>/<wnid>/<file>`, sorted by wnid and file
    (hidden files aside); what else `folder` and its class folders hold
    (not hidden) goes to `skipped`.

    Raises:
        OptionError: (`data_dir`) a class folder holds a file a generator
            was writing when it stopped: the set is unfinished (before: an
            interrupted make_imagenet_p's partial video was read as one,
            and failed as a damaged file).
    """
    items = []
    for wnid in sorted(os.listdir(folder)):
        sub = os.path.join(folder, wnid)
        if not os.path.isdir(sub):
            if skipped is not None and not wnid.startswith("."):
                skipped.append(sub)
            continue
        for name in sorted(os.listdir(sub)):
            path = os.path.join(sub, name)
            if any(fnmatch.fnmatch(name, g) for g in _UNFINISHED):
                raise _unfinished_set(path)
            if name.startswith("."):
                continue
            if name.lower().endswith(extensions) and os.path.isfile(path):
                items.append((path, wnid))
            elif skipped is not None:
                skipped.append(path)
    return items


def _check_finished(root, tool):
    """Refuses a set `tools.{tool}` made whose `summary.json` is missing
    beside its `options.json`: the generator was stopped between two
    files (it removes the summary as it starts and writes it at its end).

    Raises:
        OptionError: (`data_dir`) with the command's fix.
    """
    options = os.path.join(root, "options.json")
    if os.path.isfile(options) and not os.path.isfile(
        os.path.join(root, "summary.json")
    ):
        raise OptionError(
            "data_dir",
            "{field}={root} is an unfinished set: tools.{tool} wrote its "
            "options.json but no summary.json (stopped before it ended, or "
            "still running). Rerun tools.{tool} with the same flags to "
            "finish the set (it takes up where it stopped), then evaluate.",
            root=root,
            tool=tool,
        )


def _unfinished_set(path):
    tool = "make_imagenet_p" if path.endswith(".mp4") else "make_imagenet_c"
    return OptionError(
        "data_dir",
        "{field} is an unfinished set: {path} is a file tools.{tool} was "
        "writing when it stopped. Rerun tools.{tool} with the same flags to "
        "finish the set (it takes up where it stopped), then evaluate.",
        path=path,
        tool=tool,
    )


def find_imagenet_p(root, perturbations=None, difficulty=1, skipped=None):
    """Lists a perturbed set: {perturbation: [(path, wnid)]} of mp4 files.

    Noise perturbations at difficulty d > 1 are read from
    `<perturbation>_<d>` as in the official release; the other perturbations
    use the difficulty as the frame step. `skipped` as in
    `find_imagenet_c`.
    """
    if not os.path.isdir(root):
        raise _not_a_directory(root)
    _check_finished(root, "make_imagenet_p")
    known = metrics.ALL_PERTURBATIONS
    if perturbations:
        unknown = sorted(set(perturbations) - set(known))
        if unknown:
            raise OptionError(
                "names",
                "{field}: unknown perturbations {unknown}; known: {known}.",
                unknown=unknown,
                known=", ".join(known),
            )
    found = {}
    for p in perturbations or known:
        folder = p
        if difficulty > 1 and p in metrics.NOISE_PERTURBATIONS:
            folder = f"{p}_{difficulty}"
        top = os.path.join(root, folder)
        if not os.path.isdir(top):
            if perturbations:
                raise ValueError(f"{root} has no folder {folder}.")
            continue
        items = _class_files(top, (".mp4",), skipped)
        if items:
            found[p] = items
    if not found:
        raise FileNotFoundError(
            f"{root} holds no ImageNet-P videos; expected "
            "<root>/<perturbation>/<wnid>/<name>.mp4."
        )
    return found


def read_label_map(path):
    """{wnid: stored label} from our builder's labels.txt or a synsets file.

    `labels.txt` lines are `label<TAB>wnid<TAB>text` (the labels written to
    the TFRecords, `assemble_tf.data.metadata`); a synsets file has one
    `wnid [text]` per line in class order, whose stored labels are the
    ImageNet ones (line index + 1).
    """
    return _read_label_map(path)[0]


def _read_label_map(path):
    """(`read_label_map`'s mapping, whether `path` was read as a synsets
    list)."""
    synsets = False
    if not os.path.isfile(path):
        raise MissingPathError(
            "labels_file", "{field}={path}: no such file.", path=path
        )
    try:
        mapping = {wnid: label for label, wnid, _ in metadata.read_labels(path)}
    except metadata.LabelsFileError:
        raise
    except ValueError:  # not labels.txt: a synsets list
        synsets = True
        with open(path, encoding="utf-8-sig") as f:
            lines = [line.split()[0] for line in f if line.strip()]
        mapping = {
            wnid: index + IMAGENET_LABEL_OFFSET
            for index, wnid in enumerate(lines)
        }
    if not mapping:
        raise OptionError(
            "labels_file", "{field}={path} holds no classes.", path=path
        )
    return mapping, synsets


# Why a synsets list lacks classes with spaces in their names (before:
# they were "not in" it without a word why).
_READ_AS_SYNSETS = (
    " It was read as a synsets list (each line's class is its first word); "
    "for class names with spaces, write it as our labels.txt: "
    "label<TAB>class<TAB>text per line."
)


def label_map(wnids, num_classes, label_offset, labels_file=None):
    """{wnid: model label} for the classes of an evaluation set.

    Stored labels follow the ImageNet builder (sorted wnid index + 1, as the
    original); the model's label is the stored one minus `label_offset`
    (0 for the original's 1001-way heads, 1 for 1000-way ones), exactly as
    the training pipeline reads TFRecords.

    With `labels_file` (the training set's labels.txt or a synsets list) the
    stored labels come from it. Without it, the set must hold every class
    (the official releases do) and they follow the sorted wnids: 1-based
    as ImageNet's, or, where the set has as many classes as the model
    has outputs, the model's labels themselves (a 0-based set, e.g. one
    made from `tools.make_demo_dataset`'s records; before: refused as
    "10 classes but the model expects 9").
    """
    wnids = sorted(set(wnids))
    if labels_file:
        mapping, synsets = _read_label_map(labels_file)
        missing = [w for w in wnids if w not in mapping]
        if missing:
            raise OptionError(
                "labels_file",
                "{count} classes of the set are not in {field}={path}, e.g. "
                "{missing}: pass the labels.txt of the model's training set, "
                "or remove those class folders from the set.{how}",
                count=len(missing),
                path=labels_file,
                missing=missing[:3],
                how=_READ_AS_SYNSETS if synsets else "",
            )
        stored = {w: mapping[w] for w in wnids}
    elif len(wnids) == num_classes:
        stored = {w: i + label_offset for i, w in enumerate(wnids)}
    else:
        expected = num_classes - (IMAGENET_LABEL_OFFSET - label_offset)
        if len(wnids) != expected:
            raise OptionError(
                "labels_file",
                "The set has {count} classes but the model expects "
                "{expected}; pass {field}=<training data_dir>/labels.txt so "
                "that labels are not guessed from a subset.",
                count=len(wnids),
                expected=expected,
            )
        stored = {w: i + IMAGENET_LABEL_OFFSET for i, w in enumerate(wnids)}
    labels = {w: v - label_offset for w, v in stored.items()}
    bad = {w: v for w, v in labels.items() if not 0 <= v < num_classes}
    if bad:
        raise ValueError(
            f"Labels outside the model's {num_classes} classes after "
            f"label_offset={label_offset}: {dict(list(bad.items())[:3])}."
        )
    return labels


def source_label_map(wnids, class_names, source):
    """{class folder: model label} for a model fine-tuned on a tfds set or
    an image folder: labels are 0-based in the source's class order, so a
    corrupted set made from that dataset's validation images (class folders
    named as its classes, e.g. Food-101's `apple_pie`) maps by name.

    Args:
        wnids: the set's class folder names.
        class_names: the source's class names in label order (or None when
            the source only numbers its classes: folders named 0, 1, ...).
        source: the source's name, for messages.
    """
    names = [str(n) for n in class_names] if class_names else None
    index = {n: i for i, n in enumerate(names)} if names else None
    labels = {}
    for w in sorted(set(wnids)):
        if index is not None and w in index:
            labels[w] = index[w]
        elif index is None and w.isdigit():
            labels[w] = int(w)
        else:
            known = ", ".join(names[:5]) + ", ..." if names else "0, 1, ..."
            raise OptionError(
                "labels_file",
                "Class folder {folder!r} of the set is not a class of the "
                "model's training source {source} ({known}); generate the "
                "set from that dataset's images in <class name>/<file> "
                "folders, or pass {field}.",
                folder=w,
                source=source,
                known=known,
            )
    return labels


IMAGENET_CLASSES = 1000


def training_classes(data_config, labels=None):
    """(classes the model was trained on, whether they are ImageNet's).

    From the training data's summary.json / labels.txt when the run has a
    TFRecord data_dir, from the source's name for tfds / folder runs, else
    (a preset with imported weights) from the head: 1001 with label offset
    0 or 1000 with offset 1 is ImageNet's 1000. `labels` (the set's
    {class folder: model label}, as `label_map` reads it): where one is 0,
    the head has no background class and every output is a class (a
    10-way head at offset 0 was said to have 9).
    """
    from assemble_tf.data import metadata

    d = data_config
    if d.source:
        imagenet = str(d.source).split(":")[0].startswith("imagenet2012")
        return d.num_classes, imagenet
    info = None if d.synthetic else metadata.dataset_info(d.data_dir)
    if info is not None:
        return info.num_classes, info.num_classes == IMAGENET_CLASSES
    real = d.num_classes - (IMAGENET_LABEL_OFFSET - d.label_offset)
    if labels is not None and background_class(d, labels=labels) is None:
        real = d.num_classes
    return real, real == IMAGENET_CLASSES


def background_class(data_config, labels_file=None, labels=None):
    """The model's background class, or None.

    A model trained with label_offset 0 on the builder's 1-based labels
    (the original's 1001-way heads) has a class 0 that no image has; the
    release's models have only the 1000 real classes, so ImageNet-P's flip
    rates and top-5 distance rank those (hendrycks/robustness
    `ImageNet-P/test.py`). The stored labels are those `label_map` read:
    `labels_file`'s, else (the set holds every class) a background where
    no class of `labels` (its {class folder: model label}) is 0. tfds /
    folder sources and 0-based TFRecord folders (e.g.
    `tools.make_demo_dataset`'s) have none (before: every TFRecord run
    with label_offset 0 lost its real class 0).
    """
    d = data_config
    if d.source:
        return None
    if labels_file:
        base = min(read_label_map(labels_file).values())
    elif labels is not None:
        return None if 0 in labels.values() else 0
    else:
        base = IMAGENET_LABEL_OFFSET
    return 0 if d.label_offset < base else None


def make_predict_fn(model, k=5, background=None):
    """uint8 or float [B, H, W, 3] -> top-k class indices [B, k] (int32);
    with `background` (a class index), over the other classes only."""

    @tf.function(reduce_retracing=True, autograph=False)
    def predict(images):
        images = preprocessing.normalize_batch(images, model.compute_dtype)
        logits = tf.cast(model(images, training=False), tf.float32)
        classes = logits.shape[-1]
        if background is not None:
            logits += tf.one_hot(background, classes, -np.inf, 0.0)
            classes -= 1
        return tf.math.top_k(logits, k=min(k, classes)).indices

    return predict


def _load_image(path):
    try:
        return preprocessing.decode_jpeg(tf.io.read_file(path)).numpy()
    except tf.errors.InvalidArgumentError as e:
        reason = re.sub(r"\{\{.*?\}\}|\[Op:\w+\]", "", e.message)
        reason = reason.split("\n")[0].split("[[")[0].strip()
        raise ValueError(
            f"{path} is not a decodable JPEG ({reason}). Regenerate it: "
            "delete it and rerun `python -m tools.make_imagenet_c` with the "
            "same flags (it writes only the missing files)."
        ) from None


def _load_images(paths):
    images = [_load_image(p) for p in paths]
    shapes = [im.shape for im in images]
    if len(set(shapes)) > 1:
        # Name an image of the rarer size (before: the batch's first).
        common = max(set(shapes), key=shapes.count)
        odd = next(p for p, s in zip(paths, shapes, strict=True) if s != common)
        raise ValueError(
            f"Images of one batch differ in size {sorted(set(shapes))}: "
            f"{odd} is {shapes[paths.index(odd)][:2]}, the others "
            f"{common[:2]}; generate the set at one crop size."
        )
    return np.stack(images)


def _check_size(first, images, paths):
    """Refuses a batch of another size than the set's first (`first`:
    {} before it, then its (path, size)): images of one size across
    batches too (before: batches of another size, e.g. at a batch size of 1,
    were evaluated without a word)."""
    size = tuple(images.shape[1:3])
    if not first:
        first.update(path=paths[0], size=size)
    elif size != first["size"]:
        raise ValueError(
            f"{paths[0]} is {size}, but {first['path']} is {first['size']}: "
            "a set is evaluated at one size; generate it at one crop size."
        )


def files_key(paths):
    """The identity of a set's files: their paths, sizes and modification
    times. A corruption whose files changed (a `--limit` subset grown to
    the whole set, a regenerated severity) misses the cache."""
    digest = hashlib.sha1()
    for path in sorted(paths):
        st = os.stat(path)
        digest.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _cache_path(cache_dir, name):
    return os.path.join(cache_dir, f"{name}.json")


def _read_cache(cache_dir, name, signature):
    path = _cache_path(cache_dir, name)
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        cached = json.load(f)
    return cached if cached.get("signature") == signature else None


def _write_cache(cache_dir, name, payload):
    os.makedirs(cache_dir, exist_ok=True)
    path = _cache_path(cache_dir, name)
    file_utils.atomic_write_json(path, payload)


def evaluate_c(
    predict_fn,
    found,
    labels,
    cache_dir,
    signature,
    batch_size=64,
    progress=None,
):
    """Top-1 / top-5 errors per corruption and severity.

    Args:
        predict_fn: from `make_predict_fn`.
        found: `find_imagenet_c` output.
        labels: {wnid: label}.
        cache_dir: per-corruption results are stored here and reused when
            their `signature` (model + data identity) matches and their
            files are the same (`files_key`).
        signature: any JSON value identifying model and data.
        batch_size: images per forward pass.
        progress: optional tqdm-like object (`update(n)`).

    Returns:
        {corruption: {"top1_error": [5 floats or None], "top5_error": [...],
        "count": [...], "cached": bool}}.
    """
    results, first = {}, {}
    for corruption, severities in found.items():
        key = {
            "signature": signature,
            "files": files_key(p for v in severities.values() for p, _ in v),
        }
        cached = _read_cache(cache_dir, corruption, key)
        if cached:
            results[corruption] = dict(cached["result"], cached=True)
            if progress is not None:
                progress.update(sum(len(v) for v in severities.values()))
            continue
        top1 = [None] * 5
        top5 = [None] * 5
        count = [0] * 5
        for s, items in severities.items():
            wrong1 = wrong5 = 0
            for start in range(0, len(items), batch_size):
                chunk = items[start : start + batch_size]
                paths = [p for p, _ in chunk]
                images = _load_images(paths)
                _check_size(first, images, paths)
                target = np.array([labels[w] for _, w in chunk])
                pred = predict_fn(tf.constant(images)).numpy()
                wrong1 += int(np.sum(pred[:, 0] != target))
                wrong5 += int(np.sum(~np.any(pred == target[:, None], 1)))
                if progress is not None:
                    progress.update(len(chunk))
            count[s - 1] = len(items)
            top1[s - 1] = wrong1 / len(items)
            top5[s - 1] = wrong5 / len(items)
        result = {"top1_error": top1, "top5_error": top5, "count": count}
        _write_cache(
            cache_dir, corruption, {"signature": key, "result": result}
        )
        results[corruption] = dict(result, cached=False)
    return results


def evaluate_p(
    predict_fn,
    found,
    labels,
    cache_dir,
    signature,
    read_video,
    difficulty=1,
    progress=None,
):
    """Flip probability, top-5 distance and top-1 error per perturbation.

    Args:
        predict_fn: from `make_predict_fn` (k >= 5).
        found: `find_imagenet_p` output.
        labels: {wnid: label}.
        cache_dir, signature: as for `evaluate_c`.
        read_video: path -> uint8 frames [n, H, W, 3].
        difficulty: frame step of the non-noise perturbations.
        progress: optional tqdm-like object, updated per video.
    """
    results = {}
    for name, items in found.items():
        key = {"signature": signature, "files": files_key(p for p, _ in items)}
        cached = _read_cache(cache_dir, f"p_{name}", key)
        if cached:
            results[name] = dict(cached["result"], cached=True)
            if progress is not None:
                progress.update(len(items))
            continue
        top5, wrong, frames = [], 0, 0
        lengths = {}
        for path, wnid in items:
            video = read_video(path)
            pred = predict_fn(tf.constant(video)).numpy()
            lengths[path] = len(pred)
            top5.append(pred)
            wrong += int(np.sum(pred[:, 0] != labels[wnid]))
            frames += len(pred)
            if progress is not None:
                progress.update(1)
        _check_frame_counts(name, lengths)
        top5 = np.stack(top5)
        noise = name in metrics.NOISE_PERTURBATIONS
        step = 1 if noise else difficulty
        result = {
            "flip_probability": metrics.flip_probability(
                top5[:, :, 0], noise=noise, step=step
            ),
            # Needs 5 ranked classes (None for models with fewer).
            "top5_distance": metrics.top5_distance(top5, noise=noise, step=step)
            if top5.shape[2] >= 5
            else None,
            "top1_error": wrong / frames,
            "videos": len(items),
            "frames_per_video": int(top5.shape[1]),
        }
        _write_cache(
            cache_dir, f"p_{name}", {"signature": key, "result": result}
        )
        results[name] = dict(result, cached=False)
    return results


def _check_frame_counts(name, lengths):
    """Raises naming the videos of perturbation `name` whose frame count
    ({path: frames}) differs from most of its videos' (before: "videos
    have different frame counts [3, 31, 41]", naming none)."""
    counts = collections.Counter(lengths.values())
    if len(counts) < 2:
        return
    usual = counts.most_common(1)[0][0]
    odd = sorted(p for p, n in lengths.items() if n != usual)
    raise ValueError(
        f"{name}: {len(odd)} of its {len(lengths)} videos have another "
        f"frame count than the others' {usual}: "
        + ", ".join(f"{p} ({lengths[p]})" for p in odd[:3])
        + (", ..." if len(odd) > 3 else "")
        + ". Delete them and rerun the tools.make_imagenet_p command that "
        "made the set: it makes the missing videos again."
    )


# Options of a generated set's options.json that are also flags of its
# generator (the rest, e.g. jpeg_quality, are fixed by the generator).
_GENERATOR_OPTIONS = ("resize", "crop", "crop_rounding", "seed", "codec")


def regenerate_command(data_dir, job, names_flag, names, severities=None):
    """The command that generates the `names` (corruptions or
    perturbations) of a set into `data_dir` with the options the set was
    made with: its options.json, where `job` (e.g. "tools.make_imagenet_c")
    made it, and the image limit of its summary.json (its last run's); the
    input, where the set does not record it, as a placeholder to fill in.
    `severities`: those the set holds (ImageNet-C), where not all five."""
    options = _read_json_dict(os.path.join(data_dir, "options.json"))
    if options.get("job") != job:
        options = {}
    last_run = _read_json_dict(os.path.join(data_dir, "summary.json"))
    given, limit = _last_run_input(last_run) if options else (None, None)
    recorded = options.get("input")  # a flag (ImageNet-P), {flag: path} (C)
    if isinstance(recorded, dict) and len(recorded) == 1:
        ((flag, path),) = recorded.items()
        recorded = f"--{flag}={path}"
    parts = [
        f"python -m {job}",
        _quoted(recorded if isinstance(recorded, str) else None)
        or given
        or "--input_dir=<the images it was made from>",
        _quoted(f"--output_dir={data_dir}"),
        *(f"--{k}={options[k]}" for k in _GENERATOR_OPTIONS if k in options),
        f"--{names_flag}={','.join(names)}",
    ]
    if severities and list(severities) != [1, 2, 3, 4, 5]:
        parts.append(f"--severities={','.join(map(str, severities))}")
    if isinstance(limit, int) and limit > 0:  # before: a set of N images
        parts.append(f"--limit={limit}")  # was completed from all of them
    return " ".join(parts)


def _last_run_input(last_run):
    """(the input flag, the image limit or None) of a generator's last
    run, from its summary.json: make_imagenet_c keeps its options there;
    make_imagenet_p the images found and selected (before: ImageNet-P's
    command had no --limit, and ImageNet-C's named no input, though the
    set recorded both)."""
    import shlex

    options = last_run.get("options")
    options = options if isinstance(options, dict) else {}
    given = None
    for flag in ("input_dir", "tfrecord_pattern"):
        if isinstance(options.get(flag), str) and options[flag]:
            given = f"--{flag}={shlex.quote(options[flag])}"
            break
    limit = options.get("limit")
    found, selected = (
        last_run.get("images_found"),
        last_run.get("images_selected"),
    )
    if limit is None and isinstance(found, int) and isinstance(selected, int):
        limit = selected if selected < found else None
    return given, limit


def _quoted(flag):
    """`--name=value` with the value quoted for a shell (a glob)."""
    import shlex

    if not flag or "=" not in flag:
        return flag
    name, value = flag.split("=", 1)
    return f"{name}={shlex.quote(value)}"


def _read_json_dict(path):
    """The JSON object in `path`, or {} (no file, not JSON, not a dict)."""
    try:
        with open(path, encoding="utf-8") as f:
            value = json.load(f)
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def summarize_c(
    results,
    clean_error=None,
    normalization="alexnet",
    command=None,
    selected=(),
):
    """Per-corruption errors and CE, mCE (15 and 19), relative mCE.

    With normalization="none" CE is the plain error (%) and mCE the plain
    mean corruption error, as the paper's Food-101-C figures (Table 8);
    relative mCE (an AlexNet-normalised quantity) is then not computed.

    A corruption evaluated at some severities only (`make_imagenet_c
    --severities`) is normalised by AlexNet's errors at the same
    severities (CE_c sums both over the same s), and the summary's `note`
    says that its mCE is not the published protocol's; one of the four
    extra corruptions, whose AlexNet errors per severity are not
    published, then has no CE (and mCE over 19 is not given).

    `command(missing, severities)` is the command the note gives to
    generate missing standard corruptions (`regenerate_command`); default
    the bare one. `selected`: the corruptions the evaluation was limited to
    (empty: all in the set); the note then says mCE needs the others, not
    that the set lacks them.
    """
    errors = {}
    for name, r in results.items():
        values = list(r["top1_error"])
        if any(e is not None for e in values):
            errors[name] = values
    partial = {
        k: [i + 1 for i, e in enumerate(v) if e is not None]
        for k, v in errors.items()
        if None in v
    }
    plain = normalization == "none"
    normalised = {
        k: v
        for k, v in errors.items()
        if plain or k not in partial or k in metrics.STANDARD_CORRUPTIONS
    }
    ce = metrics.corruption_errors(normalised, normalization)
    summary = {
        "normalization": normalization,
        "top1_error": {k: metrics.mean_error(v) for k, v in errors.items()},
        "ce": ce,
        "mean_error_all": float(
            np.mean([metrics.mean_error(v) for v in errors.values()])
        ),
        "mce": None,
        "mce_19": None,
        "relative_mce": None,
        "clean_error": clean_error,
        "severities_complete": sorted(set(errors) - set(partial)),
        "severities_partial": partial,
        "note": _partial_note(
            partial, set(errors) - set(normalised), normalization, command
        ),
    }
    if all(c in ce for c in metrics.STANDARD_CORRUPTIONS):
        summary["mce"] = metrics.mce(errors, normalization=normalization)
        if clean_error is not None and not plain:
            summary["relative_mce"] = metrics.relative_mce(errors, clean_error)
            summary["relative_ce"] = metrics.relative_corruption_errors(
                {c: errors[c] for c in metrics.STANDARD_CORRUPTIONS},
                clean_error,
            )
    if all(c in ce for c in metrics.ALL_CORRUPTIONS):
        summary["mce_19"] = metrics.mce(
            errors, metrics.ALL_CORRUPTIONS, normalization
        )
    summary["note"] = _joined(
        summary["note"],
        _uneven_images_note(results),
        _missing_note(errors, selected, command),
    )
    return summary


def _missing_note(errors, selected, command):
    """Why there is no mCE when standard corruptions have no results: left
    out by `selected`, or missing from the set (with the command that
    generates them at the set's severities), or None."""
    missing = [c for c in metrics.STANDARD_CORRUPTIONS if c not in errors]
    if not missing:
        return None
    if selected and not set(missing) & set(selected):
        # Before: "the set has no results for ..." of a complete set.
        return (
            f"No mCE: the evaluation was limited to {len(selected)} "
            "corruption(s) (names); mCE is the mean over the 15 standard "
            "ones."
        )
    missing = [c for c in missing if not selected or c in selected]
    held = sorted({tuple(i + 1 for i, e in enumerate(v) if e is not None)
                   for v in errors.values()})  # fmt: skip
    severities = held[0] if len(held) == 1 else None
    make = command or _default_command("c", "corruptions")
    return (  # before: mCE "-" without a word
        f"No mCE: the set has no results for {', '.join(missing)} (of the "
        "15 standard corruptions); generate them into the same folder "
        f"with `{make(missing, severities)}`."
    )


def _uneven_images_note(results):
    """A note naming the image counts where corruptions hold different
    numbers of images (their errors are over other images: a set made
    with a limit and completed without), or None."""
    counts = {
        name: max(r.get("count") or [0])
        for name, r in results.items()
        if any(e is not None for e in r["top1_error"])
    }
    return _uneven_note(counts, "image", "corruption", "error")


def _uneven_note(counts, item, kind, measure):
    """`_uneven_images_note` of {name: count} (of an `item`, "image" or
    "video", per `kind`, "corruption" or "perturbation"), or None where
    the counts agree."""
    if len(set(counts.values())) < 2:
        return None
    groups = collections.defaultdict(list)
    for name, count in counts.items():
        groups[count].append(name)
    each = "; ".join(
        f"{count} in {', '.join(sorted(names))}"
        for count, names in sorted(groups.items())
    )
    return (
        f"{item.capitalize()}s per {kind} differ ({each}): each {kind}'s "
        f"{measure} is over other {item}s, so the mean over them mixes "
        f"{item} sets. Generate the smaller {kind}s again "
        f"from the same images (with the same image limit as the others, "
        "or none)."
    )


def _joined(*notes):
    return " ".join(n for n in notes if n) or None


def _partial_note(partial, without_ce, normalization="alexnet", command=None):
    """The summary's note on corruptions evaluated at some severities:
    which mean is off the published protocol (before: "mCE" where only an
    extra corruption lacked a severity, and the 15-corruption mCE was the
    protocol's), and the command that generates the other severities."""
    if not partial:
        return None
    given = sorted({tuple(v) for v in partial.values()})
    severities = "; ".join(",".join(map(str, v)) for v in given)
    plain = normalization == "none"
    how = (
        "their error is the mean over those severities"
        if plain
        else "their CE is normalised by AlexNet's errors at the same severities"
    )
    if set(partial) & set(metrics.STANDARD_CORRUPTIONS):
        which = (
            "mCE is not the published protocol's (all 5 severities), so it "
            "does not compare with published figures"
        )
    else:
        which = "the mCE of the 15 standard corruptions is the published " + (
            "protocol's (all 5 severities); the mean over 19 is not"
            if plain
            else "protocol's (all 5 severities)"
        )
    note = (
        f"{len(partial)} corruption(s) evaluated at severities "
        f"{severities} only: {how}, and {which}."
    )
    if without_ce:
        note += (
            f" No CE for {', '.join(sorted(without_ce))}: AlexNet's errors "
            "per severity are published for the 15 standard corruptions "
            "only."
        )
    make = command or _default_command("c", "corruptions")
    rest = collections.defaultdict(list)
    for name, held in partial.items():
        others = tuple(s for s in range(1, 6) if s not in held)
        rest[others].append(name)
    commands = " and ".join(
        f"`{make(sorted(names), list(others))}`"
        for others, names in sorted(rest.items())
    )
    return f"{note} The other severities: generate them into the same " + (
        f"folder with {commands}."
    )


FR_DIFFICULTY_NOTE = (
    "FR and mFR are not given at difficulty {d}: the AlexNet flip "
    "probabilities that normalise them exist for difficulty 1 only "
    "(hendrycks/robustness); the flip probabilities are."
)


def _default_command(kind, names_flag):
    return lambda names, severities=None: (
        f"python -m tools.make_imagenet_{kind} --{names_flag}={','.join(names)}"
    )


def summarize_p(results, difficulty=1, command=None, selected=()):
    """FR per perturbation and mFR when all 10 test ones are present.

    FR divides by AlexNet's flip probabilities, which were published for
    difficulty 1 only; at a higher difficulty the summary has the flip
    probabilities and top-5 distances, `fr` empty, `mfr` None and a note.
    `command(missing)`: as `summarize_c`'s, for missing test perturbations.
    `selected`: the perturbations the evaluation was limited to (empty:
    all in the set); the note then says mFR needs the others, not that
    the set lacks them (as `summarize_c`'s).
    """
    fp = {k: v["flip_probability"] for k, v in results.items()}
    # Before: an mFR over perturbations of other videos, without a word
    # (ImageNet-C said so of its images).
    uneven = _uneven_note(
        {k: v["videos"] for k, v in results.items() if "videos" in v},
        "video",
        "perturbation",
        "flip probability",
    )
    summary = {
        "difficulty": int(difficulty),
        "flip_probability": fp,
        "fr": {},
        "top5_distance": {k: v["top5_distance"] for k, v in results.items()},
        "mfr": None,
        "note": uneven,
    }
    if difficulty > 1:
        summary["note"] = _joined(
            FR_DIFFICULTY_NOTE.format(d=int(difficulty)), uneven
        )
        return summary
    summary["fr"] = metrics.flip_rates(fp)
    missing = [p for p in metrics.TEST_PERTURBATIONS if p not in fp]
    if not missing:
        summary["mfr"] = metrics.mfr(fp)
    elif selected and not set(missing) & set(selected):
        # Before: "the set has no results for ..." of a complete set.
        summary["note"] = _joined(
            uneven,
            f"No mFR: the evaluation was limited to {len(selected)} "
            "perturbation(s) (names); mFR is the mean over the 10 test "
            "ones.",
        )
    else:  # before: mFR "-" without a word
        missing = [p for p in missing if not selected or p in selected]
        summary["note"] = _joined(
            uneven,
            f"No mFR: the set has no results for {', '.join(missing)} (of "
            "the 10 test perturbations); generate them into the same "
            "folder with `"
            + (command or _default_command("p", "perturbations"))(missing)
            + "`.",
        )
    return summary

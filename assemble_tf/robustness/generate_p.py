"""Generates ImageNet-P perturbation videos from ImageNet validation images.

Follows hendrycks/robustness `ImageNet-P/create_p/make_imagenet_p.py`
(Hendrycks & Dietterich, ICLR 2019, arXiv 1903.12261): every image is
resized (PIL bilinear, shorter side `resize`, long side
int(resize * long / short)), perturbed into a sequence
(`assemble_tf.robustness.perturbations.sequence`, geometric perturbations
before the centre crop of `crop`, offset rounded as `--crop_rounding`
says: torchvision 0.2.1's half to even by default at 224) and saved
as `<output_dir>/<perturbation>/<wnid>/<stem>.mp4`, the layout of the
release and of its `video_loader.py` (class folders under one folder per
perturbation; the harder noise levels in `gaussian_noise_2`,
`gaussian_noise_3`, ...). Assemble-ResNet (Lee et al., arXiv 2001.06268)
evaluates at 224 (256 -> 224) and, for its big-little models, 256
(292 -> 256). `tools.make_imagenet_p` is the binary.

Inputs: the validation set in class folders (`<wnid>/<file>.JPEG`), or this
project's validation TFRecords (`image/encoded`, `image/class/synset`,
`image/filename`). Each image's random perturbations are seeded from the
seed and `<wnid>/<file name>`, so both inputs give the same videos for the
same JPEG, whatever the worker count.

Videos are written to a temporary name and renamed, so a rerun skips the
finished ones (counted in the summary) and redoes the rest. They are
encoded with libx264 and the release's ffmpeg options (`video`,
`--codec=x264`); `--codec=mp4v` is a less faithful OpenCV fallback.
`options.json` records the options that change a video's content (resize,
crop, seed, the input, the codec); a later run into the same folder with
other values is refused.
The perturbations, set, difficulty, limit and workers may differ between
runs (they choose which videos to write). The run ends with a summary, also
saved as `summary.json`.
"""

import collections
import dataclasses
import glob
import hashlib
import io
import json
import os
import time

import numpy as np
from PIL import Image
from tqdm import tqdm

from assemble_tf.data import schema
from assemble_tf.robustness import inputs, video
from assemble_tf.robustness import perturbations as P
from official.utils.misc import file_utils, worker_pool

SUMMARY = "summary.json"
# 2: the input as one key; 3: codec replaces fourcc; 4: the reference's
# affine centre, clipped_zoom and crop rounding (crop_rounding recorded).
FORMAT_VERSION = 4
SETS = ("test", "validation", "all")
_MAX_LISTED = 20


@dataclasses.dataclass
class Options:
    """Everything a run needs; field names are the binary's flag names."""

    output_dir: str
    input_dir: str | None = None
    tfrecord_pattern: str | None = None
    resize: int = 256
    crop: int = 224
    crop_rounding: str = "auto"  # inputs.CROP_ROUNDINGS
    perturbations: str | tuple | None = None
    set: str = "test"
    difficulty: int = 1
    seed: int = 0
    workers: int = 1
    limit: int = 0
    progress: bool = True
    codec: str = video.DEFAULT_CODEC  # "x264" (the release's) or "mp4v"


@dataclasses.dataclass
class Task:
    """One image and the videos still to write for it (picklable)."""

    wnid: str
    filename: str
    path: str | None  # an image file, or
    data: bytes | None  # its encoded bytes (TFRecord input)
    seed: int
    jobs: list  # (perturbation, difficulty, output path)
    resize: int
    crop: int
    crop_rounding: str = "round"
    codec: str = video.DEFAULT_CODEC


# --------------------------------------------------------------------------
# Options.


def resolve_perturbations(perturbations, set_name):
    """The perturbations to generate, in the order given, without repeats."""
    if set_name not in SETS:
        raise ValueError(f"--set must be one of {SETS}; received {set_name}.")
    if not perturbations:
        return {
            "test": P.TEST_PERTURBATIONS,
            "validation": P.VALIDATION_PERTURBATIONS,
            "all": P.PERTURBATIONS,
        }[set_name]
    if isinstance(perturbations, str):
        perturbations = perturbations.split(",")
    names = tuple(dict.fromkeys(p.strip() for p in perturbations if p.strip()))
    bad = [name for name in names if name not in P.PERTURBATIONS]
    if bad or not names:
        raise ValueError(
            f"--perturbations={','.join(perturbations)}: unknown "
            f"{', '.join(bad) or '(empty)'}. Valid: "
            f"{', '.join(P.PERTURBATIONS)}."
        )
    return names


def check_options(options):
    """Validates `options`; returns the perturbation names."""
    o = options
    if bool(o.input_dir) == bool(o.tfrecord_pattern):
        raise ValueError(
            "Give exactly one of --input_dir (class folders of images) and "
            "--tfrecord_pattern (validation TFRecords)."
        )
    if not o.output_dir:
        raise ValueError("--output_dir is required.")
    if o.input_dir and not os.path.isdir(o.input_dir):
        raise FileNotFoundError(
            f"--input_dir={o.input_dir} is not a directory; point it at the "
            f"validation folder holding <wnid>/<file>.JPEG."
        )
    video.check_codec(o.codec)  # a bad name, or x264 without its ffmpeg
    inputs.resolve_crop_rounding(o.crop_rounding, o.crop)
    if o.crop < 2 or (o.codec == "mp4v" and o.crop % 2):
        raise ValueError(
            f"--crop={o.crop}: the crop side must be >= 2, and even with "
            f"--codec=mp4v (it stores 4:2:0 video), e.g. --crop=224."
        )
    if o.resize < o.crop:
        raise ValueError(
            f"--resize={o.resize} is smaller than --crop={o.crop}; the "
            f"shorter side must be at least the crop (e.g. 256 and 224)."
        )
    if o.difficulty not in (1, 2, 3):
        raise ValueError(f"--difficulty={o.difficulty}: use 1, 2 or 3.")
    if o.seed < 0:
        raise ValueError(f"--seed={o.seed}: use a seed >= 0.")
    if o.workers < 1:
        raise ValueError(f"--workers={o.workers}: use 1 or more.")
    if o.limit < 0:
        raise ValueError(f"--limit={o.limit}: use 0 (all) or more.")
    names = resolve_perturbations(o.perturbations, o.set)
    if o.difficulty > 1 and not set(names) & set(P.NOISE_PERTURBATIONS):
        raise ValueError(
            f"--difficulty={o.difficulty} applies to "
            f"{', '.join(P.NOISE_PERTURBATIONS)} only, and none is in "
            f"--perturbations ({','.join(names)})."
        )
    return names


def folders(names, difficulty):
    """`[(perturbation, difficulty, folder)]`: the noise ones at
    `difficulty`, the others at 1."""
    out = []
    for name in names:
        level = difficulty if name in P.NOISE_PERTURBATIONS else 1
        out.append((name, level, P.folder_name(name, level)))
    return out


def image_seed(seed, wnid, filename):
    """The seed of one image's perturbations, from --seed and its name."""
    text = f"{int(seed)}:{wnid}/{filename}".encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "big")


def _stem(filename):
    return os.path.splitext(os.path.basename(filename))[0]


# --------------------------------------------------------------------------
# Images.


def load_image(path=None, data=None):
    """Decodes an image file (or its bytes) to an RGB PIL image."""
    image = Image.open(path if data is None else io.BytesIO(data))
    image.load()
    return image.convert("RGB")


def process_image(task):
    """Writes the videos of one image; returns what happened."""
    start = time.perf_counter()
    try:
        image = load_image(task.path, task.data)
    except Exception as e:  # noqa: BLE001 - any decoder failure skips
        return {"unreadable": f"{type(e).__name__}: {e}"}
    pixels = np.asarray(inputs.resize_shorter_side(image, task.resize))
    written = []
    for name, difficulty, path in task.jobs:
        frames = P.sequence(
            pixels,
            name,
            task.seed,
            difficulty,
            crop_size=task.crop,
            crop_rounding=task.crop_rounding,
        )
        os.makedirs(os.path.dirname(path), exist_ok=True)
        video.write_video(
            path,
            frames,
            codec=task.codec,
            noise=name in P.NOISE_PERTURBATIONS,
        )
        written.append(path)
    return {"written": written, "seconds": time.perf_counter() - start}


# --------------------------------------------------------------------------
# Inputs: (wnid, filename, path, record index).


def list_folder(input_dir):
    """Sorted `(wnid, filename, path)` of `input_dir/<wnid>/<file>`."""
    return inputs.list_image_folder(input_dir)


def list_tfrecords(pattern):
    """`(wnid, filename, None)` of every record, in file order."""
    files = inputs.tfrecord_files(pattern)
    entries = []
    for index, (synset, filename) in enumerate(
        inputs.read_records(files, (schema.SYNSET, schema.FILENAME))
    ):
        wnid, name = synset.decode(), filename.decode()
        if not wnid or not name:
            raise ValueError(
                f"--tfrecord_pattern={pattern}: record {index} has no "
                f"{schema.SYNSET if not wnid else schema.FILENAME}; the "
                f"output layout <wnid>/<stem>.mp4 needs both (build the "
                f"records with tools.build_imagenet_tfrecords)."
            )
        entries.append((wnid, name, None))
    if not entries:
        raise ValueError(f"--tfrecord_pattern={pattern} holds no record.")
    return entries


def _record_bytes(pattern, wanted):
    """Yields `(index, encoded)` for the record indices in `wanted`."""
    files = inputs.tfrecord_files(pattern)
    for index, (encoded,) in enumerate(
        inputs.read_records(files, (schema.IMAGE,))
    ):
        if index in wanted:
            yield index, encoded


# --------------------------------------------------------------------------
# The output folder.


def _recorded_options(options):
    """The options that change a video's content (options.json)."""
    source = "input_dir" if options.input_dir else "tfrecord_pattern"
    value = options.input_dir or options.tfrecord_pattern
    if source == "input_dir":
        value = os.path.abspath(value)
    return {
        "format_version": FORMAT_VERSION,
        "resize": int(options.resize),
        "crop": int(options.crop),
        "crop_rounding": inputs.resolve_crop_rounding(
            options.crop_rounding, options.crop
        ),
        "seed": int(options.seed),
        "input": f"--{source}={value}",
        "codec": options.codec,
        "codec_settings": video.codec_settings(options.codec),
        "fps": video.DEFAULT_FPS,
    }


def prepare_output(options):
    """Creates `output_dir` or checks that its videos used these options.

    Raises:
        OutputMismatchError: `output_dir` holds videos of other options.
    """
    file_utils.claim_output_dir(
        options.output_dir,
        _recorded_options(options),
        labels={
            "input": "input",
            "format_version": "format_version",
            "codec": "--codec",
            "codec_settings": "codec settings",
            "fps": "fps",
        },
        what="videos",
        stray=os.path.join("*", "*", "*.mp4"),
    )


def _remove_stale_temps(out, folder_names):
    removed = 0
    for folder in folder_names:
        for path in glob.glob(os.path.join(out, folder, "*", ".*.tmp.mp4")):
            os.remove(path)
            removed += 1
    return removed


# --------------------------------------------------------------------------
# The run.


def generate(options):
    """Generates (or resumes) the videos of `options`; returns the summary.

    Args:
        options: an `Options`.

    Returns:
        The summary dict also written to `output_dir/summary.json`.

    Raises:
        ValueError, FileNotFoundError: bad flags or inputs (the message
            names the flag and the fix).
        FileExistsError: `output_dir` holds videos of other options.
    """
    start = time.time()
    names = check_options(options)
    jobs = folders(names, options.difficulty)
    if options.input_dir:
        entries = list_folder(options.input_dir)
    else:
        entries = list_tfrecords(options.tfrecord_pattern)
    total_inputs = len(entries)
    indexed = list(enumerate(entries))
    if options.limit:
        indexed = indexed[: options.limit]
    seen = {}
    for _, (wnid, filename, _) in indexed:
        key = (wnid, _stem(filename))
        if key in seen:
            raise ValueError(
                f"{wnid}/{seen[key]} and {wnid}/{filename} would both be "
                f"written to <perturbation>/{wnid}/{key[1]}.mp4; rename or "
                f"remove one of them."
            )
        seen[key] = filename
    prepare_output(options)
    out = options.output_dir
    stale = _remove_stale_temps(out, [folder for _, _, folder in jobs])

    kept = collections.Counter()
    tasks = []  # (record index, Task)
    for index, (wnid, filename, path) in indexed:
        todo = []
        for name, difficulty, folder in jobs:
            target = os.path.join(out, folder, wnid, _stem(filename) + ".mp4")
            if os.path.isfile(target):
                kept[folder] += 1
            else:
                todo.append((name, difficulty, target))
        if todo:
            task = Task(
                wnid=wnid,
                filename=filename,
                path=path,
                data=None,
                seed=image_seed(options.seed, wnid, filename),
                jobs=todo,
                resize=int(options.resize),
                crop=int(options.crop),
                crop_rounding=inputs.resolve_crop_rounding(
                    options.crop_rounding, options.crop
                ),
                codec=options.codec,
            )
            tasks.append((index, task))

    results = _run(tasks, options)
    written = collections.Counter()
    unreadable, seconds = [], []
    for task, result in results:
        if "unreadable" in result:
            unreadable.append(
                {
                    "file": f"{task.wnid}/{task.filename}",
                    "reason": result["unreadable"],
                }
            )
            continue
        seconds.append(result["seconds"] / max(1, len(result["written"])))
        for name, difficulty, _ in task.jobs:
            written[P.folder_name(name, difficulty)] += 1
    summary = {
        "output_dir": out,
        "source": {
            "input_dir": options.input_dir,
            "tfrecord_pattern": options.tfrecord_pattern,
        },
        "resize": int(options.resize),
        "crop": int(options.crop),
        "seed": int(options.seed),
        "difficulty": int(options.difficulty),
        "images_found": total_inputs,
        "images_selected": len(indexed),
        "images_processed": len(tasks) - len(unreadable),
        "perturbations": {
            folder: {
                "frames": P.FRAME_COUNTS[name],
                "written": written[folder],
                "kept": kept[folder],
                "videos": written[folder] + kept[folder],
            }
            for name, _, folder in jobs
        },
        "unreadable": sorted(unreadable, key=lambda u: u["file"]),
        "stale_temp_files_removed": stale,
        "seconds_per_video": round(sum(seconds) / len(seconds), 4)
        if seconds
        else None,
        "elapsed_s": round(time.time() - start, 2),
    }
    summary["complete"] = not unreadable and all(
        p["videos"] == len(indexed) for p in summary["perturbations"].values()
    )
    file_utils.atomic_write(
        os.path.join(out, SUMMARY), json.dumps(summary, indent=1)
    )
    return summary


def _with_bytes(tasks, options):
    """Fills `Task.data` from the TFRecords, streaming, in record order."""
    if not options.tfrecord_pattern:
        yield from tasks
        return
    by_index = dict(tasks)
    if not by_index:
        return
    for index, encoded in _record_bytes(options.tfrecord_pattern, by_index):
        task = by_index.pop(index)
        task.data = encoded
        yield index, task
        if not by_index:
            return  # the rest of the records are done already


def _run(tasks, options):
    """Runs the tasks in-process or on spawned workers; returns
    `[(task, result)]` in input order."""
    results = {}
    with tqdm(
        total=len(tasks),
        unit="img",
        desc="images",
        disable=not options.progress,
    ) as bar:
        for (index, task), result in worker_pool.imap_bounded(
            _process_indexed,
            _with_bytes(tasks, options),
            min(options.workers, len(tasks)),
            initializer=worker_pool.init_image_worker,
        ):
            task.data = None
            results[index] = (task, result)
            bar.update(1)
    return [results[index] for index in sorted(results)]


def _process_indexed(item):
    return process_image(item[1])


def format_summary(summary):
    """The summary as a few readable lines."""
    lines = [
        f"Wrote ImageNet-P videos to {summary['output_dir']} (resize "
        f"{summary['resize']}, crop {summary['crop']}, seed "
        f"{summary['seed']}): {summary['images_processed']} images processed"
        f" of {summary['images_selected']} selected "
        f"({summary['images_found']} found)"
    ]
    for folder, p in summary["perturbations"].items():
        lines.append(
            f"  {folder}: {p['videos']} videos of {p['frames']} frames "
            f"({p['written']} written, {p['kept']} kept from an earlier run)"
        )
    if summary["seconds_per_video"] is not None:
        lines.append(
            f"  {summary['seconds_per_video']:.3f} s per video, "
            f"{summary['elapsed_s']:.1f} s in all"
        )
    if summary["stale_temp_files_removed"]:
        lines.append(
            f"  removed {summary['stale_temp_files_removed']} unfinished "
            f"temporary files of an interrupted run"
        )
    for u in summary["unreadable"][:_MAX_LISTED]:
        lines.append(f"  unreadable {u['file']}: {u['reason']}")
    if len(summary["unreadable"]) > _MAX_LISTED:
        lines.append(
            f"  ... {len(summary['unreadable']) - _MAX_LISTED} more "
            f"unreadable files in {SUMMARY}"
        )
    if not summary["complete"]:
        lines.append("  [INCOMPLETE: see the unreadable files above]")
    return "\n".join(lines)

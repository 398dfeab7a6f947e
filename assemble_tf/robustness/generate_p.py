"""Generates ImageNet-P perturbation videos from ImageNet validation images.

Follows hendrycks/robustness `ImageNet-P/create_p/make_imagenet_p.py`
(Hendrycks & Dietterich, ICLR 2019, arXiv 1903.12261): every image is
resized in its own colour mode and then converted to RGB (the reference's
order; a CMYK JPEG is resized as CMYK) with PIL bilinear, shorter side
`resize`, long side int(resize * long / short), perturbed into a sequence
(`assemble_tf.robustness.perturbations.sequence`, geometric perturbations
before the centre crop of `crop`, offset rounded as `crop_rounding`
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
encoded with libx264 and the release's ffmpeg options (`video`, codec
`x264`); codec `mp4v` is a less faithful OpenCV fallback.
`options.json` records the options that change a video's content (resize,
crop, seed, the input, the codec); a later run into the same folder with
other values is refused.
The perturbations, set, difficulty, limit and workers may differ between
runs (they choose which videos to write). The run ends with a summary, also
saved as `summary.json`.
"""

import collections
import dataclasses
import hashlib
import io
import os
import time

import numpy as np
from PIL import Image

from assemble_tf.data import schema
from assemble_tf.data.builder import images
from assemble_tf.robustness import inputs, video
from assemble_tf.robustness import perturbations as P
from official.utils.misc import jobs, worker_pool
from official.utils.misc.jobs import MissingPathError
from official.utils.misc.validation import (
    OptionError,
    check_at_least,
    split_names,
)

SUMMARY = jobs.SUMMARY_FILE
# 2: the input as one key; 3: codec replaces fourcc; 4: the reference's
# affine centre, clipped_zoom and crop rounding (crop_rounding recorded);
# 5: brightness and scale as the reference's floats, resize before RGB.
FORMAT_VERSION = 5
SETS = ("test", "validation", "all")
_MAX_LISTED = 20
_OUTPUT = jobs.OutputRecord(
    what="videos",
    format_version=FORMAT_VERSION,
    job="tools.make_imagenet_p",
    stray=(os.path.join("*", "*", "*.mp4"),),
    labels={"input": "input", "codec_settings": "codec settings", "fps": "fps"},
)


@dataclasses.dataclass(frozen=True)
class Options(jobs.JobOptions):
    """Everything a run needs; field names are the binary's flag names."""

    output_dir: str
    input_dir: str | None = None
    tfrecord_pattern: str | None = None
    resize: int = 256
    crop: int = 224
    crop_rounding: str = "auto"  # inputs.CROP_ROUNDINGS
    perturbations: str | tuple | None = None
    set: str | None = None  # SETS; "test" unless perturbations are named
    difficulty: int = 1
    seed: int = 0
    workers: int = 1
    limit: int = 0
    progress: bool = True
    codec: str = video.DEFAULT_CODEC  # "x264" (the release's) or "mp4v"

    def validate(self):
        """Raises `OptionError` naming the first missing or bad option
        (`video.check_codec`'s ValueError for the codec)."""
        inputs.check_source(
            self.input_dir, self.tfrecord_pattern, self.output_dir
        )
        jobs.require(self, "output_dir")
        if self.input_dir and not os.path.isdir(self.input_dir):
            raise MissingPathError(
                "input_dir",
                "{field}={value} is not a directory; point it at the "
                "validation folder holding <wnid>/<file>.JPEG.",
                value=self.input_dir,
            )
        video.check_codec(self.codec)  # a bad name, or x264 without ffmpeg
        inputs.resolve_crop_rounding(self.crop_rounding, self.crop)
        self._validate_sizes()
        check_at_least(self, {"seed": 0, "workers": 1, "limit": 0})
        self.perturbation_names()

    def _validate_sizes(self):
        """The crop (even for mp4v's 4:2:0) and the resize around it."""
        if self.crop < 2 or (self.codec == "mp4v" and self.crop % 2):
            raise OptionError(
                "crop",
                "{field}={value}: the crop side must be >= 2, and even with "
                "{codec}=mp4v (it stores 4:2:0 video), e.g. {field}=224.",
                others=("codec",),
                value=self.crop,
            )
        if self.resize < self.crop:
            raise OptionError(
                "resize",
                "{field}={value} is smaller than {crop}={crop_value}; the "
                "shorter side must be at least the crop (e.g. 256 and 224).",
                others=("crop",),
                value=self.resize,
                crop_value=self.crop,
            )

    def perturbation_names(self):
        """The perturbations to generate (checked with the difficulty)."""
        names = resolve_perturbations(self.perturbations, self.set)
        if self.difficulty not in (1, 2, 3):
            raise OptionError(
                "difficulty",
                "{field}={value}: use 1, 2 or 3.",
                value=self.difficulty,
            )
        if self.difficulty > 1 and not set(names) & set(P.NOISE_PERTURBATIONS):
            raise OptionError(
                "difficulty",
                "{field}={value} applies to {noise} only, and none is in "
                "{perturbations} ({names}).",
                others=("perturbations",),
                value=self.difficulty,
                noise=", ".join(P.NOISE_PERTURBATIONS),
                names=",".join(names),
            )
        return names

    def warnings(self):
        """A crop other than the benchmark's 224: no reference set exists
        at another size (the Assemble models' 256 included); input files
        left out; an output folder made from another input."""
        warning = inputs.crop_warning(self.crop, "ImageNet-P perturbation")
        # (Another input is refused, not warned about: options.json.)
        left_out = inputs.left_out_warning(self.input_dir)
        return tuple(w for w in (warning, left_out) if w)


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
    """The perturbations to generate, in the order given (a repeat or an
    empty name is refused: `split_names`), else those of `set_name`
    ("test" when None); a set beside named perturbations is refused, as it
    would choose nothing."""
    perturbations = split_names("perturbations", perturbations)
    if set_name is not None and perturbations:
        raise OptionError(
            "set",
            "{field}={value} chooses the perturbations only when "
            "{perturbations} does not name them; give one of the two.",
            others=("perturbations",),
            value=set_name,
        )
    set_name = "test" if set_name is None else set_name
    if set_name not in SETS:
        raise OptionError(
            "set",
            "{field} must be one of {sets}; received {value}.",
            sets=SETS,
            value=set_name,
        )
    if not perturbations:
        return {
            "test": P.TEST_PERTURBATIONS,
            "validation": P.VALIDATION_PERTURBATIONS,
            "all": P.PERTURBATIONS,
        }[set_name]
    bad = [name for name in perturbations if name not in P.PERTURBATIONS]
    if bad:
        raise OptionError(
            "perturbations",
            "{field}={value}: unknown {bad}. Valid: {valid}.",
            value=",".join(perturbations),
            bad=", ".join(bad),
            valid=", ".join(P.PERTURBATIONS),
        )
    return perturbations


def folders(names, difficulty):
    """`[(perturbation, difficulty, folder)]`: the noise ones at
    `difficulty`, the others at 1."""
    out = []
    for name in names:
        level = difficulty if name in P.NOISE_PERTURBATIONS else 1
        out.append((name, level, P.folder_name(name, level)))
    return out


def image_seed(seed, wnid, filename):
    """The seed of one image's perturbations, from `seed` and its name."""
    text = f"{int(seed)}:{wnid}/{filename}".encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "big")


def _stem(filename):
    return os.path.splitext(os.path.basename(filename))[0]


# --------------------------------------------------------------------------
# Images.


def load_image(path=None, data=None):
    """Decodes an image file (or its bytes) to an RGB PIL image
    (transparency onto white, as the TFRecord builder stores it)."""
    image = Image.open(path if data is None else io.BytesIO(data))
    image.load()
    return images.flatten_alpha(image).convert("RGB")


def load_resized(size, path=None, data=None):
    """Decodes an image and resizes its shorter side to `size`, then
    converts it to RGB: the reference's `Resize(256)(Image.open(f))
    .convert('RGB')` order, which matters for CMYK (and palette) files:
    they are resized in their own mode, before the conversion. 16-bit and
    float images are scaled to 8 bits first (`images.eight_bit`; Pillow's
    conversion, as the reference's, clips them white), and transparency is
    composed onto white, as the TFRecord builder stores it.

    Returns:
      uint8 array [H, W, 3].
    """
    image = Image.open(path if data is None else io.BytesIO(data))
    image.load()
    image = images.eight_bit(images.flatten_alpha(image))
    return np.asarray(inputs.resize_shorter_side(image, size).convert("RGB"))


def process_image(task):
    """Writes the videos of one image; returns what happened."""
    start = time.perf_counter()
    try:
        pixels = load_resized(task.resize, task.path, task.data)
    except Exception as e:  # noqa: BLE001 - any decoder failure skips
        return {"unreadable": f"{type(e).__name__}: {inputs.decode_error(e)}"}
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
        wnid, name, problem = inputs.record_names(synset, filename)
        if problem:
            raise OptionError(
                "tfrecord_pattern",
                "{field}={value}: record {index}: {problem}; the output "
                "layout <wnid>/<stem>.mp4 needs a synset and a file name "
                "(build the records with tools.build_imagenet_tfrecords).",
                value=pattern,
                index=index,
                problem=problem,
            )
        entries.append((wnid, name, None))
    if not entries:
        raise OptionError(
            "tfrecord_pattern",
            "{field}={value} holds no record.",
            value=pattern,
        )
    return entries


def _record_bytes(pattern, wanted):
    """Yields `(index, encoded)` for the record indices in `wanted`."""
    files = inputs.tfrecord_files(pattern)
    for index, (encoded,) in enumerate(
        inputs.read_records(files, (schema.IMAGE,))
    ):
        if index in wanted:
            yield index, encoded


def _select(options):
    """`(images found, [(record index, (wnid, filename, path))])` of the
    run; two files that would share one video name are an error."""
    if options.input_dir:
        entries = list_folder(options.input_dir)
    else:
        entries = list_tfrecords(options.tfrecord_pattern)
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
    return len(entries), indexed


# --------------------------------------------------------------------------
# The output folder.


def _recorded_options(options):
    """The options that change a video's content (options.json)."""
    # Absolute, the pattern too (before: "validation-*" as typed, which
    # any other folder's records matched on a rerun from there).
    ((source, value),) = inputs.input_record(options).items()
    return {
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
    jobs.claim_output_dir(
        options.output_dir, _recorded_options(options), _OUTPUT
    )


# --------------------------------------------------------------------------
# The run.


def generate(options):
    """Generates (or resumes) the videos of `options`; returns the summary.

    Args:
        options: an `Options`.

    Returns:
        The summary dict also written to `output_dir/summary.json`.

    Raises:
        OptionError (a ValueError; MissingPathError, a FileNotFoundError,
            for a missing input): a bad option, named.
        OutputMismatchError (a FileExistsError): `output_dir` holds videos
            of other options.
        NothingWrittenError (a ValueError): every input failed (after the
            summary is written).
    """
    start = time.time()
    options.validate()
    targets = folders(options.perturbation_names(), options.difficulty)
    found, indexed = _select(options)
    prepare_output(options)
    # Until the summary is written again, the set is unfinished (read as
    # such by tools.eval_robustness: a kill between two files left a
    # set that evaluated as whole).
    jobs.begin_summary(options.output_dir)
    stale = jobs.remove_stale_temporaries(
        options.output_dir,
        [folder for _, _, folder in targets],
        video.TEMP_GLOB,
    )
    tasks, kept = _plan(indexed, targets, options)
    written, unreadable, seconds = _tally(_run(tasks, options))
    summary = {
        "output_dir": options.output_dir,
        "source": {
            "input_dir": options.input_dir,
            "tfrecord_pattern": options.tfrecord_pattern,
        },
        "resize": int(options.resize),
        "crop": int(options.crop),
        "seed": int(options.seed),
        "difficulty": int(options.difficulty),
        "images_found": found,
        "images_selected": len(indexed),
        "images_processed": len(tasks) - len(unreadable),
        "perturbations": {
            folder: {
                "frames": P.FRAME_COUNTS[name],
                "written": written[folder],
                "kept": kept[folder],
                "videos": written[folder] + kept[folder],
            }
            for name, _, folder in targets
        },
        "unreadable": sorted(unreadable, key=lambda u: u["file"]),
        "in_folder": folders_in(options.output_dir),
        "stale_temp_files_removed": stale,
        "seconds_per_video": round(sum(seconds) / len(seconds), 4)
        if seconds
        else None,
        "elapsed_s": round(time.time() - start, 2),
    }
    summary["complete"] = not unreadable and all(
        p["videos"] == len(indexed) for p in summary["perturbations"].values()
    )
    jobs.write_summary(options.output_dir, summary)
    videos = sum(p["videos"] for p in summary["perturbations"].values())
    if unreadable and not videos:  # it exited 0 with nothing written
        first = summary["unreadable"][0]
        raise jobs.NothingWrittenError(
            f"No video was written: all {len(unreadable):,} inputs failed "
            f"(first: {first['file']}: {first['reason']}; every failure in "
            f"{jobs.summary_path(options.output_dir)})."
        )
    return summary


def _plan(indexed, targets, options):
    """`([(record index, Task)], {folder: videos already there})`: the
    images with videos still to write, and the finished ones."""
    kept = collections.Counter()
    tasks = []
    for index, (wnid, filename, path) in indexed:
        todo = []
        for name, difficulty, folder in targets:
            target = os.path.join(
                options.output_dir, folder, wnid, _stem(filename) + ".mp4"
            )
            if os.path.isfile(target) and os.path.getsize(target):
                kept[folder] += 1  # (an empty file is written again)
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
    return tasks, kept


def _tally(results):
    """`({folder: videos written}, [unreadable], [seconds per video])`."""
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
    return written, unreadable, seconds


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
    for (index, task), result in jobs.run_tasks(
        _process_indexed,
        _with_bytes(tasks, options),
        min(options.workers, len(tasks)),
        total=len(tasks),
        progress=options.progress,
        initializer=worker_pool.init_image_worker,
    ):
        task.data = None
        results[index] = (task, result)
    return [results[index] for index in sorted(results)]


def _process_indexed(item):
    return process_image(item[1])


def folders_in(output_dir):
    """The perturbation folders in `output_dir` (`gaussian_noise`,
    `gaussian_noise_2`, ...), this run's and earlier ones' (before,
    summary.json described the last run alone)."""
    names = {
        P.folder_name(name, level)
        for name in P.PERTURBATIONS
        for level in P.DIFFICULTIES
        if level == 1 or name in P.NOISE_PERTURBATIONS
    }
    return sorted(
        d
        for d in os.listdir(output_dir)
        if d in names and os.path.isdir(os.path.join(output_dir, d))
    )


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
    lines += jobs.format_problems(
        summary["unreadable"],
        lambda u: f"unreadable {u['file']}: {u['reason']}",
        limit=_MAX_LISTED,
        noun="unreadable files",
    )
    held = summary.get("in_folder") or []
    lines.append(
        f"  in the folder, with earlier runs: {len(held)} perturbations"
        + (f" ({', '.join(held)})" if held else "")
    )
    if not summary["complete"]:
        lines.append("  [INCOMPLETE: see the unreadable files above]")
    return "\n".join(lines)


JOB = jobs.Job(Options, generate, format_summary)

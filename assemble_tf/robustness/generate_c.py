"""Regenerates ImageNet-C (19 corruptions x 5 severities) from validation data.

Hendrycks & Dietterich (ICLR 2019, github.com/hendrycks/robustness) build
ImageNet-C by resizing every validation image (shorter side 256, PIL
bilinear), centre-cropping 224 and applying each corruption at severities
1-5; Assemble-ResNet (Lee et al., arXiv 2001.06268, clovaai/assembled-cnn
`datasets/CE_dataset/CE_validation_generator.py`) does the same with 292 ->
256 for its 256-px models and evaluates mCE over all 19 corruptions. The
corruptions are `assemble_tf.robustness.corruptions` (frost blends the
release's photos from the `imagecorruptions` wheel, synthetic textures
without it; see there). `tools.make_imagenet_c` is the binary.

Input: a folder in ImageNet val layout `<wnid>/<file>.JPEG`, or our
validation TFRecords (image/encoded, image/class/synset, image/filename).
Output, as the reference: `<output_dir>/<corruption>/<severity>/<wnid>/<file
stem>.JPEG`, JPEG quality 85 (optimize). Each file is written to a hidden
temp file and renamed, so an interrupted run resumes: existing files are
skipped and counted. The options that change pixels (resize, crop, the
crop offset's rounding, seed, JPEG quality, the frost source, the format
version) are kept
in `options.json`; a run with other values in the
same folder is refused. The corruptions / severities / limit only select
which files to write. The random draws of one image depend on the seed and
its file name only, not on the worker count. A summary (counts, failures
with reasons, seconds, options) is written to `summary.json`.
"""

import collections
import dataclasses
import functools
import hashlib
import io
import os
import time

import numpy as np
from PIL import Image

from assemble_tf.data import schema
from assemble_tf.robustness import corruptions, filters, inputs
from official.utils.misc import file_utils, jobs, worker_pool
from official.utils.misc.validation import OptionError, split_names

JPEG_QUALITY = 85
# 2: the reference's clipped_zoom, glass-blur loop and crop rounding; 3:
# the release's frost photos, float64 defocus / contrast / HSV, elastic by
# map_coordinates, the Assemble generator's long side at floor rounding.
FORMAT_VERSION = 3
SUMMARY_FILE = jobs.SUMMARY_FILE
_MAX_LISTED_FAILURES = 1000
_OUTPUT = jobs.OutputRecord(
    what="a set",
    format_version=FORMAT_VERSION,
    job="tools.make_imagenet_c",
    noted=("input",),  # another input is warned about (`warnings`)
)


@dataclasses.dataclass(frozen=True)
class Options(jobs.JobOptions):
    """What `generate` needs; field names are `tools.make_imagenet_c`'s
    flags (`jpeg_quality` has none).

    `corruptions` and `severities` may be given as comma-separated text
    (the flags'); they are kept as tuples, all 19 corruptions when empty.
    """

    output_dir: str
    input_dir: str | None = None
    tfrecord_pattern: str | None = None
    resize: int = 256
    crop: int = 224
    crop_rounding: str = "auto"  # inputs.CROP_ROUNDINGS
    corruptions: tuple = ()  # empty = all 19
    severities: tuple = (1, 2, 3, 4, 5)
    seed: int = 0
    workers: int = 1
    limit: int = 0
    jpeg_quality: int = JPEG_QUALITY
    progress: bool = True

    def __post_init__(self):
        set_ = functools.partial(object.__setattr__, self)
        set_("corruptions", parse_corruptions(self.corruptions))
        set_("severities", parse_severities(self.severities))

    def validate(self):
        """Raises `OptionError` naming the first missing or bad option."""
        inputs.check_source(
            self.input_dir, self.tfrecord_pattern, self.output_dir
        )
        jobs.require(self, "output_dir")
        if self.resize < self.crop:
            raise OptionError(
                "resize",
                "{field}={resize} must be >= {crop}={crop_value} (the crop "
                "is taken from the resized image), e.g. {field}=256 "
                "{crop}=224 or {field}=292 {crop}=256.",
                others=("crop",),
                resize=self.resize,
                crop_value=self.crop,
            )
        inputs.resolve_crop_rounding(self.crop_rounding, self.crop)

    def warnings(self):
        """A crop other than the benchmark's 224 or the Assemble models'
        256 (their set: 292 -> 256, the 224 constants), input files left
        out, and an output folder made from another input."""
        warning = inputs.crop_warning(
            self.crop,
            "ImageNet-C corruption",
            allowed=(inputs.BENCHMARK_CROP, 256),
            size_note="; 256 is the Assemble models' set",
        )
        left_out = inputs.left_out_warning(self.input_dir)
        other = inputs.other_input_warning(self, "options")
        return tuple(w for w in (warning, left_out, other) if w)

    def pixel_options(self):
        """The options that change the written pixels (options.json)."""
        return {
            "format_version": FORMAT_VERSION,
            "resize": self.resize,
            "crop": self.crop,
            "crop_rounding": inputs.resolve_crop_rounding(
                self.crop_rounding, self.crop
            ),
            "seed": self.seed,
            "jpeg_quality": self.jpeg_quality,
            "frost": frost_source(),
        }


def frost_source():
    """ "release photos" (the imagecorruptions wheel's frost1-5) or
    "synthetic textures" (the fallback without it)."""
    if filters.frost_photo_dir() is None:
        return "synthetic textures"
    return "release photos"


# --------------------------------------------------------------- options


def parse_corruptions(names):
    """'a,b' or ('a', 'b') -> ('a', 'b'); empty -> all 19; unknown names or
    repeats are an error."""
    names = split_names("corruptions", names)
    if not names:
        return corruptions.CORRUPTIONS
    bad = [n for n in names if n not in corruptions.CORRUPTIONS]
    if bad:
        raise OptionError(
            "corruptions",
            "{field}: unknown {bad}. Valid names: {valid}.",
            bad=", ".join(map(repr, bad)),
            valid=", ".join(corruptions.CORRUPTIONS),
        )
    return names


def parse_severities(values):
    """'1,3' or (1, 3) -> (1, 3); values outside 1..5 or repeats are an
    error."""
    text = values if isinstance(values, str) else ",".join(map(str, values))
    try:
        # "1,,2" is an error (a value was left out), as "1,a".
        values = tuple(int(v) for v in text.split(",")) if text else ()
    except ValueError:
        raise OptionError(
            "severities",
            "{field} takes comma-separated integers, e.g. 1,3,5. "
            "Received: {field}={value}",
            value=text,
        ) from None
    if not values or any(v not in range(1, 6) for v in values):
        raise OptionError(
            "severities",
            "{field} takes integers in 1..5, e.g. 1,2,3,4,5. "
            "Received: {field}={value}",
            value=text,
        )
    if len(set(values)) != len(values):
        raise OptionError(
            "severities", "{field} lists a value twice: {value}", value=text
        )
    return values


def options_from_values(values):
    """The validated `Options` of the binary's flag values (any object with
    its flag names as attributes)."""
    return Options.from_flags(values)


def prepare_output(options):
    """Creates output_dir with options.json, or checks the existing one."""
    record = dict(options.pixel_options())
    del record["format_version"]  # the claim adds it
    record["input"] = inputs.input_record(options)
    jobs.claim_output_dir(options.output_dir, record, _OUTPUT)


# --------------------------------------------------------------- sources


@dataclasses.dataclass(frozen=True)
class Task:
    """One validation image: where it comes from and where it goes."""

    wnid: str
    filename: str  # original name, e.g. ILSVRC2012_val_00000001.JPEG
    path: str | None = None  # from `input_dir`
    data: bytes | None = None  # from `tfrecord_pattern`
    problem: str | None = None  # why a record's names are not usable

    @property
    def key(self):
        return f"{self.wnid}/{self.filename}"

    @property
    def output_key(self):
        """wnid/output file name: what the task writes (once per set)."""
        return f"{self.wnid}/{output_name(self.filename)}"


def image_seed(seed, filename):
    """Per-image seed from `seed` and the file name (worker-independent)."""
    digest = hashlib.sha256(f"{seed}/{filename}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def output_name(filename):
    """The original file name with a .JPEG extension."""
    return os.path.splitext(os.path.basename(filename))[0] + ".JPEG"


def list_input_dir(input_dir):
    """Sorted `Task`s of <wnid>/<image> files; errors explain the layout.

    Raises:
        ValueError: two files would be written to one output file (a.jpg
            and a.png both give a.JPEG), as `tools.make_imagenet_p`.
    """
    tasks, seen = [], {}
    for wnid, name, path in inputs.list_image_folder(input_dir):
        task = Task(wnid, name, path=path)
        if task.output_key in seen:
            raise ValueError(
                f"{seen[task.output_key]} and {task.key} would both be "
                f"written to <corruption>/<severity>/{task.output_key}; "
                "rename or remove one of them."
            )
        seen[task.output_key] = task.key
        tasks.append(task)
    return tasks


def iter_tfrecords(pattern, limit=0):
    """`Task`s (with the encoded bytes) from validation TFRecords, lazily.

    The files are globbed now (an empty match is an error); the records are
    read as the returned generator is consumed.
    """
    return _read_records(inputs.tfrecord_files(pattern), limit)


def _read_records(files, limit):
    keys = (schema.SYNSET, schema.FILENAME, schema.IMAGE)
    for count, (synset, filename, data) in enumerate(
        inputs.read_records(files, keys), 1
    ):
        wnid, name, problem = inputs.record_names(synset, filename)
        yield Task(
            wnid=wnid,
            filename=name,
            data=data,
            problem=problem and f"record {count - 1}: {problem}",
        )
        if limit and count >= limit:
            return


# --------------------------------------------------------------- work


def process(task, options):
    """Writes the missing outputs of one image; returns a result dict."""
    result = {"written": 0, "skipped": 0, "failures": []}
    if task.problem or not task.wnid or not task.filename:
        result["failures"].append(
            {
                "file": task.key,
                "reason": task.problem or "no synset or no file name",
            }
        )
        return result
    targets = _targets(task, options, result)
    if not targets:
        return result
    try:
        source = task.path if task.path else io.BytesIO(task.data)
        with Image.open(source) as pil:
            pil.load()
            clean = corruptions.resize_center_crop(
                pil, options.resize, options.crop, options.crop_rounding
            )
    except Image.DecompressionBombError as e:
        # Not an OSError: it stopped the whole run with a traceback, and
        # every rerun again (the builder and make_imagenet_p skip it).
        result["failures"].append(
            {"file": task.key, "reason": f"too large: {e}"}
        )
        return result
    except (OSError, ValueError, SyntaxError) as e:
        result["failures"].append(
            {
                "file": task.key,
                "reason": f"cannot decode: {inputs.decode_error(e)}",
            }
        )
        return result
    seed = image_seed(options.seed, task.filename)
    for name, severity, folder, path in targets:
        try:
            image = corruptions.corrupt(clean, name, severity, seed=seed)
            _write(image, folder, path, options.jpeg_quality)
            result["written"] += 1
        except (OSError, ValueError) as e:
            result["failures"].append(
                {"file": task.key, "reason": f"{name}/{severity}: {e}"}
            )
    return result


def _targets(task, options, result):
    """`[(corruption, severity, folder, path)]` of the outputs still to
    write; counts the others in `result["skipped"]`."""
    out_name = output_name(task.filename)
    targets = []
    for name in options.corruptions:
        for severity in options.severities:
            folder = os.path.join(
                options.output_dir, name, str(severity), task.wnid
            )
            path = os.path.join(folder, out_name)
            # An empty file is not done (before: skipped, and evaluation
            # failed on it).
            if os.path.isfile(path) and os.path.getsize(path):
                result["skipped"] += 1
            else:
                targets.append((name, severity, folder, path))
    return targets


def _write(image, folder, path, quality):
    """Saves one corrupted image as a JPEG, atomically."""
    buf = io.BytesIO()
    Image.fromarray(np.asarray(image, np.uint8)).save(
        buf, format="JPEG", quality=quality, optimize=True
    )
    os.makedirs(folder, exist_ok=True)
    file_utils.atomic_write(path, buf.getvalue())


def _sources(options):
    """`(tasks, number of tasks or None)` of the input."""
    if options.input_dir:
        listed = list_input_dir(options.input_dir)
        if options.limit:
            listed = listed[: options.limit]
        return listed, len(listed)
    tasks = iter_tfrecords(options.tfrecord_pattern, options.limit)
    return tasks, options.limit or None


def _unique(tasks, failures):
    """`tasks` without repeated wnid/file names (listed in `failures`)."""
    seen = set()
    for task in tasks:
        if task.output_key in seen:
            failures.append(
                {"file": task.key, "reason": "duplicate wnid/file name"}
            )
            continue
        seen.add(task.output_key)
        yield task


def generate(options, progress=None):
    """Builds (or resumes) the corrupted set; returns the summary dict.

    Args:
        options: an `Options`.
        progress: show a progress bar (default: `options.progress`).

    Returns:
        The summary, also written to `output_dir/summary.json`.

    Raises:
        OptionError (a ValueError; MissingPathError, a FileNotFoundError,
            for a missing input): a bad option, named.
        OutputMismatchError (a FileExistsError): `output_dir` holds a set
            of other options.
        NothingWrittenError (a ValueError): every input failed (after the
            summary is written).
    """
    start = time.time()
    if progress is not None:
        options = dataclasses.replace(options, progress=progress)
    options.validate()
    tasks, num_tasks = _sources(options)
    prepare_output(options)
    # Until the summary is written again, the set is unfinished (read as
    # such by tools.eval_robustness: a kill between two files left a
    # set that evaluated as whole).
    jobs.begin_summary(options.output_dir)
    # What a killed run was writing (before: left for good, and
    # tools.eval_robustness now refuses a set holding them).
    stale = jobs.remove_stale_temporaries(
        options.output_dir,
        [f"{c}/{s}" for c in options.corruptions for s in options.severities],
        file_utils.ATOMIC_TEMP_GLOB,  # what `_write` writes under
    )
    failures, counts = [], collections.Counter()
    for _, result in jobs.run_tasks(
        functools.partial(process, options=options),
        _unique(tasks, failures),
        options.workers,
        total=num_tasks,
        progress=options.progress,
        initializer=worker_pool.init_image_worker,
    ):
        counts.update(images=1, written=result["written"])
        counts.update(skipped=result["skipped"])
        failures.extend(result["failures"])
    summary = _summary(options, counts, failures, time.time() - start)
    summary["stale_temp_files_removed"] = stale
    jobs.write_summary(options.output_dir, summary)
    if failures and not (counts["written"] or counts["skipped"]):
        # Nothing written and nothing there: it exited 0.
        first = failures[0]
        raise jobs.NothingWrittenError(
            f"No corrupted image was written: all {len(failures):,} inputs "
            f"failed (first: {first['file']}: {first['reason']}; every "
            f"failure in {jobs.summary_path(options.output_dir)})."
        )
    return summary


SEVERITY_DIRS = ("1", "2", "3", "4", "5")


def severities_in_folder(output_dir):
    """{corruption: [severities]} of every corruption folder in
    `output_dir`, this run's and earlier ones' (before, summary.json
    described the last run alone: after two runs of other corruptions into
    one folder it listed the second's)."""
    found = {}
    for name in corruptions.CORRUPTIONS:
        path = os.path.join(output_dir, name)
        if os.path.isdir(path):
            levels = [int(s) for s in os.listdir(path) if s in SEVERITY_DIRS]
            if levels:
                found[name] = sorted(levels)
    return found


def _summary(options, counts, failures, seconds):
    return {
        "images": counts["images"],
        "outputs_per_image": len(options.corruptions) * len(options.severities),
        "written": counts["written"],
        "skipped_existing": counts["skipped"],
        "num_failures": len(failures),
        "failures": failures[:_MAX_LISTED_FAILURES],
        "seconds": round(seconds, 2),
        "in_folder": severities_in_folder(options.output_dir),
        "options": {
            **options.pixel_options(),
            "input_dir": options.input_dir,
            "tfrecord_pattern": options.tfrecord_pattern,
            "corruptions": list(options.corruptions),
            "severities": list(options.severities),
            "workers": options.workers,
            "limit": options.limit,
        },
    }


def format_summary(summary):
    """A few human-readable lines."""
    lines = [
        f"images: {summary['images']} x {summary['outputs_per_image']} "
        "outputs each",
        f"written: {summary['written']}",
        f"skipped (already there): {summary['skipped_existing']}",
        f"failures: {summary['num_failures']}",
    ]
    lines += jobs.format_problems(
        summary["failures"],
        lambda f: f"{f['file']}: {f['reason']}",
        limit=10,
        noun="failures",
    )
    lines.append(f"seconds: {summary['seconds']}")
    if summary.get("stale_temp_files_removed"):
        lines.append(
            f"removed {summary['stale_temp_files_removed']} unfinished "
            "temporary files of an interrupted run"
        )
    held = summary.get("in_folder") or {}
    lines.append(
        f"in the folder, with earlier runs: {len(held)} corruptions ("
        + ", ".join(f"{c} {','.join(map(str, s))}" for c, s in held.items())
        + ")"
    )
    return "\n".join(lines)


JOB = jobs.Job(Options, generate, format_summary)

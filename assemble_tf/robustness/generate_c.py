"""Regenerates ImageNet-C (19 corruptions x 5 severities) from validation data.

Hendrycks & Dietterich (ICLR 2019, github.com/hendrycks/robustness) build
ImageNet-C by resizing every validation image (shorter side 256, PIL
bilinear), centre-cropping 224 and applying each corruption at severities
1-5; Assemble-ResNet (Lee et al., arXiv 2001.06268, clovaai/assembled-cnn
`datasets/CE_dataset/CE_validation_generator.py`) does the same with 292 ->
256 for its 256-px models and evaluates mCE over all 19 corruptions. The
corruptions are `assemble_tf.robustness.corruptions` (frost textures are
synthetic; see there). `tools.make_imagenet_c` is the binary.

Input: a folder in ImageNet val layout `<wnid>/<file>.JPEG`, or our
validation TFRecords (image/encoded, image/class/synset, image/filename).
Output, as the reference: `<output_dir>/<corruption>/<severity>/<wnid>/<file
stem>.JPEG`, JPEG quality 85 (optimize). Each file is written to a hidden
temp file and renamed, so an interrupted run resumes: existing files are
skipped and counted. The options that change pixels (resize, crop, the
crop offset's rounding, seed, JPEG quality, the format version) are kept
in `options.json`; a run with other values in the
same folder is refused. The corruptions / severities / limit only select
which files to write. The random draws of one image depend on the seed and
its file name only, not on the worker count. A summary (counts, failures
with reasons, seconds, options) is written to `summary.json`.
"""

import dataclasses
import functools
import hashlib
import io
import json
import os
import time

import numpy as np
from PIL import Image
from tqdm import tqdm

from assemble_tf.data import schema
from assemble_tf.robustness import corruptions, inputs
from official.utils.misc import file_utils, worker_pool

JPEG_QUALITY = 85
# 2: the reference's clipped_zoom, glass-blur loop and crop rounding.
FORMAT_VERSION = 2
SUMMARY_FILE = "summary.json"
_MAX_LISTED_FAILURES = 1000


@dataclasses.dataclass(frozen=True)
class Options:
    """What `generate` needs; built from the flags by `options_from_flags`."""

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
        }


# --------------------------------------------------------------- options


def parse_corruptions(text):
    """'a,b' -> ('a', 'b'); '' -> all 19; unknown names are an error."""
    if not text or not text.strip():
        return corruptions.CORRUPTIONS
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    bad = [n for n in names if n not in corruptions.CORRUPTIONS]
    if bad:
        raise ValueError(
            f"--corruptions: unknown {', '.join(map(repr, bad))}. Valid "
            f"names: {', '.join(corruptions.CORRUPTIONS)}."
        )
    if len(set(names)) != len(names):
        raise ValueError(f"--corruptions lists a name twice: {text}")
    return names


def parse_severities(text):
    """'1,3' -> (1, 3); values outside 1..5 or repeats are an error."""
    try:
        values = tuple(int(v) for v in str(text).split(",") if v.strip())
    except ValueError:
        raise ValueError(
            "--severities takes comma-separated integers, e.g. 3,4,6,3. "
            f"Received: --severities={text}"
        ) from None
    if not values or any(v not in range(1, 6) for v in values):
        raise ValueError(
            f"--severities takes integers in 1..5, e.g. 1,2,3,4,5. "
            f"Received: --severities={text}"
        )
    if len(set(values)) != len(values):
        raise ValueError(f"--severities lists a value twice: {text}")
    return tuple(values)


def options_from_values(values):
    """Checks the binary's flag values (any object with its flag names as
    attributes) and returns `Options`."""
    fv = values
    if bool(fv.input_dir) == bool(fv.tfrecord_pattern):
        raise ValueError(
            "Pass exactly one of --input_dir (a <wnid>/<file>.JPEG folder) "
            "and --tfrecord_pattern (validation TFRecords). Received: "
            f"--input_dir={fv.input_dir} "
            f"--tfrecord_pattern={fv.tfrecord_pattern}"
        )
    if not fv.output_dir:
        raise ValueError("--output_dir is required.")
    if fv.resize < fv.crop:
        raise ValueError(
            f"--resize={fv.resize} must be >= --crop={fv.crop} (the crop "
            "is taken from the resized image), e.g. --resize=256 --crop=224 "
            "or --resize=292 --crop=256."
        )
    inputs.resolve_crop_rounding(fv.crop_rounding, fv.crop)
    return Options(
        output_dir=fv.output_dir,
        input_dir=fv.input_dir,
        tfrecord_pattern=fv.tfrecord_pattern,
        resize=fv.resize,
        crop=fv.crop,
        crop_rounding=fv.crop_rounding,
        corruptions=parse_corruptions(fv.corruptions),
        severities=parse_severities(fv.severities),
        seed=fv.seed,
        workers=fv.workers,
        limit=fv.limit,
    )


def prepare_output(options):
    """Creates output_dir with options.json, or checks the existing one."""
    file_utils.claim_output_dir(
        options.output_dir, options.pixel_options(), what="a set"
    )


# --------------------------------------------------------------- sources


@dataclasses.dataclass(frozen=True)
class Task:
    """One validation image: where it comes from and where it goes."""

    wnid: str
    filename: str  # original name, e.g. ILSVRC2012_val_00000001.JPEG
    path: str | None = None  # --input_dir
    data: bytes | None = None  # --tfrecord_pattern

    @property
    def key(self):
        return f"{self.wnid}/{self.filename}"


def image_seed(seed, filename):
    """Per-image seed from --seed and the file name (worker-independent)."""
    digest = hashlib.sha256(f"{seed}/{filename}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def output_name(filename):
    """The original file name with a .JPEG extension."""
    return os.path.splitext(os.path.basename(filename))[0] + ".JPEG"


def list_input_dir(input_dir):
    """Sorted `Task`s of <wnid>/<image> files; errors explain the layout."""
    return [
        Task(wnid, name, path=path)
        for wnid, name, path in inputs.list_image_folder(input_dir)
    ]


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
        yield Task(
            wnid=synset.decode("utf-8", "replace"),
            filename=os.path.basename(filename.decode("utf-8", "replace")),
            data=data,
        )
        if limit and count >= limit:
            return


# --------------------------------------------------------------- work


def process(task, options):
    """Writes the missing outputs of one image; returns a result dict."""

    result = {"written": 0, "skipped": 0, "failures": []}
    if not task.wnid or not task.filename:
        result["failures"].append(
            {"file": task.key, "reason": "no synset or no file name"}
        )
        return result
    out_name = output_name(task.filename)
    targets = []
    for name in options.corruptions:
        for severity in options.severities:
            folder = os.path.join(
                options.output_dir, name, str(severity), task.wnid
            )
            path = os.path.join(folder, out_name)
            if os.path.exists(path):
                result["skipped"] += 1
            else:
                targets.append((name, severity, folder, path))
    if not targets:
        return result
    try:
        source = task.path if task.path else io.BytesIO(task.data)
        with Image.open(source) as pil:
            pil.load()
            clean = corruptions.resize_center_crop(
                pil, options.resize, options.crop, options.crop_rounding
            )
    except (OSError, ValueError, SyntaxError) as e:
        result["failures"].append(
            {"file": task.key, "reason": f"cannot decode: {e}"}
        )
        return result
    seed = image_seed(options.seed, task.filename)
    for name, severity, folder, path in targets:
        try:
            image = corruptions.corrupt(clean, name, severity, seed=seed)
            buf = io.BytesIO()
            Image.fromarray(np.asarray(image, np.uint8)).save(
                buf, format="JPEG", quality=options.jpeg_quality, optimize=True
            )
            os.makedirs(folder, exist_ok=True)
            file_utils.atomic_write(path, buf.getvalue())
            result["written"] += 1
        except (OSError, ValueError) as e:
            result["failures"].append(
                {"file": task.key, "reason": f"{name}/{severity}: {e}"}
            )
    return result


def _run(tasks, options, num_tasks, progress):
    """Runs `tasks` in-process or on spawned workers; yields results."""
    with tqdm(
        total=num_tasks, unit="img", desc="images", disable=not progress
    ) as bar:
        for _, result in worker_pool.imap_bounded(
            functools.partial(process, options=options),
            tasks,
            options.workers,
            initializer=worker_pool.init_image_worker,
        ):
            yield result
            bar.update(1)


def generate(options, progress=True):
    """Builds (or resumes) the corrupted set; returns the summary dict."""
    start = time.time()
    if options.resize < options.crop:
        raise ValueError(
            f"--resize={options.resize} must be >= --crop={options.crop}."
        )
    if options.input_dir:
        listed = list_input_dir(options.input_dir)
        if options.limit:
            listed = listed[: options.limit]
        tasks, num_tasks = listed, len(listed)
    else:
        tasks = iter_tfrecords(options.tfrecord_pattern, options.limit)
        num_tasks = options.limit or None
    prepare_output(options)
    if not options.corruptions:
        options = dataclasses.replace(
            options, corruptions=parse_corruptions("")
        )
    seen, failures = set(), []

    def unique(tasks):
        for task in tasks:
            if task.key in seen:
                failures.append(
                    {"file": task.key, "reason": "duplicate wnid/file name"}
                )
                continue
            seen.add(task.key)
            yield task

    images = written = skipped = 0
    for result in _run(unique(tasks), options, num_tasks, progress):
        images += 1
        written += result["written"]
        skipped += result["skipped"]
        failures.extend(result["failures"])
    per_image = len(options.corruptions) * len(options.severities)
    summary = {
        "images": images,
        "outputs_per_image": per_image,
        "written": written,
        "skipped_existing": skipped,
        "num_failures": len(failures),
        "failures": failures[:_MAX_LISTED_FAILURES],
        "seconds": round(time.time() - start, 2),
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
    file_utils.atomic_write(
        os.path.join(options.output_dir, SUMMARY_FILE),
        json.dumps(summary, indent=1).encode(),
    )
    return summary


def format_summary(summary):
    """A few human-readable lines."""
    lines = [
        f"images: {summary['images']} x {summary['outputs_per_image']} "
        "outputs each",
        f"written: {summary['written']}",
        f"skipped (already there): {summary['skipped_existing']}",
        f"failures: {summary['num_failures']}",
    ]
    for failure in summary["failures"][:10]:
        lines.append(f"  {failure['file']}: {failure['reason']}")
    if summary["num_failures"] > 10:
        lines.append(f"  ... see {SUMMARY_FILE}")
    lines.append(f"seconds: {summary['seconds']}")
    return "\n".join(lines)

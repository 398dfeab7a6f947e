"""Validation images for the ImageNet-C / ImageNet-P generators.

The generators (`tools.make_imagenet_c`, `tools.make_imagenet_p`) read the
ImageNet validation set either as a folder `<wnid>/<file>.JPEG` or as our
validation TFRecords (keys of `assemble_tf.data.schema`), and bring each
image to the evaluation size as Hendrycks & Dietterich's generators
(github.com/hendrycks/robustness, torchvision `Resize` + `CenterCrop`) and
the Assemble-ResNet one (clovaai/assembled-cnn
`datasets/CE_dataset/CE_validation_generator.py`) do: PIL bilinear resize of
the shorter side, then a centre crop. The two differ in the crop offset:
torchvision 0.2.1's `CenterCrop` (the hendrycks sets) rounds
(new - crop) / 2 half to even, the Assemble generator floors it
(`crop_offset`).

Both generators' corruption and perturbation parameters are in pixels of
the benchmark's 224 crop (`BENCHMARK_CROP`); `crop_warning` says so for
another crop.
"""

import json
import os
import re

from official.utils.misc import file_utils, jobs
from official.utils.misc.jobs import MissingPathError
from official.utils.misc.validation import OptionError

IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png")

# How the centre crop's offset is rounded: "round" = int(round((n - c) /
# 2.)) (torchvision 0.2.1 CenterCrop, Python's half to even: the released
# 256 -> 224 ImageNet-C and ImageNet-P), "floor" = int((n - c) / 2) (the
# Assemble generator, used for its 292 -> 256 set). "auto" picks "round"
# for a 224 crop and "floor" otherwise.
CROP_ROUNDINGS = ("auto", "round", "floor")
CROP_ROUNDING_HELP = (
    "Rounding of the centre crop's offset (n - crop) / 2: round = "
    "torchvision 0.2.1's half to even (the released 256 -> 224 "
    "ImageNet-C / -P), floor = the Assemble generator's (its 292 -> 256 "
    "set); auto = round for a 224-pixel crop, floor otherwise."
)


# The crop side Hendrycks & Dietterich defined ImageNet-C and -P at.
BENCHMARK_CROP = 224


def check_source(input_dir, tfrecord_pattern, output_dir=None):
    """Raises unless exactly one of the two inputs is given, and unless
    `output_dir` lies outside `input_dir` (before: the generators wrote
    into the validation folder, whose next listing took the outputs for
    inputs)."""
    if input_dir and output_dir:
        inside = os.path.realpath(output_dir)
        root = os.path.realpath(input_dir)
        if inside == root or inside.startswith(root + os.sep):
            raise OptionError(
                "output_dir",
                "{field}={path} is inside {input_dir}={root}: its outputs "
                "would land among the images read; choose a folder outside "
                "it.",
                others=("input_dir",),
                path=output_dir,
                root=input_dir,
            )
    if bool(input_dir) == bool(tfrecord_pattern):
        raise OptionError(
            "input_dir",
            "Pass exactly one of {field} (a <wnid>/<file>.JPEG folder) and "
            "{tfrecord_pattern} (validation TFRecords). Received: "
            "{field}={input_value} {tfrecord_pattern}={pattern_value}",
            others=("tfrecord_pattern",),
            input_value=input_dir,
            pattern_value=tfrecord_pattern,
        )


def crop_warning(crop, benchmark, allowed=(BENCHMARK_CROP,), size_note=""):
    """An `OptionError` to print (not raise) when `crop` is not in
    `allowed`: the benchmark's pixel parameters then distort the images
    more or less than they were meant to.

    Args:
        crop: the crop side.
        benchmark: what the parameters are, e.g. "ImageNet-C corruption".
        allowed: crops without a warning.
        size_note: said after "the benchmark's size", e.g. another set.
    """
    if crop in allowed:
        return None
    return OptionError(
        "crop",
        "{field}={crop}: the {benchmark} parameters are in pixels of a "
        "{size} crop (the benchmark's size{note}); at {crop} px they change "
        "the images more or less than the benchmark does, so the results "
        "are not comparable with published figures.",
        crop=crop,
        benchmark=benchmark,
        size=BENCHMARK_CROP,
        note=size_note,
    )


def resolve_crop_rounding(rounding, crop):
    """ "round" or "floor" for `rounding` in CROP_ROUNDINGS and a crop."""
    if rounding not in CROP_ROUNDINGS:
        raise OptionError(
            "crop_rounding",
            "{field}={value!r} is not one of {choices}.",
            value=rounding,
            choices=CROP_ROUNDINGS,
        )
    if rounding == "auto":
        return "round" if crop == 224 else "floor"
    return rounding


def crop_offset(size, crop, rounding):
    """The centre crop's offset along an axis of `size` pixels."""
    if rounding == "round":
        return int(round((size - crop) / 2.0))
    return int((size - crop) / 2)


def record_names(synset, filename):
    """`(wnid, file name, problem)` of a record's `image/class/synset` and
    `image/filename` bytes; `problem` (a reason, or None) where they are
    not usable as the output's folder and name: missing, not UTF-8, or
    not one visible path component (before: a synset "../x" wrote outside
    the severity folder, and ".hidden.JPEG" a file the evaluation skips,
    both counted as written)."""
    try:
        wnid, name = synset.decode(), filename.decode()
    except UnicodeDecodeError:
        return "", "", "its synset or file name is not UTF-8"
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    if not wnid or not name:
        return wnid, name, "no synset or no file name"
    if "/" in wnid or "\\" in wnid or wnid.startswith("."):
        return wnid, name, f"synset {wnid!r} is not a folder name"
    if name.startswith("."):
        return wnid, name, f"file name {name!r} is hidden"
    return wnid, name, None


def decode_error(error):
    """`str(error)` of an image decoder without Pillow's repr of an
    in-memory file ("cannot identify image file <_io.BytesIO object at
    0x7f...>" for a record's bytes)."""
    return re.sub(
        r"<_io\.BytesIO object at 0x[0-9a-f]+>",
        "the record's bytes",
        str(error),
    )


def list_image_folder(input_dir):
    """Sorted `(wnid, filename, path)` of `input_dir/<wnid>/<file>`.

    Raises:
        MissingPathError (a FileNotFoundError): `input_dir` is not a folder.
        OptionError: no images in class sub-folders (the message explains
            the expected layout, and the flat ImageNet val archive case).
    """
    if not os.path.isdir(input_dir):
        raise MissingPathError(
            "input_dir",
            "{field}={value} is not a folder. Point it at the validation "
            "images in the <wnid>/<file>.JPEG layout.",
            value=input_dir,
        )
    entries = sorted(os.listdir(input_dir))
    # Names that are not UTF-8 are left out (`left_out_warning` names
    # them; before: the job stopped on the first, after writing its
    # options, naming no file).
    classes = [
        e
        for e in entries
        if os.path.isdir(os.path.join(input_dir, e))
        and not e.startswith(".")
        and file_utils.is_utf8(e)
    ]
    found = []
    for wnid in classes:
        folder = os.path.join(input_dir, wnid)
        for name in sorted(os.listdir(folder)):
            path = os.path.join(folder, name)
            if (
                name.lower().endswith(IMAGE_EXTENSIONS)
                and not name.startswith(".")
                and file_utils.is_utf8(name)
                and os.path.isfile(path)
            ):
                found.append((wnid, name, path))
    if not found:
        _no_images(input_dir, entries)
    return found


def left_out_warning(input_dir):
    """An `OptionError` (a warning, field `input_dir`) naming what
    `list_image_folder` leaves out of `input_dir`, or None: other image
    formats (GIF, BMP, TIFF, WebP, which the TFRecord builder converts),
    subfolders of class folders, files outside them, broken links (before:
    left out without a word; a class of GIFs only disappeared)."""
    if not input_dir or not os.path.isdir(input_dir):
        return None
    left = file_utils.left_out_of_class_folders(input_dir, IMAGE_EXTENSIONS)
    if not left:
        return None
    shown = ", ".join(left[:5]) + (", ..." if len(left) > 5 else "")
    return OptionError(
        "input_dir",
        "{field}={value}: left out {count} files that are not .jpeg/.jpg/"
        ".png images in a <wnid>/ folder ({shown}); convert them (e.g. "
        "build TFRecords with tools.build_imagenet_tfrecords and use "
        "{tfrecord_pattern}) or move them to use them.",
        others=("tfrecord_pattern",),
        value=input_dir,
        count=len(left),
        shown=shown,
    )


def _no_images(input_dir, entries):
    """Raises for a folder without images in class folders."""
    flat = [e for e in entries if e.lower().endswith(IMAGE_EXTENSIONS)]
    hint = (
        " It holds {flat} images at the top level: the ImageNet val "
        "archive is flat, so first sort it into <wnid>/ folders (e.g. "
        "with the devkit labels), or use {tfrecord_pattern}."
        if flat
        else ""
    )
    raise OptionError(
        "input_dir",
        "{field}={value} has no images in <wnid>/ sub-folders (extensions "
        "{extensions})." + hint,
        others=("tfrecord_pattern",),
        value=input_dir,
        extensions=", ".join(IMAGE_EXTENSIONS),
        flat=len(flat),
    )


def tfrecord_files(pattern):
    """The sorted files of a TFRecord glob (an empty match is an error)."""
    import tensorflow as tf

    files = sorted(tf.io.gfile.glob(pattern))
    if not files:
        raise MissingPathError(
            "tfrecord_pattern",
            "{field}={value} matches no files. Quote the glob and check the "
            "folder, e.g. '/data/imagenet/validation-*'.",
            value=pattern,
        )
    return files


def read_records(files, keys):
    """Yields the bytes features `keys` of every record, in file order."""
    import tensorflow as tf

    spec = {
        key: tf.io.FixedLenFeature([], tf.string, default_value="")
        for key in keys
    }
    for path in files:  # one at a time: an error names its file
        dataset = tf.data.TFRecordDataset(path).map(
            lambda r: tf.io.parse_single_example(r, spec)
        )
        read = 0
        try:
            for record in dataset.as_numpy_iterator():
                yield tuple(record[key] for key in keys)
                read += 1
        except (tf.errors.OpError, UnicodeDecodeError) as e:
            from assemble_tf.data import checks

            raise checks.damaged_shard_error(path, read, e) from None


def resize_shorter_side(image, size):
    """PIL bilinear resize of the shorter side to `size`; the long side
    becomes int(size * long / short) (torchvision `Resize(size)`)."""
    from PIL import Image

    width, height = image.size
    if width <= height:
        new = (size, int(size * height / width))
    else:
        new = (int(size * width / height), size)
    if new == (width, height):
        return image
    return image.resize(new, Image.Resampling.BILINEAR)


def input_record(options):
    """{"input_dir" or "tfrecord_pattern": its absolute path}: the input
    as a generator's output folder records it (a relative pattern stored
    as typed matched any folder's `validation-*` later). `options`: the
    generator's options, or a dict of them (a summary's)."""
    get = options.get if isinstance(options, dict) else options.__getattribute__
    keys = ("input_dir", "tfrecord_pattern")
    return {k: os.path.abspath(get(k)) for k in keys if get(k)}


def other_input_warning(options, section, record_file="options.json"):
    """The warning (an `OptionError`, not raised) of a generator whose
    `output_dir` was made from another input than `options'` (the
    `input` its `record_file` keeps, else the summary's `section`, of
    folders from before): its outputs of the same names are kept from the
    earlier input (before: without a word, and the summary named the new
    input; a killed run left no summary, so its rerun from another input
    said nothing). None without an earlier record, or for the same
    input."""
    old = None
    try:
        with open(os.path.join(options.output_dir, record_file)) as f:
            old = json.load(f)["input"]
    except (OSError, ValueError, KeyError, TypeError):
        try:
            with open(jobs.summary_path(options.output_dir)) as f:
                before = json.load(f)[section]
            old = input_record(before)
        except (OSError, ValueError, KeyError, TypeError):
            return None
    new = input_record(options)
    if not isinstance(old, dict) or not old or old == new:
        return None
    return OptionError(
        "output_dir",
        "{field}={folder} was made from {old}; this run reads {new}: "
        "outputs whose names are already there are kept from the earlier "
        "input, not made again. Use another {field} for another input.",
        folder=options.output_dir,
        old=", ".join(old.values()),
        new=", ".join(new.values()),
    )

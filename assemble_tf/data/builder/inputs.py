"""Reading a build's inputs: class folders, synsets, validation labels,
bounding boxes and teacher logits, with errors that name the option
(`OptionError`: its field, printed by the binary as its flag)."""

import collections
import contextlib
import glob
import os

import numpy as np

from assemble_tf.data.builder.config import (
    IMAGE_EXTENSIONS,
    MAX_LISTED,
    WNID_PATTERN,
)
from official.utils.misc import file_utils, validation
from official.utils.misc.jobs import MissingPathError
from official.utils.misc.validation import OptionError


def is_image_name(name):
    return name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")


def require_dir(path, flag):
    """Raises `MissingPathError` naming `flag` unless `path` is a folder."""
    if not os.path.isdir(path):
        raise MissingPathError(
            flag,
            "{field}={path} is not a directory; point {field} at the folder "
            "holding the images.",
            path=path,
        )


def require_file(path, flag):
    """Raises `MissingPathError` naming `flag` unless `path` is a file."""
    if not os.path.isfile(path):
        raise MissingPathError(
            flag, "{field}={path} does not exist or is not a file.", path=path
        )


def list_images(folder):
    """Returns `(images, ignored)`: sorted image file names directly in
    `folder`, and the other (non-hidden) entries, each as its name plus,
    where it is not simply a file of another extension, why it is not read
    (a sub-folder, a broken link, a name that is not UTF-8)."""
    images, ignored = [], []
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if name.startswith("."):
            continue
        if not file_utils.is_utf8(name):
            ignored.append(
                f"{file_utils.shown_name(name)} (name not UTF-8: rename it)"
            )
        elif os.path.isdir(path):
            ignored.append(f"{name}/ (a sub-folder: not read)")
        elif not os.path.isfile(path):
            ignored.append(f"{name} (a broken link, or not a file)")
        else:
            (images if is_image_name(name) else ignored).append(name)
    return images, ignored


def list_class_folders(root, flag, layout):
    """Sorted class sub-folders of `root`; in the imagenet layout each must
    be a WordNet id."""
    require_dir(root, flag)
    classes = sorted(
        name
        for name in os.listdir(root)
        if os.path.isdir(os.path.join(root, name)) and not name.startswith(".")
    )
    bad = [
        file_utils.shown_name(name)
        for name in classes
        if not file_utils.is_utf8(name)
    ]
    if bad:
        raise OptionError(
            flag,
            "{field}={root} has class folders whose names are not UTF-8: "
            "{bad}. Rename them (class names go into labels.txt and the "
            "records).",
            root=root,
            bad=listing(bad),
        )
    # A newline split labels.txt's line, which then did not read; its
    # reader strips spaces: "alpha " became "alpha".
    validation.check_class_names(
        flag,
        root,
        classes,
        "labels.txt keeps one class per line, its fields tab-separated",
        "labels.txt's classes are read without them, so two folders became "
        "one name and eval_robustness could not find them",
    )
    if not classes:
        raise OptionError(
            flag,
            "{field}={root} has no class folders. Expected {split}/<class>/"
            "<image> (e.g. train/n01440764/n01440764_10026.JPEG).",
            root=root,
            split=flag.split("_")[0],
        )
    if layout == "imagenet":
        bad = [name for name in classes if not WNID_PATTERN.match(name)]
        if bad:
            raise OptionError(
                flag,
                "{field}={root} holds folders that are not WordNet ids "
                "(nXXXXXXXX): {bad}. Point {field} at the folder of the "
                "n01440764/... class folders, or use {layout}=folder for "
                "other datasets.",
                others=("layout",),
                root=root,
                bad=listing(bad),
            )
    validation.check_distinct_class_folders(flag, root, classes)
    return classes


@contextlib.contextmanager
def _text(path, field):
    """The lines of a UTF-8 text file an option names; another encoding
    is named with the option (before: "'utf-8' codec can't decode ...",
    naming neither). A byte-order mark (Windows editors write one) is not
    part of the first line: it made the first name unknown."""
    with open(path, encoding="utf-8-sig") as f:
        try:
            yield f
        except UnicodeDecodeError as e:
            raise OptionError(
                field,
                "{field}={path} is not UTF-8 text (it holds byte {byte}): "
                "save it as UTF-8.",
                path=path,
                byte=hex(e.object[e.start]),
            ) from None


def read_synsets(path):
    """Reads `wnid text` lines into `{wnid: text}`; a wnid listed again
    with the same text is kept once, with other text refused (before: the
    first won, without a word)."""
    require_file(path, "synsets_file")
    texts, lines = {}, {}
    with _text(path, "synsets_file") as f:
        for number, line in enumerate(f, 1):
            parts = line.strip().split(None, 1)
            if not parts or parts[0].startswith("#"):
                continue
            wnid, text = parts[0], parts[1] if len(parts) > 1 else ""
            if texts.get(wnid, text) != text:
                raise OptionError(
                    "synsets_file",
                    "{field}={path} lists {wnid} twice with other text (lines "
                    "{first} and {number}: {a!r}, {b!r}); keep one line.",
                    path=path,
                    wnid=wnid,
                    first=lines[wnid],
                    number=number,
                    a=texts[wnid],
                    b=text,
                )
            texts.setdefault(wnid, text)
            lines.setdefault(wnid, number)
    if not texts:
        raise OptionError(
            "synsets_file",
            "{field}={path} is empty; it needs lines like 'n01440764 tench, "
            "Tinca tinca'.",
            path=path,
        )
    return texts


def read_validation_labels(path, image_names):
    """Returns the class of each image of a flat validation folder.

    Args:
        path: the labels file. Either one class per line, in the order of
            the sorted image file names (ILSVRC2012_validation_ground_truth
            mapped to wnids), or `filename wnid` lines (tab, comma or
            space separated: the class is the last field, so a file name
            may hold spaces; with or without its extension). Blank lines
            and lines starting with "#" are comments.
        image_names: sorted image file names of the folder.

    Returns:
        A list of class names, one per `image_names` entry.
    """
    require_file(path, "validation_labels")
    rows = []
    with _text(path, "validation_labels") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if line and not line.startswith("#"):
                rows.append((lineno, _label_fields(line)))
    widths = sorted({len(fields) for _, fields in rows})
    if not rows:
        raise OptionError(
            "validation_labels", "{field}={path} is empty.", path=path
        )
    if widths == [1]:
        if len(rows) != len(image_names):
            raise OptionError(
                "validation_labels",
                "{field}={path} has {lines} lines (one class per line) but "
                "{validation_dir} holds {images} images; the file must list "
                "one class per image in sorted-filename order.",
                others=("validation_dir",),
                path=path,
                lines=len(rows),
                images=len(image_names),
            )
        return [fields[0] for _, fields in rows]
    if widths != [2]:
        _refuse_mixed_widths(path, rows)
    for lineno, fields in rows:
        if not all(fields):  # before: "not class folders ...: ."
            raise OptionError(
                "validation_labels",
                "{field}={path} line {lineno} has an empty field: "
                "{line!r}; use 'filename class' lines.",
                path=path,
                lineno=lineno,
                line=",".join(fields),
            )
    return _labels_by_name(path, rows, image_names)


def _refuse_mixed_widths(path, rows):
    """Names the first line of a width other than 1 or 2 fields, else the
    first of the rarer width in a mix of one- and two-field lines (before:
    a StopIteration traceback for the mix)."""
    odd = [r for r in rows if len(r[1]) not in (1, 2)]
    if odd:
        (lineno, fields), mixed = odd[0], ""
    else:
        ones = [r for r in rows if len(r[1]) == 1]
        twos = [r for r in rows if len(r[1]) == 2]
        (lineno, fields) = (ones if len(ones) <= len(twos) else twos)[0]
        mixed = " among lines of the other format"
    raise OptionError(
        "validation_labels",
        "{field}={path} line {lineno} has {count} field{s}{mixed}; use one "
        "class per line or 'filename class' lines throughout.",
        path=path,
        lineno=lineno,
        count=len(fields),
        s="" if len(fields) == 1 else "s",
        mixed=mixed,
    )


def _label_fields(line):
    """`[class]` or `[filename, class]` of a stripped labels-file line: a
    tab or comma separates the fields where the line has one, else the
    last run of spaces, so that a file name may hold spaces (before: "line
    3 has 3 fields" for "my photo.jpg n01440764")."""
    for separator in ("\t", ","):
        if separator in line:
            return [field.strip() for field in line.split(separator)]
    return line.rsplit(None, 1)


def unused_validation_labels(path, image_names):
    """The file names of a `filename class` labels file that name no image
    of the folder (a labels file of a larger set, a typo): not used, and
    said so (before: ignored without a word)."""
    rows = []
    with _text(path, "validation_labels") as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                rows.append(_label_fields(line))
    if not rows or {len(r) for r in rows} != {2}:
        return []
    present = set(image_names) | {os.path.splitext(n)[0] for n in image_names}
    header = rows[0][0].lower() in ("filename", "file", "image")
    return [name for name, _ in rows[header:] if name not in present]


def _labels_by_name(path, rows, image_names):
    """The class of each image from `(lineno, [filename, class])` rows."""
    table = {}
    for index, (lineno, (name, label)) in enumerate(rows):
        if index == 0 and name.lower() in ("filename", "file", "image"):
            continue  # a header
        if name in table and table[name] != label:
            raise OptionError(
                "validation_labels",
                "{field}={path} line {lineno}: {name} is labelled twice "
                "({first} and {second}).",
                path=path,
                lineno=lineno,
                name=name,
                first=table[name],
                second=label,
            )
        table[name] = label
    labels, missing = [], []
    for name in image_names:
        label = table.get(name, table.get(os.path.splitext(name)[0]))
        labels.append(label)
        if label is None:
            missing.append(name)
    if missing:
        raise OptionError(
            "validation_labels",
            "{field}={path} has no line for {count} images of "
            "{validation_dir}: {names}.{hint}",
            others=("validation_dir",),
            path=path,
            count=len(missing),
            names=listing(missing),
            hint=_split_hint(rows, missing),
        )
    return labels


def _split_hint(rows, missing):
    """A hint where a space-separated line put a class name's first words
    into the file name ('a.jpg golden retriever' read as file 'a.jpg
    golden', class 'retriever'), else ''."""
    wanted = set(missing) | {os.path.splitext(n)[0] for n in missing}
    for lineno, (name, label) in rows:
        head, _, rest = name.partition(" ")
        while rest:
            if head in wanted:
                return (
                    f" Line {lineno} was read as file '{name}' and class "
                    f"'{label}': where a class name holds spaces, separate "
                    "the file name from it by a tab or a comma."
                )
            more, _, rest = rest.partition(" ")
            head = f"{head} {more}"
    return ""


def read_bboxes(path):
    """Reads `filename,xmin,ymin,xmax,ymax` lines into `{filename: boxes}`."""
    require_file(path, "bbox_csv")
    boxes = collections.defaultdict(list)
    with _text(path, "bbox_csv") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            fields = [v.strip() for v in line.split(",")]
            try:
                if len(fields) != 5:
                    raise ValueError
                box = tuple(float(v) for v in fields[1:])
            except ValueError:
                if lineno == 1:
                    continue  # a header
                raise OptionError(
                    "bbox_csv",
                    "{field}={path} line {lineno}: expected "
                    "'filename,xmin,ymin,xmax,ymax' with numbers. "
                    "Received: {line}",
                    path=path,
                    lineno=lineno,
                    line=line[:120],
                ) from None
            xmin, ymin, xmax, ymax = box
            tol = 1e-6
            if not (
                -tol <= xmin <= xmax <= 1 + tol
                and -tol <= ymin <= ymax <= 1 + tol
            ):
                raise OptionError(
                    "bbox_csv",
                    "{field}={path} line {lineno}: boxes must be normalized, "
                    "0 <= xmin <= xmax <= 1 and 0 <= ymin <= ymax <= 1. "
                    "Received: {line}",
                    path=path,
                    lineno=lineno,
                    line=line[:120],
                )
            boxes[fields[0]].append(tuple(min(max(v, 0.0), 1.0) for v in box))
    return dict(boxes)


def resolve_logit_files(spec, split, flag):
    """The logits files of `split`: `spec` is comma-separated files or
    globs, or one directory (then `DIR/<split>*`)."""
    parts = [p.strip() for p in spec.split(",") if p.strip()]
    if len(parts) == 1 and os.path.isdir(parts[0]):
        parts = [os.path.join(parts[0], f"{split}*")]
    files = []
    for part in parts:
        matches = sorted(glob.glob(part))
        if not matches:
            raise MissingPathError(
                flag,
                "{field}={spec}: {part} matches no file (needed for the "
                "{split} split).",
                spec=spec,
                part=part,
                split=split,
            )
        files.extend(m for m in matches if os.path.isfile(m))
    return sorted(set(files))


def read_logits(files, flag):
    """Reads teacher logits into `({name: row}, matrix[N, K] float32)`.

    A CSV has rows `filename,v1,...,vK` (an optional header line); an
    `.npz` holds arrays `filenames` ([N] str) and `logits` ([N, K]).
    """
    names, rows, origin = [], [], {}
    for path in files:
        if path.endswith(".npy"):
            raise OptionError(
                flag,
                "{field}: {path} is an .npy file; save names and values "
                "together with np.savez(PATH.npz, filenames=names, "
                "logits=values), or write a CSV.",
                path=path,
            )
        if path.endswith(".npz"):
            file_names, values = _read_logits_npz(path, flag)
        else:
            file_names, values = _read_logits_csv(path, flag)
        _check_finite(file_names, values, path, flag)
        for row, name in enumerate(file_names, 1):
            where = f"{path} (row {row:,} of its values)"
            if name in origin:
                # Before: "in both a.csv and a.csv" for a name twice in one.
                raise OptionError(
                    flag,
                    "{field}: {name} has two rows of logits, in {first} and "
                    "{where}; give each image one row.",
                    name=name,
                    first=origin[name],
                    where=where,
                )
            origin[name] = where
        names.extend(file_names)
        rows.append(values)
    widths = {r.shape[1] for r in rows if r.size}
    if len(widths) > 1:
        raise OptionError(
            flag,
            "{field}: the files have different numbers of logits per row "
            "({widths}); every row needs the same length.",
            widths=sorted(widths),
        )
    if not names:
        raise OptionError(
            flag, "{field}: {files} hold no logits.", files=", ".join(files)
        )
    matrix = np.concatenate([r for r in rows if r.size], axis=0)
    return {name: i for i, name in enumerate(names)}, matrix


def _check_finite(names, values, path, flag):
    """NaN or infinite logits (in float32: beyond +-3.4e38) are an error
    naming the file and the images; before, the build kept them and the
    first KD step stopped on a NaN loss that named neither."""
    bad = np.flatnonzero(~np.isfinite(values).all(axis=1))
    if len(bad):
        raise OptionError(
            flag,
            "{field}: {path} has NaN or infinite logits (float32) for "
            "{count} images: {names}. Give every image finite logits.",
            path=path,
            count=len(bad),
            names=", ".join(names[i] for i in bad[:5])
            + (", ..." if len(bad) > 5 else ""),
        )


def _read_logits_csv(path, flag):
    names, values, width = [], [], None
    with _text(path, flag) as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            fields = line.split(",")
            try:
                with np.errstate(over="ignore"):  # _check_finite names it
                    row = np.asarray(fields[1:], dtype=np.float32)
            except ValueError:
                if lineno == 1:
                    continue  # a header
                raise OptionError(
                    flag,
                    "{field}: {path} line {lineno} is not "
                    "'filename,v1,...,vK' with numbers.",
                    path=path,
                    lineno=lineno,
                ) from None
            width = width or len(row)
            if len(row) != width or not width:
                raise OptionError(
                    flag,
                    "{field}: {path} line {lineno} has {count} values, "
                    "earlier lines {width}.",
                    path=path,
                    lineno=lineno,
                    count=len(row),
                    width=width,
                )
            names.append(fields[0].strip())
            values.append(row)
    if not values:
        return [], np.zeros((0, 0), np.float32)
    return names, np.stack(values)


def _read_logits_npz(path, flag):
    with np.load(path, allow_pickle=False) as data:
        if "filenames" not in data or "logits" not in data:
            raise OptionError(
                flag,
                "{field}: {path} needs arrays 'filenames' and 'logits'; it "
                "has {arrays}.",
                path=path,
                arrays=sorted(data.files),
            )
        names = [str(n) for n in data["filenames"].reshape(-1)]
        values = np.asarray(data["logits"], dtype=np.float32)
    if values.ndim != 2 or values.shape[0] != len(names):
        raise OptionError(
            flag,
            "{field}: {path} has {count} filenames but logits of shape "
            "{shape}; expected ({count}, K).",
            path=path,
            count=len(names),
            shape=values.shape,
        )
    return names, values


def match_names(entries, table, what, flag):
    """Returns one `table` value (or None) per entry, by relpath then base
    name; a base name shared by several files is an error, and so is a
    file keyed both ways (before: its base-name rows were dropped)."""
    counts = collections.Counter(os.path.basename(e.relpath) for e in entries)
    values, ambiguous = [], []
    twice = [
        e.relpath
        for e in entries
        if e.relpath in table
        and os.path.basename(e.relpath) != e.relpath
        and os.path.basename(e.relpath) in table
    ]
    if twice:
        raise OptionError(
            flag,
            "{field}: {what} are keyed both by the path under the split "
            "folder and by the base name for {names}; key each file one "
            "way.",
            what=what,
            names=listing(twice),
        )
    for entry in entries:
        if entry.relpath in table:
            values.append(table[entry.relpath])
            continue
        base = os.path.basename(entry.relpath)
        if base in table and counts[base] > 1:
            ambiguous.append(entry.relpath)
        values.append(table.get(base))
    if ambiguous:
        raise OptionError(
            flag,
            "{field}: {what} are keyed by base name, but these files share "
            "their base name with another file: {names}. Key them by the "
            "path under the split folder (class/name.jpg).",
            what=what,
            names=listing(ambiguous),
        )
    return values


def listing(names, limit=MAX_LISTED):
    names = list(names)
    text = ", ".join(names[:limit])
    if len(names) > limit:
        text += f", ... and {len(names) - limit} more"
    return text

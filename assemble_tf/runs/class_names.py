"""What each logit of a run means: its class names, kept with the run.

A classifier's logit i is a class of its training data: a wnid (a class
folder's name) of a TFRecord folder built by `tools.build_imagenet_tfrecords`
(its `labels.txt`, stored labels shifted by `label_offset`), or a class name
of a tfds set or image folder (`source`, shifted by `class_range`). Training
writes them beside `config.json` as `class_names.txt`, one line per logit,
so that the run keeps them when its data move or are gone: the SavedModel
export serves them (`serving_default` and `preprocessed` return
`class_names`, and the SavedModel carries the file as an asset), as TF
Serving's classification API and TF Hub's labels files do.

The names are the data's class identifiers (wnids, folder names), which
are unique; ImageNet's human-readable texts are not ("crane" twice). A logit
below the data's first stored label is "background" (ImageNet's logit 0 of
the original 1001-way head, Lee et al. 2020, arXiv 2001.06268, and
clovaai/assembled-cnn); one beyond its classes is "unused_<i>".
"""

import collections
import os

from official.utils.misc import file_utils
from official.utils.misc.validation import OptionError

FILE = "class_names.txt"


def from_data(data):
    """The class name of each of the `data.num_classes` logits, or None
    where the data name no classes (synthetic data, a TFRecord folder
    without labels.txt, a tfds set that only numbers its classes).

    Args:
        data: a `config.DataConfig`.
    """
    from assemble_tf.data import metadata

    if data.synthetic:
        return None
    if data.source:
        from assemble_tf.data import sources

        info = sources.open_source_cached(
            data.source, data.tfds_data_dir, data.download
        )
        if not info.class_names:
            return None
        low = data.class_range[0] if data.class_range else 0
        names = [str(n) for n in info.class_names[low:]]
        return _fit(names, data.num_classes, base=0)
    path = os.path.join(data.data_dir or "", metadata.LABELS)
    if not file_utils.isfile(path):
        return None
    rows = metadata.read_labels(path)
    return (
        _from_labels(rows, data.label_offset, data.num_classes)
        if rows
        else None
    )


def _from_labels(rows, offset, count):
    """The names of `count` logits from labels.txt rows, logit i being the
    stored label i + `offset`."""
    by_label = {label - offset: wnid for label, wnid, _ in rows}
    names = [by_label.get(i) for i in range(max(by_label) + 1)]
    return _fit(names, count, min(by_label))


def _fit(names, count, base):
    """`count` names: `names[i]` where there is one, "background" below
    `base`, "unused_<i>" beyond."""
    out = []
    for i in range(count):
        name = names[i] if i < len(names) else None
        if name is None:
            name = "background" if i < base else f"unused_{i}"
        out.append(name)
    return out


def difference(before, now):
    """Where two lists of names first differ: "logit 1: 'green' before,
    'lime' now", or "4 names before, 5 now"."""
    for i, (a, b) in enumerate(zip(before, now, strict=False)):
        if a != b:
            return f"logit {i}: {a!r} before, {b!r} now"
    return f"{len(before)} names before, {len(now)} now"


def write(model_dir, names):
    """Writes `names` (one per logit) as `<model_dir>/class_names.txt`."""
    file_utils.atomic_write(
        os.path.join(model_dir, FILE), "".join(f"{n}\n" for n in names)
    )


def read(path, count=None, field="class_names"):
    """The names in `path`: one per line, or a builder's labels.txt
    (`label<TAB>wnid<TAB>text`, whose wnids are taken in label order).

    Args:
        path: the file.
        count: the logits the names are for; None skips the check.
        field: the option that named `path`, for errors.

    Raises:
        OptionError: (named `field`) no such file, an empty name, or not
            `count` names.
    """
    if os.path.isdir(path):  # before: "no such file"
        raise OptionError(
            field,
            "{field}={path} is a folder; pass the class-name file (one name "
            "per line, or a builder's labels.txt).",
            path=path,
        )
    if not os.path.isfile(path):
        raise OptionError(field, "{field}={path}: no such file.", path=path)
    with open(path, encoding="utf-8-sig") as f:
        lines = f.read().splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    if lines and all("\t" in line for line in lines if line.strip()):
        try:
            lines = _labels_file_names(path, count)
        except ValueError as e:  # before: the line alone, no option
            raise OptionError(
                field,
                "{field}={path}: every line holds a TAB, so it was read as "
                "a builder's labels.txt, and {error} Write one name per "
                "line (no TAB) or a labels.txt.",
                path=path,
                error=str(e).rstrip(".") + ".",
            ) from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            raise OptionError(
                field,
                "{field}={path}: line {number} is empty; each line names "
                "one logit, in order.",
                path=path,
                number=number,
            )
    if count is not None and len(lines) != count:
        raise OptionError(
            field,
            "{field}={path} names {found} classes; the model has {count} "
            "logits (one name per line, logit 0 first; ImageNet's 1001-way "
            "head starts with 'background').",
            path=path,
            found=len(lines),
            count=count,
        )
    return [line.strip() for line in lines]


def duplicates_warning(names, path, field="class_names"):
    """A warning (an `OptionError`, not raised) when `names` (read from
    `path`) give two logits one name: the served `class_names` cannot tell
    them apart. Not refused: ImageNet's readable names hold two "crane"s
    and two "maillot"s. None when every name is distinct."""
    logits = collections.defaultdict(list)
    for i, name in enumerate(names or ()):
        logits[name].append(i)
    shared = [(n, i) for n, i in logits.items() if len(i) > 1]
    if not shared:
        return None
    shown = "; ".join(
        f"{name!r} for logits {', '.join(map(str, where))}"
        for name, where in shared[:5]
    )
    return OptionError(
        field,
        "{field}={path} gives {count} to more than one logit ({shown}{more}): "
        "the served class_names cannot tell them apart. Make each line "
        "unique (e.g. add the class id) unless that is meant.",
        path=path,
        count="a name" if len(shared) == 1 else f"{len(shared)} names",
        shown=shown,
        more="; ..." if len(shared) > 5 else "",
    )


def _labels_file_names(path, count):
    """The names of a builder's labels.txt for `count` logits: by stored
    label (logit i is label i, "background" below the first) when that
    gives `count` (ImageNet's 1..1000 in a 1001-way head), else in label
    order."""
    from assemble_tf.data import metadata

    rows = sorted(metadata.read_labels(path))
    width = rows[-1][0] + 1
    if count in (None, width) and rows[0][0] >= 0:
        return _from_labels(rows, 0, width)
    return [wnid for _, wnid, _ in rows]


def of_run(model_dir, config):
    """`(names, where)` of a training run: its class_names.txt, else (a
    run trained before the runs kept them) its data's where they are still
    readable; `(None, reason)` when neither names them."""
    path = os.path.join(model_dir or "", FILE)
    count = config.data.num_classes
    if os.path.isfile(path):
        return read(path, count, "model_dir"), path
    try:
        names = from_data(config.data)
    except (OSError, ValueError):
        names = None
    if names is None:
        data = config.data.data_dir
        if data and "://" not in data and not os.path.isdir(data):
            # Before: "its data name no classes" of data that was gone.
            return None, (
                f"the run has no {FILE} and its data_dir {data} is gone"
            )
        return None, "neither the run nor its data name the classes"
    where = config.data.source or config.data.data_dir
    return names, f"the run's data ({where})"

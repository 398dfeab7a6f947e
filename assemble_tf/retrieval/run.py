"""Image-retrieval recall@k of a model on a tfds set or an image folder.

Zero-shot retrieval as in Lee et al. 2020 (arXiv 2001.06268) and
clovaai/assembled-cnn `metric/recall_metric.py`: embed every image of the
split with the model's eval preprocessing (the BN'd embedding of an
embedding head, else the pooled GAP/GeM features; a SavedModel's
`feature_vector`; `assemble_tf.retrieval.embed`), then each image is a
query against all the others; recall@k is the fraction of queries with a
same-class image among their k nearest neighbours
(`assemble_tf.retrieval.recall`). For caltech_birds2011 and cars196 the
evaluated images are those of the class-disjoint test half (classes
100-199 / 98-195 of all images) and for stanford_online_products its test
split, unless `class_split` says otherwise. Nothing is downloaded unless
`download`.

`evaluate_retrieval` writes `retrieval.json` (recalls, counts, settings),
`neighbours.png` (a few queries and their nearest neighbours, green = same
class) and with `save_embeddings` `embeddings.npz`, and returns the
report. `tools.eval_retrieval` is its command line.
"""

import dataclasses
import os
import sys
import time

import numpy as np

from assemble_tf.retrieval import recall
from assemble_tf.runs import loading
from official.utils.misc import file_utils
from official.utils.misc import progress as progress_lib
from official.utils.misc.validation import (
    OptionError,
    check_at_least,
    check_choices,
    check_writable_folder,
)

CLASS_SPLITS = ("test", "train", "all")  # sources.retrieval_selection's
NAMED_SKIPPED = 5  # skipped images named in the report and on the console


@dataclasses.dataclass(frozen=True, kw_only=True)
class RetrievalOptions(loading.ModelSource):
    """What to evaluate; field names are `tools.eval_retrieval`'s flags.

    Attributes (besides the `loading.ModelSource` fields):
        source: a tfds name (caltech_birds2011, cars196,
            stanford_online_products, ...) or a folder
            `<root>/<split>/<class>/<image>`.
        saved_model: an export of `tools.export_saved_model`.
        embedding_layer: layer to embed from (default head_embedding_bn,
            else head_pool).
        tfds_data_dir: tfds data_dir (default tfds's).
        download: let tfds download and prepare the set (network).
        split: split to read (tfds syntax); default the class split's for
            the retrieval sets, else test (or the only split).
        class_split: class-disjoint half ("test", "train" or "all") of the
            retrieval sets; None: "test" for those, "all" for the others.
        class_range: (low, high): evaluate only labels in [low, high), of
            any source (e.g. the classes a run fine-tuned with
            `class_range` did not see); for the retrieval sets instead of
            `class_split`.
        similarity: neighbour ranking, "cosine" or "euclidean".
        ks: the k of recall@k.
        chunk_size: queries per search chunk (memory).
        batch_size: images per forward pass.
        eval_preprocessing: eval resize/crop (default the run's / preset's
            / SavedModel's).
        image_size: shorthand for `eval_preprocessing="imagenet_SIZE"`.
        max_images: embed only the first N images (quick runs).
        plot_queries: queries drawn in neighbours.png (0: no plot).
        seed: seed of the plotted queries.
        save_embeddings: also write embeddings.npz (embeddings, labels,
            each row's image and the class names).
        output_dir: where the outputs go (default `<model_dir>/retrieval/
            <source>` or `<weights folder>/retrieval/<weights name>/
            <source>`; required with `saved_model`).
    """

    source: str | None = None
    saved_model: str | None = None
    embedding_layer: str | None = None
    tfds_data_dir: str | None = None
    download: bool = False
    split: str | None = None
    class_split: str | None = None
    class_range: tuple[int, int] | None = None
    similarity: str = "cosine"
    ks: tuple[int, ...] = (1, 2, 4, 8)
    chunk_size: int = 2048
    batch_size: int = 64
    eval_preprocessing: str | None = None
    image_size: int | None = None
    max_images: int | None = None
    plot_queries: int = 6
    seed: int = 0
    save_embeddings: bool = False
    output_dir: str | None = None


@dataclasses.dataclass(frozen=True)
class _Images:
    """The images a run embeds: the opened source's selection."""

    info: object  # sources.SourceInfo
    split: str
    class_range: tuple | None
    class_split: str
    dataset: object  # tf.data of (encoded image, label)
    total: int
    # The split's indices of `dataset`'s images where a class range chose
    # them (tfds), else None (the split's first `total`).
    kept: object = None

    @property
    def where(self):
        return f"{self.split} of {self.info.name}"

    def names(self, indices):
        """Names of the images at `indices` of `dataset`: a folder's
        files (relative to its root), else "<split>[<index>]", the index
        in the split as given (before: among the images the class range
        kept, which named other images of the split: CUB's and Cars'
        default halves)."""
        if self.info.kind != "folder":
            if self.kept is not None:
                indices = [int(self.kept[i]) for i in indices]
            return [f"{self.split}[{i}]" for i in indices]
        paths = _folder_paths(self)
        root = self.info.data_dir
        return [os.path.relpath(paths[i], root) for i in indices]


def _folder_paths(images):
    """The files of a folder source's `_Images`, in `dataset` order (that
    of `sources.encoded_dataset` without shuffling, then the class range;
    `max_images` only cuts the tail)."""
    from assemble_tf.data import sources
    from assemble_tf.data.sources import folder

    info = images.info
    examples, _ = folder.scan_folder(info.data_dir)
    index = {name: i for i, name in enumerate(info.class_names)}
    low, high = images.class_range or (0, len(index))
    return [
        path
        for split, from_, to in sources._absolute(info, images.split)
        for path, cls in examples.get(split, [])[from_:to]
        if low <= index[cls] < high
    ]


def _join(ks):
    return ",".join(str(k) for k in ks)


def source_of(options):
    """`options.source`, else the source the run in `options.model_dir`
    was trained on (its config.json records it)."""
    if options.source:
        return options.source
    if options.model_dir:
        from assemble_tf import config as config_lib

        config = config_lib.ExperimentConfig.from_json(
            os.path.join(options.model_dir, "config.json")
        )
        if config.data.source:
            return config.data.source
        raise OptionError(
            "source",
            "{field} is required: the run {model_dir}={path} was trained on "
            "TFRecords, not on a tfds or folder source it could reuse.",
            others=["model_dir"],
            path=options.model_dir,
        )
    raise OptionError(
        "source",
        "{field} is required: a tfds name (e.g. caltech_birds2011) or an "
        "image folder <root>/<split>/<class>/<image>.",
    )


def validate(options):
    """Raises `OptionError` naming the option of a bad value."""
    if not options.ks or min(options.ks) < 1:
        raise OptionError(
            "ks",
            "{field} needs positive integers. Received: {ks}",
            ks=_join(options.ks),
        )
    choices = {"similarity": recall.SIMILARITIES, "class_split": CLASS_SPLITS}
    check_choices(options, choices)
    if options.class_range is not None:
        from assemble_tf import config as config_lib

        config_lib.parse_class_range(options.class_range)  # 0 <= low < high
    lowest = dict(chunk_size=1, batch_size=1, image_size=32, max_images=2)
    lowest["plot_queries"] = 0
    check_at_least(options, lowest)
    if options.image_size and options.eval_preprocessing:
        # Before: image_size was dropped without a word.
        raise OptionError(
            "image_size",
            "{field}={size} with {eval_preprocessing}={value}: {field} is "
            "shorthand for {eval_preprocessing}=imagenet_{size}; give one.",
            ["eval_preprocessing"],
            size=options.image_size,
            value=options.eval_preprocessing,
        )
    if len(set(options.ks)) != len(options.ks):
        # Before: de-duplicated without a word.
        raise OptionError(
            "ks", "{field}={ks} names a k twice.", ks=_join(options.ks)
        )


def check_ks(ks, num_images, where, max_images=None):
    """Each query is ranked against the other images: k <= images - 1.
    The fix names `max_images` only where it limited the images."""
    if num_images < 2:
        raise ValueError(
            f"Only {num_images} image(s) in {where}; retrieval needs >= 2."
        )
    if max(ks) > num_images - 1:
        limited = max_images is not None and num_images >= max_images
        raise OptionError(
            "ks",
            "{field}={ks}: k can be at most {most} for the {num_images} "
            "images of {where}; lower {field}"
            + (" (or raise {max_images})." if limited else "."),
            ["max_images"] if limited else [],
            ks=_join(ks),
            most=num_images - 1,
            num_images=num_images,
            where=where,
        )


def output_dir(options, info):
    """`options.output_dir`, else for a weights file (with a preset, or
    replacing a run's checkpoint) `<weights folder>/retrieval/<weights
    name>/<source name>`, else `<model_dir>/retrieval/<source name>` (None
    without either: the model source is missing)."""
    if options.output_dir:
        return options.output_dir
    if options.saved_model:
        raise OptionError(
            "output_dir", "{saved_model} needs {field}.", ["saved_model"]
        )
    if not (options.model_dir or options.weights):
        return None  # `load_embedder` names what is missing
    root = loading.default_results_dir(
        options.weights,
        options.model_dir and os.path.join(options.model_dir, "retrieval"),
        "retrieval",
    )
    return os.path.join(root, info.name.replace("/", "_"))


def read_images(options, info, split, class_range, class_split):
    """The `_Images` of `info`'s selection (`sources.retrieval_selection`),
    at most `options.max_images` of them."""
    from assemble_tf.data import sources

    # Named (before: the reason alone, naming no flag).
    total = sources.num_examples(info, split, "split")
    dataset = sources.encoded_dataset(info, split)
    kept = None
    if class_range:
        # The class-disjoint half: which of the split's images it holds
        # (labels only, no decoding), to count and to name them.
        low, high = class_range
        labels = [
            batch
            for batch in dataset.map(lambda image, label: label)
            .batch(8192)
            .as_numpy_iterator()
        ]
        labels = np.concatenate(labels) if labels else np.zeros(0, np.int64)
        kept = np.flatnonzero((labels >= low) & (labels < high))
        dataset = sources.filter_classes(dataset, *class_range)
        total = len(kept)
    if options.max_images:
        dataset = dataset.take(options.max_images)
        total = min(total, options.max_images)
    return _Images(info, split, class_range, class_split, dataset, total, kept)


def load_embedder(options):
    """The `embed.Embedder` of `options`' model source."""
    from assemble_tf.retrieval import embed

    preprocessing = options.eval_preprocessing
    if options.image_size and not preprocessing:
        preprocessing = f"imagenet_{options.image_size}"
    try:
        return _load_embedder(embed, options, preprocessing)
    except OptionError as e:
        if e.field != "eval_preprocessing" or options.eval_preprocessing:
            raise
        # Before: named --eval_preprocessing=imagenet_96, which the user
        # had not given.
        raise OptionError(
            "image_size",
            "{field}={value} crops {value} pixels but the SavedModel takes "
            "{size}: leave {field} out (the export's own preprocessing is "
            "used) or give {size}.",
            value=options.image_size,
            size=e.values.get("size"),
        ) from None


def _load_embedder(embed, options, preprocessing):
    return embed.load_embedder(
        model_dir=options.model_dir,
        checkpoint=options.checkpoint,
        preset=options.preset,
        weights=options.weights,
        saved_model=options.saved_model,
        num_classes=options.num_classes,
        model_overrides=options.model_overrides,
        preprocessing=preprocessing,
        layer=options.embedding_layer,
    )


def embed_images(embedder, images, batch_size, progress=True):
    """(`embed.Embedded`, seconds) of `images`, with a progress bar;
    unusable images are skipped and counted."""
    from assemble_tf.retrieval import embed

    start = time.time()
    with progress_lib.bar(
        total=images.total, desc="embedding", unit="img", progress=progress
    ) as bar:
        done = embed.embed_dataset(
            embedder, images.dataset, batch_size, bar.update
        )
    return done, time.time() - start


def skipped_images(done, images):
    """The report's count of skipped images and the first names.

    Args:
        done: the `embed.Embedded` of `images`.
        images: the `_Images` embedded.

    Returns:
        {"images_read", "images_skipped", "images_not_images",
        "skipped_images"} (at most `NAMED_SKIPPED` names).
    """
    skipped = done.skipped
    return {
        "images_read": done.read,
        "images_skipped": int(skipped.size),
        "images_not_images": done.not_images,
        "skipped_images": images.names(skipped[:NAMED_SKIPPED].tolist()),
    }


def skipped_message(counts, where):
    """The console line about skipped images (None when none was)."""
    from assemble_tf.data.preprocessing import MAX_DECODE_PIXELS

    n = counts["images_skipped"]
    if not n:
        return None
    names = ", ".join(counts["skipped_images"])
    rest = n - len(counts["skipped_images"])
    more = f" and {rest} more" if rest else ""
    return (
        f"WARNING: skipped {n} of the {counts['images_read']} images of "
        f"{where} that cannot be decoded ({counts['images_not_images']} not "
        f"a JPEG, PNG, GIF or BMP; the others truncated, corrupt or over "
        f"{MAX_DECODE_PIXELS:,} pixels): "
        f"{names}{more}. Recall is over the other "
        f"{counts['images_read'] - n}."
    )


def kept_dataset(dataset, done):
    """`dataset` without the images `done` skipped (embedding order)."""
    import tensorflow as tf

    if not done.skipped.size:
        return dataset
    mask = np.zeros(done.read, bool)
    mask[done.indices] = True
    mask = tf.constant(mask)
    return (
        dataset.enumerate()
        .filter(lambda i, element: mask[i])
        .map(lambda i, element: element)
    )


def search(embeddings, labels, options, progress=True):
    """(recall dict of `recall.recall_at_k`, seconds), with a progress bar."""
    start = time.time()
    with progress_lib.bar(
        total=len(labels), desc="searching", unit="query", progress=progress
    ) as bar:
        done = [0]

        def advance(n):
            bar.update(n - done[0])
            done[0] = n

        result = recall.recall_at_k(
            embeddings,
            labels,
            options.ks,
            options.similarity,
            options.chunk_size,
            progress=advance,
        )
    return result, time.time() - start


# What a default output folder's earlier retrieval.json is compared on.
SELECTION_KEYS = (
    "model",
    "split",
    "class_split",
    "class_range",
    "eval_preprocessing",
    "embedding_layer",
    "similarity",
)


def _warn_of_replaced_selection(report, log):
    """Logs a warning where `report` replaces the retrieval.json of
    another selection in its (default) folder."""
    replaced = _replaced_selection(report)
    if replaced:
        note = OptionError(
            "output_dir",
            "{path} held the results of another selection ({replaced}); "
            "they are replaced: give {field} to keep both.",
            path=report["retrieval_json"],
            replaced=replaced,
        )
        log(f"WARNING: {note}")


def _replaced_selection(report):
    """How the retrieval.json `report` replaces differs from it, as
    "key old -> new; ..." (before: the default folder of a run held one
    selection's results, and the next selection replaced them without a
    word), or None."""
    import json

    try:
        with open(report["retrieval_json"], encoding="utf-8") as f:
            before = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(before, dict):
        return None
    changed = [
        f"{key} {before.get(key)} -> {report.get(key)}"
        for key in SELECTION_KEYS
        if key in before and before[key] != report.get(key)
    ]
    return "; ".join(changed) or None


def _report(result, images, embedder, embeddings, labels, seconds, out_dir):
    """The recalls with counts and settings (no outputs written yet)."""
    report = dict(result)
    report.update(
        dataset=images.info.name,
        source_kind=images.info.kind,
        split=images.split,
        class_split=images.class_split,
        class_range=list(images.class_range) if images.class_range else None,
        num_classes_evaluated=int(np.unique(labels[labels != -1]).size),
        embedding_dim=int(embeddings.shape[1]),
        embedding_layer=embedder.layer,
        eval_preprocessing=embedder.preprocessing,
        model=embedder.source,
        images_per_second=round(len(labels) / max(seconds[0], 1e-9), 2),
        search_seconds=round(seconds[1], 3),
        retrieval_json=os.path.join(out_dir, "retrieval.json"),
        neighbours_png=None,
        embeddings_npz=None,
    )
    return report


def _check_usable(options, images, done, out_dir, log):
    """`check_ks` of the images embedded (unreadable ones left out); with
    `save_embeddings` a refusal keeps the embeddings (before: the work of
    the embedding was lost)."""
    try:
        check_ks(options.ks, len(done.labels), images.where, options.max_images)
        classes = np.unique(done.labels)
        if classes.size < 2:
            # Before: recall@K 1.0 by construction, every neighbour of the
            # query's class (a class range of one class was refused).
            raise OptionError(
                "source",
                "{field}: the {count} images of {where} are all of class "
                "{label}; recall@K needs images of at least 2 classes (pick "
                "another {split} or {class_range}).",
                ["split", "class_range"],
                count=len(done.labels),
                where=images.where,
                label=int(classes[0]) if classes.size else "none",
            )
    except ValueError:
        if options.save_embeddings:
            path = save_embeddings(
                out_dir,
                images,
                done.embeddings,
                done.labels,
                images.names(done.indices.tolist()),
            )
            log(f"The embeddings are saved: {path}.")
        raise


def save_embeddings(out_dir, images, embeddings, labels, names):
    """Writes `<out_dir>/embeddings.npz` (embeddings, labels, each row's
    image, the class names); returns its path."""
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "embeddings.npz")
    tmp = path[: -len(".npz")] + ".tmp.npz"
    np.savez(
        tmp,
        embeddings=embeddings,
        labels=labels,
        images=np.asarray(names if names is not None else [], str),
        class_names=np.asarray(images.info.class_names or (), str),
    )
    os.replace(tmp, path)
    return path


def write_outputs(
    report, options, images, embeddings, labels, result, names=None
):
    """embeddings.npz, neighbours.png (as `options` ask) and
    retrieval.json (`report`, with their paths) next to it. `names`: each
    embedding's image (`_Images.names`), kept in embeddings.npz beside the
    class names (before: rows that could not be told apart)."""
    out_dir = os.path.dirname(report["retrieval_json"])
    if options.save_embeddings:
        report["embeddings_npz"] = save_embeddings(
            out_dir, images, embeddings, labels, names
        )
    os.makedirs(out_dir, exist_ok=True)
    if options.plot_queries:
        from assemble_tf.retrieval import plots

        report["neighbours_png"] = plots.neighbours_figure(
            os.path.join(out_dir, "neighbours.png"),
            images.dataset,
            embeddings,
            labels,
            images.info.class_names,
            result,
            num_queries=options.plot_queries,
            similarity=options.similarity,
            seed=options.seed,
        )
    file_utils.atomic_write_json(report["retrieval_json"], report, indent=1)
    return report


def _data_warnings(options, info, class_range):
    """The source's warnings (`sources.folder_warnings`: one split is
    embedded, so which classes the other splits hold does not matter) and
    `trained_classes_warning`'s."""
    from assemble_tf.data import sources

    lines = sources.folder_warnings(info, across_splits=False)
    trained = trained_classes_warning(options.model_dir, info, class_range)
    return lines + ([trained] if trained else [])


def trained_classes_warning(model_dir, info, class_range):
    """A warning when the run in `model_dir` was fine-tuned on a class
    range of the source `info` and the classes evaluated (`class_range`,
    None: all) include some of them (before: recall on trained classes,
    reported as retrieval's, without a word); else None."""
    path = os.path.join(model_dir or "", "config.json")
    if not model_dir or not os.path.isfile(path):
        return None
    from assemble_tf import config as config_lib

    data = config_lib.ExperimentConfig.from_json(path).data
    if not data.class_range or not _same_source(data.source, info):
        return None
    low, high = data.class_range
    lo, hi = class_range or (0, info.num_classes)
    shared = min(high, hi) - max(low, lo)
    if shared <= 0:
        return None
    unseen = [(a, b) for a, b in ((0, low), (high, info.num_classes)) if a < b]
    fix = "evaluate a set of the other classes"
    if len(unseen) == 1:
        fix = "evaluate the classes it never saw ({field}={unseen})"
    # An OptionError, not raised: printed, it names the option as the
    # reader set it (`--class_range` in the binary).
    return OptionError(
        "class_range",
        "{run} was fine-tuned on classes {low}-{last} of {name}; {shared} of "
        "the {count} classes evaluated are among them, so recall is not "
        "class-disjoint (the retrieval protocol scores classes the model "
        "never saw): " + fix + ".",
        run=model_dir,
        low=low,
        last=high - 1,
        name=info.name,
        shared=shared,
        count=hi - lo,
        unseen="{},{}".format(*unseen[0]) if len(unseen) == 1 else None,
    )


def _same_source(source, info):
    if not source:
        return False
    if info.kind == "folder":
        real = os.path.realpath(os.path.expanduser(source))
        return real == os.path.realpath(info.data_dir)
    return source.split(":")[0].split("/")[0] == info.name.split("/")[0]


def _stderr(line):
    print(line, file=sys.stderr)


def evaluate_retrieval(options, progress=True, log=_stderr):
    """Embeds the images of `options`, ranks them and writes the outputs.

    The data are opened and k checked against the image count before the
    model is built, and before any embedding.

    Args:
        options: a `RetrievalOptions`.
        progress: show progress bars of the embedding and the search on
            stderr.
        log: called with the warning line about skipped images (default:
            printed to stderr).

    Returns:
        The report written to retrieval.json: "recall@k" for each k,
        counts (with the images skipped as unusable, `skipped_images`:
        recall is over the others), settings and the paths written.

    Raises:
        OptionError: a bad or missing option (named).
        ValueError, FileNotFoundError: an unusable source, model or split.
    """
    from assemble_tf.data import sources

    validate(options)
    options = dataclasses.replace(options, source=source_of(options))
    # Data first: a missing or unprepared set fails before model building.
    info = sources.open_source(
        options.source, options.tfds_data_dir, options.download
    )
    selection = sources.retrieval_selection(
        info, options.split, options.class_split, options.class_range
    )
    for line in _data_warnings(options, info, selection[1]):
        log(f"WARNING: {line}")
    out_dir = output_dir(options, info)
    # Named before the embedding, not at the report's write.
    check_writable_folder("output_dir", out_dir, bool(options.output_dir))
    images = read_images(options, info, *selection)
    check_ks(options.ks, images.total, images.where, options.max_images)
    embedder = load_embedder(options)
    done, embed_seconds = embed_images(
        embedder, images, options.batch_size, progress
    )
    counts = skipped_images(done, images)
    message = skipped_message(counts, images.where)
    if message:
        log(message)
    embeddings, labels = done.embeddings, done.labels
    images = dataclasses.replace(
        images, dataset=kept_dataset(images.dataset, done)
    )
    _check_usable(options, images, done, out_dir, log)
    result, search_seconds = search(embeddings, labels, options, progress)
    alone = result["num_queries_without_match"]
    if alone:
        log(
            f"WARNING: {alone:,} of {result['num_queries']:,} queries of "
            f"{images.where} have no other image of their class (a class "
            "of one image): they count as misses at every k, as in the "
            "original's recall."
        )
    report = _report(
        result,
        images,
        embedder,
        embeddings,
        labels,
        (embed_seconds, search_seconds),
        out_dir,
    )
    report.update(counts)
    if not options.output_dir:
        _warn_of_replaced_selection(report, log)
    names = images.names(done.indices.tolist())
    return write_outputs(
        report, options, images, embeddings, labels, result, names
    )

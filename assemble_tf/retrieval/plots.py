"""Retrieval figures: queries beside their nearest neighbours.

For the recall@k evaluation of Assemble-ResNet's retrieval experiments
(Lee et al., arXiv 2001.06268, section 5.1; clovaai/assembled-cnn
`metric/recall_metric.py`): the picture a user looks at before the numbers.
"""

import io
import os
import re
import warnings

import numpy as np
from PIL import Image

from assemble_tf.retrieval import recall

PLOT_K = 5  # neighbours per query


def _thumbnail(image_bytes, side=96):
    with Image.open(io.BytesIO(image_bytes)) as image:
        image = image.convert("RGB")
        image.thumbnail((side, side))
        return np.asarray(image)


def neighbours_figure(
    path,
    dataset,
    embeddings,
    labels,
    class_names,
    result,
    num_queries,
    similarity,
    seed=0,
):
    """Draws `num_queries` random queries and their nearest neighbours.

    Args:
        path: the PNG to write (atomically).
        dataset: tf.data of (encoded image, label) in embedding order.
        embeddings, labels: arrays of `embed`; label -1 marks distractors.
        class_names: list or None.
        result: the recall dict (its recall@1 goes in the title).
        num_queries: how many queries (rows).
        similarity: "cosine" or "euclidean".
        seed: picks the queries.

    Returns:
        `path`.
    """
    queries = np.flatnonzero(labels != -1)
    rng = np.random.default_rng(seed)
    n = min(num_queries, queries.size)
    chosen = np.sort(rng.choice(queries, n, replace=False))
    k = min(PLOT_K, len(labels) - 1)
    idx, _ = recall.nearest_neighbours(
        embeddings, k, similarity, queries=chosen
    )
    wanted = set(chosen.tolist()) | set(idx.ravel().tolist())
    images = {}
    for i, (image_bytes, _) in enumerate(dataset.as_numpy_iterator()):
        if i in wanted:
            images[i] = _thumbnail(image_bytes)
            if len(images) == len(wanted):
                break

    def name(label):
        if class_names is not None and 0 <= label < len(class_names):
            return class_names[label]
        return f"class {label}"

    tmp = path[: -len(".png")] + ".tmp.png"

    def draw(names):
        return _drawn(
            recall.plot_neighbours,
            tmp,
            [images[i] for i in chosen],
            [[images[j] for j in row] for row in idx],
            labels[idx] == labels[chosen][:, None],
            query_labels=names,
            title=f"{result['similarity']} recall@1 {result['recall@1']:.3f}"
            if "recall@1" in result
            else None,
        )

    names = [name(labels[i]) for i in chosen]
    missing = draw(names)
    if missing:
        # Class names the font has no glyphs for (e.g. CJK folder names
        # under matplotlib's DejaVu Sans) were boxes: their label instead.
        draw(
            [
                f"class {labels[i]}" if set(n) & missing else n
                for i, n in zip(chosen, names, strict=True)
            ]
        )
    os.replace(tmp, path)
    return path


_MISSING_GLYPH = re.compile(r"^Glyph (\d+) .*missing from")


def _drawn(plot, *args, **kwargs):
    """Runs `plot(*args, **kwargs)`; returns the characters matplotlib
    had no glyph for (its "Glyph N missing" warnings, not passed on);
    other warnings pass."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plot(*args, **kwargs)
    missing = set()
    for w in caught:
        found = _MISSING_GLYPH.match(str(w.message))
        if found:
            missing.add(chr(int(found.group(1))))
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return missing

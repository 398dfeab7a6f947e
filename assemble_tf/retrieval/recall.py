"""Recall@k for image retrieval, chunked over queries.

Lee et al. 2020 ("Compounding the Performance Improvements of Assembled
Techniques in a Convolutional Neural Network", arXiv 2001.06268) report
zero-shot retrieval as recall@k; clovaai/assembled-cnn computes it in
`metric/recall_metric.py`. This is a new implementation
of those semantics:

* Similarity: "cosine" L2-normalises queries and gallery, then takes dot
  products (an all-zero vector stays zero: similarity 0 to everything);
  "euclidean" is the negative squared L2 distance
  (2 q.g - |q|^2 - |g|^2).
* Queries are the items whose label is not -1; label -1 marks a distractor,
  which is in the gallery (and can be a neighbour, always a miss) but is
  never a query. A query with no other item of its label still counts (it
  can only miss).
* Without a separate gallery, the query set is the gallery and each query's
  own index is excluded from its neighbours (a duplicate image at another
  index is kept).
* recall@k is the fraction of queries with at least one same-label item
  among their first k neighbours.
* Ties: neighbours are ranked by score, equal scores by the lower gallery
  index (the order of `tf.math.top_k`). Exact ties (duplicate images) thus
  rank the same for any chunk size; scores themselves may differ in the
  last bit between chunk sizes (the matmul blocking depends on the shape),
  which can only reorder neighbours whose scores agree to ~1e-7.

The search runs in TensorFlow (a GPU when there is one): queries are
processed `chunk_size` at a time against the whole gallery, then
`tf.math.top_k`. Peak memory beyond the inputs is about
chunk_size x N x 4 bytes (the float32 scores of one chunk; the
element-wise steps run in one tf.function, which reuses the buffer) plus
chunk_size x (k + 1) for the top-k, e.g. 0.5 GB for 2,048 queries against
the 60,502 test images of Stanford Online Products; the gallery itself is
N x D x 4 bytes (0.5 GB at D = 2048), held twice for cosine (raw and
normalised). Self-exclusion follows the original: the top k + 1 are taken
and the query's own index dropped. float64 inputs are kept in float64
(twice the memory), anything else is computed in float32.
"""

import math

import numpy as np

from official.utils.misc.validation import check_positive_int

SIMILARITIES = ("cosine", "euclidean")


def _as_matrix(name, x):
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(
            f"{name} must be a non-empty [N, D] array. Received shape "
            f"{x.shape}."
        )
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(
        x.dtype, np.complexfloating
    ):
        raise ValueError(f"{name} must be real numbers, got dtype {x.dtype}.")
    if x.dtype != np.float64:
        x = x.astype(np.float32)
    if not np.all(np.isfinite(x)):
        raise ValueError(
            f"{name} has {int(np.sum(~np.isfinite(x)))} NaN or infinite values."
        )
    return x


def _as_labels(name, labels, n):
    labels = np.asarray(labels)
    if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"{name} must be {n} integers (one per row). Received shape "
            f"{labels.shape}, dtype {labels.dtype}."
        )
    return labels.astype(np.int64)


def _check_similarity(similarity):
    if similarity not in SIMILARITIES:
        raise ValueError(
            f"similarity must be one of {SIMILARITIES}. Received: "
            f"similarity={similarity!r}"
        )


def nearest_neighbours(
    embeddings,
    k,
    similarity="cosine",
    chunk_size=2048,
    gallery=None,
    queries=None,
    progress=None,
):
    """The top-k gallery items of each query, best first.

    Args:
        embeddings: [N, D] query vectors (also the gallery when `gallery`
            is None).
        k: neighbours per query.
        similarity: "cosine" or "euclidean" (negative squared distance).
        chunk_size: queries scored at a time (memory: chunk_size x M x 5
            bytes for M gallery items).
        gallery: optional [M, D] gallery; when given nothing is excluded.
        queries: optional row indices of `embeddings` to search for (default
            all); self-exclusion uses the row index.
        progress: optional callable(num_queries_done) after each chunk.

    Returns:
        (indices int64 [Q, k], scores [Q, k]) into the gallery (or into
        `embeddings`), ties broken by the lower index.

    Raises:
        ValueError: bad shapes, k, similarity or chunk_size.
    """
    _check_similarity(similarity)
    check_positive_int("chunk_size", chunk_size)
    embeddings, gallery = _as_search_matrices(embeddings, gallery)
    exclude_self = gallery is None
    if exclude_self:
        gallery = embeddings
    queries = _as_queries(queries, embeddings.shape[0])
    _check_k(k, gallery.shape[0], exclude_self)
    return _search_chunks(
        embeddings,
        gallery,
        queries,
        k,
        similarity,
        chunk_size,
        exclude_self,
        progress,
    )


def _as_search_matrices(embeddings, gallery):
    """The checked query and gallery matrices, in one dtype.

    Args:
        embeddings: [N, D] query vectors.
        gallery: [M, D] gallery vectors, or None (the queries are the
            gallery).

    Returns:
        (embeddings, gallery or None); both float64 when their dtypes differ.

    Raises:
        ValueError: a matrix is bad (see `_as_matrix`), or D differs.
    """
    embeddings = _as_matrix("embeddings", embeddings)
    if gallery is None:
        return embeddings, None
    gallery = _as_matrix("gallery", gallery)
    if gallery.shape[1] != embeddings.shape[1]:
        raise ValueError(
            f"gallery has {gallery.shape[1]} dimensions, embeddings "
            f"{embeddings.shape[1]}."
        )
    if gallery.dtype != embeddings.dtype:
        gallery = gallery.astype(np.float64)
        embeddings = embeddings.astype(np.float64)
    return embeddings, gallery


def _as_queries(queries, n):
    """Row indices to search for as int64 [Q] (None: all `n` rows).

    Raises:
        ValueError: an index outside 0..n - 1.
    """
    if queries is None:
        queries = np.arange(n, dtype=np.int64)
    queries = np.asarray(queries, np.int64).reshape(-1)
    if queries.size and (queries.min() < 0 or queries.max() >= n):
        raise ValueError(f"queries must index 0..{n - 1}.")
    return queries


def _check_k(k, m, exclude_self):
    """Raises ValueError unless `k` is an int in 1..available neighbours.

    Args:
        k: neighbours per query.
        m: gallery size.
        exclude_self: whether each query's own index is excluded (one
            neighbour fewer available).
    """
    available = m - 1 if exclude_self else m
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise ValueError(f"k must be an int, got {k!r}.")
    if not 1 <= k <= available:
        raise ValueError(
            f"k must be in 1..{available} (gallery of {m}"
            f"{', self excluded' if exclude_self else ''}). Received: k={k}"
        )


def _search_chunks(
    embeddings,
    gallery,
    queries,
    k,
    similarity,
    chunk_size,
    exclude_self,
    progress,
):
    """The top-k search of `nearest_neighbours`, `chunk_size` queries at a
    time, on checked inputs.

    Args:
        embeddings: [N, D] query vectors.
        gallery: [M, D] gallery vectors (`embeddings` itself when
            `exclude_self`).
        queries: int64 [Q] rows of `embeddings` to search for.
        k: neighbours per query.
        similarity: one of `SIMILARITIES`.
        chunk_size: queries scored at a time.
        exclude_self: drop each query's own row index from its neighbours.
        progress: optional callable(num_queries_done) after each chunk.

    Returns:
        (indices int64 [Q, k], scores [Q, k]), as `nearest_neighbours`.
    """
    import tensorflow as tf

    g = tf.constant(gallery)
    g_sq = tf.reduce_sum(g * g, axis=1)
    if similarity == "cosine":
        g = _normalize(g)
    # Self-exclusion as the original: take one neighbour more and drop the
    # query's own index (or, when ties pushed it out, the last one). The
    # ranking is total (score, then index), so this equals masking the self
    # score, without a second [chunk, M] tensor.
    fetch = k + 1 if exclude_self else k
    search = _chunk_search(similarity, fetch)
    out_idx = np.zeros((queries.size, k), np.int64)
    out_score = np.zeros((queries.size, k), embeddings.dtype)
    for start in range(0, queries.size, chunk_size):
        rows = queries[start : start + chunk_size]
        values, indices = search(tf.constant(embeddings[rows]), g, g_sq)
        values, indices = values.numpy(), indices.numpy().astype(np.int64)
        if exclude_self:
            values, indices = _drop_self(values, indices, rows, k)
        out_idx[start : start + rows.size] = indices
        out_score[start : start + rows.size] = values
        if progress is not None:
            progress(start + rows.size)
    return out_idx, out_score


def _drop_self(values, indices, rows, k):
    """The first `k` of k + 1 neighbours that are not the query itself.

    Args:
        values: [C, k + 1] scores, best first.
        indices: int64 [C, k + 1] gallery indices of `values`.
        rows: int64 [C] the queries' own indices.
        k: neighbours to keep.

    Returns:
        (values, indices), each [C, k]: the query's own index dropped (or,
        when it is not among them, the last neighbour), the order kept.
    """
    keep = np.argsort(indices == rows[:, None], axis=1, kind="stable")
    keep = keep[:, :k]
    values = np.take_along_axis(values, keep, axis=1)
    indices = np.take_along_axis(indices, keep, axis=1)
    return values, indices


def _chunk_search(similarity, k):
    """A tf.function: (queries, gallery, |gallery|^2) -> top-k of each."""
    import tensorflow as tf

    @tf.function(reduce_retracing=True, autograph=False)
    def search(q, g, g_sq):
        if similarity == "cosine":
            scores = tf.matmul(_normalize(q), g, transpose_b=True)
        else:
            q_sq = tf.reduce_sum(q * q, axis=1, keepdims=True)
            scores = tf.matmul(q, g, transpose_b=True) * 2.0 - q_sq - g_sq
        return tf.math.top_k(scores, k=k, sorted=True)

    return search


def _normalize(x):
    import tensorflow as tf

    norm = tf.sqrt(tf.reduce_sum(x * x, axis=1, keepdims=True))
    return x / tf.maximum(norm, tf.constant(1e-12, x.dtype))


def recall_at_k(
    embeddings,
    labels,
    ks=(1, 2, 4, 8),
    similarity="cosine",
    chunk_size=2048,
    gallery=None,
    gallery_labels=None,
    progress=None,
):
    """Recall@k of every query (label != -1) against the gallery.

    Args:
        embeddings: [N, D] embeddings, one per image.
        labels: [N] integer labels; -1 marks a distractor (never a query).
        ks: increasing or not, each in 1..gallery size (-1 without gallery).
        similarity: "cosine" (default) or "euclidean".
        chunk_size: queries per chunk (see the module docstring for memory).
        gallery, gallery_labels: a separate gallery ([M, D], [M]); by
            default the query set is the gallery and each query's own index
            is excluded.
        progress: optional callable(num_queries_done).

    Returns:
        {"recall@k": float for each k, "num_queries": int, "num_gallery":
        int, "num_queries_without_match": int (queries with no other
        gallery item of their label: misses at every k), "similarity":
        str}.

    Raises:
        ValueError: bad shapes, ks, similarity, or no query at all.
    """
    embeddings = _as_matrix("embeddings", embeddings)
    labels = _as_labels("labels", labels, embeddings.shape[0])
    if gallery is None:
        if gallery_labels is not None:
            raise ValueError("gallery_labels given without gallery.")
        g_labels = labels
    else:
        gallery = _as_matrix("gallery", gallery)
        if gallery_labels is None:
            raise ValueError("gallery needs gallery_labels.")
        g_labels = _as_labels("gallery_labels", gallery_labels, len(gallery))
    ks = _check_ks(ks)
    _check_similarity(similarity)
    queries = np.flatnonzero(labels != -1)
    if queries.size == 0:
        raise ValueError(
            f"No queries: all {labels.size} labels are -1 (distractors)."
        )
    indices, _ = nearest_neighbours(
        embeddings,
        max(ks),
        similarity=similarity,
        chunk_size=chunk_size,
        gallery=gallery,
        queries=queries,
        progress=progress,
    )
    hits = g_labels[indices] == labels[queries][:, None]  # [Q, k_max]
    first_hit = np.where(hits.any(axis=1), hits.argmax(axis=1), math.inf)
    result = {f"recall@{k}": float(np.mean(first_hit < k)) for k in ks}
    result.update(
        num_queries=int(queries.size),
        num_gallery=int(len(g_labels)),
        num_queries_without_match=_without_match(
            labels[queries], g_labels, gallery is None
        ),
        similarity=similarity,
    )
    return result


def _without_match(query_labels, gallery_labels, exclude_self):
    """Queries whose label no other gallery item has."""
    values, counts = np.unique(gallery_labels, return_counts=True)
    available = dict(zip(values.tolist(), counts.tolist(), strict=True))
    need = 2 if exclude_self else 1
    return int(
        sum(available.get(label, 0) < need for label in query_labels.tolist())
    )


def _check_ks(ks):
    try:
        ks = tuple(ks)
    except TypeError:
        raise ValueError(
            f"ks must be a sequence of ints, got {ks!r}."
        ) from None
    if not ks or not all(
        isinstance(k, (int, np.integer)) and not isinstance(k, bool) and k >= 1
        for k in ks
    ):
        raise ValueError(f"ks must be positive ints, got {ks!r}.")
    return tuple(int(k) for k in ks)


def plot_neighbours(
    path, queries, neighbours, matches, query_labels=None, title=None
):
    """Writes a PNG grid: one row per query, then its top-k neighbours.

    Args:
        path: the .png file.
        queries: list of Q images (H x W x 3 uint8, sizes may differ).
        neighbours: Q lists of k images each.
        matches: [Q, k] booleans: same label as the query (green border)
            or not (red border).
        query_labels: optional Q strings shown above the queries.
        title: optional figure title.

    Returns:
        The path written.
    """
    import os

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = os.fspath(path)
    if not path.lower().endswith(".png"):
        raise ValueError(f"path must end with .png, got {path!r}.")
    matches = np.asarray(matches, bool)
    nq = len(queries)
    if nq == 0 or matches.ndim != 2 or matches.shape[0] != nq:
        raise ValueError(
            f"Need >= 1 query and matches of shape [Q, k]; got {nq} queries "
            f"and matches shape {matches.shape}."
        )
    k = matches.shape[1]
    if len(neighbours) != nq or any(len(row) != k for row in neighbours):
        raise ValueError(f"neighbours must be {nq} lists of {k} images.")
    figure = Figure(figsize=(1.6 * (k + 1), 1.7 * nq + (0.4 if title else 0)))
    FigureCanvasAgg(figure)
    axes = figure.subplots(nq, k + 1, squeeze=False)
    for i in range(nq):
        _show(axes[i, 0], queries[i], "black")
        axes[i, 0].set_title(
            "query" if query_labels is None else str(query_labels[i])[:18],
            fontsize=8,
        )
        for j in range(k):
            colour = "tab:green" if matches[i, j] else "tab:red"
            _show(axes[i, j + 1], neighbours[i][j], colour)
            if i == 0:
                axes[i, j + 1].set_title(f"#{j + 1}", fontsize=8)
    if title:
        figure.suptitle(title, fontsize=10)
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, format="png", dpi=80)
    return path


def _show(ax, image, colour):
    ax.imshow(np.asarray(image, np.uint8))
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_edgecolor(colour)
        spine.set_linewidth(4)

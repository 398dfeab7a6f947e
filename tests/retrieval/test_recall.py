"""recall@k and nearest neighbours (assemble_tf.retrieval.recall)."""

import numpy as np
import pytest
from PIL import Image

from assemble_tf.retrieval import recall


def _reference(embeddings, labels, ks, similarity, gallery=None, g_labels=None):
    """Brute force: a double loop, ties to the lower gallery index."""
    exclude_self = gallery is None
    if exclude_self:
        gallery, g_labels = embeddings, labels
    hits = {k: 0 for k in ks}
    queries = 0
    for i, (q, label) in enumerate(zip(embeddings, labels, strict=True)):
        if label == -1:
            continue
        queries += 1
        scored = []
        for j, g in enumerate(gallery):
            if exclude_self and j == i:
                continue
            if similarity == "cosine":
                s = q @ g / (np.linalg.norm(q) * np.linalg.norm(g))
            else:
                s = -np.sum((q - g) ** 2)
            scored.append((-s, j))
        order = [j for _, j in sorted(scored)]
        for k in ks:
            hits[k] += any(g_labels[j] == label for j in order[:k])
    return {f"recall@{k}": hits[k] / queries for k in ks}, queries


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 6, 90)
    centres = rng.normal(size=(6, 5))
    embeddings = centres[labels] + 1.3 * rng.normal(size=(90, 5))
    labels[rng.choice(90, 9, replace=False)] = -1  # distractors
    return embeddings, labels


@pytest.mark.parametrize("similarity", ["cosine", "euclidean"])
def test_matches_brute_force(data, similarity):
    embeddings, labels = data
    ks = (1, 2, 3, 5, 8, 16)
    got = recall.recall_at_k(embeddings, labels, ks, similarity, 16)
    want, queries = _reference(embeddings, labels, ks, similarity)
    assert got["num_queries"] == queries == 81
    assert got["num_gallery"] == 90
    assert got["similarity"] == similarity
    for key, value in want.items():
        assert got[key] == pytest.approx(value, abs=1e-12), key
    values = [got[f"recall@{k}"] for k in ks]
    assert values == sorted(values)
    assert 0.2 < values[0] < values[-1] < 1.0  # a non-trivial case


@pytest.mark.parametrize("similarity", ["cosine", "euclidean"])
def test_separate_gallery_matches_brute_force(data, similarity):
    embeddings, labels = data
    q, g = embeddings[:30], embeddings[30:]
    ql, gl = labels[:30], labels[30:]
    got = recall.recall_at_k(
        q, ql, (1, 4), similarity, gallery=g, gallery_labels=gl
    )
    want, queries = _reference(q, ql, (1, 4), similarity, g, gl)
    assert got["num_queries"] == queries
    assert got["num_gallery"] == 60
    assert got["recall@1"] == pytest.approx(want["recall@1"], abs=1e-12)
    assert got["recall@4"] == pytest.approx(want["recall@4"], abs=1e-12)


def test_chunked_equals_unchunked(data):
    embeddings, labels = data
    embeddings = embeddings.astype(np.float32)
    results = [
        recall.recall_at_k(embeddings, labels, (1, 4), chunk_size=c)
        for c in (1, 7, 1000)
    ]
    assert results[0] == results[1] == results[2]
    neighbours = [
        recall.nearest_neighbours(embeddings, 5, chunk_size=c)
        for c in (1, 7, 1000)
    ]
    for idx, scores in neighbours[1:]:
        np.testing.assert_array_equal(idx, neighbours[0][0])
        # BLAS blocking depends on the chunk shape: last-bit differences.
        np.testing.assert_allclose(scores, neighbours[0][1], atol=1e-6)


def test_query_excludes_itself():
    # Including the query itself would give recall@1 = 1.
    x = np.array([[1, 0], [0, 1], [1, 0], [0, 1]], np.float32)
    labels = [0, 0, 1, 1]
    got = recall.recall_at_k(x, labels, (1, 2, 3))
    assert (got["recall@1"], got["recall@2"], got["recall@3"]) == (0, 0.5, 1)
    # Against an explicit gallery nothing is excluded: queries 0 and 1 find
    # themselves; 2 and 3 tie with their copies 0 and 1 (lower index first).
    same = recall.recall_at_k(x, labels, (1,), gallery=x, gallery_labels=labels)
    assert same["recall@1"] == 0.5
    idx, scores = recall.nearest_neighbours(x, 3)
    # Ties (score 0) go to the lower index.
    np.testing.assert_array_equal(
        idx, [[2, 1, 3], [3, 0, 2], [0, 1, 3], [1, 0, 2]]
    )
    np.testing.assert_allclose(scores, [[1, 0, 0]] * 4, atol=1e-7)


def test_hand_made_euclidean_with_distractor_and_tie():
    x = np.array([[0.0], [1.0], [3.0], [6.0], [10.0]])
    labels = [0, 1, 0, 1, -1]
    got = recall.recall_at_k(x, labels, (1, 2, 3), similarity="euclidean")
    # q0: 1(L1) 2(L0)   q1: 0 2 3(L1)   q2: 1, tie 0/3 -> 0(L0)
    # q3: 2(L0) 4(distractor, a miss) 1(L1)
    assert got == {
        "recall@1": 0.0,
        "recall@2": 0.5,
        "recall@3": 1.0,
        "num_queries": 4,
        "num_gallery": 5,
        "num_queries_without_match": 0,
        "similarity": "euclidean",
    }
    idx, scores = recall.nearest_neighbours(x, 2, similarity="euclidean")
    np.testing.assert_array_equal(idx, [[1, 2], [0, 2], [1, 0], [2, 4], [3, 2]])
    np.testing.assert_array_equal(scores[:, 0], [-1, -1, -4, -9, -16])


def test_distractors_never_query_but_count_as_miss():
    x = np.array([[1, 0], [1, 0.01], [0.9, 0.5], [0, 1], [0, 1]], np.float32)
    labels = [3, -1, 3, -1, -1]
    got = recall.recall_at_k(x, labels, (1, 2))
    assert got["num_queries"] == 2
    # q0: nearest is the distractor 1 (miss), then 2 (hit). q2 likewise.
    assert (got["recall@1"], got["recall@2"]) == (0.0, 1.0)
    with pytest.raises(ValueError, match="all 5 labels are -1"):
        recall.recall_at_k(x, [-1] * 5, (1,))


def test_queries_of_a_one_image_class_are_counted_as_misses():
    """A class with one image has no possible match (its query is excluded
    from its own neighbours): a miss at every k, as in the original, and
    counted so that a report can say so."""
    x = np.array([[0.0], [1.0], [2.0], [9.0]])
    labels = [0, 0, 1, 2]  # classes 1 and 2: one image each
    got = recall.recall_at_k(x, labels, (1, 3), similarity="euclidean")
    assert got["num_queries_without_match"] == 2
    assert (got["recall@1"], got["recall@3"]) == (0.5, 0.5)
    # Against a separate gallery holding class 1 twice, only class 2 lacks.
    gallery = np.array([[2.0], [2.5], [0.0]])
    got = recall.recall_at_k(
        x, labels, (1,), gallery=gallery, gallery_labels=[1, 1, 0]
    )
    assert got["num_queries_without_match"] == 1


def test_cosine_is_scale_free_euclidean_is_not():
    x = np.array([[1, 0], [4, 0.5], [0.2, 0.1]], np.float64)
    labels = [0, 1, 0]
    scaled = x * np.array([[1], [0.05], [1]])
    c1 = recall.recall_at_k(x, labels, (1,))
    c2 = recall.recall_at_k(scaled, labels, (1,))
    assert c1 == c2
    e1 = recall.recall_at_k(x, labels, (1,), similarity="euclidean")
    e2 = recall.recall_at_k(scaled, labels, (1,), similarity="euclidean")
    assert e1["recall@1"] != e2["recall@1"]


def test_random_embeddings_statistics():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 10, 2000)
    noise = rng.normal(size=(2000, 16)).astype(np.float32)
    got = recall.recall_at_k(noise, labels, (1, 8), chunk_size=512)
    # No structure: P(hit@1) ~ 0.1, P(hit@8) ~ 1 - 0.9^8 = 0.57.
    assert 0.08 < got["recall@1"] < 0.12
    assert 0.53 < got["recall@8"] < 0.61
    centres = rng.normal(size=(10, 16)).astype(np.float32)
    clean = centres[labels] + 0.05 * noise
    assert recall.recall_at_k(clean, labels, (1,))["recall@1"] == 1.0


def test_validation_errors():
    x = np.zeros((4, 3), np.float32)
    x[:, 0] = [1, 2, 3, 4]
    labels = [0, 0, 1, 1]
    with pytest.raises(ValueError, match="similarity='dot'"):
        recall.recall_at_k(x, labels, similarity="dot")
    with pytest.raises(ValueError, match=r"k=4"):
        recall.recall_at_k(x, labels, (1, 4))  # 3 neighbours left
    with pytest.raises(ValueError, match=r"\(0,\)"):
        recall.recall_at_k(x, labels, (0,))
    with pytest.raises(ValueError, match="4 integers"):
        recall.recall_at_k(x, [0, 1, 2], (1,))
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        recall.recall_at_k(np.ones(4), labels, (1,))
    with pytest.raises(ValueError, match="NaN"):
        recall.recall_at_k(np.full((4, 3), np.nan), labels, (1,))
    with pytest.raises(ValueError, match="Received: chunk_size=0$"):
        recall.recall_at_k(x, labels, (1,), chunk_size=0)
    with pytest.raises(ValueError, match="gallery_labels"):
        recall.recall_at_k(x, labels, (1,), gallery=x)
    with pytest.raises(ValueError, match="dimensions"):
        recall.nearest_neighbours(x, 1, gallery=np.ones((5, 2)))


def test_plot_neighbours(tmp_path):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (20 + i, 16, 3), np.uint8) for i in range(6)]
    path = recall.plot_neighbours(
        tmp_path / "sub" / "nn.png",
        images[:2],
        [images[2:5], images[3:6]],
        [[True, False, True], [False, False, True]],
        query_labels=["a", "b"],
        title="recall@1 0.50",
    )
    with Image.open(path) as png:
        assert png.format == "PNG"
        width, height = png.size
    assert width > height > 100  # 4 columns, 2 rows
    with pytest.raises(ValueError, match="must end with .png"):
        recall.plot_neighbours(tmp_path / "x.jpg", images[:1], [[]], [[]])
    with pytest.raises(ValueError, match="1 lists of 2 images"):
        recall.plot_neighbours(
            tmp_path / "x.png", images[:1], [images[:1]], [[True, True]]
        )


def test_self_exclusion_with_ties_beyond_k():
    # Four identical vectors: the query's own index may fall outside the
    # top k + 1 (ties go to lower indices); the result is the same as
    # ranking all other items.
    x = np.ones((4, 3), np.float32)
    idx, _ = recall.nearest_neighbours(x, 1)
    np.testing.assert_array_equal(idx[:, 0], [1, 0, 0, 0])
    idx, _ = recall.nearest_neighbours(x, 3)  # k = every other item
    np.testing.assert_array_equal(
        idx, [[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]]
    )
    got = recall.recall_at_k(x, [0, 1, 2, 0], (1, 3))
    assert (got["recall@1"], got["recall@3"]) == (0.25, 0.5)

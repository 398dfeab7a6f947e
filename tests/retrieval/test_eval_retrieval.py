"""Embeddings (assemble_tf.retrieval.embed) and tools.eval_retrieval."""

import dataclasses
import json
import os
import types

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from assemble_tf.data import sources
from assemble_tf.models import build_model
from assemble_tf.retrieval import embed
from tests import testing_utils
from tests.testing_utils import jpeg_bytes, smooth_image

TINY = {"base_width": 8, "block_sizes": (1, 1, 1, 1)}
CLASSES = ("ant", "bee", "cat")


def _images(root):
    """test/<class>/: 4 images per class, each drawn twice (0/2, 1/3)."""
    for c, cls in enumerate(CLASSES):
        for split, n in (("train", 1), ("test", 4)):
            os.makedirs(root / split / cls)
            for i in range(n):
                image = smooth_image(40 + 4 * c, 48, seed=10 * c + i % 2)
                (root / split / cls / f"{i}.jpg").write_bytes(jpeg_bytes(image))
    return root


def _info(name, kind="tfds", num_classes=10, splits=None):
    return sources.SourceInfo(
        name=name,
        kind=kind,
        data_dir="/x",
        num_classes=num_classes,
        class_names=None,
        splits=splits or {"train": 10, "test": 10},
    )


def test_retrieval_selection():
    sel = sources.retrieval_selection
    cars = _info("cars196", num_classes=196)
    assert sel(cars) == ("train+test", (98, 196), "test")
    assert sel(cars, class_split="train") == ("train+test", (0, 98), "train")
    assert sel(cars, class_split="all") == ("train+test", None, "all")
    assert sel(cars, "test") == ("test", (98, 196), "test")
    cub = _info("caltech_birds2011", num_classes=200)
    assert sel(cub) == ("train+test", (100, 200), "test")
    sop = _info("stanford_online_products", num_classes=22634)
    assert sel(sop) == ("test", (11318, 22634), "test")
    assert sel(sop, class_split="all") == ("train+test", None, "all")
    folder = _info("mine", kind="folder")
    assert sel(folder) == ("test", None, "all")
    assert sel(_info("x", splits={"val": 3})) == ("val", None, "all")
    # The split tools.finetune evaluates such a folder on (before: "pass
    # --split" for train/ and val/).
    for held_out in ("val", "validation"):
        two = _info("x", kind="folder", splits={"train": 4, held_out: 2})
        assert sel(two) == (held_out, None, "all")
    both = {"train": 4, "validation": 2, "test": 2}
    assert sel(_info("x", splits=both))[0] == "test"
    with pytest.raises(ValueError, match="`class_split`=test needs"):
        sel(folder, class_split="test")
    with pytest.raises(ValueError, match="pass `split`"):
        sel(_info("x", splits={"a": 1, "b": 2}))
    with pytest.raises(ValueError, match="class_split='half'"):
        sel(cars, class_split="half")
    # A class range, of any set: over both halves' images for the
    # retrieval sets, else over the default split.
    assert sel(cub, class_range=(150, 200)) == ("train+test", (150, 200), "all")
    assert sel(cub, "test", None, (0, 10)) == ("test", (0, 10), "all")
    assert sel(folder, class_range=(0, 5)) == ("test", (0, 5), "all")
    assert sel(cub, None, "all", (0, 10))[1] == (0, 10)
    with pytest.raises(ValueError) as e:
        sel(cub, None, "test", (0, 10))
    assert e.value.as_flag() == (
        "--class_range and --class_split=test both choose the classes "
        "evaluated: give one (--class_range reads both halves' images)."
    )
    with pytest.raises(ValueError, match="past the 200 classes"):
        sel(cub, class_range=(100, 201))


@pytest.mark.slow  # over 2 s on 2 cores
def test_embedding_layer_and_compute_embeddings():
    model = build_model("resnet50", num_classes=3, embedding_size=16, **TINY)
    sub, layer = embed.embedding_model(model)
    assert layer == "head_embedding_bn"  # BN'd embedding, before its ReLU
    plain = build_model("resnet50", num_classes=3, **TINY)
    assert embed.embedding_model(plain)[1] == "head_pool"
    with pytest.raises(ValueError, match="`embedding_layer`=nope"):
        embed.embedding_model(plain, "nope")

    embedder = embed.keras_embedder(model, "imagenet_64")
    assert embedder.crop_size == 64
    images = [smooth_image(50 + i, 70, seed=i) for i in range(5)]
    ds = tf.data.Dataset.from_tensor_slices(
        (
            [jpeg_bytes(x) for x in images],
            tf.constant([2, 0, 1, 1, 2], tf.int64),
        )
    )
    seen = []
    emb, labels = embed.compute_embeddings(embedder, ds, 2, seen.append)
    assert seen == [2, 2, 1]
    assert emb.shape == (5, 16) and emb.dtype == np.float32
    np.testing.assert_array_equal(labels, [2, 0, 1, 1, 2])
    crops = next(iter(embed.preprocessed_batches(ds, "imagenet_64", 5)))[0]
    assert crops.shape == (5, 64, 64, 3)
    np.testing.assert_allclose(
        emb, sub(crops, training=False), rtol=1e-5, atol=1e-4
    )
    # Negative values: the embedding is taken before the ReLU.
    assert emb.min() < 0
    with pytest.raises(ValueError, match="No images"):
        embed.compute_embeddings(embedder, ds.take(0), 2)
    # Unusable images are skipped and counted, the others keep their place.
    bad = tf.data.Dataset.from_tensor_slices(
        (
            [b"text", jpeg_bytes(images[0])[:300]],
            tf.constant([0, 1], tf.int64),
        )
    )
    seen = []
    mixed = bad.concatenate(ds.take(2)).concatenate(bad)
    embed.embed_dataset(embedder, mixed, 1, seen.append)
    assert seen == [3, 1, 2]  # every image read, the skipped ones too
    done = embed.embed_dataset(embedder, ds.take(2).concatenate(bad), 2)
    assert (done.read, done.not_images) == (4, 1)
    np.testing.assert_array_equal(done.indices, [0, 1])
    np.testing.assert_array_equal(done.skipped, [2, 3])
    np.testing.assert_allclose(done.embeddings, emb[:2], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="None of the 2 images"):
        embed.compute_embeddings(embedder, bad, 2)


class _Features(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None, 64, 64, 3], tf.float32)])
    def feature_vector(self, images):
        return {"features": tf.reduce_mean(images, axis=[1, 2])}


def test_saved_model_embedder(tmp_path):
    module = _Features()
    path = str(tmp_path / "sm")
    tf.saved_model.save(
        module, path, signatures={"feature_vector": module.feature_vector}
    )
    embedder = embed.saved_model_embedder(path)
    assert embedder.preprocessing == "imagenet_64"
    assert embedder.layer == "feature_vector"
    x = np.arange(2 * 64 * 64 * 3, dtype=np.float32).reshape(2, 64, 64, 3)
    np.testing.assert_allclose(embedder.fn(x), x.mean(axis=(1, 2)), rtol=1e-6)
    with pytest.raises(ValueError, match="crops 224 pixels"):
        embed.saved_model_embedder(path, "imagenet")
    with pytest.raises(FileNotFoundError, match="no SavedModel"):
        embed.saved_model_embedder(str(tmp_path))
    bare = str(tmp_path / "bare")
    tf.saved_model.save(
        module, bare, signatures={"other": module.feature_vector}
    )
    with pytest.raises(ValueError, match="no feature_vector signature"):
        embed.saved_model_embedder(bare)
    # An export names its preprocessing (tools.export_saved_model writes
    # it; tests/training/test_teacher_logits.py reads what it writes):
    # retrieval takes it, not the size's guess (before: imagenet_64, resize
    # 73, for an export resizing to 65).
    asset = os.path.join(path, "assets", "preprocessing.txt")
    os.makedirs(os.path.dirname(asset), exist_ok=True)
    with open(asset, "w") as f:
        f.write("imagenet_64a\n")
    assert embed.saved_model_embedder(path).preprocessing == "imagenet_64a"
    with open(asset, "w") as f:
        f.write("imagenet_65a\n")  # not the signature's size
    with pytest.raises(ValueError, match="crops 65 pixels"):
        embed.saved_model_embedder(path)
    with open(asset, "w") as f:
        f.write("bicubic\n")
    with pytest.raises(
        ValueError,
        match="preprocessing.txt names the eval preprocessing 'bicubic'",
    ):
        embed.saved_model_embedder(path)


@pytest.mark.slow  # over 2 s on the Zen 3 host
def test_an_embedding_head_is_what_the_export_serves(tmp_path):
    """A NormSoftmax (retrieval) model: its export's feature_vector is the
    embedding head's output that retrieval embeds from the run (before:
    the pooled features, 64 wide here, so a run and its export gave other
    recall@K), and `layer` with a SavedModel is refused (it was ignored)."""
    from official.utils.misc.validation import OptionError

    model = build_model(
        "resnet50",
        num_classes=3,
        embedding_size=16,
        classifier="cosine",
        **TINY,
    )
    testing_utils.randomize_bn(model)
    path = testing_utils.write_export(model, tmp_path / "1", "imagenet_64")
    served = embed.saved_model_embedder(path)
    trained = embed.keras_embedder(model, "imagenet_64")
    assert trained.layer == "head_embedding_bn"
    images = testing_utils.random_images((3, 64, 64, 3), low=-100, high=100)
    want = trained.fn(images).numpy()
    assert want.shape == (3, 16) and np.abs(want).max() > 0.1
    np.testing.assert_allclose(served.fn(images), want, rtol=1e-5, atol=1e-5)
    with pytest.raises(OptionError) as error:
        embed.load_embedder(saved_model=path, layer="head_pool")
    assert error.value.field == "embedding_layer"
    assert "a SavedModel serves one embedding" in str(error.value)
    # --image_size of another size names itself (before: an
    # --eval_preprocessing=imagenet_96 the user had not given).
    from assemble_tf.retrieval import run

    options = run.RetrievalOptions(saved_model=path, image_size=96)
    with pytest.raises(OptionError) as error:
        run.load_embedder(options)
    assert error.value.as_flag() == (
        "--image_size=96 crops 96 pixels but the SavedModel takes 64: leave "
        "--image_size out (the export's own preprocessing is used) or give "
        "64."
    )
    options = run.RetrievalOptions(
        saved_model=path, eval_preprocessing="imagenet_96"
    )
    with pytest.raises(OptionError, match="crops 96 pixels") as error:
        run.load_embedder(options)
    assert error.value.field == "eval_preprocessing"


def test_load_embedder_errors(tmp_path):
    with pytest.raises(ValueError, match="exactly one"):
        embed.load_embedder()
    with pytest.raises(ValueError, match="exactly one"):
        embed.load_embedder(preset="resnet50", saved_model="/x")
    with pytest.raises(ValueError, match="needs `weights`"):
        embed.load_embedder(preset="resnet50")
    with pytest.raises(FileNotFoundError, match="no such file"):
        embed.load_embedder(preset="resnet50", weights=str(tmp_path / "w.h5"))
    (tmp_path / "w.weights.h5").write_bytes(b"")
    with pytest.raises(ValueError, match="JSON object"):
        embed.load_embedder(
            preset="resnet50",
            weights=str(tmp_path / "w.weights.h5"),
            model_overrides="[1, 2]",
        )


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    import keras

    root = tmp_path_factory.mktemp("retrieval")
    _images(root / "data")
    keras.utils.set_random_seed(3)
    model = build_model("resnet50", num_classes=3, **TINY)
    model.save_weights(str(root / "tiny.weights.h5"))
    return root


@pytest.mark.slow
def test_eval_retrieval_end_to_end(tiny_run):
    out = tiny_run / "out"
    result = testing_utils.run_main(
        "tools.eval_retrieval",
        "--preset=resnet50",
        f"--weights={tiny_run / 'tiny.weights.h5'}",
        "--num_classes=3",
        '--model_overrides={"base_width": 8, "block_sizes": [1, 1, 1, 1]}',
        "--image_size=64",
        f"--source={tiny_run / 'data'}",
        "--ks=1,2,4",
        "--batch_size=5",
        "--chunk_size=5",
        "--plot_queries=3",
        "--save_embeddings",
        f"--output_dir={out}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "embedding" in result.stderr and "searching" in result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    with open(out / "retrieval.json") as f:
        assert json.load(f) == summary
    # Every image has an identical twin of its class: recall@1 is exact.
    assert summary["recall@1"] == summary["recall@2"] == 1.0
    assert summary["recall@4"] == 1.0
    assert (summary["num_queries"], summary["num_gallery"]) == (12, 12)
    assert summary["similarity"] == "cosine"
    assert (summary["split"], summary["class_split"]) == ("test", "all")
    assert summary["class_range"] is None
    assert summary["num_classes_evaluated"] == 3
    assert summary["embedding_dim"] == 256  # 8 * 4 * 8 channels, pooled
    assert summary["embedding_layer"] == "head_pool"
    assert summary["eval_preprocessing"] == "imagenet_64"
    assert summary["source_kind"] == "folder"
    assert summary["images_per_second"] > 0
    with Image.open(summary["neighbours_png"]) as png:
        assert png.format == "PNG" and png.size[0] > png.size[1] > 100
    npz = np.load(summary["embeddings_npz"])
    assert npz["embeddings"].shape == (12, 256)
    assert sorted(npz["labels"].tolist()) == [0] * 4 + [1] * 4 + [2] * 4
    # Each row's image and class (before: rows could not be told apart).
    names = tuple(npz["class_names"].tolist())
    assert len(names) == 3
    assert len(npz["images"]) == 12
    for image, label in zip(npz["images"], npz["labels"], strict=True):
        split, cls, _ = image.split("/")
        assert split == "test" and cls == names[label]
        assert os.path.isfile(tiny_run / "data" / image)
    assert not [p for p in os.listdir(out) if ".tmp" in p]


def _tiny_options(tiny_run, **values):
    from assemble_tf.retrieval import run

    values = {
        "source": str(tiny_run / "data"),
        "preset": "resnet50",
        "weights": str(tiny_run / "tiny.weights.h5"),
        "num_classes": 3,
        "model_overrides": TINY,
        "image_size": 64,
        **values,
    }
    return run.RetrievalOptions(**values)


def test_a_refusal_after_the_embedding_keeps_the_embeddings(tiny_run, tmp_path):
    """4 images, one cut short: k = 3 passes the count before the
    embedding and not the 3 usable images after it. Before: the refusal
    came after embedding everything, and kept nothing even with
    save_embeddings."""
    from assemble_tf.retrieval import run

    root = tmp_path / "data"
    for name in ("a", "b"):
        os.makedirs(root / "test" / name)
        for i in range(2):
            image = smooth_image(40, 48, seed=ord(name) + i)
            (root / "test" / name / f"{i}.jpg").write_bytes(jpeg_bytes(image))
    cut = root / "test" / "b" / "1.jpg"
    cut.write_bytes(cut.read_bytes()[:300])
    out = tmp_path / "out"
    options = _tiny_options(
        tiny_run,
        source=str(root),
        ks=(1, 3),
        plot_queries=0,
        output_dir=str(out),
        save_embeddings=True,
    )
    logged = []
    with pytest.raises(ValueError) as error:
        run.evaluate_retrieval(options, progress=False, log=logged.append)
    assert error.value.as_flag() == (
        "--ks=1,3: k can be at most 2 for the 3 images of test of data; "
        "lower --ks."
    )
    path = out / "embeddings.npz"
    assert logged[-1] == f"The embeddings are saved: {path}."
    with np.load(path) as saved:
        assert saved["embeddings"].shape == (3, 256)
        images = saved["images"].tolist()
        rows = sorted(zip(images, saved["labels"].tolist(), strict=True))
        assert rows == [
            ("test/a/0.jpg", 0),
            ("test/a/1.jpg", 0),
            ("test/b/0.jpg", 1),
        ]
    assert not (out / "retrieval.json").exists()
    # One class left (b's images unusable): recall@K would be 1.0 by
    # construction (before: reported so).
    (root / "test" / "b" / "0.jpg").write_bytes(b"not a jpeg")
    options = dataclasses.replace(options, ks=(1,))
    with pytest.raises(ValueError) as error:
        run.evaluate_retrieval(options, progress=False, log=logged.append)
    assert error.value.as_flag() == (
        "--source: the 2 images of test of data are all of class 0; "
        "recall@K needs images of at least 2 classes (pick another --split "
        "or --class_range)."
    )


@pytest.mark.slow  # over 2 s on the Zen 3 host
def test_evaluate_retrieval_in_process(tiny_run):
    """The library of tools.eval_retrieval: the end-to-end test's numbers."""
    from assemble_tf.retrieval import run

    out = tiny_run / "in_process"
    options = _tiny_options(
        tiny_run,
        ks=(1, 2, 4),
        batch_size=5,
        chunk_size=5,
        plot_queries=0,
        output_dir=str(out),
    )
    report = run.evaluate_retrieval(options, progress=False)
    with open(out / "retrieval.json") as f:
        assert json.load(f) == report
    assert report["recall@1"] == report["recall@2"] == 1.0
    assert report["recall@4"] == 1.0
    assert (report["num_queries"], report["num_gallery"]) == (12, 12)
    assert (report["split"], report["class_split"]) == ("test", "all")
    assert report["num_classes_evaluated"] == 3
    assert report["embedding_dim"] == 256
    assert report["embedding_layer"] == "head_pool"
    assert report["eval_preprocessing"] == "imagenet_64"
    assert report["neighbours_png"] is report["embeddings_npz"] is None
    assert sorted(os.listdir(out)) == ["retrieval.json"]
    # Some classes of the folder only (before: no option; every class of
    # the split was evaluated).
    some = run.evaluate_retrieval(
        dataclasses.replace(options, class_range=(1, 3), plot_queries=2),
        progress=False,
    )
    assert (some["num_queries"], some["num_classes_evaluated"]) == (8, 2)
    assert (some["class_range"], some["class_split"]) == ([1, 3], "all")
    assert some["recall@1"] == 1.0
    # The default folder: another selection's results are replaced with a
    # warning (before: without a word).
    logged = []
    default = dataclasses.replace(options, output_dir=None)
    for values in ({}, {"class_range": (1, 3)}):
        report = run.evaluate_retrieval(
            dataclasses.replace(default, **values),
            progress=False,
            log=logged.append,
        )
    path = report["retrieval_json"]
    assert path.startswith(str(tiny_run / "retrieval"))
    assert [line for line in logged if "another selection" in line] == [
        f"WARNING: {path} held the results of another "
        "selection (class_range None -> [1, 3]); they are replaced: give "
        "`output_dir` to keep both."
    ]


def test_evaluate_retrieval_option_errors(tiny_run):
    """Errors name the option (`ks`); `as_flag()` is the binary's text."""
    from assemble_tf.retrieval import run
    from official.utils.misc.validation import OptionError

    with pytest.raises(OptionError) as e:
        run.evaluate_retrieval(_tiny_options(tiny_run, max_images=3, ks=(1, 4)))
    assert str(e.value) == (
        "`ks`=1,4: k can be at most 2 for the 3 images of test of data; "
        "lower `ks` (or raise `max_images`)."
    )
    assert e.value.as_flag() == (
        "--ks=1,4: k can be at most 2 for the 3 images of test of data; "
        "lower --ks (or raise --max_images)."
    )
    # All the images read: no --max_images in the fix (before: "or raise
    # --max_images" where it was not given).
    with pytest.raises(OptionError) as e:
        run.evaluate_retrieval(_tiny_options(tiny_run, ks=(1, 500)))
    assert e.value.as_flag().endswith("images of test of data; lower --ks.")
    with pytest.raises(OptionError) as e:
        run.evaluate_retrieval(_tiny_options(tiny_run, ks=(0, 1)))
    assert e.value.as_flag() == "--ks needs positive integers. Received: 0,1"
    with pytest.raises(OptionError, match="`image_size`=16 must be at least"):
        run.evaluate_retrieval(_tiny_options(tiny_run, image_size=16))
    # Before: --image_size dropped beside --eval_preprocessing, and a
    # repeated k computed once.
    with pytest.raises(OptionError) as e:
        run.evaluate_retrieval(
            _tiny_options(tiny_run, eval_preprocessing="imagenet_32")
        )
    assert e.value.as_flag() == (
        "--image_size=64 with --eval_preprocessing=imagenet_32: --image_size "
        "is shorthand for --eval_preprocessing=imagenet_64; give one."
    )
    with pytest.raises(OptionError) as e:
        run.evaluate_retrieval(_tiny_options(tiny_run, ks=(1, 1)))
    assert e.value.as_flag() == "--ks=1,1 names a k twice."
    with pytest.raises(OptionError) as e:
        run.evaluate_retrieval(_tiny_options(tiny_run, class_range=(1, 4)))
    assert e.value.as_flag() == (
        "--class_range=1,4 reaches past the 3 classes of data (labels 0-2)."
    )
    with pytest.raises(OptionError) as e:
        run.evaluate_retrieval(_tiny_options(tiny_run, class_range=(2, 1)))
    assert e.value.as_flag() == (
        "--class_range='2,1' is invalid: 'low,high' with 0 <= low and "
        "high >= low + 2 (a head of at least 2 classes)."
    )
    saved = _tiny_options(tiny_run, preset=None, saved_model="/x/1")
    with pytest.raises(OptionError) as e:
        run.evaluate_retrieval(saved)
    assert e.value.as_flag() == "--saved_model needs --output_dir."
    # Before: no --weights (nor --model_dir) failed in os.path.abspath(None).
    with pytest.raises(ValueError, match="`preset` needs `weights`"):
        run.evaluate_retrieval(_tiny_options(tiny_run, weights=None))
    # A split the source lacks: named as --split (before: the reason
    # alone, naming no flag).
    with pytest.raises(OptionError) as e:
        run.evaluate_retrieval(_tiny_options(tiny_run, split="nope"))
    assert e.value.as_flag().startswith("--split: ")
    assert "nope" in e.value.as_flag()


def test_default_output_folders_keep_weights_files_apart(tmp_path):
    """Before: `<weights folder>/retrieval/<source>` for every weights file
    of a folder, the second run replacing the first's retrieval.json."""
    from assemble_tf.retrieval import run

    info = types.SimpleNamespace(name="cars196/1.0")  # a SourceInfo's name

    def out(**kwargs):
        return run.output_dir(run.RetrievalOptions(**kwargs), info)

    weights = str(tmp_path / "a.weights.h5")
    assert out(weights=weights) == str(
        tmp_path / "retrieval" / "a" / "cars196_1.0"
    )
    # Weights that replace a run's checkpoint: theirs too (before: the
    # run's folder, where their report replaced the checkpoint's).
    assert out(model_dir="/runs/r", weights=weights) == str(
        tmp_path / "retrieval" / "a" / "cars196_1.0"
    )
    assert out(model_dir="/runs/r") == "/runs/r/retrieval/cars196_1.0"
    assert out(weights=weights, output_dir="/o") == "/o"
    assert out() is None


@pytest.mark.slow  # over 2 s on the Zen 3 host
def test_eval_retrieval_skips_and_counts_unusable_images(tiny_run, tmp_path):
    """A truncated JPEG and a text file named .jpg are skipped, counted and
    named, as tools.evaluate skips them; recall is over the other images.
    Before: the run died on a raw `jpeg::Uncompress failed` / `Input is not
    a JPEG or PNG image` naming no file (issue 24 item 2)."""
    import shutil

    data = tmp_path / "data"
    shutil.copytree(tiny_run / "data", data)
    whole = (data / "test" / "ant" / "0.jpg").read_bytes()
    (data / "test" / "ant" / "truncated.jpg").write_bytes(whole[:400])
    (data / "test" / "bee" / "notes.jpg").write_text("not an image\n")
    (data / "test" / "bee" / "scan.tif").write_bytes(b"II*\x00")  # not read
    # A class of one image: its query cannot hit (before: counted as a
    # miss without a word).
    (data / "test" / "wasp").mkdir()
    (data / "test" / "wasp" / "0.jpg").write_bytes(
        testing_utils.jpeg_bytes(testing_utils.smooth_image(64, 64, 5))
    )
    out = tmp_path / "out"
    result = testing_utils.run_main(
        "tools.eval_retrieval",
        "--preset=resnet50",
        f"--weights={tiny_run / 'tiny.weights.h5'}",
        "--num_classes=3",
        '--model_overrides={"base_width": 8, "block_sizes": [1, 1, 1, 1]}',
        "--image_size=64",
        f"--source={data}",
        "--ks=1,2,4",
        "--batch_size=5",
        "--plot_queries=3",
        f"--output_dir={out}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    with open(out / "retrieval.json") as f:
        assert json.load(f) == report
    bad = ["test/ant/truncated.jpg", "test/bee/notes.jpg"]
    assert (report["images_read"], report["images_skipped"]) == (15, 2)
    assert report["images_not_images"] == 1  # the text file
    assert sorted(report["skipped_images"]) == bad
    # Recall over the 13 good images: each of 12 has an identical twin,
    # the wasp none.
    assert (report["num_queries"], report["num_gallery"]) == (13, 13)
    assert report["num_queries_without_match"] == 1
    assert report["recall@1"] == report["recall@4"] == 12 / 13
    assert os.path.getsize(report["neighbours_png"]) > 1000
    warning = [line for line in result.stderr.splitlines() if "WARNING" in line]
    assert len(warning) == 3, result.stderr[-3000:]
    assert warning.pop() == (
        "WARNING: 1 of 13 queries of test of data have no other image of "
        "their class (a class of one image): they count as misses at every "
        "k, as in the original's recall."
    )
    ignored = warning.pop(0)  # before: left out without a word
    assert ignored == (
        f"WARNING: {data}: left out the files that are not .jpg/.jpeg/.png "
        "images in a class folder <split>/<class>/ (1: test/bee/scan.tif); "
        "convert or move them to use them."
    )
    assert warning[0].startswith(
        "WARNING: skipped 2 of the 15 images of test of data that cannot "
        "be decoded (1 not a JPEG, PNG, GIF or BMP; the others truncated, "
        "corrupt or over 178,956,970 pixels): "
    )
    assert all(name in warning[0] for name in bad)
    assert warning[0].endswith("Recall is over the other 13.")


@pytest.mark.slow
def test_eval_retrieval_checks_k_before_embedding(tiny_run):
    """Before: 'k can be at most 2 for 3 images' came after embedding."""
    result = testing_utils.run_main(
        "tools.eval_retrieval",
        "--preset=resnet50",
        f"--weights={tiny_run / 'tiny.weights.h5'}",
        "--num_classes=3",
        '--model_overrides={"base_width": 8, "block_sizes": [1, 1, 1, 1]}',
        f"--source={tiny_run / 'data'}",
        "--max_images=3",
        "--ks=1,4",
        f"--output_dir={tiny_run / 'bad_k'}",
    )
    assert testing_utils.error_line(result) == (
        "ERROR: --ks=1,4: k can be at most 2 for the 3 images of test of "
        "data; lower --ks (or raise --max_images)."
    )
    assert "embedding" not in result.stderr  # no progress bar was started
    assert not (tiny_run / "bad_k").exists()


@pytest.mark.slow
def test_eval_retrieval_clean_errors():
    result = testing_utils.run_main(
        "tools.eval_retrieval", "--source=caltech_birds201", "--preset=resnet50"
    )
    assert result.returncode == 2
    assert "ERROR: --source=caltech_birds201" in result.stderr
    assert "caltech_birds2011" in result.stderr
    assert "Traceback" not in result.stderr
    # Its own example (before: --block_sizes' 3,4,6,3).
    result = testing_utils.run_main(
        "tools.eval_retrieval", "--source=x", "--preset=resnet50", "--ks=1,a"
    )
    assert testing_utils.error_line(result) == (
        "ERROR: flag --ks=1,a: --ks takes comma-separated integers, e.g. "
        "1,2,4,8. Received: --ks=1,a"
    )
    result = testing_utils.run_main(
        "tools.eval_retrieval",
        "--source=x",
        "--preset=resnet50",
        "--class_range=5",
    )
    assert testing_utils.error_line(result) == (
        "ERROR: --class_range='5' is invalid: 'low,high' integers such as "
        "0,100."
    )


def test_an_int_list_flag_with_a_value_left_out_is_refused():
    """Before: "1,,4" and "1,4," read as 1,4."""
    from absl import flags

    from official.utils.flags import core as flags_core

    for text in ("1,,4", "1,4,", ",1"):
        with pytest.raises(flags.ValidationError) as error:
            flags_core.parse_int_list("ks", text, example="1,2,4,8")
        assert str(error.value) == (
            "--ks takes comma-separated integers, e.g. 1,2,4,8. "
            f"Received: --ks={text}"
        )
    assert flags_core.parse_int_list("ks", " 1, 4") == (1, 4)
    assert flags_core.parse_int_list("ks", "") == ()


def test_load_embedder_from_model_dir(tmp_path):
    from assemble_tf import config as config_lib
    from assemble_tf.runs import models as run_models

    (tmp_path / "data").mkdir()

    config = config_lib.make_config(
        str(tmp_path),
        "resnet50",
        {
            "data": {
                "data_dir": str(tmp_path / "data"),
                "num_classes": 3,
                "eval_preprocessing": "imagenet_64",
            },
            "model": {"base_width": 8, "block_sizes": "1,1,1,1"},
        },
    )
    config.to_json(str(tmp_path / "config.json"))
    model = run_models.build_run_model(config)
    weights = str(tmp_path / "run.weights.h5")
    model.save_weights(weights)
    embedder = embed.load_embedder(model_dir=str(tmp_path), weights=weights)
    assert embedder.preprocessing == "imagenet_64"  # from config.json
    assert embedder.layer == "head_pool"
    assert embedder.source == {
        "model_dir": str(tmp_path),
        "checkpoint": weights,
    }
    x = np.random.default_rng(0).uniform(-100, 100, (2, 64, 64, 3))
    want = embed.embedding_model(model)[0](x.astype("float32"))
    np.testing.assert_allclose(
        embedder.fn(x.astype("float32")), want, atol=1e-4
    )
    assert (
        embed.load_embedder(
            model_dir=str(tmp_path), weights=weights, preprocessing="imagenet"
        ).preprocessing
        == "imagenet"
    )
    with pytest.raises(ValueError, match="`num_classes` comes from"):
        embed.load_embedder(model_dir=str(tmp_path), num_classes=3)


def test_source_defaults_to_the_runs_own(tmp_path):
    """Issue 24 item 8: `--model_dir=RUN` needed `--source` although the
    run's config.json records it."""
    from assemble_tf import config as config_lib
    from assemble_tf.retrieval import run
    from official.utils.misc.validation import OptionError

    folder_run, record_run = tmp_path / "folder_run", tmp_path / "records"
    config_lib.make_config(
        str(folder_run),
        "resnet50",
        {
            "data": {
                "source": "/data/birds",  # not read: both fields given
                "num_classes": 3,
                "validation_split": "test",
            }
        },
    ).to_json(str(folder_run / "config.json"))
    config_lib.make_config(
        str(record_run), "resnet50", {"data": {"synthetic": True}}
    ).to_json(str(record_run / "config.json"))
    given = run.RetrievalOptions(source="cars196", model_dir=str(folder_run))
    assert run.source_of(given) == "cars196"
    assert (
        run.source_of(run.RetrievalOptions(model_dir=str(folder_run)))
        == "/data/birds"
    )
    with pytest.raises(OptionError) as e:
        run.source_of(run.RetrievalOptions(model_dir=str(record_run)))
    assert e.value.as_flag() == (
        f"--source is required: the run --model_dir={record_run} was "
        "trained on TFRecords, not on a tfds or folder source it could "
        "reuse."
    )
    with pytest.raises(OptionError) as e:
        run.source_of(run.RetrievalOptions(preset="resnet50"))
    assert e.value.as_flag().startswith("--source is required: a tfds name")


def test_a_run_fine_tuned_on_some_classes_of_the_set_is_named(tiny_run):
    """eval_retrieval of a run fine-tuned with --class_range on the same
    folder: before, recall over every class, trained ones included, was
    reported without a word."""
    from assemble_tf import config as config_lib
    from assemble_tf.retrieval import run

    data = str(tiny_run / "data")
    info = sources.open_source(data)
    assert info.num_classes == 3
    folder = tiny_run / "ft"
    folder.mkdir(exist_ok=True)

    def fine_tuned(class_range, source=data):
        config_lib.make_config(
            str(folder),
            "resnet50",
            {"data": {"source": source, "class_range": class_range}},
        ).to_json(str(folder / "config.json"))
        return str(folder)

    warning = run.trained_classes_warning(fine_tuned("0,2"), info, None)
    assert warning.as_flag() == (
        f"{folder} was fine-tuned on classes 0-1 of data; 2 of the 3 "
        "classes evaluated are among them, so recall is not class-disjoint "
        "(the retrieval protocol scores classes the model never saw): "
        "evaluate the classes it never saw (--class_range=2,3)."
    )
    assert str(warning).endswith("(`class_range`=2,3).")  # the library's
    # Unseen classes on both sides: no one range to name.
    five = dataclasses.replace(info, num_classes=5)
    assert str(
        run.trained_classes_warning(fine_tuned("1,3"), five, None)
    ).endswith("never saw): evaluate a set of the other classes.")
    assert run.trained_classes_warning(fine_tuned("0,2"), info, (2, 3)) is None
    assert run.trained_classes_warning(fine_tuned(None), info, None) is None
    import shutil

    copy = tiny_run / "copy"
    if not copy.exists():
        shutil.copytree(data, copy)
    other = fine_tuned("0,2", str(copy))  # another folder
    assert run.trained_classes_warning(other, info, None) is None
    assert run.trained_classes_warning(None, info, None) is None


def test_neighbours_figure_labels_classes_the_font_cannot_draw(
    tmp_path, monkeypatch
):
    """A class named in CJK (an image folder's name) was drawn as boxes
    under matplotlib's DejaVu Sans, with a warning per glyph: such a
    class is labelled by its number, the others by name, and no glyph
    warning reaches the console."""
    import warnings

    from assemble_tf.retrieval import plots, recall

    labels = np.array([0, 0, 1, 1])
    embeddings = np.eye(4, dtype=np.float32) + labels[:, None] * 0.5
    dataset = tf.data.Dataset.from_tensor_slices(
        (
            [jpeg_bytes(smooth_image(32, 32, seed=i)) for i in range(4)],
            labels,
        )
    )
    drawn = []
    plot = recall.plot_neighbours

    def recorded(*args, query_labels, **kwargs):
        drawn.append(list(query_labels))
        return plot(*args, query_labels=query_labels, **kwargs)

    monkeypatch.setattr(recall, "plot_neighbours", recorded)
    import matplotlib

    # matplotlib's own font alone, also where a CJK font is installed.
    monkeypatch.setitem(matplotlib.rcParams, "font.family", ["DejaVu Sans"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any glyph warning fails the test
        path = plots.neighbours_figure(
            str(tmp_path / "n.png"),
            dataset,
            embeddings,
            labels,
            ["猫", "café"],
            {"similarity": "cosine", "recall@1": 1.0},
            num_queries=4,
            similarity="cosine",
        )
    assert drawn == [
        ["猫", "猫", "café", "café"],
        ["class 0", "class 0", "café", "café"],
    ]
    with Image.open(path) as png:
        assert png.format == "PNG"
    assert not (tmp_path / "n.tmp.png").exists()


def test_tfds_images_are_named_by_their_index_in_the_split(monkeypatch):
    """A class range (CUB's and Cars' default halves) keeps some of the
    split's images; their names are their indices in the split (before:
    among the kept ones, "train+test[0]" for the split's image 1)."""
    from assemble_tf.retrieval import run

    labels = np.array([3, 0, 2, 1, 3, 2], np.int64)
    monkeypatch.setattr(sources, "num_examples", lambda *a: len(labels))
    monkeypatch.setattr(
        sources,
        "encoded_dataset",
        lambda info, split: tf.data.Dataset.from_tensor_slices(
            ([b"x"] * len(labels), labels)
        ),
    )
    info = types.SimpleNamespace(kind="tfds", name="birds")
    options = run.RetrievalOptions(source="birds", max_images=None)
    images = run.read_images(options, info, "train+test", (2, 4), "test")
    assert images.total == 4
    got = [int(label) for _, label in images.dataset.as_numpy_iterator()]
    assert got == [3, 2, 3, 2]
    assert images.names([0, 1, 3]) == [
        "train+test[0]",
        "train+test[2]",
        "train+test[5]",
    ]
    whole = run.read_images(options, info, "test", None, "all")
    assert whole.total == 6 and whole.names([1]) == ["test[1]"]

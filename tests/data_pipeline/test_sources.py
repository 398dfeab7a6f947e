"""tfds / image-folder sources (assemble_tf.data.sources), offline."""

import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from assemble_tf.data import sources
from tests import testing_utils

CLASSES = ("b_cls", "a_cls", "c_cls")


class TinyTransfer(tfds.core.GeneratorBasedBuilder):
    """A local 4-class set prepared in tmp (no download step)."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(None, None, 3)),
                    "label": tfds.features.ClassLabel(
                        names=["w", "x", "y", "z"]
                    ),
                    "mask": tfds.features.Image(shape=(None, None, 1)),
                }
            ),
        )

    def _split_generators(self, dl_manager):
        del dl_manager
        return {
            "train": self._generate_examples(12, 0),
            "test": self._generate_examples(8, 1),
        }

    def _generate_examples(self, n, seed):
        rng = np.random.default_rng(seed)
        for i in range(n):
            image = rng.integers(0, 255, (9 + i, 11, 3), dtype=np.uint8)
            yield (
                i,
                {
                    "image": image,
                    "label": (i + seed) % 4,
                    "mask": image[..., :1],
                },
            )


class TinyProducts(TinyTransfer):
    """Two ClassLabel features, none called "label"."""

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            features=tfds.features.FeaturesDict(
                {
                    "picture": tfds.features.Image(shape=(None, None, 3)),
                    "item_id": tfds.features.ClassLabel(num_classes=6),
                    "group": tfds.features.ClassLabel(num_classes=2),
                }
            ),
        )

    def _generate_examples(self, n, seed):
        rng = np.random.default_rng(seed)
        for i in range(n):
            yield (
                i,
                {
                    "picture": rng.integers(0, 255, (8, 8, 3), dtype=np.uint8),
                    "item_id": i % 6,
                    "group": i % 2,
                },
            )


def _prepare(name, data_dir):
    builder = tfds.builder(name, data_dir=str(data_dir))
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(try_download_gcs=False)
    )


def _folder(root, counts=None):
    """<root>/{train,test}/<class>/<i>.jpg with 5 and 3 images per class."""
    counts = counts or {"train": 5, "test": 3}
    for s, (split, n) in enumerate(counts.items()):
        for c, cls in enumerate(CLASSES):
            os.makedirs(root / split / cls)
            for i in range(n):
                image = testing_utils.smooth_image(12 + i, 10, seed=s + c)
                ext = ".JPG" if i == 0 else ".jpg"
                (root / split / cls / f"{i}{ext}").write_bytes(
                    testing_utils.jpeg_bytes(image)
                )
    (root / "train" / "a_cls" / "notes.txt").write_text("not an image")
    return root


def _items(ds):
    return [(bytes(b), int(label)) for b, label in ds.as_numpy_iterator()]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return _folder(tmp_path_factory.mktemp("images"))


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("tfds")
    _prepare("tiny_transfer", data_dir)
    _prepare("tiny_products", data_dir)
    return data_dir


# ------------------------------------------------------------------ folder


def test_folder_info(folder):
    info = sources.open_source(folder)  # a pathlib.Path works too
    assert info.kind == "folder"
    assert info.name == os.path.basename(str(folder))
    assert info.data_dir == str(folder)
    assert info.num_classes == 3
    assert info.class_names == ("a_cls", "b_cls", "c_cls")
    assert info.splits == {"train": 15, "test": 9}
    assert isinstance(info.builder, tfds.folder_dataset.ImageFolder)
    assert "builder" not in repr(info)


def test_a_folder_with_names_not_utf8_is_refused_naming_them(tmp_path):
    """TensorFlow cannot list a name that is not UTF-8: refused up front,
    naming it (before: "'utf-8' codec can't decode byte 0xff" from every
    tool reading the folder, naming no file)."""
    from official.utils.misc.validation import OptionError

    root = _folder(tmp_path / "images")
    with open(os.path.join(os.fsencode(root), b"test/b_cls/\xff.jpg"), "wb"):
        pass
    with pytest.raises(OptionError) as error:
        sources.open_source(str(root))
    assert error.value.as_flag() == (
        f"--source={root} holds a name that is not UTF-8 (test/b_cls/"
        "\ufffd.jpg), which TensorFlow cannot list: rename them, or move "
        "them out of the folder."
    )


def test_hidden_files_are_no_images_of_a_folder(tmp_path):
    """Before: a class's ".hidden.jpg" was trained on, evaluated and
    embedded, and macOS's "._x.jpg" counted as a bad image every epoch
    (docs/data.md: every folder reader leaves hidden files out)."""
    root = _folder(tmp_path / "images", {"train": 2, "test": 1})
    warned = sources.folder_warnings(sources.open_source(str(root)))
    image = np.zeros((8, 8, 3), np.uint8)
    (root / "train" / "a_cls" / ".hidden.jpg").write_bytes(
        testing_utils.jpeg_bytes(image)
    )
    (root / "train" / "b_cls" / "._0.jpg").write_bytes(b"AppleDouble")
    info = sources.open_source(str(root))
    assert info.splits == {"train": 6, "test": 3}
    paths = [p for p, _ in sources.folder.scan_folder(str(root))[0]["train"]]
    names = sorted(os.path.basename(p) for p in paths)
    assert names == ["0.JPG"] * 3 + ["1.jpg"] * 3
    assert sources.folder_warnings(info) == warned  # without a word


@pytest.mark.parametrize(
    "name, what",
    [
        ("new\nline", "hold a tab, a newline or another control character"),
        ("tab\there", "hold a tab, a newline or another control character"),
        (" lead", "start or end with a space"),
        ("trail ", "start or end with a space"),
    ],
)
def test_class_names_a_class_name_file_cannot_hold_are_refused(
    tmp_path, name, what
):
    """Before: a newline split the run's class_names.txt (every later class
    one line off, tools.evaluate then refused 10 names for 9 logits), and
    " lead" read back as "lead" made the rerun refuse the run."""
    from official.utils.misc.validation import OptionError

    root = _folder(tmp_path / "images", {"train": 1, "test": 1})
    (root / "test" / name).mkdir()
    with pytest.raises(OptionError) as error:
        sources.open_source(str(root))
    assert error.value.as_flag().startswith(
        f"--source={root / 'test'} has class folders whose names {what}: "
        f"{name!r}. Rename them (a run's class_names.txt "
    )


def test_folder_dataset_bytes_labels_and_imagefolder_order(
    folder, tmp_path, monkeypatch
):
    import tempfile

    # Before: tfds's ImageFolder left an empty tmp*tfds folder in the
    # system's temporary folder per image-folder source opened.
    system_temp = tmp_path / "system_temp"
    system_temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(system_temp))
    info = sources.open_source(str(folder))
    assert os.listdir(system_temp) == []
    ds = sources.encoded_dataset(info, "train")
    assert ds.element_spec == (
        tf.TensorSpec([], tf.string),
        tf.TensorSpec([], tf.int64),
    )
    items = _items(ds)
    assert len(items) == 15
    assert all(b[:2] == b"\xff\xd8" for b, _ in items)  # JPEG magic
    assert sorted(label for _, label in items) == [0] * 5 + [1] * 5 + [2] * 5
    # Same order and labels as tfds's own ImageFolder (class-mixed).
    reference = [
        (open(ex["image/filename"].decode(), "rb").read(), ex["label"])
        for ex in tfds.as_numpy(
            info.builder.as_dataset(
                split="train", decoders={"image": tfds.decode.SkipDecoding()}
            )
        )
    ]
    assert items == [(b, int(label)) for b, label in reference]
    labels = [label for _, label in items]
    assert labels != sorted(labels)


@pytest.mark.parametrize(
    "split, expected",
    [
        ("train[:50%]", 8),  # 7.5 rounds to the closest: 8
        ("train[:40%]", 6),
        ("test[2:5]", 3),
        ("train+test", 24),
        ("train[-3:]+test[:1]", 4),
        ("all", 24),
    ],
)
def test_folder_sub_splits(folder, split, expected):
    info = sources.open_source(str(folder))
    assert sources.num_examples(info, split) == expected
    items = _items(sources.encoded_dataset(info, split))
    assert len(items) == expected
    if split == "test[2:5]":
        assert items == _items(sources.encoded_dataset(info, "test"))[2:5]


def test_folder_shuffle_and_shards(folder):
    info = sources.open_source(str(folder))
    plain = _items(sources.encoded_dataset(info, "train"))
    a = _items(sources.encoded_dataset(info, "train", True, seed=3))
    b = _items(sources.encoded_dataset(info, "train", True, seed=3))
    assert a == b
    assert a != plain
    assert sorted(a) == sorted(plain)
    shards = [
        _items(
            sources.encoded_dataset(
                info, "train", input_context=tf.distribute.InputContext(2, i)
            )
        )
        for i in range(2)
    ]
    assert [len(s) for s in shards] == [8, 7]
    assert shards[0] + shards[1] != plain
    assert sorted(shards[0] + shards[1]) == sorted(plain)
    assert shards[0] == plain[0::2]


def test_folder_without_splits(tmp_path):
    for cls in ("cat", "dog"):
        os.makedirs(tmp_path / cls)
        (tmp_path / cls / "0.jpg").write_bytes(
            testing_utils.jpeg_bytes(np.zeros((4, 4, 3)))
        )
    with pytest.raises(ValueError) as e:
        sources.open_source(str(tmp_path))
    msg = str(e.value)
    assert "<root>/<split>/<class>/<image>" in msg
    assert "class folders" in msg and "cat" in msg
    assert str(tmp_path) in msg


def test_folder_errors(folder, tmp_path):
    with pytest.raises(FileNotFoundError, match="no such folder"):
        sources.open_source(str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match="no such folder"):
        sources.open_source("./surely/not/here")
    info = sources.open_source(str(folder))
    with pytest.raises(ValueError, match=r"'val'.*\['test', 'train'\]"):
        sources.encoded_dataset(info, "val")
    with pytest.raises(ValueError, match="Bad split 'train\\[:x\\]'"):
        sources.num_examples(info, "train[:x]")


def test_a_class_folder_that_links_to_another_is_refused(tmp_path):
    """Before: a link `train/kitty -> train/cat` read cat's images twice,
    once under each label, without a word. A link to a folder outside the
    split is a class of its own."""
    from official.utils.misc.validation import OptionError

    root = _folder(tmp_path / "pets", {"train": 2, "test": 1})
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", root / "train" / "d_cls")
    assert sources.open_source(str(root)).num_classes == 4
    os.symlink(root / "train" / "a_cls", root / "train" / "kitty")
    with pytest.raises(OptionError) as e:
        sources.open_source(str(root))
    assert e.value.as_flag() == (
        f"--source={root / 'train'}: the class folders 'a_cls' and 'kitty' "
        f"are one folder ({root / 'train' / 'a_cls'}): its images would be "
        "read under both labels. Remove the link, or copy the images if "
        "both classes are meant."
    )


def test_classes_with_images_in_some_splits_only_are_named(tmp_path, folder):
    """Before: test/Cat beside train/cat became a third class, never
    trained on, and top-1 fell to 0 without a word."""
    root = tmp_path / "pets"
    for split, cls in (("train", "cat"), ("train", "dog"), ("test", "Cat")):
        os.makedirs(root / split / cls)
        (root / split / cls / "0.jpg").write_bytes(
            testing_utils.jpeg_bytes(testing_utils.smooth_image(8, 8))
        )
    os.makedirs(root / "test" / "dog")  # no images: an empty class there
    info = sources.open_source(str(root))
    assert info.partial_classes == (
        ("Cat", ("test",)),
        ("cat", ("train",)),
        ("dog", ("train",)),
    )
    assert sources.folder_warnings(info) == [
        f"{root}: 3 classes have images in some splits only: 'Cat' (test "
        "only), 'cat' (train only), 'dog' (train only). A class without "
        "training images is never predicted, and one without evaluation "
        "images is not measured: check the class folders' names (case "
        "counts). A class-disjoint retrieval set is meant so."
    ]
    every = sources.open_source(folder)  # each class in both splits
    assert every.partial_classes == ()
    assert not [w for w in sources.folder_warnings(every) if "only" in w]


# ------------------------------------------------------------------- tfds


def test_unknown_tfds_name_suggests_close_match():
    with pytest.raises(ValueError) as e:
        sources.open_source("oxford_flower102")
    msg = str(e.value)
    assert "oxford_flowers102" in msg
    assert "folder" in msg and "<root>/<split>/<class>/<image>" in msg


def test_manual_download_message(tmp_path):
    assert tfds.builder_cls("imagenet2012").MANUAL_DOWNLOAD_INSTRUCTIONS
    for download in (False, True):  # no files in manual_dir: never fetches
        with pytest.raises(ValueError) as e:
            sources.open_source(
                "imagenet2012", data_dir=str(tmp_path), download=download
            )
        msg = str(e.value)
        manual = os.path.join(str(tmp_path), "downloads", "manual")
        assert "manual" in msg and manual in msg
        assert "ILSVRC2012_img_train.tar" in msg  # the builder's text
        assert f"tfds build imagenet2012 --data_dir={tmp_path}" in msg


def test_not_prepared_message(tmp_path, caplog, monkeypatch):
    import logging
    import tempfile

    caplog.set_level("INFO")
    absl_logger = logging.getLogger("absl")
    level, filters = absl_logger.level, list(absl_logger.filters)
    # Before: tfds's builder left an empty tmp*tfds folder in the system's
    # temporary folder on every call (a user's /tmp filled with them).
    system_temp = tmp_path / "system_temp"
    system_temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(system_temp))
    with pytest.raises(ValueError) as e:
        sources.open_source("food101", data_dir=str(tmp_path))
    assert os.listdir(system_temp) == []
    assert tempfile.tempdir == str(system_temp)
    # Only our error: tfds's lookup logged "Variant folder ... has no
    # dataset_info.json" above it (a folder that does not exist).
    assert not [r for r in caplog.records if "dataset_info" in r.getMessage()]
    assert (absl_logger.level, absl_logger.filters) == (level, filters)
    msg = str(e.value)
    assert "not prepared" in msg
    assert os.path.join(str(tmp_path), "food101") in msg
    assert f"tfds build food101 --data_dir={tmp_path}" in msg
    assert "set `download`" in msg
    assert not os.path.exists(tmp_path / "food101")  # nothing written


def test_bad_version_is_value_error(tmp_path):
    with pytest.raises(ValueError, match="9.9.9"):
        sources.open_source("food101:9.9.9", data_dir=str(tmp_path))


def test_prepared_tfds_source(tiny_dir):
    info = sources.open_source("tiny_transfer", data_dir=str(tiny_dir))
    assert info.kind == "tfds"
    assert info.name == "tiny_transfer"
    assert info.data_dir == str(tiny_dir)
    assert info.splits == {"train": 12, "test": 8}
    assert (info.num_classes, info.class_names) == (4, ("w", "x", "y", "z"))
    assert (info.image_key, info.label_key) == ("image", "label")
    ds = sources.encoded_dataset(info, "train[:50%]+test")
    assert ds.element_spec == (
        tf.TensorSpec([], tf.string),
        tf.TensorSpec([], tf.int64),
    )
    items = _items(ds)
    assert len(items) == sources.num_examples(info, "train[:50%]+test")
    assert len(items) == 14
    assert all(b[:4] == b"\x89PNG" for b, _ in items)  # tfds stores PNG
    labels = sorted(label for _, label in _items(ds.skip(6)))
    assert labels == [0, 0, 1, 1, 2, 2, 3, 3]  # test: (i + 1) % 4
    image = tf.io.decode_png(items[0][0]).numpy()
    assert image.shape[1:] == (11, 3)
    same = sources.open_source("tiny_transfer:1.0.0", str(tiny_dir))
    assert same == info


def test_tfds_input_context(tiny_dir):
    info = sources.open_source("tiny_transfer", data_dir=str(tiny_dir))
    full = _items(sources.encoded_dataset(info, "train"))
    shards = [
        _items(
            sources.encoded_dataset(
                info, "train", input_context=tf.distribute.InputContext(2, i)
            )
        )
        for i in range(2)
    ]
    assert sorted(shards[0] + shards[1]) == sorted(full)
    assert shards[0] == full[:6] and shards[1] == full[6:]


def test_label_key_fallback_and_table(tiny_dir, monkeypatch):
    with pytest.raises(ValueError, match="item_id.*_LABEL_KEYS"):
        sources.open_source("tiny_products", data_dir=str(tiny_dir))
    monkeypatch.setitem(sources.tfds._LABEL_KEYS, "tiny_products", "item_id")
    info = sources.open_source("tiny_products", data_dir=str(tiny_dir))
    assert (info.image_key, info.label_key) == ("picture", "item_id")
    assert (info.num_classes, info.class_names) == (6, None)
    labels = [label for _, label in _items(sources.encoded_dataset(
        info, "test"))]  # fmt: skip
    assert sorted(labels) == [0, 0, 1, 1, 2, 3, 4, 5]


def _write_metadata(name, data_dir, counts):
    """The dataset_info.json a prepared set would have (no examples)."""
    builder = tfds.builder(name, data_dir=str(data_dir))
    builder.info.set_splits(
        tfds.core.SplitDict(
            [
                tfds.core.SplitInfo(name=k, shard_lengths=[n], num_bytes=0)
                for k, n in counts.items()
            ]
        )
    )
    os.makedirs(builder.data_dir)
    builder.info.write_to_directory(builder.data_dir)


def test_mock_data_real_builders(tmp_path):
    _write_metadata("oxford_iiit_pet", tmp_path, {"train": 3680, "test": 3669})
    _write_metadata(
        "stanford_online_products", tmp_path, {"train": 59551, "test": 60502}
    )
    with tfds.testing.mock_data(num_examples=6, data_dir=str(tmp_path)):
        pets = sources.open_source("oxford_iiit_pet", str(tmp_path))
        assert pets.splits == {"train": 3680, "test": 3669}
        assert pets.num_classes == 37 and pets.label_key == "label"
        assert pets.class_names[0] == "Abyssinian"
        assert sources.num_examples(pets, "train[:10%]") == 368
        items = _items(sources.encoded_dataset(pets, "test"))
        assert len(items) == 6
        assert all(b[:2] == b"\xff\xd8" for b, _ in items)
        assert all(0 <= label < 37 for _, label in items)
        sop = sources.open_source("stanford_online_products", tmp_path)
        assert sop.label_key == "class_id"
        assert (sop.num_classes, sop.class_names) == (22634, None)
        items = _items(sources.encoded_dataset(sop, "train"))
        assert all(0 <= label < 22634 for _, label in items)


# ------------------------------------------------------- tables, filters


def test_transfer_table():
    t = sources.TRANSFER_DATASETS
    assert sorted(t) == sorted(
        [
            "food101",
            "cars196",
            "oxford_flowers102",
            "oxford_iiit_pet",
            "caltech_birds2011",
            "fgvc_aircraft",
        ]
    )
    got = {
        k: (v.train_split, v.eval_split, v.num_classes) for k, v in t.items()
    }
    assert got["food101"] == ("train", "validation", 101)
    assert got["cars196"] == ("train", "test", 196)
    assert got["oxford_flowers102"] == ("train+validation", "test", 102)
    assert got["oxford_iiit_pet"] == ("train", "test", 37)
    assert got["caltech_birds2011"] == ("train", "test", 200)
    assert got["fgvc_aircraft"] == ("train", "test", 100)
    assert t["fgvc_aircraft"].source is None
    paper = {
        k: (v.resnet50_top1, v.assemble_r50_top1)
        for k, v in t.items()
        if v.assemble_r50_top1 is not None
    }
    assert paper == {
        "food101": (87.0, 92.5),
        "cars196": (89.1, 94.4),
        "oxford_flowers102": (96.1, 98.9),
        "fgvc_aircraft": (78.8, 92.4),
        "oxford_iiit_pet": (92.5, 94.3),
    }
    assert t["food101"].num_train == 75750
    assert sources.transfer_dataset("food101:2.0.0") is t["food101"]
    with pytest.raises(ValueError, match="cars196"):
        sources.transfer_dataset("cars197")


def test_retrieval_classes():
    rc = sources.retrieval_classes
    assert rc("caltech_birds2011") == ("train+test", 100, 200)
    assert rc("caltech_birds2011", "train") == ("train+test", 0, 100)
    assert rc("caltech_birds2011", "all") == ("train+test", 0, 200)
    assert rc("cars196:2.1.0", "test") == ("train+test", 98, 196)
    assert rc("cars196", "train") == ("train+test", 0, 98)
    assert rc("stanford_online_products", "train") == ("train", 0, 11318)
    assert rc("stanford_online_products") == ("test", 11318, 22634)
    assert rc("stanford_online_products", "all") == ("train+test", 0, 22634)
    with pytest.raises(ValueError, match="part='val'"):
        rc("cars196", "val")
    with pytest.raises(ValueError, match="food101"):
        rc("food101")


def test_filter_classes():
    labels = tf.constant([0, 5, 3, 4, 9, 4, 2], tf.int64)
    ds = tf.data.Dataset.from_tensor_slices(
        (tf.strings.as_string(labels), labels)
    )
    kept = _items(sources.filter_classes(ds, 3, 5))
    assert kept == [(b"3", 3), (b"4", 4), (b"4", 4)]
    with pytest.raises(ValueError, match="low=4, high=4"):
        sources.filter_classes(ds, 4, 4)


def test_class_names_that_differ_only_in_unicode_normalization(tmp_path):
    """'café' written by macOS (NFD) and by most tools (NFC) look the same:
    in one split they were two classes of one name, across splits a
    warning named 'café' twice without saying why."""
    import unicodedata

    from official.utils.misc.validation import OptionError

    nfc, nfd = "caf\u00e9", unicodedata.normalize("NFD", "caf\u00e9")
    assert nfc != nfd
    root = _folder(tmp_path / "one", {"train": 1, "test": 1})
    for name in (nfc, nfd):
        (root / "train" / name).mkdir()
        (root / "train" / name / "0.jpg").write_bytes(
            testing_utils.jpeg_bytes(np.zeros((8, 8, 3), np.uint8))
        )
    with pytest.raises(OptionError) as error:
        sources.open_source(str(root))
    assert error.value.as_flag() == (
        f"--source={root / 'train'} has class folders whose names differ "
        "only in their Unicode normalization: 'cafe\u0301' (cafe\\u0301) and "
        "'caf\u00e9' (caf\\xe9). They read as one name: rename one, or merge "
        "them."
    )
    across = _folder(tmp_path / "two", {"train": 1, "test": 1})
    for split, name in (("train", nfc), ("test", nfd)):
        (across / split / name).mkdir()
        (across / split / name / "0.jpg").write_bytes(
            testing_utils.jpeg_bytes(np.zeros((8, 8, 3), np.uint8))
        )
    warnings = sources.folder_warnings(sources.open_source(str(across)))
    assert (
        "(case counts; these differ only in their Unicode normalization: "
        "'cafe\u0301' (cafe\\u0301) and 'caf\u00e9' (caf\\xe9))."
    ) in warnings[-1]

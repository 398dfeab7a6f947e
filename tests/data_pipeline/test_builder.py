"""The TFRecord builder on small generated image folders."""

import contextlib
import dataclasses
import glob
import io
import json
import os
import re

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from assemble_tf.data import builder, schema
from tests import testing_utils

# --------------------------------------------------------------------------
# Helpers.


def smooth_rgb(height, width, seed):
    """A gradient image (JPEG-friendly, so round trips stay close)."""
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack(
        [
            x * 255.0 / width,
            y * 255.0 / height,
            np.full(x.shape, (seed * 37) % 256, np.float64),
        ],
        axis=-1,
    )
    return rgb.astype(np.uint8)


def jpeg_bytes(array, mode=None, quality=95):
    image = Image.fromarray(array)
    if mode:
        image = image.convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def png_bytes(array):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def read_records(output_dir, split):
    """`[(shard_file_name, {key: values})]` of every record of `split`."""
    records = []
    for path in sorted(glob.glob(os.path.join(output_dir, f"{split}-*"))):
        for raw in tf.data.TFRecordDataset(path):
            example = tf.train.Example.FromString(raw.numpy())
            features = {}
            for key, feature in example.features.feature.items():
                kind = feature.WhichOneof("kind")
                features[key] = list(getattr(feature, kind).value)
            records.append((os.path.basename(path), features))
    return records


def by_filename(records):
    out = {}
    for _, features in records:
        name = features[schema.FILENAME][0].decode()
        assert name not in out, f"{name} written twice"
        out[name] = features
    return out


def simple_folder(root, per_class=6, classes=("ant", "bee")):
    """`root/<class>/<class>_<i>.jpg` RGB JPEGs; returns the file names."""
    names = []
    for c, name in enumerate(classes):
        for i in range(per_class):
            filename = f"{name}_{i}.jpg"
            array = smooth_rgb(16 + i, 20 + c, seed=10 * c + i)
            write(os.path.join(root, name, filename), jpeg_bytes(array))
            names.append(filename)
    return names


@contextlib.contextmanager
def raises_as_flag(kind, match):
    """`pytest.raises` matching the message the binary prints (an
    `OptionError`'s `as_flag()`: options written as --flags)."""
    with pytest.raises(kind) as info:
        yield info
    text = info.value.as_flag()
    assert re.search(match, text), text


def folder_config(train_dir, output_dir, **kwargs):
    kwargs.setdefault("train_shards", 4)
    return builder.BuildConfig(
        output_dir=str(output_dir),
        layout="folder",
        train_dir=str(train_dir),
        progress=False,
        **kwargs,
    )


# --------------------------------------------------------------------------
# Round trip of every kind of input file.


@pytest.fixture
def mixed_dataset(tmp_path):
    """A folder dataset of 10 image files (3 bad) plus side files."""
    train = tmp_path / "train"
    sources = {}  # file -> (class, height, width, RGB array or None)

    def add(cls, name, data, array):
        write(str(train / cls / name), data)
        sources[name] = (cls, array)

    a = smooth_rgb(20, 30, 1)
    add("cat", "cat_a.jpg", jpeg_bytes(a), a)
    b = smooth_rgb(21, 31, 2)
    add("cat", "cat_b.jpg", jpeg_bytes(b), b)
    c = smooth_rgb(22, 32, 3)
    add("cat", "cmyk.jpg", jpeg_bytes(c, mode="CMYK"), c)
    add("cat", "truncated.jpg", jpeg_bytes(smooth_rgb(40, 40, 4))[:300], None)
    d = smooth_rgb(23, 33, 5)
    add("dog", "dog_a.jpg", jpeg_bytes(d), d)
    e = smooth_rgb(24, 34, 6)
    add("dog", "png_named.JPEG", png_bytes(e), e)
    g = smooth_rgb(25, 35, 7)[..., 0]
    add("dog", "gray.jpg", jpeg_bytes(g), np.stack([g] * 3, -1))
    rgba = np.concatenate(
        [smooth_rgb(26, 36, 8), np.full((26, 36, 1), 255, np.uint8)], -1
    )
    add("dog", "rgba.png", png_bytes(rgba), rgba[..., :3])
    add("dog", "empty.jpg", b"", None)
    add("dog", "garbage.jpg", b"this is not an image", None)
    write(str(train / "cat" / "notes.txt"), b"not an image file")

    rng = np.random.RandomState(0)
    logits = {name: rng.randn(4).astype(np.float32) for name in sources}
    names = sorted(logits)
    for part, chunk in enumerate((names[:4], names[4:])):
        lines = ["filename,l0,l1,l2,l3"] if part == 0 else []
        lines += [
            ",".join([n] + [repr(float(v)) for v in logits[n]]) for n in chunk
        ]
        write(
            str(tmp_path / f"logits-{part}.csv"),
            ("\n".join(lines) + "\n").encode(),
        )
    write(
        str(tmp_path / "boxes.csv"),
        b"cat_a.jpg,0.1,0.2,0.5,0.6\ncat_a.jpg,0.0,0.0,1.0,1.0\n"
        b"dog_a.jpg,0.25,0.25,0.75,0.75\n",
    )
    write(
        str(tmp_path / "synsets.txt"),
        b"cat Felis catus, house cat\ndog Canis familiaris\n",
    )
    return tmp_path, sources, logits


def test_folder_round_trip_reencodes_skips_and_keeps_logits(mixed_dataset):
    root, sources, logits = mixed_dataset
    out = root / "out"
    summary = builder.build(
        folder_config(
            root / "train",
            out,
            train_shards=3,
            label_offset=3,
            synsets_file=str(root / "synsets.txt"),
            bbox_csv=str(root / "boxes.csv"),
            logits=str(root / "logits-*.csv"),
        )
    )
    records = read_records(str(out), "train")
    shard_files = sorted({shard for shard, _ in records})
    assert shard_files == [
        "train-00000-of-00003",
        "train-00001-of-00003",
        "train-00002-of-00003",
    ]
    got = by_filename(records)
    assert sorted(got) == [
        "cat_a.jpg",
        "cat_b.jpg",
        "cmyk.jpg",
        "dog_a.jpg",
        "gray.jpg",
        "png_named.JPEG",
        "rgba.png",
    ]
    for name, features in got.items():
        cls, array = sources[name]
        assert features[schema.LABEL] == [3 if cls == "cat" else 4]
        assert features[schema.SYNSET] == [cls.encode()]
        text = "Felis catus, house cat" if cls == "cat" else "Canis familiaris"
        assert features[schema.TEXT] == [text.encode()]
        assert features[schema.HEIGHT] == [array.shape[0]]
        assert features[schema.WIDTH] == [array.shape[1]]
        assert features[schema.CHANNELS] == [3]
        assert features[schema.COLORSPACE] == [b"RGB"]
        assert features[schema.FORMAT] == [b"JPEG"]
        encoded = features[schema.IMAGE][0]
        image = tf.io.decode_jpeg(encoded).numpy()
        assert image.shape == array.shape  # 3 channels, RGB
        diff = np.abs(image.astype(np.float64) - array).mean()
        assert diff < 6.0, (name, diff)
        # Exact float32 round trip of the teacher logits.
        np.testing.assert_array_equal(
            np.asarray(features[schema.LOGIT], np.float32), logits[name]
        )
        source = open(root / "train" / cls / name, "rb").read()
        kept = name in ("cat_a.jpg", "cat_b.jpg", "dog_a.jpg")
        assert (encoded == source) is kept, name
    gray = tf.io.decode_jpeg(got["gray.jpg"][schema.IMAGE][0]).numpy()
    assert np.abs(gray[..., 0].astype(int) - gray[..., 2]).max() <= 2
    np.testing.assert_allclose(
        got["cat_a.jpg"][schema.BBOX_XMIN], [0.1, 0.0], rtol=1e-6
    )
    np.testing.assert_allclose(
        got["cat_a.jpg"][schema.BBOX_YMAX], [0.6, 1.0], rtol=1e-6
    )
    assert got["cat_a.jpg"][schema.BBOX_LABEL] == [3, 3]
    assert got["dog_a.jpg"][schema.BBOX_XMAX] == [0.75]
    assert got["cmyk.jpg"][schema.BBOX_XMIN] == []

    train = summary["splits"]["train"]
    assert train["files"] == 10
    assert train["images"] == 7
    assert train["skipped"] == 3
    assert train["per_class"] == {"cat": 3, "dog": 4}
    assert train["num_logits"] == 4
    assert train["reencoded"] == {
        "JPEG CMYK": 1,
        "JPEG L": 1,
        "PNG RGB": 1,
        "PNG RGBA": 1,
    }
    assert train["ignored_files"] == ["cat/notes.txt"]
    # Before: on the console only as "3 skipped".
    assert (
        "    not read (no image file extension, sub-folders, broken "
        "links, names not UTF-8): 1, e.g. cat/notes.txt (ignored_files "
        "in summary.json)"
    ) in builder.format_summary(summary).splitlines()
    assert [(s["file"], s["reason"]) for s in summary["skipped"]] == [
        ("cat/truncated.jpg", "truncated"),
        ("dog/empty.jpg", "empty file"),
        ("dog/garbage.jpg", "unreadable"),
    ]
    with open(out / "summary.json") as f:
        on_disk = json.load(f)
    assert on_disk["splits"]["train"]["images"] == 7
    assert len(on_disk["skipped"]) == 3
    assert (out / "labels.txt").read_text() == (
        "3\tcat\tFelis catus, house cat\n4\tdog\tCanis familiaris\n"
    )


def test_files_the_pipeline_would_drop_or_nobody_would_see(tmp_path):
    """Before: a JPEG without its final end-of-image marker (cut, or with
    data after it) was kept byte for byte and then dropped by training and
    evaluation; a sub-folder, a broken link or a file name that is not
    UTF-8 (which stopped the build naming nothing) vanished without a
    record; a class folder without images, a synset without a folder and
    a replaced input file went unmentioned."""
    train = tmp_path / "train"
    whole = jpeg_bytes(smooth_rgb(20, 30, 1))
    write(str(train / "cat" / "a.jpg"), whole)
    write(str(train / "cat" / "cut.jpg"), whole[:-2])
    write(str(train / "cat" / "trailing.jpg"), whole + b"\0" * 16)
    write(str(train / "cat" / "nested" / "deep.jpg"), whole)
    os.symlink("/nonexistent/file.jpg", train / "cat" / "dangling.jpg")
    latin1 = os.fsencode(str(train / "cat")) + b"/latin1_\xe9.jpg"
    with open(latin1, "wb") as f:
        f.write(whole)
    write(str(train / "dog" / "d.jpg"), jpeg_bytes(smooth_rgb(21, 31, 2)))
    (train / "emu").mkdir()
    write(str(tmp_path / "synsets.txt"), b"bird B\ncat C\ndog D\nemu E\n")
    out = tmp_path / "out"
    config = folder_config(
        train, out, train_shards=2, synsets_file=str(tmp_path / "synsets.txt")
    )
    summary = builder.build(config)
    split = summary["splits"]["train"]
    # Pillow finds this cut file truncated (a file it decodes without its
    # marker is re-encoded as the one with data after its marker is).
    assert (split["images"], split["skipped"]) == (3, 1)
    assert summary["skipped"][0]["file"] == "cat/cut.jpg"
    assert split["reencoded"] == {
        "JPEG RGB without a final end-of-image marker": 1
    }
    records = read_records(str(out), "train")
    encoded = [f[schema.IMAGE][0] for _, f in records]
    assert all(e[:2] == b"\xff\xd8" and e[-2:] == b"\xff\xd9" for e in encoded)
    assert split["ignored_files"] == [
        "cat/dangling.jpg (a broken link, or not a file)",
        "cat/latin1_\ufffd.jpg (name not UTF-8: rename it)",
        "cat/nested/ (a sub-folder: not read)",
    ]
    assert summary["synsets_without_folder"] == ["bird"]
    lines = builder.format_summary(summary).splitlines()
    assert (
        "WARNING: 1 synset of the synsets file without a class folder (bird): "
        "labels number the 3 folders there are, so they are not the synsets "
        "file's numbering."
    ) in lines
    assert (
        "WARNING: train: 1 class without an image (emu): their labels "
        "exist, and the model learns nothing of them."
    ) in lines
    # A replaced input file: its shard is not silently kept, and the file
    # is named (before: "1 of 2 shards" alone: on ImageNet, no way to
    # tell which of 1,250 files).
    os.utime(train / "dog" / "d.jpg", ns=(1, 1))
    with raises_as_flag(
        FileExistsError,
        match=re.escape(
            "the train inputs (files, their sizes or modification times, "
            "labels, texts, boxes or logits) differ in 1 of 2 shards "
            "(4 files before, 4 now): changed dog/d.jpg"
        ),
    ):
        builder.build(config)
    # Boxes none of whose names is an image of the build.
    write(str(tmp_path / "boxes.csv"), b"train/cat/a.jpg,0,0,1,1\n")
    with raises_as_flag(
        ValueError, match=r"--bbox_csv=.*: none of its 1 file names"
    ):
        builder.build(
            dataclasses.replace(
                config,
                output_dir=str(tmp_path / "out2"),
                bbox_csv=str(tmp_path / "boxes.csv"),
            )
        )


def test_encode_image_modes():
    rgb = smooth_rgb(12, 14, 3)
    data = jpeg_bytes(rgb)
    assert builder.encode_image(data) == (data, 12, 14, None)
    palette = Image.fromarray(rgb).convert("P")
    buffer = io.BytesIO()
    palette.save(buffer, format="PNG")
    jpeg, height, width, kind = builder.encode_image(buffer.getvalue(), 90)
    assert (height, width, kind) == (12, 14, "PNG P")
    assert tf.io.decode_jpeg(jpeg).shape == (12, 14, 3)
    transparent = np.zeros((4, 5, 4), np.uint8)  # fully transparent black
    jpeg, _, _, kind = builder.encode_image(png_bytes(transparent))
    assert kind == "PNG RGBA"
    assert tf.io.decode_jpeg(jpeg).numpy().min() >= 250  # white background
    with pytest.raises(builder.SkipImage) as info:
        builder.encode_image(b"")
    assert info.value.reason == "empty file"
    # A dark 16-bit greyscale PNG (values <= 255 of 65535) is near black,
    # as TensorFlow decodes it (folders, serving); before, its values were
    # taken as 8-bit: mean 99.
    dark = (np.arange(40 * 60) % 200).reshape(40, 60).astype(np.uint16)
    buffer = io.BytesIO()
    Image.fromarray(dark).save(buffer, format="PNG")
    jpeg, _, _, kind = builder.encode_image(buffer.getvalue(), 95)
    assert kind.startswith("PNG I")
    ours = tf.io.decode_jpeg(jpeg).numpy().astype(float)
    theirs = tf.io.decode_png(buffer.getvalue(), channels=3).numpy()
    assert ours.mean() < 1.5 and theirs.mean() < 1.5
    # A float TIFF of samples in [0, 1] (a ramp): scaled to 0..255, not
    # rounded to black (before: min 0, max 1, mean 0.5).
    ramp = np.tile(np.linspace(0, 1, 48, dtype=np.float32), (40, 1))
    buffer = io.BytesIO()
    Image.fromarray(ramp, mode="F").save(buffer, format="TIFF")
    jpeg, _, _, kind = builder.encode_image(buffer.getvalue(), 95)
    assert kind == "TIFF F"
    ours = tf.io.decode_jpeg(jpeg).numpy().astype(float)
    assert ours.min() <= 2 and ours.max() >= 253
    assert abs(ours.mean() - 127.5) < 2
    # A 32-bit integer TIFF beyond 16 bits (8,000..192,000): its range
    # (before: divided as 16-bit and clipped, mean 251.7 where 119 is due).
    wide = (8000 + 184000 * np.tile(np.linspace(0, 1, 48), (40, 1))).astype(
        np.int32
    )
    buffer = io.BytesIO()
    Image.fromarray(wide, mode="I").save(buffer, format="TIFF")
    jpeg, _, _, kind = builder.encode_image(buffer.getvalue(), 95)
    assert kind == "TIFF I"
    ours = tf.io.decode_jpeg(jpeg).numpy().astype(float)
    assert abs(ours.mean() - 255 * wide.mean() / wide.max()) < 2
    # Float samples beyond 1 are 8-bit values as they are.
    buffer = io.BytesIO()
    Image.fromarray(ramp * 200, mode="F").save(buffer, format="TIFF")
    ours = tf.io.decode_jpeg(builder.encode_image(buffer.getvalue())[0])
    assert abs(ours.numpy().astype(float).mean() - 100) < 2


def test_an_image_over_pillows_pixel_limit_is_skipped_as_too_large(
    monkeypatch,
):
    """Before: "unreadable (DecompressionBombError ...)", for a file that
    reads; the limit lowered here to 2 x 100 pixels."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(builder.SkipImage) as info:
        builder.encode_image(png_bytes(np.zeros((20, 15, 3), np.uint8)))
    assert info.value.reason == "too large"
    assert "300 pixels" in str(info.value.detail)
    assert str(info.value.detail).endswith("Downscale it to use it.")
    assert builder.encode_image(png_bytes(np.zeros((8, 12, 3), np.uint8)))
    # Between the limit and twice it: stored, without Pillow's warning (a
    # raw line without the file's name in the builder's output).
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert builder.encode_image(png_bytes(np.zeros((12, 12, 3), np.uint8)))


def test_missing_logits_is_an_error_listing_the_names(tmp_path):
    simple_folder(str(tmp_path / "train"), per_class=3)
    write(str(tmp_path / "t.csv"), b"ant_0.jpg,1,2\nbee_1.jpg,3,4\n")
    config = folder_config(
        tmp_path / "train",
        tmp_path / "out",
        train_shards=2,
        train_logits=str(tmp_path / "t.csv"),
    )
    with pytest.raises(ValueError) as info:
        builder.build(config)
    message = info.value.as_flag()
    assert "--train_logits=" in message
    assert "4 of the 6 train images have no logits" in message
    for name in ("ant/ant_1.jpg", "ant/ant_2.jpg", "bee/bee_0.jpg"):
        assert name in message
    assert not os.path.exists(tmp_path / "out")


def test_npz_logits_keyed_by_relative_path(tmp_path):
    names = simple_folder(str(tmp_path / "train"), per_class=2)
    keys = [f"{n.split('_')[0]}/{n}" for n in names]
    values = np.arange(len(keys) * 3, dtype=np.float32).reshape(-1, 3) / 7
    np.savez(tmp_path / "t.npz", filenames=np.array(keys), logits=values)
    builder.build(
        folder_config(
            tmp_path / "train",
            tmp_path / "out",
            train_shards=1,
            logits=str(tmp_path / "t.npz"),
        )
    )
    got = by_filename(read_records(str(tmp_path / "out"), "train"))
    for key, row in zip(keys, values, strict=True):
        logit = np.asarray(got[key.split("/")[1]][schema.LOGIT], np.float32)
        np.testing.assert_array_equal(logit, row)
    np.save(tmp_path / "t.npy", values)
    with pytest.raises(ValueError, match="np.savez"):
        builder.build(
            folder_config(
                tmp_path / "train",
                tmp_path / "out2",
                logits=str(tmp_path / "t.npy"),
            )
        )


# --------------------------------------------------------------------------
# The ImageNet layout.


def imagenet_tree(root):
    """3 wnids x 2 train images and 6 flat validation images."""
    wnids = ["n00000003", "n00000001", "n00000002"]  # sorted: 1, 2, 3
    for w, wnid in enumerate(wnids):
        for i in range(2):
            array = smooth_rgb(18, 18 + i, seed=w * 2 + i)
            path = os.path.join(root, "train", wnid, f"{wnid}_{i}.JPEG")
            write(path, jpeg_bytes(array))
    val_classes = ["n00000002", "n00000003", "n00000001"] * 2
    for i in range(len(val_classes)):
        name = f"ILSVRC2012_val_{i + 1:08d}.JPEG"
        path = os.path.join(root, "val", name)
        write(path, jpeg_bytes(smooth_rgb(16, 16, seed=50 + i)))
    write(
        os.path.join(root, "LOC_synset_mapping.txt"),
        b"n00000001 first thing, alpha\nn00000002 second thing\n"
        b"n00000003 third thing\nn00000004 unused class\n",
    )
    return val_classes


def test_imagenet_layout_with_validation_labels_file(tmp_path):
    val_classes = imagenet_tree(str(tmp_path))
    write(
        str(tmp_path / "val_labels.txt"),
        ("\n".join(val_classes) + "\n").encode(),
    )
    config = builder.BuildConfig(
        output_dir=str(tmp_path / "out"),
        layout="imagenet",
        train_dir=str(tmp_path / "train"),
        validation_dir=str(tmp_path / "val"),
        validation_labels=str(tmp_path / "val_labels.txt"),
        synsets_file=str(tmp_path / "LOC_synset_mapping.txt"),
        train_shards=2,
        validation_shards=2,
        progress=False,
    )
    from official.utils.misc.validation import OptionError

    # The labels file beside class folders (the train split's layout):
    # said so (before: "holds no images." alone).
    with pytest.raises(OptionError) as error:
        builder.build(
            dataclasses.replace(config, validation_dir=config.train_dir)
        )
    assert error.value.as_flag() == (
        f"--validation_dir={config.train_dir} holds no images directly, "
        "only folders: --validation_labels labels a flat folder of images; "
        "leave it out for class folders."
    )
    summary = builder.build(config)
    labels = {"n00000001": 1, "n00000002": 2, "n00000003": 3}
    train = by_filename(read_records(config.output_dir, "train"))
    assert len(train) == 6
    for name, features in train.items():
        wnid = name.split("_")[0]
        assert features[schema.LABEL] == [labels[wnid]]
        assert features[schema.SYNSET] == [wnid.encode()]
    val = by_filename(read_records(config.output_dir, "validation"))
    assert sorted(val) == [f"ILSVRC2012_val_{i:08d}.JPEG" for i in range(1, 7)]
    for i, wnid in enumerate(val_classes):
        features = val[f"ILSVRC2012_val_{i + 1:08d}.JPEG"]
        assert features[schema.LABEL] == [labels[wnid]]
        assert features[schema.SYNSET] == [wnid.encode()]
    first = val["ILSVRC2012_val_00000003.JPEG"]
    assert first[schema.TEXT] == [b"first thing, alpha"]
    assert summary["label_offset"] == 1
    assert summary["splits"]["validation"]["per_class"] == {
        "n00000001": 2,
        "n00000002": 2,
        "n00000003": 2,
    }
    assert sorted(os.listdir(config.output_dir)) == [
        ".build_state",
        "build_manifest.json",
        "labels.txt",
        "summary.json",
        "train-00000-of-00002",
        "train-00001-of-00002",
        "validation-00000-of-00002",
        "validation-00001-of-00002",
    ]

    # The two-column form (CSV, names without extension) gives the same.
    rows = [
        f"ILSVRC2012_val_{i + 1:08d},{wnid}"
        for i, wnid in enumerate(val_classes)
    ]
    rows.append("ILSVRC2012_val_00099999,n00000002")  # no such image
    write(
        str(tmp_path / "val_solution.csv"),
        ("filename,wnid\n" + "\n".join(reversed(rows))).encode(),
    )
    again = builder.BuildConfig(
        output_dir=str(tmp_path / "out2"),
        layout="imagenet",
        train_dir=str(tmp_path / "train"),
        validation_dir=str(tmp_path / "val"),
        validation_labels=str(tmp_path / "val_solution.csv"),
        validation_shards=1,
        progress=False,
    )
    summary = builder.build(again)
    # A line naming no image is said to be unused (before: ignored
    # without a word).
    assert summary["validation_labels_unused"] == ["ILSVRC2012_val_00099999"]
    assert (
        "WARNING: 1 lines of the validation labels name no image of the "
        "validation folder (ILSVRC2012_val_00099999): not used."
    ) in builder.format_summary(summary).splitlines()
    val2 = by_filename(read_records(again.output_dir, "validation"))
    assert {k: v[schema.LABEL] for k, v in val2.items()} == {
        k: v[schema.LABEL] for k, v in val.items()
    }
    assert val2["ILSVRC2012_val_00000003.JPEG"][schema.TEXT] == [b"n00000001"]


def test_imagenet_layout_errors_name_the_flag(tmp_path):
    imagenet_tree(str(tmp_path))
    write(str(tmp_path / "ids.txt"), b"65\n970\n230\n809\n516\n57\n")
    config = builder.BuildConfig(
        output_dir=str(tmp_path / "out"),
        validation_dir=str(tmp_path / "val"),
        validation_labels=str(tmp_path / "ids.txt"),
        progress=False,
    )
    with raises_as_flag(ValueError, match="WordNet ids.*meta.mat"):
        builder.build(config)
    config = dataclasses.replace(config, validation_labels=None)
    with raises_as_flag(ValueError, match="--validation_labels=FILE"):
        builder.build(config)
    bad = builder.BuildConfig(
        output_dir=f"{tmp_path}_out", train_dir=str(tmp_path)
    )
    with raises_as_flag(ValueError, match="--layout=folder"):
        builder.build(bad)
    # The folder layout: integer labels beside class folders are named
    # with the labels file and the fix (before: "not class folders of
    # --train_dir", naming neither).
    folder = dataclasses.replace(
        config,
        layout="folder",
        train_dir=str(tmp_path / "train"),
        validation_labels=str(tmp_path / "ids.txt"),
        output_dir=str(tmp_path / "out_folder"),
    )
    with raises_as_flag(
        ValueError,
        match=re.escape(
            f"--validation_labels={tmp_path / 'ids.txt'} names classes that "
            f"are not class folders of --train_dir={tmp_path / 'train'}: "
        )
        + ".*not the devkit's integer ids: map them to wnids with its "
        "meta.mat.",
    ):
        builder.build(folder)
    bad = dataclasses.replace(bad, jpeg_quality=101)
    with raises_as_flag(ValueError, match="--jpeg_quality=101"):
        builder.build(bad)
    # An output folder inside an input one: its records became a class
    # (folder layout), or a rerun was refused ("records" is no WordNet id).
    inside = dataclasses.replace(
        bad, jpeg_quality=90, output_dir=str(tmp_path / "records")
    )
    with raises_as_flag(
        ValueError,
        match=re.escape(
            f"--output_dir={tmp_path / 'records'} is inside "
            f"--train_dir={tmp_path}: its records would be read"
        ),
    ):
        builder.build(inside)


# --------------------------------------------------------------------------
# Resume, refusal, determinism.


def test_resume_after_a_crash_and_a_deleted_shard(tmp_path, monkeypatch):
    names = simple_folder(str(tmp_path / "train"))
    out = tmp_path / "out"
    config = folder_config(tmp_path / "train", out)
    real = builder.write_shard
    calls = []

    def crash_on_third_shard(task, progress=None):
        if len(calls) == 2:  # dies half-way through its temp file
            write(builder.temp_shard_path(str(out), task.name), b"partial")
            raise RuntimeError("simulated crash")
        calls.append(task.name)
        return real(task, progress)

    monkeypatch.setattr(builder.run, "write_shard", crash_on_third_shard)
    with pytest.raises(RuntimeError, match="simulated crash"):
        builder.build(config)
    monkeypatch.setattr(builder.run, "write_shard", real)
    done = sorted(glob.glob(str(out / "train-*")))
    assert [os.path.basename(p) for p in done] == calls
    assert len(glob.glob(str(out / ".train-*.tmp"))) == 1
    assert not (out / "summary.json").exists()
    before = {p: os.stat(p).st_mtime_ns for p in done}

    summary = builder.build(config)
    train = summary["splits"]["train"]
    assert (train["shards_resumed"], train["shards_done"]) == (2, 4)
    assert train["images"] == 12 and train["complete"]
    assert glob.glob(str(out / ".train-*.tmp")) == []
    assert {p: os.stat(p).st_mtime_ns for p in done} == before  # kept
    records = read_records(str(out), "train")
    filenames = [f[schema.FILENAME][0].decode() for _, f in records]
    assert sorted(filenames) == sorted(names)  # each exactly once

    os.remove(out / "train-00002-of-00004")
    summary = builder.build(config)
    assert summary["splits"]["train"]["shards_resumed"] == 3
    records = read_records(str(out), "train")
    assert sorted(f[schema.FILENAME][0].decode() for _, f in records) == (
        sorted(names)
    )
    # A complete build rerun is a no-op.
    summary = builder.build(config)
    assert summary["splits"]["train"]["shards_resumed"] == 4


def test_one_class_builds_with_a_warning(tmp_path):
    """Before: built without a word, then refused by tools.train."""
    simple_folder(str(tmp_path / "train"), per_class=2, classes=("ant",))
    summary = builder.build(
        folder_config(tmp_path / "train", tmp_path / "o", train_shards=1)
    )
    assert summary["num_classes"] == 1
    assert (
        "WARNING: 1 class: tools.train and tools.finetune need at least 2 "
        "(a classifier); add the other class folders."
    ) in builder.format_summary(summary).splitlines()
    simple_folder(str(tmp_path / "train2"), per_class=1)
    two = builder.build(
        folder_config(tmp_path / "train2", tmp_path / "o2", train_shards=1)
    )
    assert "WARNING: 1 class" not in builder.format_summary(two)


def test_a_full_disk_leaves_no_partial_shard(tmp_path, monkeypatch):
    """Before: the temp file of the shard being written when the disk
    filled stayed there, taking the space, until a rerun."""
    import errno

    from assemble_tf.data.builder import shards

    simple_folder(str(tmp_path / "train"))
    out = tmp_path / "out"
    real = shards._write_records

    def full_after_one_record(task, writer, progress):
        writer.write(b"one record")
        writer.flush()
        temp = shards.temp_shard_path(task.output_dir, task.name)
        assert os.path.getsize(temp) > 0
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(shards, "_write_records", full_after_one_record)
    with pytest.raises(OSError, match="No space left"):
        builder.build(folder_config(tmp_path / "train", out))
    assert glob.glob(str(out / ".train-*.tmp")) == []
    monkeypatch.setattr(shards, "_write_records", real)
    summary = builder.build(folder_config(tmp_path / "train", out))
    assert summary["splits"]["train"]["images"] == 12


def test_refuses_to_overwrite_another_build(tmp_path):
    simple_folder(str(tmp_path / "train"))
    out = tmp_path / "out"
    builder.build(folder_config(tmp_path / "train", out))
    # The default shard count: one per image up to 128 here (12).
    capped = tmp_path / "capped"
    builder.build(folder_config(tmp_path / "train", capped, train_shards=None))
    with pytest.raises(FileExistsError) as info:
        builder.build(
            folder_config(
                tmp_path / "train", out, train_shards=3, jpeg_quality=90
            )
        )
    message = info.value.as_flag()
    assert "--jpeg_quality: existing build 95, now 90" in message
    assert "--train_shards: existing build 4, now 3" in message
    assert "--overwrite" in message
    # New inputs under the same options are refused too.
    write(
        str(tmp_path / "train" / "ant" / "ant_new.jpg"),
        jpeg_bytes(smooth_rgb(9, 9, 99)),
    )
    with pytest.raises(FileExistsError, match="train inputs"):
        builder.build(folder_config(tmp_path / "train", out))
    # Not "--train_shards: existing build 12, now 13" to a user who added
    # an image and never passed the flag.
    with pytest.raises(FileExistsError) as info:
        builder.build(
            folder_config(tmp_path / "train", capped, train_shards=None)
        )
    assert info.value.as_flag().startswith(
        f"--output_dir={capped} holds shards made with other options (the "
        "train inputs differ (12 files before, 13 now), and with them the "
        "default --train_shards (12 before, 13 now): new ant/ant_new.jpg)"
    ), info.value.as_flag()
    summary = builder.build(
        folder_config(tmp_path / "train", out, train_shards=3, overwrite=True)
    )
    assert summary["splits"]["train"]["images"] == 13
    assert sorted(os.path.basename(p) for p in glob.glob(str(out / "tr*"))) == [
        "train-00000-of-00003",
        "train-00001-of-00003",
        "train-00002-of-00003",
    ]
    # Shards without a manifest are never silently replaced.
    stray = tmp_path / "stray"
    write(str(stray / "train-00000-of-00001"), b"old records")
    with pytest.raises(FileExistsError, match="no build_manifest.json"):
        builder.build(folder_config(tmp_path / "train", stray))
    assert (stray / "train-00000-of-00001").read_bytes() == b"old records"


@pytest.mark.slow  # spawns worker processes
def test_deterministic_shards_for_a_seed_and_any_worker_count(tmp_path):
    assert builder.assign_shards(10, 3, 12345) == [
        [8, 7, 3],
        [5, 1, 2],
        [9, 4, 0, 6],
    ]
    assert builder.assign_shards(10, 3, 7) == [
        [8, 3, 1],
        [4, 7, 0],
        [9, 6, 2, 5],
    ]
    simple_folder(str(tmp_path / "train"))

    def shard_bytes(name, **kwargs):
        out = tmp_path / name
        builder.build(folder_config(tmp_path / "train", out, **kwargs))
        return [
            open(p, "rb").read()
            for p in sorted(glob.glob(str(out / "train-*")))
        ]

    serial = shard_bytes("serial")
    assert len(serial) == 4
    assert shard_bytes("parallel", num_workers=2) == serial
    assert shard_bytes("other_seed", seed=1) != serial


@pytest.mark.slow
def test_binary_builds_and_fails_cleanly(tmp_path):
    simple_folder(str(tmp_path / "train"), per_class=2)

    def run(*flags):
        return testing_utils.run_main("tools.build_imagenet_tfrecords", *flags)

    common = [
        "--layout=folder",
        f"--train_dir={tmp_path / 'train'}",
        f"--output_dir={tmp_path / 'out'}",
        "--num_workers=1",
        "--noprogress",
    ]
    result = run(*common, "--train_shards=2", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["splits"]["train"]["images"] == 4
    assert summary["splits"]["train"]["per_class"] == {"ant": 2, "bee": 2}
    refused = run(*common, "--train_shards=3")
    assert refused.returncode == 2
    assert "--train_shards: existing build 2, now 3" in refused.stderr
    assert "Traceback" not in refused.stderr
    bad = run(*common, "--jpeg_quality=0")
    assert bad.returncode == 2
    assert "--jpeg_quality=0" in bad.stderr


def test_a_split_without_any_readable_image_is_an_error(tmp_path):
    """Before: 0-byte shards and exit 0 with '0 images'."""
    train = str(tmp_path / "train")
    simple_folder(train, per_class=2)
    validation = tmp_path / "val"
    for c in ("ant", "bee"):
        write(str(validation / c / "broken.jpg"), b"not an image")
    out = str(tmp_path / "out")
    config = folder_config(train, out, validation_dir=str(validation))
    with pytest.raises(ValueError) as err:
        builder.build(config)
    text = err.value.as_flag()
    assert text.startswith(
        f"--validation_dir={validation}: none of its 2 files is a readable "
        "image (e.g. ant/broken.jpg: unreadable"
    )
    assert not glob.glob(os.path.join(out, "validation-*"))
    assert not os.path.exists(os.path.join(out, builder.SUMMARY))
    # The good split is kept for the rerun.
    assert len(glob.glob(os.path.join(out, "train-*"))) == 4


def test_unreadable_files_leave_no_empty_shard(tmp_path):
    """Issue 24 item 10. Before: with the shard count fixed from the file
    count (one file per shard), the shards of the 2 corrupt files were
    written as 0-byte files: 'train: 8 images in 10/10 shards'."""
    names = simple_folder(str(tmp_path / "train"), per_class=4)
    for c in ("ant", "bee"):
        write(str(tmp_path / "train" / c / f"{c}_bad.jpg"), b"not an image")
    out = tmp_path / "out"
    config = folder_config(tmp_path / "train", out, train_shards=None)
    summary = builder.build(config)
    paths = sorted(glob.glob(str(out / "train-*")))
    assert [os.path.basename(p) for p in paths] == [
        f"train-{i:05d}-of-00008" for i in range(8)
    ]
    assert all(os.path.getsize(p) > 0 for p in paths)
    train = summary["splits"]["train"]
    assert (train["files"], train["images"], train["skipped"]) == (10, 8, 2)
    assert (train["shards"], train["shards_done"]) == (8, 8)
    assert train["empty_shards"] == 2 and train["complete"]
    assert "train: 8 images in 8/8 shards" in builder.format_summary(summary)
    filenames = [
        f[schema.FILENAME][0].decode() for _, f in read_records(out, "train")
    ]
    assert sorted(filenames) == sorted(names)
    # The renumbered build resumes as it is, and rebuilds a lost shard.
    before = {p: os.stat(p).st_mtime_ns for p in paths}
    again = builder.build(config)
    assert again["splits"]["train"]["shards_resumed"] == 8
    assert {p: os.stat(p).st_mtime_ns for p in paths} == before
    os.remove(paths[3])
    again = builder.build(config)
    assert again["splits"]["train"]["shards_resumed"] == 7
    assert sorted(glob.glob(str(out / "train-*"))) == paths
    # An older build's 0-byte shard (its state without "file") is removed.
    states = glob.glob(str(out / ".build_state" / "train-*-of-00010.json"))
    empty = [p for p in states if read_json(p)["images"] == 0]
    assert len(states) == 10 and len(empty) == 2
    state = read_json(empty[0])
    del state["file"]
    write(empty[0], json.dumps(state).encode())
    legacy = out / os.path.basename(empty[0]).removesuffix(".json")
    write(str(legacy), b"")
    again = builder.build(config)
    assert again["splits"]["train"]["shards_resumed"] == 8
    assert not legacy.exists()
    assert sorted(glob.glob(str(out / "train-*"))) == paths
    filenames = [
        f[schema.FILENAME][0].decode() for _, f in read_records(out, "train")
    ]
    assert sorted(filenames) == sorted(names)


def test_a_file_that_could_not_be_read_is_read_by_the_rerun(
    tmp_path, monkeypatch
):
    """Before: a file skipped because it could not be opened (its
    permissions) stayed out of the build once fixed: `chmod` changes
    neither its size nor its modification time, so the rerun kept its
    shard. (The tests run as root, whom permissions do not stop: the open
    fails by a stand-in.)"""
    import builtins

    from assemble_tf.data.builder import shards

    names = simple_folder(str(tmp_path / "train"), per_class=4)
    real_open = builtins.open

    def no_permission(path, *args, **kwargs):
        if os.path.basename(str(path)) == "bee_2.jpg":
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(shards, "open", no_permission, raising=False)
    out = tmp_path / "out"
    config = folder_config(tmp_path / "train", out)
    summary = builder.build(config)
    train = summary["splits"]["train"]
    assert (train["images"], train["skipped"], train["shards"]) == (7, 1, 4)
    (skipped,) = summary["skipped"]
    assert skipped["file"] == "bee/bee_2.jpg"
    assert skipped["reason"] == "could not be read"
    assert "Permission denied" in skipped["detail"]
    text = builder.format_summary(summary)
    assert "skipped train/bee/bee_2.jpg: could not be read (" in text
    assert "read again by a rerun of the same command" in text
    monkeypatch.undo()  # the permissions fixed
    again = builder.build(config)
    train = again["splits"]["train"]
    assert (train["images"], train["skipped"]) == (8, 0)
    assert train["shards_resumed"] == 3  # the other shards are kept
    assert not again["skipped"]
    assert "read again" not in builder.format_summary(again)
    filenames = [
        f[schema.FILENAME][0].decode() for _, f in read_records(out, "train")
    ]
    assert sorted(filenames) == sorted(names)
    assert builder.build(config)["splits"]["train"]["shards_resumed"] == 4


def test_a_class_folder_that_links_to_another_is_refused(tmp_path):
    """Before: the linked folder's images were written twice, once under
    each label. A link to a folder outside the root is a class of its own."""
    from assemble_tf.data.builder import inputs
    from official.utils.misc.validation import OptionError

    (tmp_path / "train" / "cat").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", tmp_path / "train" / "dog")
    assert inputs.list_class_folders(
        str(tmp_path / "train"), "train_dir", "folder"
    ) == ["cat", "dog"]
    os.symlink(tmp_path / "train" / "cat", tmp_path / "train" / "kitty")
    with pytest.raises(OptionError) as e:
        inputs.list_class_folders(
            str(tmp_path / "train"), "train_dir", "folder"
        )
    assert e.value.as_flag() == (
        f"--train_dir={tmp_path / 'train'}: the class folders 'cat' and "
        f"'kitty' are one folder ({tmp_path / 'train' / 'cat'}): its images "
        "would be read under both labels. Remove the link, or copy the "
        "images if both classes are meant."
    )


def test_a_wnid_listed_twice_with_other_text_is_refused(tmp_path):
    """Before: the first line won without a word."""
    from assemble_tf.data.builder import inputs
    from official.utils.misc.validation import OptionError

    path = tmp_path / "synsets.txt"
    path.write_text("n01 alpha\nn02 beta\nn01 alpha\n# n01 gamma\n")
    assert inputs.read_synsets(str(path)) == {"n01": "alpha", "n02": "beta"}
    path.write_text("n01 alpha\nn02 beta\nn01 other\n")
    with pytest.raises(OptionError) as e:
        inputs.read_synsets(str(path))
    assert e.value.as_flag() == (
        f"--synsets_file={path} lists n01 twice with other text (lines 1 "
        "and 3: 'alpha', 'other'); keep one line."
    )


def test_a_class_list_of_another_encoding_names_its_flag(tmp_path):
    """Before: "'utf-8' codec can't decode byte 0xe9 ...", naming neither
    the file nor the flag."""
    from assemble_tf.data.builder import inputs
    from official.utils.misc.validation import OptionError

    latin1 = tmp_path / "synsets.txt"
    latin1.write_bytes("n01 caf\xe9\nn02 tea\n".encode("latin-1"))
    with pytest.raises(OptionError) as e:
        inputs.read_synsets(str(latin1))
    assert e.value.as_flag() == (
        f"--synsets_file={latin1} is not UTF-8 text (it holds byte 0xe9): "
        "save it as UTF-8."
    )
    with pytest.raises(OptionError) as e:
        inputs.read_validation_labels(str(latin1), ["a.jpg", "b.jpg"])
    assert e.value.as_flag().startswith(f"--validation_labels={latin1} is not")
    latin1.write_bytes("n01 café\n".encode())
    assert inputs.read_synsets(str(latin1)) == {"n01": "café"}
    # A byte-order mark and CRLF, as Windows editors save: the BOM is not
    # part of the first name (before: "has no line for 1 classes: n01").
    bom = tmp_path / "bom.txt"
    bom.write_bytes(b"\xef\xbb\xbfn01 tench\r\nn02 goldfish\r\n")
    assert inputs.read_synsets(str(bom)) == {"n01": "tench", "n02": "goldfish"}
    bom.write_bytes(b"\xef\xbb\xbfa.jpg\tn01\r\nb.jpg\tn02\r\n")
    assert inputs.read_validation_labels(str(bom), ["a.jpg", "b.jpg"]) == [
        "n01",
        "n02",
    ]
    bom.write_bytes(b"\xef\xbb\xbfa.jpg,1.5,-2\r\n")
    assert inputs.read_logits([str(bom)], "train_logits")[0] == {"a.jpg": 0}


def test_class_names_with_control_characters_are_refused(tmp_path):
    """Before: a newline in a class folder's name split its labels.txt
    line, and tools.evaluate then refused the builder's own labels.txt."""
    from assemble_tf.data.builder import inputs
    from official.utils.misc.validation import OptionError

    for name in ("a", "café ok"):
        (tmp_path / name).mkdir()
    refused = {
        ("new\nline", "tab\there"): (
            "hold a tab, a newline or another control character: "
            "'new\\nline', 'tab\\there'. Rename them (labels.txt keeps one "
            "class per line, its fields tab-separated)."
        ),
        # labels.txt's reader strips them: "alpha " and "alpha" were one.
        ("alpha ", " beta"): (
            "start or end with a space: ' beta', 'alpha '. Rename them "
            "(labels.txt's classes are read without them, so two folders "
            "became one name and eval_robustness could not find them)."
        ),
    }
    for names, why in refused.items():
        for name in names:
            (tmp_path / name).mkdir()
        with pytest.raises(OptionError) as e:
            inputs.list_class_folders(str(tmp_path), "train_dir", "folder")
        assert e.value.as_flag() == (
            f"--train_dir={tmp_path} has class folders whose names {why}"
        )
        for name in names:
            (tmp_path / name).rmdir()
    assert inputs.list_class_folders(str(tmp_path), "train_dir", "folder") == [
        "a",
        "café ok",
    ]


def test_non_finite_teacher_logits_name_the_file_and_images(tmp_path):
    """Before: kept, and the first KD step stopped on a NaN loss naming
    neither the file nor the images. -1e40 overflows float32."""
    from assemble_tf.data.builder import inputs
    from official.utils.misc.validation import OptionError

    path = tmp_path / "logits.csv"
    path.write_text("a.jpg,nan,1\nb.jpg,0,1\nc.jpg,-1e40,2\nd.jpg,inf,0\n")
    with pytest.raises(OptionError) as e:
        inputs.read_logits([str(path)], "train_logits")
    assert e.value.as_flag() == (
        f"--train_logits: {path} has NaN or infinite logits (float32) for 3 "
        "images: a.jpg, c.jpg, d.jpg. Give every image finite logits."
    )
    np.savez(
        tmp_path / "l.npz",
        filenames=np.array([f"{i}.jpg" for i in range(7)]),
        logits=np.full((7, 2), np.nan),
    )
    with pytest.raises(
        OptionError, match=r"for 7 images: 0.jpg, .*4.jpg, \.\.\."
    ):
        inputs.read_logits([str(tmp_path / "l.npz")], "validation_logits")
    path.write_text("a.jpg,3e38,-3e38\n")  # finite in float32
    assert inputs.read_logits([str(path)], "train_logits")[1].shape == (1, 2)


def test_an_image_with_two_rows_of_logits_names_both(tmp_path):
    """Before: "0.jpg has logits in both a.csv and a.csv" for a name twice
    in one file."""
    from assemble_tf.data.builder import inputs
    from official.utils.misc.validation import OptionError

    one, two = tmp_path / "a.csv", tmp_path / "b.csv"
    one.write_text("0.jpg,1,2\n1.jpg,0,1\n0.jpg,3,4\n")
    two.write_text("1.jpg,5,6\n")
    with pytest.raises(OptionError) as e:
        inputs.read_logits([str(one)], "train_logits")
    assert e.value.as_flag() == (
        f"--train_logits: 0.jpg has two rows of logits, in {one} (row 1 of "
        f"its values) and {one} (row 3 of its values); give each image one "
        "row."
    )
    one.write_text("0.jpg,1,2\n1.jpg,0,1\n")
    with pytest.raises(OptionError, match=f"in {one} \\(row 2 of its"):
        inputs.read_logits([str(one), str(two)], "train_logits")


def test_validation_labels_of_file_names_with_spaces(tmp_path):
    """Before: "line 1 has 3 fields" for a file name with a space."""
    from assemble_tf.data.builder import inputs
    from official.utils.misc.validation import OptionError

    names = ["a b.jpg", "c.jpg", "d, e.jpg"]
    path = tmp_path / "labels.txt"
    path.write_text("a b.jpg n01\nc n02\nd, e.jpg\tn03\n")
    assert inputs.read_validation_labels(str(path), names) == [
        "n01",
        "n02",
        "n03",
    ]
    path.write_text("a b.jpg, n01\nc.jpg,n02\nx y,n04\n")
    assert inputs.unused_validation_labels(str(path), names) == ["x y"]
    path.write_text("n01\nn02\nn03\n")  # one class per image, in order
    assert inputs.read_validation_labels(str(path), names) == [
        "n01",
        "n02",
        "n03",
    ]
    path.write_text("a.jpg,n01,extra\n")
    with pytest.raises(OptionError, match="line 1 has 3 fields; use one"):
        inputs.read_validation_labels(str(path), ["a.jpg"])
    # One- and two-field lines mixed (before: a StopIteration traceback),
    # and an empty class (before: "not class folders of ...: .").
    for text, message in (
        ("n01\nb.jpg n02\nn03\n", "line 2 has 2 fields among lines of"),
        ("a.jpg n01\nn02\nc.jpg n03\n", "line 2 has 1 field among lines of"),
        ("a.jpg,n01\nb.jpg,\n", "line 2 has an empty field: 'b.jpg,'"),
    ):
        path.write_text(text)
        with pytest.raises(OptionError) as error:
            inputs.read_validation_labels(str(path), ["a.jpg", "b.jpg"])
        assert error.value.as_flag().startswith(
            f"--validation_labels={path} {message}"
        ), error.value.as_flag()
    # A class name with spaces on a space-separated line: the words before
    # its last went into the file name (before: "has no line for 1 images"
    # alone).
    path.write_text("a.jpg tench\nb.jpg golden retriever\n")
    with pytest.raises(OptionError) as error:
        inputs.read_validation_labels(str(path), ["a.jpg", "b.jpg"])
    assert str(error.value).endswith(
        ": b.jpg. Line 2 was read as file 'b.jpg golden' and class "
        "'retriever': where a class name holds spaces, separate the file "
        "name from it by a tab or a comma."
    )
    path.write_text("a tench\nb great white shark\n")  # names sans .jpg
    with pytest.raises(OptionError, match="as file 'b great white' and"):
        inputs.read_validation_labels(str(path), ["a.jpg", "b.jpg"])
    path.write_text("a.jpg tench\n")  # no line at all: no hint
    with pytest.raises(OptionError) as error:
        inputs.read_validation_labels(str(path), ["a.jpg", "b.jpg"])
    assert str(error.value).endswith(": b.jpg.")


def test_boxes_and_logits_keyed_both_ways_are_refused():
    """Before: the base-name rows of a file that also had class/name rows
    were dropped without a word."""
    import types

    from assemble_tf.data.builder import inputs
    from official.utils.misc.validation import OptionError

    entries = [types.SimpleNamespace(relpath=p) for p in ("a/x.jpg", "b/y.jpg")]
    table = {"a/x.jpg": 1, "y.jpg": 2}
    assert inputs.match_names(entries, table, "boxes", "bbox_csv") == [1, 2]
    with pytest.raises(OptionError) as error:
        inputs.match_names(entries, {**table, "x.jpg": 3}, "boxes", "bbox_csv")
    assert error.value.as_flag() == (
        "--bbox_csv: boxes are keyed both by the path under the split "
        "folder and by the base name for a/x.jpg; key each file one way."
    )


def test_gif_bmp_tiff_and_webp_files_are_read(tmp_path):
    """Before: a real .gif or .bmp was "not an image file", though the
    same bytes named .jpg were read and re-encoded."""
    from PIL import Image

    train = tmp_path / "train"
    pixels = np.asarray(smooth_rgb(20, 30, 3))
    for i, ext in enumerate(("gif", "bmp", "tif", "webp", "jpe")):
        folder = train / ("cat" if i % 2 else "dog")
        folder.mkdir(parents=True, exist_ok=True)
        fmt = {"tif": "TIFF", "jpe": "JPEG"}.get(ext, ext.upper())
        Image.fromarray(pixels).save(folder / f"x.{ext}", format=fmt)
    out = tmp_path / "out"
    summary = builder.build(folder_config(train, out, train_shards=1))
    split = summary["splits"]["train"]
    assert (split["images"], split["skipped"]) == (5, 0)
    assert split.get("ignored_files", []) == []
    records = read_records(str(out), "train")
    assert sorted(f[schema.FILENAME][0] for _, f in records) == sorted(
        [b"x.bmp", b"x.gif", b"x.jpe", b"x.tif", b"x.webp"]
    )
    # --help names every extension read (before: "*.jpg|jpeg|png").
    from assemble_tf.data.builder.config import IMAGE_EXTENSIONS
    from flags import build_imagenet_tfrecords_flags

    help_text = next(
        row[3]
        for row in build_imagenet_tfrecords_flags.TABLE
        if row[1] == "layout"
    )
    assert [e for e in IMAGE_EXTENSIONS if f" {e}" not in help_text] == []


def test_changed_inputs_names_changed_new_and_removed_files(tmp_path):
    """What the refusal of a changed build names, from the earlier build's
    shard states; None for states without stamps (older builds)."""
    import types

    from assemble_tf.data.builder import output, shards
    from assemble_tf.data.builder.config import STATE_DIR, Entry

    root = tmp_path / "train"
    for name in ("a", "b", "c", "d"):
        write(str(root / "cat" / f"{name}.jpg"), b"x" * 10)
    entries = [Entry(f"cat/{n}.jpg", 0, "cat", "") for n in "abcd"]
    states = tmp_path / "out" / STATE_DIR
    states.mkdir(parents=True)
    stamps = [shards.input_stamp(str(root), e) for e in entries[:3]]
    stamps.append("cat/gone.jpg\t0\t5\t1")
    (states / "train-00000-of-00001.json").write_text(
        json.dumps({"inputs": stamps})
    )
    os.utime(root / "cat" / "b.jpg", ns=(1, 1))
    plan = types.SimpleNamespace(split="train", root=str(root), entries=entries)
    out = str(tmp_path / "out")
    assert output.changed_inputs(out, plan) == (
        "changed cat/b.jpg; new cat/d.jpg; removed cat/gone.jpg"
    )
    os.utime(root / "cat" / "a.jpg", ns=(1, 1))
    assert output.changed_inputs(out, plan, limit=1) == (
        "changed cat/a.jpg and 1 more; new cat/d.jpg; removed cat/gone.jpg"
    )
    (states / "train-00000-of-00001.json").write_text(json.dumps({}))
    assert output.changed_inputs(out, plan) is None


def test_a_class_folder_in_another_unicode_form_is_named_as_such(tmp_path):
    """Before: "The validation split has classes that are not class
    folders of --train_dir: café" beside a train folder café."""
    import unicodedata

    from official.utils.misc.validation import OptionError

    nfc, nfd = "caf\u00e9", unicodedata.normalize("NFD", "caf\u00e9")
    simple_folder(str(tmp_path / "train"), per_class=1, classes=(nfc, "tea"))
    simple_folder(str(tmp_path / "val"), per_class=1, classes=(nfd, "tea"))
    config = folder_config(
        tmp_path / "train",
        tmp_path / "out",
        train_shards=1,
        validation_dir=str(tmp_path / "val"),
        validation_shards=1,
    )
    with raises_as_flag(OptionError, match="Unicode") as error:
        builder.build(config)
    assert error.value.as_flag().endswith(
        "Some differ from one only in their Unicode normalization: "
        "'cafe\u0301' (cafe\\u0301) and 'caf\u00e9' (caf\\xe9); rename them "
        "alike."
    )


def test_a_splits_options_need_its_folder(tmp_path):
    """Before: --validation_shards=4 (or --train_shards) without the
    split's folder was taken and did nothing; logits were refused."""
    from official.utils.misc.validation import OptionError

    cases = (
        (
            {"validation_shards": 4},
            "--validation_shards needs --validation_dir.",
        ),
        ({"validation_logits": "v.csv"}, "--validation_logits needs --vali"),
    )
    for extra, message in cases:
        with pytest.raises(OptionError) as error:
            folder_config(tmp_path / "in", tmp_path / "out", **extra).validate()
        assert error.value.as_flag().startswith(message)
    config = builder.BuildConfig(
        output_dir=str(tmp_path / "out"),
        layout="folder",
        validation_dir=str(tmp_path / "in"),
        train_shards=8,
    )
    with pytest.raises(OptionError) as error:
        config.validate()
    assert error.value.as_flag() == "--train_shards needs --train_dir."

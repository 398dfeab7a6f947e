"""Tests of the `make_imagenet_c` binary (ImageNet-C regeneration)."""

import contextlib
import json
import os
import re
import shutil
import types

import numpy as np
import pytest
from PIL import Image

from assemble_tf.robustness import generate_c as mic
from official.utils.misc import jobs
from tests import testing_utils

REPO = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
FILES = {"n01440764": ("a.JPEG", "b.JPEG"), "n01443537": ("c.JPEG", "d.JPEG")}
CORRUPTIONS = ("gaussian_noise", "pixelate")
SEVERITIES = (1, 2)


@pytest.fixture(autouse=True)
def _clean_keras_state():
    """Overrides the conftest fixture: no Keras here (saves ~0.8 s/test)."""
    yield


def _jpegs():
    """{(wnid, name): JPEG bytes}, 40x48 images."""
    out = {}
    for i, (wnid, names) in enumerate(sorted(FILES.items())):
        for j, name in enumerate(names):
            image = testing_utils.smooth_image(40, 48, seed=10 * i + j)
            out[(wnid, name)] = testing_utils.jpeg_bytes(image)
    return out


@pytest.fixture
def jpeg_dir(tmp_path):
    root = tmp_path / "val"
    for (wnid, name), data in _jpegs().items():
        (root / wnid).mkdir(parents=True, exist_ok=True)
        (root / wnid / name).write_bytes(data)
    return str(root)


@contextlib.contextmanager
def raises_as_flag(kind, match):
    """`pytest.raises` matching the message the binary prints (an
    `OptionError`'s `as_flag()`: options written as --flags)."""
    with pytest.raises(kind) as info:
        yield info
    text = info.value.as_flag()
    assert re.search(match, text), text


def _options(output_dir, **kwargs):
    args = {
        "output_dir": str(output_dir),
        "resize": 36,
        "crop": 32,
        "corruptions": CORRUPTIONS,
        "severities": SEVERITIES,
        "seed": 0,
        "workers": 1,
    }
    args.update(kwargs)
    return mic.Options(**args)


def _tree(root):
    """{relative path: bytes} of every file under root."""
    files = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            files[os.path.relpath(path, root)] = open(path, "rb").read()
    return files


def _expected_images():
    return {
        os.path.join(c, str(s), wnid, name)
        for c in CORRUPTIONS
        for s in SEVERITIES
        for wnid, names in FILES.items()
        for name in names
    }


@pytest.mark.slow  # spawns worker processes
def test_tree_resume_and_worker_independence(jpeg_dir, tmp_path):
    out = tmp_path / "c"
    summary = mic.generate(_options(out, input_dir=jpeg_dir), progress=False)
    assert summary["images"] == 4 and summary["outputs_per_image"] == 4
    assert summary["written"] == 16 and summary["skipped_existing"] == 0
    assert summary["num_failures"] == 0 and summary["failures"] == []
    assert summary["options"]["resize"] == 36
    assert summary["options"]["jpeg_quality"] == 85
    tree = _tree(out)
    assert set(tree) == _expected_images() | {"options.json", "summary.json"}
    assert json.loads(tree["options.json"]) == {
        "format_version": 3,
        "job": "tools.make_imagenet_c",
        "resize": 36,
        "crop": 32,
        "crop_rounding": "floor",  # "auto" at a crop other than 224
        "seed": 0,
        "jpeg_quality": 85,
        # the imagecorruptions wheel's photos (make installs it)
        "frost": mic.frost_source(),
        # Noted, not compared: another input is warned about (and
        # warned about after a killed run too, which left no summary).
        "input": {"input_dir": str(jpeg_dir)},
    }
    assert mic.frost_source() in ("release photos", "synthetic textures")
    assert json.loads(tree["summary.json"]) == summary
    for rel in _expected_images():
        with Image.open(out / rel) as im:
            assert im.format == "JPEG" and im.size == (32, 32)
            assert im.mode == "RGB"
    # another input into the same folder: said (before: its images of the
    # same names were kept from the first input without a word)
    other = tmp_path / "other_input"
    shutil.copytree(jpeg_dir, other)

    def said(options):
        return [
            w.as_flag() for w in options.warnings() if "made from" in str(w)
        ]

    assert said(_options(out, input_dir=jpeg_dir)) == []
    assert said(_options(out, input_dir=str(other))) == [
        f"--output_dir={out} was made from {os.path.abspath(jpeg_dir)}; "
        f"this run reads {other}: outputs whose names are already there are "
        "kept from the earlier input, not made again. Use another "
        "--output_dir for another input."
    ]
    # resumable: everything is skipped
    again = mic.generate(_options(out, input_dir=jpeg_dir), progress=False)
    assert again["written"] == 0 and again["skipped_existing"] == 16

    # a run stopped between two files leaves no summary.json, so the set
    # reads as unfinished until a rerun ends (before: the earlier run's
    # summary stayed, and the set evaluated as whole)
    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    real = mic.jobs.run_tasks
    mic.jobs.run_tasks = stopped
    try:
        with pytest.raises(KeyboardInterrupt):
            mic.generate(_options(out, input_dir=jpeg_dir), progress=False)
    finally:
        mic.jobs.run_tasks = real
    assert not (out / "summary.json").exists()
    # a lost file is rewritten, identically, and the file a killed run was
    # writing is removed (before: kept for good)
    lost = os.path.join("pixelate", "2", "n01443537", "d.JPEG")
    os.remove(out / lost)
    stale = out / "pixelate" / "2" / "n01443537" / ".d.JPEG.tmp-999"
    stale.write_bytes(b"partial")
    again = mic.generate(_options(out, input_dir=jpeg_dir), progress=False)
    assert again["written"] == 1 and again["skipped_existing"] == 15
    assert (out / lost).read_bytes() == tree[lost]
    assert not stale.exists() and again["stale_temp_files_removed"] == 1
    assert "removed 1 unfinished temporary files" in mic.format_summary(again)
    # an empty output (a full disk, a cut copy) is written again, not
    # skipped as done
    (out / lost).write_bytes(b"")
    again = mic.generate(_options(out, input_dir=jpeg_dir), progress=False)
    assert again["written"] == 1 and (out / lost).read_bytes() == tree[lost]
    # 2 spawned workers write byte-identical files
    out2 = tmp_path / "c2"
    two = mic.generate(
        _options(out2, input_dir=jpeg_dir, workers=2), progress=False
    )
    assert two["written"] == 16
    tree2 = _tree(out2)
    for rel in _expected_images():
        assert tree2[rel] == tree[rel], rel
    # another seed gives other noise
    out3 = tmp_path / "c3"
    mic.generate(_options(out3, input_dir=jpeg_dir, seed=1), progress=False)
    rel = os.path.join("gaussian_noise", "1", "n01440764", "a.JPEG")
    assert (out3 / rel).read_bytes() != tree[rel]
    rel = os.path.join("pixelate", "1", "n01440764", "a.JPEG")
    assert (out3 / rel).read_bytes() == tree[rel]  # not random


def test_output_pixels_are_the_corruption_of_the_crop(jpeg_dir, tmp_path):
    from assemble_tf.robustness import corruptions

    out = tmp_path / "c"
    mic.generate(
        _options(out, input_dir=jpeg_dir, corruptions=("contrast",)),
        progress=False,
    )
    with Image.open(os.path.join(jpeg_dir, "n01440764", "b.JPEG")) as im:
        clean = corruptions.resize_center_crop(im, 36, 32)
    want = corruptions.corrupt(
        clean, "contrast", 2, seed=mic.image_seed(0, "b.JPEG")
    )
    got = np.asarray(Image.open(out / "contrast/2/n01440764/b.JPEG"))
    assert np.abs(got.astype(int) - want).mean() < 2  # JPEG q85 loss


def test_changed_options_are_refused(jpeg_dir, tmp_path):
    out = tmp_path / "c"
    mic.generate(
        _options(out, input_dir=jpeg_dir, severities=(1,)), progress=False
    )
    with raises_as_flag(ValueError, match=r"--seed: existing 0, now 1.*new"):
        mic.generate(_options(out, input_dir=jpeg_dir, seed=1))
    with raises_as_flag(ValueError, match=r"--resize: existing 36, now 40"):
        mic.generate(_options(out, input_dir=jpeg_dir, resize=40))
    with raises_as_flag(ValueError, match=r"--crop.*--seed|--seed.*--crop"):
        mic.generate(_options(out, input_dir=jpeg_dir, crop=33, seed=2))
    with raises_as_flag(
        ValueError, match=r"--crop_rounding: existing floor, now round"
    ):
        mic.generate(_options(out, input_dir=jpeg_dir, crop_rounding="round"))
    # more severities / corruptions only add files
    more = mic.generate(
        _options(out, input_dir=jpeg_dir, severities=(1, 2)), progress=False
    )
    assert more["written"] == 8 and more["skipped_existing"] == 8
    # The summary of a later run of one corruption lists the whole folder
    # (before: that corruption alone).
    last = mic.generate(
        _options(
            out, input_dir=jpeg_dir, corruptions="pixelate", severities=(3,)
        ),
        progress=False,
    )
    assert last["in_folder"] == {
        "gaussian_noise": [1, 2],
        "pixelate": [1, 2, 3],
    }
    assert (
        json.load(open(out / "summary.json"))["in_folder"] == last["in_folder"]
    )
    assert mic.format_summary(last).endswith(
        "in the folder, with earlier runs: 2 corruptions (gaussian_noise "
        "1,2, pixelate 1,2,3)"
    )


def test_tfrecord_input_matches_folder_input(jpeg_dir, tmp_path):
    import tensorflow as tf

    from assemble_tf.data import schema

    def example(wnid, name, data):
        feature = {
            schema.IMAGE: tf.train.Feature(
                bytes_list=tf.train.BytesList(value=[data])
            ),
            schema.SYNSET: tf.train.Feature(
                bytes_list=tf.train.BytesList(value=[wnid.encode()])
            ),
            schema.FILENAME: tf.train.Feature(
                bytes_list=tf.train.BytesList(value=[name.encode()])
            ),
        }
        return tf.train.Example(features=tf.train.Features(feature=feature))

    items = sorted(_jpegs().items())
    records = tmp_path / "records"
    records.mkdir()
    testing_utils.write_records(
        records / "validation-00000-of-00002",
        [example(w, n, d) for (w, n), d in items[:3]],
    )
    testing_utils.write_records(
        records / "validation-00001-of-00002",
        [example(w, n, d) for (w, n), d in items[3:]],
    )
    pattern = str(records / "validation-*")
    out_rec, out_dir = tmp_path / "rec", tmp_path / "dir"
    summary = mic.generate(
        _options(out_rec, tfrecord_pattern=pattern), progress=False
    )
    assert summary["images"] == 4 and summary["written"] == 16
    mic.generate(_options(out_dir, input_dir=jpeg_dir), progress=False)
    rec, folder = _tree(out_rec), _tree(out_dir)
    assert (
        set(rec)
        == set(folder)
        == (_expected_images() | {"options.json", "summary.json"})
    )
    for rel in _expected_images():
        assert rec[rel] == folder[rel], rel
    # --limit takes the first records
    limited = mic.generate(
        _options(tmp_path / "lim", tfrecord_pattern=pattern, limit=3),
        progress=False,
    )
    assert limited["images"] == 3 and limited["written"] == 12
    # a record repeating a wnid/file name is a failure, not an overwrite
    testing_utils.write_records(
        records / "validation-extra", [example(*items[0][0], items[1][1])]
    )
    dup = mic.generate(
        _options(tmp_path / "dup", tfrecord_pattern=pattern), progress=False
    )
    assert dup["images"] == 4 and dup["num_failures"] == 1
    assert dup["failures"] == [
        {"file": "n01440764/a.JPEG", "reason": "duplicate wnid/file name"}
    ]
    with pytest.raises(FileNotFoundError, match="matches no files"):
        mic.generate(
            _options(tmp_path / "x", tfrecord_pattern=str(records / "no-*"))
        )


def test_undecodable_inputs_are_reported(jpeg_dir, tmp_path):
    with open(os.path.join(jpeg_dir, "n01443537", "e.JPEG"), "wb") as f:
        f.write(b"not a jpeg")
    out = tmp_path / "c"
    summary = mic.generate(
        _options(out, input_dir=jpeg_dir, limit=0), progress=False
    )
    assert summary["images"] == 5 and summary["written"] == 16
    assert summary["num_failures"] == 1
    failure = summary["failures"][0]
    assert failure["file"] == "n01443537/e.JPEG"
    assert failure["reason"].startswith("cannot decode")
    assert (
        mic.generate(
            _options(tmp_path / "l", input_dir=jpeg_dir, limit=2),
            progress=False,
        )["images"]
        == 2
    )
    # Every input failing: an error after the summary (it exited 0 with
    # nothing written).
    bad = tmp_path / "bad" / "n01443537"
    bad.mkdir(parents=True)
    (bad / "x.JPEG").write_bytes(b"not a jpeg")
    with pytest.raises(
        jobs.NothingWrittenError,
        match=r"all 1 inputs failed \(first: n01443537/x.JPEG: cannot decode",
    ):
        mic.generate(
            _options(tmp_path / "none", input_dir=str(tmp_path / "bad")),
            progress=False,
        )
    assert (tmp_path / "none" / "summary.json").is_file()


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_an_image_over_pillows_pixel_limit_is_a_listed_failure(
    jpeg_dir, tmp_path, monkeypatch
):
    """Pillow refuses to decode more than twice `Image.MAX_IMAGE_PIXELS`
    (a decompression bomb) with an error that is no OSError: the run
    stopped with a traceback, and every rerun again. It is a failure in
    summary.json, as the builder and make_imagenet_p skip it."""
    big = Image.new("L", (60, 50))  # 3,000 pixels
    big.save(os.path.join(jpeg_dir, "n01443537", "big.png"))
    # Over 2 x 1,400 pixels is an error: 60x50, not the 40x48 JPEGs.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_400)
    summary = mic.generate(_options(tmp_path / "c", input_dir=jpeg_dir))
    assert summary["images"] == 5 and summary["written"] == 16
    (failure,) = summary["failures"]
    assert failure["file"] == "n01443537/big.png"
    assert failure["reason"].startswith("too large: Image size (3000 pixels)")


def test_input_errors(tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "ILSVRC2012_val_00000001.JPEG").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"1 images at the top level"):
        mic.list_input_dir(str(flat))
    with pytest.raises(FileNotFoundError, match="not a folder"):
        mic.list_input_dir(str(tmp_path / "missing"))
    # Before: a.jpg and a.png were both "a.JPEG"; the second was counted
    # as "skipped (already there)" and never corrupted.
    both = tmp_path / "both" / "n01440764"
    both.mkdir(parents=True)
    (both / "a.jpg").write_bytes(b"x")
    (both / "a.png").write_bytes(b"x")
    with pytest.raises(ValueError) as error:
        mic.list_input_dir(str(tmp_path / "both"))
    assert str(error.value) == (
        "n01440764/a.jpg and n01440764/a.png would both be written to "
        "<corruption>/<severity>/n01440764/a.JPEG; rename or remove one of "
        "them."
    )


def _flags(**kwargs):
    values = {
        "input_dir": "/in",
        "tfrecord_pattern": None,
        "output_dir": "/out",
        "resize": 256,
        "crop": 224,
        "crop_rounding": "auto",
        "corruptions": "",
        "severities": "1,2,3,4,5",
        "seed": 0,
        "workers": 1,
        "limit": 0,
    }
    values.update(kwargs)
    return types.SimpleNamespace(**values)


def test_options_from_flags():
    from assemble_tf.robustness import corruptions

    options = mic.options_from_values(_flags())
    assert options.corruptions == corruptions.CORRUPTIONS
    assert options.severities == (1, 2, 3, 4, 5)
    options = mic.options_from_values(
        _flags(corruptions="snow, fog", severities="5,1")
    )
    assert options.corruptions == ("snow", "fog")
    assert options.severities == (5, 1)
    cases = [
        ({"tfrecord_pattern": "/r/*"}, "exactly one"),
        ({"input_dir": None}, "exactly one"),
        ({"resize": 200}, r"--resize=200 must be >= --crop=224"),
        ({"severities": "0,3"}, r"--severities=0,3"),
        ({"severities": "1,x"}, r"--severities=1,x"),
        ({"severities": "2,2"}, "twice"),
        # A value left out (before: read as 1,2).
        (
            {"severities": "1,,2"},
            r"comma-separated integers.*--severities=1,,2",
        ),
        ({"severities": "1,2,"}, r"--severities=1,2,$"),
        ({"corruptions": "snow,hail"}, r"'hail'.*gaussian_noise"),
        ({"crop_rounding": "up"}, r"--crop_rounding='up'"),
    ]
    for kwargs, match in cases:
        with raises_as_flag(ValueError, match=match):
            mic.options_from_values(_flags(**kwargs))


def test_seed_and_names():
    assert mic.image_seed(0, "a.JPEG") == mic.image_seed(0, "a.JPEG")
    assert mic.image_seed(0, "a.JPEG") != mic.image_seed(1, "a.JPEG")
    assert mic.image_seed(0, "a.JPEG") != mic.image_seed(0, "b.JPEG")
    assert 0 <= mic.image_seed(7, "x") < 2**63
    assert mic.output_name("ILSVRC2012_val_00000001.JPEG") == (
        "ILSVRC2012_val_00000001.JPEG"
    )
    assert mic.output_name("dir/photo.jpg") == "photo.JPEG"
    assert mic.output_name("scan.png") == "scan.JPEG"


@pytest.mark.slow
def test_cli_runs_and_refuses_mixed_options(jpeg_dir, tmp_path):
    out = str(tmp_path / "cli")
    base = [
        "tools.make_imagenet_c",
        f"--input_dir={jpeg_dir}",
        f"--output_dir={out}",
        "--resize=36",
        "--crop=32",
        "--corruptions=fog",
        "--severities=3",
        "--limit=1",
        "--noprogress",
    ]
    run = testing_utils.run_binary(*base)
    assert run.returncode == 0, run.stderr
    assert "written: 1" in run.stdout
    assert os.path.exists(os.path.join(out, "fog", "3", "n01440764", "a.JPEG"))
    run = testing_utils.run_binary(*base, "--seed=5")
    assert run.returncode == 2
    assert "ERROR: --output_dir=" in run.stderr and "--seed" in run.stderr


def test_a_crop_other_than_224_or_256_warns(jpeg_dir, tmp_path):
    """Issue 24 item 12. Before: --crop=32 ran silently, though the
    corruption constants are pixels of a 224 crop. 256 (292 -> 256, the
    constants unchanged) is the Assemble models' own set: no warning."""
    for crop in (224, 256):
        assert mic.Options("/o", input_dir="/i", crop=crop).warnings() == ()
    run = testing_utils.run_main(
        "tools.make_imagenet_c",
        f"--input_dir={jpeg_dir}",
        f"--output_dir={tmp_path / 'c'}",
        "--resize=36",
        "--crop=32",
        "--corruptions=fog",
        "--severities=3",
        "--limit=1",
        "--noprogress",
    )
    assert run.returncode == 0, run.stderr
    warnings = [
        line for line in run.stderr.splitlines() if line.startswith("WARN")
    ]
    assert warnings == [
        "WARNING: --crop=32: the ImageNet-C corruption parameters are in "
        "pixels of a 224 crop (the benchmark's size; 256 is the Assemble "
        "models' set); at 32 px they change the images more or less than "
        "the benchmark does, so the results are not comparable with "
        "published figures."
    ]
    assert "written: 1" in run.stdout
    # The command tools.eval_robustness gives for missing corruptions
    # carries the set's options: the generator takes it for this folder
    # (before: a bare --corruptions=..., refused for other options), its
    # severities and its last run's image limit (before: the others were
    # made from all images, and the mCE mixed image sets).
    from assemble_tf.robustness import evaluation

    command = evaluation.regenerate_command(
        str(tmp_path / "c"),
        "tools.make_imagenet_c",
        "corruptions",
        ["fog"],
        severities=(3,),
    )
    # Its input too, from the last run's summary.json (before: a
    # placeholder, though the set recorded it).
    assert command == (
        f"python -m tools.make_imagenet_c --input_dir={jpeg_dir} "
        f"--output_dir={tmp_path / 'c'} --resize=36 --crop=32 "
        "--crop_rounding=floor --seed=0 --corruptions=fog --severities=3 "
        "--limit=1"
    )
    again = testing_utils.run_main(*command.split()[2:], "--noprogress")
    assert again.returncode == 0, again.stderr
    assert "written: 0" in again.stdout
    assert os.listdir(tmp_path / "c").count(".lock") == 0  # released
    # Another run writing the folder (its lock, a live process's): refused,
    # naming it (before: both wrote, and the second's summary.json said
    # complete a severity the first was still writing).
    import socket

    holder = f"{os.getppid()}@{socket.gethostname()}"
    (tmp_path / "c" / ".lock").write_text(f"{holder} tools.make_imagenet_p")
    again = testing_utils.run_main(*command.split()[2:], "--noprogress")
    assert testing_utils.error_line(again) == (
        f"ERROR: --output_dir={tmp_path / 'c'} is being written by another "
        f"tools.make_imagenet_p (process {holder}): wait for it to end, "
        "or pick another --output_dir. If that process is gone, delete "
        f"{tmp_path / 'c' / '.lock'}."
    )
    # A file where the folder goes: one line (before: a traceback).
    again = testing_utils.run_main(
        *command.split()[2:],
        f"--output_dir={tmp_path / 'c' / 'summary.json' / 'x'}",
    )
    assert testing_utils.error_line(again) == (
        f"ERROR: --output_dir={tmp_path / 'c' / 'summary.json' / 'x'} cannot "
        f"be created: {tmp_path / 'c' / 'summary.json'} is a file, not a "
        "folder."
    )


def test_a_cut_or_corrupt_shard_is_named(tmp_path):
    """Before: a DataLossError traceback (a cut-off shard) or a bare
    'utf-8' codec error (a record that is not an Example), naming no
    file. Both generators read records through `read_records`."""
    import tensorflow as tf

    from assemble_tf.data import schema
    from assemble_tf.robustness import inputs

    jpeg = testing_utils.jpeg_bytes(testing_utils.smooth_image(8, 8))
    good = [
        schema.make_example(
            jpeg, 1, 8, 8, filename=f"{i}.JPEG"
        ).SerializeToString()
        for i in range(3)
    ]
    keys = (schema.FILENAME,)
    cut = tmp_path / "cut"
    with tf.io.TFRecordWriter(str(cut)) as writer:
        for record in good:
            writer.write(record)
    data = cut.read_bytes()
    cut.write_bytes(data[: len(data) - 10])
    with pytest.raises(ValueError) as error:
        list(inputs.read_records([str(cut)], keys))
    assert str(error.value) == (
        f"{cut} is cut off or corrupt (after 2 readable records). Rebuild "
        "it with `python -m tools.build_imagenet_tfrecords`, or leave it "
        "out of the input."
    )
    garbage = tmp_path / "garbage"
    with tf.io.TFRecordWriter(str(garbage)) as writer:
        writer.write(good[0])
        writer.write(b"\xff\xfe not a proto \x00" * 10)
    with pytest.raises(ValueError, match="holds a record that is not a tf"):
        list(inputs.read_records([str(garbage)], keys))


def test_an_output_folder_inside_the_input_is_refused(tmp_path):
    """Before: the generators wrote into the validation folder, whose next
    listing took the outputs for inputs. Both generators share the check."""
    from assemble_tf.robustness import generate_p
    from official.utils.misc.validation import OptionError

    val = tmp_path / "val"
    (val / "n01440764").mkdir(parents=True)
    for out in (val, val / "c", tmp_path / "link"):
        if out.name == "link":
            out.symlink_to(val, target_is_directory=True)
        for options in (
            _options(out, input_dir=str(val)),
            generate_p.Options(output_dir=str(out), input_dir=str(val)),
        ):
            with pytest.raises(OptionError) as e:
                options.validate()
            assert e.value.as_flag() == (
                f"--output_dir={out} is inside --input_dir={val}: its "
                "outputs would land among the images read; choose a folder "
                "outside it."
            )
    _options(tmp_path / "valc", input_dir=str(val)).validate()  # a sibling


def test_files_the_folder_input_leaves_out_are_named(tmp_path):
    """make_imagenet_c / _p read .jpeg/.jpg/.png in <wnid>/ folders; the
    rest (GIF, BMP, TIFF, WebP, which the TFRecord builder converts;
    subfolders; broken links) was left out without a word, and a class of
    GIFs disappeared from the set."""
    from assemble_tf.robustness import generate_c, generate_p, inputs

    (tmp_path / "n01").mkdir()
    (tmp_path / "n01" / "a.JPEG").write_bytes(b"x")
    (tmp_path / "n01" / "b.gif").write_bytes(b"x")
    (tmp_path / "n01" / "deeper").mkdir()
    (tmp_path / "n01" / "gone.jpg").symlink_to(tmp_path / "missing")
    (tmp_path / "n02").mkdir()
    (tmp_path / "n02" / "c.webp").write_bytes(b"x")
    (tmp_path / "loose.png").write_bytes(b"x")
    warning = inputs.left_out_warning(str(tmp_path))
    assert warning.as_flag() == (
        f"--input_dir={tmp_path}: left out 5 files that are not .jpeg/.jpg/"
        ".png images in a <wnid>/ folder (loose.png (outside a class "
        "folder), n01/b.gif, n01/deeper/ (a subfolder), n01/gone.jpg (a "
        "broken link, or not a file), n02/c.webp); convert them (e.g. build "
        "TFRecords with tools.build_imagenet_tfrecords and use "
        "--tfrecord_pattern) or move them to use them."
    )
    assert [t[1] for t in inputs.list_image_folder(str(tmp_path))] == ["a.JPEG"]
    for options in (
        generate_c.Options(input_dir=str(tmp_path), output_dir="o"),
        generate_p.Options(input_dir=str(tmp_path), output_dir="o"),
    ):
        assert warning.as_flag() in [w.as_flag() for w in options.warnings()]
    (tmp_path / "n01" / "b.gif").unlink()
    (tmp_path / "n01" / "deeper").rmdir()
    (tmp_path / "n01" / "gone.jpg").unlink()
    (tmp_path / "n02" / "c.webp").unlink()
    (tmp_path / "loose.png").unlink()
    assert inputs.left_out_warning(str(tmp_path)) is None
    # Names that are not UTF-8 are left out and named (before: the job
    # stopped on the first, "'utf-8' codec can't encode characters",
    # after writing its options).
    os.mkdir(os.path.join(os.fsencode(tmp_path), b"n\xff"))
    with open(os.path.join(os.fsencode(tmp_path), b"n01/\xfe.jpg"), "wb"):
        pass
    assert [t[1] for t in inputs.list_image_folder(str(tmp_path))] == ["a.JPEG"]
    assert "(n01/\ufffd.jpg (name not UTF-8), n\ufffd/ (name not UTF-8: " in (
        inputs.left_out_warning(str(tmp_path)).as_flag()
    )


def test_record_names_that_are_no_folder_and_file_name_are_failures(tmp_path):
    """Before: a synset "../evil" wrote outside the severity folder, "." into
    it, and ".hidden.JPEG" a file tools.eval_robustness skips, all counted
    as written; a synset that is not UTF-8 stopped ImageNet-P naming
    nothing."""
    from assemble_tf.data import schema
    from assemble_tf.robustness import generate_p, inputs

    assert inputs.record_names(b"n01", b"sub/a.JPEG") == ("n01", "a.JPEG", None)
    for synset, filename, problem in (
        (b"../evil", b"a.JPEG", "synset '../evil' is not a folder name"),
        (b".", b"a.JPEG", "synset '.' is not a folder name"),
        (b"n01", b".hidden.JPEG", "file name '.hidden.JPEG' is hidden"),
        (b"\xff", b"a.JPEG", "its synset or file name is not UTF-8"),
        (b"", b"a.JPEG", "no synset or no file name"),
    ):
        assert inputs.record_names(synset, filename)[2] == problem
    jpeg = testing_utils.jpeg_bytes(testing_utils.smooth_image(40, 48))
    testing_utils.write_records(
        tmp_path / "validation-00000-of-00001",
        [
            schema.make_example(data, 1, 40, 48, filename=f, synset=s)
            for s, f, data in (
                ("n01", "good.JPEG", jpeg),
                ("../evil", "a.JPEG", jpeg),
                ("n01", ".hidden.JPEG", jpeg),
                ("n02", "junk.JPEG", b"not an image"),
            )
        ],
    )
    pattern = str(tmp_path / "validation-*")
    summary = mic.generate(
        _options(
            tmp_path / "c",
            input_dir=None,
            tfrecord_pattern=pattern,
            corruptions=("fog",),
            severities=(1,),
        ),
        progress=False,
    )
    assert _tree(tmp_path / "c").keys() == {
        "options.json",
        "summary.json",
        "fog/1/n01/good.JPEG",
    }
    assert [f["reason"] for f in summary["failures"]] == [
        "record 1: synset '../evil' is not a folder name",
        "record 2: file name '.hidden.JPEG' is hidden",
        # (before: "... image file <_io.BytesIO object at 0x7f...>")
        "cannot decode: cannot identify image file the record's bytes",
    ]
    with raises_as_flag(
        ValueError,
        "^--tfrecord_pattern=.*: record 1: synset '../evil' is not a "
        "folder name; the output layout",
    ):
        generate_p.list_tfrecords(pattern)


def test_another_input_after_a_killed_run_is_said(jpeg_dir, tmp_path):
    """The input is kept in options.json (not compared: another one is
    warned about); before, only in summary.json, which a run removes as it
    starts, so the rerun of a killed run from another input said nothing
    and mixed the two sets. A relative pattern is recorded absolute."""
    out = tmp_path / "c"
    mic.generate(
        _options(out, input_dir=jpeg_dir, corruptions=("fog",), limit=1),
        progress=False,
    )
    os.remove(out / "summary.json")  # as a kill leaves it
    other = _options(out, input_dir=str(tmp_path / "x"))
    assert [w.as_flag() for w in other.warnings() if "made from" in str(w)] == [
        f"--output_dir={out} was made from {jpeg_dir}; this run reads "
        f"{tmp_path / 'x'}: outputs whose names are already there are kept "
        "from the earlier input, not made again. Use another --output_dir "
        "for another input."
    ]
    mic.prepare_output(other)  # taken, as warned
    # A folder from before (no input in options.json): its summary says.
    old = tmp_path / "old"
    old.mkdir()
    (old / "options.json").write_text(json.dumps({"seed": 0}))
    summary = {"options": {"input_dir": jpeg_dir, "tfrecord_pattern": None}}
    (old / "summary.json").write_text(json.dumps(summary))
    (warning,) = _options(old, input_dir=str(tmp_path / "x")).warnings()[1:]
    assert f"was made from {jpeg_dir}; this run reads" in warning.as_flag()
    with contextlib.chdir(tmp_path):
        relative = _options(out, input_dir=None, tfrecord_pattern="val-*")
        from assemble_tf.robustness import inputs

        assert inputs.input_record(relative) == {
            "tfrecord_pattern": str(tmp_path / "val-*")
        }

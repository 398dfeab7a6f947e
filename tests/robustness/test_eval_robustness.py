"""eval_robustness end to end on a tiny corrupted set and a tiny model."""

import dataclasses
import json
import os
import re
import shutil
import types

import numpy as np
import pytest

from assemble_tf.robustness import evaluation, metrics
from official.utils.misc.validation import OptionError
from tests import testing_utils
from tests.testing_utils import jpeg_bytes, smooth_image

WNIDS = ("n00000001", "n00000002", "n00000003")
TINY = {"base_width": 8, "block_sizes": "1,1,1,1"}


def write_set(root, corruptions, severities=range(1, 6), per_class=2):
    for c_index, c in enumerate(corruptions):
        for s in severities:
            for w_index, wnid in enumerate(WNIDS):
                folder = os.path.join(root, c, str(s), wnid)
                os.makedirs(folder, exist_ok=True)
                for k in range(per_class):
                    seed = 1000 * c_index + 100 * s + 10 * w_index + k
                    path = os.path.join(folder, f"img_{w_index}{k}.JPEG")
                    with open(path, "wb") as f:
                        f.write(jpeg_bytes(smooth_image(32, 32, seed)))


def test_find_imagenet_c_layout_and_errors(tmp_path):
    write_set(str(tmp_path), ("fog", "snow"), severities=(1, 2))
    found = evaluation.find_imagenet_c(str(tmp_path))
    assert list(found) == ["snow", "fog"]  # standard order
    assert sorted(found["fog"]) == [1, 2]
    assert len(found["fog"][1]) == 6
    assert found["fog"][1][0][1] == "n00000001"
    with pytest.raises(ValueError, match="unknown corruptions") as e:
        evaluation.find_imagenet_c(str(tmp_path), ["fogg"])
    assert e.value.as_flag().startswith(
        "--names: unknown corruptions ['fogg']; known: gaussian_noise, "
    )
    with pytest.raises(ValueError) as e:
        evaluation.find_imagenet_p(str(tmp_path), ["tilt", "wobble"])
    assert e.value.as_flag().startswith(
        "--names: unknown perturbations ['wobble']; known: gaussian_noise, "
    )
    with pytest.raises(ValueError, match="no folder for"):
        evaluation.find_imagenet_c(str(tmp_path), ["frost"])
    with pytest.raises(FileNotFoundError, match="none of the ImageNet-C"):
        evaluation.find_imagenet_c(str(tmp_path / "fog"))


@pytest.mark.parametrize(
    "kind, name, tool",
    [
        ("c", ".img_00.JPEG.tmp-4242", "make_imagenet_c"),
        ("p", ".clip.mp4.4242.tmp.mp4", "make_imagenet_p"),
    ],
)
def test_a_set_a_generator_was_still_writing_is_named_unfinished(
    tmp_path, kind, name, tool
):
    """A file a killed (or running) generator was writing under its hidden
    temporary name: the set is unfinished, and the rerun that finishes it
    is named (before: make_imagenet_p's partial video was read as a video
    and failed as a damaged file)."""
    if kind == "c":
        write_set(str(tmp_path), ("fog",), severities=(1,), per_class=1)
        folder = tmp_path / "fog" / "1" / WNIDS[0]
        find = evaluation.find_imagenet_c
    else:
        folder = tmp_path / "tilt" / WNIDS[0]
        folder.mkdir(parents=True)
        (folder / "clip.mp4").write_bytes(b"video")
        find = evaluation.find_imagenet_p
    (folder / ".DS_Store").write_bytes(b"x")  # other hidden files: fine
    assert len(next(iter(find(str(tmp_path)).values()))) == 1
    (folder / name).write_bytes(b"partial")
    with pytest.raises(ValueError) as error:
        find(str(tmp_path))
    assert error.value.as_flag() == (
        f"--data_dir is an unfinished set: {folder / name} is a file "
        f"tools.{tool} was writing when it stopped. Rerun tools.{tool} with "
        "the same flags to finish the set (it takes up where it stopped), "
        "then evaluate."
    )
    # Killed between two files: the generator's options.json without its
    # summary.json (before: evaluated as a whole set, an mCE of 0.00).
    (folder / name).unlink()
    (tmp_path / "options.json").write_text("{}")
    with pytest.raises(ValueError) as error:
        find(str(tmp_path))
    assert error.value.as_flag() == (
        f"--data_dir={tmp_path} is an unfinished set: tools.{tool} wrote "
        "its options.json but no summary.json (stopped before it ended, or "
        f"still running). Rerun tools.{tool} with the same flags to finish "
        "the set (it takes up where it stopped), then evaluate."
    )
    (tmp_path / "summary.json").write_text("{}")
    assert len(next(iter(find(str(tmp_path)).values()))) == 1


def test_entries_outside_the_layout_are_named_not_skipped_silently(tmp_path):
    """Before: a sub-folder in a class folder, a .webp image, an image
    beside the class folders or a severity folder "6" were left out
    without a word."""
    from assemble_tf.robustness import run

    root = tmp_path / "c"
    write_set(str(root), ("fog",), severities=(1, 2), per_class=1)
    fog1 = root / "fog" / "1"
    (fog1 / WNIDS[0] / "nested").mkdir()
    (fog1 / WNIDS[0] / "nested" / "a.JPEG").write_bytes(b"x")
    (fog1 / WNIDS[1] / "b.webp").write_bytes(b"x")
    (fog1 / WNIDS[1] / ".DS_Store").write_bytes(b"x")  # hidden: fine
    (fog1 / "flat.JPEG").write_bytes(b"x")
    (root / "fog" / "6").mkdir()
    options = run.RobustnessOptions(kind="c", data_dir=str(root))
    logged = []
    found = run.find_set(options, logged.append)
    assert [len(found["fog"][s]) for s in (1, 2)] == [3, 3]
    assert logged == [
        f"WARNING: 4 entries of {root} are not evaluated (fog/6, "
        f"fog/1/flat.JPEG, fog/1/{WNIDS[0]}/nested, ...): the set is read as "
        "<corruption>/<severity>/<wnid>/<image>, .jpeg, .jpg, .png images "
        "only."
    ]
    # A complete set: nothing to say.
    shutil.rmtree(root / "fog" / "1")
    shutil.rmtree(root / "fog" / "6")
    logged.clear()
    assert list(run.find_set(options, logged.append)["fog"]) == [2]
    assert logged == []
    # ImageNet-P: videos only.
    video = root / "p" / "tilt" / WNIDS[0]
    video.mkdir(parents=True)
    (video / "v.mp4").write_bytes(b"x")
    (video / "v.avi").write_bytes(b"x")
    options = run.RobustnessOptions(kind="p", data_dir=str(root / "p"))
    assert list(run.find_set(options, logged.append)) == ["tilt"]
    assert logged == [
        f"WARNING: 1 entry of {root / 'p'} is not evaluated "
        f"(tilt/{WNIDS[0]}/v.avi): the set is read as "
        "<perturbation>/<wnid>/<video>, .mp4 videos only."
    ]


def test_two_weights_files_in_one_folder_keep_their_reports_apart(tmp_path):
    """Before: both reports went to the weights' folder itself, the second
    replacing the first's robustness_c.json."""
    from assemble_tf.robustness import run

    config = None  # read for a run's folder only
    outs = {
        name: run.output_dir(
            run.RobustnessOptions(kind="c", data_dir="/x", weights=name),
            config,
            os.path.abspath(str(tmp_path / name)),
        )
        for name in ("a.weights.h5", "b.weights.h5", "ckpt-3", "m.keras")
    }
    assert outs == {
        "a.weights.h5": str(tmp_path / "robustness" / "a"),
        "b.weights.h5": str(tmp_path / "robustness" / "b"),
        "ckpt-3": str(tmp_path / "robustness" / "ckpt-3"),
        "m.keras": str(tmp_path / "robustness" / "m"),
    }
    given = run.RobustnessOptions(kind="c", data_dir="/x", output_dir="/o")
    assert run.output_dir(given, config, "/w/a.weights.h5") == "/o"
    # Weights that replace a run's checkpoint (before: <model_dir>/
    # robustness, where their report replaced the checkpoint's).
    run_config = types.SimpleNamespace(model_dir="/runs/r")
    replaced = run.RobustnessOptions(
        kind="c", data_dir="/x", model_dir="/runs/r", weights="/w/a.h5"
    )
    assert run.output_dir(replaced, run_config, "/w/a.h5") == (
        "/w/robustness/a"
    )
    checkpoint = run.RobustnessOptions(kind="c", data_dir="/x", model_dir="/r")
    assert run.output_dir(checkpoint, run_config, "/r/ckpt-3") == (
        "/runs/r/robustness"
    )


def test_label_map(tmp_path):
    # 1001-way head (label_offset 0): stored labels = sorted index + 1.
    assert evaluation.label_map(WNIDS, 4, 0) == {
        "n00000001": 1,
        "n00000002": 2,
        "n00000003": 3,
    }
    # 1000-way head (label_offset 1): 0-based.
    assert evaluation.label_map(WNIDS, 3, 1) == {
        "n00000001": 0,
        "n00000002": 1,
        "n00000003": 2,
    }
    # As many classes as outputs: a 0-based set (a demo set made from
    # tools.make_demo_dataset's records; before: "3 classes but the model
    # expects 2"), with no background for ImageNet-P's ranking.
    zero_based = evaluation.label_map(WNIDS, 3, 0)
    assert zero_based == {"n00000001": 0, "n00000002": 1, "n00000003": 2}
    from assemble_tf import config as config_lib

    data = config_lib.DataConfig(num_classes=3)
    assert evaluation.background_class(data, None, zero_based) is None
    one_based = evaluation.label_map(WNIDS, 4, 0)
    assert evaluation.background_class(data, None, one_based) == 0
    with pytest.raises(ValueError, match="labels_file"):
        evaluation.label_map(WNIDS[:2], 4, 0)
    labels = tmp_path / "labels.txt"
    labels.write_text("1\tn00000009\tx\n2\tn00000002\ty\n3\tn00000001\tz\n")
    assert evaluation.label_map(WNIDS[:2], 1001, 0, str(labels)) == {
        "n00000001": 3,
        "n00000002": 2,
    }
    assert evaluation.label_map(WNIDS[:2], 1000, 1, str(labels)) == {
        "n00000001": 2,
        "n00000002": 1,
    }
    synsets = tmp_path / "synsets.txt"
    synsets.write_text("n00000002 two\nn00000001 one\n")
    assert evaluation.label_map(WNIDS[:2], 2, 1, str(synsets)) == {
        "n00000001": 1,
        "n00000002": 0,
    }
    with pytest.raises(ValueError, match="outside the model's 2 classes"):
        evaluation.label_map(WNIDS[:2], 2, 0, str(synsets))
    # Saved by a Windows editor (byte-order mark, CRLF), either kind of
    # file: the mark is not part of the first class (before: the first
    # class was missing, or the file was not labels.txt).
    synsets.write_bytes(b"\xef\xbb\xbfn00000002 two\r\nn00000001 one\r\n")
    assert evaluation.label_map(WNIDS[:2], 2, 1, str(synsets)) == {
        "n00000001": 1,
        "n00000002": 0,
    }
    labels.write_bytes(b"\xef\xbb\xbf1\tn00000001\tx\r\n2\tn00000002\ty\r\n")
    assert evaluation.label_map(WNIDS[:2], 1001, 0, str(labels)) == {
        "n00000001": 1,
        "n00000002": 2,
    }
    # Classes it lacks are named, with how the file was read: a file not
    # in labels.txt's columns is a synsets list, whose class is each line's
    # first word (before: class names with spaces were just "not in" it).
    with pytest.raises(ValueError) as error:
        evaluation.label_map(["n01 cat"], 2, 1, str(labels))
    assert error.value.as_flag() == (
        f"1 classes of the set are not in --labels_file={labels}, e.g. "
        "['n01 cat']: pass the labels.txt of the model's training set, or "
        "remove those class folders from the set."
    )
    synsets.write_text("n01 cat\nn02\n")
    with pytest.raises(ValueError) as error:
        evaluation.label_map(["n01 cat"], 2, 1, str(synsets))
    assert error.value.as_flag() == (
        f"1 classes of the set are not in --labels_file={synsets}, e.g. "
        "['n01 cat']: pass the labels.txt of the model's training set, or "
        "remove those class folders from the set. It was read as a synsets "
        "list (each line's class is its first word); for class names with "
        "spaces, write it as our labels.txt: label<TAB>class<TAB>text per "
        "line."
    )


def test_videos_of_another_frame_count_are_named():
    """Before: "brightness: videos have different frame counts [3, 31,
    41]; regenerate the set", naming no video."""
    lengths = {f"p/brightness/n0/{i}.mp4": 31 for i in range(5)}
    evaluation._check_frame_counts("brightness", lengths)  # all alike
    lengths["p/brightness/n0/3.mp4"] = 41
    lengths["p/brightness/n0/1.mp4"] = 3
    with pytest.raises(ValueError) as error:
        evaluation._check_frame_counts("brightness", lengths)
    assert str(error.value) == (
        "brightness: 2 of its 5 videos have another frame count than the "
        "others' 31: p/brightness/n0/1.mp4 (3), p/brightness/n0/3.mp4 (41). "
        "Delete them and rerun the tools.make_imagenet_p command that made "
        "the set: it makes the missing videos again."
    )


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    import keras

    from assemble_tf.models import build_model

    keras.utils.set_random_seed(3)
    model = build_model(
        "resnet50", num_classes=4, base_width=8, block_sizes=(1, 1, 1, 1)
    )
    path = str(tmp_path_factory.mktemp("w") / "tiny.weights.h5")
    model.save_weights(path)
    return model, path


def expected_errors(model, found, labels):
    import tensorflow as tf

    predict = evaluation.make_predict_fn(model)
    errors = {}
    for c, sev in found.items():
        errors[c] = []
        for s in range(1, 6):
            items = sev[s]
            images = np.stack(
                [
                    tf.io.decode_jpeg(
                        tf.io.read_file(p), dct_method="INTEGER_ACCURATE"
                    ).numpy()
                    for p, _ in items
                ]
            )
            top1 = predict(images).numpy()[:, 0]
            truth = np.array([labels[w] for _, w in items])
            errors[c].append(float(np.mean(top1 != truth)))
    return errors


@pytest.mark.slow
def test_eval_robustness_c_end_to_end_and_resume(tmp_path, tiny_weights):
    model, weights = tiny_weights
    data = str(tmp_path / "c")
    write_set(data, metrics.ALL_CORRUPTIONS, per_class=1)
    out = str(tmp_path / "out")
    args = [
        "--kind=c",
        f"--data_dir={data}",
        "--preset=resnet50",
        f"--weights={weights}",
        "--num_classes=4",
        "--label_offset=0",
        f"--model_overrides={json.dumps(TINY)}",
        "--clean_error=0.5",
        "--batch_size=7",
        f"--output_dir={out}",
    ]
    proc = testing_utils.run_main("tools.eval_robustness", *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = json.loads(proc.stdout.strip().splitlines()[-1])
    report = json.load(open(line["json"]))
    found = evaluation.find_imagenet_c(data)
    labels = evaluation.label_map(WNIDS, 4, 0)
    want = expected_errors(model, found, labels)
    for c in metrics.ALL_CORRUPTIONS:
        assert report["results"][c]["top1_error"] == pytest.approx(want[c])
        assert report["results"][c]["count"] == [3] * 5
    assert line["mce"] == pytest.approx(metrics.mce(want))
    assert line["mce_19"] == pytest.approx(
        metrics.mce(want, metrics.ALL_CORRUPTIONS)
    )
    assert line["relative_mce"] == pytest.approx(
        metrics.relative_mce(want, 0.5)
    )
    for key in ("chart_png", "gallery_png", "markdown"):
        assert os.path.getsize(line[key]) > 1000
    table = open(line["markdown"]).read()
    assert "mCE (19, the original's protocol)" in table
    # A 3-class model: no paper figure beside it (resnet50's is 76.7).
    assert report["paper"] is None and "76.7" not in table
    not_imagenet = (
        "The model was trained on 3 classes, not on ImageNet: the paper's "
        "ImageNet mCE of resnet50 is not shown beside it. Its CE and mCE "
        "divide by AlexNet's errors on ImageNet-C, which mean nothing for "
        "another dataset's images: --normalization=none gives the plain "
        "mean corruption error (the paper's Food-101-C figures, Table 8)."
    )
    assert f"WARNING: {not_imagenet}" in proc.stderr
    assert not_imagenet in table and report["warnings"] == [not_imagenet]
    assert not any(r["cached"] for r in report["results"].values())
    # Resume (library level, same cache): drop one corruption's cache and
    # only it is predicted again.
    cache = os.path.join(out, "cache_c")
    key = json.load(open(os.path.join(cache, "snow.json")))["signature"]
    sig = key["signature"]  # model and data; "files": snow's files
    assert key["files"] == evaluation.files_key(
        p for items in found["snow"].values() for p, _ in items
    )
    os.remove(os.path.join(cache, "fog.json"))
    calls = []
    predict = evaluation.make_predict_fn(model)

    def counting_predict(images):
        calls.append(len(images))
        return predict(images)

    again = evaluation.evaluate_c(counting_predict, found, labels, cache, sig)
    cached = {c for c, r in again.items() if r["cached"]}
    assert cached == set(metrics.ALL_CORRUPTIONS) - {"fog"}
    assert sum(calls) == 15  # fog: 5 severities x 3 images
    assert again["fog"]["top1_error"] == pytest.approx(want["fog"])
    # Before: a set that gained images (a --limit subset, then the whole
    # set) kept the subset's cached errors. Snow severity 2 gains one.
    extra = os.path.join(data, "snow", "2", WNIDS[0], "extra.JPEG")
    with open(extra, "wb") as f:
        f.write(jpeg_bytes(smooth_image(32, 32, 99)))
    calls.clear()
    grown = evaluation.find_imagenet_c(data)
    again = evaluation.evaluate_c(counting_predict, grown, labels, cache, sig)
    assert {c for c, r in again.items() if not r["cached"]} == {"snow"}
    assert sum(calls) == 16 and again["snow"]["count"] == [3, 4, 3, 3, 3]
    # Another model or data set (signature) recomputes everything.
    calls.clear()
    evaluation.evaluate_c(counting_predict, grown, labels, cache, "other")
    assert sum(calls) == 19 * 15 + 1


@pytest.mark.slow  # over 2 s on 2 cores
def test_evaluate_robustness_in_process(tmp_path, tiny_weights, monkeypatch):
    """The library behind the binary, on the set of the end-to-end test:
    the same errors, mCEs, files and warnings, in this process."""
    from assemble_tf.robustness import run

    model, weights = tiny_weights
    data = str(tmp_path / "c")
    write_set(data, metrics.ALL_CORRUPTIONS, per_class=1)
    options = run.RobustnessOptions(
        kind="c",
        data_dir=data,
        preset="resnet50",
        weights=weights,
        num_classes=4,
        label_offset=0,
        model_overrides=TINY,
        clean_error=0.5,
        batch_size=7,
        output_dir=str(tmp_path / "out"),
        progress=False,
    )
    config, loaded, source = run.load_model(options)
    assert source == os.path.abspath(weights)
    logged = []
    report = run.evaluate_robustness(
        options, loaded, config, source, log=logged.append
    )
    found = evaluation.find_imagenet_c(data)
    want = expected_errors(model, found, evaluation.label_map(WNIDS, 4, 0))
    for c in metrics.ALL_CORRUPTIONS:
        assert report["results"][c]["top1_error"] == pytest.approx(want[c])
        assert report["results"][c]["count"] == [3] * 5
    line = run.console_line(report)
    assert line["mce"] == pytest.approx(metrics.mce(want))
    assert line["mce_19"] == pytest.approx(
        metrics.mce(want, metrics.ALL_CORRUPTIONS)
    )
    assert line["relative_mce"] == pytest.approx(
        metrics.relative_mce(want, 0.5)
    )
    for key in ("chart_png", "gallery_png", "markdown"):
        assert os.path.getsize(line[key]) > 1000
    written = json.load(open(line["json"]))
    del report["json"]
    assert written == json.loads(json.dumps(report))  # the file: no "json"
    table = open(line["markdown"]).read()
    assert report["paper"] is None and "76.7" not in table
    not_imagenet = (
        "The model was trained on 3 classes, not on ImageNet: the paper's "
        "ImageNet mCE of resnet50 is not shown beside it. Its CE and mCE "
        "divide by AlexNet's errors on ImageNet-C, which mean nothing for "
        "another dataset's images: `normalization`=none gives the plain "
        "mean corruption error (the paper's Food-101-C figures, Table 8)."
    )
    assert table.rstrip().endswith(not_imagenet)  # the file keeps it
    console = table.rstrip()[: -len(not_imagenet)].rstrip()
    assert logged == [f"WARNING: {not_imagenet}", console]
    # Issue 24 item 11: each note once on the console.
    assert sum(not_imagenet in line for line in logged) == 1
    assert report["warnings"] == [not_imagenet]
    # Another evaluation writing the same report (a live process holds
    # its lock): refused, naming it (before: both exited 0 and the report
    # held the later one's set only); the lock is gone after a run.
    import socket

    lock = tmp_path / "out" / ".robustness_c.lock"
    assert not lock.exists()
    holder = f"{os.getppid()}@{socket.gethostname()}"  # a live process
    lock.write_text(f"{holder} tools.eval_robustness (robustness_c)")
    with pytest.raises(OptionError) as e:
        run.evaluate_robustness(options, loaded, config, source, log=print)
    assert e.value.as_flag() == (
        f"--output_dir={tmp_path / 'out'} is being written by another "
        f"tools.eval_robustness (robustness_c) (process {holder}): wait for "
        "it to end, or pick another --output_dir. If that process is gone, "
        f"delete {lock}."
    )
    lock.unlink()
    # Run again: every result comes from the cache, and the console says
    # so; a folder that names no corruption is named (before: silently
    # left out).
    os.makedirs(os.path.join(data, "my_blur", "1"))
    logged.clear()
    again = run.evaluate_robustness(
        options, loaded, config, source, log=logged.append
    )
    assert all(r["cached"] for r in again["results"].values())
    assert again["summary"] == report["summary"]

    assert logged[2] == (
        "Reused the cached results of 19 of 19 (gaussian_noise, shot_noise, "
        "impulse_noise, ...): same model and the same files. Delete "
        f"{tmp_path / 'out' / 'cache_c'} to recompute."
    )
    assert logged[0] == f"WARNING: {not_imagenet}"
    assert logged[1] == (
        f"WARNING: {data}: not evaluated, no ImageNet-C name: my_blur."
    )
    # The plain errors of the same set (from the cache) are a report of
    # their own beside it (before: they replaced robustness_c.json/.md and
    # the chart).
    first = {k: open(line[k], "rb").read() for k in ("json", "markdown")}
    plain = run.evaluate_robustness(
        dataclasses.replace(options, normalization="none", clean_error=None),
        loaded,
        config,
        source,
        log=lambda line: None,
    )
    assert plain["summary"]["normalization"] == "none"
    assert (
        plain["normalization"]
        == "none"
        == json.load(open(plain["json"]))["normalization"]
    )
    out = tmp_path / "out"
    assert (plain["json"], plain["markdown"], plain["chart_png"]) == (
        str(out / "robustness_c_unnormalized.json"),
        str(out / "robustness_c_unnormalized.md"),
        str(out / "error_per_corruption.png"),
    )
    assert first == {k: open(line[k], "rb").read() for k in first}
    assert line["chart_png"] == str(out / "ce_per_corruption.png")
    # Another class -> label map (a labels.txt in another order): other
    # errors, none from the cache (before: the cache kept the first map's
    # errors and said "same model and the same files").
    reversed_map = dict(zip(reversed(WNIDS), (0, 1, 2), strict=True))
    labels_txt = tmp_path / "labels.txt"
    labels_txt.write_text(
        "".join(f"{label}\t{wnid}\tx\n" for wnid, label in reversed_map.items())
    )
    permuted = run.evaluate_robustness(
        dataclasses.replace(options, labels_file=str(labels_txt)),
        loaded,
        config,
        source,
        log=lambda line: None,
    )
    assert not any(r["cached"] for r in permuted["results"].values())
    other = expected_errors(model, found, reversed_map)
    assert other != want
    for c in metrics.ALL_CORRUPTIONS:
        assert permuted["results"][c]["top1_error"] == pytest.approx(other[c])
    # A set without severity 5 (a quick `--severities` subset): each CE
    # sums AlexNet's errors over the same 4 severities (before: over all
    # 5, an mCE biased low and shown as if complete), the extras have no
    # CE (AlexNet's per-severity errors are unpublished), and a warning
    # says the mCE does not compare with published figures.
    for c in metrics.ALL_CORRUPTIONS:
        shutil.rmtree(os.path.join(data, c, "5"))
    logged.clear()
    partial = run.evaluate_robustness(
        options, loaded, config, source, log=logged.append
    )
    summary = partial["summary"]
    table = metrics.ALEXNET_ERROR_BY_SEVERITY
    ce = {
        c: 100 * sum(want[c][:4]) / sum(table[c][:4])
        for c in metrics.STANDARD_CORRUPTIONS
    }
    assert summary["ce"] == pytest.approx(ce)
    assert summary["mce"] == pytest.approx(np.mean(list(ce.values())))
    assert summary["mce_19"] is None
    rel = [
        100
        * sum(e - 0.5 for e in want[c][:4])
        / sum(a - metrics.ALEXNET_CLEAN_ERROR for a in table[c][:4])
        for c in metrics.STANDARD_CORRUPTIONS
    ]
    assert summary["relative_mce"] == pytest.approx(np.mean(rel))
    assert summary["severities_partial"]["fog"] == [1, 2, 3, 4]
    assert summary["note"] == (
        "19 corruption(s) evaluated at severities 1,2,3,4 only: their CE "
        "is normalised by AlexNet's errors at the same severities, and mCE "
        "is not the published protocol's (all 5 severities), so it does "
        "not compare with published figures. No CE for gaussian_blur, "
        "saturate, spatter, speckle_noise: AlexNet's errors per severity "
        "are published for the 15 standard corruptions only. The other "
        "severities: generate them into the same folder with `"
        + evaluation.regenerate_command(
            data,
            "tools.make_imagenet_c",
            "corruptions",
            sorted(metrics.ALL_CORRUPTIONS),
            [5],
        )
        + "`."
    )
    assert f"WARNING: {summary['note']}" in logged
    # The chart says so too, and names the corruptions it leaves out.
    assert run._partial_title(summary) == (
        "\nsome severities only; no CE: gaussian_blur, saturate, spatter, "
        "speckle_noise"
    )
    markdown = open(partial["markdown"]).read()
    assert summary["note"] in markdown
    assert "| spatter | " in markdown and markdown.count(" | - |") >= 4
    # A severity with fewer images than the others (a set cut short): a
    # warning naming them (before: evaluated without a word).
    fog_1 = os.path.join(data, "fog", "1", WNIDS[0])
    os.remove(os.path.join(fog_1, sorted(os.listdir(fog_1))[0]))
    logged.clear()
    uneven = run.evaluate_robustness(
        options, loaded, config, source, log=logged.append
    )
    note = (
        "Images per severity differ in fog (1: 2, 2: 3, 3: 3, 4: 3): each "
        "severity's error is over other images, and the CE mixes them."
    )
    assert f"WARNING: {note}" in logged
    assert note in uneven["warnings"]

    # Ctrl-C says how to resume (before: "Interrupted." alone).
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(evaluation, "evaluate_c", interrupted)
    with pytest.raises(KeyboardInterrupt) as e:
        run.evaluate_robustness(options, loaded, config, source, log=str)
    cache = os.path.join(options.output_dir, "cache_c")
    assert str(e.value) == (
        "Rerun the same command to resume: the results of the finished "
        f"corruptions are kept in {cache}."
    )
    # So does SIGTERM (before: "Terminated." alone).
    import signal
    import time

    from official.utils.misc import interrupts

    def terminated(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(10)  # the handler raises before this ends

    monkeypatch.setattr(evaluation, "evaluate_c", terminated)
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(interrupts.Terminated) as e:
        run.evaluate_robustness(options, loaded, config, source, log=str)
    assert interrupts.terminated_message(e.value) == (
        "Rerun the same command to resume: the results of the finished "
        f"corruptions are kept in {cache}."
    )
    assert signal.getsignal(signal.SIGTERM) is before


def test_robustness_options_name_the_bad_field(tmp_path):
    from assemble_tf.robustness import run

    def options(**kw):
        return run.RobustnessOptions(**{"kind": "c", "data_dir": "d", **kw})

    options().validate()
    for field, value, rule in (
        ("kind", "x", "must be one of c, p"),
        ("clean_error", 1.5, "must be a fraction in [0, 1]"),
        ("normalization", "l2", "must be one of alexnet, none"),
        ("difficulty", 0, "must be at least 1"),
        ("batch_size", 0, "must be at least 1"),
    ):
        message = re.escape(f"`{field}`={value} {rule}.")
        with pytest.raises(ValueError, match=f"^{message}") as e:
            options(**{field: value}).validate()
        assert e.value.as_flag() == f"--{field}={value} {rule}."
    # The binary prints the flag (it once printed "--`clean_error`=...").
    result = testing_utils.run_main(
        "tools.eval_robustness", "--kind=c", "--data_dir=d", "--clean_error=2"
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "ERROR: --clean_error=2.0 must be a fraction in [0, 1]."
    )
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        run.find_set(options(data_dir=str(tmp_path / "missing")))
    # A frame step of the whole sequence: refused before the model loads
    # (before: "step=31 must be in [1, 31)" after every video was read).
    with pytest.raises(ValueError) as e:
        options(kind="p", difficulty=31).validate()
    assert e.value.as_flag() == (
        "--difficulty=31 is the frame step of ImageNet-P's flip rates and "
        "must be below 31, the frames of the sequences asked for; e.g. "
        "--difficulty=1 as in the benchmark."
    )
    options(kind="p", difficulty=30).validate()
    options(kind="p", difficulty=40, names=("translate",)).validate()
    with pytest.raises(ValueError, match="must be below 41"):
        options(kind="p", difficulty=41, names=("translate",)).validate()
    # Issue 24 item 11: ImageNet-P's FR is always AlexNet-relative; a
    # plain-mean request was silently ignored.
    with pytest.raises(ValueError) as e:
        options(kind="p", normalization="none").validate()
    assert e.value.as_flag() == (
        "--normalization=none applies to ImageNet-C (--kind=c) only: "
        "ImageNet-P's FR is always relative to AlexNet's."
    )
    # ImageNet-P's frame step with ImageNet-C (before: ignored, and the
    # set evaluated again under another cache key).
    with pytest.raises(ValueError) as e:
        options(kind="c", difficulty=3).validate()
    assert e.value.as_flag() == (
        "--difficulty=3 is ImageNet-P's frame step and applies to --kind=p "
        "only; leave it out with --kind=c."
    )
    # A clean error where no relative mCE is computed (before: ignored).
    options(clean_error=0.25).validate()
    for kw in ({"normalization": "none"}, {"kind": "p"}):
        with pytest.raises(ValueError) as e:
            options(clean_error=0.25, **kw).validate()
        assert e.value.as_flag() == (
            "--clean_error=0.25 gives the relative mCE, which divides by "
            "AlexNet's errors on ImageNet-C: it applies with --kind=c and "
            "--normalization=alexnet only. Leave --clean_error out."
        )


@pytest.mark.slow
def test_eval_robustness_p_end_to_end(tmp_path, tiny_weights):
    from assemble_tf.robustness import perturbations, video

    model, weights = tiny_weights
    data = tmp_path / "p"
    for w_index, wnid in enumerate(WNIDS[:2]):
        image = smooth_image(32, 32, seed=w_index)
        for name in metrics.TEST_PERTURBATIONS:
            folder = data / name / wnid
            folder.mkdir(parents=True, exist_ok=True)
            frames = perturbations.sequence(image, name, seed=w_index)
            video.write_video(str(folder / f"v{w_index}.mp4"), frames)
    # The release's folder of difficulty 2 noise: a perturbation (before:
    # warned about as a folder naming none).
    (data / "gaussian_noise_2" / WNIDS[0]).mkdir(parents=True)
    out = tmp_path / "out"
    labels_file = tmp_path / "labels.txt"
    labels_file.write_text("1\tn00000001\ta\n2\tn00000002\tb\n")
    command = [
        "tools.eval_robustness",
        "--kind=p",
        f"--data_dir={data}",
        "--preset=resnet50",
        f"--weights={weights}",
        "--num_classes=4",
        f"--labels_file={labels_file}",
        f"--model_overrides={json.dumps(TINY)}",
        f"--output_dir={out}",
    ]
    proc = testing_utils.run_main(*command)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ImageNet-P: 100%" in proc.stderr  # the progress bar
    line = json.loads(proc.stdout.strip().splitlines()[-1])
    report = json.load(open(line["json"]))
    # --noprogress (before: no such flag; a bar in every log), from the
    # cache.
    quiet = testing_utils.run_main(*command, "--noprogress")
    assert quiet.returncode == 0, quiet.stderr[-3000:]
    assert "ImageNet-P:" not in quiet.stderr
    # The set read as ImageNet-C: the error says what it holds.
    with pytest.raises(FileNotFoundError, match=r"ImageNet-P set \(kind p\)"):
        evaluation.find_imagenet_c(str(data))
    # 4 outputs, 3 classes (label_offset 0): class 0 is background and the
    # flip rates rank the other three.
    predict = evaluation.make_predict_fn(model, background=0)
    fps = {}
    for name in metrics.TEST_PERTURBATIONS:
        preds = []
        for w_index, wnid in enumerate(WNIDS[:2]):
            path = data / name / wnid / f"v{w_index}.mp4"
            preds.append(predict(video.read_video(str(path))).numpy()[:, 0])
        noise = name in metrics.NOISE_PERTURBATIONS
        fps[name] = metrics.flip_probability(np.stack(preds), noise=noise)
        got = report["results"][name]
        assert got["flip_probability"] == pytest.approx(fps[name]), name
        assert got["frames_per_video"] == perturbations.FRAME_COUNTS[name]
        assert got["top5_distance"] is None  # 4 classes < 5
    assert line["mfr"] == pytest.approx(metrics.mfr(fps))
    assert os.path.getsize(line["gallery_png"]) > 1000
    assert "| mFR |" in open(line["markdown"]).read()
    # The set has 2 of the model's 3 classes; said once, in ImageNet-P's
    # terms (issue 24 item 11: it said "normalised by AlexNet's errors").
    subset = (
        "WARNING: The set covers 2 of the model's 3 classes: errors are over "
        "those classes only, and FR / mFR (relative to AlexNet's flip rates"
    )
    assert proc.stderr.count("The set covers 2 of") == 1
    assert subset in proc.stderr
    assert report["paper"] is None and len(report["warnings"]) == 2
    assert "no ImageNet-P name" not in proc.stderr
    # At difficulty 2 noise is read from <noise>_2: shot_noise_2 is missing
    # (before: shot noise was left out without a word).
    from assemble_tf.robustness import run

    assert run.unknown_folders("p", str(data)) == []
    assert run.missing_noise_folders(str(data), 2) == ["shot_noise_2"]
    assert run.missing_noise_folders(str(data), 1) == []
    # Only of the perturbations asked for (--names): a run of translate
    # and rotate warned that shot noise was left out.
    assert run.missing_noise_folders(str(data), 2, ("tilt",)) == []
    assert run.missing_noise_folders(str(data), 2, ("shot_noise",)) == [
        "shot_noise_2"
    ]


def test_training_classes_tells_imagenet_models(tmp_path):
    from assemble_tf import config as config_lib

    def data(**kw):
        return config_lib.DataConfig(**kw)

    assert evaluation.training_classes(data(num_classes=1001)) == (1000, True)
    assert evaluation.training_classes(
        data(num_classes=1000, label_offset=1)
    ) == (1000, True)
    assert evaluation.training_classes(data(num_classes=4)) == (3, False)
    # The set's labels tell: 1..3, class 0 a background (the original's
    # convention); 0..3, four classes (before: 3).
    one_based = {"a": 1, "b": 2, "c": 3}
    assert evaluation.training_classes(data(num_classes=4), one_based) == (
        3,
        False,
    )
    zero_based = {"a": 0, "b": 1, "c": 2, "d": 3}
    assert evaluation.training_classes(data(num_classes=4), zero_based) == (
        4,
        False,
    )
    imagenet = {f"n{i:08d}": i for i in range(1000)}
    assert evaluation.training_classes(data(num_classes=1000), imagenet) == (
        1000,
        True,
    )
    (tmp_path / "summary.json").write_text(
        json.dumps({"num_classes": 10, "label_offset": 0})
    )
    assert evaluation.training_classes(
        data(num_classes=10, data_dir=str(tmp_path))
    ) == (10, False)
    assert evaluation.training_classes(
        data(num_classes=102, source="oxford_flowers102")
    ) == (102, False)
    assert evaluation.training_classes(
        data(num_classes=1000, source="imagenet2012:5.1.0")
    ) == (1000, True)


def test_background_class_of_the_original_1001_way_heads(tmp_path):
    from assemble_tf import config as config_lib

    def data(**kw):
        return config_lib.DataConfig(**kw)

    assert evaluation.background_class(data(num_classes=1001)) == 0
    # The stored labels of the labels file (the run's labels.txt or
    # --labels_file) decide: 0-based records (tools.make_demo_dataset's)
    # have a real class 0.
    from assemble_tf.data import metadata

    for base, offset, want in ((0, 0, None), (1, 0, 0), (1, 1, None)):
        path = str(tmp_path / f"base{base}.txt")
        metadata.write_labels(path, [(base + i, f"c{i}", "") for i in range(9)])
        found = evaluation.background_class(
            data(num_classes=9 + base - offset, label_offset=offset), path
        )
        assert found == want, (base, offset)
    assert (
        evaluation.background_class(data(num_classes=1000, label_offset=1))
        is None
    )
    assert (
        evaluation.background_class(
            data(num_classes=102, source="oxford_flowers102")
        )
        is None
    )


def test_flip_rates_rank_the_1000_real_classes():
    """A 1001-way head (background 0) ranked over its 1000 real classes
    equals the release's 1000-way model with the same real logits: its
    top-1 flips and top-5 distance (hendrycks/robustness ImageNet-P
    test.py: argmax / argsort of the 1000 outputs) are restated here."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    frames, real = 12, 1000
    base = rng.normal(size=real + 1)
    logits = base + 0.01 * rng.normal(size=(frames, real + 1))
    logits[:, 8] = 5.0  # the real top-1 ...
    logits[5:7, 4] = 6.0  # ... but class 4 in frames 5 and 6
    # Background wins in every other frame (its top-1 would flip each time).
    logits[::2, 0] = 10.0
    logits = logits.astype(np.float32)

    class Fixed(tf.keras.Model):
        def call(self, images, training=False):
            return tf.constant(logits)[: tf.shape(images)[0]]

    video = np.zeros((frames, 8, 8, 3), np.uint8)
    ours = evaluation.make_predict_fn(Fixed(), background=0)(video).numpy()
    # The release: the 1000 outputs, classes numbered 1..1000 here.
    release = np.argsort(-logits[:, 1:], axis=1, kind="stable")[:, :5] + 1
    np.testing.assert_array_equal(ours, release)
    top1 = release[:, 0]
    want_fp = np.mean(top1[1:] != top1[:-1])
    got_fp = metrics.flip_probability(ours[None, :, 0])
    assert got_fp == pytest.approx(want_fp) == 2 / 11
    with_background = evaluation.make_predict_fn(Fixed())(video).numpy()
    assert metrics.flip_probability(with_background[None, :, 0]) == 1
    assert metrics.top5_distance(ours[None]) == pytest.approx(
        metrics.top5_distance(release[None])
    )


@pytest.mark.slow
def test_eval_robustness_bad_flags(tmp_path):
    proc = testing_utils.run_main(
        "tools.eval_robustness", "--kind=c", f"--data_dir={tmp_path}/missing"
    )
    assert proc.returncode == 2
    assert "is not a directory" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_flip_rates_need_difficulty_one():
    """AlexNet's flip probabilities exist for difficulty 1 only: at 2 the
    summary and the table give flip probabilities, no FR / mFR, and say
    why."""
    from assemble_tf.robustness import report

    results = {
        p: {"flip_probability": 0.05, "top5_distance": 0.1, "top1_error": 0.3}
        for p in metrics.TEST_PERTURBATIONS
    }
    one = evaluation.summarize_p(results)
    assert one["fr"]["rotate"] == pytest.approx(
        100 * 0.05 / metrics.ALEXNET_FLIP_PROBABILITY["rotate"]
    )
    assert one["mfr"] is not None and one["note"] is None
    two = evaluation.summarize_p(results, difficulty=2)
    assert two["fr"] == {} and two["mfr"] is None
    assert "difficulty 2" in two["note"] and "difficulty 1 only" in two["note"]
    table = report.markdown_p(two, results, None, "resnet50")
    assert "| rotate | 0.05000 | - |" in table and "| mFR | - |" in table
    assert "difficulty 1 only" in table
    # A perturbation missing from the set: no mFR, and the note says why
    # (before: "-" without a word).
    del results["scale"], results["rotate"]
    three = evaluation.summarize_p(results)
    assert three["mfr"] is None and "rotate" not in three["fr"]
    assert three["note"] == (
        "No mFR: the set has no results for rotate, scale (of the 10 test "
        "perturbations); generate them into the same folder with `python -m "
        "tools.make_imagenet_p --perturbations=rotate,scale`."
    )


def test_a_set_of_uneven_corruptions_or_a_selection_is_named():
    """Two cases an mCE was given or refused without the right word:
    corruptions holding different numbers of images (fog and snow made
    with a limit of 4, the rest from all 10: an mCE of 83 that was 90 on
    one image set), and a complete set evaluated with `names` (the note
    said the set had no results for the others)."""
    results = {
        c: {
            "top1_error": [None, None, 0.5, None, None],
            "count": [0, 0, 4 if c in ("fog", "snow") else 10, 0, 0],
        }
        for c in metrics.STANDARD_CORRUPTIONS
    }
    uneven = evaluation.summarize_c(results)
    assert uneven["mce"] is not None  # as with uneven severities: a note
    assert (
        "Images per corruption differ (4 in fog, snow; 10 in brightness, "
        "contrast, defocus_blur, elastic_transform, frost, gaussian_noise, "
        "glass_blur, impulse_noise, jpeg_compression, motion_blur, "
        "pixelate, shot_noise, zoom_blur): each corruption's error is over "
        "other images, so the mean over them mixes image sets."
    ) in uneven["note"]
    for c in ("fog", "snow"):
        results[c]["count"][2] = 10
    assert "differ" not in (evaluation.summarize_c(results)["note"] or "")
    # ImageNet-P alike, per perturbation's videos (before: an mFR over
    # other videos per perturbation, without a word).
    videos = {
        p: {
            "flip_probability": 0.05,
            "top5_distance": 0.1,
            "videos": 1 if p == "brightness" else 4,
        }
        for p in metrics.TEST_PERTURBATIONS
    }
    p_uneven = evaluation.summarize_p(videos)
    assert p_uneven["mfr"] is not None
    assert p_uneven["note"].startswith(
        "Videos per perturbation differ (1 in brightness; 4 in "
        "gaussian_noise, motion_blur, rotate, scale, shot_noise, snow, "
        "tilt, translate, zoom_blur): each perturbation's flip probability "
        "is over other videos, so the mean over them mixes video sets."
    )
    videos["brightness"]["videos"] = 4
    assert evaluation.summarize_p(videos)["note"] is None
    # Evaluated with names=fog: mCE needs the others, which the set has.
    only_fog = evaluation.summarize_c(
        {"fog": results["fog"]}, selected=("fog",)
    )
    assert only_fog["mce"] is None
    assert only_fog["note"].endswith(
        "No mCE: the evaluation was limited to 1 corruption(s) (names); "
        "mCE is the mean over the 15 standard ones."
    )
    # A selection naming a corruption the set lacks: the set's fault, and
    # the command makes it at the set's severities.
    lacking = evaluation.summarize_c(
        {"fog": results["fog"]}, selected=("fog", "snow")
    )
    assert lacking["note"].endswith(
        "No mCE: the set has no results for snow (of the 15 standard "
        "corruptions); generate them into the same folder with `python -m "
        "tools.make_imagenet_c --corruptions=snow`."
    )
    command = evaluation.summarize_c(
        {"fog": results["fog"]},
        command=lambda names, severities: f"{names} {severities}",
    )["note"]
    # The severities the set holds (3 only) go to the command.
    assert command.endswith(" (3,)`.") and "'snow'" in command
    # ImageNet-P evaluated with names=rotate,tilt on a complete set: mFR
    # needs the others (before: "the set has no results for ..." and a
    # command making 8 perturbations the set has).
    p_only = evaluation.summarize_p(
        {p: videos[p] for p in ("rotate", "tilt")}, selected=("rotate", "tilt")
    )
    assert p_only["mfr"] is None
    assert p_only["note"] == (
        "No mFR: the evaluation was limited to 2 perturbation(s) (names); "
        "mFR is the mean over the 10 test ones."
    )
    assert (
        "no results for scale"
        in evaluation.summarize_p(
            {"rotate": videos["rotate"]}, selected=("rotate", "scale")
        )["note"]
    )


def test_an_extra_corruption_at_some_severities_keeps_the_15_mce():
    """Only an extra corruption short of a severity: the 15-corruption
    mCE is the published protocol's (before: "mCE is not the published
    protocol's"), and the note gives the command for the severity."""
    results = {c: {"top1_error": [0.5] * 5} for c in metrics.ALL_CORRUPTIONS}
    results["speckle_noise"]["top1_error"][4] = None
    summary = evaluation.summarize_c(
        results, command=lambda names, severities: f"make {names} {severities}"
    )
    assert summary["mce"] is not None and summary["mce_19"] is None
    assert summary["note"] == (
        "1 corruption(s) evaluated at severities 1,2,3,4 only: their CE is "
        "normalised by AlexNet's errors at the same severities, and the mCE "
        "of the 15 standard corruptions is the published protocol's (all 5 "
        "severities). No CE for speckle_noise: AlexNet's errors per "
        "severity are published for the 15 standard corruptions only. The "
        "other severities: generate them into the same folder with `make "
        "['speckle_noise'] [5]`."
    )
    plain = evaluation.summarize_c(results, normalization="none")
    assert plain["mce_19"] is not None
    assert (
        "protocol's (all 5 severities); the mean over 19 is not."
        in (plain["note"])
    )
    results["fog"]["top1_error"][0] = None  # a standard one: mCE is off
    note = evaluation.summarize_c(results)["note"]
    assert "and mCE is not the published protocol's" in note
    assert note.endswith(
        "`python -m tools.make_imagenet_c --corruptions=fog` and `python -m "
        "tools.make_imagenet_c --corruptions=speckle_noise`."
    )


def test_a_damaged_image_of_the_set_is_named_with_the_fix(tmp_path):
    """Before: a traceback ending in DecodeJpeg, naming no file."""
    found = _one_severity_of_fog(tmp_path)
    damaged = found["fog"][1][1][0]
    with open(damaged, "rb") as f:
        head = f.read(300)
    with open(damaged, "wb") as f:
        f.write(head)
    assert _evaluation_error(found, tmp_path) == (
        f"{damaged} is not a decodable JPEG (jpeg::Uncompress failed. "
        "Invalid JPEG data or crop window.). Regenerate it: delete it and "
        "rerun `python -m tools.make_imagenet_c` with the same flags (it "
        "writes only the missing files)."
    )


def test_an_image_of_another_size_is_the_one_named(tmp_path):
    """Before: the batch's first file was named, whatever its size."""
    found = _one_severity_of_fog(tmp_path)
    odd = found["fog"][1][2][0]
    with open(odd, "wb") as f:
        f.write(jpeg_bytes(smooth_image(40, 40, 7)))
    assert _evaluation_error(found, tmp_path) == (
        "Images of one batch differ in size [(32, 32, 3), (40, 40, 3)]: "
        f"{odd} is (40, 40), the others (32, 32); generate the set at one "
        "crop size."
    )
    # One image per batch: the set's first image sets the size (before:
    # evaluated without a word, each image at its own size).
    first = found["fog"][1][0][0]
    assert _evaluation_error(found, tmp_path, batch_size=1) == (
        f"{odd} is (40, 40), but {first} is (32, 32): a set is evaluated at "
        "one size; generate it at one crop size."
    )


def _evaluation_error(found, tmp_path, batch_size=64):
    """The message of the ValueError `evaluate_c` raises on `found` (a
    constant predictor: the set's files are the point)."""
    labels = evaluation.label_map(WNIDS, 4, 0)

    import tensorflow as tf

    def predict(images):
        return tf.zeros([len(images), 5], tf.int32)

    with pytest.raises(ValueError) as error:
        evaluation.evaluate_c(
            predict, found, labels, str(tmp_path), "s", batch_size
        )
    return str(error.value)


def _one_severity_of_fog(tmp_path):
    """`find_imagenet_c` of fog at severity 1, one image per class."""
    data = str(tmp_path / "c")
    write_set(data, ("fog",), severities=(1,), per_class=1)
    return evaluation.find_imagenet_c(data)


def test_the_perturbation_strip_titles_each_row_with_its_own_frames(
    tmp_path, monkeypatch
):
    """translate has 41 frames, the others 31: the strip's titles came from
    the first row, so translate's frames 1, 9, 17, ... showed under
    "frame 7, 13, 19, ..." of a 31-frame row."""
    from assemble_tf.robustness import plots

    figures = []
    make = plots._figure
    monkeypatch.setattr(
        plots, "_figure", lambda *a: figures.append(make(*a)) or figures[-1]
    )
    videos = {
        "rotate": np.zeros((31, 8, 8, 3), np.uint8),
        "translate": np.zeros((41, 8, 8, 3), np.uint8),
    }
    path = plots.perturbation_strip(videos, str(tmp_path / "g.png"), frames=6)
    assert os.path.getsize(path) > 1000
    (figure,) = figures
    titles = [ax.get_title() for ax in figure.axes]
    assert titles[:6] == [f"frame {f}" for f in (1, 7, 13, 19, 25, 31)]
    assert titles[6:] == [f"frame {f}" for f in (1, 9, 17, 25, 33, 41)]

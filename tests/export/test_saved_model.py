"""SavedModel export: three signatures, verified, atomic."""

import dataclasses
import os
import re
import shutil
import stat
import statistics
import struct

import keras
import numpy as np
import pytest
import tensorflow as tf

from assemble_tf.data import preprocessing
from assemble_tf.export import placement, verification
from assemble_tf.export import saved_model as export_lib
from assemble_tf.models import build_model, feature_model
from tests import testing_utils

TINY = {"base_width": 8, "block_sizes": (2, 2, 2, 1), "num_classes": 5}
# Names as users' folders have them: spaces, non-ASCII, a duplicate text.
NAMES = ["background", "n01440764", "crème brûlée", "red fox", "red fox"]


def _tiny_export_args(weights):
    """`tools.export_saved_model` flags for the tiny R50 whose weights
    `weights` holds (3 classes, 32-px preprocessing)."""
    return [
        "--preset=resnet50",
        f"--weights={weights}",
        "--num_classes=3",
        '--model_overrides={"base_width": 8, "block_sizes": [1,1,1,1]}',
        "--preprocessing=imagenet_32",
    ]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model = build_model("assemble_resnet50", **TINY)
    testing_utils.randomize_bn(model)  # zero-gamma gives constant logits
    path = str(tmp_path_factory.mktemp("export") / "1")
    diffs = export_lib.export_saved_model(
        model, path, "imagenet_64", class_names=NAMES
    )
    return model, path, diffs


@pytest.fixture(scope="module")
def loaded(exported):
    """The export loaded once by TensorFlow's Python loader."""
    return tf.saved_model.load(exported[1])


@pytest.mark.slow
def test_saved_model_cli_runs_every_signature(exported, tmp_path):
    """The C++ session loader of saved_model_cli (as TF Serving) runs all
    three signatures with the commands of docs/deployment.md and matches
    the model."""
    model, path, _ = exported
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o777 & ~mask
    images = testing_utils.random_images((2, 64, 64, 3), low=-120, high=130)
    np.save(tmp_path / "x.npy", images)
    jpegs = [
        testing_utils.jpeg_bytes(testing_utils.smooth_image(80, 100, 3)),
        tf.io.encode_png(testing_utils.smooth_image(90, 75, 9)).numpy(),
    ]
    # docs/deployment.md's way to pass encoded images: a numpy bytes array.
    np.save(tmp_path / "jpegs.npy", np.array(jpegs))
    runs = [
        ("preprocessed", "images=x.npy", tmp_path / "preprocessed"),
        ("feature_vector", "images=x.npy", tmp_path / "feature_vector"),
        ("serving_default", "images=jpegs.npy", tmp_path / "serving_default"),
    ]
    run = testing_utils.saved_model_cli_runs(path, runs, tmp_path, show=True)
    assert run.returncode == 0, run.stderr[-3000:]
    for name, _, _ in runs:  # `saved_model_cli show --all` lists them
        assert f"signature_def['{name}']" in run.stdout
    # saved_model_cli saves the strings of class_names as an object array.
    outputs = {
        name: {
            f[:-4]: np.load(out / f, allow_pickle=True)
            for f in sorted(os.listdir(out))
        }
        for name, _, out in runs
    }
    want = model(images, training=False).numpy()
    assert np.abs(want).max() > 0.1  # a real comparison, not of zeros
    got = outputs["preprocessed"]
    assert sorted(got) == ["class_names", "classes", "logits", "probabilities"]
    assert [n.decode() for n in got["class_names"]] == [
        NAMES[i] for i in want.argmax(-1)
    ]
    # rtol: features reach 20 here, and oneDNN's summation order may differ
    # between two processes on a busy machine (one run failed at atol 1e-4
    # alone while another job ran).
    np.testing.assert_allclose(got["logits"], want, rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(got["classes"], want.argmax(-1))
    feats = feature_model(model)(images, training=False).numpy()
    np.testing.assert_allclose(
        outputs["feature_vector"]["features"], feats, rtol=1e-5, atol=1e-4
    )
    crops = tf.stack(
        [
            preprocessing.preprocess_bytes(tf.constant(b), "imagenet_64")
            for b in jpegs
        ]
    )
    np.testing.assert_allclose(
        outputs["serving_default"]["logits"],
        model(crops, training=False).numpy(),
        atol=1e-4,
    )


@pytest.mark.slow  # over 1.4 s in make test (make test-fast: 2 min)
def test_the_verification_runs_the_traces_the_save_made(tmp_path):
    """`verify` runs the signatures with the traces `tf.saved_model.save`
    made: the network, and each signature, is traced once per export (a
    call outside the save's options traced all of them again)."""
    module = export_lib.ServingModule(
        testing_utils.serving_model(), "imagenet_32"
    )
    export_lib.save_module(module, str(tmp_path / "1"))
    functions = [module.forward, *module.signatures().values()]
    assert [f.experimental_get_tracing_count() for f in functions] == [1] * 4
    images = testing_utils.random_images((2, 32, 32, 3))
    jpegs = verification.sample_images(32, 2)
    diffs = verification.verify(
        str(tmp_path / "1"), module, images, jpegs, 1e-4
    )
    assert set(diffs) == {"serving_default", "preprocessed", "feature_vector"}
    assert [f.experimental_get_tracing_count() for f in functions] == [1] * 4


def test_export_fails_when_the_session_loader_cannot_run_it(tmp_path):
    """With its variables tracked through the Keras objects only, not as
    TensorFlow variables, the export loads in Python but not under the
    session loader: the verification catches that."""
    model = testing_utils.serving_model()
    module = export_lib.ServingModule(model, "imagenet_32")
    del module.serving_variables
    module.model = model
    tf.saved_model.save(module, str(tmp_path / "raw"), module.signatures())
    tf.saved_model.load(str(tmp_path / "raw"))  # the Python loader copes
    x = testing_utils.random_images((1, 32, 32, 3))
    with pytest.raises(tf.errors.FailedPreconditionError, match="variable"):
        verification.run_in_session(str(tmp_path / "raw"), {"preprocessed": x})


@pytest.mark.slow  # the exported fixture: a verified export
def test_export_round_trip_through_all_signatures(exported, loaded):
    model, path, diffs = exported
    assert set(diffs) == {"serving_default", "preprocessed", "feature_vector"}
    assert max(diffs.values()) <= 1e-4
    assert set(loaded.signatures) == set(diffs)
    # The variables once, as `serving_variables` (what warm starts read),
    # and no Keras objects: the root's saved children.
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as f:
        saved.ParseFromString(f.read())
    root = saved.meta_graphs[0].object_graph_def.nodes[0]
    assert sorted(c.local_name for c in root.children) == [
        "class_names_file",
        "feature_vector",
        "forward",
        "preprocessed",
        "preprocessing_file",
        "serving_default",
        "serving_variables",
        "signatures",
    ]
    # The network is saved once, in `forward`, which the three signatures
    # call (before: a tracked Keras model saved its default signature, a
    # second copy of every convolution).
    convs = sum(
        node.op == "Conv2D"
        for function in saved.meta_graphs[0].graph_def.library.function
        for node in function.node_def
    )
    layers = [
        w for w in model.weights if w.path.endswith("/kernel") and w.ndim == 4
    ]
    assert convs == len(layers)
    assert sorted(os.listdir(os.path.join(path, "assets"))) == [
        "class_names.txt",
        "preprocessing.txt",
    ]
    assert export_lib.saved_preprocessing(path) == "imagenet_64"
    assert len(loaded.serving_variables) == len(model.variables)
    images = testing_utils.random_images((3, 64, 64, 3), low=-120, high=130)
    out = loaded.signatures["preprocessed"](images=tf.constant(images))
    expected = model(images, training=False).numpy()
    np.testing.assert_allclose(out["logits"].numpy(), expected, atol=1e-4)
    np.testing.assert_allclose(
        out["probabilities"].numpy().sum(-1), 1.0, rtol=1e-5
    )
    assert out["classes"].dtype == tf.int64
    assert [n.decode() for n in out["class_names"].numpy()] == [
        NAMES[i] for i in expected.argmax(-1)
    ]
    # The names as an asset, one per line, in the SavedModel's folder.
    names_file = loaded.class_names_file.asset_path.numpy().decode()
    assert names_file == os.path.join(path, "assets", "class_names.txt")
    with open(names_file, encoding="utf-8") as f:
        assert f.read().splitlines() == NAMES
    feats = loaded.signatures["feature_vector"](images=tf.constant(images))
    assert feats["features"].shape == (3, 256)


@pytest.mark.slow  # the exported fixture: a verified export
def test_bytes_signature_matches_the_python_eval_pipeline(exported, loaded):
    model = exported[0]
    jpegs = [
        testing_utils.jpeg_bytes(testing_utils.smooth_image(h, w, s))
        for s, (h, w) in enumerate([(80, 100), (120, 70), (64, 64)])
    ]
    png = tf.io.encode_png(testing_utils.smooth_image(90, 75, 9)).numpy()
    data = jpegs + [png]
    out = loaded.signatures["serving_default"](images=tf.constant(data))
    for i, raw in enumerate(data):
        if i < 3:
            image = preprocessing.preprocess_eval(
                tf.constant(raw), "imagenet_64"
            )
        else:
            image = preprocessing.preprocess_bytes(
                tf.constant(raw), "imagenet_64"
            )
        logits = model(image[None], training=False).numpy()[0]
        assert int(out["classes"][i]) == int(np.argmax(logits))
        np.testing.assert_allclose(out["logits"][i].numpy(), logits, atol=1e-4)


@pytest.mark.slow  # the exported fixture: a verified export
def test_non_image_bytes_are_rejected_clearly(loaded):
    with pytest.raises(
        tf.errors.InvalidArgumentError, match="not a JPEG or PNG image"
    ):
        loaded.signatures["serving_default"](
            images=tf.constant([b"this is not an image"])
        )
    # One image not in a batch, or a column: the message of the signature
    # traced with its [N] spec (before: "ConcatOp: Can't concatenate
    # scalars", where Grappler had folded the rank check of an [N] input).
    jpeg = testing_utils.jpeg_bytes(testing_utils.smooth_image(40, 50, 1))
    for images in (tf.constant(jpeg), tf.constant([[jpeg], [jpeg]])):
        with pytest.raises(tf.errors.InvalidArgumentError) as info:
            loaded.signatures["serving_default"](images=images)
        assert (
            "serving_default takes a batch of encoded images: string [N], "
            "one JPEG or PNG each; got shape" in info.value.message
        ), info.value.message


def test_failed_export_leaves_no_folder(tmp_path, monkeypatch):
    model = testing_utils.serving_model()
    target = tmp_path / "serving" / "1"

    def broken(*args, **kwargs):
        raise RuntimeError("injected failure during verification")

    monkeypatch.setattr(verification, "verify", broken)
    with pytest.raises(RuntimeError, match="injected"):
        export_lib.export_saved_model(model, str(target), "imagenet_32")
    assert not target.exists()
    assert os.listdir(tmp_path / "serving") == []
    target.mkdir(parents=True)
    with pytest.raises(FileExistsError, match="pass `overwrite`"):
        export_lib.export_saved_model(model, str(target), "imagenet_32")
    # Before: overwrite=True deleted any folder, e.g. the training run.
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.json").write_text("{}")
    with pytest.raises(FileExistsError) as error:
        export_lib.export_saved_model(
            model, str(run), "imagenet_32", overwrite=True
        )
    assert error.value.as_flag() == (
        f"--export_dir={run} is a folder holding checkpoints, config.json, "
        "not a SavedModel: --overwrite replaces only a SavedModel or an "
        "empty folder. Choose another --export_dir."
    )
    assert sorted(os.listdir(run)) == ["checkpoints", "config.json"]
    (tmp_path / "afile").write_text("x")
    with pytest.raises(FileExistsError, match="is a file, not a SavedModel"):
        export_lib.export_saved_model(
            model, str(tmp_path / "afile"), "imagenet_32", overwrite=True
        )


@pytest.mark.slow  # exports
def test_export_run_folds_and_exports_in_process(tmp_path, monkeypatch):
    """tools.export_saved_model --fold_bn (in process), then the library
    behind it: an existing export_dir refused, `overwrite`."""
    import json

    from assemble_tf.export import saved_model_run

    model = build_model(
        "resnet50", base_width=8, block_sizes=(1, 1, 1, 1), num_classes=3
    )
    testing_utils.randomize_bn(model, seed=2)
    weights = str(tmp_path / "m.weights.h5")
    model.save_weights(weights)
    args = [
        "tools.export_saved_model",
        *_tiny_export_args(weights),
        "--fold_bn",
        f"--export_dir={tmp_path}/sm/1",
    ]
    result = testing_utils.run_main(*args)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert list(report) == [
        "export_dir",
        "preprocessing",
        "precision",
        "class_names",
        "max_abs_diff",
    ]
    # A preset's weights name no classes: the indices, and a note saying so.
    assert report["class_names"] == "indices"
    assert (
        "The class_names outputs will be the logits' indices (no class "
        "names given); the class_names option takes a file naming them."
    ) in result.stderr
    assert report["export_dir"] == str(tmp_path / "sm" / "1")
    assert report["preprocessing"] == "imagenet_32"
    assert report["precision"] == "float32"
    assert max(report["max_abs_diff"].values()) <= 1e-4
    bns = [layer for layer in model.layers if layer.name.endswith("_bn")]
    assert f"Folded {len(bns)} BatchNorm layers." in result.stderr
    again = testing_utils.run_main(*args)  # an error line
    assert again.returncode == 2 and "--overwrite" in again.stderr
    two = tmp_path / "two.txt"
    two.write_text("cat\ndog\n\n")
    wrong = testing_utils.run_main(*args, f"--class_names={two}")
    last = testing_utils.error_line(wrong)
    assert last.endswith(
        f"--class_names={two} names 2 classes; the model has 3 logits (one "
        "name per line, logit 0 first; ImageNet's 1001-way head starts "
        "with 'background')."
    )
    options = saved_model_run.ExportOptions(
        export_dir=str(tmp_path / "sm" / "1"),
        preset="resnet50",
        weights=weights,
        num_classes=3,
        model_overrides={"base_width": 8, "block_sizes": [1, 1, 1, 1]},
        preprocessing="imagenet_32",
        fold_bn=True,
    )
    lines = []
    with pytest.raises(FileExistsError, match="pass `overwrite`"):
        saved_model_run.export(options, log=lines.append)
    # Two logits of one name: said before the export (before: served
    # without a word).
    dup = tmp_path / "dup.txt"
    dup.write_text("cat\ndog\ndog\n")
    lines.clear()

    class Stop(Exception):
        pass

    def stop(*args):
        raise Stop

    with monkeypatch.context() as patch:
        patch.setattr(saved_model_run, "serving_model", stop)
        with pytest.raises(Stop):
            saved_model_run.export(
                dataclasses.replace(
                    options,
                    class_names=str(dup),
                    export_dir=str(tmp_path / "dup" / "1"),
                ),
                log=lines.append,
            )
    assert (
        f"WARNING: `class_names`={dup} gives a name to more than one logit "
        "('dog' for logits 1, 2): the served class_names cannot tell them "
        "apart. Make each line unique (e.g. add the class id) unless that "
        "is meant."
    ) in lines
    lines.clear()
    # `overwrite`: the new export is swapped into place, then the old one
    # removed (before: the old one removed, then the new one renamed: a
    # TF Serving poll in between found no version). A folder that is no
    # version number gets a warning.
    target = tmp_path / "sm" / "latest"
    shutil.copytree(tmp_path / "sm" / "1", target)
    stamp = (target / "saved_model.pb").stat().st_mtime_ns
    removed = []
    rmtree = shutil.rmtree

    def checked_rmtree(path, *args, **kwargs):
        assert (target / "saved_model.pb").is_file()  # never missing
        removed.append(path)
        rmtree(path, *args, **kwargs)

    monkeypatch.setattr(shutil, "rmtree", checked_rmtree)
    lines.clear()
    # With a builder's labels.txt as the class names (3 classes, 0-based).
    labels = tmp_path / "labels.txt"
    labels.write_text("0\tdaisy\tDaisy\n1\trose\t\n2\ttulip\tx\n")
    options = dataclasses.replace(
        options,
        export_dir=str(target),
        overwrite=True,
        class_names=str(labels),
    )
    report = saved_model_run.export(options, log=lines.append)
    assert report["class_names"] == str(labels)
    names = tf.saved_model.load(str(target)).class_names_file.asset_path
    with open(names.numpy().decode(), encoding="utf-8") as f:
        assert f.read() == "daisy\nrose\ntulip\n"
    assert (target / "saved_model.pb").stat().st_mtime_ns != stamp
    # The class names' temporary folder, beside the export and named as
    # its temporary folder (a killed export's is removed by the next), then
    # the old export.
    removed = [p for p in removed if p.startswith(str(tmp_path / "sm"))]
    assert len(removed) == 2
    assert not [p for p in removed if os.path.exists(p)]
    assert placement.TEMP_NAME.match(os.path.basename(removed[0]))
    assert sorted(os.listdir(tmp_path / "sm")) == ["1", "latest"]
    assert lines[0] == (
        "WARNING: TF Serving serves numbered version folders of its "
        f"--model_base_path: {target} is not one. For TF Serving, export "
        f"to {target / '1'} and serve its parent."
    )


def test_export_run_option_errors_name_the_option(tmp_path):
    from assemble_tf.export import saved_model_run
    from official.utils.misc.validation import OptionError

    options = saved_model_run.ExportOptions
    with pytest.raises(OptionError) as e:
        saved_model_run.export(options(export_dir=str(tmp_path / "x")))
    assert str(e.value) == "Pass `model_dir`, or `preset` with `weights`."
    assert e.value.as_flag() == "Pass --model_dir, or --preset with --weights."
    with pytest.raises(OptionError) as e:
        saved_model_run.export(options(export_dir="x", precision="float16"))
    assert e.value.as_flag() == (
        "--precision='float16': use one of float32, bfloat16."
    )
    with pytest.raises(OptionError, match="`export_dir` is required"):
        saved_model_run.export(options(export_dir=None))


@pytest.mark.parametrize("preset", ["assemble_resnet50", "table7_e4"])
@pytest.mark.slow  # over 2 s on 2 cores
def test_bn_folding_stays_within_tolerance(preset):
    from assemble_tf.export.optimize import folded_copy

    model = build_model(preset, **TINY)
    # Non-trivial BN statistics so the fold is exercised.
    testing_utils.randomize_bn(model, seed=1)
    folded, count = folded_copy(model)
    # Every BN, those inside SK units included.
    bns = [
        layer
        for layer in model._flatten_layers(include_self=False)
        if isinstance(layer, keras.layers.BatchNormalization)
    ]
    assert count == len(bns) and count > 20
    assert not any(
        isinstance(layer, keras.layers.BatchNormalization)
        for layer in folded._flatten_layers(include_self=False)
    )
    images = testing_utils.random_images((2, 64, 64, 3), low=-120, high=130)
    want = model(images, training=False).numpy()
    got = folded(images, training=False).numpy()
    # Stated tolerance: 1e-4 of the logit range (float32 re-association).
    assert np.abs(want - got).max() <= 1e-4 * max(1.0, np.abs(want).max())


@pytest.mark.slow  # trains or compiles
def test_xla_serving_path_stays_within_tolerance():
    model = build_model("assemble_resnet50", **TINY)
    module = export_lib.ServingModule(model, "imagenet_64", jit_compile=True)
    images = testing_utils.random_images((2, 64, 64, 3), low=-120, high=130)
    got = module.preprocessed(tf.constant(images))["logits"].numpy()
    want = model(images, training=False).numpy()
    assert np.abs(want - got).max() <= 1e-4 * max(1.0, np.abs(want).max())


def _benchmark_rows(tmp_path, *flags):
    """Runs `tools.benchmark_throughput --smoke` and returns its JSON
    rows."""
    import json

    args = ("tools.benchmark_throughput", "--smoke", *flags)
    args += (f"--output_dir={tmp_path}",)
    result = testing_utils.run_main(*args)
    assert result.returncode == 0, result.stderr[-3000:]
    return [
        json.loads(line)
        for line in open(tmp_path / "benchmark.jsonl").read().splitlines()
    ]


@pytest.mark.slow
def test_throughput_benchmark_smoke_writes_valid_json(tmp_path):
    rows = _benchmark_rows(tmp_path, "--preset=resnet50,assemble_resnet50")
    assert [r["model"] for r in rows] == ["resnet50", "assemble_resnet50"]
    for r in rows:
        assert r["images_per_sec"] > 0 and r["batch_size"] == 2
        assert r["matmul_peak_gflops"] > 0 and r["device"].startswith("CPU")
        assert r["backend"] == "tensorflow"
    assert rows[0]["ratio_vs_r50"] == 1.0
    assert rows[1]["paper_ratio_vs_r50"] == pytest.approx(312 / 536)
    lines = (tmp_path / "benchmark.md").read_text().splitlines()
    assert lines[0] == (
        f"Inference throughput on {rows[0]['device']} (tensorflow backend), "
        "batch 2."
    )
    assert lines[2].startswith("| model | dtype | image_size |")
    assert lines[4].startswith("| resnet50 | float32 | 64 |")
    assert os.path.getsize(tmp_path / "benchmark.png") > 1000


@pytest.mark.slow  # over 2 s on 2 cores
def test_run_benchmark_in_process(tmp_path, monkeypatch, capfd):
    """The library of tools.benchmark_throughput: the smoke run's rows
    (a fixed matmul peak instead of the measured one, for speed), with
    progress bars while the models are built and timed (before: nothing
    between "Timing ..." and the end, 25 minutes for --paper_table)."""
    import json

    import keras

    from assemble_tf.export import throughput, throughput_run

    monkeypatch.setattr(
        throughput, "matmul_peak_gflops", lambda dtype, **_: 100.0
    )
    lines = []
    options = throughput_run.ThroughputOptions(
        preset=("resnet50", "assemble_resnet50"),
        dtype="bfloat16",
        smoke=True,
        output_dir=str(tmp_path),
    )
    report = throughput_run.run_benchmark(options, log=lines.append)
    rows = report["rows"]
    assert [r["model"] for r in rows] == ["resnet50", "assemble_resnet50"]
    for r in rows:
        assert r["images_per_sec"] > 0 and r["batch_size"] == 2
        assert (r["image_size"], r["dtype"]) == (64, "bfloat16")
        assert r["peak_fraction"] == pytest.approx(r["gflops"] / 100.0)
    assert rows[0]["ratio_vs_r50"] == 1.0
    assert rows[1]["paper_ratio_vs_r50"] == pytest.approx(312 / 536)
    assert report["settings"] == throughput_run.SMOKE_SETTINGS
    assert lines[0].startswith("Timing 2 models on ")
    assert lines[1].startswith("resnet50: ")
    bars = capfd.readouterr().err
    assert "building: 100%" in bars and "2/2" in bars
    # 2 models x (1 warm-up + 2 runs).
    assert "timing: 100%" in bars and "6/6 [" in bars
    written = (tmp_path / "benchmark.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in written] == rows
    # The mixed_bfloat16 policy of the run is undone.
    assert keras.config.dtype_policy().name == "float32"
    # A rerun into the folder is refused before any timing (before: the
    # figures were replaced silently); --overwrite replaces them.
    with pytest.raises(FileExistsError, match="overwrite") as refused:
        throughput_run.run_benchmark(options, log=lines.append)
    assert refused.value.field == "output_dir"
    assert str(refused.value) == (
        f"`output_dir`={tmp_path} holds benchmark.jsonl, benchmark.md, "
        "benchmark.png of an earlier run; pass `overwrite` to replace them, "
        "or name another folder."
    )
    replace = dataclasses.replace(options, overwrite=True)
    assert throughput_run.validate(replace) == ["plain"]


def test_smoke_keeps_the_timing_settings_given():
    """Before: --smoke replaced --runs=3 (and the others) without a word."""
    from assemble_tf.export import throughput_run

    def settings(**values):
        options = throughput_run.ThroughputOptions(**values)
        return throughput_run.timing_settings(options)

    assert settings() == {"batch_size": 64, "warmup": 2, "runs": 5, "steps": 3}
    assert settings(smoke=True) == throughput_run.SMOKE_SETTINGS
    assert settings(smoke=True, runs=3, batch_size=4) == {
        "batch_size": 4,
        "warmup": 1,
        "runs": 3,
        "steps": 1,
    }
    assert settings(steps=7)["steps"] == 7


@pytest.mark.slow  # over 1.4 s in make test (make test-fast: 2 min)
def test_timing_many_models_does_not_warn_of_retracing(caplog):
    """One tf.function per model: `--paper_table` printed TensorFlow's "5
    out of the last 5 calls ... triggered tf.function retracing" twice
    (traces are counted per code object, and each model's function was
    the same lambda)."""
    import logging

    from assemble_tf.export import throughput

    model = build_model("resnet50", base_width=8, block_sizes=(1, 1, 1, 1))
    settings = {"batch_size": 1}
    with caplog.at_level(logging.WARNING, logger="tensorflow"):
        for i in range(6):
            timed = throughput.entry(f"m{i}", model, 1, 32, "plain", settings)
            timed["fn"](timed["images"])
    assert not [r for r in caplog.records if "retracing" in r.getMessage()]


@pytest.mark.slow  # over 2 s on 2 cores
def test_keras_reference_with_its_own_blocks_is_keras_resnet50():
    """`throughput.keras_resnet50(blocks=...)` restates Keras' ResNet50
    stacking: with ResNet-50's blocks it has Keras' parameter count and
    layer names; the smoke reference is the same network, shallower."""
    from assemble_tf.export import throughput

    shape = (64, 64, 3)
    real = keras.applications.ResNet50(
        weights=None, input_shape=shape, classes=10
    )
    again = throughput.keras_resnet50(
        shape, blocks=throughput.KERAS_RESNET50_BLOCKS, classes=10
    )
    assert again.count_params() == real.count_params() == 23_608_202
    # (Input layers are numbered per session: compare the rest.)
    assert [layer.name for layer in again.layers[1:]] == [
        layer.name for layer in real.layers[1:]
    ]
    smoke = throughput.keras_resnet50(
        shape, blocks=throughput.SMOKE_KERAS_BLOCKS, classes=10
    )
    final = real.get_layer("conv5_block3_out").output.shape
    assert final == (None, 2, 2, 2048)  # strides 32, as Keras'
    assert again.get_layer("conv5_block3_out").output.shape == final
    assert smoke.get_layer("conv5_block1_out").output.shape == final
    names = {layer.name for layer in smoke.layers}
    assert "conv5_block1_out" in names and "conv5_block2_out" not in names


def test_keras_reference_is_timed_at_the_requested_size(monkeypatch):
    """--compare=keras_resnet50 --image_size=S times Keras at S pixels, not
    224 (issue 24 item 5)."""
    import dataclasses

    from assemble_tf.export import throughput, throughput_run

    monkeypatch.setattr(
        throughput, "matmul_peak_gflops", lambda dtype, **_: 1e9
    )
    options = throughput_run.ThroughputOptions(
        preset=("resnet50",), compare="keras_resnet50", smoke=True
    )
    sized = dataclasses.replace(options, image_size=32)
    rows = throughput_run.run_benchmark(sized, log=lambda line: None)["rows"]
    assert [(r["model"], r["image_size"]) for r in rows] == [
        ("resnet50", 32),
        ("keras_resnet50", 32),
    ]
    assert throughput_run.reference_sizes(options, ["resnet50"]) == [64]
    full = dataclasses.replace(options, smoke=False)
    assert throughput_run.reference_sizes(full, ["resnet50"]) == [224]
    # Presets of two sizes: the reference at each (before: refused, and
    # the documented R50 at 224 beside Assemble-R50 at 256 did not run).
    assert throughput_run.reference_sizes(
        full, ["resnet50", "assemble_resnet50"]
    ) == [224, 256]


def test_peak_fraction_above_one_is_noted_and_above_two_refused():
    """A row at twice the matmul peak is a bug: an error naming the row
    (issue 24 item 5). Between 1x and 2x (Winograd convolutions, or a
    peak measured low on a busy machine) the row is kept with a note and
    a warning (before: refused at 1.05x, losing the run's timing)."""
    from assemble_tf.export import throughput_run

    entry = {
        "label": "keras_resnet50",
        "model_name": "keras_resnet50",
        "mode": "plain",
        "images": np.zeros([1, 64, 64, 3], np.float32),
        "macs": 1e9,
        "paper": None,
    }
    peaks = {"float32": 100.0}  # stubbed peak: 68 img/s is 136 GFLOP/s
    logged = []
    row = throughput_run.result_row(
        entry, 40.0, "float32", peaks, logged.append
    )
    assert row["peak_fraction"] == pytest.approx(0.8)
    assert row["note"] is None and logged == []
    row = throughput_run.result_row(
        entry, 68.0, "float32", peaks, logged.append
    )
    assert row["peak_fraction"] == pytest.approx(1.36)
    assert row["note"] == (
        "keras_resnet50: 136.0 GFLOP/s is 1.36x the float32 matmul peak "
        "measured in this run (100.0 GFLOP/s): its convolutions do fewer "
        "multiplications than their nominal MACs (e.g. Winograd), or the "
        "peak was measured low (a busy machine); its peak fraction is no "
        "measure of efficiency."
    )
    assert logged == [f"WARNING: {row['note']}"]
    with pytest.raises(ValueError) as e:
        throughput_run.result_row(entry, 101.0, "float32", peaks)
    assert str(e.value) == (
        "keras_resnet50: 202.0 GFLOP/s is 2.02x the float32 matmul peak "
        "measured in this run (100.0 GFLOP/s); no model runs at 2x the "
        "peak, so its MAC count or its timing is wrong. Not reported."
    )


def test_paper_table_with_a_preset_is_refused():
    """--preset beside --paper_table was dropped without a word."""
    result = testing_utils.run_main(
        "tools.benchmark_throughput", "--paper_table", "--preset=resnet50"
    )
    assert testing_utils.error_line(result) == (
        "ERROR: --preset with --paper_table: the paper's table times its own "
        "Table 7 rows; leave one of them out."
    )
    # --presets is --preset (tools.benchmark_training's name for its list;
    # before: an unknown flag).
    result = testing_utils.run_main(
        "tools.benchmark_throughput", "--paper_table", "--presets=resnet50"
    )
    assert testing_utils.error_line(result).startswith(
        "ERROR: --preset with --paper_table: "
    ), result.stderr
    # Both names: refused (before: the last one given won, and the other's
    # models were not timed, without a word); an alias given twice is one.
    result = testing_utils.run_main(
        "tools.benchmark_throughput",
        "--preset=resnet50",
        "--presets=assemble_resnet50",
    )
    assert testing_utils.error_line(result) == (
        "ERROR: --presets is another name of --preset: give one of them "
        "(both were given)."
    )
    result = testing_utils.run_main(
        "tools.export_saved_model",
        "--export_dir=unused",
        "--eval_preprocessing=imagenet",
        "--preprocessing=imagenet",
    )
    assert testing_utils.error_line(result) == (
        "ERROR: --eval_preprocessing is another name of --preprocessing: "
        "give one of them (both were given)."
    )
    result = testing_utils.run_main(
        "tools.benchmark_throughput",
        "--paper_table",
        "--presets=resnet50",
        "--presets=resnet50",
    )
    assert testing_utils.error_line(result).startswith(
        "ERROR: --preset with --paper_table: "
    ), result.stderr


def test_run_benchmark_option_errors_name_the_option():
    from assemble_tf.export import throughput_run
    from official.utils.misc.validation import OptionError

    options = throughput_run.ThroughputOptions
    with pytest.raises(OptionError) as e:
        throughput_run.run_benchmark(options(modes=("bf16",), dtype="float16"))
    assert str(e.value).startswith("`modes`=bf16 with `dtype`=float16: ")
    assert e.value.as_flag() == (
        "--modes=bf16 with --dtype=float16: the bf16 modes time bfloat16 "
        "beside float32; drop --dtype (or the bf16 modes)."
    )
    # Before: ignored, the plain path timed.
    with pytest.raises(OptionError) as e:
        throughput_run.run_benchmark(options(modes=("plain",), fold_bn=True))
    assert e.value.as_flag() == (
        "--fold_bn with --modes=plain: the modes name each path (fold_bn, "
        "xla, fold_bn_xla, ...); leave --fold_bn out."
    )
    with pytest.raises(OptionError, match="`jit_compile` with `modes`"):
        throughput_run.run_benchmark(options(modes=("bf16",), jit_compile=True))
    with pytest.raises(OptionError) as e:
        throughput_run.run_benchmark(options(modes=("plain", "fast")))
    assert e.value.as_flag().startswith("--modes=plain,fast: unknown ['fast']")
    with pytest.raises(OptionError, match="`runs`=0 must be at least 1"):
        throughput_run.run_benchmark(options(runs=0))
    # Before: timed twice, and a ratio of the model to itself reported.
    with pytest.raises(OptionError) as e:
        throughput_run.run_benchmark(options(modes=("plain", "plain")))
    assert (
        e.value.as_flag() == "--modes=plain,plain names plain more than once."
    )
    with pytest.raises(OptionError, match="`preset`=resnet50,resnet50 names"):
        throughput_run.run_benchmark(options(preset=("resnet50", "resnet50")))
    with pytest.raises(ValueError, match="'resnet5' is not a preset"):
        throughput_run.run_benchmark(options(preset=("resnet5",)))
    # Before: the first (tracing) call timed, nothing timed, and an
    # output_dir behind a file failed after all the timing.
    with pytest.raises(OptionError, match="`warmup`=0 must be at least 1"):
        throughput_run.run_benchmark(options(warmup=0))
    with pytest.raises(OptionError, match="`image_size`=0 must be at least"):
        throughput_run.run_benchmark(options(image_size=0))
    with pytest.raises(OptionError, match="`preset` is empty"):
        throughput_run.run_benchmark(options(preset=()))
    with pytest.raises(OptionError, match="is a file, not a folder"):
        throughput_run.run_benchmark(options(output_dir=__file__ + "/out"))
    assert throughput_run.selected_modes(options(fold_bn=True)) == ["fold_bn"]
    assert throughput_run.selected_modes(options(jit_compile=True)) == ["xla"]


def test_xla_requests_under_jax_name_the_option_given(monkeypatch):
    from assemble_tf.export import throughput, throughput_run
    from official.utils.misc.validation import OptionError

    monkeypatch.setattr(throughput, "backend", lambda: "jax")
    options = throughput_run.ThroughputOptions
    # Before: "--modes=xla (or --jit_compile)" for a run without --modes.
    with pytest.raises(OptionError) as e:
        throughput_run.validate(options(jit_compile=True))
    assert e.value.as_flag() == (
        "--jit_compile: under KERAS_BACKEND=jax every forward pass is "
        "XLA-compiled already; leave --jit_compile out."
    )
    with pytest.raises(OptionError) as e:
        throughput_run.validate(options(modes=("plain", "fold_bn_xla")))
    assert e.value.as_flag() == (
        "--modes=plain,fold_bn_xla: under KERAS_BACKEND=jax every mode is "
        "XLA-compiled already; use plain or fold_bn."
    )
    assert throughput_run.validate(options(modes=("fold_bn",))) == ["fold_bn"]


# bfloat16 serving: tools.export_saved_model --precision=bfloat16.

TINY_R50 = {"base_width": 8, "block_sizes": (1, 1, 1, 1), "num_classes": 3}


def _bfloat16_pair(seed=2):
    from assemble_tf.export import precision

    model = build_model("resnet50", **TINY_R50)
    testing_utils.randomize_bn(model, seed=seed)
    return model, precision.bfloat16_copy(
        model, lambda: build_model("resnet50", **TINY_R50)
    )


@pytest.mark.slow  # over 2 s on 2 cores
def test_bfloat16_copy_computes_in_bfloat16_with_float32_ends():
    import keras

    from assemble_tf.export import precision

    model, bf16 = _bfloat16_pair()
    assert bf16.dtype_policy.name == "mixed_bfloat16"
    assert {v.dtype for v in bf16.weights} == {"float32"}
    conv = bf16.get_layer("stage1_block1_1_conv")
    assert conv.compute_dtype == "bfloat16"
    x = testing_utils.random_images((4, 32, 32, 3), low=-120, high=130)
    out = bf16(x, training=False)
    assert out.dtype == "float32"
    # The classifier computes in float32: logits are no bfloat16 values
    # cast up (before: every one was, in steps of 0.06 - 0.125 at 10 - 30).
    assert bf16.get_layer("head_dense").compute_dtype == "float32"
    rounded = np.asarray(out).astype(tf.bfloat16.as_numpy_dtype)
    assert not np.array_equal(rounded.astype(np.float32), np.asarray(out))
    # The global policy is back to float32 after the build.
    assert keras.config.dtype_policy().name == "float32"
    want = model(x, training=False).numpy()
    rel = np.linalg.norm(out - want, axis=-1) / np.linalg.norm(want, axis=-1)
    assert 0 < rel.max() <= 0.05  # bfloat16 ran, and stayed close
    with pytest.raises(ValueError, match="does not match"):
        precision.bfloat16_copy(
            model, lambda: build_model("resnet50", num_classes=3)
        )


def test_compare_logits_on_hand_made_rows():
    from assemble_tf.export.precision import compare_logits

    got = compare_logits(
        [[4.0, 3.0, 0.0], [0.0, 8.0, 6.0]], [[4.0, 3.0, 0.5], [0.0, 6.0, 8.0]]
    )
    assert got == pytest.approx(
        {
            "count": 2,
            "top1_agreement": 0.5,
            "mean_relative_l2": (0.1 + 0.2 * 2**0.5) / 2,
            "max_relative_l2": 0.2 * 2**0.5,
        }
    )
    with pytest.raises(ValueError, match="one shape"):
        compare_logits([[1.0, 2.0]], [[1.0, 2.0, 3.0]])


@pytest.mark.slow  # over 2 s on 2 cores
def test_reference_check_passes_bfloat16_and_names_what_fails():
    """The check of a bfloat16 export against float32, on the signatures'
    outputs: within the default tolerance; a tighter one names the
    signature, the number and the flag to fall back to."""
    model, bf16 = _bfloat16_pair()
    module = export_lib.ServingModule(bf16, "imagenet_32")
    images = testing_utils.random_images((8, 32, 32, 3), low=-120, high=130)
    jpegs = [
        testing_utils.jpeg_bytes(testing_utils.smooth_image(40, 50, s))
        for s in range(2)
    ]
    results = {
        name: {k: v.numpy() for k, v in fn(tf.constant(x)).items()}
        for name, fn, x in (
            ("preprocessed", module.preprocessed, images),
            ("feature_vector", module.feature_vector, images),
            ("serving_default", module.serving_default, np.array(jpegs)),
        )
    }
    check = verification.ReferenceCheck(model)
    measured = verification.check_reference(
        check, results, images, jpegs, "imagenet_32"
    )
    assert set(measured) == {
        "preprocessed",
        "feature_vector",
        "serving_default",
    }
    for m in measured.values():
        assert 0 < m["mean_relative_l2"] <= check.max_mean_relative_l2
    assert measured["preprocessed"]["count"] == 8
    tight = verification.ReferenceCheck(model, max_mean_relative_l2=1e-6)
    with pytest.raises(ValueError) as info:
        verification.check_reference(
            tight, results, images, jpegs, "imagenet_32"
        )
    message = str(info.value)
    for part in (
        "preprocessed: mean relative L2 of logits",
        "feature_vector: mean relative L2 of features",
        "> 1e-06",
        "`precision`=float32",
    ):
        assert part in message, message
    assert "--precision=float32" in info.value.as_flag()
    strict = verification.ReferenceCheck(model, min_top1_agreement=1.5)
    with pytest.raises(ValueError, match="top-1 agreement .* < 1.5 on 8"):
        verification.check_reference(
            strict, results, images, jpegs, "imagenet_32"
        )


def _bfloat16_ops(path):
    """Op types that compute in bfloat16 anywhere in the SavedModel."""
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as f:
        proto.ParseFromString(f.read())
    found = set()
    for function in proto.meta_graphs[0].graph_def.library.function:
        for node in function.node_def:
            if node.attr["T"].type == tf.bfloat16.as_datatype_enum:
                found.add(node.op)
    return found


@pytest.mark.slow
def test_bfloat16_export_binary_keeps_float32_signatures(tmp_path, monkeypatch):
    """--precision=bfloat16: the graph convolves in bfloat16, every
    signature keeps its float32 / string inputs and float32 outputs, is
    compared with float32 on 32 images (as the docs say), and saved_model_cli
    run (the C++ loader) matches the float32 model within the bfloat16
    tolerance. Quietly: no DeprecationWarning or TensorFlow deprecation log
    from our own loader call, no Keras "structure of `inputs`" warning."""
    import json
    import logging
    import warnings

    from tensorflow.python.util import deprecation

    model, _ = _bfloat16_pair(seed=4)
    weights = str(tmp_path / "m.weights.h5")
    model.save_weights(weights)
    export_dir = tmp_path / "sm" / "1"
    # TF logs each deprecation once per process: forget earlier ones.
    monkeypatch.setattr(deprecation, "_PRINTED_WARNING", {})
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    tf_logger = logging.getLogger("tensorflow")
    tf_logger.addHandler(handler)
    # In process (the binary's own process: the test above); the C++
    # loader below runs in one of its own.
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = testing_utils.run_main(
                "tools.export_saved_model",
                *_tiny_export_args(weights),
                "--precision=bfloat16",
                f"--export_dir={export_dir}",
            )
    finally:
        tf_logger.removeHandler(handler)
    assert result.returncode == 0, result.stderr[-3000:]
    messages = [str(w.message) for w in caught] + [
        r.getMessage() for r in records
    ]
    noisy = [
        m
        for m in [*messages, *result.stderr.splitlines()]
        if "deprecated" in m or "structure of `inputs`" in m
    ]
    assert not noisy, noisy
    assert not [w for w in caught if issubclass(w.category, DeprecationWarning)]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["precision"] == "bfloat16"
    # Reloaded vs in-memory: the same bfloat16 graph, no fusion to differ.
    assert max(out["max_abs_diff"].values()) <= 1e-4
    vs = out["vs_float32"]
    assert vs["tolerance"] == {
        "max_mean_relative_l2": 0.15,
        "min_top1_agreement": 0.8,
    }
    for name in ("preprocessed", "feature_vector", "serving_default"):
        assert vs[name]["count"] == 32, name
        assert 0 < vs[name]["mean_relative_l2"] <= 0.15, name
    for name in ("preprocessed", "serving_default"):  # logits
        assert vs[name]["top1_agreement"] >= 0.8, name
    # The convolutions in bfloat16, the classifier's MatMul in float32.
    bf16_ops = _bfloat16_ops(str(export_dir))
    assert "Conv2D" in bf16_ops and "MatMul" not in bf16_ops
    loaded = tf.saved_model.load(str(export_dir))
    dtypes = {
        name: (
            {k: s.dtype for k, s in fn.structured_input_signature[1].items()},
            {k: s.dtype for k, s in fn.structured_outputs.items()},
        )
        for name, fn in loaded.signatures.items()
    }
    logits = {"classes": tf.int64, "probabilities": tf.float32}
    logits.update(logits=tf.float32, class_names=tf.string)
    assert dtypes == {
        "serving_default": ({"images": tf.string}, logits),
        "preprocessed": ({"images": tf.float32}, logits),
        "feature_vector": ({"images": tf.float32}, {"features": tf.float32}),
    }
    images = testing_utils.random_images((4, 32, 32, 3), low=-120, high=130)
    np.save(tmp_path / "x.npy", images)
    run = testing_utils.saved_model_cli_run(
        export_dir, "preprocessed", "images=x.npy", tmp_path / "out", tmp_path
    )
    assert run.returncode == 0, run.stderr[-3000:]
    got = np.load(tmp_path / "out" / "logits.npy")
    assert got.dtype == np.float32
    want = model(images, training=False).numpy()
    rel = np.linalg.norm(got - want, axis=-1) / np.linalg.norm(want, axis=-1)
    assert 0 < rel.mean() <= 0.15
    np.testing.assert_array_equal(
        np.load(tmp_path / "out" / "classes.npy"), got.argmax(-1)
    )


@pytest.mark.slow  # exports
def test_bfloat16_export_of_a_bn_folded_model(tmp_path):
    """Where the CPU has bfloat16 instructions (AVX512_BF16, AMX), the
    reloaded graph fuses conv + bias + ReLU of a folded model and rounds
    differently in bfloat16 than the in-memory one; on AVX2 alone it does
    not. The bfloat16 tolerance (a mean relative L2 of 0.05) accepts the
    export on either; a float32 tolerance refuses it, and leaves nothing,
    exactly where the reload differs."""
    from assemble_tf.export import precision
    from assemble_tf.export.optimize import fold_bn_graph, folded_copy

    model, _ = _bfloat16_pair()
    folded, _ = folded_copy(model)
    bf16 = precision.bfloat16_copy(
        folded, lambda: fold_bn_graph(build_model("resnet50", **TINY_R50))
    )
    check = verification.ReferenceCheck(model)
    diffs = export_lib.export_saved_model(
        bf16, str(tmp_path / "1"), "imagenet_32", reference=check
    )
    assert check.measured["preprocessed"]["mean_relative_l2"] <= 0.15
    assert check.measured["preprocessed"]["top1_agreement"] >= 0.8
    strict = tmp_path / "strict"
    if max(diffs.values()) > 1e-4:  # the default atol: the fused reload
        with pytest.raises(ValueError, match="differs from the model"):
            export_lib.export_saved_model(
                bf16, str(strict), "imagenet_32", rtol=0.0
            )
        assert os.listdir(tmp_path) == ["1"]
    else:
        export_lib.export_saved_model(
            bf16, str(strict), "imagenet_32", rtol=0.0
        )
        assert sorted(os.listdir(tmp_path)) == ["1", "strict"]


def test_the_bfloat16_reload_check_is_a_mean_relative_l2():
    """What a bfloat16 export's reload check measures, on hand-made
    outputs. Before: max |difference| <= 5 % of the largest output, which
    refused the documented `--precision=bfloat16 --fold_bn` export of a
    trained tiny run (one image of 32 off by 12 % of the largest logit, a
    mean relative L2 of 0.008, every class agreeing)."""
    expected = np.tile([[100.0, -50.0, 10.0, 0.0]], (32, 1))
    expected[0] = [1448.0, -700.0, 300.0, 5.0]  # the largest output
    expected[1] = [900.0, -400.0, 200.0, 0.0]
    one_off = expected.copy()
    one_off[1] += [0.0, 180.0, 0.0, 0.0]  # 12 % of 1448: 18 % of its image
    assert verification.reload_failure(expected, one_off, 1e-4, 0.05) is None
    everywhere = expected * 1.06  # 6 % on every image
    assert verification.reload_failure(expected, everywhere, 1e-4, 0.05) == (
        "mean relative L2 0.06 > 0.05"
    )
    # One image wholly wrong, whose 1/32 share of the mean would pass.
    broken = expected.copy()
    broken[7] = -broken[7]
    assert verification.reload_failure(expected, broken, 1e-4, 0.05) == (
        "image 7: relative L2 2 > 0.5"
    )
    # An all-zero row is measured against the batch's scale, not 1e-4.
    dark = expected.copy()
    dark[9] = 0.0
    noisy = dark.copy()
    noisy[9] = 0.01
    assert verification.reload_failure(dark, noisy, 1e-4, 0.05) is None
    # float32 (rtol 0): any number beyond atol.
    assert verification.reload_failure(expected, expected, 1e-4, 0.0) is None
    nudged = expected.copy()
    nudged[5, 2] += 2e-4
    assert verification.reload_failure(expected, nudged, 1e-4, 0.0) == (
        "max |difference| 0.0002 > 0.0001"
    )


def test_bf16_rows_get_a_ratio_to_float32_and_to_keras():
    from assemble_tf.export import throughput

    def row(preset, mode, rate, size=224):
        return {
            "preset": preset,
            "mode": mode,
            "images_per_sec": rate,
            "image_size": size,
        }

    rows = throughput.add_ratios(
        [
            row("resnet50", "plain", 100.0),
            row("resnet50", "bf16", 160.0),
            row("resnet50", "fold_bn", 110.0),
            row("resnet50", "fold_bn_bf16", 165.0),
            row("keras_resnet50", "plain", 95.0),
            row("assemble_resnet50", "plain", 40.0, 256),
            row("keras_resnet50", "plain", 80.0, 256),
        ]
    )
    assert [r.get("ratio_vs_float32") for r in rows] == [
        None,
        1.6,
        None,
        1.5,
        None,
        None,
        None,
    ]
    # Against the reference at its own size; against R50 in its mode.
    assert rows[5]["ratio_vs_keras_resnet50"] == 0.5
    assert rows[5]["ratio_vs_r50"] == 0.4
    assert rows[1]["ratio_vs_keras_resnet50"] == pytest.approx(160 / 95)
    assert rows[1]["ratio_vs_r50"] == 1.0  # our R50 in the same mode
    # With the runs' rates, the median of the paired ratios (run r of
    # each, timed in one round), not the ratio of the medians (before:
    # here 30 / 80 = 0.375 instead of 0.5).
    paired = throughput.add_ratios(
        [
            dict(
                row("resnet50", "plain", 80.0),
                images_per_sec_per_run=[100.0, 80.0, 40.0],
            ),
            dict(
                row("table2_c5", "plain", 30.0),
                images_per_sec_per_run=[50.0, 30.0, 20.0],
            ),
        ]
    )
    assert paired[1]["ratio_vs_r50"] == pytest.approx(0.5)  # .5 .375 .5


def test_the_plots_tick_labels_do_not_overlap():
    """Before: "assemble_resnet50 (fold_bn_bf16)" ran over its neighbours'
    names in benchmark.png."""
    import matplotlib.pyplot as plt

    from assemble_tf.export import throughput

    names = [
        f"{p} ({m})"
        for p in ("resnet50", "assemble_resnet50")
        for m in ("plain", "fold_bn", "bf16", "fold_bn_bf16")
    ] + ["keras_resnet50"]
    rows = [
        {
            "model": name,
            "images_per_sec": 10.0 + i,
            "dtype": "float32",
            "device": "CPU",
            "batch_size": 32,
            "ratio_vs_r50": 1.0,
            "paper_ratio_vs_r50": 0.5,
        }
        for i, name in enumerate(names)
    ]
    fig = throughput.figure(rows)
    try:
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        for ax in fig.axes:
            boxes = [
                t.get_window_extent(renderer) for t in ax.get_xticklabels()
            ]
            assert len(boxes) == len(names)
            for a, b in zip(boxes, boxes[1:], strict=False):
                assert not a.overlaps(b), (a, b)
    finally:
        plt.close(fig)


def test_markdown_names_the_device_and_each_rows_dtype():
    """A table pasted elsewhere still says where it was measured, and a
    bf16 mode's row says bfloat16 beside the float32 rows (before: neither
    the device, the backend, the batch nor any dtype was in the table)."""
    from assemble_tf.export import throughput

    shared = {"device": "CPU: Xeon", "backend": "jax", "batch_size": 8}
    rows = [
        {"model": "r50 (plain)", "dtype": "float32", "images_per_sec": 10.0},
        {"model": "r50 (bf16)", "dtype": "bfloat16", "images_per_sec": 16.0},
    ]
    rows[1]["ratio_vs_float32"] = 1.6
    table = throughput.markdown_table([dict(r, **shared) for r in rows])
    assert table.splitlines() == [
        "Inference throughput on CPU: Xeon (jax backend), batch 8.",
        "",
        "| model | dtype | image_size | images_per_sec | ratio_vs_r50 | "
        "paper_ratio_vs_r50 | ratio_vs_keras_resnet50 | ratio_vs_float32 | "
        "gflops | peak_fraction |",
        "|---|---|---|---|---|---|---|---|---|---|",
        "| r50 (plain) | float32 | - | 10 | - | - | - | - | - | - |",
        "| r50 (bf16) | bfloat16 | - | 16 | - | - | - | 1.6 | - | - |",
    ]


@pytest.mark.slow
def test_throughput_benchmark_bf16_mode_against_keras_float32(tmp_path):
    rows = _benchmark_rows(
        tmp_path,
        "--preset=resnet50",
        "--modes=plain,bf16",
        "--compare=keras_resnet50",
    )
    assert [(r["model"], r["dtype"]) for r in rows] == [
        ("resnet50 (plain)", "float32"),
        ("resnet50 (bf16)", "bfloat16"),
        ("keras_resnet50", "float32"),
    ]
    bf16 = rows[1]

    def paired(a, b):  # the median of the runs' ratios
        pairs = zip(
            a["images_per_sec_per_run"],
            b["images_per_sec_per_run"],
            strict=True,
        )
        return statistics.median(x / y for x, y in pairs)

    assert len(bf16["images_per_sec_per_run"]) == 2  # --runs in the file
    assert bf16["images_per_sec"] == pytest.approx(
        statistics.median(bf16["images_per_sec_per_run"]), rel=1e-4
    )
    assert bf16["ratio_vs_float32"] == pytest.approx(paired(bf16, rows[0]))
    assert bf16["ratio_vs_keras_resnet50"] == pytest.approx(
        paired(bf16, rows[2])
    )
    assert bf16["matmul_peak_gflops"] != rows[0]["matmul_peak_gflops"]
    table = (tmp_path / "benchmark.md").read_text()
    assert "ratio_vs_float32" in table.splitlines()[2]
    # The first line's precision (before: "float32" beside bf16 rows).
    from assemble_tf.export import throughput_run

    assert throughput_run._precisions("float32", ("plain", "bf16")) == (
        "modes plain, bf16 (bf16 ones in bfloat16)"
    )
    assert throughput_run._precisions("float16", ()) == "float16"
    bad = testing_utils.run_main(
        "tools.benchmark_throughput",
        "--smoke",
        "--modes=bf16",
        "--dtype=float16",
    )
    assert bad.returncode != 0
    assert "--dtype=float16" in bad.stderr and "bf16" in bad.stderr


# Issue 24 items 4 and 9: bad serving inputs, dead and racing exports,
# warnings of our own code, the bfloat16 check's image count.


def _encoded(image_format, size=(40, 48)):
    """A smooth image encoded by PIL as `image_format` ("BMP", "WEBP")."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(testing_utils.smooth_image(*size, 5)).save(
        buffer, image_format
    )
    return buffer.getvalue()


@pytest.mark.slow  # exports
def test_bad_inputs_fail_clearly_at_the_signature(tmp_path):
    """BMP / WebP bytes, an empty batch and crops of another size fail with
    InvalidArgumentError at the signature, saying what it takes (no raw
    bytes in the message, no error from inside the model)."""
    path = str(tmp_path / "1")
    export_lib.export_saved_model(
        testing_utils.serving_model(), path, "imagenet_32"
    )
    sigs = tf.saved_model.load(path).signatures
    jpeg = testing_utils.jpeg_bytes(testing_utils.smooth_image(40, 50, 1))
    for image_format in ("BMP", "WEBP"):
        data = [jpeg, _encoded(image_format)]
        with pytest.raises(tf.errors.InvalidArgumentError) as info:
            sigs["serving_default"](images=tf.constant(data))
        message = info.value.message
        assert "not a JPEG or PNG image" in message, message
        assert "first such image:] [1]" in message, message
        assert "\\x" not in message and "RIFF" not in message, message
    with pytest.raises(
        tf.errors.InvalidArgumentError, match="batch of images is empty"
    ):
        sigs["serving_default"](images=tf.constant([], tf.string))
    crops = testing_utils.random_images((2, 64, 64, 3))
    for name in ("preprocessed", "feature_vector"):
        with pytest.raises(tf.errors.InvalidArgumentError) as info:
            sigs[name](images=tf.constant(crops))
        message = info.value.message
        assert f"{name} takes float32 crops of shape [N, 32, 32, 3]" in (
            message
        ), message
        assert "imagenet_32" in message, message
        with pytest.raises(
            tf.errors.InvalidArgumentError,
            match=f"{name}: the batch of images is empty",
        ):
            sigs[name](images=tf.zeros((0, 32, 32, 3)))
    # NaN / Inf crops: the exported graph's fused convolutions (Grappler's
    # remapper) turned them into finite, confident logits.
    good = testing_utils.random_images((3, 32, 32, 3))
    for value in (np.nan, np.inf):
        bad = good.copy()
        bad[2, 5, 5, 0] = value
        for name in ("preprocessed", "feature_vector"):
            with pytest.raises(
                tf.errors.InvalidArgumentError,
                match=re.escape(
                    f"{name}: the crops hold NaN or Inf values; index of the "
                    "first such image:] [2]"
                ),
            ):
                sigs[name](images=tf.constant(bad))
    # Finite crops far off the scale: values of 1e38 overflowed inside the
    # network, into NaN logits (a class and NaN probabilities) or, in a
    # trained plain export, finite confident ones.
    for value in (3e38, -1001.0):
        bad = good.copy()
        bad[1, 0, 0, 1] = value
        for name in ("preprocessed", "feature_vector"):
            with pytest.raises(tf.errors.InvalidArgumentError) as info:
                sigs[name](images=tf.constant(bad))
            assert (
                f"{name}: the crops are off the input scale; the image at "
                f"index] [1] [reaches a magnitude of] [{abs(value):g}] [(more "
                "than 1,000); crops are RGB on the 0-255 scale minus the "
                "ImageNet mean (magnitudes up to 152)"
            ) in info.value.message, info.value.message
    edge = good.copy()
    edge[0, 0, 0, 0] = -1000.0
    assert np.isfinite(sigs["preprocessed"](images=edge)["logits"]).all()
    # Outputs that are not finite all the same (weights that are not):
    # named with the image's largest crop value.
    loaded = tf.saved_model.load(path)  # keeps the variables alive
    served = loaded.signatures["preprocessed"]
    (bias,) = [v for v in served.variables if "head_dense/bias" in v.name]
    bias.assign(np.full(bias.shape, np.nan, np.float32))
    with pytest.raises(tf.errors.InvalidArgumentError) as info:
        served(images=tf.constant(edge))
    assert (
        "preprocessed: the network outputs are not finite for the image at "
        "index] [0] [whose crop values reach a magnitude of] [1000]"
    ) in info.value.message, info.value.message
    # A decompression bomb: a PNG whose header says 10,000 x 9,000 pixels
    # (a 187 KB PNG of 8,000 x 8,000 took 1.9 GB) is refused from its
    # header, before anything is decoded.
    header = struct.pack(">II", 10_000, 9_000) + b"\x08\x02\x00\x00\x00"
    bomb = export_lib.PNG_MAGIC + b"\x00\x00\x00\x0dIHDR" + header
    with pytest.raises(tf.errors.InvalidArgumentError) as info:
        sigs["serving_default"](images=tf.constant([jpeg, bomb + b"\0" * 64]))
    assert (
        "serving_default: image] [1] [is] [10000] [x] [9000] [pixels (width "
        "x height), more than the 89,478,485 this export decodes; send it "
        "resized" in info.value.message
    ), info.value.message
    size = tf.function(preprocessing.image_size_from_header)
    png = tf.io.encode_png(testing_utils.smooth_image(30, 70, 2))
    assert size(png).numpy().tolist() == [30, 70]  # (height, width)
    assert size(tf.constant(jpeg)).numpy().tolist() == [40, 50]
    out = sigs["serving_default"](images=tf.constant([jpeg]))
    assert out["logits"].shape == (1, 3)  # good inputs still pass
    out = sigs["preprocessed"](images=tf.constant(good))
    assert np.isfinite(out["logits"].numpy()).all()
    # Another rank through the exported [N] signature, between good
    # batches: the signature's own message (how the ops after the check
    # wait for it: test_the_inputs_are_read_only_through_their_checks).
    for _ in range(3):
        sigs["serving_default"](images=tf.constant([jpeg, jpeg]))
        for bad in (tf.constant(jpeg), tf.constant([[jpeg], [jpeg]])):
            with pytest.raises(tf.errors.InvalidArgumentError) as info:
                sigs["serving_default"](images=bad)
            assert "takes a batch of encoded images" in info.value.message


def test_inputs_of_another_rank_are_named():
    """TF Serving's session feeds any shape, past the signature's own
    check: one image without its batch axis, or a scalar string, is named
    (before: "Incompatible shapes: [3] vs. [2]" and "ConcatOp: Can't
    concatenate scalars")."""
    module = export_lib.ServingModule(
        testing_utils.serving_model(), "imagenet_32"
    )

    # Traced for any shape, as the session runs the exported graph.
    # (No AutoGraph: in a full run it mistook the function's source for
    # another and called ServingModule.signatures.)
    @tf.function(
        input_signature=[tf.TensorSpec(None, tf.float32)], autograph=False
    )
    def check(images):
        return module._check_crops(images, "preprocessed")

    for shape in ((32, 32, 3), (1, 1, 32, 32, 3), ()):
        with pytest.raises(tf.errors.InvalidArgumentError) as info:
            check(tf.zeros(shape))
        message = info.value.message
        assert (
            "preprocessed takes float32 crops of shape [N, 32, 32, 3] (the "
            "eval size of imagenet_32); got shape] [" in message
        ), message
    assert check(tf.zeros((2, 32, 32, 3))).shape == (
        2,
        32,
        32,
        3,
    )
    check_bytes = tf.function(
        export_lib.check_encoded_images,
        input_signature=[tf.TensorSpec(None, tf.string)],
        autograph=False,
    )
    jpeg = testing_utils.jpeg_bytes(testing_utils.smooth_image(40, 50, 1))
    for images in (tf.constant(jpeg), tf.constant([[jpeg], [jpeg]])):
        with pytest.raises(tf.errors.InvalidArgumentError) as info:
            check_bytes(images)
        assert (
            "serving_default takes a batch of encoded images: string [N], "
            "one JPEG or PNG each; got shape" in info.value.message
        ), info.value.message
    assert check_bytes(tf.constant([jpeg])).shape == (1,)


def test_the_inputs_are_read_only_through_their_checks():
    """The ops after serving_default's input checks read the batch through
    a cond: they cannot run on a batch the checks refuse. With control
    dependencies alone (a Reshape, Size and Identity read the input),
    Grappler removed the Reshape ([None] -> [-1]) they hung on, and on
    another rank its followers ran, raced the check and now and then
    failed first ("ConcatOp: Can't concatenate scalars")."""

    def readers(fn, spec):
        graph = (
            tf.function(fn, input_signature=[spec], autograph=False)
            .get_concrete_function()
            .graph
        )
        (images,) = graph.inputs
        return sorted(op.type for op in images.consumers())

    string = tf.TensorSpec([None], tf.string)
    assert readers(export_lib.check_encoded_images, string) == ["If", "Shape"]


def test_preprocessed_converts_to_tflite_with_its_outputs():
    """TensorFlow Lite, another consumer of the export: `preprocessed`
    (float crops; the bytes signature decodes JPEGs, which TFLite has
    not) converts with its checks, and gives the model's logits and class
    names. (Its checks are control dependencies: after a cond the
    converter left the model's Conv2D to TF Select and failed.)"""
    import warnings

    names = ["cat", "dog", "eel"]
    model = testing_utils.serving_model()
    module = export_lib.ServingModule(model, "imagenet_32", class_names=names)
    function = module.preprocessed.get_concrete_function()
    tflite = tf.lite.TFLiteConverter.from_concrete_functions(
        [function], module
    ).convert()
    with warnings.catch_warnings():  # tf.lite.Interpreter's deprecation
        warnings.simplefilter("ignore")
        interpreter = tf.lite.Interpreter(model_content=tflite)
    images = testing_utils.random_images((2, 32, 32, 3), low=-120, high=130)
    out = interpreter.get_signature_runner()(images=images)
    want = model(images, training=False).numpy()
    np.testing.assert_allclose(out["logits"], want, rtol=1e-4, atol=1e-4)
    assert [n.decode() for n in out["class_names"]] == [
        names[i] for i in want.argmax(-1)
    ]


def _dead_pid():
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.mark.slow  # exports
def test_next_export_removes_temp_folders_of_dead_exports(tmp_path):
    """A `kill -9`ed export leaves `.export_<pid>@<host>.*` beside the
    target; the next export into that parent removes it (and says so),
    keeping those of live processes and other hosts."""
    import socket

    host = socket.gethostname()
    parent = tmp_path / "serving"
    dead = parent / f".export_{_dead_pid()}@{host}.k9x_a1"
    live = parent / f".export_{os.getppid()}@{host}.live01"
    remote = parent / f".export_{_dead_pid()}@elsewhere.example.r3m0t3"
    for folder in (dead, live, remote):
        (folder / "variables").mkdir(parents=True)
        (folder / "saved_model.pb").write_bytes(b"partial")
    lines = []
    export_lib.export_saved_model(
        testing_utils.serving_model(),
        str(parent / "1"),
        "imagenet_32",
        log=lines.append,
    )
    assert not dead.exists()
    assert lines == [f"Removed {dead}, the temporary folder of a dead export."]
    assert sorted(os.listdir(parent)) == sorted(["1", live.name, remote.name])


def test_an_export_dir_under_a_file_is_named(tmp_path):
    """A file where the export's parent folder must be: named as the flag,
    by the binary's options before the model loads and by the library
    (before: "[Errno 17] File exists: <parent>", which sent users to
    --overwrite)."""
    from assemble_tf.export import saved_model_run

    (tmp_path / "afile").write_text("x")
    target = str(tmp_path / "afile" / "1")
    options = saved_model_run.ExportOptions(
        export_dir=target, preset="resnet50"
    )
    with pytest.raises(ValueError) as raised:
        saved_model_run.validate(options)
    expected = (
        f"--export_dir={target} cannot be created: {tmp_path / 'afile'} is a "
        "file, not a folder."
    )
    assert raised.value.as_flag() == expected
    with pytest.raises(ValueError) as raised:
        export_lib.export_saved_model(
            testing_utils.serving_model(), target, "imagenet_32"
        )
    assert raised.value.as_flag() == expected


def test_an_unwritable_parent_is_named_not_the_temporary_folder(
    tmp_path, monkeypatch
):
    """A folder the export cannot write into (a read-only mount, another
    user's folder): the error names the export folder and its parent, not
    the `.export_<pid>@<host>.<random>` folder users never chose."""
    import tempfile

    parent = tmp_path / "serving"

    def refused(prefix, dir):
        raise PermissionError(13, "Permission denied", f"{dir}/{prefix}x1")

    monkeypatch.setattr(tempfile, "mkdtemp", refused)
    with pytest.raises(PermissionError) as raised:
        export_lib.export_saved_model(
            testing_utils.serving_model(), str(parent / "1"), "imagenet_32"
        )
    assert raised.value.errno == 13
    # Found by the up-front check, in the nearest folder that exists.
    assert raised.value.as_flag() == (
        f"--export_dir={parent / '1'} cannot be written: no folder can be "
        f"made in {tmp_path} (Permission denied); choose another "
        "--export_dir."
    )
    assert ".export_" not in str(raised.value)
    # The binary: that line, no traceback (a PermissionError was not among
    # the errors the binaries print as one line).
    weights = tmp_path / "m.weights.h5"
    build_model(
        "resnet50", base_width=8, block_sizes=(1, 1, 1, 1), num_classes=3
    ).save_weights(str(weights))
    result = testing_utils.run_main(
        "tools.export_saved_model",
        *_tiny_export_args(weights),
        f"--export_dir={parent / '1'}",
    )
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == (
        f"ERROR: {raised.value.as_flag()}"
    )
    assert "Traceback" not in result.stderr


@pytest.mark.slow  # exports
def test_export_refuses_a_target_created_meanwhile(tmp_path, monkeypatch):
    """Two exports into one --export_dir without --overwrite: the one that
    renames last fails naming --overwrite, and the first one's export (or
    even an empty folder made meanwhile) stays."""
    target = tmp_path / "serving" / "1"
    verify = verification.verify

    def racing(*args, **kwargs):
        result = verify(*args, **kwargs)
        target.mkdir(parents=True, exist_ok=True)
        if make_file:
            (target / "saved_model.pb").write_bytes(b"the other export")
        return result

    monkeypatch.setattr(verification, "verify", racing)
    model = testing_utils.serving_model()
    for make_file in (True, False):
        with pytest.raises(FileExistsError, match="pass `overwrite`"):
            export_lib.export_saved_model(model, str(target), "imagenet_32")
        assert os.listdir(tmp_path / "serving") == ["1"]  # no temp left
        if make_file:
            assert (target / "saved_model.pb").read_bytes() == (
                b"the other export"
            )
        else:
            assert os.listdir(target) == []
        shutil.rmtree(target)
    make_file = True
    diffs = export_lib.export_saved_model(
        model, str(target), "imagenet_32", overwrite=True
    )
    assert (target / "saved_model.pb").read_bytes() != b"the other export"
    assert max(diffs.values()) <= 1e-4


@pytest.mark.slow  # over 2 s on 2 cores
def test_export_of_a_run_applies_or_refuses_the_model_flags(
    tmp_path, monkeypatch
):
    """tools.export_saved_model --model_dir with --model_overrides or
    --num_classes: before, both were ignored without a word (the export
    kept the run's base width and head)."""
    from assemble_tf import config as config_lib
    from assemble_tf.export import saved_model_run
    from official.utils.misc.validation import OptionError

    run = tmp_path / "run"
    config = config_lib.make_config(
        str(run),
        "resnet50",
        {
            "model": {"base_width": 8, "block_sizes": (1, 1, 1, 1)},
            "data": {"synthetic": True, "num_classes": 3},
        },
    )
    run.mkdir()
    config.to_json(str(run / "config.json"))
    model = build_model(
        "resnet50", base_width=8, block_sizes=(1, 1, 1, 1), num_classes=3
    )
    weights = str(tmp_path / "w.weights.h5")
    model.save_weights(weights)

    def load(**kwargs):
        return saved_model_run.load_model(
            saved_model_run.ExportOptions(
                export_dir=str(tmp_path / "x"),
                model_dir=str(run),
                weights=weights,
                **kwargs,
            )
        )

    assert load().model.output_shape == (None, 3)
    with pytest.raises(OptionError) as e:
        load(model_overrides={"bogus": 3})
    assert e.value.as_flag().startswith(
        "--model_overrides sets bogus, not an option of a run's model"
    )
    for kwargs in (
        {"num_classes": 10},
        {"model_overrides": '{"num_classes": 10}'},
    ):
        with pytest.raises(OptionError) as e:
            load(**kwargs)
        assert e.value.as_flag() == (
            "--num_classes comes from the run's config.json with "
            "--model_dir; drop it (or num_classes in --model_overrides)."
        )
    with pytest.raises(ValueError, match="base_width|shape|holds another"):
        load(model_overrides={"base_width": 16})  # the weights do not fit
    gem = load(model_overrides={"pooling": "gem"}).model  # applied
    assert type(gem.get_layer("head_pool")).__name__ == "GeMPooling2D"
    # Crops far from the training ones get a warning, as in tools.train
    # (before: a 224-px run exported for 32-px crops without a word).
    assert load().image_size == config.data.image_size == 224
    lines = []

    def stop(*args):
        raise RuntimeError("stopped before the export")

    monkeypatch.setattr(saved_model_run, "serving_model", stop)
    for crop, warned in (("imagenet_32", True), ("imagenet_128", False)):
        lines.clear()
        with pytest.raises(RuntimeError, match="stopped"):
            saved_model_run.export(
                saved_model_run.ExportOptions(
                    export_dir=str(tmp_path / "x" / "1"),
                    model_dir=str(run),
                    weights=weights,
                    preprocessing=crop,
                ),
                log=lines.append,
            )
        assert (
            "WARNING: `preprocessing`=imagenet_32 serves 32-px crops of a "
            "model trained on 224-px ones; set `preprocessing` to "
            "imagenet_224 (or a size near the training one)." in lines
        ) is warned
    # A preset with weights: the size is the preset's, said so (before:
    # no word at all).
    lines.clear()
    with pytest.raises(RuntimeError, match="stopped"):
        saved_model_run.export(
            saved_model_run.ExportOptions(
                export_dir=str(tmp_path / "x" / "1"),
                preset="resnet50",
                weights=weights,
                num_classes=3,
                model_overrides={"base_width": 8, "block_sizes": [1, 1, 1, 1]},
                preprocessing="imagenet_32",
            ),
            log=lines.append,
        )
    assert (
        "WARNING: `preprocessing`=imagenet_32 serves 32-px crops, and "
        "resnet50 trains on 224-px ones: set `preprocessing` to imagenet_224 "
        "unless "
        "these weights were trained near 32 px."
    ) in lines


def test_a_crop_a_big_little_model_cannot_take_is_named():
    """tools.export_saved_model --preprocessing=imagenet_48 of a Big-Little
    model: before, a Keras call dump from the export's first trace, naming
    no flag, and an empty parent folder."""
    from assemble_tf.export import saved_model_run
    from assemble_tf.models import build_model_to_count
    from official.utils.misc.validation import OptionError

    assemble = build_model_to_count("assemble_resnet50", **TINY)
    with pytest.raises(OptionError) as e:
        saved_model_run.check_crop(assemble, "imagenet_48")
    assert e.value.as_flag() == (
        "--preprocessing=imagenet_48 gives 48-px crops; this Big-Little "
        "model (its big branch at half the resolution) takes multiples of "
        "32, e.g. --preprocessing=imagenet_64."
    )
    saved_model_run.check_crop(assemble, "imagenet_64")
    plain = build_model_to_count("resnet50", base_width=8, num_classes=3)
    saved_model_run.check_crop(plain, "imagenet_48")

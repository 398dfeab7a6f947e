"""SavedModel export: three signatures, verified, atomic."""

import os
import stat

import numpy as np
import pytest
import tensorflow as tf

from assemble_tf.data import preprocessing
from assemble_tf.export import saved_model as export_lib
from assemble_tf.models import build_model
from tests import testing_utils

TINY = {"base_width": 8, "block_sizes": (2, 2, 2, 1), "num_classes": 5}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model = build_model("assemble_resnet50", **TINY)
    testing_utils.randomize_bn(model)  # zero-gamma gives constant logits
    path = str(tmp_path_factory.mktemp("export") / "1")
    diffs = export_lib.export_saved_model(model, path, "imagenet_64")
    return model, path, diffs


@pytest.mark.slow
def test_saved_model_cli_runs_every_signature(exported, tmp_path):
    """The C++ session loader of saved_model_cli (as TF Serving) runs all
    three signatures with the README's commands and matches the model."""
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
    # The README's way to pass encoded images: a numpy bytes array.
    np.save(tmp_path / "jpegs.npy", np.array(jpegs))
    cli = testing_utils.venv_script("saved_model_cli")
    outputs = {}
    for name, npy in (
        ("preprocessed", "x.npy"),
        ("feature_vector", "x.npy"),
        ("serving_default", "jpegs.npy"),
    ):
        out = tmp_path / name
        run = testing_utils.run_command(
            [
                cli,
                "run",
                "--dir",
                path,
                "--tag_set",
                "serve",
                "--signature_def",
                name,
                "--inputs",
                f"images={npy}",
                "--outdir",
                out,
            ],
            cwd=tmp_path,
        )
        assert run.returncode == 0, run.stderr[-3000:]
        outputs[name] = {
            f[:-4]: np.load(out / f) for f in sorted(os.listdir(out))
        }
    want = model(images, training=False).numpy()
    assert np.abs(want).max() > 0.1  # a real comparison, not of zeros
    got = outputs["preprocessed"]
    assert sorted(got) == ["classes", "logits", "probabilities"]
    np.testing.assert_allclose(got["logits"], want, atol=1e-4)
    np.testing.assert_array_equal(got["classes"], want.argmax(-1))
    feats = export_lib.feature_model(model)(images, training=False).numpy()
    np.testing.assert_allclose(
        outputs["feature_vector"]["features"], feats, atol=1e-4
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


def test_export_fails_when_the_session_loader_cannot_run_it(tmp_path):
    """Without its variables tracked as TensorFlow variables, the export
    loads in Python but not under the session loader: the verification
    catches that and nothing is left behind."""
    model = build_model(
        "resnet50", base_width=8, block_sizes=(1, 1, 1, 1), num_classes=3
    )
    module = export_lib.ServingModule(model, "imagenet_32")
    del module.serving_variables
    tf.saved_model.save(module, str(tmp_path / "raw"), module.signatures())
    tf.saved_model.load(str(tmp_path / "raw"))  # the Python loader copes
    x = testing_utils.random_images((1, 32, 32, 3))
    with pytest.raises(tf.errors.FailedPreconditionError, match="variable"):
        export_lib.run_in_session(str(tmp_path / "raw"), {"preprocessed": x})


@pytest.mark.slow  # the exported fixture: a verified export
def test_export_round_trip_through_all_signatures(exported):
    model, path, diffs = exported
    assert set(diffs) == {"serving_default", "preprocessed", "feature_vector"}
    assert max(diffs.values()) <= 1e-4
    loaded = tf.saved_model.load(path)
    assert set(loaded.signatures) == set(diffs)
    images = testing_utils.random_images((3, 64, 64, 3), low=-120, high=130)
    out = loaded.signatures["preprocessed"](images=tf.constant(images))
    expected = model(images, training=False).numpy()
    np.testing.assert_allclose(out["logits"].numpy(), expected, atol=1e-4)
    np.testing.assert_allclose(
        out["probabilities"].numpy().sum(-1), 1.0, rtol=1e-5
    )
    assert out["classes"].dtype == tf.int64
    feats = loaded.signatures["feature_vector"](images=tf.constant(images))
    assert feats["features"].shape == (3, 256)


@pytest.mark.slow  # the exported fixture: a verified export
def test_bytes_signature_matches_the_python_eval_pipeline(exported):
    model, path, _ = exported
    loaded = tf.saved_model.load(path)
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
def test_non_image_bytes_are_rejected_clearly(exported):
    _, path, _ = exported
    loaded = tf.saved_model.load(path)
    with pytest.raises(
        tf.errors.InvalidArgumentError, match="not a JPEG or PNG image"
    ):
        loaded.signatures["serving_default"](
            images=tf.constant([b"this is not an image"])
        )


def test_failed_export_leaves_no_folder(tmp_path, monkeypatch):
    model = build_model(
        "resnet50", base_width=8, block_sizes=(1, 1, 1, 1), num_classes=3
    )
    target = tmp_path / "serving" / "1"

    def broken(*args, **kwargs):
        raise RuntimeError("injected failure during verification")

    monkeypatch.setattr(export_lib, "verify", broken)
    with pytest.raises(RuntimeError, match="injected"):
        export_lib.export_saved_model(model, str(target), "imagenet_32")
    assert not target.exists()
    assert os.listdir(tmp_path / "serving") == []
    target.mkdir(parents=True)
    with pytest.raises(FileExistsError, match="--overwrite"):
        export_lib.export_saved_model(model, str(target), "imagenet_32")


@pytest.mark.slow
def test_export_binary_and_saved_model_cli(tmp_path):
    import json

    model = build_model(
        "resnet50", base_width=8, block_sizes=(1, 1, 1, 1), num_classes=3
    )
    weights = str(tmp_path / "m.weights.h5")
    model.save_weights(weights)
    args = [
        "tools.export_saved_model",
        "--preset=resnet50",
        f"--weights={weights}",
        "--num_classes=3",
        '--model_overrides={"base_width": 8, "block_sizes": [1,1,1,1]}',
        "--preprocessing=imagenet_32",
        f"--export_dir={tmp_path}/sm/1",
    ]
    result = testing_utils.run_binary(*args)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert max(out["max_abs_diff"].values()) <= 1e-4
    again = testing_utils.run_binary(*args)
    assert again.returncode == 2 and "--overwrite" in again.stderr
    cli = testing_utils.venv_script("saved_model_cli")
    if os.path.exists(cli):
        show = testing_utils.run_command(
            [cli, "show", "--dir", f"{tmp_path}/sm/1", "--all"]
        )
        assert show.returncode == 0, show.stderr[-2000:]
        for name in ("serving_default", "preprocessed", "feature_vector"):
            assert f"signature_def['{name}']" in show.stdout


@pytest.mark.parametrize("preset", ["assemble_resnet50", "table7_e4"])
def test_bn_folding_stays_within_tolerance(preset):
    from assemble_tf.export.optimize import fold_batch_norm

    model = build_model(preset, **TINY)
    # Non-trivial BN statistics so the fold is exercised.
    testing_utils.randomize_bn(model, seed=1)
    folded = build_model(preset, fold_bn=True, **TINY)
    count = fold_batch_norm(model, folded)
    bns = [layer for layer in model.layers if layer.name.endswith("_bn")]
    assert count == len(bns) and count > 20
    assert not any(layer.name.endswith("_bn") for layer in folded.layers)
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


@pytest.mark.slow
def test_throughput_benchmark_smoke_writes_valid_json(tmp_path):
    import json

    result = testing_utils.run_binary(
        "tools.benchmark_throughput",
        "--smoke",
        "--preset=resnet50,assemble_resnet50",
        f"--output_dir={tmp_path}",
        env={"KERAS_BACKEND": "tensorflow"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [
        json.loads(line)
        for line in open(tmp_path / "benchmark.jsonl").read().splitlines()
    ]
    assert [r["model"] for r in rows] == ["resnet50", "assemble_resnet50"]
    for r in rows:
        assert r["images_per_sec"] > 0 and r["batch_size"] == 2
        assert r["matmul_peak_gflops"] > 0 and r["device"].startswith("CPU")
        assert r["backend"] == "tensorflow"
    assert rows[0]["ratio_vs_r50"] == 1.0
    assert rows[1]["paper_ratio_vs_r50"] == pytest.approx(312 / 536)
    assert (tmp_path / "benchmark.md").read_text().startswith("| model")
    assert os.path.getsize(tmp_path / "benchmark.png") > 1000

"""bfloat16 vs float32 agreement: hand-made logits and tools.evaluate."""

import dataclasses
import json
import math
import os

import numpy as np
import pytest
import tensorflow as tf

from assemble_tf.evaluation import agreement as A
from tests import testing_utils

# Five images over K = 3 classes: float32 logits, the other precision's.
HAND_LABELS = np.array([0, 1, 1, 2, 0])
HAND_FLOAT32 = np.array(
    [
        [4.0, 3.0, 0.0],  # |.| 5, class 0 (right)
        [0.0, 8.0, 6.0],  # |.| 10, class 1 (right)
        [2.0, 2.0, 0.0],  # a tie: class 0 (wrong)
        [0.0, 0.0, 1.0],  # class 2 (right)
        [0.0, 0.0, 0.0],  # all tied: class 0 (right)
    ]
)
HAND_OTHER = np.array(
    [
        [3.0, 4.0, 0.0],  # flips to 1 (wrong); |diff| sqrt 2: 0.2 sqrt 2
        [0.0, 6.0, 8.0],  # flips to 2 (wrong); |diff| 2 sqrt 2: 0.2 sqrt 2
        [2.0, 2.5, 0.0],  # flips to 1 (right); |diff| 0.5: sqrt 2 / 8
        [0.0, 0.0, 1.0],  # equal: 0
        [0.0, 0.0, 0.0],  # equal (both zero): 0
    ]
)
# top-1 float32 4/5, other 3/5: delta -20 points; same class 2/5;
# mean relative L2 (0.2 + 0.2 + 0.125) sqrt 2 / 5 = 0.105 sqrt 2.
HAND_REPORT = {
    "top1_bfloat16": 0.6,
    "top1_float32": 0.8,
    "top1_delta_points": -20.0,
    "top1_agreement": 0.4,
    "mean_relative_logit_l2": 0.105 * math.sqrt(2),
    "count": 5,
}


def test_precision_agreement_on_hand_made_logits():
    got = A.precision_agreement(HAND_LABELS, HAND_FLOAT32, HAND_OTHER)
    assert list(got) == list(HAND_REPORT)
    assert got == pytest.approx(HAND_REPORT, abs=1e-12)
    same = A.precision_agreement(HAND_LABELS, HAND_FLOAT32, HAND_FLOAT32)
    assert same["top1_agreement"] == 1.0
    assert same["mean_relative_logit_l2"] == 0.0
    assert same["top1_delta_points"] == 0.0
    renamed = A.precision_agreement(
        HAND_LABELS, HAND_FLOAT32, HAND_OTHER, precision="float16"
    )
    assert renamed["top1_float16"] == 0.6
    with pytest.raises(ValueError, match="one shape"):
        A.precision_agreement(HAND_LABELS, HAND_FLOAT32, HAND_OTHER[:, :2])


def test_streaming_agreement_matches_in_uneven_batches():
    metrics = A.AgreementMetrics()
    update = tf.function(metrics.update_state)
    for lo, hi in ((0, 3), (3, 4), (4, 5)):
        update(
            tf.constant(HAND_FLOAT32[lo:hi], tf.float32),
            tf.constant(HAND_OTHER[lo:hi], tf.bfloat16),
        )
    got = metrics.result()
    assert got["count"] == 5
    assert got["top1_agreement"] == 0.4
    assert got["mean_relative_logit_l2"] == pytest.approx(
        0.105 * math.sqrt(2), abs=1e-7
    )
    summary = A.summarize(0.6, 0.8, got)
    assert summary == pytest.approx(HAND_REPORT, abs=1e-7)
    metrics.reset()
    assert metrics.result()["count"] == 0
    assert math.isnan(metrics.result()["top1_agreement"])


def test_zero_reference_logits_against_nonzero_ones_are_infinitely_far():
    zero, one = np.zeros((1, 3)), np.array([[0.0, 1.0, 0.0]])
    got = A.precision_agreement([0], zero, one)
    assert got["mean_relative_logit_l2"] == math.inf
    metrics = A.AgreementMetrics()
    metrics.update_state(zero, one)
    assert metrics.result()["mean_relative_logit_l2"] == math.inf


def test_agreement_evaluator_runs_both_models_on_the_same_batches():
    """Both "models" see each batch once; the report equals the numpy one
    on the same logits, and the markdown carries every number."""
    dataset = tf.data.Dataset.from_tensor_slices(
        (
            HAND_FLOAT32.astype("float32"),
            {"labels": HAND_LABELS.astype("int32")},
        )
    ).batch(2)
    shift = HAND_OTHER - HAND_FLOAT32
    table = tf.constant(shift.astype("float32"))

    def other(x, training=False):
        # Row i of HAND_FLOAT32 -> row i of HAND_OTHER, found by its logits.
        hits = tf.reduce_all(
            tf.equal(x[:, None, :], tf.constant(HAND_FLOAT32, tf.float32)),
            axis=-1,
        )
        return x + tf.gather(table, tf.argmax(hits, axis=-1))

    def float32(x, training=False):
        return tf.identity(x)

    evaluator = A.AgreementEvaluator(
        other, float32, tf.distribute.get_strategy()
    )
    result = evaluator.evaluate(dataset)
    assert result["count"] == 5 and result["top1"] == pytest.approx(0.6)
    assert result["float32"]["top1"] == pytest.approx(0.8)
    assert result["agreement"] == pytest.approx(HAND_REPORT, abs=1e-6)
    again = evaluator.evaluate(dataset)  # reset between evaluations
    assert again["agreement"]["count"] == 5
    text = A.agreement_markdown(result)
    for row in (
        "| top-1 | 0.8000 | 0.6000 |",
        "| top-1 delta (points) | -20.00 |",
        "| top-1 agreement | 0.4000 |",
        "| mean relative logit L2 | 0.1485 |",
        "| images | 5 |",
    ):
        assert row in text, text


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A run folder (config.json + checkpoint) of a base-width-8 R50 on 32
    px JPEGs of 3 colour classes, 10 validation images; no training."""
    import keras

    from assemble_tf import config as config_lib
    from assemble_tf.data import schema
    from assemble_tf.runs.models import build_run_model

    root = tmp_path_factory.mktemp("bf16_eval")
    rng = np.random.default_rng(0)
    palette = np.array([[200, 40, 40], [40, 200, 40], [40, 40, 200]])
    for split, n in (("train", 6), ("validation", 10)):
        examples = []
        for i in range(n):
            img = palette[i % 3] + rng.integers(-30, 30, (32, 32, 3))
            examples.append(
                schema.make_example(
                    testing_utils.jpeg_bytes(np.clip(img, 0, 255)),
                    i % 3,
                    32,
                    32,
                    filename=f"{split}{i}.jpg",
                )
            )
        testing_utils.write_records(root / f"{split}-00000-of-00001", examples)
    run = root / "run"
    config = config_lib.make_config(
        str(run),
        "resnet50",
        {
            "model": {"base_width": 8, "block_sizes": "1,1,1,1"},
            "data": {
                "data_dir": str(root),
                "num_classes": 3,
                "image_size": 32,
                "eval_preprocessing": "imagenet_32",
            },
        },
    )
    config.to_json(str(run / "config.json"))
    keras.utils.set_random_seed(5)
    model = build_run_model(config)
    testing_utils.randomize_bn(model, seed=5)
    tf.train.Checkpoint(model=model).save(str(run / "checkpoints" / "ckpt"))
    return config, model


@pytest.mark.slow
def test_evaluate_tool_reports_bfloat16_agreement(tiny_run, tmp_path):
    config, _ = tiny_run
    result = testing_utils.run_main(
        "tools.evaluate",
        f"--model_dir={config.model_dir}",
        "--precision=bfloat16",
        "--batch_size=4",
        f"--output_dir={tmp_path}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    _check_bfloat16_report(out, tiny_run, tmp_path)
    assert os.path.getsize(out["reliability_png"]) > 1000
    assert "WARNING: eval_preprocessing" not in result.stderr
    assert os.path.isfile(tmp_path / "agreement.md")
    # float32 alone into the same folder: the bfloat16 run's agreement.md
    # goes (before: it stayed beside this eval.json as if its own).
    again = testing_utils.run_main(
        "tools.evaluate",
        f"--model_dir={config.model_dir}",
        f"--output_dir={tmp_path}",
        "--noprogress",  # before: an unknown flag here alone
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert not os.path.exists(tmp_path / "agreement.md")
    assert "evaluating: " in result.stderr
    assert "evaluating" not in again.stderr
    # Crops three times the run's: said (before: top-1 0.10 of the 32-px
    # demo at 224 px, without a word).
    far = testing_utils.run_main(
        "tools.evaluate",
        f"--model_dir={config.model_dir}",
        "--eval_preprocessing=imagenet_96",
        f"--output_dir={tmp_path / 'far'}",
    )
    assert far.returncode == 0, far.stderr[-3000:]
    assert (
        "WARNING: --eval_preprocessing=imagenet_96 evaluates 96-px crops of "
        "a model trained on 32-px ones; set --eval_preprocessing to "
        "imagenet_32"
    ) in far.stderr  # the flag, as typed


def test_evaluate_model_names_the_options():
    from assemble_tf.evaluation import run
    from official.utils.misc.validation import OptionError

    with pytest.raises(OptionError) as e:
        run.evaluate_model(run.EvaluateOptions())
    assert str(e.value) == "Pass `model_dir`, or `preset` with `weights`."
    assert e.value.as_flag() == "Pass --model_dir, or --preset with --weights."
    with pytest.raises(OptionError) as e:
        run.evaluate_model(run.EvaluateOptions(preset="resnet50"))
    assert e.value.as_flag() == (
        "--preset needs --weights (or use --model_dir)."
    )
    with pytest.raises(OptionError) as e:
        run.evaluate_model(run.EvaluateOptions(precision="float16"))
    assert e.value.as_flag() == (
        "--precision='float16': use one of float32, bfloat16."
    )
    # Issue 24 item 8: a missing --weights file is named before h5py reads.
    with pytest.raises(FileNotFoundError) as e:
        run.evaluate_model(
            run.EvaluateOptions(model_dir="/r", weights="/no/w.weights.h5")
        )
    assert e.value.as_flag() == "--weights=/no/w.weights.h5: no such file."
    # Issue 24 item 7: --num_classes does not apply to a run.
    with pytest.raises(OptionError) as e:
        run.evaluate_model(run.EvaluateOptions(model_dir="/r", num_classes=5))
    assert e.value.as_flag() == (
        "--num_classes applies to --preset with --weights; a run's class "
        "count comes from its config.json (--model_dir=/r): leave "
        "--num_classes out."
    )


@pytest.mark.slow  # over 2 s on 2 cores
def test_evaluate_preset_weights_with_model_overrides(
    tiny_run, tmp_path, capfd
):
    """Issue 24 item 8: the .weights.h5 of a non-default width evaluates
    with --preset and --model_overrides (as the other model-source
    binaries), giving the run's own numbers."""
    from assemble_tf.evaluation import run

    config, model = tiny_run
    weights = str(tmp_path / "tiny.weights.h5")
    model.save_weights(weights)
    common = dict(batch_size=4, progress=False)
    want = run.evaluate_model(
        run.EvaluateOptions(
            model_dir=config.model_dir, output_dir=str(tmp_path / "a"), **common
        )
    )
    got = run.evaluate_model(
        run.EvaluateOptions(
            preset="resnet50",
            weights=weights,
            num_classes=3,
            model_overrides='{"base_width": 8, "block_sizes": [1, 1, 1, 1]}',
            data_dir=config.data.data_dir,
            eval_preprocessing="imagenet_32",
            output_dir=str(tmp_path / "b"),
            **common,
        )
    )
    assert got["count"] == want["count"] == 10
    assert got["loss"] == pytest.approx(want["loss"], rel=1e-5)
    assert got["top1"] == want["top1"]
    # The crop is far from the size the preset trains at, which these
    # weights need not share: said as such (before: "of a model trained on
    # 224-px ones" of weights trained at 32 px).
    assert (
        "WARNING: `eval_preprocessing`=imagenet_32 evaluates 32-px crops, "
        "and resnet50 trains on 224-px ones: set `eval_preprocessing` to "
        "imagenet_224 unless these weights were trained near 32 px."
    ) in capfd.readouterr().err


def _check_bfloat16_report(out, tiny_run, tmp_path):
    """tools.evaluate --precision=bfloat16's report on `tiny_run`."""
    from assemble_tf.evaluation.evaluator import Evaluator
    from assemble_tf.runs import inputs

    config, model = tiny_run
    assert out["precision"] == "bfloat16" and out["count"] == 10
    a = out["agreement"]
    assert list(a) == list(HAND_REPORT)
    assert a["count"] == 10 and a["top1_bfloat16"] == out["top1"]
    assert a["top1_float32"] == out["float32"]["top1"]
    assert a["top1_delta_points"] == pytest.approx(
        100 * (out["top1"] - out["float32"]["top1"])
    )
    assert 0.0 <= a["top1_agreement"] <= 1.0
    # bfloat16 really ran (not float32 twice), within its tolerance.
    assert 0.0 < a["mean_relative_logit_l2"] <= 0.15
    # The float32 half is the plain float32 evaluation of the checkpoint.
    evaluator = Evaluator(model, tf.distribute.get_strategy())
    want = evaluator.evaluate(
        evaluator.dataset(inputs.input_config(config, is_training=False))
    )
    assert out["float32"]["top1"] == pytest.approx(want["top1"], abs=1e-9)
    assert out["float32"]["loss"] == pytest.approx(want["loss"], rel=1e-5)
    text = open(out["agreement_md"]).read()
    assert out["agreement_md"] == os.path.join(tmp_path, "agreement.md")
    assert "| top-1 agreement |" in text and "| images | 10 |" in text
    saved = json.load(open(out["eval_json"]))
    assert saved["agreement"] == a and "reliability" in saved


def test_data_of_other_classes_than_the_runs_is_refused(tiny_run, tmp_path):
    """Before: tools.evaluate on another dataset reported top-1 0.0 (or a
    warning about labels out of range) and exited 0."""
    import dataclasses

    from assemble_tf.data import metadata
    from assemble_tf.evaluation import run
    from assemble_tf.runs import loading
    from official.utils.misc.validation import OptionError

    config, _ = tiny_run  # 3 classes stored from 0
    other = tmp_path / "fruit"
    other.mkdir()
    (other / "summary.json").write_text('{"num_classes": 6}')
    with pytest.raises(OptionError) as e:
        run.evaluate_model(
            run.EvaluateOptions(
                model_dir=config.model_dir, data_dir=str(other), progress=False
            )
        )
    assert e.value.as_flag() == (
        f"--data_dir={other} holds 6 classes stored as 0..5 (summary.json), "
        "which a head of 6 outputs fits, but the run's has 3: evaluate on "
        "data of the run's classes."
    )
    # As many classes, numbered otherwise (a validation-only build).
    trained, renumbered = tmp_path / "trained", tmp_path / "renumbered"
    rows = [(0, "n01", "apple"), (1, "n02", "banana"), (2, "n03", "cherry")]
    for folder, order in ((trained, rows), (renumbered, rows[1:] + rows[:1])):
        folder.mkdir()
        metadata.write_labels(
            str(folder / "labels.txt"),
            [(i, wnid, text) for i, (_, wnid, text) in enumerate(order)],
        )
    run_config = dataclasses.replace(
        config, data=dataclasses.replace(config.data, data_dir=str(trained))
    )
    loading.check_same_classes(run_config, str(trained))  # the same
    # The same classes stored from 1, evaluated with label offset 1, and
    # a class the other folder does not name (empty wnid): fine.
    shifted = tmp_path / "shifted"
    shifted.mkdir()
    metadata.write_labels(
        str(shifted / "labels.txt"),
        [(i + 1, wnid, text) for i, (_, wnid, text) in enumerate(rows)],
    )
    loading.check_same_classes(run_config, str(shifted), label_offset=1)
    with pytest.raises(OptionError, match="a head of 4 outputs fits"):
        loading.check_same_classes(run_config, str(shifted), label_offset=0)
    blank = tmp_path / "blank"
    blank.mkdir()
    metadata.write_labels(
        str(blank / "labels.txt"),
        [(0, "n01", "apple"), (1, "", ""), (2, "", "")],
    )
    loading.check_same_classes(run_config, str(blank))
    with pytest.raises(OptionError) as e:
        loading.check_same_classes(run_config, str(renumbered))
    assert e.value.as_flag().startswith(
        f"--data_dir={renumbered} stores n02 as label 0, but the run was "
        f"trained with n01 as 0 ({trained / 'labels.txt'})"
    )


def test_class_names_that_do_not_fit_are_refused_before_evaluating(
    tiny_run, tmp_path
):
    """Before: the whole split was evaluated and reliability.png written,
    then the run's class_names.txt was refused."""
    import shutil

    from assemble_tf.evaluation import run
    from official.utils.misc.validation import OptionError

    config, _ = tiny_run
    copy = tmp_path / "run"
    shutil.copytree(config.model_dir, copy)
    (copy / "class_names.txt").write_text("a\nb\n")
    out = tmp_path / "eval"

    def refused(*args, **kwargs):
        raise AssertionError("evaluated before the names were checked")

    with pytest.raises(OptionError, match="names 2 classes; the model has 3"):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(run, "run_evaluation", refused)
            run.evaluate_model(
                run.EvaluateOptions(
                    model_dir=str(copy), output_dir=str(out), progress=False
                )
            )
    assert not out.exists()


def test_a_batch_the_replicas_do_not_divide_is_refused_up_front(
    tiny_run, monkeypatch
):
    """tools.evaluate --batch_size (and a run's --eval_batch_size) under a
    strategy of 2 replicas: named before any work (before: TensorFlow's
    "The global_batch_size 7 is not divisible by num_replicas_in_sync 2",
    and in training only after the first epoch)."""
    from assemble_tf.evaluation import run
    from assemble_tf.runs import runtime
    from assemble_tf.training import trainer as trainer_lib
    from official.utils.misc.validation import OptionError

    config, _ = tiny_run
    monkeypatch.setattr(
        runtime, "setup_runtime", lambda c: testing_utils.two_replica_strategy()
    )
    options = run.EvaluateOptions(model_dir=config.model_dir, batch_size=7)
    with pytest.raises(OptionError) as e:
        run.load_model(options)
    assert e.value.as_flag() == (
        "--batch_size=7 is not divisible by the 2 replicas: use a multiple "
        "of 2."
    )
    train = dataclasses.replace(config.train, eval_batch_size=7)
    odd = dataclasses.replace(config, train=train)
    with pytest.raises(OptionError, match="`eval_batch_size`=7 is not div"):
        trainer_lib.Trainer(odd, testing_utils.two_replica_strategy())


def test_model_overrides_name_the_options_a_run_takes(tiny_run):
    """Before: "Unknown model config keys ['attention']." naming no flag
    (the help said "build_model arguments")."""
    from assemble_tf.runs import loading
    from official.utils.misc.validation import OptionError

    config, _ = tiny_run
    with pytest.raises(OptionError) as e:
        loading.resolve(model_dir=config.model_dir, model={"attention": "se"})
    assert e.value.as_flag() == (
        "--model_overrides sets attention, not an option of a run's model; "
        "it takes add_dropblock, base_width, block_sizes, bn_momentum, "
        "classifier, cosine_temperature, dropblock, dropblock_shared_mask, "
        "embedding_size, pooling, shortcut (the other architecture options "
        "come with the preset: pick one that has them)."
    )


def test_a_model_dir_that_is_not_a_run_says_what_it_is(tmp_path):
    """Before: "has no config.json" for a folder that is not there."""
    from assemble_tf.runs import loading

    (tmp_path / "afile").write_text("")
    for path, what in (
        (tmp_path / "typo", "does not exist"),
        (tmp_path, "has no config.json"),
        (tmp_path / "afile", "is a file, not a run folder"),
    ):
        with pytest.raises(FileNotFoundError) as e:
            loading.resolve(model_dir=str(path))
        assert e.value.as_flag() == (
            f"--model_dir={path} {what}; pass a training run's --model_dir, "
            "or --preset with --weights."
        )


def test_an_overrides_bad_value_is_named_as_the_override(tiny_run):
    """Before: "--base_width=0 is invalid: must be >= 1.", a flag that
    tools.evaluate and tools.export_saved_model do not have."""
    from assemble_tf.runs import loading
    from official.utils.misc.validation import OptionError

    config, _ = tiny_run
    for model, text in (
        ({"base_width": 0}, "base_width=0 is invalid: must be >= 1."),
        ({"pooling": "max"}, "pooling='max' is invalid: avg or gem."),
    ):
        with pytest.raises(OptionError) as e:
            loading.resolve(model_dir=config.model_dir, model=model)
        assert e.value.as_flag() == f"--model_overrides: {text}"
        with pytest.raises(OptionError) as e:  # a preset and its weights
            loading.resolve(
                preset="resnet50",
                weights=__file__,
                model=model,
                data={"data_dir": config.data.data_dir},
            )
        assert e.value.as_flag() == f"--model_overrides: {text}"


def test_an_override_a_runs_model_would_ignore_is_refused(tiny_run):
    """Before: `--model_overrides='{"cosine_temperature": 0.1}'` on a run
    with the dense head was accepted and did nothing."""
    from assemble_tf.runs import loading
    from official.utils.misc.validation import OptionError

    config, _ = tiny_run
    with pytest.raises(OptionError) as e:
        loading.resolve(
            model_dir=config.model_dir, model={"cosine_temperature": 0.1}
        )
    assert e.value.as_flag() == (
        "--model_overrides sets cosine_temperature=0.1, which the run "
        "ignores: it applies to classifier=cosine only."
    )


def test_source_options_the_source_ignores_are_refused(tiny_run):
    """Before: --label_offset on a run's own data shifted every class
    (top-1 0.099 on the demo, with only out-of-range records counted);
    --preset beside --model_dir and --checkpoint beside --weights were
    ignored."""
    from assemble_tf.runs import loading
    from official.utils.misc.validation import OptionError

    config, _ = tiny_run
    offset = config.data.label_offset
    with pytest.raises(OptionError) as e:
        loading.resolve(
            model_dir=config.model_dir, data={"label_offset": offset + 1}
        )
    assert e.value.as_flag() == (
        f"--label_offset={offset + 1}: the run was trained on "
        f"--data_dir={config.data.data_dir} with --label_offset={offset}, "
        "and its head's outputs are those classes; another offset shifts "
        "every label. Leave --label_offset out (it applies to other data, "
        "with --data_dir)."
    )
    # The run's own offset, given: fine.
    loading.resolve(model_dir=config.model_dir, data={"label_offset": offset})
    # A model override the run's model ignores (a cosine temperature for
    # its dense head): named with the option that ignores it.
    with pytest.raises(OptionError) as e:
        loading.resolve(
            model_dir=config.model_dir, model={"cosine_temperature": 0.1}
        )
    assert e.value.as_flag() == (
        "--model_overrides sets cosine_temperature=0.1, which the run "
        "ignores: it applies to classifier=cosine only."
    )
    with pytest.raises(OptionError) as e:
        loading.resolve(model_dir=config.model_dir, preset="resnet50")
    assert e.value.as_flag() == (
        "--preset=resnet50 with --model_dir: the run's config.json names its "
        "preset; leave --preset out (it goes with --weights alone)."
    )
    with pytest.raises(OptionError) as e:
        loading.resolve(preset="resnet50", weights=__file__)
    assert e.value.as_flag() == (  # before: "... required unless --synthetic"
        "--data_dir is required with --preset: the TFRecord folder whose "
        "validation split is evaluated."
    )
    with pytest.raises(OptionError) as e:
        loading.resolve(
            preset="resnet50", weights="w.weights.h5", checkpoint="best"
        )
    assert e.value.as_flag() == (
        "--checkpoint=best with --weights: the weights file is what is read, "
        "not a checkpoint; leave one of them out."
    )


def test_a_pattern_that_matches_nothing_names_its_flag(tiny_run):
    """Before: tools.evaluate --validation_pattern='zzz*' said "check
    --data_dir" only."""
    from assemble_tf.runs import inputs

    config, _ = tiny_run
    for field, training in (
        ("validation_pattern", False),
        ("train_pattern", True),
    ):
        data = dataclasses.replace(config.data, **{field: "zzz*"})
        with pytest.raises(FileNotFoundError) as e:
            inputs.input_config(
                dataclasses.replace(config, data=data), training
            )
        pattern = os.path.join(config.data.data_dir, "zzz*")
        assert e.value.as_flag() == (
            f"No TFRecord files match '{pattern}'. Build them with `python -m "
            "tools.build_imagenet_tfrecords` (or `tools.make_demo_dataset`) "
            f"and check --data_dir / --{field}."
        )


def test_a_weights_file_s_report_goes_beside_it_in_eval():
    """tools.evaluate --preset --weights wrote eval.json, per_class.csv
    and reliability.png into the weights' folder, often the folder it ran
    in, where a second weights file's replaced the first's."""
    import types

    from assemble_tf.evaluation import run

    def options(**kw):
        return run.EvaluateOptions(**kw)

    loaded = types.SimpleNamespace(
        config=types.SimpleNamespace(model_dir="/w"), weights="/w/a.weights.h5"
    )
    assert run.output_dir(options(weights="/w/a.weights.h5"), loaded) == (
        "/w/eval/a"
    )
    assert run.output_dir(options(output_dir="/o"), loaded) == "/o"
    run_loaded = types.SimpleNamespace(
        config=types.SimpleNamespace(model_dir="/runs/r"), weights=None
    )
    assert run.output_dir(options(model_dir="/runs/r"), run_loaded) == (
        "/runs/r"
    )
    # Weights that replace the run's checkpoint (before: their report went
    # to the run's folder, replacing the checkpoint's eval.json).
    replaced = types.SimpleNamespace(
        config=types.SimpleNamespace(model_dir="/runs/r"),
        weights="/w/a.weights.h5",
    )
    given = options(model_dir="/runs/r", weights="/w/a.weights.h5")
    assert run.output_dir(given, replaced) == "/w/eval/a"

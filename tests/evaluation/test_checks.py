"""assemble_tf.evaluation.checks: what an evaluation's numbers say."""

import types

from assemble_tf.evaluation import checks


def test_a_non_finite_loss_warns_that_the_accuracy_is_not_the_models():
    """Before: a diverged model under mixed_float16 reported top-1 0.0 and
    ECE NaN (the argmax of non-finite logits) without a word."""
    result = {"count": 359, "loss": float("nan"), "top1": 0.0}
    assert checks.nonfinite_warning(result, "mixed_float16") == (
        "the validation loss is nan: the model's logits overflow float16 "
        "(mixed_float16), or are NaN, so top-1, top-5 and ECE of this "
        "evaluation are not its accuracy (argmax of non-finite logits). "
        "Evaluate in float32, or fix the training (a lower learning rate, "
        "float32 or mixed_bfloat16)."
    )
    inf = checks.nonfinite_warning({"count": 1, "loss": float("inf")}, None)
    assert inf.startswith("the validation loss is inf: the model's logits ")
    assert "(mixed_float16)" not in inf
    for fine in ({"count": 3, "loss": 4622992.7}, {"count": 0}, {"count": 3}):
        assert checks.nonfinite_warning(fine, "mixed_float16") is None


def test_evaluate_and_the_trainer_print_it(tmp_path, capsys):
    from assemble_tf import config as config_lib
    from assemble_tf.evaluation import run as eval_run
    from assemble_tf.training import trainer as trainer_lib

    config = config_lib.make_config(
        str(tmp_path / "run"), "resnet50", {"data": {"synthetic": True}}
    )

    class Fake:  # an Evaluator whose model overflowed
        model = types.SimpleNamespace(
            dtype_policy=types.SimpleNamespace(name="mixed_float16")
        )

        def dataset(self, input_config, stats):
            return None

        def evaluate(self, dataset, bar, stats):
            return {"count": 3, "skipped": 0, "loss": float("nan")}

    eval_run.run_evaluation(Fake(), config, progress=False)
    err = capsys.readouterr().err
    assert err.startswith("WARNING: the validation loss is nan: the model's ")
    assert "(mixed_float16)" in err
    logged = []
    trainer = types.SimpleNamespace(
        config=config,
        backend=types.SimpleNamespace(epoch=2),
        log=logged.append,
        _validation_counted=True,
    )
    trainer_lib.Trainer._check_evaluation(
        trainer, {"count": 3, "loss": float("nan")}
    )
    assert len(logged) == 1
    assert logged[0].startswith("WARNING: epoch 2: the validation loss is nan")

"""What an evaluation's numbers say about themselves (no TensorFlow)."""

import math


def nonfinite_warning(result, precision):
    """The warning for an evaluation whose mean loss is not finite, else
    None: some logits overflowed or are NaN, their argmax is arbitrary, and
    top-1 / ECE are not the model's (a diverged model under mixed_float16
    reported top-1 0.0 and ECE NaN without a word; in float32 0.103).

    Args:
        result: the evaluation's report (`loss`, `count`).
        precision: the compute dtype policy it ran under, e.g.
            "mixed_float16".
    """
    loss = result.get("loss")
    if not result.get("count") or loss is None or math.isfinite(loss):
        return None
    why = "logits overflow or are NaN"
    if precision == "mixed_float16":
        why = "logits overflow float16 (mixed_float16), or are NaN"
    return (
        f"the validation loss is {loss}: the model's {why}, so top-1, "
        "top-5 and ECE of this evaluation are not its accuracy (argmax of "
        "non-finite logits). Evaluate in float32, or fix the training "
        "(a lower learning rate, float32 or mixed_bfloat16)."
    )

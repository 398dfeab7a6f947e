"""`models.build_model_to_count` under every Keras backend: the counts of
`build_model`, no weight values, and a call refused (uninitialized
variables would otherwise compute with zeros)."""

import numpy as np
import pytest

from assemble_tf.models import (
    build_model,
    build_model_to_count,
    count_macs,
    count_params,
)

TINY = {"base_width": 8, "block_sizes": (1, 1, 1, 1), "image_size": 32}


@pytest.mark.slow  # over 2 s on 2 cores
def test_counts_without_weight_values_and_refuses_to_run():
    real = build_model("resnet50", num_classes=3, **TINY)
    counted = build_model_to_count("resnet50", num_classes=3, **TINY)
    assert (
        count_params(counted)
        == count_params(real)
        == (
            131_579,
            129_163,
            2_416,
        )
    )
    assert count_macs(counted) == count_macs(real) > 0
    assert all(v._value is None for v in counted.variables)
    x = np.random.default_rng(0).normal(size=(1, 32, 32, 3)).astype("f4")
    assert np.abs(np.asarray(real(x))).max() > 0
    with pytest.raises(ValueError, match="has no weight values"):
        counted(x)

"""One way to derive the seeds of a run's random streams from its `seed`.

Each stream (the input order of an epoch, the step randomness of an epoch,
the batch mixing) gets its own seed from the run's seed and a tuple of keys,
through numpy's `SeedSequence` hashing: streams never collide the way
`seed + 1` or `seed * 1000 + epoch` can (seed 1 epoch 0 vs seed 0 epoch
1000), and the same keys give the same seed in every process.
"""

import zlib

import numpy as np


def derive_seed(seed, *keys):
    """A seed in [0, 2**31) for the stream named by `keys` of run `seed`.

    Args:
        seed: the run's seed, an int >= 0.
        *keys: ints >= 0 or strings naming the stream, e.g. `("input",
            epoch)`.
    """
    words = [int(seed)]
    for key in keys:
        if isinstance(key, str):
            key = zlib.crc32(key.encode())
        words.append(int(key))
    if any(w < 0 for w in words):
        raise ValueError(
            f"Seeds and stream keys must be >= 0. Received: {seed!r}, {keys!r}"
        )
    state = np.random.SeedSequence(words).generate_state(1)[0]
    return int(state) & 0x7FFFFFFF

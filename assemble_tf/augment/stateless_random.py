"""Counter-based random draws from an explicit `[2]` integer seed.

The recipe's on-device randomness (Mixup's lambda, CutMix's boxes) must be a
pure function of `(seed, step)` on every Keras backend: a resumed run then
draws exactly what an uninterrupted one drew, and the JAX step stays a pure
function for `jax.jit`. `keras.random` takes only integers and
`SeedGenerator`s as seeds, so these three draws (and nothing else) are
written per backend: TensorFlow's stateless ops (and tfp's Beta sampler,
which XLA compiles; `tf.random.stateless_gamma` has no XLA kernel) and
`jax.random` with the seed as a raw key. Everything built on them is
`keras.ops`.
"""

import keras


def _backend():
    return keras.backend.backend()


def _jax_key(seed):
    import jax.numpy as jnp

    return jnp.asarray(seed).astype(jnp.uint32)


def split(seed, num):
    """`num` independent seeds from one, as a `[num, 2]` tensor."""
    if _backend() == "jax":
        import jax

        return jax.random.split(_jax_key(seed), num)
    import tensorflow as tf

    return tf.random.experimental.stateless_split(
        tf.cast(seed, tf.int64), num=num
    )


def uniform(shape, seed):
    """float32 uniform on [0, 1) of `shape`."""
    if _backend() == "jax":
        import jax

        return jax.random.uniform(_jax_key(seed), shape, "float32")
    import tensorflow as tf

    return tf.random.stateless_uniform(shape, seed, 0.0, 1.0)


def beta(n, alpha, seed):
    """float32 [n] samples of Beta(alpha, alpha)."""
    if _backend() == "jax":
        import jax

        return jax.random.beta(_jax_key(seed), alpha, alpha, (n,), "float32")
    import tensorflow as tf
    import tensorflow_probability as tfp

    dist = tfp.distributions.Beta(
        tf.constant(alpha, tf.float32), tf.constant(alpha, tf.float32)
    )
    # tfp takes int32 stateless seeds; the cast wraps, deterministically.
    return dist.sample([n], seed=tf.cast(seed, tf.int32))

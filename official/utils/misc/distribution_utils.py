"""tf.distribute strategy selection (Model Garden `distribute_utils` shape)."""

import tensorflow as tf

STRATEGIES = ("off", "one_device", "mirrored", "multi_worker_mirrored", "tpu")


def get_distribution_strategy(name="mirrored", num_gpus=None, tpu_address=""):
    """Returns a `tf.distribute.Strategy` by name.

    Args:
        name: one of `STRATEGIES`. "off" returns the default strategy.
        num_gpus: int or None. GPUs for "mirrored"/"one_device"; None uses
            all visible GPUs (or the CPU when there are none).
        tpu_address: str. TPU name or grpc address for "tpu".

    Raises:
        ValueError: for an unknown name or an impossible GPU count.
    """
    name = (name or "off").lower()
    if name not in STRATEGIES:
        raise ValueError(
            f"distribution_strategy must be one of {STRATEGIES}. "
            f"Received: {name!r}"
        )
    if name == "multi_worker_mirrored":
        # Must come before anything initializes the TF runtime (listing
        # devices included): collectives are configured at startup.
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if num_gpus is not None and num_gpus > len(gpus):
        raise ValueError(
            f"num_gpus={num_gpus} but only {len(gpus)} GPU(s) are visible."
        )
    if name == "off":
        return tf.distribute.get_strategy()
    if name == "one_device":
        device = "/gpu:0" if gpus and num_gpus != 0 else "/cpu:0"
        return tf.distribute.OneDeviceStrategy(device)
    if name == "mirrored":
        if num_gpus == 0 or not gpus:
            return tf.distribute.MirroredStrategy(["/cpu:0"])
        devices = [g.name for g in gpus[: num_gpus or len(gpus)]]
        return tf.distribute.MirroredStrategy(devices)
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(
            tpu=tpu_address
        )
    except ValueError as e:  # before: "Please provide a TPU Name to ..."
        from official.utils.misc.validation import OptionError

        raise OptionError(
            "tpu",
            "{field}={value!r}: no TPU found ({error}). Pass the TPU's name "
            "or grpc:// address ('local' on a TPU VM), or choose another "
            "{distribution_strategy}.",
            ["distribution_strategy"],
            value=tpu_address,
            error=str(e).rstrip("."),
        ) from None
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)

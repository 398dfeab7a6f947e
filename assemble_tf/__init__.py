"""Assemble-TF: Assemble-ResNet (Lee et al. 2020) on TensorFlow 2 / Keras 3.

Lee et al., "Compounding the Performance Improvements of Assembled
Techniques in a Convolutional Neural Network", arXiv 2001.06268
(https://arxiv.org/abs/2001.06268); the original TF 1.14 code is
clovaai/assembled-cnn.

`import assemble_tf` registers every layer of the package with Keras, so a
saved `.keras` model loads in a fresh process:

    import assemble_tf  # noqa: F401
    import keras

    model = keras.saving.load_model("assemble_r50.keras")

The registration waits for Keras: if Keras is not imported yet, it happens
right after Keras' own import, so the parts that never use Keras (ImageNet-C
corruptions, the TFRecord builder's workers) do not pay for loading it.
"""

from official.utils.misc import import_hooks

__version__ = "0.4.0"


def _register_layers(keras_module=None):
    import assemble_tf.layers  # noqa: F401  (registration on import)


if not import_hooks.after_first_import("keras", _register_layers):
    _register_layers()  # Keras is already there

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

import importlib.abc
import importlib.util
import sys

__version__ = "0.4.0"


def _register_layers():
    import assemble_tf.layers  # noqa: F401  (registration on import)


class _RegisterAfterKeras(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds `keras` with the other finders and registers our layers as
    soon as its module has run."""

    def __init__(self):
        self._loader = None

    def find_spec(self, name, path=None, target=None):
        if name != "keras":
            return None
        sys.meta_path.remove(self)  # once; and not to find itself
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        self._loader = spec.loader
        spec.loader = self
        return spec

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        module.__loader__ = module.__spec__.loader = self._loader
        _register_layers()


if "keras" in sys.modules:
    _register_layers()
elif not any(isinstance(f, _RegisterAfterKeras) for f in sys.meta_path):
    sys.meta_path.insert(0, _RegisterAfterKeras())

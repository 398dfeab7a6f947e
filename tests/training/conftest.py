"""Fixtures shared by the training tests."""

import fcntl
import os
import shutil

import numpy as np
import pytest

from assemble_tf.data import metadata, schema
from tests import testing_utils
from tests.testing_utils import jpeg_bytes, smooth_image

# The 4 colour classes of `tiny_data`, in label order.
TINY_CLASS_NAMES = ("red", "green", "blue", "yellow")

# A tiny R50 on synthetic data: `config.make_config` group overrides of
# the XLA and two-replica training tests.
TINY_SYNTHETIC = {
    "model": {"base_width": 8, "block_sizes": "1,1,1,1"},
    "data": {
        "synthetic": True,
        "num_classes": 4,
        "image_size": 32,
        "num_train_examples": 64,
    },
    "train": {
        "batch_size": 8,
        "epochs": 1.0,
        "max_steps": 3,
        "warmup_epochs": 0.0,
        "base_learning_rate": 0.1,
        "lr_schedule": "constant",
        "weight_decay": 1e-3,
        "seed": 3,
    },
    "augment": {"label_smoothing": 0.1},
}


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    """<root>/{train,test}/<class>/<image>: 3 classes, one PNG."""
    from PIL import Image

    root = tmp_path_factory.mktemp("folder")
    for split, per_class in (("train", 4), ("test", 2)):
        for c in range(3):
            folder = root / split / f"class_{c}"
            folder.mkdir(parents=True)
            for k in range(per_class):
                image = smooth_image(40, 48, seed=100 * c + 10 * k + len(split))
                if split == "train" and c == 1 and k == 0:
                    Image.fromarray(image).save(folder / f"{k}.png")
                else:
                    (folder / f"{k}.jpg").write_bytes(jpeg_bytes(image))
    return str(root)


def shared_once(tmp_path_factory, name, make):
    """`make(folder)` once per test run, by whichever xdist worker asks
    first; the others wait for it and reuse the folder (the pattern of
    pytest-xdist's docs, with an flock). A failed `make` leaves no mark,
    so the next worker tries again and reports its own failure."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # shared by the workers of this run
    folder, done = root / name, root / f"{name}.done"
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)  # a failed attempt
            folder.mkdir()
            make(folder)
            done.touch()
    return folder


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """64 train / 16 validation 32x32 JPEGs of 4 colour classes."""
    return str(shared_once(tmp_path_factory, "tiny_data", _write_tiny_data))


def _write_tiny_data(root):
    rng = np.random.default_rng(0)
    palette = np.array(
        [[200, 40, 40], [40, 200, 40], [40, 40, 200], [200, 200, 40]]
    )
    for split, n in (("train", 64), ("validation", 16)):
        examples = []
        for i in range(n):
            label = i % 4
            img = palette[label] + rng.integers(-30, 30, (32, 32, 3))
            jpeg = testing_utils.jpeg_bytes(np.clip(img, 0, 255))
            examples.append(
                schema.make_example(
                    jpeg, label, 32, 32, filename=f"{split}{i}.jpg"
                )
            )
        testing_utils.write_records(root / f"{split}-00000-of-00001", examples)
    # As the builder writes it: the classes' names (a run keeps them).
    metadata.write_labels(
        str(root / metadata.LABELS),
        [(i, name, "") for i, name in enumerate(TINY_CLASS_NAMES)],
    )

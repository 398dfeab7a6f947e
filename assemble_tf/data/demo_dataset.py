"""The embedded demo dataset: scikit-learn's digits as TFRecords.

The images are the 1,797 handwritten digits that ship with scikit-learn
(`sklearn.datasets.load_digits`, the UCI optdigits test set, 8x8 pixels
with values 0..16), so nothing is downloaded. Each becomes a 64x64 RGB
image: values scaled to 0..255 and inverted (dark ink on a white
background, like the photos the models are meant for), upscaled with
Pillow's bicubic filter, gray in all three channels.

Split (fixed, stratified): the images of each digit, in dataset order, are
permuted by one `np.random.RandomState(0)` (digits 0..9 in turn) and the
first round(20 %) go to validation:

    digit        0    1    2    3    4    5    6    7    8    9   total
    train      142  146  142  146  145  146  145  143  139  144    1438
    validation  36   36   35   37   36   36   36   36   35   36     359

The images are written as PNG into a temporary `train/digit_<k>/`,
`validation/digit_<k>/` folder layout, then converted by the production
builder (`assemble_tf.data.builder`, layout `folder`), which re-encodes them
as RGB JPEG at quality 95. Labels are 0..9 (label offset 0), synset
`digit_<k>`, text `<k>`, file names `digits_<index>.png` (the index in
`load_digits`). Output: `train-0000{0,1}-of-00002`,
`validation-00000-of-00001`, `labels.txt`, `summary.json` and the builder's
manifest; a rerun into the same folder finds the build complete.
"""

import os

IMAGE_SIZE = 64
VALIDATION_FRACTION = 0.2
SPLIT_SEED = 0
NUM_CLASSES = 10
SOURCE = "sklearn.datasets.load_digits"


def split_indices(targets):
    """Returns `(train, validation)` index arrays of the fixed split."""
    import numpy as np

    targets = np.asarray(targets)
    rng = np.random.RandomState(SPLIT_SEED)
    train, validation = [], []
    for digit in range(NUM_CLASSES):
        members = np.flatnonzero(targets == digit)
        members = members[rng.permutation(len(members))]
        cut = int(len(members) * VALIDATION_FRACTION + 0.5)
        validation.extend(members[:cut])
        train.extend(members[cut:])
    return np.sort(train), np.sort(validation)


def digit_image(pixels):
    """An 8x8 digit (values 0..16) as a 64x64 RGB Pillow image."""
    import numpy as np
    from PIL import Image

    ink = np.asarray(pixels, dtype=np.float64) * (255.0 / 16.0)
    gray = np.clip(np.round(255.0 - ink), 0, 255).astype(np.uint8)
    small = Image.fromarray(gray)
    large = small.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BICUBIC)
    return large.convert("RGB")


FILE_TIME = 946684800  # 2000-01-01, the images' modification time


def write_image_folders(root):
    """Writes the split as `root/{train,validation}/digit_<k>/*.png` and a
    synsets file; returns `(train_dir, validation_dir, synsets_file)`."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    train, validation = split_indices(digits.target)
    folders = []
    for split, indices in (("train", train), ("validation", validation)):
        folder = os.path.join(root, split)
        for index in indices:
            digit = int(digits.target[index])
            class_dir = os.path.join(folder, f"digit_{digit}")
            os.makedirs(class_dir, exist_ok=True)
            path = os.path.join(class_dir, f"digits_{index:04d}.png")
            digit_image(digits.images[index]).save(path)
            # The same files at every run (the build's digests include
            # modification times): a rerun finds the build complete.
            os.utime(path, (FILE_TIME, FILE_TIME))
        folders.append(folder)
    synsets = os.path.join(root, "synsets.txt")
    with open(synsets, "w", encoding="utf-8") as f:
        f.writelines(f"digit_{k} {k}\n" for k in range(NUM_CLASSES))
    return folders[0], folders[1], synsets


def make_demo_dataset(
    output_dir,
    train_shards=2,
    validation_shards=1,
    num_workers=1,
    overwrite=False,
    progress=True,
):
    """Builds the digits TFRecords in `output_dir`; returns the summary."""
    import json
    import tempfile

    from assemble_tf.data import builder

    with tempfile.TemporaryDirectory(prefix="digits_") as root:
        train_dir, validation_dir, synsets = write_image_folders(root)
        summary = builder.build(
            builder.BuildConfig(
                output_dir=output_dir,
                layout="folder",
                train_dir=train_dir,
                validation_dir=validation_dir,
                synsets_file=synsets,
                train_shards=train_shards,
                validation_shards=validation_shards,
                num_workers=num_workers,
                label_offset=0,
                jpeg_quality=95,
                overwrite=overwrite,
                progress=progress,
            )
        )
    for split in summary["splits"].values():
        split["source"] = SOURCE  # the temporary folders are gone
    with open(
        os.path.join(output_dir, builder.SUMMARY), "w", encoding="utf-8"
    ) as f:
        json.dump(summary, f, indent=1)
    return summary

"""Fixtures shared by the training tests."""

import pytest

from tests.testing_utils import jpeg_bytes, smooth_image


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

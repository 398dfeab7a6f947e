"""Train / eval preprocessing against the original's outputs and rules."""

import os

import numpy as np
import pytest
import tensorflow as tf

from assemble_tf.data import preprocessing as pp
from tests import testing_utils
from tests.conftest import DATA

GOLDEN = np.load(os.path.join(DATA, "golden", "eval_preprocessing.npz"))


@pytest.mark.parametrize("name", ["astronaut", "coffee", "chelsea"])
@pytest.mark.parametrize(
    "ptype", ["imagenet", "imagenet_224_256", "imagenet_224_256a"]
)
def test_eval_matches_the_original_on_real_jpegs(name, ptype):
    expected = GOLDEN[f"{ptype}__{name}"]
    out = pp.preprocess_eval(
        tf.constant(GOLDEN[f"jpeg_{name}"].tobytes()), ptype
    ).numpy()
    assert out.shape == expected.shape and out.dtype == np.float32
    assert np.abs(out - expected).max() <= 1e-3


@pytest.mark.parametrize(
    "ptype,sizes",
    [
        ("imagenet", (224, 256, 224)),
        ("imagenet_224_256", (224, 292, 256)),
        ("imagenet_224_256a", (224, 257, 256)),
        ("imagenet_320", (320, 365, 320)),
        ("imagenet_320a", (320, 321, 320)),
        ("imagenet_64", (64, 73, 64)),
    ],
)
def test_eval_sizes(ptype, sizes):
    assert pp.eval_sizes(ptype) == sizes


def test_bad_preprocessing_type_is_named():
    with pytest.raises(ValueError, match="`preprocessing_type`='inception'"):
        pp.eval_sizes("inception")
    # By the option that gave it (tools.export_saved_model --preprocessing
    # said "preprocessing_type must be one of ...").
    from assemble_tf.export import saved_model_run

    with pytest.raises(ValueError) as e:
        saved_model_run.validate(
            saved_model_run.ExportOptions(export_dir="/x", preprocessing="foo")
        )
    assert e.value.as_flag() == (
        "--preprocessing must be one of ['imagenet', 'imagenet_224_256', "
        "'imagenet_224_256a'], 'imagenet_NNN' or 'imagenet_NNNa'. Received: "
        "--preprocessing='foo'"
    )
    # The binary takes it as --eval_preprocessing too, the name of
    # tools.evaluate and tools.eval_retrieval (before: an unknown flag).
    from tests import testing_utils

    result = testing_utils.run_main(
        "tools.export_saved_model",
        "--preset=resnet50",
        "--weights=/no/such.weights.h5",
        "--export_dir=/x/1",
        "--eval_preprocessing=foo",
    )
    assert testing_utils.error_line(result).startswith(
        "ERROR: --preprocessing must be one of "
    ), result.stderr


@pytest.mark.parametrize(
    "h,w,side,expected",
    [
        (384, 512, 256, (256, 341)),
        (600, 400, 292, (438, 292)),
        (300, 451, 257, (257, 386)),
        (224, 224, 256, (256, 256)),
    ],
)
def test_aspect_preserving_resize_arithmetic(h, w, side, expected):
    new_h, new_w = pp.aspect_preserving_size(h, w, side)
    assert (int(new_h), int(new_w)) == expected


def test_center_crop_offsets_floor():
    image = tf.reshape(tf.range(5 * 8, dtype=tf.float32), [5, 8, 1])
    crop = pp.center_crop(image, 2).numpy()[..., 0]
    # offsets floor((5 - 2) / 2) = 1 and floor((8 - 2) / 2) = 3.
    np.testing.assert_array_equal(crop, [[11, 12], [19, 20]])


def test_legacy_bilinear_has_no_half_pixel_centers():
    image = tf.constant([[[0.0], [10.0]]])  # 1 x 2
    out = pp.resize_bilinear_legacy(image, [1, 4]).numpy()[0, :, 0]
    # Source x = dst * 2 / 4: 0, 0.5, 1, 1.5 -> 0, 5, 10, 10 (clamped).
    np.testing.assert_array_equal(out, [0.0, 5.0, 10.0, 10.0])


def test_crop_sampler_stays_in_the_spec_ranges():
    h, w = 300, 400
    jpeg = tf.constant(
        testing_utils.jpeg_bytes(testing_utils.smooth_image(h, w))
    )
    boxes = tf.zeros([0, 4])
    areas, ratios = [], []
    for i in range(400):
        window = pp.sample_crop_window(jpeg, boxes, tf.constant([7, i]))
        _, _, ch, cw = (int(v) for v in window)
        areas.append(ch * cw / (h * w))
        ratios.append(cw / ch)
    areas, ratios = np.array(areas), np.array(ratios)
    # min_object_covered 0.1 of the whole-image box bounds the area below
    # by 0.1 (tighter than area_range's 0.05).
    assert areas.min() >= 0.1 - 1e-3 and areas.max() <= 1.0
    # Integer rounding of the sides moves the ratio a little past the range.
    assert ratios.min() >= 0.75 - 0.02 and ratios.max() <= 1.33 + 0.02
    # Spread over the whole range (uniform area, rejected when the box
    # does not fit: the mean falls below 0.525).
    assert 0.3 < areas.mean() < 0.5
    assert (areas < 0.15).any() and (areas > 0.8).any()


@pytest.mark.parametrize("shape,size", [((260, 300), 224), ((37, 91), 64)])
def test_legacy_bilinear_of_uint8_equals_the_kernel_on_uint8(shape, size):
    """The uint8 crop is cast to float32 before the kernel (faster); the
    kernel computes in float32 either way, so the output is bit-equal."""
    image = np.random.default_rng(0).integers(0, 256, (*shape, 3), np.uint8)
    direct = tf.raw_ops.ResizeBilinear(
        images=tf.constant(image)[tf.newaxis],
        size=[size, size],
        align_corners=False,
        half_pixel_centers=False,
    )[0]
    np.testing.assert_array_equal(
        pp.resize_bilinear_legacy(tf.constant(image), [size, size]).numpy(),
        direct.numpy(),
    )


def test_large_images_are_resized_without_a_float32_copy(monkeypatch):
    """Above FLOAT_COPY_MAX_PIXELS the uint8 image goes to the kernel as
    is (a 187 KB 8000x8000 PNG at the serving signature took 1.9 GB of
    float32 copy): the same output, in the graph as well."""
    image = np.random.default_rng(1).integers(0, 256, (61, 47, 3), np.uint8)

    def resize(x):
        return pp.resize_bilinear_legacy(x, [32, 40])

    small = tf.function(resize, autograph=False)(tf.constant(image)).numpy()
    monkeypatch.setattr(pp, "FLOAT_COPY_MAX_PIXELS", 61 * 47 - 1)
    large = tf.function(resize, autograph=False)  # traced anew
    graph = large.get_concrete_function(tf.constant(image)).graph
    kernels = [
        node.attr["T"].type
        for function in graph.as_graph_def().library.function
        for node in function.node_def
        if node.op == "ResizeBilinear"
    ]
    # Two branches: one reads a float32 copy, one the uint8 image.
    assert sorted(kernels) == sorted(
        [tf.float32.as_datatype_enum, tf.uint8.as_datatype_enum]
    )
    np.testing.assert_array_equal(large(tf.constant(image)).numpy(), small)
    assert pp.FLOAT_COPY_MAX_PIXELS < 8000 * 8000


def test_extreme_aspect_ratios_compute_only_the_center_crop(monkeypatch):
    """An eval crop whose resize would exceed RESIZED_MAX_PIXELS computes
    the crop's pixels alone (a 1x8000 JPEG at the serving signature took
    7 GB and 22 s): bit for bit the crop of the whole resize, on shapes
    where floor and ceil meet, clamp at the border and upsample."""
    rng = np.random.default_rng(3)
    for h, w, side, crop in (
        (375, 500, 256, 224),
        (500, 375, 292, 256),
        (7, 3, 256, 224),
        (1, 9, 8, 5),
        (33, 4000, 256, 224),
    ):
        image = tf.constant(rng.integers(0, 256, (h, w, 3), np.uint8))
        nh, nw = pp.aspect_preserving_size(h, w, side)
        size = tf.stack([nh, nw])
        top, left = (nh - crop) // 2, (nw - crop) // 2
        np.testing.assert_array_equal(
            pp.crop_of_resize_bilinear_legacy(image, size, top, left, crop),
            pp.center_crop(pp.resize_bilinear_legacy(image, size), crop),
        )
    # eval_crop takes that path above the limit, in the graph too.
    image = tf.constant(rng.integers(0, 256, (2, 700, 3), np.uint8))
    monkeypatch.setattr(pp, "RESIZED_MAX_PIXELS", 256 * 89_600)  # 2 x 700
    whole = pp.eval_crop(image).numpy()
    monkeypatch.setattr(pp, "RESIZED_MAX_PIXELS", 256 * 89_600 - 1)
    crop = tf.function(pp.eval_crop, autograph=False)(image).numpy()
    np.testing.assert_array_equal(crop, whole)
    assert pp.RESIZED_MAX_PIXELS < 256 * 8000 * 256


def test_train_assume_jpeg_skips_only_the_format_branch():
    jpeg = tf.constant(
        testing_utils.jpeg_bytes(testing_utils.smooth_image(120, 90, seed=4))
    )
    for seed in ([1, 2], [5, 9]):
        np.testing.assert_array_equal(
            pp.preprocess_train(
                jpeg, tf.constant(seed), 48, dtype=tf.uint8, assume_jpeg=True
            ).numpy(),
            pp.preprocess_train(jpeg, tf.constant(seed), 48, dtype=tf.uint8),
        )


def test_train_output_is_reproducible_and_mean_subtracted():
    jpeg = tf.constant(
        testing_utils.jpeg_bytes(testing_utils.smooth_image(120, 90, seed=3))
    )
    a = pp.preprocess_train(jpeg, tf.constant([1, 2]), 64).numpy()
    b = pp.preprocess_train(jpeg, tf.constant([1, 2]), 64).numpy()
    c = pp.preprocess_train(jpeg, tf.constant([1, 3]), 64).numpy()
    assert a.shape == (64, 64, 3) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.min() >= -123.68 - 1e-3 and a.max() <= 255 - 103.94 + 1e-3
    half = pp.preprocess_train(jpeg, tf.constant([1, 2]), 32, dtype=tf.float16)
    assert half.dtype == tf.float16


def test_train_augmenter_sees_uint8_after_resize():
    seen = {}

    class Probe:
        def distort(self, image, seed=None):
            seen["dtype"], seen["shape"] = image.dtype, image.shape
            seen["seed"] = seed
            return 255 - image

    jpeg = tf.constant(
        testing_utils.jpeg_bytes(testing_utils.smooth_image(50, 50))
    )
    plain = pp.preprocess_train(jpeg, tf.constant([0, 0]), 32).numpy()
    inverted = pp.preprocess_train(
        jpeg, tf.constant([0, 0]), 32, augmenter=Probe()
    ).numpy()
    assert seen["dtype"] == tf.uint8 and tuple(seen["shape"]) == (32, 32, 3)
    assert seen["seed"].shape == (2,)
    mean = np.array([123.68, 116.78, 103.94], np.float32)
    # uint8 truncation happens before the op: allow one grey level.
    np.testing.assert_allclose(255 - (plain + mean), inverted + mean, atol=1)


def test_a_transparent_png_is_composed_onto_white_as_the_builder_stores_it():
    """The same RGBA (and grey + alpha) PNG from a folder, a tfds set or a
    serving request is the image the builder's records hold: transparency
    over white (before: black where transparent); opaque pixels exact,
    half-transparent within 1 of Pillow's composite."""
    import io

    from PIL import Image

    from assemble_tf.data.builder import images

    rgba = np.zeros((6, 5, 4), np.uint8)
    rgba[1:4, 1:3] = [200, 30, 10, 255]  # opaque
    rgba[0, 0] = [0, 0, 255, 128]  # half transparent
    rgba[5, 4] = [90, 90, 90, 1]
    for mode in ("RGBA", "LA"):
        image = Image.fromarray(rgba, "RGBA").convert(mode)
        data = io.BytesIO()
        image.save(data, "PNG")
        expected = np.asarray(images.flatten_alpha(image).convert("RGB"))
        for decode in (
            pp.decode_image,
            pp.decode_jpeg_or_png,
        ):
            got = decode(tf.constant(data.getvalue())).numpy()
            assert got.dtype == np.uint8 and got.shape == (6, 5, 3)
            diff = np.abs(got.astype(int) - expected.astype(int))
            assert diff.max() <= 1, (mode, decode.__name__)
            assert (got[2, 2] == expected[2, 2]).all()
            assert (got[3, 4] == 255).all()  # transparent: white


def test_header_sizes_of_every_format_the_pipelines_read():
    """(height, width) from the header, as Pillow reads the file, for the
    formats a folder may hold (BMP stored top-down too: a negative
    height); other bytes give (0, 0)."""
    import io

    from PIL import Image

    size = tf.function(pp.image_size_from_header)
    image = testing_utils.smooth_image(23, 57, 1)
    for fmt in ("JPEG", "PNG", "GIF", "BMP"):
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, format=fmt)
        data = buf.getvalue()
        assert size(tf.constant(data)).numpy().tolist() == [23, 57], fmt
    top_down = bytearray(data)  # the BMP: height -23
    top_down[22:26] = (-23).to_bytes(4, "little", signed=True)
    assert size(tf.constant(bytes(top_down))).numpy().tolist() == [23, 57]
    for other in (b"", b"text", b"\x89PNG\r\n\x1a\n"):
        assert size(tf.constant(other)).numpy().tolist() == [0, 0]


@pytest.mark.slow  # over 1.4 s in make test (make test-fast: 2 min)
def test_images_over_the_pixel_limit_are_refused_before_decoding(
    monkeypatch,
):
    """Train and eval decoding refuse, from the header, an image of more
    than `MAX_DECODE_PIXELS` (what the builder stores): a PNG header of
    20,000 x 20,000 (a 90 KB file decodes to 1.2 GB per channel) fails
    with the sizes, not as a damaged file after the allocation; the limit
    is read when the function is traced."""
    import struct
    import zlib

    ihdr = struct.pack(">II", 20_000, 20_000) + b"\x01\x00\x00\x00\x00"
    bomb = (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", 13)
        + b"IHDR"
        + ihdr
        + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    )
    message = (
        "[Image of] [20000] [x] [20000] [pixels (width x height), more "
        "than the 178,956,970 the input pipelines decode]"
    )
    for fn in (
        pp.decode_image,
        lambda b: pp.preprocess_train(b, [1, 2], 32),
        lambda b: pp.preprocess_eval(b, "imagenet_32"),
    ):
        with pytest.raises(tf.errors.InvalidArgumentError) as info:
            tf.function(fn)(tf.constant(bomb))
        assert message in info.value.message, info.value.message
    jpeg = testing_utils.jpeg_bytes(testing_utils.smooth_image(30, 40, 0))
    assert pp.decode_image(tf.constant(jpeg)).shape == (30, 40, 3)
    monkeypatch.setattr(pp, "MAX_DECODE_PIXELS", 1_199)
    with pytest.raises(tf.errors.InvalidArgumentError, match="40.*30"):
        tf.function(pp.decode_image)(tf.constant(jpeg))

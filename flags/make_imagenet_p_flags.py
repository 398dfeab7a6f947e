"""Flags of `tools.make_imagenet_p` (the fields of `generate_p.Options`)."""

from assemble_tf.robustness import generate_p, inputs, video
from flags import flag_table

TABLE = (
    (
        "string",
        "input_dir",
        None,
        "ImageNet validation images in class folders <wnid>/<file>.JPEG.",
    ),
    (
        "string",
        "tfrecord_pattern",
        None,
        "Glob of validation TFRecords (e.g. /data/validation-*) with "
        "image/encoded, image/class/synset and image/filename.",
    ),
    ("string", "output_dir", None, "Where the videos go."),
    ("integer", "resize", 256, "Shorter side after the bilinear resize."),
    (
        "integer",
        "crop",
        224,
        "Side of the centre crop (even with --codec=mp4v).",
    ),
    (
        "enum",
        "crop_rounding",
        "auto",
        inputs.CROP_ROUNDING_HELP,
        {"enum_values": list(inputs.CROP_ROUNDINGS)},
    ),
    (
        "string",
        "perturbations",
        None,
        "Comma-separated perturbations. Default: those of --set. Valid: "
        "gaussian_noise, shot_noise, motion_blur, zoom_blur, snow, "
        "brightness, translate, rotate, tilt, scale (test); "
        "speckle_noise, gaussian_blur, spatter, shear (validation).",
    ),
    (
        "enum",
        "set",
        None,
        "The perturbations when --perturbations is not given (refused "
        "beside it). Default: test.",
        {"enum_values": list(generate_p.SETS)},
    ),
    (
        "integer",
        "difficulty",
        1,
        "Noise level 1..3 of gaussian_noise, shot_noise and "
        "speckle_noise; 2 and 3 go to <name>_2, <name>_3. The other "
        "perturbations have one sequence and ignore it.",
    ),
    ("integer", "seed", 0, "Seed of the random perturbations."),
    (
        "enum",
        "codec",
        video.DEFAULT_CODEC,
        "x264: libx264 with the release's ffmpeg options (-crf 20, or "
        "-tune grain for the noise sequences; yuv444p, -preset "
        "veryslow) through imageio-ffmpeg's binary. mp4v: OpenCV's "
        "MPEG-4 Part 2 (4:2:0, even --crop), a less faithful fallback "
        "that needs no ffmpeg binary.",
        {"enum_values": list(video.CODECS)},
    ),
    ("integer", "workers", 1, "Worker processes (spawned)."),
    (
        "integer",
        "limit",
        0,
        "Only the first N images (sorted order); 0 = all.",
    ),
    ("bool", "progress", True, "Show a progress bar."),
    ("bool", "json", False, "Also print the summary as JSON."),
)


def define():
    """Defines the binary's flags."""
    flag_table.define_table(TABLE, __name__)

"""Reading and writing ImageNet-P sequences as .mp4 files.

ImageNet-P (Hendrycks & Dietterich, ICLR 2019, arXiv 1903.12261; reference
code github.com/hendrycks/robustness `ImageNet-P/`) stores each perturbation
sequence of one validation image as an .mp4 video, one frame per step, and
its evaluation reads every frame with OpenCV and converts BGR to RGB
(`ImageNet-P/video_loader.py`). The release encoded PNG frames with ffmpeg
and libx264; here frames are encoded with OpenCV's bundled FFmpeg and the
MPEG-4 Part 2 codec (fourcc `mp4v`), which needs no external binary.

`mp4v` is lossy (4:2:0 chroma, quantized DCT): a smooth 224 x 224 image
comes back within a mean absolute error of about 2.3 grey levels, and
frame-to-frame noise is partly smoothed away (sigma = 0.03 Gaussian noise:
mean absolute error about 6). The frame count and size are exact. Frame
sides must be even (4:2:0 halves both), else `write_video` refuses.
"""

import os

import numpy as np

FOURCC = "mp4v"
DEFAULT_FPS = 1.0  # the release: ffmpeg -r 1 -framerate 1


def _check_frames(frames):
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(
            f"frames must be uint8 [n, height, width, 3] RGB; received "
            f"shape {frames.shape}."
        )
    if frames.dtype != np.uint8:
        raise ValueError(
            f"frames must be uint8 (0..255); received dtype {frames.dtype}. "
            f"Convert with np.clip(x, 0, 255).astype(np.uint8)."
        )
    n, height, width, _ = frames.shape
    if n == 0:
        raise ValueError("frames is empty; a video needs at least one frame.")
    if height % 2 or width % 2:
        raise ValueError(
            f"frame size {height} x {width}: {FOURCC} stores 4:2:0 video, "
            f"so height and width must be even (e.g. crop to 224 x 224)."
        )
    return frames


def write_video(path, frames, fps=DEFAULT_FPS):
    """Writes RGB frames to an .mp4 file (fourcc `mp4v`).

    The video goes to a hidden temporary name in the same folder and is
    renamed onto `path` once complete, so an interrupted write never leaves
    a truncated `path` behind.

    Args:
        path: str, the .mp4 file to create (its folder must exist).
        frames: uint8 array [n, height, width, 3], RGB, even height and
            width.
        fps: float > 0, frames per second stored in the file (1 as in the
            release; it does not change the per-frame quality).

    Returns:
        `path`.

    Raises:
        ValueError: bad frames or fps, or OpenCV cannot encode the video.
        FileNotFoundError: the folder of `path` does not exist.
    """
    import cv2

    frames = _check_frames(frames)
    if not fps > 0:
        raise ValueError(f"fps must be > 0; received {fps}.")
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(
            f"cannot write {path}: the folder {folder} does not exist."
        )
    base = os.path.basename(path)
    # The extension tells FFmpeg the container, so it stays last.
    tmp = os.path.join(folder, f".{base}.{os.getpid()}.tmp.mp4")
    _, height, width, _ = frames.shape
    writer = cv2.VideoWriter(
        tmp,
        cv2.CAP_FFMPEG,
        cv2.VideoWriter_fourcc(*FOURCC),
        float(fps),
        (width, height),
    )
    try:
        if not writer.isOpened():
            raise ValueError(
                f"OpenCV could not open a {FOURCC} video writer for {path} "
                f"({width} x {height} at {fps} fps). Check that the folder "
                f"is writable and that this OpenCV build has FFmpeg "
                f"(cv2.getBuildInformation(), 'Video I/O')."
            )
        for frame in frames:
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    except BaseException:
        writer.release()
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    writer.release()
    if not os.path.isfile(tmp) or os.path.getsize(tmp) == 0:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise ValueError(
            f"OpenCV wrote no data for {path}; the {FOURCC} encoder failed."
        )
    os.replace(tmp, path)
    return path


def read_video(path):
    """Reads every frame of a video file as RGB.

    Args:
        path: str, an .mp4 file (any format OpenCV's FFmpeg reads).

    Returns:
        uint8 array [n, height, width, 3], RGB.

    Raises:
        FileNotFoundError: `path` does not exist.
        ValueError: OpenCV cannot open it or it holds no frame.
    """
    import cv2

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"video {path} does not exist.")
    capture = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
    frames = []
    try:
        if not capture.isOpened():
            raise ValueError(
                f"OpenCV cannot open {path} as a video; the file is not a "
                f"video or is damaged (regenerate it)."
            )
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    finally:
        capture.release()
    if not frames:
        raise ValueError(
            f"{path} holds no readable frame; the file is damaged or empty "
            f"(regenerate it)."
        )
    return np.stack(frames)

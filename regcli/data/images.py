"""`data.path` as an image folder: one subfolder per class, e.g. images/cat/*.png, images/dog/*.png.

The layout and the rules of `keras.utils.image_dataset_from_directory`: the class names are
the sorted subfolder names, and a class's images are the files anywhere under its subfolder
(sorted by folder, then name) whose name ends in .bmp, .gif, .jpeg, .jpg or .png. Any other
file is ignored, and so are hidden entries (a name starting with '.', such as macOS's
`._cat.png`). Each image is decoded with Pillow (what `keras.utils.load_img` decodes with),
converted to rgb or grayscale (`data.color_mode`), resized to `data.image_size` with bilinear
interpolation (image_dataset_from_directory's default; the aspect ratio is not kept) and
scaled to [0, 1] (x / 255). The images become rows in that order: float32 features of length
H * W * C, with `image_shape` (H, W, C) for conv layers, the same flat layout as the digits
source and an .npz of images.

Keras is not imported here: `regcli train` loads the data before it chooses the Keras backend
(`regcli.experiment`), and `regcli validate` only lists the folder (`scan_folder`): no image
is decoded, and the folder is refused when its images would not fit in memory.

Example:
    >>> folder = scan_folder(Path("images"), (32, 32), "rgb")
    >>> folder.class_names, len(folder.files)
    (['cat', 'dog'], 40)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from regcli.data.memory import available_bytes
from regcli.data.raw import Raw
from regcli.errors import DataError
from regcli.spec.checks import bytes_text
from regcli.spec.fields import COLOR_CHANNELS, IMAGE_SUFFIXES

__all__ = ["ImageFolder", "load_image_folder", "scan_folder"]

# Loading holds the decoded images, their train/val/test copies and the standardized copies; the
# training feed caches the training split once more: about 4 float32 copies of the data at the peak.
COPIES_IN_MEMORY = 4


@dataclass(frozen=True)
class ImageFolder:
    """The classes and image files of an image folder, listed but not decoded."""

    path: Path
    class_names: list[str]  # sorted subfolder names; class i is class_names[i]
    files: list[Path]  # every image, class by class
    labels: np.ndarray  # int64 class index of each file
    image_shape: tuple[int, int, int]  # (height, width, channels) of every decoded image
    where: str  # "data.path '/abs/images'", as messages name it


def scan_folder(path: Path, image_size: tuple[int, int], color_mode: str) -> ImageFolder:
    """List the folder's classes and images; refuse it when train could not use it.

    Raises:
        DataError: fewer than 2 class subfolders, a class without an image file, or more
            images than fit in this machine's memory at `image_size` (exit code 2).
    """
    where = f"data.path '{path}'"
    classes = _class_folders(path, where)
    per_class = {name: _image_files(path / name, where) for name in classes}
    empty = [name for name, files in per_class.items() if not files]
    if empty:
        names = ", ".join(f"'{name}'" for name in empty)
        raise DataError(
            f"Class subfolder{'s' if len(empty) > 1 else ''} {names} of {where} hold{'' if len(empty) > 1 else 's'} "
            f"no image file ({', '.join(IMAGE_SUFFIXES)}); every class needs at least one. Add images, or "
            f"remove {'those subfolders' if len(empty) > 1 else 'that subfolder'}."
        )
    files = [file for name in classes for file in per_class[name]]
    labels = np.repeat(np.arange(len(classes), dtype=np.int64), [len(per_class[name]) for name in classes])
    shape = (int(image_size[0]), int(image_size[1]), COLOR_CHANNELS[color_mode])
    _check_fits(len(files), shape, color_mode, where)
    return ImageFolder(path, classes, files, labels, shape, where)


def load_image_folder(path: Path, image_size: tuple[int, int], color_mode: str) -> Raw:
    """The decoded images of the folder as a `Raw`: pixels in [0, 1], one float32 row per image."""
    folder = scan_folder(path, image_size, color_mode)
    from PIL import Image

    pixels = np.empty((len(folder.files), *folder.image_shape), dtype=np.uint8)
    for i, file in enumerate(folder.files):
        pixels[i] = _decode(Image, file, folder, color_mode)
    x = pixels.reshape(len(pixels), -1).astype(np.float32)
    del pixels
    np.divide(x, 255, out=x)
    height, width, channels = folder.image_shape
    return Raw(
        x=x,
        y=folder.labels,
        feature_names=[f"x{i}" for i in range(x.shape[1])],
        where=folder.where,
        origin={
            "source": None,
            "path": str(path),
            "image_size": [height, width],
            "color_mode": color_mode,
            "pixel_scale": "x / 255: pixels in [0, 1]",
        },
        kind="classification",
        class_names=folder.class_names,
        image_shape=folder.image_shape,
        per_channel=True,
    )


def _class_folders(path: Path, where: str) -> list[str]:
    """The sorted names of the class subfolders; at least 2."""
    if not path.is_dir():  # removed since the spec loaded
        raise DataError(f"{where} does not exist or is not a folder. Check data.path.")
    try:
        with os.scandir(path) as entries:
            listed = [(entry.name, entry.is_dir()) for entry in entries if not entry.name.startswith(".")]
    except OSError as exc:
        raise DataError(f"{where} could not be listed ({exc.strerror or exc}). Check its permissions.") from None
    classes = sorted(name for name, is_dir in listed if is_dir)
    if len(classes) >= 2:
        return classes
    loose = sum(1 for name, is_dir in listed if not is_dir and name.lower().endswith(IMAGE_SUFFIXES))
    found = f"{len(classes)} class subfolder{'' if len(classes) == 1 else 's'}" + (
        f" ('{classes[0]}')" if classes else ""
    )
    hint = f" Its {loose} image file{'s' if loose != 1 else ''} directly inside belong in class subfolders." if loose else ""
    raise DataError(
        f"{where} has {found}; an image folder needs at least 2, one per class, each holding that class's "
        f"images (e.g. {path.name}/cat/1.png, {path.name}/dog/1.png).{hint}"
    )


def _image_files(folder: Path, where: str) -> list[Path]:
    """The image files anywhere under `folder`, sorted by folder then name; hidden entries skipped."""
    found = []
    try:
        for root, _, names in sorted(os.walk(folder, onerror=_raise), key=lambda entry: entry[0]):
            if any(part.startswith(".") for part in Path(root).relative_to(folder).parts):
                continue
            found += [
                Path(root) / name
                for name in sorted(names)
                if not name.startswith(".") and name.lower().endswith(IMAGE_SUFFIXES)
            ]
    except OSError as exc:
        raise DataError(
            f"{folder} of {where} could not be listed ({exc.strerror or exc}). Check its permissions."
        ) from None
    return found


def _raise(exc: OSError) -> None:
    raise exc


def _check_fits(n_images: int, shape: tuple[int, int, int], color_mode: str, where: str) -> None:
    """Refuse a folder whose float32 images, held about COPIES_IN_MEMORY times, exceed the memory available."""
    height, width, channels = shape
    need = n_images * height * width * channels * 4
    available = available_bytes()
    if available is None or need * COPIES_IN_MEMORY <= available:
        return
    smaller = f"e.g. [{max(1, height // 2)}, {max(1, width // 2)}]"
    gray = ", use data.color_mode: grayscale" if color_mode == "rgb" else ""
    raise DataError(
        f"{where} holds {n_images:,} images: at data.image_size [{height}, {width}] {color_mode} they are "
        f"{bytes_text(need)} as float32 ({n_images:,} x {height} x {width} x {channels} x 4 bytes), and loading, "
        f"splitting and training hold about {COPIES_IN_MEMORY} copies of them ({bytes_text(need * COPIES_IN_MEMORY)}), "
        f"more than the {bytes_text(available)} of memory available here. Lower data.image_size ({smaller})"
        f"{gray}, or use fewer images."
    )


def _decode(image: Any, file: Path, folder: ImageFolder, color_mode: str) -> np.ndarray:
    """One image as uint8 (height, width, channels): converted, resized (bilinear)."""
    height, width, channels = folder.image_shape
    try:
        with image.open(file) as img:
            converted = img.convert("RGB" if color_mode == "rgb" else "L")
            if converted.size != (width, height):
                converted = converted.resize((width, height), image.Resampling.BILINEAR)
            array = np.asarray(converted, dtype=np.uint8)
    except Exception as exc:  # Pillow raises many types (OSError, SyntaxError, ValueError, ...) for one bad file
        raise DataError(
            f"Image file '{file.relative_to(folder.path)}' of {folder.where} could not be decoded "
            f"({type(exc).__name__}: {exc}). Replace or remove it."
        ) from None
    return array.reshape(height, width, channels)

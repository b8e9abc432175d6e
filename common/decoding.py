"""Image files decoded into a model's input: an image checked from its header (its format, its pixel count) before
it is decoded, then converted to (channels, size, size) float32 pixels in [0, 1]. What training on a folder of
images and the predict command read files with (every format of common/images.py's IMAGE_SUFFIXES), and the server
its requests (PNG and JPEG); torch-free."""

import contextlib
import struct
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from common.errors import DataError, InputTooLarge

# The Pillow formats of IMAGE_SUFFIXES' files (PPM opens .ppm and .pgm), and of a server's requests.
IMAGE_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP", "TIFF", "PPM")
SERVED_FORMATS = ("PNG", "JPEG")
NAMES = {"WEBP": "WebP", "PPM": "PPM/PGM"}
# An image is refused above this many pixels before it is decoded, and a server's request above this many in all
# its images, so that one request cannot take the server's memory, or its worker for long: a 24-megapixel photo
# passes (about 1 s and 500 MB to decode with transparency, on one core), a decompression bomb does not.
MAX_PIXELS = 25_000_000


@contextlib.contextmanager
def _reading(source, name: str, formats: tuple[str, ...]) -> Iterator[None]:
    """What Pillow raises for a file that is not a whole image of ``formats``, as one-line DataErrors."""
    *others, last = (NAMES.get(kind, kind) for kind in formats)
    named = f"{', '.join(others)} or {last}" if others else last
    try:
        yield
    except Image.DecompressionBombError:
        raise InputTooLarge(f"{name} is over {MAX_PIXELS:,} pixels; scale it down first.") from None
    except UnidentifiedImageError:
        raise DataError(f"{name} is not a {named} image (the formats read here).") from None
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as error:  # truncated, corrupt chunks
        why = f" ({error})" if isinstance(source, str | Path) else ""
        raise DataError(f"{name} is not a readable {named} image{why}.") from None


def open_image(source, name: str | None = None, formats: tuple[str, ...] = SERVED_FORMATS) -> Image.Image:
    """An image of ``formats`` (Pillow's names; a server's PNG and JPEG unless told) opened from its header alone:
    another format is refused, and so is an image over MAX_PIXELS (``InputTooLarge``), before a single pixel is
    decoded. A GIF, WebP or TIFF of several frames gives its first."""
    name = name or str(source)
    with _reading(source, name, formats), warnings.catch_warnings():
        # Pillow warns from 89 megapixels and refuses from 179; MAX_PIXELS, checked here, is lower.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        image = Image.open(source, formats=formats)
    width, height = image.size
    if width * height > MAX_PIXELS:
        image.close()
        raise InputTooLarge(f"{name} is {width}x{height}, over {MAX_PIXELS:,} pixels; scale it down first.")
    return image


def load_image(
    source,
    resize: bool = False,
    invert: bool = False,
    name: str | None = None,
    to_resize: str = "pass resize=True",
    size: int = 28,
    channels: int = 1,
    formats: tuple[str, ...] = IMAGE_FORMATS,
    reduced: bool = True,
) -> tuple[np.ndarray, str]:
    """A (channels, size, size) float32 array in [0, 1] from an image file of ``formats`` (or a file object, called
    ``name`` in messages), converted to grayscale (1 channel) or RGB (3), and a note of what was done to the image to
    get it (a resize), or "". Checked from its header first (``open_image``); a JPEG photo's EXIF orientation is
    applied, as viewers show it. ``to_resize`` ends the refusal of an image of another size: the argument to give,
    as the caller names it (the predict command's is ``--resize``). Resized, a JPEG at least
    four times ``size`` each way is decoded by libjpeg at 1/2, 1/4 or 1/8 of its size, never below twice ``size``
    (Pillow's ``draft``), then resized as any other: a 12-megapixel photo read for 64x64 decodes 1/64 of its pixels.
    Twice, not once, so that the resize still averages as it does from the full image: its pixels then differ from
    the full decode's by a few levels of 255 where a pixel's neighbours differ by tens (docs/own_data.md)."""
    name = name or str(source)
    with open_image(source, name, formats) as image:
        return image_pixels(image, resize, invert, name, to_resize, size, channels, formats, reduced)


def training_pixels(path, size: int, channels: int) -> np.ndarray:
    """A file's pixels as training on a folder reads them: ``load_image`` resized to ``size``, a large JPEG decoded
    reduced, as uint8 (what the image cache holds). A function of the module, so that decoding processes can be
    given it (common/images.py's read_images)."""
    pixels = load_image(path, resize=True, size=size, channels=channels)[0]
    return np.rint(pixels * 255).astype(np.uint8)


def image_pixels(
    image: Image.Image,
    resize: bool,
    invert: bool,
    name: str,
    to_resize: str = "pass resize=True",
    size: int = 28,
    channels: int = 1,
    formats: tuple[str, ...] = SERVED_FORMATS,
    reduced: bool = True,
) -> tuple[np.ndarray, str]:
    """``load_image`` of an image ``open_image`` gave (of ``formats``, named in errors): its pixels decoded, and the
    note. Training, the predict command and the server all read a large JPEG reduced, so that a photo gives a
    model the pixels it was trained on; ``reduced=False`` decodes it whole (bench/camera_photos.py compares)."""
    with _reading(image.filename or None, name, formats):
        box, shown = None, image.size  # box: the part of the decoded pixels that is resized, before the rotation
        if reduced and resize and image.format == "JPEG":
            # The mode is left alone (convert() makes L or RGB as ever). The box: the image within the decoded
            # pixels, whose last row and column may be a partial 8x8 block's, stretched if resized whole.
            drafted = image.draft(None, (2 * size, 2 * size))
            box = drafted[1] if drafted else None
        if image.format == "JPEG":  # cameras' rotation; reading a PNG's would decode it a second time
            orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
            if box is not None:
                box = _turned(box, image.size, orientation)
            shown = shown[::-1] if orientation in (5, 6, 7, 8) else shown  # turned a quarter: as a viewer shows it
            ImageOps.exif_transpose(image, in_place=True)
        width, height = image.size
        wrong_size = f"{name} is {width}x{height}, not {size}x{size}; {to_resize}"
        pixels, note = _pixels(image, resize, invert, wrong_size, size, channels, box)
        note = note and f"resized from {shown[0]}x{shown[1]}"  # the file's size, not its reduced decode's
    return (1 - pixels if invert else pixels), note


def _turned(box: tuple[float, ...], size: tuple[int, int], orientation: int) -> tuple[float, ...]:
    """``box`` in an image of ``size`` where it lands once the image is turned as its EXIF ``orientation`` says
    (ImageOps.exif_transpose's 2 to 8: mirrored, turned, or both)."""
    w, h = size
    move = {
        2: lambda x, y: (w - x, y),
        3: lambda x, y: (w - x, h - y),
        4: lambda x, y: (x, h - y),
        5: lambda x, y: (y, x),
        6: lambda x, y: (h - y, x),
        7: lambda x, y: (h - y, w - x),
        8: lambda x, y: (y, w - x),
    }.get(orientation)
    if move is None:
        return box
    (x0, y0), (x1, y1) = move(*box[:2]), move(*box[2:])
    return min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)


def _pixels(
    image: Image.Image,
    resize: bool,
    invert: bool,
    wrong_size: str,
    size: int,
    channels: int,
    box: tuple[float, ...] | None = None,
) -> tuple[np.ndarray, str]:
    """Pixels in [0, 1] from any mode an image opens in: 16-bit grayscale keeps its 65,536 levels (Pillow's
    conversion to 8 bits would clip them), and transparent pixels become the background (black, or white before
    ``invert``), which is what a garment's cut-out stands on."""
    mode = "L" if channels == 1 else "RGB"
    if image.mode.startswith("I"):  # a 16-bit grayscale PNG: I;16 (or I in older Pillow)
        image = Image.fromarray(np.asarray(image, dtype=np.float32) / 65535, mode="F")
        levels = 1.0
    else:
        if image.mode in ("LA", "PA", "RGBA") or "transparency" in image.info:
            rgba = image.convert("RGBA")
            image = Image.new(mode, rgba.size, (255 if invert else 0,) * channels)  # the model's mode, not RGBA
            image.paste(rgba.convert(mode), mask=rgba.getchannel("A"))
        image = image.convert("RGB").convert(mode) if image.mode == "CMYK" else image.convert(mode)
        levels = 255.0
    note = ""
    if image.size != (size, size):
        if not resize:
            raise DataError(f"{wrong_size} to scale it.")
        note = f"resized from {image.size[0]}x{image.size[1]}"
        image = image.resize((size, size), Image.Resampling.LANCZOS, box=box)
    pixels = np.asarray(image, dtype=np.float32) / levels
    pixels = pixels.reshape(1, size, size) if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
    if len(pixels) != channels:  # 16-bit grayscale for an RGB model: the one channel three times
        pixels = np.repeat(pixels, channels, axis=0)
    return np.clip(pixels, 0, 1), note  # LANCZOS overshoots a little; 8 bits saturate, floats must be clipped

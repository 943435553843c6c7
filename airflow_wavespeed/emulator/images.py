"""Image helpers of the emulator.

Pillow is imported inside the rendering functions only: importing the emulator (or a DAG that
references it) must stay cheap, and magic-byte sniffing does not need Pillow at all.
"""

from __future__ import annotations

import colorsys
import hashlib
import io
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image as PILImage

_Measure = Callable[[str], float]

ASPECT_RATIOS: tuple[str, ...] = (
    "1:1",
    "2:3",
    "3:2",
    "1:2",
    "2:1",
    "1:3",
    "3:1",
    "3:4",
    "4:3",
    "4:5",
    "5:4",
    "9:16",
    "16:9",
    "9:21",
    "21:9",
)

# The three sizes the product page names; every other ratio gets a 1536 px longest side.
_FIXED_SIZES: dict[str, tuple[int, int]] = {"1:1": (1024, 1024), "2:3": (1024, 1536), "3:2": (1536, 1024)}
_LONG_SIDE = 1536

CONTENT_TYPES: dict[str, str] = {
    "png": "image/png",
    "jpeg": "image/jpeg",
    "gif": "image/gif",
    "webp": "image/webp",
    "bmp": "image/bmp",
    "tiff": "image/tiff",
}
EXTENSIONS: dict[str, str] = {
    "png": "png",
    "jpeg": "jpg",
    "gif": "gif",
    "webp": "webp",
    "bmp": "bmp",
    "tiff": "tiff",
}


def detect_image_type(data: bytes) -> str | None:
    """Name of the image format from its magic bytes, or None for anything the API would refuse."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if len(data) >= 12 and data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return "webp"
    if data.startswith(b"BM") and len(data) >= 26:
        return "bmp"
    if data.startswith((b"II*\x00", b"MM\x00*")):
        return "tiff"
    return None


def output_size(aspect_ratio: str, scale: float = 1.0) -> tuple[int, int]:
    """Pixel size the real model produces for a ratio, times the emulator's scale factor."""
    if aspect_ratio in _FIXED_SIZES:
        width, height = _FIXED_SIZES[aspect_ratio]
    else:
        w_part, h_part = (int(part) for part in aspect_ratio.split(":"))
        short = max(16, round(_LONG_SIDE * min(w_part, h_part) / max(w_part, h_part) / 16) * 16)
        width, height = (_LONG_SIDE, short) if w_part >= h_part else (short, _LONG_SIDE)
    return max(1, round(width * scale)), max(1, round(height * scale))


def nearest_aspect_ratio(width: int, height: int) -> str:
    """The allowed ratio closest to an input image's shape (compared on a log scale)."""
    target = math.log(width / height)

    def distance(ratio: str) -> float:
        w_part, h_part = (int(part) for part in ratio.split(":"))
        return abs(math.log(w_part / h_part) - target)

    return min(ASPECT_RATIOS, key=distance)


def prompt_colour(prompt: str) -> tuple[int, int, int]:
    """A saturated colour whose hue is a hash of the prompt, so different prompts look different."""
    hue = int.from_bytes(hashlib.sha256(prompt.encode("utf-8")).digest()[:2], "big") / 65536
    red, green, blue = colorsys.hsv_to_rgb(hue, 0.85, 1.0)
    return round(red * 255), round(green * 255), round(blue * 255)


def image_dimensions(data: bytes) -> tuple[int, int]:
    """Width and height of an encoded image (reads the header only)."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return image.size


def render_edit(
    inputs: Sequence[bytes], prompt: str, aspect_ratio: str | None, scale: float, output_format: str
) -> bytes:
    """Fake an edit visibly: fit the first input to the ratio, tint it, add thumbnails and the prompt.

    With no ``aspect_ratio`` the ratio is detected from the first input, like the newer API does.
    """
    from PIL import Image, ImageOps

    first = open_rgb(inputs[0])
    ratio = aspect_ratio or nearest_aspect_ratio(*first.size)
    size = output_size(ratio, scale)
    canvas = ImageOps.fit(first, size, method=Image.Resampling.BILINEAR)
    canvas = Image.blend(canvas, Image.new("RGB", size, prompt_colour(prompt)), 0.35)
    _paste_thumbnails(canvas, inputs[1:])
    draw_banner(canvas, prompt)
    return _encode(canvas, output_format)


def render_generated(prompt: str, aspect_ratio: str, scale: float, output_format: str) -> bytes:
    """Output of a generic (non-edit) model: a gradient coloured by the prompt, captioned with it."""
    from PIL import Image

    size = output_size(aspect_ratio, scale)
    colour = prompt_colour(prompt)
    complement = (255 - colour[0], 255 - colour[1], 255 - colour[2])
    mask = Image.linear_gradient("L").rotate(45, resample=Image.Resampling.BILINEAR, expand=False)
    mask = mask.resize(size, Image.Resampling.BILINEAR)
    canvas = Image.composite(Image.new("RGB", size, colour), Image.new("RGB", size, complement), mask)
    if prompt:
        draw_banner(canvas, prompt)
    return _encode(canvas, output_format)


def render_sample_input(width: int = 512, height: int = 512) -> bytes:
    """A colourful PNG to use as an edit input in demos and tests when no real photo is at hand."""
    from PIL import Image, ImageDraw

    canvas = Image.new("RGB", (width, height), (40, 120, 200))
    draw = ImageDraw.Draw(canvas)
    for index in range(7):
        box = (
            index * width // 16,
            index * height // 16,
            width - index * width // 16,
            height - index * height // 16,
        )
        colour = prompt_colour(f"ring {index}")
        draw.ellipse(box, outline=colour, width=max(1, width // 64))
    draw.rectangle((width // 3, height // 3, 2 * width // 3, 2 * height // 3), fill=(250, 220, 60))
    return _encode(canvas, "png")


def open_rgb(data: bytes) -> PILImage.Image:
    """Decode any accepted format to RGB (first frame of animations, alpha dropped)."""
    from PIL import Image

    image = Image.open(io.BytesIO(data))
    image.draft("RGB", (2048, 2048))  # JPEG: decode at reduced size, much faster for big photos
    if image.mode in {"RGBA", "LA", "P", "PA"}:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _paste_thumbnails(canvas: PILImage.Image, others: Sequence[bytes]) -> None:
    """The extra reference images as small framed thumbnails along the top-right corner."""
    if not others:
        return
    from PIL import ImageOps

    side = max(4, min(canvas.size) // 5)
    margin = max(1, side // 10)
    per_row = max(1, (canvas.width - margin) // (side + margin))
    for index, data in enumerate(others):
        thumb = ImageOps.fit(open_rgb(data), (side, side))
        thumb = ImageOps.expand(thumb, border=max(1, side // 32), fill=(255, 255, 255))
        row, column = divmod(index, per_row)
        x = canvas.width - (column + 1) * (side + margin)
        y = margin + row * (side + margin)
        canvas.paste(thumb, (max(0, x), y))


def draw_banner(canvas: PILImage.Image, prompt: str) -> None:
    """The prompt, wrapped to at most three lines, on a semi-opaque band at the bottom."""
    from PIL import Image, ImageDraw, ImageFont

    font_size = max(8, round(canvas.height / 28))
    font = ImageFont.load_default(size=font_size)
    padding = max(2, font_size // 2)
    lines = _wrap(prompt, lambda text: font.getlength(text), canvas.width - 2 * padding, max_lines=3)
    line_height = round(font_size * 1.25)
    band_height = min(canvas.height, len(lines) * line_height + 2 * padding)
    overlay = Image.new("RGBA", canvas.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    top = canvas.height - band_height
    draw.rectangle((0, top, canvas.width, canvas.height), fill=(0, 0, 0, 165))
    for index, line in enumerate(lines):
        draw.text((padding, top + padding + index * line_height), line, font=font, fill=(255, 255, 255, 255))
    canvas.paste(Image.alpha_composite(canvas.convert("RGBA"), overlay).convert("RGB"))


def _wrap(text: str, measure: _Measure, width: float, max_lines: int) -> list[str]:
    """Greedy word wrap; the last line ends with '...' when the prompt does not fit."""
    words = text.split() or [""]
    lines: list[str] = []
    current = ""
    for word in words:
        candidate = f"{current} {word}".strip()
        if measure(candidate) <= width or not current:
            current = candidate
            continue
        lines.append(current)
        current = word
    lines.append(current)
    lines = [_clip(line, measure, width) for line in lines]
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = _clip(lines[-1] + "...", measure, width, force_ellipsis=True)
    return lines


def _clip(line: str, measure: _Measure, width: float, force_ellipsis: bool = False) -> str:
    """Cut one line to the width, marking the cut with '...'."""
    if measure(line) <= width and not (force_ellipsis and not line.endswith("...")):
        return line
    base = line.removesuffix("...")
    while base and measure(base + "...") > width:
        base = base[:-1]
    return base + "..."


def _encode(image: PILImage.Image, output_format: str) -> bytes:
    """PNG (fast compression: these are throwaway test images) or JPEG bytes."""
    buffer = io.BytesIO()
    if output_format == "jpeg":
        image.convert("RGB").save(buffer, format="JPEG", quality=90)
    else:
        image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()

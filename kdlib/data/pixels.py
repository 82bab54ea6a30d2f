"""Any decoded image as 8-bit RGB, its values scaled, never clipped.

PIL's ``convert("RGB")`` is right for 8-bit modes (L, P, LA, RGBA, CMYK, 1; 16-bit RGB PNGs already open as 8-bit
RGB), but it clips 16-bit grayscale (I;16) and 32-bit (I, F) images to 255, so a 16-bit PNG decodes to an all-white
image. Those modes are scaled to 8 bits first, with PIL's own ``point``.
"""

from __future__ import annotations

SIXTEEN_BIT = 65535


class UnsupportedPixelsError(ValueError):
    """The image's pixel values have no 8-bit reading kdlib can vouch for (the message says which)."""


def to_rgb(image):
    """``image`` (a PIL image of any mode) as an 8-bit RGB PIL image. 16-bit and 32-bit integer images (I;16*, I)
    hold values 0-65535, scaled by 255/65535; float images (F) hold 0-1 (scaled to 0-255) or 0-255 (kept); both are
    rounded to the nearest level.
    Anything else is an UnsupportedPixelsError."""
    mode = image.mode
    if mode.startswith("I"):
        image = image.convert("I")  # lossless for I;16, I;16B, I;16L
        low, high = image.getextrema()
        if low < 0 or high > SIXTEEN_BIT:
            raise UnsupportedPixelsError(f"{mode} pixels range from {low} to {high}, beyond 16 bits")
        image = image.point(lambda v: v * (255 / SIXTEEN_BIT) + 0.5).convert("L")  # + 0.5: L truncates; round
    elif mode == "F":
        low, high = image.getextrema()
        if low < 0 or high > 255:
            raise UnsupportedPixelsError(f"float pixels range from {low} to {high}, neither 0-1 nor 0-255")
        scale = 255 if high <= 1 else 1
        image = image.point(lambda v: v * scale + 0.5).convert("L")
    return image.convert("RGB")

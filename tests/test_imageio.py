"""Decoding what users upload: every odd image becomes upright uint8 RGB or a clear ValueError."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from sodviz.imageio import MAX_SIDE, decode_image, encode_jpeg, encode_png, read_image


def _encode(picture: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _halves(size=(40, 20)) -> Image.Image:
    """RGB picture: left half red, right half blue."""
    pixels = np.zeros((size[1], size[0], 3), np.uint8)
    pixels[:, : size[0] // 2] = (255, 0, 0)
    pixels[:, size[0] // 2 :] = (0, 0, 255)
    return Image.fromarray(pixels)


def test_plain_png_round_trips_without_notices():
    picture = _halves()
    decoded = decode_image(encode_png(np.asarray(picture)))
    np.testing.assert_array_equal(decoded.image, np.asarray(picture))
    assert decoded.notices == () and decoded.scale == 1.0 and decoded.image.dtype == np.uint8


def test_jpeg_for_display_round_trips_closely_and_shrinks_with_quality():
    picture = np.asarray(_halves((96, 64))).copy()
    picture[10:30, 10:50] = np.linspace(0, 255, 40, dtype=np.uint8)[None, :, None]  # a ramp
    data = encode_jpeg(picture[:, ::-1])  # a strided view, as a crop or flip hands it over
    assert data[:3] == b"\xff\xd8\xff"  # JPEG
    decoded = decode_image(data).image
    assert decoded.shape == picture.shape
    assert np.abs(decoded.astype(int) - picture[:, ::-1]).mean() < 8
    assert len(encode_jpeg(picture, quality=50)) < len(data) < len(encode_jpeg(picture, quality=100))
    gray = decode_image(encode_jpeg(picture[..., 0])).image  # one channel: read back as RGB
    assert gray.shape == picture.shape and np.abs(gray[..., 0].astype(int) - picture[..., 0]).mean() < 8


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "not a readable image"),  # empty upload
        (b"name,score\nfoo,1\n", "not a readable image"),  # a CSV renamed .jpg
        (_encode(_halves((64, 64)), "JPEG")[:300], "not a readable image"),  # truncated JPEG
        (encode_png(np.zeros((1, 1, 3), np.uint8)), "1x1 pixels"),  # 1x1
        (encode_png(np.zeros((4, 300, 3), np.uint8)), "at least 8x8"),  # a thin strip
    ],
)
def test_unusable_bytes_raise_a_clear_value_error(data, message):
    with pytest.raises(ValueError, match=message):
        decode_image(data, name="upload.jpg")


def test_huge_jpeg_is_downscaled_with_a_notice():
    picture = Image.new("RGB", (12000, 9000), (30, 120, 200))
    decoded = decode_image(_encode(picture, "JPEG", quality=80), name="big.jpg")
    assert decoded.image.shape == (3072, MAX_SIDE, 3)
    assert decoded.scale == pytest.approx(3072 / 9000)
    assert any("12000x9000" in notice and "4096x3072" in notice for notice in decoded.notices)
    np.testing.assert_allclose(decoded.image[1000, 1000], (30, 120, 200), atol=3)


def test_sixteen_bit_png_is_rescaled_to_eight_bits():
    values = np.array([[0, 32896, 65535] * 4] * 12, np.uint16)
    decoded = decode_image(_encode(Image.fromarray(values), "PNG"), name="depth.png")
    np.testing.assert_array_equal(decoded.image[0, :3, 0], [0, 128, 255])
    assert (decoded.image[..., 0] == decoded.image[..., 2]).all()
    assert any("8 bits" in notice for notice in decoded.notices)


def test_cmyk_jpeg_becomes_rgb():
    red = Image.new("CMYK", (16, 16), (0, 255, 255, 0))
    decoded = decode_image(_encode(red, "JPEG", quality=95), name="print.jpg")
    np.testing.assert_allclose(decoded.image[8, 8], (255, 0, 0), atol=8)
    assert decoded.notices == ("print.jpg is CMYK; converted to RGB (colours may shift slightly).",)


def test_transparency_is_flattened_on_white():
    pixels = np.zeros((16, 16, 4), np.uint8)
    pixels[:, :8] = (255, 0, 0, 255)  # opaque red left, fully transparent right
    decoded = decode_image(encode_png(pixels))
    np.testing.assert_array_equal(decoded.image[0, 0], (255, 0, 0))
    np.testing.assert_array_equal(decoded.image[0, 15], (255, 255, 255))
    assert any("transparency" in notice for notice in decoded.notices)


def test_grayscale_becomes_three_equal_channels():
    gray = np.tile(np.arange(0, 256, 16, dtype=np.uint8), (16, 1))
    decoded = decode_image(_encode(Image.fromarray(gray), "PNG"), name="pan.png")
    assert decoded.image.shape == (16, 16, 3)
    np.testing.assert_array_equal(decoded.image[..., 1], gray)
    assert decoded.notices == ("pan.png is grayscale; its gray is copied to all three colour channels.",)


def test_sixteen_bit_rgb_png_is_shown_at_eight_bits_with_a_notice():
    import cv2

    values = (np.arange(16 * 16 * 3).reshape(16, 16, 3) * 85).astype(np.uint16)  # up to 65195
    ok, data = cv2.imencode(".png", values)  # 48-bit RGB (PIL cannot write it)
    decoded = decode_image(data.tobytes(), name="hdr.png")
    assert ok and decoded.image.dtype == np.uint8
    np.testing.assert_allclose(decoded.image[..., ::-1].astype(int), values >> 8, atol=1)  # cv2 is BGR
    assert decoded.notices == ("hdr.png has 16 bits per channel; shown at 8 bits per channel.",)


def test_colour_png_and_palette_png_get_no_notice():
    colour = _halves()
    assert decode_image(_encode(colour, "PNG")).notices == ()
    assert decode_image(_encode(colour.convert("P"), "PNG")).notices == ()


def test_exif_rotated_photo_is_shown_upright():
    exif = Image.Exif()
    exif[0x0112] = 6  # stored turned 90 degrees counter-clockwise: display turns it clockwise
    decoded = decode_image(_encode(_halves((40, 20)), "PNG", exif=exif), name="phone.png")
    assert decoded.notices == ("phone.png carries EXIF orientation 6; shown upright (rotated).",)
    assert decoded.image.shape == (40, 20, 3)
    np.testing.assert_array_equal(decoded.image[0, 0], (255, 0, 0))  # the left half is now on top
    np.testing.assert_array_equal(decoded.image[-1, 0], (0, 0, 255))
    assert decoded.scale == 1.0


def test_animated_gif_gives_its_first_frame_with_a_notice():
    frames = [Image.new("RGB", (16, 16), color) for color in ((255, 0, 0), (0, 0, 255), (0, 255, 0))]
    data = _encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    decoded = decode_image(data, name="anim.gif")
    np.testing.assert_array_equal(decoded.image[8, 8], (255, 0, 0))
    assert any("3 frames" in notice for notice in decoded.notices)


def test_read_image_of_a_missing_file_or_a_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such image file"):
        read_image(tmp_path / "missing.png")
    with pytest.raises(FileNotFoundError, match="is a folder"):
        read_image(tmp_path)

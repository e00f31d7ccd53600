"""aecodec.codec.images: one conversion rule per Pillow mode, frames, EXIF, names in messages, Pillow's failures."""

from __future__ import annotations

import io
import struct
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFile, ImageOps

from aecodec.codec import format as fmt
from aecodec.codec.images import prepare_image
from aecodec.errors import CodecError
from tests.helpers import smooth_image, unknown_pixel_format_texture


def prepared(image):
    """``prepare_image(image)`` and the messages of the UserWarnings it gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = prepare_image(image)
    return result, [str(w.message) for w in caught if issubclass(w.category, UserWarning)]


# ----------------------------------------------------------------------------- one rule per mode
def test_32_bit_integer_tiff_with_8_bit_values_is_read_as_it_is(tmp_path):
    values = np.arange(256, dtype=np.int32).reshape(8, 32)
    Image.fromarray(values).save(tmp_path / "gray.tif")
    with Image.open(tmp_path / "gray.tif") as im:
        assert im.mode == "I"  # how Pillow opens a 32-bit integer TIFF
    (rgb, alpha, layout), said = prepared(tmp_path / "gray.tif")
    assert said == [] and layout == fmt.Layout.GRAY and alpha is None
    np.testing.assert_array_equal(rgb, np.repeat(values[..., None], 3, axis=2))


def test_full_range_32_bit_integer_tiff_is_stretched_to_0_255_and_says_so(tmp_path):
    lo, hi = np.iinfo(np.int32).min, np.iinfo(np.int32).max
    Image.fromarray(np.array([[lo, lo + 2**32 // 255, 0, hi]], np.int32)).save(tmp_path / "wide.tif")
    (rgb, _, layout), said = prepared(tmp_path / "wide.tif")
    assert layout == fmt.Layout.GRAY
    assert rgb[0, :, 0].tolist() == [0, 1, 128, 255]  # (v − min) · 255 / (max − min), rounded
    assert len(said) == 1 and "32-bit integer" in said[0] and f"{lo}…{hi}" in said[0] and "stretched" in said[0]


def test_negative_32_bit_integers_are_stretched_from_their_own_range():
    (rgb, _, _), said = prepared(Image.fromarray(np.array([[-100, 0, 155]], np.int32)))
    assert rgb[0, :, 0].tolist() == [0, 100, 255] and "-100…155" in said[0]


def test_32_bit_integers_up_to_65535_are_treated_as_16_bit_and_say_so():
    (rgb, _, _), said = prepared(Image.fromarray(np.array([[0, 300, 4095, 65535]], np.int32)))
    assert rgb[0, :, 0].tolist() == [0, 1, 16, 255]  # ÷ 257, rounded
    assert said == ["32-bit integer image with values up to 65535 treated as 16-bit, converted to 8-bit (÷ 257, "
                    "rounded)"]


@pytest.mark.parametrize("mode,dtype", [("I;16", "<u2"), ("I;16L", "<u2"), ("I;16B", ">u2"), ("I;16N", "=u2")])
def test_16_bit_modes_are_divided_by_257_with_a_warning(mode, dtype):
    values = np.array([[0, 128, 129, 257 * 100, 65535]])
    (rgb, _, layout), said = prepared(Image.frombytes(mode, (5, 1), values.astype(dtype).tobytes()))
    assert rgb[0, :, 0].tolist() == [0, 0, 1, 100, 255] and layout == fmt.Layout.GRAY
    assert len(said) == 1 and "16-bit" in said[0] and "8-bit" in said[0]


def test_16_bit_png_is_divided_by_257_with_a_warning(tmp_path):
    Image.fromarray(np.array([[0, 257 * 7, 65535]], np.uint16)).save(tmp_path / "deep.png")
    (rgb, _, _), said = prepared(tmp_path / "deep.png")
    assert rgb[0, :, 0].tolist() == [0, 7, 255] and len(said) == 1 and "16-bit" in said[0]


def test_float_image_of_exact_8_bit_values_converts_silently_and_losslessly():
    values = np.arange(256, dtype=np.float32).reshape(16, 16)
    (rgb, _, layout), said = prepared(Image.fromarray(values))
    assert said == [] and layout == fmt.Layout.GRAY
    np.testing.assert_array_equal(rgb[..., 0], values.astype(np.uint8))


@pytest.mark.parametrize("value,pixel,loss", [(float("nan"), 0, "NaN"), (300.0, 255, "outside 0–255"),
                                              (-4.0, 0, "outside 0–255"), (7.25, 7, "fractions")])
def test_float_image_says_what_its_conversion_loses(value, pixel, loss):
    (rgb, _, _), said = prepared(Image.fromarray(np.array([[value, 200.0]], np.float32)))
    assert rgb[0, :, 0].tolist() == [pixel, 200]
    assert len(said) == 1 and "float" in said[0] and loss in said[0]
    assert all(other not in said[0] for other in {"NaN", "outside 0–255", "fractions"} - {loss})


def _transparent_palette() -> Image.Image:
    im = Image.fromarray(smooth_image(6, 8)).convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    im.info["transparency"] = 3
    return im


@pytest.mark.parametrize("make,layout", [
    (lambda: Image.fromarray(smooth_image(6, 8, channels=1) > 100), fmt.Layout.GRAY),  # 1
    (lambda: Image.fromarray(smooth_image(6, 8)).convert("P", palette=Image.Palette.ADAPTIVE), fmt.Layout.RGB),
    (_transparent_palette, fmt.Layout.RGBA),
    (lambda: _transparent_palette().convert("PA"), fmt.Layout.RGBA),
    (lambda: Image.fromarray(np.dstack([smooth_image(6, 8, channels=1), np.full((6, 8), 77, np.uint8)])),
     fmt.Layout.GRAY_ALPHA),  # LA
    (lambda: Image.fromarray(smooth_image(6, 8)).convert("RGBX"), fmt.Layout.RGB),
])
def test_8_bit_modes_convert_exactly_and_silently(make, layout):
    im = make()
    (rgb, alpha, got), said = prepared(im)
    assert said == [] and got == layout
    reference = np.asarray(im.convert("RGBA"))
    np.testing.assert_array_equal(rgb, reference[..., :3])
    if layout in fmt.Layout.WITH_ALPHA:
        np.testing.assert_array_equal(alpha, reference[..., 3])
    if im.mode == "1":
        assert set(np.unique(rgb)) == {0, 255}


@pytest.mark.parametrize("mode,layout", [("La", fmt.Layout.GRAY_ALPHA), ("RGBa", fmt.Layout.RGBA)])
def test_premultiplied_modes_become_plain_alpha(mode, layout):
    colour = (90,) if mode == "La" else (90, 60, 30)
    (rgb, alpha, got), said = prepared(Image.new(mode, (3, 2), colour + (255,)))
    assert said == [] and got == layout and np.all(alpha == 255) and np.all(rgb[0, 0] == colour)


@pytest.mark.parametrize("mode,transparent", [("L", 9), ("RGB", (1, 2, 3))])
def test_transparent_colour_of_a_png_becomes_alpha(tmp_path, mode, transparent):
    im = Image.new(mode, (4, 2), transparent)
    im.paste(Image.new(mode, (2, 2), 200 if mode == "L" else (200, 100, 50)), (2, 0))
    im.save(tmp_path / "keyed.png", transparency=transparent)
    (rgb, alpha, layout), said = prepared(tmp_path / "keyed.png")
    assert said == [] and layout == (fmt.Layout.GRAY_ALPHA if mode == "L" else fmt.Layout.RGBA)
    assert alpha.tolist() == [[0, 0, 255, 255]] * 2


def test_cmyk_is_converted_to_rgb_with_a_warning_that_no_profile_was_used():
    (rgb, alpha, layout), said = prepared(Image.new("CMYK", (2, 2), (0, 255, 255, 0)))
    assert layout == fmt.Layout.RGB and alpha is None and rgb[0, 0].tolist() == [255, 0, 0]
    assert len(said) == 1 and "CMYK" in said[0] and "colour profile" in said[0]


@pytest.mark.parametrize("mode", ["YCbCr", "LAB", "HSV"])
def test_other_colour_spaces_become_rgb_silently(mode):
    im = Image.fromarray(smooth_image(6, 8)).convert(mode)
    (rgb, _, layout), said = prepared(im)
    assert said == [] and layout == fmt.Layout.RGB
    np.testing.assert_array_equal(rgb, np.asarray(im.convert("RGB")))


def test_a_mode_without_a_rule_is_refused_naming_it(monkeypatch):
    im = Image.new("L", (2, 2))
    im._mode = "XYZ"  # no Pillow 13 file opens in a mode outside the table; this stands for one
    monkeypatch.setattr(ImageOps, "exif_transpose", lambda image, **kwargs: image)  # (a copy would be L again)
    with pytest.raises(CodecError, match=r"^unsupported image mode XYZ$"):
        prepare_image(im)


# ----------------------------------------------------------------------------- frames
def test_animated_gif_warns_that_only_its_first_frame_is_encoded(tmp_path):
    frames = [Image.new("RGB", (8, 6), colour) for colour in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    (rgb, _, _), said = prepared(tmp_path / "anim.gif")
    assert said == [f"{tmp_path / 'anim.gif'}: 3 frames; only the first is encoded"]
    assert np.all(rgb == (255, 0, 0))


# ----------------------------------------------------------------------------- names in messages
def test_file_like_input_is_named_by_its_name_or_as_input():
    stdin = io.BytesIO(b"not an image")
    stdin.name = "<stdin>"
    with pytest.raises(CodecError) as named:
        prepare_image(stdin)
    with pytest.raises(CodecError) as unnamed:
        prepare_image(io.BytesIO(b"not an image"))
    assert str(named.value) == "<stdin>: cannot read image (unknown format or corrupt file)"
    assert str(unnamed.value).startswith("input: ") and "BytesIO" not in str(unnamed.value)


def test_empty_input_says_so_in_one_line(tmp_path):
    stdin = io.BytesIO(b"")
    stdin.name = "<stdin>"
    with pytest.raises(CodecError, match=r"^<stdin>: empty input$"):
        prepare_image(stdin)
    (tmp_path / "zero.jpg").write_bytes(b"")
    with pytest.raises(CodecError) as err:
        prepare_image(tmp_path / "zero.jpg")
    assert str(err.value) == f"{tmp_path / 'zero.jpg'}: empty input"


# ----------------------------------------------------------------------------- whatever Pillow raises
def test_file_pillow_fails_on_with_a_non_os_error_is_a_one_line_codec_error(tmp_path):
    (tmp_path / "texture.dds").write_bytes(unknown_pixel_format_texture())
    with pytest.raises(CodecError) as err:
        prepare_image(tmp_path / "texture.dds")
    message = str(err.value)
    assert message.startswith(f"{tmp_path / 'texture.dds'}: cannot read image (") and "\n" not in message


@pytest.mark.parametrize("error,message", [
    *((e, r"cannot read image \(.+\)") for e in (struct.error("unpack requires a buffer of 4 bytes"), EOFError(),
                                                  IndexError(), TypeError("bad tile"), KeyError(94),
                                                  zlib.error("incorrect header check"), RuntimeError("decoder"))),
    (MemoryError(), "not enough memory to read the image"),
])
def test_any_exception_while_reading_is_a_one_line_codec_error(tmp_path, monkeypatch, error, message):
    Image.fromarray(smooth_image(8, 8)).save(tmp_path / "photo.png")

    def fail(self):
        raise error

    monkeypatch.setattr(ImageFile.ImageFile, "load", fail)
    with pytest.raises(CodecError, match=rf"^.*photo\.png: {message}$"):
        prepare_image(tmp_path / "photo.png")


def test_a_failing_conversion_is_a_one_line_codec_error(tmp_path, monkeypatch):
    Image.fromarray(smooth_image(8, 8)).convert("P").save(tmp_path / "palette.png")

    def fail(self, *args, **kwargs):
        raise struct.error("bad palette")

    monkeypatch.setattr(Image.Image, "convert", fail)
    with pytest.raises(CodecError, match=r"palette\.png: cannot convert the P image \(struct\.error: bad palette\)$"):
        prepare_image(tmp_path / "palette.png")


def test_unreadable_exif_orientation_is_reported_not_silently_ignored(monkeypatch):
    def fail(image, **kwargs):
        raise struct.error("bad EXIF")

    monkeypatch.setattr(ImageOps, "exif_transpose", fail)
    (rgb, _, _), said = prepared(smooth_image(8, 10))
    assert rgb.shape == (8, 10, 3) and len(said) == 1 and "EXIF orientation" in said[0]


# ----------------------------------------------------------------------------- large inputs
def test_image_above_pillows_bomb_limit_gives_one_aecodec_warning(tmp_path, monkeypatch):
    Image.fromarray(smooth_image(10, 15)).save(tmp_path / "large.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 150 pixels: above the limit, below Pillow's error at 2×
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rgb, _, _ = prepare_image(tmp_path / "large.png")
    assert rgb.shape == (10, 15, 3)
    assert [w.category for w in caught] == [UserWarning]  # no DecompressionBombWarning besides it
    message = str(caught[0].message)
    assert message.startswith(f"{tmp_path / 'large.png'}: 15×10 = ") and "megapixels" in message
    assert "memory" in message and "\n" not in message
    assert Image.MAX_IMAGE_PIXELS == 100  # the limit is left as it is


def test_16_bit_input_is_converted_with_a_warning():
    arr16 = (smooth_image(30, 40, channels=1).astype(np.uint16) * 257)
    im = Image.fromarray(arr16)
    assert im.mode.startswith("I")
    with pytest.warns(UserWarning, match="16-bit"):
        rgb, alpha, layout = prepare_image(im)
    assert layout == fmt.Layout.GRAY and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb[..., 0], smooth_image(30, 40, channels=1))


def test_palette_image_is_expanded():
    im = Image.fromarray(smooth_image(30, 30)).convert("P", palette=Image.Palette.ADAPTIVE)
    rgb, alpha, layout = prepare_image(im)
    assert layout == fmt.Layout.RGB and alpha is None
    np.testing.assert_array_equal(rgb, np.asarray(im.convert("RGB")))


def test_exif_orientation_is_applied(tmp_path):
    im = Image.fromarray(smooth_image(20, 40))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    path = tmp_path / "rotated.jpg"
    im.save(path, exif=exif)
    rgb, _, _ = prepare_image(path)
    assert rgb.shape[:2] == (40, 20)

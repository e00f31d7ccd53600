"""aecodec.train.data: photos read with the codec's loader (bad ones skipped, EXIF applied) and the crop sampler."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from aecodec.models.checkpoint import load_checkpoint
from aecodec.train import CropSampler, TrainError, read_images, train
from tests.helpers import smooth_image, train_opts, unknown_pixel_format_texture

opts = train_opts


def test_an_unreadable_photo_is_skipped_with_a_warning_and_training_runs(data_dir, tmp_path):
    (data_dir / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")
    (data_dir / "notes.txt").write_text("not an image (no image suffix): not even looked at")
    ckpt, logs = tmp_path / "run.pt", []
    train(opts(data_dir, ckpt, steps=2), log=logs.append)
    warnings = [l for l in logs if l.startswith("warning:")]
    assert len(warnings) == 1 and f"skipped {data_dir / 'broken.jpg'}: cannot read image" in warnings[0]
    assert any(l.startswith("4 images (") and "; 1 unreadable skipped)" in l for l in logs), logs
    _, state = load_checkpoint(ckpt)
    assert state["step"] == 2
    # Only unreadable photos: a one-line TrainError, not a traceback.
    only_bad = tmp_path / "bad"
    only_bad.mkdir()
    (only_bad / "broken.png").write_bytes(b"junk")
    with pytest.raises(TrainError, match=r"no training images found in .*bad \(1 unreadable\)"):
        train(opts(only_bad, tmp_path / "x.pt"), log=lambda *_: None)


def test_load_images_applies_exif_orientation(tmp_path):
    from aecodec.train import load_images

    stored = smooth_image(64, 96, seed=3)  # 96 wide, 64 high as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: the stored image is shown rotated 90° clockwise
    Image.fromarray(stored).save(tmp_path / "rotated.jpg", quality=95, exif=exif)
    with Image.open(tmp_path / "rotated.jpg") as im:
        raw = np.asarray(im.convert("RGB"))  # the decoded pixels, orientation not applied
    (x,) = load_images([tmp_path])
    assert x.dtype == torch.uint8 and x.shape == (3, 96, 64)  # transposed: 64 wide, 96 high
    shown = x.permute(1, 2, 0).numpy()
    assert np.array_equal(shown, np.rot90(raw, k=-1))  # clockwise
    assert not np.array_equal(shown, np.rot90(raw, k=1))


def test_read_images_skips_a_broken_photo_and_keeps_the_good_one(tmp_path):
    good = smooth_image(80, 96)
    Image.fromarray(good).save(tmp_path / "good.png")
    (tmp_path / "broken.png").write_bytes(unknown_pixel_format_texture())  # a texture with a photo's name
    logs = []
    images, unreadable = read_images([tmp_path], log=logs.append)
    assert len(images) == 1 and np.array_equal(images[0].permute(1, 2, 0).numpy(), good)
    assert unreadable == [tmp_path / "broken.png"]
    assert len(logs) == 1 and logs[0].startswith(f"warning: skipped {tmp_path / 'broken.png'}: cannot read image (")


def test_read_images_logs_the_loaders_warnings_one_line_each(tmp_path):
    Image.fromarray(np.full((70, 70), 257 * 9, np.uint16)).save(tmp_path / "deep.png")
    logs = []
    read_images([tmp_path], log=logs.append)
    assert logs == [f"warning: {tmp_path / 'deep.png'}: 16-bit image converted to 8-bit (÷ 257, rounded)"]


def test_crop_sampler_cuts_real_crops_of_scaled_copies():
    torch.manual_seed(0)
    photos = [torch.from_numpy(smooth_image(h, w, seed=i)).permute(2, 0, 1).contiguous()
              for i, (h, w) in enumerate([(300, 200), (70, 90), (40, 50)])]
    s = CropSampler(photos, 64, torch.device("cpu"))
    # 200 short side: copies at 1, .84, .71, .59 (.5 would be 100 ≥ 64 too); 70: only 1×; 40: one upscaled copy
    assert s.copies == 5 + 1 + 1
    x = s.sample(64)
    assert x.shape == (64, 3, 64, 64) and x.dtype == torch.float32
    assert x.is_contiguous(memory_format=torch.channels_last) and 0 <= x.min() and x.max() <= 1
    # every crop is a window (maybe mirrored) of one of the copies
    copies = [s.pixels[b:b + h * w].reshape(h, w, 3) for b, h, w in zip(s.base.tolist(), s.height.tolist(),
                                                                          s.width.tolist())]
    assert copies[0].shape[:2] == (300, 200) and tuple(copies[-1].shape[:2]) == (64, 80)
    for crop in (x[:8] * 255).round().to(torch.uint8).permute(0, 2, 3, 1):
        assert any(_found(crop, c) or _found(crop.flip(1), c) for c in copies)
    assert len({round(v, 3) for v in x.mean((1, 2, 3)).tolist()}) > 32  # random, not one crop repeated


def _found(crop: torch.Tensor, copy: torch.Tensor) -> bool:
    h, w = crop.shape[:2]
    ys, xs = np.nonzero((copy[: copy.shape[0] - h + 1, : copy.shape[1] - w + 1] == crop[0, 0]).all(-1).numpy())
    return any(torch.equal(copy[y:y + h, x_:x_ + w], crop) for y, x_ in zip(ys, xs))

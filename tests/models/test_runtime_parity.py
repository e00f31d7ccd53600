"""The runtime (onnxruntime transforms, numpy exact path) and the torch path (the checkpoint's torch
model) give the same pictures: every kind of file either writes decodes with the other to the very
same latents — the torch model's own exact h_s giving the numpy one's CDF indexes and means — and to
pixels within one level. Kodak, 24 images × 3 qualities: ``python -m benchmarks.runtime_parity``."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import aecodec.samples
from aecodec.codec import api
from aecodec.codec import format as fmt

torch = pytest.importorskip("torch")

from aecodec.models import runtime  # noqa: E402
from aecodec.models.zoo import DEFAULT_MODEL_ID, SHIPPED_DIR  # noqa: E402

PT = SHIPPED_DIR / f"{DEFAULT_MODEL_ID}.pt"


def _coffee(box) -> Image.Image:
    with Image.open(aecodec.samples.path()) as im:
        return im.convert("RGB").crop(box)


def _rgba():
    rgb = np.asarray(_coffee((100, 100, 180, 160)))
    alpha = np.tile(np.linspace(0, 255, 80).astype(np.uint8), (60, 1))
    return Image.fromarray(np.dstack([rgb, alpha]), "RGBA")


def _gray16():
    gray = np.asarray(_coffee((10, 10, 90, 70)).convert("L")).astype(np.uint16) * 257 + 100
    return Image.fromarray(gray).convert("I;16")


CASES = {
    "rgb": (lambda: _coffee((200, 100, 330, 190)), {}),
    "gray": (lambda: _coffee((0, 0, 100, 80)).convert("L"), {}),
    "rgba": (_rgba, {}),
    "gray16": (_gray16, {}),
    "folded strip": (lambda: _coffee((0, 200, 600, 210)), {}),
    "tiles": (lambda: _coffee((150, 100, 350, 260)), {"tile": 64}),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("writer", ["runtime", "torch"])
def test_either_path_decodes_what_the_other_wrote_to_the_same_latents_and_pixels(case, writer):
    make, options = CASES[case]
    paths = {"runtime": None, "torch": PT}
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the 16-bit input's conversion warning
        data = api.encode(make(), 60, model=paths[writer], **options)
    c = fmt.unpack(data)
    assert c.version == fmt.VERSION
    latents = {reader: api.decode_latents(data, model=model) for reader, model in paths.items()}
    assert np.array_equal(latents["runtime"], latents["torch"])
    torch_net = runtime.load(PT).torch_model()
    seen = []

    def same_entropy_parameters(_rect, lat):
        indexes, means = torch_net.entropy_parameters(torch.from_numpy(lat["z_hat"]))
        seen.append(np.array_equal(indexes.numpy(), lat["indexes"]) and np.array_equal(means.numpy(), lat["means"]))

    runtime_image = api.decode_with(runtime.load(), c, on_tile=same_entropy_parameters)
    assert seen and all(seen)
    torch_image = api.decode(data, model=PT)
    assert runtime_image.mode == torch_image.mode and runtime_image.size == torch_image.size
    assert int(np.abs(np.asarray(runtime_image).astype(int) - np.asarray(torch_image).astype(int)).max()) <= 1

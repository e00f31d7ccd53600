"""Which score of ``aecodec rank`` finds what is unusual *in* an image: Kodak photos with something pasted in.

    python -m benchmarks.rank_anomaly --dataset path/to/kodak

Two cases, each eight clean Kodak photos (kodim01–kodim08, kodim05 and kodim08 the busiest) and
kodim23 doctored with something of 2 % of its area: a 96 × 96 patch of pixel noise (``noise``), or a
black-on-white text label of 120 × 66 pixels (``label``). Each folder is ranked by every score
(:data:`aecodec.ranking.SCORES`) at ``--quality``; recorded per case and score: where the doctored
image lands, its score against the best clean photo's (the margin), its region against where the
paste is, and the time. Then the README's picture: one folder holding the eight photos and both
doctored images, ranked by the default score, its contact sheet written to ``docs/rank-doctored.png``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parent.parent
CLEAN = tuple(f"kodim{i:02d}.png" for i in range(1, 9))
NOISE_BOX = (300, 200, 396, 296)  # x0, y0, x1, y1 in kodim23 (768 × 512): 96 × 96 = 2.3 % of the image
LABEL_BOX = (560, 40, 680, 106)  # 120 × 66 = 2.0 %
DOCTORED = "kodim23-doctored.png"


def with_noise(image: Image.Image, box=NOISE_BOX, seed: int = 0) -> Image.Image:
    """``image`` with uniform random RGB noise, one value per pixel, inside ``box``."""
    a = np.asarray(image.convert("RGB")).copy()
    x0, y0, x1, y1 = box
    a[y0:y1, x0:x1] = np.random.default_rng(seed).integers(0, 256, (y1 - y0, x1 - x0, 3), dtype=np.uint8)
    return Image.fromarray(a)


def with_label(image: Image.Image, box=LABEL_BOX) -> Image.Image:
    """``image`` with a white label inside ``box``: a black border and three lines of black text
    (Pillow's own font, so the picture is the same on every machine)."""
    out = image.convert("RGB")
    draw = ImageDraw.Draw(out)
    x0, y0, x1, y1 = box
    draw.rectangle([x0, y0, x1 - 1, y1 - 1], fill="white", outline="black")
    font = ImageFont.load_default(size=14)
    for i, text in enumerate(("LOT 4471-B", "EXP 2027-03", "QC PASS")):
        draw.text((x0 + 6, y0 + 5 + 19 * i), text, fill="black", font=font)
    return out


CASES = {"noise": (with_noise, NOISE_BOX), "label": (with_label, LABEL_BOX)}


def build(kodak: Path, folder: Path, cases=("noise",)) -> dict[str, tuple[int, int, int, int]]:
    """``folder`` with the eight clean photos and kodim23 doctored by each of ``cases`` (one image
    named :data:`DOCTORED` for one case, ``kodim23-<case>.png`` for several); the pasted boxes by file."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in CLEAN:
        shutil.copyfile(kodak / name, folder / name)
    boxes = {}
    for case in cases:
        doctor, box = CASES[case]
        name = DOCTORED if len(cases) == 1 else f"kodim23-{case}.png"
        doctor(Image.open(kodak / "kodim23.png")).save(folder / name)
        boxes[name] = box
    return boxes


def overlap(a, b) -> float:
    """The area of boxes ``a`` and ``b`` in common over the area of ``b``."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return max(0, w) * max(0, h) / ((b[2] - b[0]) * (b[3] - b[1]))


def run(kodak: Path, quality: float) -> list[dict]:
    from aecodec.ranking import SCORES, rank

    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for case in CASES:
            folder = Path(tmp) / case
            (box,) = build(kodak, folder, (case,)).values()
            for by in SCORES:
                start = time.perf_counter()
                ranking = rank(folder, quality, by=by, top=1)
                seconds = time.perf_counter() - start
                files = [row["file"] for row in ranking.rows]
                doctored = ranking.rows[files.index(DOCTORED)]
                best_clean = next(row for row in ranking.rows if row["file"] != DOCTORED)
                region = tuple(doctored[f"region_{c}"] for c in ("x0", "y0", "x1", "y1"))
                out.append({"case": case, "by": by, "doctored_rank": doctored["rank"],
                            "doctored_score": doctored["score"], "best_clean": best_clean["file"],
                            "best_clean_score": best_clean["score"],
                            "margin": doctored["score"] / best_clean["score"], "region": region,
                            "region_covers_paste": round(overlap(region, box), 3), "order": files,
                            "seconds": round(seconds, 1)})
                print(f"{case:>5} {by:>5}: doctored #{doctored['rank']}, margin {out[-1]['margin']:.2f}, "
                      f"region {region} covers {out[-1]['region_covers_paste']:.0%} of the paste", file=sys.stderr)
    return out


def picture(kodak: Path, quality: float, png: Path) -> list[str]:
    """The README's contact sheet (both doctored images among the eight photos, the default score)."""
    from aecodec.ranking import rank
    from aecodec.reports import render_contact_sheet

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "photos"
        build(kodak, folder, tuple(CASES))
        ranking = rank(folder, quality, top=3)
        ranking.folder = "8 Kodak photos + 2 doctored"
        png.write_bytes(render_contact_sheet(ranking))
        return [row["file"] for row in ranking.rows]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", type=Path, required=True, help="folder of the Kodak images")
    ap.add_argument("--quality", type=float, default=75.0)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "rank-anomaly.json")
    ap.add_argument("--picture", type=Path, default=ROOT / "docs" / "rank-doctored.png")
    args = ap.parse_args(argv)

    from aecodec.device import cpu_name

    rows = run(args.dataset, args.quality)
    order = picture(args.dataset, args.quality, args.picture)
    record = {"date": date.today().isoformat(), "cpu": cpu_name(), "quality": args.quality,
              "command": "python -m benchmarks.rank_anomaly " + " ".join(sys.argv[1:] if argv is None else argv),
              "clean": list(CLEAN), "boxes": {"noise": NOISE_BOX, "label": LABEL_BOX}, "results": rows,
              "picture": {"path": str(args.picture.relative_to(ROOT)) if args.picture.is_relative_to(ROOT)
                          else str(args.picture), "order": order}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"order of the picture's folder: {order}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

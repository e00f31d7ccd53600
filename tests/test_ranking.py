"""aecodec.ranking: what is unusual in an image comes first — a pasted patch of noise or a pasted
label among Kodak photos by the default score, the busiest photo by --by mean, as rank always did."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from aecodec.errors import CodecError
from aecodec.ranking import DEFAULT_SCORE, PERCENTILE, SKETCH_LEVELS, Ranking, local_peak, rank, reference_level
from aecodec.reports import render_contact_sheet
from benchmarks.rank_anomaly import CASES, DOCTORED, build, overlap
from tests.helpers import PNG_MAGIC, smooth_image, with_noise_patch


def test_rank_puts_the_doctored_image_first(tmp_path):
    for seed in range(12):
        Image.fromarray(smooth_image(128, 128, seed=seed)).save(tmp_path / f"img-{seed:02d}.png")
    doctored = with_noise_patch(smooth_image(128, 128, seed=12), 32, 96, 32, 96)
    Image.fromarray(doctored).save(tmp_path / "img-05-b.png")  # not first by name
    (tmp_path / "notes.txt").write_text("not an image")
    for by in ("error", "peak", "mean"):
        ranking = rank(tmp_path, 75, by=by, top=3)
        assert ranking.by == by and [row["file"] for row in ranking.rows][0] == "img-05-b.png", by
        assert len(ranking.rows) == 13 and [row["rank"] for row in ranking.rows] == list(range(1, 14))
        assert all(a["score"] >= b["score"] for a, b in zip(ranking.rows, ranking.rows[1:]))
        assert [i.source.endswith("img-05-b.png") for i in ranking.top] == [True, False, False]
        first = ranking.rows[0]
        region = (first["region_x0"], first["region_y0"], first["region_x1"], first["region_y1"])
        assert overlap(region, (32, 32, 96, 96)) > 0.5, (by, region)  # where the patch is
        assert render_contact_sheet(ranking).startswith(PNG_MAGIC)
    assert [row["score"] for row in ranking.rows] == [row["bpp"] for row in ranking.rows]  # mean: as rank was


def test_rank_says_which_entries_named_like_images_it_skips(tmp_path, monkeypatch):
    """Dangling links, loops of links and folders named like images are reported, not dropped."""
    import aecodec.ranking as ranking
    from aecodec.ranking import not_files

    for name in ("a.png", "b.png"):
        Image.fromarray(smooth_image(24, 32)).save(tmp_path / name)
    (tmp_path / "dangling.png").symlink_to(tmp_path / "nowhere.png")
    (tmp_path / "loop.png").symlink_to(tmp_path / "loop.png")
    (tmp_path / "folder.jpg").mkdir()
    assert [(p.name, why) for p, why in not_files(tmp_path)] == [
        ("dangling.png", "a dangling symbolic link"), ("folder.jpg", "a directory"),
        ("loop.png", "a loop of symbolic links")]
    with pytest.warns(UserWarning) as caught:
        r = ranking.rank(tmp_path, 50, top=1)
    assert sorted(str(w.message).split("/")[-1] for w in caught) == [
        "dangling.png: skipped (a dangling symbolic link)", "folder.jpg: skipped (a directory)",
        "loop.png: skipped (a loop of symbolic links)"]
    assert [row["file"] for row in r.rows] == ["a.png", "b.png"]
    assert {s["file"] for s in r.skipped} == {"dangling.png", "folder.jpg", "loop.png"}


# ----------------------------------------------------------------------------- the test, on Kodak
@pytest.fixture(scope="module")
def doctored_folders(kodak, tmp_path_factory):
    """Two folders of eight Kodak photos and kodim23 doctored with 2 % of something else: a patch of
    pixel noise, a black-on-white text label (benchmarks.rank_anomaly's cases)."""
    return {case: (folder := tmp_path_factory.mktemp(case), build(kodak, folder, (case,))[DOCTORED])[0]
            for case in CASES}


@pytest.mark.parametrize("case", list(CASES))
def test_the_default_score_puts_a_photo_with_something_pasted_in_first_and_mean_keeps_the_busiest_first(
        doctored_folders, case):
    folder = doctored_folders[case]
    found = rank(folder, 75, top=1)
    assert found.by == DEFAULT_SCORE and found.rows[0]["file"] == DOCTORED
    assert found.rows[0]["score"] > 1.5 * found.rows[1]["score"]  # not by a hair
    first = found.rows[0]
    region = (first["region_x0"], first["region_y0"], first["region_x1"], first["region_y1"])
    assert overlap(region, CASES[case][1]) > 0.5 and overlap(CASES[case][1], region) > 0.5  # it is where the paste is
    if case != "noise":  # the other folder differs in the doctored image only: one is enough for mean
        return
    by_mean = rank(folder, 75, by="mean", top=1)
    assert [row["file"] for row in by_mean.rows] == sorted((row["file"] for row in by_mean.rows),
                                                           key=lambda f: -next(r["bpp"] for r in by_mean.rows
                                                                               if r["file"] == f))
    assert by_mean.rows[0]["file"] in ("kodim08.png", "kodim05.png") and by_mean.rows[-1]["file"] == DOCTORED


# ----------------------------------------------------------------------------- the parts
def test_local_peak_finds_the_hottest_window_and_grows_its_region_over_the_hot_area():
    m = np.ones((100, 130))
    m[40:72, 64:112] = 9.0  # a hot area of 2 × 3 blocks, block-aligned
    peak, region, sketch, windows = local_peak(m)
    assert peak == pytest.approx((6 * 9 + 3) / 9)  # the best 3 × 3-block window holds the 6 hot blocks
    assert region == (64, 32, 112, 80)  # the hot blocks' bounding box (rows 40-72 touch blocks 2-4)
    assert sketch.dtype == np.float32 and sketch[0] == pytest.approx(1.0) and sketch[-1] == pytest.approx(peak)
    assert windows == (7 - 2) * (9 - 2)  # a 7 × 9-block map has 5 × 7 windows of 3 × 3
    tiny = local_peak(np.full((5, 7), 2.0))  # smaller than one block: one window, the whole image
    assert tiny[0] == 2.0 and tiny[1] == (0, 0, 7, 5)


def test_the_reference_level_is_the_percentile_of_all_windows_each_image_weighing_its_windows():
    rng = np.random.default_rng(0)
    small, large = rng.normal(0, 1, 400), rng.normal(5, 1, 4000)
    sketch = [(np.quantile(v, SKETCH_LEVELS).astype(np.float32), len(v)) for v in (small, large)]
    exact = np.percentile(np.concatenate([small, large]), PERCENTILE)
    assert reference_level(sketch) == pytest.approx(exact, abs=0.02)


def test_a_reference_folder_sets_what_is_usual(tmp_path):
    normal, photos = tmp_path / "normal", tmp_path / "photos"
    normal.mkdir(), photos.mkdir()
    for seed in range(3):
        Image.fromarray(smooth_image(64, 64, seed=seed)).save(normal / f"n{seed}.png")
    Image.fromarray(smooth_image(64, 64, seed=7)).save(photos / "plain.png")
    Image.fromarray(with_noise_patch(smooth_image(64, 64, seed=8), 16, 48, 16, 48)).save(photos / "odd.png")
    with_reference = rank(photos, 75, reference=normal)
    alone = rank(photos, 75)
    assert with_reference.reference["source"] == str(normal) and with_reference.reference["images"] == 3
    assert alone.reference["source"] == str(photos) and alone.reference["images"] == 2
    assert [row["file"] for row in with_reference.rows] == ["odd.png", "plain.png"]
    odd = with_reference.rows[0]
    assert odd["score"] == pytest.approx(odd["peak_mse"] / with_reference.reference["error"])
    assert with_reference.rows[1]["score"] < 2 < odd["score"]  # like the reference, and far beyond it


def test_bad_choices_are_one_line_errors(tmp_path):
    Image.fromarray(smooth_image(24, 32)).save(tmp_path / "a.png")
    with pytest.raises(CodecError, match="unknown score 'median'; choose from error, peak, mean"):
        rank(tmp_path, by="median")
    with pytest.raises(CodecError, match="not for mean"):
        rank(tmp_path, by="mean", reference=tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CodecError, match="empty: no images found"):
        rank(tmp_path, reference=tmp_path / "empty")


def test_the_csv_and_json_carry_the_score_and_the_region(tmp_path):
    Image.fromarray(smooth_image(40, 56)).save(tmp_path / "a.png")
    ranking = rank(tmp_path, 50)
    header = ranking.to_csv().splitlines()[0].split(",")
    assert header == list(Ranking.COLUMNS) and {"score", "region_x0", "region_y1", "peak_mse"} <= set(header)
    d = ranking.to_dict()
    assert d["by"] == "error" and d["score"].startswith("error:") and set(d["reference"]) >= {"error", "peak"}
    assert d["images"][0]["region_x1"] <= 56 and d["images"][0]["region_y1"] <= 40

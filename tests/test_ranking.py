"""aecodec.ranking: ranking a folder by cost puts the doctored image first."""

from __future__ import annotations

import pytest
from PIL import Image

from aecodec.ranking import rank
from aecodec.reports import render_contact_sheet
from tests.helpers import PNG_MAGIC, smooth_image, with_noise_patch


def test_rank_puts_the_doctored_image_first(tmp_path):
    for seed in range(12):
        Image.fromarray(smooth_image(128, 128, seed=seed)).save(tmp_path / f"img-{seed:02d}.png")
    doctored = with_noise_patch(smooth_image(128, 128, seed=12), 32, 96, 32, 96)
    Image.fromarray(doctored).save(tmp_path / "img-05-b.png")  # not first by name
    (tmp_path / "notes.txt").write_text("not an image")
    ranking = rank(tmp_path, 75, top=3)
    assert [row["file"] for row in ranking.rows][0] == "img-05-b.png"
    assert len(ranking.rows) == 13 and [row["rank"] for row in ranking.rows] == list(range(1, 14))
    assert all(a["bpp"] >= b["bpp"] for a, b in zip(ranking.rows, ranking.rows[1:]))
    assert [i.source.endswith("img-05-b.png") for i in ranking.top] == [True, False, False]
    assert render_contact_sheet(ranking).startswith(PNG_MAGIC)


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

"""Error analysis: per-class tables, confused pairs, and the PNGs and HTML page it writes."""

from __future__ import annotations

import re

import numpy as np
import torch
from PIL import Image

from tinyzoo.evaluate import analysis
from tinyzoo.evaluate.predictions import Predictions

WNIDS = ["n03970156", "n03100240", "n04285008", "n02814533", "n02917067"]
NAMES = ["plunger, plumber's helper", "convertible", "sports car, sport car", "beach wagon, station wagon", "bullet train, bullet"]


def crafted():
    """10 images a class: plunger wrong 6 times over 4 classes, convertible 4 times over 2."""
    labels, predictions = [], []
    plunger_wrong = [1, 2, 3, 4, 1, 2]
    predictions += plunger_wrong + [0] * 4
    convertible_wrong = [2, 2, 3, 3]
    predictions += convertible_wrong + [1] * 6
    predictions += [2] * 9 + [1]
    predictions += [3] * 10
    predictions += [4] * 10
    for k in range(5):
        labels += [k] * 10
    return np.array(predictions), np.array(labels)


def test_class_error_table_is_worst_first_with_distinct_wrong_classes():
    predictions, labels = crafted()
    table = analysis.class_error_table(predictions, labels, WNIDS, NAMES)
    assert [r["wnid"] for r in table[:3]] == [WNIDS[0], WNIDS[1], WNIDS[2]]
    plunger, convertible = table[0], table[1]
    assert (plunger["errors"], plunger["distinct_wrong"], plunger["error_rate"]) == (6, 4, 0.6)
    assert (convertible["errors"], convertible["distinct_wrong"]) == (4, 2)
    assert [c["wnid"] for c in convertible["confused_with"]] == [WNIDS[2], WNIDS[3]]
    assert table[-1]["errors"] == 0 and table[-1]["distinct_wrong"] == 0


def test_confused_pairs_most_first():
    predictions, labels = crafted()
    pairs = analysis.confused_pairs(predictions, labels, WNIDS, NAMES, top=3)
    assert [(p["true_wnid"], p["predicted_wnid"], p["count"]) for p in pairs] == [
        (WNIDS[0], WNIDS[1], 2), (WNIDS[0], WNIDS[2], 2), (WNIDS[1], WNIDS[2], 2)]
    assert pairs[0]["share"] == 0.2


def png_size(path) -> tuple[int, int]:
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        assert im.format == "PNG"
        return im.size


def test_report_writes_pngs_and_html_that_references_them(tmp_path):
    predictions, labels = crafted()
    probs = np.full((50, 5), 0.05, dtype=np.float32)
    probs[np.arange(50), predictions] = 0.8
    images = np.random.default_rng(0).integers(0, 256, (50, 64, 64, 3), dtype=np.uint8)
    preds = Predictions(probs, labels, [f"val_{i}.JPEG" for i in range(50)], WNIDS, NAMES, "10crop", "expsum", "stand-in")
    before = torch.randn(64, 3, 7, 7)
    after = torch.randn(64, 3, 3, 3)
    data = analysis.write_report(tmp_path, preds, images, filters=after, before_filters=before, misclassified=12)

    assert data["top1"] == 0.78 and data["class_errors"][0]["wnid"] == WNIDS[0]
    sizes = {key: png_size(tmp_path / name) for key, name in data["files"].items() if name.endswith(".png")}
    assert set(sizes) == {"misclassified", "confusion", "filters", "filters_before_after"}
    assert sizes["misclassified"] == (870, 350)  # 6 columns x 2 rows of 1.45 x 1.75 inches at 100 dpi
    assert sizes["filters"] == (400, 440)
    assert sizes["filters_before_after"] == (800, 440)
    assert sizes["confusion"] == (570, 450)
    page = (tmp_path / "index.html").read_text()
    linked = set(re.findall(r'(?:src|href)="([^"]+)"', page))
    assert {"misclassified.png", "confusion.png", "filters.png", "filters_before_after.png", "class_errors.csv", "confused_pairs.csv"} <= linked
    assert "plunger" in page and (tmp_path / "analysis.json").is_file()
    rows = (tmp_path / "class_errors.csv").read_text().splitlines()
    assert rows[1].startswith(f"{WNIDS[0]},") and len(rows) == 6


def test_filters_of_a_gray_stem_and_a_perfect_model(tmp_path):
    tiles = analysis.filter_images(torch.randn(8, 1, 3, 3))
    assert tiles.shape == (8, 3, 3, 3) and tiles.min() >= 0 and tiles.max() <= 1
    labels = np.arange(5)
    probs = np.eye(5, dtype=np.float32)
    assert analysis.misclassified_grid(np.zeros((5, 64, 64, 3), np.uint8), probs, labels, NAMES, tmp_path / "m.png") is None


def test_first_conv_weight_finds_the_first_rgb_convolution():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Conv2d(8, 4, 1))
    assert analysis.first_conv_weight(net).shape == (8, 3, 3, 3)
    assert analysis.first_conv_weight(net, "2").shape == (4, 8, 1, 1)

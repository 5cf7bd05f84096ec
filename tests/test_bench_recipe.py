"""bench/recipe.py --smoke: the time-to-quality benchmark runs end to end on a tiny random model
and writes results.json, table.md and recipe.svg (no timing asserted)."""

import json
import math
import xml.etree.ElementTree as ET

SIDES = ("ours", "recipe", "recipe-our-lr")


def test_recipe_bench_smoke_writes_its_report(tmp_path, run_bench_smoke):
    # one thread: the run is tiny, and the test suite may be sharing the cores
    run_bench_smoke("bench/recipe.py", "--threads", "1")
    results = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    assert list(results["sides"]) == list(SIDES)
    for name, side in results["sides"].items():
        assert side["epochs"], name
        numbers = [row[key] for row in side["epochs"] for key in ("elapsed_s", "val_sentence_f1")]
        numbers += [side["test"]["sentence_f1"], side["test"]["exact"], side["total_s"]]
        assert all(isinstance(x, float) and math.isfinite(x) for x in numbers), (name, numbers)
        assert all(0.0 <= row["val_sentence_f1"] <= 1.0 for row in side["epochs"])
        times = [row["elapsed_s"] for row in side["epochs"]]
        assert times == sorted(times) and times[0] > 0
        if name != "ours":  # the best null threshold does at least as well as the recipe's 0
            for row in side["epochs"]:
                assert row["val_sentence_f1"] <= row["val_sentence_f1_tuned_threshold"] <= 1.0
    data = results["sides"]["recipe"]["data"]
    assert data["windows"] == data["lib_windows"]  # stride = doc_stride: the same windows
    assert set(results["time_to_quality"]) == {"recipe", "recipe-our-lr"}
    table = (tmp_path / "table.md").read_text(encoding="utf-8")
    assert table.count("| ours |") == 3 and "recipe time / ours time" in table
    svg = ET.parse(tmp_path / "recipe.svg").getroot()
    assert svg.tag == "{http://www.w3.org/2000/svg}svg"
    assert len(svg.findall(".//{http://www.w3.org/2000/svg}circle")) == sum(
        len(side["epochs"]) for side in results["sides"].values()
    )

"""bench/predict.py --smoke: both parts (memory of evaluate.py --predict per input size, and
throughput ours vs the transformers way) run end to end on a tiny random model and write
results.json and table.md with finite numbers (no timing asserted)."""

import json
import math


def finite(x) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def test_predict_bench_smoke_writes_its_report(tmp_path, run_bench_smoke):
    # one thread: the run is tiny, and the test suite may be sharing the cores
    run_bench_smoke("bench/predict.py", "--threads", "1")
    results = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))

    memory = results["memory"]
    assert [row["posts"] for row in memory["rows"]] == [50, 200]
    for row in memory["rows"]:
        numbers = [row[k] for k in ("windows", "wall_s", "predict_s", "posts_per_s")]
        assert all(finite(x) and x > 0 for x in numbers), row
        assert finite(row["peak_rss_mib"]) and 50 < row["peak_rss_mib"] < 100_000, row
    assert finite(memory["rss_ratio"]) and memory["rss_ratio"] > 0

    throughput = results["throughput"]
    for name in ("ours", "transformers"):
        side = throughput[name]
        assert side["posts"] == 10, name
        for key in ("total_s", "forward_s", "posts_per_s"):
            assert finite(side[key]) and side[key] > 0, (name, key, side)
        assert 0 <= side["outside_forward"] < 1, (name, side)
        assert side["forward_s"] <= side["total_s"], (name, side)
    # the same windows on both sides (stride = doc_stride, the same questions and posts)
    assert throughput["ours"]["windows"] == throughput["transformers"]["windows"]
    assert finite(throughput["ratio"]) and throughput["ratio"] > 0

    table = (tmp_path / "table.md").read_text(encoding="utf-8")
    assert "## Memory" in table and "## Throughput" in table and "ours / transformers" in table
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("work-")] == []  # cleaned up

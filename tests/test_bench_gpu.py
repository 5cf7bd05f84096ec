"""bench/gpu.py --smoke: the GPU benchmark's code runs end to end on a CPU (no timing asserted)."""

import json


def test_gpu_bench_smoke_writes_its_table(tmp_path, run_bench_smoke):
    run_bench_smoke("bench/gpu.py")
    report = json.loads((tmp_path / "gpu.json").read_text())
    assert [(r["model"], r["mode"]) for r in report["rows"]] == [
        ("ours", "eager"),
        ("transformers", "eager"),
    ]
    for row in report["rows"]:
        assert row["train_s"] > 0 and row["infer_s"] > 0 and row["peak_bytes"] > 0
        assert row["train_mfu"] > 0 and row["infer_mfu"] > 0
    table = (tmp_path / "gpu.md").read_text()
    assert table.count("| ours |") == 1 and "bf16 matmul peak measured" in table

"""`python -m kdlib selftest --device cpu`: what CI can check of the GPU self-test. Every GPU row is listed as
skipped with its reason; the CPU equivalents run and pass."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GPU_ROWS = ("fp16 autocast", "bf16 autocast", "NVML energy", "CUDA streams", "crops on the GPU", "two-rank NCCL")


@pytest.fixture(scope="module")
def cpu_selftest(tmp_path_factory):
    out = tmp_path_factory.mktemp("selftest")
    done = subprocess.run([sys.executable, "-m", "kdlib", "selftest", "--device", "cpu", "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=240)
    return done, json.loads((out / "selftest.json").read_text())


def test_cpu_selftest_passes(cpu_selftest):
    done, result = cpu_selftest
    assert done.returncode == 0, done.stdout + done.stderr
    assert result["passed"] and result["device"] == "cpu"
    ran = [r for r in result["rows"] if r["status"] == "pass"]
    for name in ("fp32 step", "channels_last", "threads equal sequential", "forward scoring", "stale scoring",
                 "store loader crops (CPU)", "two-rank gloo"):
        assert any(name in r["check"] for r in ran), name
    assert "skipped" in done.stdout and "passed" in done.stdout


def test_every_gpu_row_is_skipped_with_a_reason(cpu_selftest):
    _, result = cpu_selftest
    gpu = [r for r in result["rows"] if r["gpu_row"]]
    for name in GPU_ROWS:
        (row,) = [r for r in gpu if name in r["check"]]
        assert row["status"] == "skipped" and row["reason"], row
    assert all(r["status"] == "skipped" and ("GPU" in r["reason"]) for r in gpu)


def test_ast_rows_state_the_ceiling_and_the_cost_of_new_shapes(cpu_selftest):
    _, result = cpu_selftest
    forward, stale = (next(r for r in result["rows"] if f"({mode} scoring)" in r["check"]) for mode in ("forward", "stale"))
    rate = forward["realised_rate"]
    assert forward["ceiling"] == pytest.approx(3 / (1 + 2 * rate))
    assert stale["ceiling"] == pytest.approx(1 / stale["realised_rate"])
    for row in (forward, stale):
        assert "first AST epoch" in row["figure"] and row["distinct_sizes"] <= 16

"""`python -m kdlib selftest --device cpu`: what CI can check of the GPU self-test. Every GPU row is listed as
skipped with its reason; the CPU equivalents run and pass."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GPU_ROWS = ("fp16 autocast", "bf16 autocast", "NVML energy", "CUDA streams", "crops on the GPU", "two-rank NCCL",
            "two seeds on two GPUs")


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
    # a scored sample costs a forward (1), a learned one a forward and a backward (1 + 2): 3 / (1 + 3a)
    assert forward["ceiling"] == pytest.approx(3 / (1 + 3 * rate))
    assert stale["ceiling"] == pytest.approx(1 / stale["realised_rate"])
    for row in (forward, stale):
        assert "first AST epoch" in row["figure"] and row["distinct_sizes"] <= 16


# ---- the Kaggle kernel that runs it ---------------------------------------------------------------------------

KERNEL, NOTEBOOK = "gpu-selftest", "00_gpu_selftest.ipynb"


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def test_selftest_kernel_is_valid_t4_x2_offline_without_data(tmp_path):
    import shutil

    from kdlib.kaggle import KERNELS_DIR, METADATA_FILE, kernel_names, validate_kernel, validate_kernel_folder

    assert KERNEL in kernel_names() and validate_kernel(KERNEL) == []
    folder = tmp_path / KERNEL
    shutil.copytree(KERNELS_DIR / KERNEL, folder)
    shutil.copy(ROOT / "notebooks" / NOTEBOOK, folder)
    meta = json.loads((folder / METADATA_FILE).read_text())
    assert meta["id"].endswith("/kdlib-gpu-selftest") and meta["code_file"] == NOTEBOOK
    assert meta["machine_shape"] == "NvidiaTeslaT4" and meta["enable_gpu"] is True
    assert meta["enable_internet"] is False and meta["dataset_sources"] == []
    assert validate_kernel_folder(folder) == []


def test_selftest_notebook_is_thin_with_the_shared_setup_cell():
    from kdlib.experiments import NOTEBOOKS

    cells = _cells(ROOT / "notebooks" / NOTEBOOK)
    setup = [c for c in cells if "kdlib-setup" in c["metadata"].get("tags", [])]
    assert len(setup) == 1
    for other in NOTEBOOKS.values():  # identical to every other notebook's setup cell
        theirs = next(c for c in _cells(ROOT / "notebooks" / other) if "kdlib-setup" in c["metadata"].get("tags", []))
        assert "".join(setup[0]["source"]) == "".join(theirs["source"]), other
    assert any("parameters" in c["metadata"].get("tags", []) for c in cells)
    code = [c for c in cells if c["cell_type"] == "code"]
    assert len(code) == 3 and "selftest.run(DEVICE, OUT_DIR)" in "".join(code[-1]["source"])


def test_build_bundles_kdlib_into_the_selftest_setup_cell(tmp_path):
    from kdlib.kaggle import build

    folder = build(KERNEL, tmp_path, owner="someone")
    source, (intro, *built) = _cells(ROOT / "notebooks" / NOTEBOOK), _cells(folder / NOTEBOOK)
    assert intro["cell_type"] == "markdown" and "no presets" in "".join(intro["source"])
    assert len(source) == len(built)
    for a, b in zip(source, built):
        if "kdlib-setup" in a["metadata"].get("tags", []):
            assert "base64.b64decode" in "".join(b["source"])
        else:
            assert "".join(a["source"]) == "".join(b["source"])


def test_a_speedup_above_its_ceiling_is_flagged_not_reported(monkeypatch):
    """A machine that slowed down while full training ran gives an impossible speed-up: the row says it is a
    timing error instead of presenting it as a result."""
    import types

    import torch

    from kdlib import selftest, train

    sizes = {"n": 64, "image": 8, "epochs": 3, "batch": 16, "width": 4}
    processed = 64

    def fake_fit(model, data, config, objective=None, device=None, **kwargs):
        if objective is None:  # full training: 10 s epochs (a busy machine)
            history = [{"epoch_seconds": 10.0}] * config.epochs
        else:  # AST at a = 0.3 learning from 0.3 of each batch, 0.1 s epochs
            history = [{"epoch_seconds": 0.1, "samples_backpropagated": int(0.3 * processed),
                        "samples_forwarded": processed + int(0.3 * processed), "learning_pass_sizes": [8]}
                       for _ in range(config.epochs)]
        return types.SimpleNamespace(history=history)

    monkeypatch.setattr(train, "fit", fake_fit)
    row = selftest.check_ast(torch.device("cpu"), "forward", sizes)
    assert row["speedup"] == 100.0 and not row["speedup_credible"]
    assert "ABOVE its ceiling" in row["figure"]

import sys

import numpy as np
import pytest
import torch

from kdlib import runtime


def test_platform_detection(monkeypatch):
    monkeypatch.delenv("KAGGLE_KERNEL_RUN_TYPE", raising=False)
    monkeypatch.setattr(runtime, "KAGGLE_WORKING", runtime.Path("/nonexistent/kaggle/working"))
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    assert runtime.detect_platform() == "local"
    monkeypatch.setitem(sys.modules, "google.colab", object())
    assert runtime.detect_platform() == "colab"
    monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Interactive")
    assert runtime.detect_platform() == "kaggle"
    assert runtime.default_out_dir("x") == runtime.KAGGLE_WORKING / "x"


def test_input_root_override(monkeypatch, tmp_path):
    monkeypatch.delenv(runtime.INPUT_ROOT_ENV, raising=False)
    assert runtime.input_root() == runtime.Path("/kaggle/input")
    monkeypatch.setenv(runtime.INPUT_ROOT_ENV, str(tmp_path))
    assert runtime.input_root() == tmp_path


def test_cpu_precision_is_fp32_without_scaler():
    p = runtime.select_precision(torch.device("cpu"))
    assert p.amp_dtype is None and not p.use_grad_scaler and p.name == "fp32"
    assert not p.grad_scaler().is_enabled()
    with pytest.raises(ValueError):
        runtime.select_precision(torch.device("cpu"), amp="fp8")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_precision():
    p = runtime.select_precision(torch.device("cuda"), amp="fp16")
    assert p.amp_dtype == torch.float16 and p.use_grad_scaler


def test_cuda_request_without_gpu_is_explained(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="Accelerator"):
        runtime.select_device("cuda")
    assert runtime.select_device() == torch.device("cpu")


def test_seeding_repeats_all_generators():
    def draw():
        return runtime.random.random(), np.random.rand(), torch.rand(1).item()

    runtime.seed_everything(7)
    a = draw()
    runtime.seed_everything(7)
    assert draw() == a
    runtime.seed_everything(7, deterministic=True)
    assert torch.are_deterministic_algorithms_enabled()
    runtime.seed_everything(7)
    assert not torch.are_deterministic_algorithms_enabled()


def test_hardware_info_names_the_device():
    info = runtime.hardware_info(torch.device("cpu"))
    assert info["device"] == "cpu" and info["torch"] == torch.__version__ and info["cpu_count"] >= 1

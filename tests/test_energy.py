"""NVML is stubbed at its module boundary: the counters below stand in for a GPU's."""

import sys
import time
import types

import pytest

from kdlib.energy import EnergyMeter


def fake_pynvml(energy_counter: bool):
    state = {"mj": 1_000_000.0, "mw": 70_000.0}

    def total_energy(handle):
        if not energy_counter:
            raise RuntimeError("NVML_ERROR_NOT_SUPPORTED")
        return state["mj"]

    module = types.SimpleNamespace(
        nvmlInit=lambda: None,
        nvmlDeviceGetHandleByIndex=lambda i: i,
        nvmlDeviceGetTotalEnergyConsumption=total_energy,
        nvmlDeviceGetPowerUsage=lambda handle: state["mw"],
    )
    return module, state


def test_total_energy_counter(monkeypatch):
    module, state = fake_pynvml(energy_counter=True)
    monkeypatch.setitem(sys.modules, "pynvml", module)
    meter = EnergyMeter(nvml_indices=[0, 1])
    assert meter.method == "nvml-total-energy"
    meter.start()
    state["mj"] += 2500.0  # each of the two GPUs used 2.5 J
    assert meter.stop() == pytest.approx(5.0)


def test_power_integrated_when_the_counter_is_missing(monkeypatch):
    module, state = fake_pynvml(energy_counter=False)
    monkeypatch.setitem(sys.modules, "pynvml", module)
    meter = EnergyMeter(nvml_indices=[0], sample_interval=0.01)
    assert meter.method == "nvml-power-sampling"
    meter.start()
    t0 = time.perf_counter()
    time.sleep(0.3)
    joules = meter.stop()
    elapsed = time.perf_counter() - t0
    assert joules == pytest.approx(70.0 * elapsed, rel=0.15)  # 70 W over the measured time


def test_no_gpu_reads_none(monkeypatch):
    def broken_init():
        raise RuntimeError("NVML Shared Library Not Found")

    monkeypatch.setitem(sys.modules, "pynvml", types.SimpleNamespace(nvmlInit=broken_init))
    meter = EnergyMeter()
    meter.start()
    assert not meter.available and meter.stop() is None

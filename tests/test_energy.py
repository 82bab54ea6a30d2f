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


# ---- metering the training device only ----------------------------------------------------------------------

def fake_pynvml_per_gpu(n: int = 4):
    """One energy counter per NVML index; handles are the indices."""
    counters = {i: 1_000_000.0 for i in range(n)}
    module = types.SimpleNamespace(
        nvmlInit=lambda: None,
        nvmlDeviceGetHandleByIndex=lambda i: i,
        nvmlDeviceGetHandleByPciBusId=lambda bus: {"00000000:3b:00.0": 3}[bus],
        nvmlDeviceGetTotalEnergyConsumption=lambda h: counters[h],
        nvmlDeviceGetPowerUsage=lambda h: 70_000.0,
    )
    return module, counters


def test_meter_for_reads_only_the_training_gpu(monkeypatch):
    from kdlib.energy import meter_for

    module, counters = fake_pynvml_per_gpu()
    monkeypatch.setitem(sys.modules, "pynvml", module)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")  # torch's cuda:1 is NVML's GPU 3
    assert meter_for("cpu") is None
    meter = meter_for("cuda:1")
    meter.start()
    counters[3] += 2500.0  # the training GPU
    counters[2] += 9000.0  # another visible GPU, busy with something else
    counters[0] += 4000.0  # not even visible
    assert meter.stop() == pytest.approx(2.5)


def test_meter_for_matches_the_gpu_by_pci_bus_id(monkeypatch):
    import torch

    from kdlib.energy import meter_for

    module, counters = fake_pynvml_per_gpu()
    monkeypatch.setitem(sys.modules, "pynvml", module)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    props = types.SimpleNamespace(pci_domain_id=0, pci_bus_id=0x3B, pci_device_id=0)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: props)
    meter = meter_for("cuda:0")  # CUDA's 0 is NVML's 3 (CUDA numbers fastest-first, NVML by bus)
    meter.start()
    counters[3] += 1000.0
    counters[0] += 5000.0
    assert meter.stop() == pytest.approx(1.0)


class _FakeMeter:
    def start(self):
        pass

    def stop(self):
        return 3.0


class _TwoIdenticalRanks:
    """A RankSync stand-in for two ranks that did exactly the same."""

    world_size, rank = 2, 0

    def sum(self, values):
        return values * 2


def _tiny_fit(**kwargs):
    import torch

    from kdlib.train import TrainConfig, fit
    from test_train import tiny_data, tiny_model

    config = TrainConfig(epochs=2, batch_size=32, warmup_epochs=0, progress=False, channels_last=False)
    return fit(tiny_model(), tiny_data(n_train=64, n_val=32), config, device=torch.device("cpu"), **kwargs)


def test_fit_sums_the_ranks_energy_and_counts(monkeypatch):
    import kdlib.train

    monkeypatch.setattr(kdlib.train, "meter_for", lambda device: _FakeMeter())
    single = _tiny_fit()
    assert [h["energy_joules"] for h in single.history] == [3.0, 3.0]
    assert single.history[0]["energy_scope"] == "cpu only"
    ranks = _tiny_fit(sync=_TwoIdenticalRanks())
    assert [h["energy_joules"] for h in ranks.history] == [6.0, 6.0]
    assert "sum over 2 ranks" in ranks.history[0]["energy_scope"]
    assert [h["samples_backpropagated"] for h in ranks.history] == [128, 128]


def test_concurrent_students_label_their_energy_as_the_groups(monkeypatch):
    import kdlib.train
    from kdlib.distill.hpmkd import run_concurrently

    monkeypatch.setattr(kdlib.train, "meter_for", lambda device: _FakeMeter())
    results = run_concurrently([_tiny_fit, _tiny_fit])
    for r in results:
        assert "shared by 2 concurrent runs: the group's energy" in r.history[0]["energy_scope"]

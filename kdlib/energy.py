"""GPU energy from NVML (nvidia-ml-py): what the GPU itself measured, never an estimate.

Preferred: the total-energy counter (``nvmlDeviceGetTotalEnergyConsumption``, millijoules since the
driver loaded; Volta and newer, so a T4 has it). Where that call is not supported, board power
(``nvmlDeviceGetPowerUsage``, milliwatts) is sampled on a thread and integrated over time (trapezoids).
Without a GPU or NVML, readings are None and tables say "n/a".

What is metered is the training device only (``meter_for(device)``): a run on cuda:0 of a two-GPU machine does
not count the idle cuda:1. A data-parallel run sums its ranks' own devices (each rank meters its own, ``fit``
all-reduces the values); students trained concurrently on one GPU each read that GPU, so each reading is the
group's energy, and the history says so (``energy_scope``).
"""

from __future__ import annotations

import os
import threading
import time


def _nvml():
    try:
        import pynvml

        pynvml.nvmlInit()
        return pynvml
    except Exception:  # no driver, no GPU, no package
        return None


def _visible_nvml_indices(n_torch_devices: int) -> list[int]:
    # torch numbers the GPUs in CUDA_VISIBLE_DEVICES; NVML numbers all of them.
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible:
        try:
            return [int(v) for v in visible.split(",") if v.strip()][:n_torch_devices]
        except ValueError:  # UUIDs: fall back to the identity mapping
            pass
    return list(range(n_torch_devices))


def _handle_for(nvml, torch_index: int):
    """NVML's handle for torch's cuda:<torch_index>. By PCI bus id where torch reports it (CUDA may number
    GPUs fastest-first while NVML numbers them by bus), else through CUDA_VISIBLE_DEVICES."""
    import torch

    try:
        p = torch.cuda.get_device_properties(torch_index)
        return nvml.nvmlDeviceGetHandleByPciBusId(f"{p.pci_domain_id:08x}:{p.pci_bus_id:02x}:{p.pci_device_id:02x}.0")
    except Exception:  # no CUDA here (tests), an older torch, or NVML without the call
        return nvml.nvmlDeviceGetHandleByIndex(_visible_nvml_indices(torch_index + 1)[torch_index])


def meter_for(device) -> "EnergyMeter | None":
    """A meter of the GPU ``device`` names (cuda / cuda:k), None for any other device."""
    import torch

    device = torch.device(device)
    if device.type != "cuda":
        return None
    index = device.index if device.index is not None else torch.cuda.current_device()
    return EnergyMeter(torch_devices=[index])


class EnergyMeter:
    """Joules used by the given GPUs between ``start()`` and ``stop()``: ``torch_devices`` (torch's CUDA
    indices), or ``nvml_indices``; neither: every visible GPU (prefer ``meter_for(device)``)."""

    def __init__(self, nvml_indices: list[int] | None = None, sample_interval: float = 0.05,
                 torch_devices: list[int] | None = None):
        self.nvml = _nvml()
        self.handles, self.method = [], None
        self.sample_interval = sample_interval
        if self.nvml is None:
            return
        if torch_devices is not None:
            self.handles = [_handle_for(self.nvml, i) for i in torch_devices]
        else:
            if nvml_indices is None:
                import torch

                nvml_indices = _visible_nvml_indices(torch.cuda.device_count() if torch.cuda.is_available() else 0)
            self.handles = [self.nvml.nvmlDeviceGetHandleByIndex(i) for i in nvml_indices]
        if not self.handles:
            return
        try:
            for h in self.handles:
                self.nvml.nvmlDeviceGetTotalEnergyConsumption(h)
            self.method = "nvml-total-energy"
        except Exception:
            self.method = "nvml-power-sampling"

    @property
    def available(self) -> bool:
        return self.method is not None

    def _read_counters(self) -> float:
        return sum(self.nvml.nvmlDeviceGetTotalEnergyConsumption(h) for h in self.handles) / 1000.0

    def _read_power(self) -> float:
        return sum(self.nvml.nvmlDeviceGetPowerUsage(h) for h in self.handles) / 1000.0

    def start(self) -> None:
        if self.method == "nvml-total-energy":
            self._start = self._read_counters()
        elif self.method == "nvml-power-sampling":
            self._joules, self._stop_event = 0.0, threading.Event()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()

    def _sample(self) -> None:
        last_t, last_p = time.perf_counter(), self._read_power()
        while not self._stop_event.wait(self.sample_interval):
            t, p = time.perf_counter(), self._read_power()
            self._joules += (p + last_p) / 2 * (t - last_t)
            last_t, last_p = t, p
        t, p = time.perf_counter(), self._read_power()
        self._joules += (p + last_p) / 2 * (t - last_t)

    def stop(self) -> float | None:
        """Joules since ``start()``; None when no GPU energy can be read here."""
        if self.method == "nvml-total-energy":
            return self._read_counters() - self._start
        if self.method == "nvml-power-sampling":
            self._stop_event.set()
            self._thread.join()
            return self._joules
        return None

"""GPU energy from NVML (nvidia-ml-py): what the GPU itself measured, never an estimate.

Preferred: the total-energy counter (``nvmlDeviceGetTotalEnergyConsumption``, millijoules since the
driver loaded; Volta and newer, so a T4 has it). Where that call is not supported, board power
(``nvmlDeviceGetPowerUsage``, milliwatts) is sampled on a thread and integrated over time (trapezoids).
Without a GPU or NVML, readings are None and tables say "n/a".
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


class EnergyMeter:
    """Joules used by the given GPUs (NVML indices) between ``start()`` and ``stop()``."""

    def __init__(self, nvml_indices: list[int] | None = None, sample_interval: float = 0.05):
        self.nvml = _nvml()
        self.handles, self.method = [], None
        self.sample_interval = sample_interval
        if self.nvml is None:
            return
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

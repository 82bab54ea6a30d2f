"""ipywidgets explorers for the notebooks."""

from __future__ import annotations

import numpy as np
import torch

from . import runtime
from .data.device_loader import DeviceLoader
from .data.splits import ImageSplits
from .evaluate import predict_logits


def softened_distribution(logits, temperature: float) -> np.ndarray:
    """softmax(logits / T): T = 1 is the model's own distribution, larger T spreads it out."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def entropy_bits(p: np.ndarray) -> float:
    p = np.asarray(p, dtype=np.float64)
    return float(-(p * np.log2(np.clip(p, 1e-300, None))).sum())


class TemperatureExplorer:
    """A temperature slider and a digit picker over the teacher's logits on test digits."""

    def __init__(self, teacher: torch.nn.Module, data: ImageSplits, device: torch.device, n_digits: int = 100,
                 channels_last: bool = True):
        n = min(n_digits, len(data.test_y))
        mean, std = data.channel_stats()
        loader = DeviceLoader(data.test_x[:n], data.test_y[:n], 256, device, mean, std, channels_last=channels_last)
        logits, labels = predict_logits(teacher, loader, runtime.select_precision(device))
        self.logits, self.labels = logits.numpy(), labels.numpy()
        self.images, self.classes = data.test_x[:n, 0].numpy(), data.classes

    def figure(self, index: int, temperature: float):
        import matplotlib.pyplot as plt

        p = softened_distribution(self.logits[index], temperature)
        p1 = softened_distribution(self.logits[index], 1.0)
        fig, (ax_img, ax_bar) = plt.subplots(1, 2, figsize=(8, 2.8), gridspec_kw={"width_ratios": [1, 3]})
        ax_img.imshow(self.images[index], cmap="gray")
        ax_img.set_title(f"test digit #{index} (label {self.classes[self.labels[index]]})", fontsize=9)
        ax_img.axis("off")
        x = np.arange(len(p))
        ax_bar.bar(x - 0.2, p1, width=0.4, color="#cccccc", label="T = 1")
        ax_bar.bar(x + 0.2, p, width=0.4, color="#C44E52", label=f"T = {temperature:.2g}")
        ax_bar.set_xticks(x, self.classes)
        ax_bar.set_ylim(0, 1)
        ax_bar.set_ylabel("teacher probability")
        ax_bar.set_title(f"softmax(logits / T): entropy {entropy_bits(p):.2f} bits (T=1: {entropy_bits(p1):.2f})",
                         fontsize=9)
        ax_bar.legend(fontsize=8)
        fig.tight_layout()
        return fig

    def widget(self):
        import ipywidgets as widgets
        import matplotlib.pyplot as plt
        from IPython.display import display

        digit = widgets.IntSlider(value=0, min=0, max=len(self.labels) - 1, description="digit #")
        temp = widgets.FloatLogSlider(value=4.0, base=10, min=-0.3, max=1.3, step=0.02, description="T")
        out = widgets.Output()

        def redraw(*_):
            with out:
                out.clear_output(wait=True)
                fig = self.figure(digit.value, temp.value)
                display(fig)
                plt.close(fig)

        digit.observe(redraw, names="value")
        temp.observe(redraw, names="value")
        redraw()
        return widgets.VBox([widgets.HBox([digit, temp]), out])


def _static_twin(fig, path):
    """An explorer's figure at the run's own settings, saved to ``path``: in a batch run it is all there is (no
    frontend draws a widget); in an interactive one it is shown before the widget, so a notebook saved from that
    session (Colab's File > Save, a download) still shows a figure where a widget's state is lost."""
    import matplotlib.pyplot as plt
    from IPython.display import display

    from .plots import save_figure

    save_figure(fig, path)
    plt.close(fig)  # shown once: as the cell's value (batch) or here, not again by the inline backend
    if runtime.batch_run():
        return fig
    display(fig)
    return None


def temperature_explorer(teacher, data, device, n_digits: int = 100, temperature: float = 4.0, path=None):
    """The static figure at ``temperature`` (saved to ``path``), then, where someone watches, the explorer's widget;
    in a batch run (``runtime.batch_run``) the figure alone."""
    explorer = TemperatureExplorer(teacher, data, device, n_digits)
    static = _static_twin(explorer.figure(0, temperature), path)
    return static if runtime.batch_run() else explorer.widget()


def controller_figure(stream, target: float, kp: float, ki: float, ema_factor: float):
    """What a PI controller with these settings does on a recorded significance stream."""
    import matplotlib.pyplot as plt

    from .sparse.controller import replay

    rates, thresholds = replay(stream, target=target, kp=kp, ki=ki, ema_factor=ema_factor)
    fig, (ax_rate, ax_th) = plt.subplots(2, 1, figsize=(8, 3.6), sharex=True)
    ax_rate.plot(rates, lw=0.7, label="pass rate")
    ax_rate.axhline(target, color="#C44E52", ls="--", label="target")
    tail = rates[len(rates) // 2:]
    ax_rate.set_title(f"mean pass rate over the second half: {np.mean(tail):.3f} (target {target:.2f})", fontsize=9)
    ax_rate.legend(fontsize=7)
    ax_th.plot(thresholds, color="#55A868")
    ax_th.set_ylabel("threshold")
    ax_th.set_xlabel("recorded batch")
    fig.tight_layout()
    return fig


def controller_simulator(stream, target: float = 0.1, kp: float = 2.0, ki: float = 0.5, ema_factor: float = 0.2,
                         path=None):
    """Sliders for target, kp, ki and the EMA factor, replaying ``stream`` (recorded per-batch scores); in a batch
    run (``runtime.batch_run``), the static figure at the given settings alone; elsewhere that figure (saved to
    ``path``) comes first."""
    static = _static_twin(controller_figure(stream, target, kp, ki, ema_factor), path)
    if runtime.batch_run():
        return static
    import ipywidgets as widgets
    import matplotlib.pyplot as plt
    from IPython.display import display

    sliders = {
        "target": widgets.FloatSlider(value=target, min=0.02, max=0.9, step=0.01, description="target"),
        "kp": widgets.FloatSlider(value=kp, min=0.0, max=10.0, step=0.1, description="kp"),
        "ki": widgets.FloatSlider(value=ki, min=0.0, max=3.0, step=0.05, description="ki"),
        "ema_factor": widgets.FloatSlider(value=ema_factor, min=0.01, max=1.0, step=0.01, description="EMA"),
    }
    out = widgets.Output()

    def redraw(*_):
        with out:
            out.clear_output(wait=True)
            fig = controller_figure(stream, **{k: s.value for k, s in sliders.items()})
            display(fig)
            plt.close(fig)

    for s in sliders.values():
        s.observe(redraw, names="value")
    redraw()
    return widgets.VBox([widgets.HBox(list(sliders.values())[:2]), widgets.HBox(list(sliders.values())[2:]), out])

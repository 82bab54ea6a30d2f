"""A saved notebook read as a person who gets its link reads it: rendered to HTML (nbconvert), no widget running.
The demo notebook tests call ``check_reads_as_saved`` on the notebook each of their runs leaves behind."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat

WIDGET_REPR = re.compile(r"^\s*(VBox|HBox|IntSlider|FloatSlider|Dropdown|Output|interactive)\(")
FROZEN_BAR = re.compile(r"(^|\s)0%\|")
VERDICT_WORDS = ("beats", "loses to", "cannot be told apart", "shown lossless", "no verdict", "no test")


def _outputs(cell) -> list:
    return cell.get("outputs", []) if cell.cell_type == "code" else []


def _text(output) -> str:
    if output.output_type == "stream":  # what a renderer shows: each line after its last carriage return
        return "\n".join(line.rsplit("\r", 1)[-1] for line in output.text.split("\n"))
    data = output.get("data", {})
    return str(data.get("text/markdown", "")) + str(data.get("text/plain", ""))


def check_reads_as_saved(path: Path) -> str:
    """Assert what a reader of the saved notebook needs: it renders to HTML; it opens with 'Results at a glance'
    stating verdicts, before any other section; every cell that shows a figure holds an image/png; no output is only
    a widget's repr or a progress bar frozen at 0%. Returns the HTML."""
    from nbconvert import HTMLExporter

    nb = nbformat.read(path, as_version=4)
    html, _ = HTMLExporter().from_notebook_node(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    glance = "".join(_text(o) for o in _outputs(code[0]))
    assert glance.lstrip().startswith("## Results at a glance"), glance[:300]
    assert "**Verdicts**" in glance and any(w in glance for w in VERDICT_WORDS), glance
    assert html.index("Results at a glance") < html.index(">Data<"), "the findings are not the first section"
    for cell in code:
        outputs = _outputs(cell)
        if "plt.show()" in cell.source:
            assert any("image/png" in o.get("data", {}) for o in outputs), cell.source[:200]
        for o in outputs:
            text = _text(o)
            assert not FROZEN_BAR.search(text), (cell.source[:120], text[:300])
            data = o.get("data", {})
            if "application/vnd.jupyter.widget-view+json" in data or WIDGET_REPR.match(text):
                assert "image/png" in data, f"a widget with no figure: {cell.source[:120]!r}"
    return html

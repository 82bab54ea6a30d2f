"""Render executed notebooks as a shared link shows them, and photograph the first screen.

Each notebook is rendered to HTML with nbconvert (no widget runs, as on Kaggle's viewer, nbviewer or GitHub), then a
headless Chromium takes a screenshot of its first 1280x1400 pixels: what a stranger sees before scrolling. The README's
screenshots in docs/figures/ were made with this script from the demo runs of ``make demo``:

    python benchmarks/render_notebooks.py runs/demo/mnist-kd/01_mnist_kd.ipynb \
        runs/demo/cifar10-ast/02_cifar10_ast.ipynb runs/demo/imagenet100-ast/03_imagenet100_ast.ipynb \
        --out docs/figures

Chromium: ``apt-get install chromium`` (Debian); without it only the HTML is written.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
from pathlib import Path


def render(notebook: Path, out: Path, height: int = 1400) -> list[Path]:
    import nbformat
    from nbconvert import HTMLExporter

    out.mkdir(parents=True, exist_ok=True)
    from traitlets.config import Config

    # what Kaggle's viewer and JupyterLab show: the cells the notebook hides (the glance's one-line placeholder,
    # the install cell) without their source; nbconvert alone ignores jupyter.source_hidden
    config = Config()
    config.TagRemovePreprocessor.remove_input_tags = {"glance", "kdlib-setup"}
    config.TagRemovePreprocessor.enabled = True
    html, _ = HTMLExporter(config=config).from_notebook_node(nbformat.read(notebook, as_version=4))
    page = out / f"{notebook.stem}.html"
    page.write_text(html)
    written = [page]
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser:
        shot = out / f"screenshot_{notebook.stem}.png"
        subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        f"--screenshot={shot.resolve()}", f"--window-size=1280,{height}", page.resolve().as_uri()],
                       check=True, capture_output=True, timeout=120)
        written.append(shot)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=Path("rendered"))
    parser.add_argument("--height", type=int, default=1400, help="screenshot height in pixels (the first screen)")
    parser.add_argument("--keep-html", action="store_true", help="keep the HTML beside the screenshots")
    args = parser.parse_args()
    for notebook in args.notebooks:
        for path in render(notebook, args.out, args.height):
            if path.suffix == ".html" and not args.keep_html and any(args.out.glob(f"screenshot_{notebook.stem}.png")):
                path.unlink()
            else:
                print(path)


if __name__ == "__main__":
    main()

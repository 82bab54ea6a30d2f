import json
from pathlib import Path

import pytest

from kdlib import links
from kdlib.experiments import NOTEBOOKS

ROOT = Path(__file__).resolve().parent.parent


def test_urls_derive_from_the_repository_address(monkeypatch):
    monkeypatch.setattr(links, "repository_url", lambda: "https://github.com/someone/kdlib.git")
    assert links.colab_url("x.ipynb") == "https://colab.research.google.com/github/someone/kdlib/blob/main/notebooks/x.ipynb"
    assert links.kaggle_url("x.ipynb").endswith("src=https://github.com/someone/kdlib/blob/main/notebooks/x.ipynb")
    monkeypatch.setattr(links, "repository_url", lambda: "https://gitlab.com/someone/kdlib")
    with pytest.raises(ValueError, match="github.com"):
        links.colab_url("x.ipynb")


def test_readme_badges_are_the_generated_ones():
    assert links.badges_markdown(NOTEBOOKS) in (ROOT / "README.md").read_text()


@pytest.mark.parametrize("notebook", sorted(NOTEBOOKS.values()))
def test_notebooks_install_from_the_same_repository(notebook):
    cells = json.loads((ROOT / "notebooks" / notebook).read_text())["cells"]
    setup = next(c for c in cells if "kdlib-setup" in c["metadata"].get("tags", []))
    source = "".join(setup["source"])
    assert f'REPOSITORY = "{links.repository_url()}"' in source and 'f"git+{REPOSITORY}"' in source
    # on Colab and Kaggle alike (no Colab-only branch), overridable, with the one message for the internet off
    assert "google.colab" not in source and "KDLIB_INSTALL_SOURCE" in source and "Settings > Internet" in source

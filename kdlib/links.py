"""Open-in-Colab and Open-in-Kaggle links, derived from the repository address in pyproject.toml."""

from __future__ import annotations

import re
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"
BRANCH = "main"


def repository_url() -> str:
    try:
        import tomllib

        return tomllib.loads(PYPROJECT.read_text())["project"]["urls"]["Repository"]
    except (FileNotFoundError, KeyError):  # an installed copy without the source tree: its metadata has it
        from importlib.metadata import metadata

        for entry in metadata("kdlib").get_all("Project-URL") or []:
            label, _, url = entry.partition(",")
            if label.strip() == "Repository":
                return url.strip()
        raise


def _github_path() -> str:
    match = re.fullmatch(r"https://github\.com/([^/]+/[^/]+?)(?:\.git)?/?", repository_url())
    if not match:
        raise ValueError(f"{repository_url()} is not a github.com repository address")
    return match.group(1)


def colab_url(notebook: str) -> str:
    return f"https://colab.research.google.com/github/{_github_path()}/blob/{BRANCH}/notebooks/{notebook}"


def kaggle_url(notebook: str) -> str:
    return f"https://kaggle.com/kernels/welcome?src=https://github.com/{_github_path()}/blob/{BRANCH}/notebooks/{notebook}"


def badges_markdown(notebooks: dict[str, str]) -> str:
    """One line per notebook with both badges, as the README shows them."""
    lines = []
    for experiment, notebook in notebooks.items():
        lines.append(
            f"- `{notebook}` ({experiment}): "
            f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({colab_url(notebook)}) "
            f"[![Open In Kaggle](https://kaggle.com/static/images/open-in-kaggle.svg)]({kaggle_url(notebook)})"
        )
    return "\n".join(lines)

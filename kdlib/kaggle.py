"""Kaggle kernels: validation of a kernel folder before it is pushed.

The official client's own checks are called, not re-implemented (title, id and slug, language, kernel type,
the forms of dataset, kernel and model source strings); ours follow: machine shape set and not P100,
internet stated explicitly (the client silently defaults it to on), outputs stripped, no credentials.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

METADATA_FILE = "kernel-metadata.json"
KERNELS_DIR = Path(__file__).resolve().parent.parent / "kaggle_kernels"
T4_SHAPE = "NvidiaTeslaT4"
# What a leaked credential looks like: an API key in kaggle.json form, an assignment of one, a new-style token.
_CREDENTIAL_PATTERNS = [re.compile(p) for p in (r'"key"\s*:\s*"[0-9a-f]{32}"', r"KAGGLE_KEY\s*=\s*\S{16,}",
                                                r"KGAT_[A-Za-z0-9]{16,}")]


def _official_api():
    # Importing kaggle tries to authenticate and prints a page of advice when there are no credentials;
    # the validators need none, so that output is kept out of the user's way.
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        from kaggle.api.kaggle_api_extended import KaggleApi

        return KaggleApi()


def validate_kernel_folder(folder: str | Path) -> list[str]:
    """Problems with a kernel folder, each naming the field or file and the fix; empty when it can be pushed."""
    from slugify import slugify

    folder = Path(folder)
    meta_path = folder / METADATA_FILE
    if not meta_path.is_file():
        return [f"{meta_path}: missing; create it (see kaggle_kernels/*/{METADATA_FILE})"]
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as exc:
        return [f"{meta_path}: not valid JSON ({exc})"]
    api, problems = _official_api(), []

    title = meta.get("title") or ""
    if len(title) < 5:
        problems.append("title: must be at least 5 characters (the kaggle client refuses shorter titles)")
    kernel_id = meta.get("id") or ""
    if not kernel_id:
        problems.append("id: set it to '<owner>/<slug>'")
    else:
        try:
            owner, slug, version = api.parse_kernel_string(kernel_id)
            api.validate_kernel_string(kernel_id)
            if version is not None:
                problems.append(f"id: {kernel_id!r} must not carry a version")
            if title and slug.lower() != slugify(title):
                problems.append(f"id: slug {slug!r} must equal the title's slug {slugify(title)!r}; change one of them")
        except ValueError as exc:
            problems.append(f"id: {exc}")
    if meta.get("language") not in api.valid_push_language_types:
        problems.append(f"language: {meta.get('language')!r}; use one of {api.valid_push_language_types}")
    if meta.get("kernel_type") not in api.valid_push_kernel_types:
        problems.append(f"kernel_type: {meta.get('kernel_type')!r}; use one of {api.valid_push_kernel_types}")
    for field, check in (("dataset_sources", api.validate_dataset_string), ("kernel_sources", api.validate_kernel_string),
                         ("model_sources", api.validate_model_instance_version_string)):
        for source in meta.get(field, []):
            try:
                check(source)
            except ValueError as exc:
                problems.append(f"{field}: {source!r}: {exc}")

    # ours
    shape = meta.get("machine_shape")
    if not shape:
        problems.append(f"machine_shape: not set; use {T4_SHAPE!r} (Kaggle's T4 x2)")
    elif "p100" in str(shape).lower():
        problems.append(f"machine_shape: {shape!r}: P100 sessions no longer run current PyTorch; use {T4_SHAPE!r}")
    if not isinstance(meta.get("enable_internet"), bool):
        problems.append("enable_internet: state it explicitly (true or false); the kaggle client defaults it to true")
    code_path = folder / meta.get("code_file", "")
    if not meta.get("code_file") or not code_path.is_file():
        problems.append(f"code_file: {str(code_path)!r} not found; put the notebook in the folder (kdlib kaggle build)")
    elif code_path.suffix == ".ipynb":
        cells = json.loads(code_path.read_text()).get("cells", [])
        if any(c.get("outputs") or c.get("execution_count") for c in cells if c.get("cell_type") == "code"):
            problems.append(f"code_file: {code_path.name} has stored outputs; strip them before pushing")
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        text = path.read_text(errors="ignore")
        if any(pattern.search(text) for pattern in _CREDENTIAL_PATTERNS):
            problems.append(f"{path.name}: looks like it holds a Kaggle credential; remove it (credentials are never pushed)")
    return problems


def kernel_names() -> list[str]:
    return sorted(p.parent.name for p in KERNELS_DIR.glob(f"*/{METADATA_FILE}"))


def validate_kernel(name: str) -> list[str]:
    """Validate kaggle_kernels/<name> together with the notebook its metadata names, as they would be pushed."""
    import shutil
    import tempfile

    from .__main__ import NOTEBOOK_DIR

    source = KERNELS_DIR / name
    if not (source / METADATA_FILE).is_file():
        return [f"no kernel {name!r}; known: {', '.join(kernel_names())}"]
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / name
        shutil.copytree(source, staged)
        code_file = json.loads((source / METADATA_FILE).read_text()).get("code_file", "")
        if code_file and (NOTEBOOK_DIR / code_file).is_file():
            shutil.copy(NOTEBOOK_DIR / code_file, staged / code_file)
        return validate_kernel_folder(staged)


BUNDLE_DIR = "/tmp/kdlib_bundle"
SETUP_TAG = "kdlib-setup"
OWNER_PLACEHOLDER = "kdlib-owner"


def bundle_package() -> str:
    """The kdlib package's source and data files as a base64-encoded zip (no caches, no compiled files)."""
    import base64
    import zipfile

    package = Path(__file__).resolve().parent
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(p for p in package.rglob("*") if p.suffix in (".py", ".json")):
            zf.write(path, Path("kdlib") / path.relative_to(package))
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def bootstrap_cell_source(bundle: str) -> str:
    from . import __version__

    return (
        f"# kdlib {__version__}, bundled into this notebook by `python -m kdlib kaggle build`: Kaggle runs it with\n"
        "# the internet off, so the package travels inside the notebook and is unpacked here.\n"
        "import base64, io, pathlib, sys, zipfile\n"
        f"_bundle = pathlib.Path({BUNDLE_DIR!r})\n"
        f"zipfile.ZipFile(io.BytesIO(base64.b64decode({bundle!r}))).extractall(_bundle)\n"
        "sys.path.insert(0, str(_bundle))\n"
        "import kdlib\n"
        "print('kdlib', kdlib.__version__, 'from', pathlib.Path(kdlib.__file__).parent)"
    )


PRESET_FILE = "kdlib.json"  # kaggle_kernels/<name>/kdlib.json: {"preset": "<the preset a built kernel runs>"}
PRESETS = ("demo", "quick", "full")
INJECTED_TAG = "injected-parameters"


def default_preset(name: str) -> str:
    """The preset kernel ``name`` runs unless told otherwise (its folder's kdlib.json)."""
    return json.loads((KERNELS_DIR / name / PRESET_FILE).read_text())["preset"]


def inject_parameters(nb, **parameters) -> None:
    """Set notebook parameters as papermill does: a cell tagged 'injected-parameters' right after the cell
    tagged 'parameters' (replacing an earlier injected one). Kaggle runs notebooks as they are, so this is how a
    built kernel gets its preset."""
    import nbformat

    nb.cells = [c for c in nb.cells if INJECTED_TAG not in c.metadata.get("tags", [])]
    tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    if len(tagged) != 1:
        raise ValueError(f"expected one cell tagged 'parameters', found {len(tagged)}")
    source = "# Parameters\n" + "".join(f"{key} = {json.dumps(value) if isinstance(value, str) else repr(value)}\n"
                                      for key, value in parameters.items())
    nb.cells.insert(tagged[0] + 1, nbformat.v4.new_code_cell(source, metadata={"tags": [INJECTED_TAG]}))


def build(name: str, out_dir: str | Path, owner: str | None = None, preset: str | None = None) -> Path:
    """Write the push folder for kernel ``name``: its metadata (id under ``owner``) and its notebook with
    outputs stripped, the setup cell replaced by the bundled package and ``PRESET`` set to ``preset`` (default:
    the kernel's own, from its kdlib.json) in an injected-parameters cell. ``notebooks/`` stays the source."""
    import os

    import nbformat

    from .__main__ import NOTEBOOK_DIR

    source = KERNELS_DIR / name
    if not (source / METADATA_FILE).is_file():
        raise ValueError(f"no kernel {name!r}; known: {', '.join(kernel_names())}")
    meta = json.loads((source / METADATA_FILE).read_text())
    owner = owner or os.environ.get("KAGGLE_USERNAME") or OWNER_PLACEHOLDER
    meta["id"] = f"{owner}/{meta['id'].split('/', 1)[1]}"
    nb = nbformat.read(NOTEBOOK_DIR / meta["code_file"], as_version=4)
    setup = [c for c in nb.cells if SETUP_TAG in c.metadata.get("tags", [])]
    if len(setup) != 1:
        raise ValueError(f"{meta['code_file']}: expected one cell tagged {SETUP_TAG!r}, found {len(setup)}")
    setup[0].source = bootstrap_cell_source(bundle_package())
    preset = preset or default_preset(name)
    if preset not in PRESETS:
        raise ValueError(f"preset {preset!r}: choose one of {', '.join(PRESETS)}")
    inject_parameters(nb, PRESET=preset)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    folder = Path(out_dir) / name
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, folder / meta["code_file"])
    (folder / METADATA_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    return folder


# ---- push, status, output through the official client -------------------------------------------------

class KaggleCredentialsError(RuntimeError):
    pass


CREDENTIALS_HELP = (
    "No Kaggle credentials found. Create a token at https://www.kaggle.com/settings/api, then either set "
    "KAGGLE_API_TOKEN, or KAGGLE_USERNAME and KAGGLE_KEY, or save kaggle.json in ~/.kaggle (or $KAGGLE_CONFIG_DIR) "
    "with permissions 600."
)


def credentials_source() -> str | None:
    """Where the kaggle client will find credentials (never their value), or None. Warns when kaggle.json is
    readable by other users."""
    import os
    import stat
    import warnings

    if os.environ.get("KAGGLE_API_TOKEN"):
        return "KAGGLE_API_TOKEN"
    if os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY"):
        return "KAGGLE_USERNAME/KAGGLE_KEY"
    config_dir = Path(os.environ.get("KAGGLE_CONFIG_DIR") or Path.home() / ".kaggle")
    token_file = config_dir / "access_token"
    if token_file.is_file():
        return str(token_file)
    config = config_dir / "kaggle.json"
    if config.is_file():
        if config.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            warnings.warn(f"{config} can be read by other users of this machine: run 'chmod 600 {config}'")
        return str(config)
    return None


def authenticated_api():
    if credentials_source() is None:
        raise KaggleCredentialsError(CREDENTIALS_HELP)
    api = _official_api()
    with contextlib.redirect_stdout(io.StringIO()):
        api.authenticate()
    return api


def push(name: str, build_dir: str | Path, owner: str | None = None, dry_run: bool = False,
         preset: str | None = None) -> dict:
    """Build (running ``preset``, default the kernel's own), validate, then (unless ``dry_run``) push kernel
    ``name``; returns what was (or would be) sent."""
    folder = build(name, build_dir, owner, preset)
    problems = validate_kernel_folder(folder)
    if problems:
        raise ValueError(f"{folder} is not ready to push:\n" + "\n".join(f"  - {p}" for p in problems))
    meta = json.loads((folder / METADATA_FILE).read_text())
    sent = {"folder": str(folder), **{k: meta.get(k) for k in ("id", "title", "code_file", "machine_shape", "enable_gpu",
                                                               "enable_internet", "is_private", "dataset_sources",
                                                               "model_sources")}}
    if dry_run:
        return sent
    if meta["id"].startswith(OWNER_PLACEHOLDER + "/"):
        raise ValueError("the kernel id has no owner: pass --owner or set KAGGLE_USERNAME")
    response = authenticated_api().kernels_push(str(folder))
    if response is None or getattr(response, "error", None):
        raise RuntimeError(f"Kaggle refused the push of {meta['id']}: {getattr(response, 'error', 'no response')}")
    sent["url"] = getattr(response, "url", None)
    return sent


TERMINAL_STATUSES = ("complete", "error", "cancelacknowledged", "cancelrequested")


def status(kernel_id: str, wait: bool = False, poll_seconds: float = 30.0, timeout: float | None = None,
           sleep=None) -> str:
    """The kernel's latest session status ('running', 'complete', 'error', ...); with ``wait``, polls until it ends."""
    import time

    sleep = sleep or time.sleep
    api = authenticated_api()
    start = time.monotonic()
    while True:
        response = api.kernels_status(kernel_id)
        value = getattr(response.status, "name", response.status)
        state = str(value).lower().replace("_", "")
        if not wait or state in TERMINAL_STATUSES:
            return state
        if timeout is not None and time.monotonic() - start > timeout:
            raise TimeoutError(f"{kernel_id} still {state} after {timeout:.0f} s")
        sleep(poll_seconds)


def output(kernel_id: str, dest: str | Path) -> Path:
    """Download the kernel's output files (results.json, figures...) into ``dest``; returns results.json's path."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    authenticated_api().kernels_output(kernel_id, str(dest), force=True)
    found = sorted(dest.rglob("results.json"))
    if not found:
        raise FileNotFoundError(f"{kernel_id}'s output holds no results.json (did the run finish? see `status`)")
    return found[0]

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

from .paths import KERNELS_DIR, MANIFESTS, NOTEBOOK_DIR, PACKAGE_DIR, manifest_path

METADATA_FILE = "kernel-metadata.json"
T4_SHAPE = "NvidiaTeslaT4"
# What a leaked credential looks like: an API key in kaggle.json form, an assignment of one, a new-style token.
_CREDENTIAL_PATTERNS = [re.compile(p) for p in (r'"key"\s*:\s*"[0-9a-f]{32}"', r"KAGGLE_KEY\s*=\s*\S{16,}",
                                                r"KGAT_[A-Za-z0-9]{16,}")]


def _client_module():
    """``kaggle.api.kaggle_api_extended``, imported without running ``kaggle/__init__.py``: that file authenticates
    at import time, and with a token (KAGGLE_API_TOKEN, ~/.kaggle/access_token) or OAuth credentials that means
    asking Kaggle over the network. The validators and the configuration readers need no network; push, status and
    output authenticate explicitly (``authenticated_api``)."""
    import importlib
    import importlib.util
    import sys

    name = "kaggle.api.kaggle_api_extended"
    if name in sys.modules:
        return sys.modules[name]
    bare = None
    if "kaggle" not in sys.modules:
        spec = importlib.util.find_spec("kaggle")
        if spec is None:
            raise KaggleCredentialsError("the kaggle client is not installed: pip install kaggle (or kdlib[kaggle])")
        bare = sys.modules["kaggle"] = importlib.util.module_from_spec(spec)  # the package, its __init__ not run
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            return importlib.import_module(name)
    finally:
        if bare is not None and sys.modules.get("kaggle") is bare:
            del sys.modules["kaggle"]  # a later `import kaggle` elsewhere behaves as the client documents


def _official_api():
    """A KaggleApi, not authenticated (nothing sent). Its class reads $KAGGLE_CONFIG_DIR once, at import; the
    instance follows the current value."""
    import os

    api = _client_module().KaggleApi()
    config_dir = os.environ.get("KAGGLE_CONFIG_DIR")
    if config_dir:
        api.config_dir, api.config = config_dir, os.path.join(config_dir, api.config_file)
    return api


def _looks_like_credential(text: str) -> bool:
    return any(pattern.search(text) for pattern in _CREDENTIAL_PATTERNS)


_BUNDLE_IN_CELL = re.compile(r"b64decode\((['\"])([A-Za-z0-9+/=]+)\1\)")


def _bundle_problems(notebook: Path) -> list[str]:
    """Credentials inside the kdlib zip that `build` embeds (base64) in a notebook: a plain scan cannot see them."""
    import base64
    import binascii
    import zipfile

    try:
        cells = json.loads(notebook.read_text()).get("cells", [])
    except (json.JSONDecodeError, UnicodeDecodeError):
        return []
    problems = []
    for cell in cells:
        source = "".join(cell.get("source", "")) if cell.get("cell_type") == "code" else ""
        for match in _BUNDLE_IN_CELL.finditer(source):
            try:
                with zipfile.ZipFile(io.BytesIO(base64.b64decode(match.group(2), validate=True))) as zf:
                    for member in zf.namelist():
                        if _looks_like_credential(zf.read(member).decode(errors="ignore")):
                            problems.append(f"{notebook.name}: the bundled package holds {member}, which looks like "
                                            "a Kaggle credential; remove it and build again")
            except (binascii.Error, zipfile.BadZipFile) as exc:
                problems.append(f"{notebook.name}: the bundled package cannot be read ({exc}); build again")
    return problems


# The metadata's fields by type, as the kaggle client reads them (kernels_push): strings, flags (its get_bool takes
# true/false or "true"/"false", nothing else) and lists of strings.
STRING_FIELDS = ("id", "title", "code_file", "language", "kernel_type", "machine_shape", "docker_image",
                 "docker_image_pinning_type")
FLAG_FIELDS = ("is_private", "enable_gpu", "enable_tpu", "enable_internet")
SOURCE_FIELDS = ("dataset_sources", "kernel_sources", "model_sources", "competition_sources")
LIST_FIELDS = (*SOURCE_FIELDS, "keywords")
# Kaggle's GPU machine shapes are named after the card (NvidiaTeslaT4, NvidiaTeslaT4Highmem, ...; the client keeps no
# list, only the retired ones); kdlib needs a CUDA GPU, so TPU shapes (TpuV5E8) are refused too.
GPU_SHAPE = re.compile(r"Nvidia[A-Za-z0-9]+")
# A Kaggle user name or URL slug: ASCII letters, digits and hyphens (Kaggle refuses spaces and other letters).
_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?")


def read_metadata(path: Path) -> dict:
    """A kernel folder's metadata as a dict; a ValueError naming the file when it is not a JSON object."""
    try:
        meta = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: cannot be read ({exc})") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: must hold a JSON object of fields, not a {type(meta).__name__}")
    return meta


def machine_shape_problem(shape, field: str = "machine_shape") -> str | None:
    """Why kdlib cannot run on ``shape`` (one line naming ``field``), or None. Retired shapes are the client's."""
    retired = getattr(_client_module(), "_RETIRED_ACCELERATORS", {})
    if not shape:
        return f"{field}: not set; use {T4_SHAPE!r} (Kaggle's T4 x2)"
    if not isinstance(shape, str):
        return f"{field}: {shape!r} must be a string, e.g. {T4_SHAPE!r}"
    if "p100" in shape.lower():
        return f"{field}: {shape!r}: P100 sessions no longer run current PyTorch; use {T4_SHAPE!r}"
    if shape.lower() in retired:
        return f"{field}: {shape!r} is retired ({retired[shape.lower()]}); use {T4_SHAPE!r}"
    if not GPU_SHAPE.fullmatch(shape):
        return (f"{field}: {shape!r} is not a Kaggle GPU machine shape (those are named after the card, Nvidia...; "
                f"a TPU has no CUDA GPU for kdlib); use {T4_SHAPE!r}, Kaggle's T4 x2")
    return None


def ref_problem(ref, field: str, client_check=None) -> str | None:
    """Why ``ref`` is not an 'owner/slug' Kaggle would accept (``client_check``, the kaggle client's own check of
    its form, by default the kernel one; then ours: an owner and a slug of ASCII letters, digits and hyphens, the
    slug in lower case as Kaggle makes it), or None."""
    if not isinstance(ref, str):
        return f"{field}: {ref!r} must be a string 'owner/slug'"
    try:
        (client_check or _official_api().validate_kernel_string)(ref)
    except ValueError as exc:
        return f"{field}: {ref!r}: {exc}"
    owner, slug = (ref.split("/") + [""])[:2]
    if not _NAME.fullmatch(owner):
        return f"{field}: {ref!r}: the owner {owner!r} is not a Kaggle user name (ASCII letters, digits and hyphens)"
    if not _NAME.fullmatch(slug) or slug != slug.lower():
        return f"{field}: {ref!r}: the slug {slug!r} is not a Kaggle slug (lower-case ASCII letters, digits and hyphens)"
    return None


def metadata_problems(meta: dict) -> list[str]:
    """Problems with a kernel's metadata, at most one per field (each naming it): its type first, then its value,
    against the official client's accepted values where it has them."""
    from slugify import slugify

    api, problems = _official_api(), []
    for field in STRING_FIELDS:
        if field in meta and not isinstance(meta[field], str):
            problems.append(f"{field}: {meta[field]!r} must be a string")
    for field in FLAG_FIELDS:
        if field in meta:
            try:
                api.get_bool(meta, field, False)
            except (ValueError, TypeError):
                problems.append(f"{field}: {meta[field]!r} must be true or false")
    for field in LIST_FIELDS:
        value = meta.get(field, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            example = f"[{value!r}]" if isinstance(value, str) else "[]"
            problems.append(f"{field}: {value!r} must be a list of strings, e.g. {example}")
    keywords = meta.get("keywords", [])
    if "keywords:" not in "".join(problems):  # Kaggle's tags, one per string ("deep learning", "pytorch")
        bad = [k for k in keywords if not k.strip() or "," in k]
        if bad:
            problems.append(f"keywords: {bad[0]!r}: give each tag as its own non-empty string, e.g. "
                            f"{[k.strip() for k in bad[0].split(',') if k.strip()] or ['deep learning']}")
    wrong = {p.split(":", 1)[0] for p in problems}

    def ok(field):
        return field not in wrong

    title = meta.get("title") or ""
    if ok("title") and len(title) < 5:
        problems.append("title: must be at least 5 characters (the kaggle client refuses shorter titles)")
    kernel_id = meta.get("id") or ""
    if ok("id"):
        if not kernel_id:
            problems.append("id: set it to '<owner>/<slug>'")
        elif (problem := ref_problem(kernel_id, "id")) is not None:
            problems.append(problem)
        elif len(kernel_id.split("/")) > 2:
            problems.append(f"id: {kernel_id!r} must not carry a version")
        elif ok("title") and title and kernel_id.split("/")[1].lower() != slugify(title):
            slug = kernel_id.split("/")[1]
            problems.append(f"id: slug {slug!r} must equal the title's slug {slugify(title)!r}; change one of them")
    if ok("language") and meta.get("language") not in api.valid_push_language_types:
        problems.append(f"language: {meta.get('language')!r}; use one of {api.valid_push_language_types}")
    if ok("kernel_type") and meta.get("kernel_type") not in api.valid_push_kernel_types:
        problems.append(f"kernel_type: {meta.get('kernel_type')!r}; use one of {api.valid_push_kernel_types}")
    pinning = meta.get("docker_image_pinning_type")
    if ok("docker_image_pinning_type") and pinning is not None and pinning not in api.valid_push_pinning_types:
        problems.append(f"docker_image_pinning_type: {pinning!r}; use one of {api.valid_push_pinning_types}")
    for field, check in (("dataset_sources", api.validate_dataset_string), ("kernel_sources", api.validate_kernel_string)):
        problems += [problem for ref in (meta.get(field, []) if ok(field) else [])
                     if (problem := ref_problem(ref, field, check)) is not None]
    for source in meta.get("model_sources", []) if ok("model_sources") else []:
        try:
            api.validate_model_instance_version_string(source)
        except ValueError as exc:
            problems.append(f"model_sources: {source!r}: {exc}")

    # ours
    if ok("machine_shape") and (problem := machine_shape_problem(meta.get("machine_shape"))) is not None:
        problems.append(problem)
    if ok("enable_internet") and "enable_internet" not in meta:
        problems.append("enable_internet: state it explicitly (true or false); the kaggle client defaults it to true")
    elif ok("enable_internet") and not api.get_bool(meta, "enable_internet", True) and not (
            {"code_file", "model_sources", "dataset_sources"} & wrong):
        problems += weights_problems(meta)
    return problems


def pretrained_arch(code_file: str) -> str | None:
    """The architecture whose pretrained weights the notebook ``code_file`` fine-tunes in quick or full (the presets
    a kernel runs: a person may switch a built kernel's PRESET), or None."""
    import importlib

    from .experiments import NOTEBOOKS

    experiment = {notebook: name for name, notebook in NOTEBOOKS.items()}.get(code_file)
    if experiment is None:
        return None
    module = importlib.import_module(f"{__package__}.experiments.{experiment.replace('-', '_')}")
    for preset in ("quick", "full"):
        model = getattr(module.make_config(preset, progress=False), "model", "")
        if isinstance(model, str) and model.startswith("pretrained:"):
            return model.split(":", 1)[1]
    return None


def weights_sources(meta: dict, arch: str) -> list[str]:
    """The attached sources that can hold ``arch``'s weights: those whose mount path names it, as
    ``kdlib.models.pretrained`` finds files (a model mounts as <model-slug>/<framework>/<variation>/<version>, a
    dataset as <slug>; the owner is not in the path)."""
    from .models.pretrained import names_architecture

    return [ref for field in ("model_sources", "dataset_sources") for ref in meta.get(field) or []
            if names_architecture(ref.split("/", 1)[-1], arch)]


def weights_problems(meta: dict) -> list[str]:
    """With the internet off, a kernel whose notebook fine-tunes pretrained weights must attach them."""
    from .models.pretrained import MODEL_SOURCE_EXAMPLE

    arch = pretrained_arch(meta.get("code_file") or "")
    if arch is None or weights_sources(meta, arch):
        return []
    return [f"enable_internet: false, but {meta['code_file']} fine-tunes pretrained {arch} weights and none are "
            f"attached: add a Kaggle model whose name says {arch} to model_sources (e.g. '{MODEL_SOURCE_EXAMPLE}') "
            f"or such a dataset to dataset_sources, or set enable_internet to true"]


def validate_kernel_folder(folder: str | Path) -> list[str]:
    """Problems with a kernel folder, each naming the field or file and the fix; empty when it can be pushed."""
    folder = Path(folder)
    meta_path = folder / METADATA_FILE
    if not meta_path.is_file():
        return [f"{meta_path}: missing; create it (see kaggle_kernels/*/{METADATA_FILE})"]
    try:
        meta = read_metadata(meta_path)
    except ValueError as exc:
        return [str(exc)]
    problems = metadata_problems(meta)
    code_path = folder / (meta.get("code_file") if isinstance(meta.get("code_file"), str) else "")
    if any(p.startswith("code_file:") for p in problems):
        pass  # one problem per field
    elif not meta.get("code_file") or not code_path.is_file():
        problems.append(f"code_file: {str(code_path)!r} not found; put the notebook in the folder (kdlib kaggle build)")
    elif code_path.suffix == ".ipynb":
        cells = json.loads(code_path.read_text()).get("cells", [])
        if any(c.get("outputs") or c.get("execution_count") for c in cells if c.get("cell_type") == "code"):
            problems.append(f"code_file: {code_path.name} has stored outputs; strip them before pushing")
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if _looks_like_credential(path.read_text(errors="ignore")):
            problems.append(f"{path.name}: looks like it holds a Kaggle credential; remove it (credentials are never pushed)")
        if path.suffix == ".ipynb":
            problems += _bundle_problems(path)
    return problems


def kernel_names() -> list[str]:
    return sorted(p.parent.name for p in KERNELS_DIR.glob(f"*/{METADATA_FILE}"))


def validate_kernel(name: str) -> list[str]:
    """Validate kaggle_kernels/<name> together with the notebook its metadata names, as they would be pushed."""
    import shutil
    import tempfile

    source = KERNELS_DIR / name
    if not (source / METADATA_FILE).is_file():
        return [f"no kernel {name!r}; known: {', '.join(kernel_names())}"]
    try:
        code_file = read_metadata(source / METADATA_FILE).get("code_file")
    except ValueError as exc:
        return [str(exc)]
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / name
        shutil.copytree(source, staged)
        if isinstance(code_file, str) and code_file and (NOTEBOOK_DIR / code_file).is_file():
            shutil.copy(NOTEBOOK_DIR / code_file, staged / code_file)
        return validate_kernel_folder(staged) + duplicate_id_problems(name)


def duplicate_id_problems(name: str) -> list[str]:
    """Kernel folders whose metadata carries the same id as ``name``'s: a push of one would replace the other."""
    def kernel_id(folder: str):
        try:
            return read_metadata(KERNELS_DIR / folder / METADATA_FILE).get("id")
        except ValueError:
            return None

    mine = kernel_id(name)
    same = [other for other in kernel_names() if other != name and mine and kernel_id(other) == mine]
    return [f"id: {mine!r} is also the id of kaggle_kernels/{other}; give each kernel its own" for other in same]


BUNDLE_DIR = "/tmp/kdlib_bundle"
SETUP_TAG = "kdlib-setup"
OWNER_PLACEHOLDER = "kdlib-owner"


# What the bundle carries besides the package's Python sources: the data files kdlib reads at run time
# (pyproject.toml's package-data: the data manifests the loaders read). Nothing else under kdlib/ travels,
# so a kaggle.json or a stray file left there never reaches a pushed notebook.
BUNDLE_DATA_FILES = tuple(manifest_path(name).relative_to(PACKAGE_DIR).as_posix() for name in MANIFESTS)


def bundle_files() -> list[Path]:
    """The files ``bundle_package`` zips: kdlib's ``*.py`` (no caches, no hidden folders) and BUNDLE_DATA_FILES."""
    package = Path(__file__).resolve().parent
    sources = [p for p in package.rglob("*.py")
               if not any(part.startswith((".", "__pycache__")) for part in p.relative_to(package).parts[:-1])]
    return sorted(sources + [package / name for name in BUNDLE_DATA_FILES])


def bundle_package() -> str:
    """The kdlib package's sources and data files (``bundle_files``) as a base64-encoded zip. Refuses (ValueError,
    naming the file) when one of them looks like it holds a Kaggle credential."""
    import base64
    import zipfile

    package = Path(__file__).resolve().parent
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in bundle_files():
            if _looks_like_credential(path.read_text(errors="ignore")):
                raise ValueError(f"{path}: looks like it holds a Kaggle credential; it would be bundled into the "
                                 "pushed notebook, so nothing was built: remove the credential")
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
INJECTED_TAG = "injected-parameters"  # papermill's, dropped from a built notebook
INTRO_TAG = "kdlib-kernel-intro"


def default_preset(name: str) -> str:
    """The preset kernel ``name`` runs unless told otherwise (its folder's kdlib.json); None for a kernel
    without presets (the GPU self-check)."""
    path = KERNELS_DIR / name / PRESET_FILE
    if not path.is_file():
        return None
    preset = read_metadata(path).get("preset")
    if preset not in PRESETS:
        raise ValueError(f"{path}: preset {preset!r}; use one of {', '.join(PRESETS)}")
    return preset


def _translator(nb):
    """papermill's parameter translator for the notebook's kernel and language, found as parameterize_notebook
    finds it."""
    from papermill.engines import papermill_engines
    from papermill.translators import papermill_translators

    return papermill_translators.find_translator(papermill_engines.nb_kernel_name(None, nb),
                                                 papermill_engines.nb_language(None, nb))


def set_parameters(nb, notebook_name: str = "the notebook", **parameters) -> None:
    """Write each parameter's value into the cell tagged 'parameters' itself, keeping every other line and each
    line's comment, so that what a reader sees there is what runs (Kaggle runs a notebook as it is).

    Not papermill's ``parameterize_notebook``: it adds an 'injected-parameters' cell after the parameters cell, and a
    person who then edits the parameters cell on Kaggle is silently overridden by it. papermill has no call that
    rewrites the cell, so the rewrite is ours; what papermill has is used: its translator renders each value (as its
    injected cells would) and its parser (``inspect``) says which names the cell declares. Any earlier injected
    cell is dropped, since it would override the cell."""
    import ast

    nb.cells = [c for c in nb.cells if INJECTED_TAG not in c.metadata.get("tags", [])]
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    if len(tagged) != 1:
        raise ValueError(f"{notebook_name}: expected one cell tagged 'parameters', found {len(tagged)}")
    cell, translator = tagged[0], _translator(nb)
    declared = {p.name for p in translator.inspect(cell)}
    for name, value in parameters.items():
        if name not in declared:
            raise ValueError(f"{notebook_name}: its parameters cell has no line '{name} = ...' (the form papermill "
                             "reads as a parameter); add one")
        lines = re.split(r"(?<=\n)", cell.source)  # ast's lines (str.splitlines also splits at \x0c, \u2028)
        try:
            body = ast.parse(cell.source).body
        except SyntaxError as exc:
            raise ValueError(f"{notebook_name}: its parameters cell is not valid Python (line {exc.lineno}: "
                             f"{exc.msg}); fix it") from None
        assignments = [node for node in body if isinstance(node, ast.Assign)
                       and any(isinstance(t, ast.Name) and t.id == name for t in node.targets)]
        if len(assignments) != 1:
            raise ValueError(f"{notebook_name}: its parameters cell assigns {name} {len(assignments)} times; keep one "
                             f"line '{name} = ...'")
        node = assignments[0].value
        # ast's offsets count UTF-8 bytes; the value may span lines (a list written over several)
        first, last = (lines[node.lineno - 1].encode(), lines[node.end_lineno - 1].encode())
        head, tail = first[:node.col_offset].decode(), last[node.end_col_offset:].decode()
        rendered = translator.translate(value)
        old_width = (node.end_col_offset - node.col_offset) if node.lineno == node.end_lineno else len(rendered)
        gap = len(tail) - len(tail.lstrip(" "))
        if tail.strip().startswith("#") and gap:  # keep the comment's column where the spaces allow
            tail = " " * max(1, gap - (len(rendered) - old_width)) + tail.lstrip(" ")
        lines[node.lineno - 1:node.end_lineno] = [head + rendered + tail]
        cell.source = "".join(lines)


def _accelerator_text(shape: str | None, gpu: bool) -> str:
    if not gpu:
        return "no accelerator (CPU)"
    return f"a GPU, machine shape `{shape}`" if shape else "a GPU"


def _times_link() -> str:
    """Where a reader finds each preset's run time (kept in one table, so not repeated here)."""
    from .links import BRANCH, repository_url

    page = "docs/kaggle.md#run-times"
    try:
        return f"[{page}]({repository_url().rstrip('/')}/blob/{BRANCH}/{page})"
    except (OSError, KeyError, ValueError, ImportError):  # an install without its metadata: the path alone
        return f"`{page}`"


def intro_cell_source(name: str, meta: dict, preset: str | None, accelerator: str | None = None) -> str:
    """The built kernel's first cell: what it runs (experiment, preset, data, accelerator, internet) and how to
    change the preset, because a reader of a pushed kernel meets its saved version before anything else."""
    from . import __version__

    data = ", ".join(f"`{d}`" for d in meta.get("dataset_sources") or []) or "none"
    earlier = ", ".join(f"`{k}`" for k in meta.get("kernel_sources") or [])
    models = ", ".join(f"`{m}`" for m in meta.get("model_sources") or [])
    lines = [
        f"## This kernel: {meta.get('title') or name}" + (f", preset `{preset}`" if preset else ""),
        "",
        f"- **Runs** `{name}`, the notebook `notebooks/{meta['code_file']}` of kdlib {__version__},"
        + (f" in its `{preset}` preset (the `PRESET` line of the parameters cell below)." if preset
           else " (no presets)."),
        f"- **Data attached** (under `/kaggle/input`): {data}."
        + (f" Models attached: {models}." if models else "")
        + (f" Earlier output attached, whose runs this version continues: {earlier}." if earlier else ""),
        f"- **Accelerator**: {_accelerator_text(accelerator or meta.get('machine_shape'), meta.get('enable_gpu'))}; "
        f"internet {'on' if meta.get('enable_internet') else 'off'}.",
        "- kdlib travels inside this notebook (the hidden cell below unpacks it), so it needs no install.",
    ]
    if preset:
        other = next(p for p in ("quick", "full") if p != preset)
        lines += [
            "",
            f"**To change the preset**: edit `PRESET` in the parameters cell ({' | '.join(PRESETS)}), then "
            "**Save Version > Save & Run All**; or, from a clone, "
            f"`python -m kdlib kaggle push {name} --preset {other}` (it rewrites that same line). "
            f"How long each preset takes: {_times_link()}.",
        ]
    else:
        lines += ["", "It has no presets; the parameters cell below says what can be set. Then **Save Version > "
                  "Save & Run All**."]
    return "\n".join(lines)


# The bundled cell, hidden where notebooks are read: jupyter.* is JupyterLab's and Notebook 7's, _kg_hide-* Kaggle's.
HIDDEN = {"jupyter": {"source_hidden": True, "outputs_hidden": True}, "_kg_hide-input": True,
          "_kg_hide-output": True}
_IMPORTS_KDLIB = re.compile(r"^\s*(import|from)\s+kdlib\b", re.MULTILINE)


def build(name: str, out_dir: str | Path, owner: str | None = None, preset: str | None = None,
          resume_from: str | None = None, accelerator: str | None = None) -> Path:
    """Write the push folder for kernel ``name``: its metadata (id under ``owner``) and its notebook with
    outputs stripped, a first cell saying what the kernel runs, the setup cell replaced by the bundled package
    (hidden) and ``PRESET`` set to ``preset`` (default: the kernel's own, from its kdlib.json) in the parameters
    cell itself. ``notebooks/`` stays the source. ``resume_from`` ('OWNER/SLUG', usually this kernel's own id) is
    added to ``kernel_sources``: that kernel's latest output is mounted under /kaggle/input and the notebook
    continues its runs (``kdlib.sessions``). ``accelerator`` (push's) only changes what the first cell says."""
    import os

    import nbformat

    source = KERNELS_DIR / name
    if not (source / METADATA_FILE).is_file():
        raise ValueError(f"no kernel {name!r}; known: {', '.join(kernel_names())}")
    meta = read_metadata(source / METADATA_FILE)
    wrong = metadata_problems(meta)
    if wrong:
        raise ValueError(f"{source / METADATA_FILE}: {'; '.join(wrong)}")
    owner = owner or os.environ.get("KAGGLE_USERNAME") or OWNER_PLACEHOLDER
    if not _NAME.fullmatch(owner):
        raise ValueError(f"--owner {owner!r} (or $KAGGLE_USERNAME) is not a Kaggle user name (ASCII letters, digits and "
                         "hyphens)")
    meta["id"] = f"{owner}/{meta['id'].split('/', 1)[1]}"
    if resume_from and (problem := ref_problem(resume_from, "--resume-from")) is not None:
        raise ValueError(problem)
    if resume_from and resume_from not in meta.setdefault("kernel_sources", []):
        meta["kernel_sources"].append(resume_from)
    nb = nbformat.read(NOTEBOOK_DIR / meta["code_file"], as_version=4)
    setup = [i for i, c in enumerate(nb.cells) if SETUP_TAG in c.metadata.get("tags", [])]
    if len(setup) != 1:
        raise ValueError(f"{meta['code_file']}: expected one cell tagged {SETUP_TAG!r}, found {len(setup)}")
    early = [i for i, c in enumerate(nb.cells[:setup[0]]) if c.cell_type == "code" and _IMPORTS_KDLIB.search(c.source)]
    if early:  # Kaggle has no kdlib but the bundled one: a cell importing it first would fail there
        raise ValueError(f"{meta['code_file']}: cell {early[0] + 1} imports kdlib before the cell tagged "
                         f"{SETUP_TAG!r} (cell {setup[0] + 1}) makes it importable; move it below")
    bundled = nb.cells[setup[0]]
    bundled.source = bootstrap_cell_source(bundle_package())
    bundled.metadata.update(json.loads(json.dumps(HIDDEN)))  # a copy; the source's other settings (tags) are kept
    preset = preset or default_preset(name)
    if preset is not None:  # the self-check kernel has no preset
        if preset not in PRESETS:
            raise ValueError(f"preset {preset!r}: choose one of {', '.join(PRESETS)}")
        set_parameters(nb, meta["code_file"], PRESET=preset)
    nb.cells.insert(0, nbformat.v4.new_markdown_cell(intro_cell_source(name, meta, preset, accelerator),
                                                     metadata={"tags": [INTRO_TAG]}))
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


class KaggleNetworkError(RuntimeError):
    """Kaggle could not be reached, or answered with an HTTP error; the message is one line."""


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
    for token_file in (config_dir / "access_token", Path.home() / ".kaggle" / "access_token"):
        if token_file.is_file():
            return str(token_file)
    config = config_dir / "kaggle.json"
    if config.is_file():
        if config.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            warnings.warn(f"{config} can be read by other users of this machine: run 'chmod 600 {config}'")
        return str(config)
    oauth = Path.home() / ".kaggle" / "credentials.json"  # `kaggle auth login`
    return str(oauth) if oauth.is_file() else None


def _one_line(exc: BaseException, limit: int = 160) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:limit]}{'...' if len(text) > limit else ''}" if text else type(exc).__name__


@contextlib.contextmanager
def _talking_to_kaggle(action: str):
    """Turn what the network can do to a call of the official client into one KaggleNetworkError line."""
    import requests
    import urllib3

    try:
        yield
    except requests.HTTPError as exc:
        code = getattr(exc.response, "status_code", "?")
        raise KaggleNetworkError(f"Kaggle answered HTTP {code} to {action} ({_one_line(exc)})") from None
    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
        if isinstance(exc, OSError) and getattr(exc, "filename", None) is not None:
            raise  # a local file, not the network
        raise KaggleNetworkError(f"could not reach Kaggle ({action}: {_one_line(exc)}): check the network "
                                 "connection (and proxy settings), then try again") from None


def authenticated_api():
    if credentials_source() is None:
        raise KaggleCredentialsError(CREDENTIALS_HELP)
    api = _official_api()
    try:
        with contextlib.redirect_stdout(io.StringIO()), _talking_to_kaggle("authenticating"):
            api.authenticate()
    except SystemExit:  # the client's own way of saying no credential worked
        raise KaggleCredentialsError(f"Kaggle did not accept the credentials from {credentials_source()}. "
                                     + CREDENTIALS_HELP.split(". ", 1)[1]) from None
    return api


def configured_owner(api=None) -> str | None:
    """The Kaggle user name the client's own configuration names, read without the network: $KAGGLE_USERNAME,
    then kaggle.json's ``username``, then (for an authenticated ``api``) the user its token belongs to."""
    import os

    if os.environ.get("KAGGLE_USERNAME"):
        return os.environ["KAGGLE_USERNAME"]
    api = api or _official_api()
    with contextlib.redirect_stdout(io.StringIO()):
        username = api.read_config_file(quiet=True).get(api.CONFIG_NAME_USER)
    return username or (getattr(api, "config_values", None) or {}).get(api.CONFIG_NAME_USER) or None


def _invalid_fields(response) -> dict[str, list]:
    """A push response's non-empty ``invalid_*`` fields (invalid_dataset_sources, invalid_model_sources, ...),
    whatever their spelling (snake_case in kagglesdk, camelCase on the wire)."""
    found = {}
    for attribute in dir(response):
        field = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", attribute).lower()
        if attribute.startswith("_") or not field.startswith("invalid_"):
            continue
        value = getattr(response, attribute, None)
        if value and not callable(value):
            found.setdefault(field, [value] if isinstance(value, str) else list(value))
    return found


def push(name: str, build_dir: str | Path, owner: str | None = None, dry_run: bool = False,
         timeout: int | None = None, accelerator: str | None = None, resume_from: str | None = None,
         preset: str | None = None) -> dict:
    """Build (running ``preset``, default the kernel's own), validate, then (unless ``dry_run``) push kernel
    ``name``; returns what was (or would be) sent.
    ``timeout`` (seconds) and ``accelerator`` (a machine shape such as NvidiaTeslaT4) go to the official client's
    ``kernels_push``; the owner defaults to the client's configuration (``configured_owner``)."""
    if accelerator and (problem := machine_shape_problem(accelerator, "--accelerator")) is not None:
        raise ValueError(problem)
    api = None
    owner = owner or configured_owner()
    if not owner and not dry_run:
        api = authenticated_api()  # a token names its user only when Kaggle is asked
        owner = configured_owner(api)
    folder = build(name, build_dir, owner, preset, resume_from=resume_from, accelerator=accelerator)
    problems = validate_kernel_folder(folder)
    if problems:
        raise ValueError(f"{folder} is not ready to push:\n" + "\n".join(f"  - {p}" for p in problems))
    meta = json.loads((folder / METADATA_FILE).read_text())
    sent = {"folder": str(folder), **{k: meta.get(k) for k in ("id", "title", "code_file", "machine_shape", "enable_gpu",
                                                               "enable_internet", "is_private", "dataset_sources",
                                                               "kernel_sources", "model_sources")}}
    if accelerator:
        sent["machine_shape"] = accelerator
    if timeout:
        sent["session_timeout_seconds"] = int(timeout)
    sent["preset"] = preset or default_preset(name)
    if dry_run:
        return sent
    if meta["id"].startswith(OWNER_PLACEHOLDER + "/"):
        raise ValueError("the kernel id has no owner: pass --owner or set KAGGLE_USERNAME")
    api = api or authenticated_api()
    with _talking_to_kaggle(f"pushing {meta['id']}"):
        response = api.kernels_push(str(folder), timeout=str(int(timeout)) if timeout else None, acc=accelerator)
    if response is None or getattr(response, "error", None):
        raise RuntimeError(f"Kaggle refused the push of {meta['id']}: {getattr(response, 'error', 'no response')}")
    invalid = _invalid_fields(response)
    if invalid:
        named = "; ".join(f"{field}: {', '.join(map(str, values))}" for field, values in sorted(invalid.items()))
        raise RuntimeError(f"Kaggle did not accept what {meta['id']} names ({named}): fix "
                           f"kaggle_kernels/{name}/{METADATA_FILE} and push again")
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
        with _talking_to_kaggle(f"asking for {kernel_id}'s status"):
            response = api.kernels_status(kernel_id)
        value = getattr(response.status, "name", response.status)
        state = str(value).lower().replace("_", "")
        if not wait or state in TERMINAL_STATUSES:
            return state
        if timeout is not None and time.monotonic() - start > timeout:
            raise TimeoutError(f"{kernel_id} still {state} after {timeout:.0f} s")
        sleep(poll_seconds)


# The output files `output` fetches by default (a regex on their paths under /kaggle/working): results.*, the
# figures, the executed notebook. Checkpoints and data stores (ImageNet-100's is ~10 GB) only come with --all.
OUTPUT_PATTERN = r"(^|/)(results\.[^/]+|figures/.+|[^/]+\.ipynb)$"


def output(kernel_id: str, dest: str | Path, everything: bool = False) -> Path:
    """Download the kernel's results.*, figures/ and executed notebook (every output file with ``everything``)
    into ``dest``; returns results.json's path. The official client does the filtering, so nothing else is
    downloaded."""
    import inspect

    dest = Path(dest)
    api = authenticated_api()  # first: a refusal leaves no empty folder behind
    dest.mkdir(parents=True, exist_ok=True)
    options = {"force": True}
    if not everything:
        if "file_pattern" not in inspect.signature(api.kernels_output).parameters:
            raise RuntimeError("the installed kaggle client cannot select output files, so every file (checkpoints "
                               "included) would be downloaded: upgrade it (pip install -U kaggle) or pass --all")
        options["file_pattern"] = OUTPUT_PATTERN
    with _talking_to_kaggle(f"downloading {kernel_id}'s output"):
        api.kernels_output(kernel_id, str(dest), **options)
    found = sorted(dest.rglob("results.json"))
    if not found:
        raise FileNotFoundError(f"{kernel_id}'s output holds no results.json (did the run finish? see `status`)")
    return found[0]

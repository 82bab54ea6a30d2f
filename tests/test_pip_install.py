"""kdlib installed from a wheel (pip install PATH or a git URL, not editable) carries its notebooks and kernel
folders, and finds them from any folder: `python -m kdlib run` and `kaggle build` need them."""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from kdlib import paths

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """The project's wheel, built as pip builds it (no build isolation: setuptools is here, and nothing is fetched),
    from a copy of the tree without build outputs: a kdlib.egg-info left by an earlier build lists the files it
    shipped then, and setuptools would ship them again whatever pyproject.toml now says."""
    source, out = tmp_path_factory.mktemp("source") / "kdlib", tmp_path_factory.mktemp("wheel")
    shutil.copytree(ROOT, source, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", "build", "*.egg-info", ".venv", "runs", "__pycache__", ".pytest_cache", ".ipynb_checkpoints"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", str(source),
                    "-w", str(out)], check=True, capture_output=True, timeout=300)
    return next(out.glob("kdlib-*.whl"))


def test_the_root_folders_are_real_files_that_the_package_links_to():
    # the badges open notebooks/*.ipynb raw from the repository: a link there would open as a path, not a notebook
    for name in ("notebooks", "kaggle_kernels"):
        assert not (ROOT / name).is_symlink() and (ROOT / name).is_dir()
        assert (ROOT / "kdlib" / name).resolve() == (ROOT / name).resolve()
    assert not any(p.is_symlink() for p in (ROOT / "notebooks").iterdir())


def test_the_wheel_holds_every_notebook_and_kernel_file(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"kdlib/{p.relative_to(ROOT).as_posix()}" for folder in ("notebooks", "kaggle_kernels")
                for p in (ROOT / folder).rglob("*") if p.is_file() and ".ipynb_checkpoints" not in p.parts}
    assert any(n.endswith(".ipynb") for n in expected) and any(n.endswith("kernel-metadata.json") for n in expected)
    assert expected <= names, sorted(expected - names)


def test_a_clone_reads_its_root_folders_and_an_install_its_packaged_copies(tmp_path):
    clone = tmp_path / "clone"
    (clone / "kdlib" / "notebooks").mkdir(parents=True)
    (clone / "notebooks").mkdir()
    (clone / "pyproject.toml").write_text("")
    assert paths.shipped_dir("notebooks", clone / "kdlib") == clone / "notebooks"
    site = tmp_path / "site-packages"
    (site / "kdlib" / "notebooks").mkdir(parents=True)
    (site / "notebooks").mkdir()  # another distribution's folder of that name: not ours
    assert paths.shipped_dir("notebooks", site / "kdlib") == site / "kdlib" / "notebooks"


def _installed(wheel, tmp_path):
    """The wheel unpacked as pip installs it (a pure-Python wheel), and a folder that is not a clone to run in."""
    site, elsewhere = tmp_path / "site", tmp_path / "elsewhere"
    zipfile.ZipFile(wheel).extractall(site)
    elsewhere.mkdir()
    return {**os.environ, "PYTHONPATH": str(site)}, elsewhere


def test_installed_from_the_wheel_kdlib_finds_them_from_another_folder(wheel, tmp_path):
    env, elsewhere = _installed(wheel, tmp_path)
    code = ("import kdlib.paths as p, kdlib.kaggle as k; from kdlib.experiments import NOTEBOOKS; "
            "print(p.NOTEBOOK_DIR); print(all((p.NOTEBOOK_DIR / n).is_file() for n in NOTEBOOKS.values())); "
            "print(' '.join(k.kernel_names()))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=elsewhere, capture_output=True, text=True, timeout=300,
                          env=env)
    assert proc.returncode == 0, proc.stderr
    notebooks, found, kernels = proc.stdout.splitlines()
    assert Path(notebooks) == tmp_path / "site" / "kdlib" / "notebooks" and found == "True"
    assert set(kernels.split()) >= {"cifar10-ast", "imagenet100-ast", "mnist-kd"}


def test_kaggle_build_works_from_the_installed_wheel(wheel, tmp_path):
    env, elsewhere = _installed(wheel, tmp_path)
    proc = subprocess.run([sys.executable, "-m", "kdlib", "kaggle", "build", "cifar10-ast", "--out", "push",
                           "--owner", "someone"], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "cifar10-ast: ok" in proc.stdout
    assert (elsewhere / "push" / "cifar10-ast" / "kernel-metadata.json").is_file()


@pytest.mark.notebook
def test_run_works_from_the_installed_wheel_in_another_folder(wheel, tmp_path):
    """The issue's check of a non-editable install: `run` from a folder that is not a clone, its epoch lines on the
    way and the AST summary at the end (a short cifar10-ast demo: 2 epochs, one seed, full, ast and its control)."""
    import kdlib.__main__ as cli

    env, elsewhere = _installed(wheel, tmp_path)
    proc = subprocess.run([sys.executable, "-m", "kdlib", "run", "cifar10-ast", "--preset", "demo", "--epochs", "2",
                           "--seeds", "0", "--methods", "full", "ast", "random@ast", "--out", "out"],
                          cwd=elsewhere, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    epochs = [line for line in proc.stdout.splitlines() if cli.EPOCH_LINE.match(line)]
    assert len(epochs) == 3 * 2, proc.stdout
    assert "speed-up vs full" in proc.stdout and "verdicts:" in proc.stdout and "retention" not in proc.stdout
    assert (elsewhere / "out" / "results.json").is_file()

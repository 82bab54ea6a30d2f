"""`python -m kdlib run` as a person at a terminal meets it: a refusal leaves nothing behind, each epoch shows a
line while the notebook trains, a cell that hangs is stopped and named, and the run ends with the experiment's
own summary."""

import pytest

import kdlib.__main__ as cli


def test_a_missing_notebook_is_one_line_and_leaves_no_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli, "NOTEBOOK_DIR", tmp_path / "installed" / "kdlib" / "notebooks")
    monkeypatch.setattr(cli, "run_notebook", lambda *a, **k: pytest.fail("a kernel was started"))
    out = tmp_path / "out"
    assert cli.main(["run", "cifar10-ast", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "02_cifar10_ast.ipynb is missing" in err[0] and "reinstall" in err[0]
    assert "clone" not in err[0] and not out.exists()

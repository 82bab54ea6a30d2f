"""push / status / output through the official kaggle client, with only its network boundary stubbed:
`KaggleApi.build_kaggle_client` (every API call) and the file download in `kernels_output`."""

import json
import types

import pytest

from kdlib import kaggle
from kdlib.__main__ import main

FAKE_KEY = "not-a-real-key-for-tests"


class FakeKernelsClient:
    def __init__(self, statuses=("RUNNING", "COMPLETE")):
        self.requests, self.statuses = [], list(statuses)

    def save_kernel(self, request):
        self.requests.append(request)
        return types.SimpleNamespace(error="", url="https://www.kaggle.com/code/someone/x", invalidTags=[],
                                     invalidDatasetSources=[], invalidCompetitionSources=[], invalidKernelSources=[],
                                     invalidModelSources=[], versionNumber=1)

    def get_kernel_session_status(self, request):
        self.requests.append(request)
        return types.SimpleNamespace(status=types.SimpleNamespace(name=self.statuses.pop(0)), failure_message="")

    def list_kernel_session_output(self, request):
        self.requests.append(request)
        return types.SimpleNamespace(next_page_token=None, log=None, files=[
            types.SimpleNamespace(file_name="mnist-kd/results.json", url="https://fake/results.json")])


@pytest.fixture
def fake_kaggle(monkeypatch, tmp_path):
    from kaggle.api import kaggle_api_extended

    kernels = FakeKernelsClient()

    class FakeClient:
        def __enter__(self):
            return types.SimpleNamespace(kernels=types.SimpleNamespace(kernels_api_client=kernels))

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(kaggle_api_extended.KaggleApi, "build_kaggle_client", lambda self: FakeClient())
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "no-config"))
    monkeypatch.setenv("KAGGLE_USERNAME", "someone")
    monkeypatch.setenv("KAGGLE_KEY", FAKE_KEY)
    monkeypatch.delenv("KAGGLE_API_TOKEN", raising=False)
    return kernels


def test_push_sends_what_the_metadata_says(fake_kaggle, tmp_path, capsys):
    assert main(["kaggle", "push", "mnist-kd", "--out", str(tmp_path / "build")]) == 0
    request = fake_kaggle.requests[-1]
    assert request.slug == "someone/kdlib-mnist-knowledge-distillation"
    assert request.machine_shape == "NvidiaTeslaT4"
    assert request.enable_internet is False and request.enable_gpu is True and request.is_private is True
    assert request.dataset_data_sources == ["hojjatk/mnist-dataset"]
    notebook = json.loads(request.text)
    assert all(not c.get("outputs") for c in notebook["cells"] if c["cell_type"] == "code")
    assert any("base64.b64decode" in c["source"] for c in notebook["cells"])  # kdlib travels inside
    assert FAKE_KEY not in capsys.readouterr().out


def test_dry_run_sends_nothing(fake_kaggle, tmp_path, capsys):
    assert main(["kaggle", "push", "cifar10-ast", "--dry-run", "--out", str(tmp_path)]) == 0
    assert fake_kaggle.requests == []
    assert '"machine_shape": "NvidiaTeslaT4"' in capsys.readouterr().out


def test_status_waits_until_the_session_ends(fake_kaggle):
    sleeps = []
    assert kaggle.status("someone/kdlib-mnist-knowledge-distillation", wait=True, poll_seconds=5,
                         sleep=sleeps.append) == "complete"
    assert sleeps == [5] and fake_kaggle.requests[0].kernel_slug == "kdlib-mnist-knowledge-distillation"


def test_output_fetches_results_and_prints_the_table(fake_kaggle, tmp_path, monkeypatch, capsys):
    from kaggle.api import kaggle_api_extended

    runs = [{"method": "teacher", "model": "m", "params": 10, "seed": 0, "test_accuracy": 0.99, "val_accuracy": 0.99,
             "train_seconds": 5.0, "epochs": 1}]
    from kdlib import report

    results = report.build_results("mnist-kd", "quick", {"name": "MNIST (idx)", "source": "s", "n_train": 1,
                                                         "n_val": 1, "n_test": 1}, {"device": "cuda"}, runs)
    body = json.dumps(results).encode()
    monkeypatch.setattr(kaggle_api_extended.requests, "get",
                        lambda url, stream=False: types.SimpleNamespace(content=body, headers={}))
    assert main(["kaggle", "output", "someone/kdlib-mnist-knowledge-distillation", "--dest", str(tmp_path)]) == 0
    assert (tmp_path / "mnist-kd" / "results.json").exists()
    assert "teacher" in capsys.readouterr().out


def test_missing_credentials_are_explained(monkeypatch, tmp_path, capsys):
    for var in ("KAGGLE_API_TOKEN", "KAGGLE_USERNAME", "KAGGLE_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path))
    assert kaggle.credentials_source() is None
    assert main(["kaggle", "status", "someone/abcdef"]) == 1
    assert "KAGGLE_USERNAME and KAGGLE_KEY" in capsys.readouterr().err


def test_loose_kaggle_json_permissions_warn(monkeypatch, tmp_path):
    for var in ("KAGGLE_API_TOKEN", "KAGGLE_USERNAME", "KAGGLE_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path))
    config = tmp_path / "kaggle.json"
    config.write_text(json.dumps({"username": "someone", "key": FAKE_KEY}))
    config.chmod(0o644)
    with pytest.warns(UserWarning, match="chmod 600"):
        assert kaggle.credentials_source() == str(config)
    config.chmod(0o600)
    assert kaggle.credentials_source() == str(config)


def test_push_without_owner_is_refused(fake_kaggle, monkeypatch, tmp_path):
    monkeypatch.delenv("KAGGLE_USERNAME")
    monkeypatch.setenv("KAGGLE_API_TOKEN", FAKE_KEY)
    with pytest.raises(ValueError, match="--owner"):
        kaggle.push("mnist-kd", tmp_path)

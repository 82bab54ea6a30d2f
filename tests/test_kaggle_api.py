"""push / status / output through the official kaggle client, with only its network boundary stubbed:
`KaggleApi.build_kaggle_client` (every API call) and the file download in `kernels_output`."""

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

from kdlib import kaggle
from kdlib.__main__ import main

FAKE_KEY = "not-a-real-key-for-tests"
FAKE_TOKEN = "KGAT" + "_faketokenfortests0123456789"  # split: the repository holds nothing token-shaped
TOKEN_USERS = {FAKE_TOKEN: "tokenuser"}  # what the fake introspection says each token belongs to
ROOT = Path(__file__).resolve().parent.parent


class FakeKernelsClient:
    def __init__(self, statuses=("RUNNING", "COMPLETE")):
        self.requests, self.statuses, self.fail_with, self.save_response = [], list(statuses), {}, None
        self.output_files = ["mnist-kd/results.json"]

    def _call(self, method, request):
        self.requests.append(request)
        failure = self.fail_with.get(method)
        if isinstance(failure, list):  # fail from the n-th call on
            failure = failure.pop(0) if len(failure) > 1 else failure[0]
        if failure is not None:
            raise failure

    def save_kernel(self, request):
        self._call("save_kernel", request)
        return self.save_response or types.SimpleNamespace(
            error="", url="https://www.kaggle.com/code/someone/x", invalidTags=[], invalidDatasetSources=[],
            invalidCompetitionSources=[], invalidKernelSources=[], invalidModelSources=[], versionNumber=1)

    def get_kernel_session_status(self, request):
        self._call("get_kernel_session_status", request)
        return types.SimpleNamespace(status=types.SimpleNamespace(name=self.statuses.pop(0)), failure_message="")

    def list_kernel_session_output(self, request):
        self._call("list_kernel_session_output", request)
        return types.SimpleNamespace(next_page_token=None, log=None, files=[
            types.SimpleNamespace(file_name=name, url=f"https://fake/{name}") for name in self.output_files])


class FakeOAuthClient:
    def introspect_token(self, request):
        user = TOKEN_USERS.get(request.token)
        return types.SimpleNamespace(active=user is not None, username=user)


@pytest.fixture
def fake_kaggle(monkeypatch, tmp_path):
    from kdlib.kaggle import _client_module

    kaggle_api_extended = _client_module()
    kernels = FakeKernelsClient()

    class FakeClient:
        def __enter__(self):
            return types.SimpleNamespace(kernels=types.SimpleNamespace(kernels_api_client=kernels),
                                         security=types.SimpleNamespace(oauth_client=FakeOAuthClient()))

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(kaggle_api_extended.KaggleApi, "build_kaggle_client", lambda self: FakeClient())
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ~/.kaggle of the machine's user
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
    out = capsys.readouterr().out
    assert '"machine_shape": "NvidiaTeslaT4"' in out and '"preset": "full"' in out  # what the kernel will run


def test_status_waits_until_the_session_ends(fake_kaggle):
    sleeps = []
    assert kaggle.status("someone/kdlib-mnist-knowledge-distillation", wait=True, poll_seconds=5,
                         sleep=sleeps.append) == "complete"
    assert sleeps == [5] and fake_kaggle.requests[0].kernel_slug == "kdlib-mnist-knowledge-distillation"


def _download_response(url: str, body: bytes):
    """What requests.get returns for a file URL: a real Response holding ``body`` (kaggle 2.2.4 reads .content,
    2.2.5 streams it with raise_for_status, headers and iter_content)."""
    import requests

    response = requests.Response()
    response.status_code, response.url, response._content, response._content_consumed = 200, url, body, True
    response.headers["Content-Length"] = str(len(body))
    response.request = requests.Request("GET", url).prepare()
    return response


def test_output_fetches_results_and_prints_the_table(fake_kaggle, tmp_path, monkeypatch, capsys):
    from kdlib.kaggle import _client_module

    kaggle_api_extended = _client_module()

    runs = [{"method": "teacher", "model": "m", "params": 10, "seed": 0, "test_accuracy": 0.99, "val_accuracy": 0.99,
             "train_seconds": 5.0, "epochs": 1}]
    from kdlib import results_io

    results = results_io.build_results("mnist-kd", "quick", {"name": "MNIST (idx)", "source": "s", "n_train": 1,
                                                         "n_val": 1, "n_test": 1}, {"device": "cuda"}, runs)
    body = json.dumps(results).encode()
    monkeypatch.setattr(kaggle_api_extended.requests, "get",
                        lambda url, stream=False, **kwargs: _download_response(url, body))
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
    assert main(["kaggle", "output", "someone/abcdef", "--dest", str(tmp_path / "dest")]) == 1
    assert not (tmp_path / "dest").exists()  # a refused download leaves no empty folder


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


def test_owner_comes_from_the_clients_configuration(fake_kaggle, monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("KAGGLE_USERNAME")
    monkeypatch.delenv("KAGGLE_KEY")
    config = tmp_path / "config"
    config.mkdir()
    (config / "kaggle.json").write_text(json.dumps({"username": "jsonuser", "key": FAKE_KEY}))
    (config / "kaggle.json").chmod(0o600)
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(config))
    assert main(["kaggle", "push", "mnist-kd", "--dry-run", "--out", str(tmp_path / "dry")]) == 0
    assert '"id": "jsonuser/kdlib-mnist-knowledge-distillation"' in capsys.readouterr().out
    assert fake_kaggle.requests == []  # read offline
    assert main(["kaggle", "push", "mnist-kd", "--out", str(tmp_path / "build")]) == 0
    assert fake_kaggle.requests[-1].slug == "jsonuser/kdlib-mnist-knowledge-distillation"
    assert FAKE_KEY not in capsys.readouterr().out


def test_owner_comes_from_the_token(fake_kaggle, monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("KAGGLE_USERNAME")
    monkeypatch.delenv("KAGGLE_KEY")
    monkeypatch.setenv("KAGGLE_API_TOKEN", FAKE_TOKEN)
    assert main(["kaggle", "push", "mnist-kd", "--out", str(tmp_path)]) == 0
    assert fake_kaggle.requests[-1].slug == "tokenuser/kdlib-mnist-knowledge-distillation"
    captured = capsys.readouterr()
    assert FAKE_TOKEN not in captured.out + captured.err


def test_a_token_kaggle_does_not_accept_is_explained(fake_kaggle, monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("KAGGLE_USERNAME")
    monkeypatch.delenv("KAGGLE_KEY")
    monkeypatch.setenv("KAGGLE_API_TOKEN", "KGAT" + "_expiredtokenfortests012345")
    assert main(["kaggle", "push", "mnist-kd", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "did not accept the credentials from KAGGLE_API_TOKEN" in err and "KGAT_expired" not in err
    assert fake_kaggle.requests == []  # nothing pushed


def test_push_without_owner_is_refused(fake_kaggle, monkeypatch, tmp_path):
    monkeypatch.delenv("KAGGLE_USERNAME")
    monkeypatch.setattr(kaggle, "configured_owner", lambda api=None: None)
    monkeypatch.setenv("KAGGLE_API_TOKEN", FAKE_TOKEN)
    with pytest.raises(ValueError, match="--owner"):
        kaggle.push("mnist-kd", tmp_path)


def test_timeout_and_accelerator_reach_the_client(fake_kaggle, tmp_path, capsys):
    assert main(["kaggle", "push", "mnist-kd", "--out", str(tmp_path), "--timeout", "3600",
                 "--accelerator", "NvidiaTeslaT4Highmem"]) == 0
    request = fake_kaggle.requests[-1]
    assert request.session_timeout_seconds == 3600 and request.machine_shape == "NvidiaTeslaT4Highmem"
    assert main(["kaggle", "push", "mnist-kd", "--out", str(tmp_path), "--dry-run", "--timeout", "600"]) == 0
    assert '"session_timeout_seconds": 600' in capsys.readouterr().out
    assert main(["kaggle", "push", "mnist-kd", "--out", str(tmp_path), "--accelerator", "NvidiaTeslaP100"]) == 1
    assert "P100" in capsys.readouterr().err


@pytest.mark.parametrize("field", ["invalid_dataset_sources", "invalid_competition_sources", "invalid_kernel_sources",
                                   "invalid_model_sources", "invalid_tags"])
def test_invalid_sources_in_the_push_response_are_an_error(fake_kaggle, tmp_path, capsys, field):
    from kagglesdk.kernels.types.kernels_api_service import ApiSaveKernelResponse

    response = ApiSaveKernelResponse()
    response.url, response.version_number = "https://www.kaggle.com/code/someone/x", 2
    setattr(response, field, ["nobody/missing-thing", "other/gone"])
    fake_kaggle.save_response = response
    assert main(["kaggle", "push", "mnist-kd", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ")
    assert f"{field}: nobody/missing-thing, other/gone" in err


def _kaggle_output_listing(fake_kaggle, monkeypatch):
    from kdlib.kaggle import _client_module

    fake_kaggle.output_files = ["mnist-kd/results.json", "mnist-kd/results.txt", "mnist-kd/figures/accuracy.png",
                                "01_mnist_kd.ipynb", "mnist-kd/runs/teacher-seed0/checkpoint.pt",
                                "imagenet100/store/images.u8", "mnist-kd/checkpoints/last.pt"]
    fetched = []
    body = json.dumps({"experiment": "mnist-kd"}).encode()
    monkeypatch.setattr(_client_module().requests, "get",
                        lambda url, stream=False, **kwargs: fetched.append(url) or _download_response(url, body))
    return fetched


def test_output_fetches_only_results_figures_and_notebook(fake_kaggle, monkeypatch, tmp_path):
    fetched = _kaggle_output_listing(fake_kaggle, monkeypatch)
    assert kaggle.output("someone/kdlib-mnist-knowledge-distillation", tmp_path) == tmp_path / "mnist-kd/results.json"
    assert fetched == ["https://fake/mnist-kd/results.json", "https://fake/mnist-kd/results.txt",
                       "https://fake/mnist-kd/figures/accuracy.png", "https://fake/01_mnist_kd.ipynb"]
    assert not (tmp_path / "mnist-kd" / "checkpoints").exists()


def test_output_all_fetches_everything(fake_kaggle, monkeypatch, tmp_path):
    fetched = _kaggle_output_listing(fake_kaggle, monkeypatch)
    kaggle.output("someone/kdlib-mnist-knowledge-distillation", tmp_path, everything=True)
    assert len(fetched) == len(fake_kaggle.output_files)
    assert (tmp_path / "mnist-kd" / "checkpoints" / "last.pt").exists()


def _network_errors():
    import socket

    import requests
    import urllib3

    return {"requests": requests.ConnectionError("HTTPSConnectionPool(host='api.kaggle.com', port=443): Max retries"),
            "dns": socket.gaierror(-3, "Temporary failure in name resolution"),
            "urllib3": urllib3.exceptions.NewConnectionError(None, "Failed to establish a new connection"),
            "timeout": requests.Timeout("read timed out")}


@pytest.mark.parametrize("error", sorted(_network_errors()))
@pytest.mark.parametrize("command, method", [
    (["push", "mnist-kd"], "save_kernel"),
    (["status", "someone/kdlib-mnist-knowledge-distillation"], "get_kernel_session_status"),
    (["status", "someone/kdlib-mnist-knowledge-distillation", "--wait", "--poll", "0"], "get_kernel_session_status"),
    (["output", "someone/kdlib-mnist-knowledge-distillation"], "list_kernel_session_output"),
], ids=["push", "status", "status-wait", "output"])
def test_network_failures_end_in_one_line(fake_kaggle, tmp_path, capsys, command, method, error):
    exc = _network_errors()[error]
    # --wait: the first poll answers, the second finds no network
    fake_kaggle.fail_with[method] = [None, exc] if "--wait" in command else exc
    where = ["--out", str(tmp_path)] if command[0] == "push" else ["--dest", str(tmp_path)] if command[0] == "output" else []
    assert main(["kaggle", *command, *where]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: could not reach Kaggle") and "check the network" in err


def test_http_errors_end_in_one_line(fake_kaggle, capsys):
    import requests

    response = requests.Response()
    response.status_code = 500
    fake_kaggle.fail_with["get_kernel_session_status"] = requests.HTTPError("500 Server Error", response=response)
    assert main(["kaggle", "status", "someone/kdlib-mnist-knowledge-distillation"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Kaggle answered HTTP 500" in err


# ---- validate and push --dry-run never touch the network, whatever credentials are configured ----------

NO_NETWORK = """
import os, socket, sys

def refuse(name):
    def refused(*args, **kwargs):
        with open(os.environ["SOCKET_LOG"], "a") as log:
            log.write(name + "\\n")
        raise OSError("the test forbids the network (" + name + ")")
    return refused

socket.socket.connect = socket.socket.connect_ex = refuse("connect")
socket.create_connection = refuse("create_connection")
socket.getaddrinfo = refuse("getaddrinfo")
from kdlib.__main__ import main
sys.exit(main(sys.argv[1:]))
"""
CREDENTIAL_KINDS = {
    "KAGGLE_API_TOKEN": lambda home, env: env.update(KAGGLE_API_TOKEN=FAKE_TOKEN),
    "KAGGLE_USERNAME/KAGGLE_KEY": lambda home, env: env.update(KAGGLE_USERNAME="someone", KAGGLE_KEY=FAKE_KEY),
    "~/.kaggle/access_token": lambda home, env: _write(home / ".kaggle" / "access_token", FAKE_TOKEN),
    "~/.kaggle/kaggle.json": lambda home, env: _write(home / ".kaggle" / "kaggle.json",
                                                      json.dumps({"username": "someone", "key": FAKE_KEY})),
    "$KAGGLE_CONFIG_DIR": lambda home, env: (env.update(KAGGLE_CONFIG_DIR=str(home / "cfg")), _write(
        home / "cfg" / "kaggle.json", json.dumps({"username": "someone", "key": FAKE_KEY}))),
    "~/.kaggle/credentials.json (OAuth)": lambda home, env: _write(home / ".kaggle" / "credentials.json", json.dumps(
        {"refresh_token": FAKE_TOKEN, "access_token": FAKE_TOKEN, "access_token_expiration": "2000-01-01T00:00:00+00:00",
         "username": "someone"})),
}


def _write(path: Path, text: str):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o600)


@pytest.mark.parametrize("command", [["validate", "all"], ["push", "mnist-kd", "--dry-run", "--owner", "x"]],
                         ids=["validate", "push-dry-run"])
@pytest.mark.parametrize("kind", sorted(CREDENTIAL_KINDS))
def test_validate_and_dry_run_make_no_network_call(tmp_path, kind, command):
    """A fresh interpreter whose sockets refuse (and record) every use before anything is imported."""
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAGGLE_")}
    env.update(HOME=str(home), PYTHONPATH=str(ROOT), SOCKET_LOG=str(tmp_path / "sockets.log"))
    CREDENTIAL_KINDS[kind](home, env)
    args = command + (["--out", str(tmp_path / "build")] if command[0] == "push" else [])
    done = subprocess.run([sys.executable, "-c", NO_NETWORK, "kaggle", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    log = tmp_path / "sockets.log"
    assert not log.exists(), f"network calls: {log.read_text().split()}"
    assert done.returncode == 0, done.stdout + done.stderr
    assert FAKE_TOKEN not in done.stdout + done.stderr and FAKE_KEY not in done.stdout + done.stderr

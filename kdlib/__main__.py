"""Command line: ``python -m kdlib run <experiment> --preset P --out DIR [--data PATH] [--seeds ...]``.

Runs the experiment's notebook headlessly (papermill), leaving the executed notebook beside
results.json and the figures.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
from pathlib import Path

from .experiments import NOTEBOOKS
from .paths import NOTEBOOK_DIR

# command-line options that set a notebook's own parameters
EXPERIMENT_OPTIONS = {"mnist-kd": ("teacher_epochs", "student_epochs", "ablate", "ablation_seeds"),
                      "cifar10-ast": ("epochs", "target_rate", "scoring", "methods", "bn_recalibration_batches"),
                      "imagenet100-ast": ("epochs", "target_rate", "scoring", "methods", "bn_recalibration_batches")}


# each experiment's presets, stated here so --help imports no torch (a test keeps them equal to the modules' PRESETS)
PRESETS = {"mnist-kd": ("demo", "cpu-real", "quick", "full"),
           "cifar10-ast": ("demo", "cpu-real", "quick", "full"),
           "imagenet100-ast": ("demo", "quick", "full")}

# A cell may run this long (seconds) before the run is stopped: nbclient waits for ever by default, and a kernel
# message lost once hung a run for over 10 minutes. The demo runs in minutes; a full preset's training is one
# cell of hours (ImageNet-100 full: about 4 h on Kaggle's T4s), so the others get Kaggle's own session limit.
CELL_TIMEOUTS = {"demo": 3600}
DEFAULT_CELL_TIMEOUT = 12 * 3600

# runtime.epoch_line's form (a test keeps the two equal): the lines `run` passes on to the terminal; a worker's
# (seeds split over devices, kdlib.devices) come prefixed with its device, e.g. "[cuda:1] [ast seed 1] epoch 2/8: ..."
EPOCH_LINE = re.compile(r"^(?:\[[^\]]+\] )?\[[^\]]+\] epoch \d+/\d+: ")

# the experiments whose seeds --devices splits over devices (imagenet100-ast already spreads each run over every GPU)
SEED_SPLIT_EXPERIMENTS = ("mnist-kd", "cifar10-ast")


class _EpochLines:
    """papermill's ``stdout_file``: writes the notebook's epoch lines (``runtime.epoch_line``, printed in batch runs)
    to ``stream`` as they arrive; the rest of what the notebook prints stays in the executed notebook. papermill
    hands over each stream message as it comes, which may hold part of a line or several."""

    def __init__(self, stream):
        self.stream, self.pending = stream, ""

    def write(self, text: str) -> None:
        self.pending += text
        *lines, self.pending = self.pending.split("\n")
        shown = [line for line in lines if EPOCH_LINE.match(line)]
        if shown:
            self.stream.write("".join(line + "\n" for line in shown))
            self.stream.flush()

    def flush(self) -> None:
        pass


class CellTimedOut(Exception):
    """A cell ran past the cell timeout; the message is the one line that says which."""


def experiment_module(experiment: str):
    """``experiment``'s module (kdlib.experiments.<name>): its PRESETS (every one has demo, quick and full; some
    have more) and, where it takes METHODS, ``check_methods``."""
    import importlib

    return importlib.import_module(f"kdlib.experiments.{experiment.replace('-', '_')}")


def _data_dir(data: str | None) -> str | None:
    """--data as the notebook's DATA_DIR: a folder (made absolute), or a "kaggle:owner/slug" handle as it is."""
    if not data or data.startswith("kaggle:"):
        return data
    return str(Path(data).resolve())


KERNEL_LOG = "kernel.log"


def _kernel_manager_logging_to(path: Path):
    """A kernel manager whose kernel writes its own stderr to ``path``: the kernel process's messages (its TCP
    warning, and on Ctrl-C a zmq traceback from a reply sent to a closed socket) are about the machinery, not the
    run; the notebook's output and errors still come back through papermill."""
    from jupyter_client.manager import AsyncKernelManager

    class KernelLoggingManager(AsyncKernelManager):
        async def _async_launch_kernel(self, kernel_cmd, **kw):
            self._kdlib_log = open(path, "ab")  # noqa: SIM115 (the kernel holds it for its life)
            kw["stderr"] = self._kdlib_log
            await super()._async_launch_kernel(kernel_cmd, **kw)

    return KernelLoggingManager


def run_notebook(experiment: str, preset: str, out: Path, data: str | None = None, kernel_name: str = "python3",
                 cell_timeout: float | None = None, **parameters) -> Path:
    """Execute the experiment's notebook with PRESET, OUT_DIR, DATA_DIR and any other parameters given (by
    their lower-case names, e.g. seeds=[0, 1] sets SEEDS); parameters left None keep the notebook's defaults.
    Each epoch's line goes to the terminal as it is printed. A cell that runs longer than ``cell_timeout``
    seconds (None: the preset's ``CELL_TIMEOUTS``; 0: no limit) stops the run with ``CellTimedOut``."""
    import papermill
    from nbclient.exceptions import CellTimeoutError

    notebook = NOTEBOOK_DIR / NOTEBOOKS[experiment]
    problem = missing_notebook(experiment)
    if problem:
        raise FileNotFoundError(problem)
    out = out.resolve()  # papermill changes this process's folder to the notebook's while it runs
    out.mkdir(parents=True, exist_ok=True)
    parameters = {"PRESET": preset, "OUT_DIR": str(out), "DATA_DIR": _data_dir(data),
                  **{k.upper(): v for k, v in parameters.items() if v is not None}}
    # The run writes a notebook of its own; it replaces the last good one only once it has finished, so a
    # refused or failed rerun leaves that one as it was (and its own as <name>.failed.ipynb).
    executed, running = out / notebook.name, out / f".{notebook.stem}.running.ipynb"
    from .runtime import BATCH_ENV

    previous = os.environ.get(BATCH_ENV)
    os.environ[BATCH_ENV] = "1"  # the kernel inherits it: explorers draw figures, not widgets nobody can see
    if cell_timeout is None:
        cell_timeout = CELL_TIMEOUTS.get(preset, DEFAULT_CELL_TIMEOUT)
    started = []  # the cells as they start (nbclient's hook): a timeout names the last

    def on_cell_start(cell, cell_index, **_):
        started.append((cell_index, cell))

    try:
        papermill.execute_notebook(str(notebook), str(running), parameters=parameters, kernel_name=kernel_name,
                                   cwd=str(notebook.parent), progress_bar=False, log_output=False,
                                   stdout_file=_EpochLines(sys.stdout), execution_timeout=cell_timeout or None,
                                   on_cell_start=on_cell_start,
                                   kernel_manager_class=_kernel_manager_logging_to(out / KERNEL_LOG))
    except BaseException as exc:
        if running.exists():
            os.replace(running, failed_notebook_path(out, experiment))
        if isinstance(exc, CellTimeoutError) and started:
            raise CellTimedOut(_timed_out(started[-1], cell_timeout, out, experiment)) from None
        raise
    finally:
        if previous is None:
            os.environ.pop(BATCH_ENV, None)
        else:
            os.environ[BATCH_ENV] = previous
    os.replace(running, executed)
    failed_notebook_path(out, experiment).unlink(missing_ok=True)
    return executed


def _timed_out(started: tuple, timeout: float, out: Path, experiment: str) -> str:
    """The line that says which cell ran past the timeout: its number as the executed notebook shows it (In [N],
    the kernel's count), else its place in the notebook, and its first line."""
    index, cell = started
    name = f"cell [{cell['execution_count']}]" if cell.get("execution_count") else f"cell {index + 1} of the notebook"
    first = next((line.strip() for line in cell.source.splitlines() if line.strip()), "")
    first = first if len(first) <= 70 else first[:67] + "..."
    return (f"{name} ({first!r}) ran past the cell timeout of {timeout:g} s and was stopped: a cell that "
            f"needs longer is given it with --cell-timeout SECONDS (0: no limit). The partly executed notebook is "
            f"{failed_notebook_path(out, experiment)}; results computed so far stay in {out / 'runs'} and are "
            "reused when you run again.")


def missing_notebook(experiment: str) -> str | None:
    """Why the experiment's notebook cannot be run (one line), or None: a clone has it in notebooks/, an installed
    kdlib inside the package (``paths.NOTEBOOK_DIR``)."""
    notebook = NOTEBOOK_DIR / NOTEBOOKS[experiment]
    if notebook.is_file():
        return None
    return (f"{notebook} is missing: this kdlib was installed without its notebooks; reinstall it from the "
            "repository (pip install --force-reinstall PATH-OR-GIT-URL)")


def failed_notebook_path(out: Path, experiment: str) -> Path:
    return out / (Path(NOTEBOOKS[experiment]).stem + ".failed.ipynb")


def check_parameters(args, options) -> str | None:
    """Why the notebook would refuse these parameters (one line), or None: the experiment's own ``make_config`` and
    ``runtime.select_device`` check them, here before a kernel starts, there in the notebook's first cell."""
    from . import runtime

    try:
        experiment_module(args.experiment).make_config(args.preset, seeds=args.seeds, progress=False,
                                                       **{name: getattr(args, name) for name in options})
        if args.devices is not None or args.threads is not None:
            from . import devices

            devices.select_devices(args.devices, args.device)
            devices.check_threads(args.threads)
        elif args.device is not None:
            runtime.select_device(args.device)
    except (ValueError, RuntimeError) as exc:
        return str(exc)
    return None


def check_out_dir(out: Path) -> str | None:
    """Why ``--out`` cannot hold a run (in one line), or None when it can (the notebook's OUT_DIR gets the same)."""
    from .experiments.common import out_dir_problem

    return out_dir_problem(out)


def _folder(text: str) -> Path:
    """--out as a folder; '' would be the current folder, which nobody means."""
    if not text.strip():
        raise argparse.ArgumentTypeError("'' names no folder")
    return Path(text)


EPOCHS_BOUND = 1000  # experiments.common.MAX_EPOCHS, stated here so --help imports no torch (a test keeps them equal)

RESUME_HELP = ("continue an earlier version's runs: attach that kernel's output (usually this kernel's own id) "
               "as a kernel source; the notebook restores its checkpoints from /kaggle/input")


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except KeyboardInterrupt:  # one line, not a traceback (a run says what it keeps itself)
        print("interrupted: stopped before it finished; nothing kdlib had written is lost. Run the command again.",
              file=sys.stderr)
        return 130


class _OneLineErrors(argparse.ArgumentParser):
    """argparse, with a usage error as one line that says where the help is (argparse prints its whole usage
    block first, 12 lines for `run`, above the line that matters)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def experiments_epilog() -> str:
    """--help's list of the experiments, each with its presets."""
    width = max(map(len, PRESETS))
    return "experiments and their presets (--preset; demo is the default):\n" + "\n".join(
        f"  {name:<{width}}  {', '.join(presets)}" for name, presets in PRESETS.items())


def _main(argv: list[str] | None = None) -> int:
    listing = dict(epilog=experiments_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    parser = _OneLineErrors(prog="python -m kdlib", description=__doc__.split("\n\n")[0], **listing)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="execute an experiment's notebook headlessly", **listing)
    run.add_argument("experiment", choices=sorted(NOTEBOOKS))
    run.add_argument("--preset", default="demo",
                     help="demo, quick or full; mnist-kd and cifar10-ast also cpu-real, the calibration on real "
                          "images on a CPU (each experiment's presets are listed below)")
    run.add_argument("--cell-timeout", type=float, metavar="SECONDS",
                     help=f"stop the run when one notebook cell runs longer than this (default: "
                          f"{CELL_TIMEOUTS['demo']:g} s for demo, {DEFAULT_CELL_TIMEOUT:g} s otherwise; 0: no limit)")
    run.add_argument("--out", type=_folder, required=True, help="folder for results.json, figures/ and the executed notebook")
    run.add_argument("--data", help="dataset folder, or kaggle:OWNER/SLUG (kagglehub) (default: search /kaggle/input; "
                                    "then demo uses the embedded digits, quick and full download)")
    run.add_argument("--seeds", type=int, nargs="+", help="training seeds, distinct, from 0 to 2**32 - 1 (default: the preset's)")
    run.add_argument("--device", help="cpu, cuda, cuda:1 (default: a GPU when there is one)")
    run.add_argument("--devices", nargs="+", metavar="DEVICE",
                     help="mnist-kd, cifar10-ast: split the seeds over these devices, each running every method on "
                          "its seeds, e.g. cuda:0 cuda:1 (default: every visible GPU); cpu cpu: two CPU workers")
    run.add_argument("--threads", type=int, metavar="N",
                     help="mnist-kd, cifar10-ast: torch threads per worker (default: each worker's share of the "
                          "cores; with one device, torch's default)")
    run.add_argument("--teacher-epochs", type=int, help=f"mnist-kd: the teacher's epochs (1 to {EPOCHS_BOUND})")
    run.add_argument("--student-epochs", type=int, help=f"mnist-kd: each student's epochs (1 to {EPOCHS_BOUND})")
    run.add_argument("--ablate", nargs="*", metavar="COMPONENT",
                     help="mnist-kd: HPM-KD components removed in turn (default: all six; none: no ablation)")
    run.add_argument("--ablation-seeds", type=int, metavar="N",
                     help="mnist-kd: the ablation runs the first N seeds (default: the preset's; demo 1, quick/full all)")
    run.add_argument("--epochs", type=int, help=f"cifar10-ast, imagenet100-ast: epochs (1 to {EPOCHS_BOUND})")
    run.add_argument("--target-rate", type=float,
                     help="cifar10-ast, imagenet100-ast: the controller's target activation rate, in (0, 1]")
    run.add_argument("--scoring", choices=("forward", "stale"), help="cifar10-ast, imagenet100-ast: how samples are scored")
    run.add_argument("--methods", nargs="+", metavar="METHOD",
                     help="cifar10-ast, imagenet100-ast: which methods run (default: the preset's): full; full@F "
                          "(full training for F of the epochs: the frontier is full@0.25 full@0.5 full@0.75); ast, "
                          "selective-backprop, random, infobatch; a per-batch rule + '+accumulate' (full batches "
                          "of selected samples); controls random@RULE and random-prune@infobatch")
    run.add_argument("--bn-recalibration-batches", type=int, metavar="N",
                     help="cifar10-ast, imagenet100-ast: selective runs recompute BatchNorm statistics on N random "
                          "full batches after each selective epoch (default: the preset's; 0: off)")
    kaggle = commands.add_parser("kaggle", help="Kaggle kernels")
    kaggle_commands = kaggle.add_subparsers(dest="kaggle_command", required=True)
    validate = kaggle_commands.add_parser("validate", help="check kaggle_kernels/<name> before a push")
    validate.add_argument("name", nargs="?", default="all", help="a kernel folder name, or 'all'")
    build = kaggle_commands.add_parser("build", help="write the push folder: metadata + notebook with kdlib bundled")
    build.add_argument("name", nargs="?", default="all", help="a kernel folder name, or 'all'")
    build.add_argument("--out", type=Path, default=Path("build/kaggle"), help="where the push folders go")
    build.add_argument("--owner", help="Kaggle user the kernel belongs to (default: $KAGGLE_USERNAME, else kaggle.json's)")
    build.add_argument("--resume-from", metavar="OWNER/SLUG", help=RESUME_HELP)
    push = kaggle_commands.add_parser("push", help="build, validate and push a kernel")
    push.add_argument("name", help="a kernel folder name")
    push.add_argument("--out", type=Path, default=Path("build/kaggle"))
    push.add_argument("--owner", help="default: $KAGGLE_USERNAME, else kaggle.json's username, else the token's user")
    build.add_argument("--preset", choices=("demo", "quick", "full"),
                       help="the preset the built notebook runs (default: the kernel's, in kaggle_kernels/<name>/kdlib.json)")
    push.add_argument("--preset", choices=("demo", "quick", "full"),
                      help="the preset the pushed notebook runs (default: the kernel's, in kaggle_kernels/<name>/kdlib.json)")
    push.add_argument("--dry-run", action="store_true", help="build and validate, show what would be sent, send nothing")
    push.add_argument("--timeout", type=int, metavar="SECONDS", help="the session's time limit (kaggle's --timeout)")
    push.add_argument("--accelerator", metavar="SHAPE",
                      help="machine shape, overriding the metadata's (kaggle's --accelerator), e.g. NvidiaTeslaT4")
    push.add_argument("--resume-from", metavar="OWNER/SLUG", help=RESUME_HELP)
    status = kaggle_commands.add_parser("status", help="a pushed kernel's session status")
    status.add_argument("kernel", help="owner/slug")
    status.add_argument("--wait", action="store_true", help="poll until the session ends")
    status.add_argument("--poll", type=float, default=30.0, help="seconds between polls")
    fetch = kaggle_commands.add_parser("output", help="download a kernel's results and print the summary table")
    fetch.add_argument("kernel", help="owner/slug")
    fetch.add_argument("--dest", type=Path, default=Path("runs/kaggle"))
    fetch.add_argument("--all", action="store_true", dest="everything",
                       help="every output file (checkpoints, stores...); default: results.*, figures/, the notebook")
    selftest = commands.add_parser("selftest", help="check the GPU paths (AMP, NVML, streams, AST, store, ranks) here")
    selftest.add_argument("--device", help="cuda, cuda:1 or cpu (default: a GPU when there is one)")
    selftest.add_argument("--out", type=Path, help="folder for selftest.json (default: runs/selftest, on Kaggle "
                                                   "/kaggle/working/selftest)")
    args = parser.parse_args(argv)

    if args.command == "selftest":
        from .selftest import main as selftest_main

        return selftest_main(args.device, args.out)
    if args.command == "kaggle":
        return kaggle_main(args)
    if args.data is not None and not args.data.strip():
        parser.error("--data '' names no folder: give a folder, or leave --data out to search the input root")
    if args.data and not args.data.startswith("kaggle:") and not Path(args.data).exists():
        parser.error(f"--data {args.data!r} does not exist")
    if args.seeds and len(set(args.seeds)) != len(args.seeds):
        parser.error(f"--seeds {' '.join(map(str, args.seeds))} repeats a seed: each seed must appear once "
                     "(a repeated seed would be counted as two runs in the statistics)")
    presets = experiment_module(args.experiment).PRESETS
    if args.preset not in presets:
        parser.error(f"--preset {args.preset!r}: {args.experiment} has the presets {', '.join(presets)}")
    per_experiment = EXPERIMENT_OPTIONS[args.experiment]
    for options in EXPERIMENT_OPTIONS.values():
        for name in set(options) - set(per_experiment):
            if getattr(args, name) is not None:
                parser.error(f"--{name.replace('_', '-')} does not apply to {args.experiment}")
    if "methods" in per_experiment and args.methods:  # before a kernel starts and leaves a failed notebook
        try:
            experiment_module(args.experiment).check_methods(args.methods)
        except ValueError as exc:
            parser.error(f"--methods {' '.join(args.methods)}: {exc}")
    if args.ablate is not None and "none" in args.ablate:
        if args.ablate != ["none"]:
            parser.error(f"--ablate {' '.join(args.ablate)}: 'none' means no ablation, so it stands alone")
        args.ablate = []
    if args.experiment not in SEED_SPLIT_EXPERIMENTS:
        for name in ("devices", "threads"):
            if getattr(args, name) is not None:
                parser.error(f"--{name} does not apply to {args.experiment}: its runs already train data-parallel "
                             "on every visible GPU (--device picks one)")
    problem = check_parameters(args, per_experiment)
    if problem:
        parser.error(problem)
    # before check_out_dir, which makes the folder: a refused run leaves no empty folder behind
    if args.cell_timeout is not None and not args.cell_timeout >= 0:
        parser.error(f"--cell-timeout {args.cell_timeout:g}: give seconds above 0, or 0 for no limit")
    problem = missing_notebook(args.experiment) or check_out_dir(args.out)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    from papermill.exceptions import PapermillExecutionError

    folder = _identity_of(args.out)
    try:
        executed = run_notebook(args.experiment, args.preset, args.out, args.data, cell_timeout=args.cell_timeout,
                                seeds=args.seeds, device=args.device,
                                **({"devices": args.devices, "threads": args.threads}
                                   if args.experiment in SEED_SPLIT_EXPERIMENTS else {}),
                                **{name: getattr(args, name) for name in per_experiment})
    except KeyboardInterrupt:
        # The kernel is interrupted too, and the cell papermill was waiting on ends in an error nobody retrieves now:
        # asyncio would print it, with a traceback, as this process exits.
        logging.getLogger("asyncio").setLevel(logging.CRITICAL)
        print(f"interrupted: the run stopped; every finished run and each unfinished run's last checkpoint (after its "
              f"last finished epoch) stay in {args.out / 'runs'}: run the same command again to resume from there.",
              file=sys.stderr)
        return 130
    except CellTimedOut as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        if _identity_of(args.out) != folder:  # whatever failed first (papermill's save, a kdlib write), this is why
            print(f"error: --out {args.out} was deleted or replaced during the run: the run stopped there, and what the "
                  "folder held is lost. Run again to start over.", file=sys.stderr)
            return 1
        from nbclient.exceptions import DeadKernelError

        if isinstance(exc, DeadKernelError):  # killed (out of memory, a crash): its last words are in its log
            log = args.out / KERNEL_LOG
            last = log.read_text(errors="replace").strip().splitlines()[-1:] if log.exists() else []
            print(f"error: the notebook's kernel died ({exc}){': ' + last[0] if last else ''}; its messages are in "
                  f"{log}. Results computed so far stay in {args.out / 'runs'} and are reused when you run again.",
                  file=sys.stderr)
            return 1
        if not isinstance(exc, (PapermillExecutionError, OSError)):
            raise
        return _report_failure(exc, args)
    results = json.loads((args.out / "results.json").read_text())
    print(summary_text(results))
    print(f"executed notebook: {executed}\nresults: {args.out / 'results.json'} ({len(results['runs'])} runs)")
    return 0


AST_EXPERIMENTS = ("cifar10-ast", "imagenet100-ast")


def summary_text(results: dict) -> str:
    """The experiment's own summary, from its results.json: for mnist-kd the accuracy and retention table
    (results.txt's); for the AST experiments each method's accuracy, measured speed-up and budget, then the
    verdicts, one sentence each (the notebook's own, ``selection.verdict_lines``)."""
    from . import results_io

    hardware = results.get("hardware") or {}
    machine = hardware.get("device_name") or hardware.get("device")
    header = (f"{results['experiment']} ({results['preset']} preset) on {results['dataset']['name']}"
              + (f", {machine}" if machine else ""))
    if results["experiment"] not in AST_EXPERIMENTS:
        return header + "\n" + results_io.summary_frame(results).to_string(index=False) + "\n"
    import pandas as pd

    from .experiments.selection import verdict_lines

    def ratio(value, pattern):
        return "n/a" if value is None else pattern.format(value)

    rows = [{"method": s["method"], "seeds": s["n_seeds"],
             "test acc (%)": f"{100 * s['test_accuracy_mean']:.2f}"
                             + (f" ± {100 * s['test_accuracy_std']:.2f}" if s.get("test_accuracy_std") is not None else ""),
             "train s": f"{s['train_seconds_mean']:.1f}",
             "speed-up vs full": ratio(s.get("speedup_vs_full"), "{:.2f}x")
                                 + (" above its ceiling: not a result" if s.get("speedup_above_ceiling") else ""),
             "epochs": s.get("epochs") if s.get("epochs") is not None else "",
             "backprop vs full": ratio(s.get("realised_rate"), "{:.0%}")}
            for s in results["summary"]]
    verdicts = verdict_lines(results)
    return "\n".join([header, pd.DataFrame(rows).to_string(index=False),
                      "budget: 'backprop vs full' is the share of full training's backpropagated samples a method spent",
                      "verdicts:" if verdicts else "verdicts: none (no comparison could be made)",
                      *(f"- {line}" for line in verdicts)]) + "\n"


def _identity_of(folder: Path) -> tuple | None:
    """(device, inode) of ``folder``, None when it is gone: a folder replaced by another of the same name differs."""
    try:
        stat = folder.stat()
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


def _report_failure(exc: Exception, args) -> int:
    from papermill.exceptions import PapermillExecutionError

    if isinstance(exc, PapermillExecutionError):
        print(f"error: the notebook stopped in cell {exc.exec_count}: {exc.ename}: {exc.evalue}\n"
              f"the partly executed notebook is {failed_notebook_path(args.out, args.experiment)}; results computed "
              f"so far stay in {args.out / 'runs'} and are reused when you run again.", file=sys.stderr)
        return 1
    print(f"error: {exc}; results computed so far stay in {args.out / 'runs'}.", file=sys.stderr)
    return 1


def kaggle_main(args) -> int:
    from . import kaggle

    try:
        if args.kaggle_command == "push":
            sent = kaggle.push(args.name, args.out, args.owner, dry_run=args.dry_run, timeout=args.timeout,
                               accelerator=args.accelerator, resume_from=args.resume_from,
                               preset=args.preset)
            print(("would send" if args.dry_run else "pushed") + ":\n" + json.dumps(sent, indent=2))
            return 0
        if args.kaggle_command == "status":
            print(kaggle.status(args.kernel, wait=args.wait, poll_seconds=args.poll))
            return 0
        if args.kaggle_command == "output":
            results_path = kaggle.output(args.kernel, args.dest, everything=args.everything)
            results = json.loads(results_path.read_text())
            print(summary_text(results))
            return 0
    except (kaggle.KaggleCredentialsError, ValueError, RuntimeError, FileNotFoundError, TimeoutError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    names = kaggle.kernel_names() if args.name == "all" else [args.name]
    if getattr(args, "resume_from", None) and args.name == "all":
        print("error: --resume-from names one kernel's earlier output: build that kernel by name", file=sys.stderr)
        return 1
    failed = 0
    for name in names:
        if args.kaggle_command == "build":
            try:
                folder = kaggle.build(name, args.out, args.owner or kaggle.configured_owner(),
                                     preset=args.preset, resume_from=args.resume_from)
            except ValueError as exc:
                print(f"error: {exc}", file=sys.stderr)
                failed += 1
                continue
            problems = kaggle.validate_kernel_folder(folder)
            print(f"built {folder} (PRESET={args.preset or kaggle.default_preset(name)!r})")
            if json.loads((folder / kaggle.METADATA_FILE).read_text())["id"].startswith(kaggle.OWNER_PLACEHOLDER + "/"):
                print(f"note: no owner known (--owner, $KAGGLE_USERNAME or kaggle.json's username), so the id says "
                      f"{kaggle.OWNER_PLACEHOLDER!r}: pass --owner YOU before pushing this folder", file=sys.stderr)
        else:
            problems = kaggle.validate_kernel(name)
        print(f"{name}: " + ("ok" if not problems else f"{len(problems)} problem(s)"))
        for problem in problems:
            print(f"  - {problem}")
        failed += bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

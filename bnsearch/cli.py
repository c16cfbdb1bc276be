"""``python -m bnsearch``: a thin layer that parses flags into a StudyConfig and calls the library.

Commands come from one table (:data:`COMMANDS`); exit codes: docs/reference/exit-codes.md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from bnsearch import __version__
from bnsearch._interrupts import install_handlers
from bnsearch._quiet import import_tensorflow_quietly
from bnsearch._reachable import make_store_folder
from bnsearch._redact import redact_text, redact_url
from bnsearch.config import (
    SETTINGS,
    StudyConfig,
    add_flags,
    copy_examples,
    default_tracking_uri,
    load_study_file,
    needs_tensorflow,
)
from bnsearch.errors import BnsearchError, ConfigError, UsageError, error_line
from bnsearch.networks import NetworkSettings, describe_network, summarize_network
from bnsearch.trial import SearchSpace

if TYPE_CHECKING:
    from bnsearch.study import StudyOutcome

_SPACE_KEYS = {"placements": "placement", "activations": "activation"}


def config_from_args(args: argparse.Namespace, **forced: Any) -> StudyConfig:
    """Defaults, then the study file's settings, then the flags given; a StudyConfig."""
    study_file = getattr(args, "study_file", None)
    settings = load_study_file(Path(study_file)) if study_file else {"network": {}, "space": {}}
    network, space = dict(settings.pop("network")), dict(settings.pop("space"))
    if "name" in settings:
        settings["study_name"] = settings.pop("name")
    sections = {"study": settings, "network": network, "space": space}
    for item in SETTINGS:
        if item.name in vars(args):
            key = _SPACE_KEYS.get(item.name, item.name)
            sections[item.section][key] = getattr(args, item.name)
    if getattr(args, "quiet", False):
        settings["verbose"] = False
    if getattr(args, "verbose", False):
        settings["details"] = True
    for key in ("hidden_units", "conv_filters"):  # NetworkSettings makes a list a tuple
        if isinstance(network.get(key), int):
            network[key] = [network[key]]
    settings.update(forced)
    return StudyConfig(
        **settings, space=SearchSpace.from_overrides(space), network=NetworkSettings(**network)
    )


def _study_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "study_file", nargs="?", help="a study file (studies/*.toml); flags override its settings"
    )
    add_flags(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress lines or summary")
    _verbose_argument(parser)


def _verbose_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="the verdict's full statistics too (bootstrap CI, Wilcoxon/Holm, d_z, "
        "importances, per activation), as report.md has them",
    )


def _run_study(args: argparse.Namespace) -> None:
    from bnsearch.study import run_study, study_lock

    config = config_from_args(args)
    with study_lock(config):
        run_study(config)


def _run_worker(args: argparse.Namespace) -> None:
    from bnsearch.study import run_study

    if not getattr(args, "study_file", None):
        raise UsageError("worker needs a study file: python -m bnsearch worker studies/x.toml")
    config = config_from_args(args, confirm_seeds=0)
    if config.target_trials is None:
        raise ConfigError(
            f"{args.study_file}: a worker needs `target_trials` (in the file or "
            "--target-trials) to know when the shared study is done."
        )
    # Importances (fANOVA over the whole shared study) are left to `report`: computed by
    # every worker at its exit they would be the same CPU-heavy work once per worker.
    run_study(config, importances=False)


def _run_prepare(args: argparse.Namespace) -> None:
    from bnsearch.study import prepare_study

    prepare_study(config_from_args(args))


def _sweep_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", help="folder of study files")
    add_flags(parser, names=("storage", "tracking_uri"))
    _verbose_argument(parser)


def _run_sweep(args: argparse.Namespace) -> int:
    """Run each study file in turn; one log line per study; the worst outcome's exit code."""
    from bnsearch.study import run_study, study_lock

    folder = Path(args.folder)
    files = _study_files(folder)
    codes: list[int] = []
    for path in files:
        started = time.monotonic()
        try:
            config = _sweep_config(path, args)
            with study_lock(config):
                outcome = run_study(config)
        except Exception as error:  # noqa: BLE001 - one study's failure never stops the sweep
            if isinstance(error, BnsearchError):
                code, what = error.exit_code, str(error)
            else:
                code = 1
                what = f"unexpected {error_line(error)} (run it alone with --debug for details)"
            codes.append(code)
            print(f"sweep: {path.name}: error (exit {code}): {redact_text(what)}", flush=True)
            if getattr(args, "debug", False):
                traceback.print_exc()
            continue
        _print_sweep_study(path, outcome, time.monotonic() - started, args)
        codes.append(0)
    try:
        _report_sweep(folder, files, args)
    except BnsearchError as error:
        print(f"sweep: verdict across datasets: error: {redact_text(str(error))}", flush=True)
        codes.append(error.exit_code)
    return next((code for code in (2, 3, 1) if code in codes), 0)


def _print_sweep_study(
    path: Path, outcome: StudyOutcome, seconds: float, args: argparse.Namespace
) -> None:
    """How one study of a sweep went, in one line (``--verbose``: and its full verdict)."""
    from bnsearch.report import WIDTH, plain_ascii, verdict_details, verdict_glance

    verdict = outcome.verdict
    line = plain_ascii(
        f"sweep: {path.name}: +{len(outcome.new_results)} trials "
        f"({len(outcome.all_results)} in total), {seconds:.0f} s: {verdict.words.replace('`', '')}"
    )
    print(line if len(line) <= WIDTH else line[: WIDTH - 3] + "...", flush=True)
    if getattr(args, "verbose", False):
        details = ["", "Full statistics:", *verdict_details(verdict), ""]
        print(*verdict_glance(verdict), *details, sep="\n", flush=True)


def _study_files(folder: Path) -> list[Path]:
    files = sorted(folder.glob("*.toml")) if folder.is_dir() else []
    if not files:
        raise UsageError(f"no study files (*.toml) in {folder}; give a folder such as studies/.")
    return files


def _sweep_config(path: Path, args: argparse.Namespace) -> StudyConfig:
    given = {k: v for k, v in vars(args).items() if k in ("storage", "tracking_uri")}
    return config_from_args(argparse.Namespace(study_file=str(path), quiet=True, **given))


def _report_sweep(
    folder: Path, files: list[Path], args: argparse.Namespace, out_dir: Path | None = None
) -> None:
    """The verdict across the folder's studies (those whose file does not load left out)."""
    from bnsearch.sweep import report_sweep

    configs = []
    for path in files:
        with contextlib.suppress(BnsearchError):
            configs.append(_sweep_config(path, args))
    uri = getattr(args, "tracking_uri", None) or default_tracking_uri()
    report_sweep(folder, configs, uri, out_dir)


def _ui_arguments(parser: argparse.ArgumentParser) -> None:
    add_flags(parser, names=("tracking_uri", "study_name"))
    parser.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1")
    parser.add_argument("--port", type=int, default=5000, help="default 5000")


def _run_ui(args: argparse.Namespace) -> None:
    from bnsearch.tracking import (
        existing_experiment_id,
        relocate_artifacts,
        runs_url,
        ui_command,
        ui_environment,
    )

    uri = getattr(args, "tracking_uri", None) or default_tracking_uri()
    # `mlflow ui` ends in a traceback where a file is in the folder's way.
    make_store_folder(uri, "MLflow store", "--tracking-uri")
    if relocate_artifacts(uri):
        print("bnsearch: the store was moved; its artifact paths now point beside it.")
    command = ui_command(uri, args.host, args.port)
    print("bnsearch: " + " ".join(map(redact_url, command)), flush=True)
    if name := getattr(args, "study_name", None):
        found = existing_experiment_id(uri, name)
        if found is None:
            raise ConfigError(
                f"no MLflow experiment {name!r} at {redact_url(uri)}; check --study-name "
                "and --tracking-uri."
            )
        print(f"bnsearch: study {name!r}: {runs_url(found, args.host, args.port)}", flush=True)
    os.environ.update(ui_environment())
    os.execvp(sys.executable, [sys.executable, "-m", "mlflow", *command[1:]])


def _report_arguments(parser: argparse.ArgumentParser) -> None:
    names = ("study_name", "storage", "tracking_uri", "metric", "threshold", "until")
    add_flags(parser, names=names)
    parser.add_argument("--out", help="folder for the report; default mlruns/reports/<study>")
    parser.add_argument(
        "--sweep",
        metavar="FOLDER",
        help="instead: the verdict across the studies of a folder of study files",
    )
    _verbose_argument(parser)


def _run_report(args: argparse.Namespace) -> None:
    from bnsearch.study import rebuild_report

    out = _out_folder(getattr(args, "out", None))
    if getattr(args, "sweep", None):
        folder = Path(args.sweep)
        _report_sweep(folder, _study_files(folder), args, out)
        return
    if not getattr(args, "study_name", None):
        raise UsageError(
            "report needs --study-name NAME (one study) or --sweep FOLDER (across studies)."
        )
    rebuild_report(config_from_args(args), out)


def _out_folder(out: str | None) -> Path | None:
    """``--out`` as a folder, refused before anything is computed if a file stands in its way."""
    if not out:
        return None
    path = Path(out)
    standing = next(p for p in (path, *path.parents) if p.exists())
    if not standing.is_dir():
        raise UsageError(f"--out {out}: {standing} is a file, not a folder; give --out a folder.")
    return path


def _sync_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("study_file", nargs="?", help="the study's file (or give the flags)")
    add_flags(parser, names=("study_name", "backend", "storage", "tracking_uri"))


def _run_sync(args: argparse.Namespace) -> None:
    from bnsearch.study import sync_study

    sync_study(config_from_args(args))


def _replay_arguments(parser: argparse.ArgumentParser) -> None:
    _study_arguments(parser)
    parser.add_argument("--trial", type=int, required=True, help="the trial's number")
    parser.add_argument(
        "--alone",
        action="store_true",
        help="train a population-engine trial in a population of its own, not among the "
        "trials of its recorded batch (shows how far the graph's shape moves its rounding)",
    )


def _run_replay(args: argparse.Namespace) -> None:
    from bnsearch.replay import replay_trial

    engine = getattr(args, "engine", None)  # None: the engine that trained the trial
    replay_trial(config_from_args(args), args.trial, engine, alone=getattr(args, "alone", False))


def _export_arguments(parser: argparse.ArgumentParser) -> None:
    _study_arguments(parser)
    parser.add_argument("--placement", help="only this placement's best configuration")
    parser.add_argument("--register", metavar="NAME", help="also register it as model NAME")


def _run_export(args: argparse.Namespace) -> None:
    from bnsearch.export import export_best

    export_best(
        config_from_args(args), getattr(args, "placement", None), getattr(args, "register", None)
    )


#: The settings `model` takes: what decides the network's layers and the data's shapes.
_MODEL_FLAGS = (
    "data", "target", "task", "hidden_units", "activation", "initializer", "family",
    "conv_filters", "kernel_size", "builder", "model", "keep_optimizer", "placements",
)  # fmt: skip


def _model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "study_file", nargs="?", help="a study file whose network to show (or give the flags)"
    )
    parser.add_argument(
        "--show",
        metavar="MODEL",
        help="the Keras model to show rewritten: a .keras file, module:name or file.py:name "
        "(as --model)",
    )
    add_flags(parser, names=_MODEL_FLAGS)
    parser.add_argument(
        "--full",
        action="store_true",
        help="every layer of each placement (what a study logs as model.txt), not the summary",
    )


def _run_model(args: argparse.Namespace) -> None:
    from bnsearch.engines import PopulationEngine, engine_for
    from bnsearch.study import load_study_dataset

    config = config_from_args(args)
    network = config.network
    if shown := getattr(args, "show", None):
        network = replace(network, model=shown, builder=None)
    shape = n_classes = dataset = None
    if network.kind != "model" or config.data is not None:
        dataset = load_study_dataset(config.with_changes(network=network))
        shape, n_classes = dataset.x.shape[1:], dataset.n_classes
    space = config.space
    if getattr(args, "full", False):
        print(describe_network(network, space.placement, shape, n_classes), flush=True)
        return
    engine = engine_for(config.engine, network, config.fit_only, dataset, space)
    reason = PopulationEngine.untrainable(network, dataset, space) if engine == "keras" else None
    print(summarize_network(network, space.placement, engine, reason, shape, n_classes), flush=True)


def _examples_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", help="where to copy the shipped study files (made if missing)")


def _run_examples(args: argparse.Namespace) -> None:
    copied = copy_examples(Path(args.folder))
    print(f"bnsearch: {len(copied)} study files in {args.folder}: {', '.join(copied)}")
    print(f"run one with python -m bnsearch study {Path(args.folder) / 'thread.toml'}")


#: ``bench``'s other benchmarks, each picked instead of the engines' timing by its flag.
_BENCHMARKS = {
    "backends": "the default study by Optuna, Keras Tuner random and Bayesian, side by side",
    "until": "the default study until settled and with its whole budget, side by side",
    "profile": "where a population training step's time goes, MLP and CNN, by removing its "
    "parts one after another (about 30 s)",
    "settled": "the until-settled stopping rule against the fixed budget on simulated studies "
    "(analysis only, about two minutes)",
}


def _bench_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--short", action="store_true", help="6,000 rows, P = 1, 8, 64: under a minute"
    )
    parser.add_argument("--populations", help="comma-separated population sizes")
    parser.add_argument("--rows", type=int, help="rows of synthetic data")
    for name, what in _BENCHMARKS.items():
        parser.add_argument(f"--{name}", action="store_true", help=f"instead: {what}")
        if name == "until":  # --n-trials sizes --backends and --until: listed after them
            parser.add_argument(
                "--n-trials", type=int, help="with --backends/--until: trials per study"
            )


def _run_bench(args: argparse.Namespace) -> None:
    from bnsearch import bench

    n_trials = getattr(args, "n_trials", None)
    if getattr(args, "profile", False):
        bench.profile_steps()
    elif getattr(args, "settled", False):
        bench.run_settled_benchmark()
    elif getattr(args, "backends", False) or getattr(args, "until", False):
        variants = bench.UNTIL if getattr(args, "until", False) else bench.BACKENDS
        bench.compare_backends({"n_trials": n_trials} if n_trials else None, variants=variants)
    else:
        bench.run_benchmark(
            short=getattr(args, "short", False),
            populations=_populations(getattr(args, "populations", None)),
            n_rows=getattr(args, "rows", None),
        )


def _populations(text: str | None) -> list[int] | None:
    try:
        return [int(p) for p in text.split(",")] if text else None
    except ValueError:
        raise UsageError(f"--populations takes sizes such as 1,8,64, not {text!r}.") from None


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    description: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int | None]  # None: exit code 0


#: The commands that import TensorFlow (seconds) before they run; ``study``, ``sweep`` and
#: ``worker`` import it in run_study, after the study's first line; the others never.
_TENSORFLOW_FIRST = ("prepare", "replay", "export", "model", "bench")


COMMANDS: tuple[Command, ...] = (
    Command(
        "study",
        "run (or resume) a BN configuration study",
        "Train the thread's network under BN configurations chosen by Optuna (or Keras "
        "Tuner); log every trial to MLflow; print a table per placement and the verdict.",
        _study_arguments,
        _run_study,
    ),
    Command(
        "sweep",
        "run every study file in a folder in turn (for cron / systemd timers)",
        "Runs each studies/*.toml in name order: a study at its target_trials (or settled) "
        "is 'up to date'; others get trials up to the target and a refreshed verdict. Ends "
        "with the verdict across the studies' datasets (as report --sweep). Exit codes: 0 "
        "all fine, 1 a study failed, 2 a bad study file, 3 a study was locked.",
        _sweep_arguments,
        _run_sweep,
    ),
    Command(
        "worker",
        "pull trials of a shared study until it reaches target_trials (run on many machines)",
        "One of many workers sharing an Optuna storage (e.g. PostgreSQL) and an MLflow "
        "server. Each claims whole paired blocks until the study holds target_trials search "
        "trials, retrying trials of workers that died (failed once their heartbeat stops for "
        "the grace period), and waits for the others' trials before it exits. Workers skip "
        "the confirmation round: run `study` or `report` afterwards.",
        _study_arguments,
        _run_worker,
    ),
    Command(
        "prepare",
        "create a shared study and its MLflow experiment once, before starting workers",
        "Creates the Optuna study (with its space, data and network fingerprints) and the "
        "MLflow experiment, so workers started together never race to create them. Trains "
        "nothing; safe to run again.",
        _study_arguments,
        _run_prepare,
    ),
    Command(
        "ui",
        "open the MLflow UI on the project's store",
        "Starts MLflow's UI on the tracking store.",
        _ui_arguments,
        _run_ui,
    ),
    Command(
        "report",
        "rebuild the verdict and report of an Optuna study, or across a sweep's studies",
        "Recomputes the verdict from the Optuna storage, writes report.md/report.html and "
        "logs them to a new MLflow run; with --sweep FOLDER, the verdict across the "
        "datasets of the folder's study files (trains nothing).",
        _report_arguments,
        _run_report,
    ),
    Command(
        "sync",
        "write to MLflow what the study's store has and MLflow missed (trains nothing)",
        "After MLflow was unreachable during a study: creates the missing trial runs from "
        "the Optuna study (or Keras Tuner project) with their full per-epoch histories, "
        "completes runs left RUNNING, and ends runs whose process is gone. Every study run "
        "does this at its start too.",
        _sync_arguments,
        _run_sync,
    ),
    Command(
        "replay",
        "train one logged trial again and compare it with its logged metrics",
        "Re-trains trial --trial of the study (its study file or the flags it was run with) "
        "from its stored configuration and seed, on the engine that trained it unless "
        "--engine says otherwise (a population-engine trial among the trials of its "
        "recorded batch, in a population of the size that trained it, unless --alone); "
        "prints per-epoch metrics beside the logged ones with the largest difference, and "
        "logs the replay as an MLflow run linked to the original.",
        _replay_arguments,
        _run_replay,
    ),
    Command(
        "export",
        "train each placement's best configuration and log it as an MLflow model",
        "Re-trains the best search configuration of each placement (or --placement) with "
        "its seed on the Keras engine and logs it as an MLflow model (Keras flavor, with "
        "signature and input example) in a run of kind export; --register NAME also "
        "registers it in the model registry.",
        _export_arguments,
        _run_export,
    ),
    Command(
        "model",
        "summarize the network a study trains, your own --model rewritten (--full: every layer)",
        "Summarizes the network a study trains under each placement: of a study file's "
        "network, of the flags' network, or (--show MODEL) of your own Keras model as "
        "bnsearch rewrites it: layers by kind, the sites, the BatchNormalization layers "
        "placed and kept, layers kept as they are, layers the population engine has no form "
        "for, and the engine that will train it. --full prints every layer of each "
        "placement (the bias dropped where a BN follows directly), the text a --model study "
        "logs to its parent run as model.txt. Trains nothing.",
        _model_arguments,
        _run_model,
    ),
    Command(
        "examples",
        "copy the shipped study files (the thread's net, iris, wine, a CNN, ...) into a folder",
        "Copies the study files that ship with bnsearch (studies/*.toml and the Keras models "
        "they name) into FOLDER, so that `study FOLDER/thread.toml`, `sweep FOLDER` and the "
        "docs' examples work after pip install. Refuses to overwrite a file of the same name.",
        _examples_arguments,
        _run_examples,
    ),
    Command(
        "bench",
        "time the Keras and population engines side by side (prints figures)",
        "Trains the same trials on both engines and prints seconds per trial-epoch.",
        _bench_arguments,
        _run_bench,
    ),
)


class _Parser(argparse.ArgumentParser):
    """argparse whose refusal is a UsageError: one ``bnsearch: error:`` line and exit 2."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message}; see {self.prog} --help.")


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command. A flag not given is not in the namespace at all
    (``SUPPRESS``: the study file or the default applies), so a runner reads an optional
    argument with ``getattr(args, name, default)``, never ``args.name``."""
    common = _Parser(add_help=False, argument_default=argparse.SUPPRESS)
    common.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    # `bnsearch` (the installed script) or `python -m bnsearch`, as a person typed it.
    program = Path(sys.argv[0]).name if sys.argv else ""
    parser = _Parser(
        prog="bnsearch" if program == "bnsearch" else "python -m bnsearch",
        parents=[common],
        description="Does BatchNormalization placement (before/after the activation) matter "
        "for your data? Optuna or Keras Tuner studies of the thread's network, every trial "
        "logged to MLflow.",
    )
    parser.add_argument("--version", action="version", version=f"bnsearch {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        sub = commands.add_parser(
            command.name,
            parents=[common],
            argument_default=argparse.SUPPRESS,
            help=command.help,
            description=command.description,
        )
        command.add_arguments(sub)
        sub.set_defaults(run=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # SIGTERM (systemd stop, kill) takes the Ctrl-C path: trials in flight end as failed.
    install_handlers()
    # Read before parsing: a flag's own parser may raise a UsageError (--hidden-units a,b).
    debug = "--debug" in (sys.argv[1:] if argv is None else argv)
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not hasattr(args, "run"):  # a bare `bnsearch`: what it can do
            parser.print_help()
            return 0
        # The commands that train nothing start without TensorFlow (`report`, `ui` and
        # `sync` answer in about a second), and so does a study on an engine registered
        # without it (a stand-in engine of many-worker tests).
        if args.command in _TENSORFLOW_FIRST and needs_tensorflow(getattr(args, "engine", None)):
            import_tensorflow_quietly()
        return args.run(args) or 0
    except BnsearchError as error:
        if debug:
            raise
        print(f"bnsearch: error: {redact_text(str(error))}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt as stop:  # one line; the study loop may say what it kept
        print(str(stop) or "bnsearch: interrupted.", file=sys.stderr)
        return 130

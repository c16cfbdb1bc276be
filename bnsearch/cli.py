"""``python -m bnsearch``: a thin layer that parses flags into a StudyConfig and calls the library.

Exit codes: 0 success; 1 the study ran but every trial failed; 2 bad input (data,
configuration, stores), reported on one stderr line; 130 interrupted with Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from bnsearch.errors import BnsearchError, UsageError

__all__ = ["build_parser", "main"]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {value}")
    return value


def _add_study_flags(parser: argparse.ArgumentParser) -> None:
    from bnsearch.config import (
        BACKENDS,
        DEFAULT_N_TRIALS,
        DEFAULT_POPULATION,
        METRIC_CHOICES,
        PRUNERS,
        SAMPLERS,
        TUNERS,
    )
    from bnsearch.engines import ENGINES
    from bnsearch.model import ACTIVATIONS, FAMILIES, INITIALIZERS
    from bnsearch.space import PLACEMENTS

    opt = parser.add_argument_group("study (flags follow Optuna's CLI where they overlap)")
    parser.add_argument(
        "study_file",
        nargs="?",
        help="a study file (studies/*.toml); flags given here override its settings",
    )
    opt.add_argument("--study-name", help="study name; default bnsearch-<dataset name>")
    opt.add_argument(
        "--storage",
        help="Optuna storage URL; default sqlite:///mlruns/optuna.db. A study that exists there "
        "is resumed: trials are added, never started over",
    )
    opt.add_argument(
        "--n-trials",
        type=_positive_int,
        help="trials to add in this run (default "
        + ", ".join(f"{n} with the {e} engine" for e, n in DEFAULT_N_TRIALS.items())
        + ")",
    )
    opt.add_argument("--timeout", type=float, help="stop starting new trials after this many s")
    opt.add_argument(
        "--target-trials",
        type=_positive_int,
        help="add search trials until the study holds this many (what sweeps and workers use); "
        "a study already there is 'up to date'",
    )
    opt.add_argument("--seed", type=int, help="seed of the sampler and trials")
    opt.add_argument(
        "--backend",
        choices=BACKENDS,
        help="optuna (default) or keras-tuner (uses the Keras engine; no paired verdict)",
    )
    opt.add_argument(
        "--tuner",
        choices=TUNERS,
        help="Keras Tuner's tuner with --backend keras-tuner (default random); hyperband runs "
        "one full Hyperband iteration and ignores --n-trials",
    )
    opt.add_argument("--sampler", choices=SAMPLERS, help="default tpe")
    opt.add_argument(
        "--pruner",
        choices=PRUNERS,
        help="default none: a pruned trial breaks its paired block; median and hyperband "
        "prune on per-epoch validation loss",
    )
    verdict = parser.add_argument_group("verdict")
    verdict.add_argument(
        "--metric",
        choices=METRIC_CHOICES,
        help="metric compared between placements (final epoch); default val_loss",
    )
    verdict.add_argument(
        "--threshold",
        type=float,
        help="smallest difference that matters in practice (default 0.01)",
    )
    verdict.add_argument(
        "--confirm-seeds",
        type=_positive_int,
        help="fresh seeds to re-train each placement's best configuration with (default 5)",
    )
    opt.add_argument(
        "--engine",
        choices=ENGINES,
        help="population (default: many trials in one vectorised graph) or keras "
        "(one model.fit per trial, the reference)",
    )
    opt.add_argument(
        "--population",
        type=_positive_int,
        help=f"trials trained at once by the population engine (default {DEFAULT_POPULATION})",
    )
    opt.add_argument(
        "--heartbeat-interval",
        type=_positive_int,
        help="seconds between Optuna heartbeats of running trials (default 10)",
    )
    opt.add_argument(
        "--grace-period",
        type=_positive_int,
        help="a RUNNING trial without a heartbeat for this long is failed (and retried) by "
        "the next run or worker (default 60)",
    )
    opt.add_argument(
        "--allow-changed-study",
        action="store_true",
        help="add trials to an existing study even if its space, data or network changed",
    )
    data = parser.add_argument_group("data")
    data.add_argument(
        "--data",
        help="synthetic (default), a .csv/.parquet/.npz file, sklearn:NAME (breast_cancer, "
        "digits, iris, wine) or openml:ID",
    )
    data.add_argument("--target", help="label column of a CSV/Parquet file")
    data.add_argument(
        "--standardize",
        action="store_true",
        help="scale features with training-row mean/std (off by default, as in the thread)",
    )
    net = parser.add_argument_group("network and training")
    net.add_argument("--epochs", type=_positive_int, help="default 20")
    net.add_argument("--batch-size", type=_positive_int, help="default 16")
    net.add_argument("--validation-split", type=float, help="default 0.2")
    net.add_argument(
        "--hidden-units", help="widths of the hidden Dense layers, one per layer; default 64,64"
    )
    net.add_argument("--activation", choices=ACTIVATIONS, help="default tanh")
    net.add_argument(
        "--activations",
        help="search the activation too: comma-separated choices such as tanh,relu; the "
        "verdict is then also given per activation",
    )
    net.add_argument(
        "--family",
        choices=FAMILIES,
        help="mlp (default) or cnn (Conv2D blocks for image data such as sklearn:digits; "
        "trains on the Keras engine)",
    )
    net.add_argument("--conv-filters", help="cnn: filters per Conv2D block; default 16,32")
    net.add_argument("--kernel-size", type=_positive_int, help="cnn: default 3")
    net.add_argument(
        "--builder",
        help="your own network: module:function built with bnsearch.blocks (Keras engine)",
    )
    net.add_argument(
        "--initializer",
        choices=INITIALIZERS,
        help="default glorot_uniform; 'uniform' is the thread's ±0.05",
    )
    net.add_argument(
        "--placements",
        help=f"comma-separated placements to compare (from {', '.join(PLACEMENTS)}); "
        "default none,before,after",
    )
    track = parser.add_argument_group("tracking")
    track.add_argument(
        "--tracking-uri",
        help="MLflow tracking URI; default $MLFLOW_TRACKING_URI or sqlite:///mlruns/mlflow.db",
    )
    track.add_argument("--quiet", action="store_true", help="no progress lines or summary")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bnsearch",
        description="Does BatchNormalization placement (before/after the activation) matter "
        "for your data? Optuna studies of the thread's network, every trial logged to MLflow.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    # Sub-commands accept --debug too; SUPPRESS keeps them from resetting the top-level flag.
    sub_debug = {"action": "store_true", "default": argparse.SUPPRESS, "help": "show tracebacks"}
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    study = commands.add_parser(
        "study",
        argument_default=argparse.SUPPRESS,
        help="run (or resume) a BN configuration study",
        description="Train the thread's network under BN configurations chosen by Optuna; "
        "log every trial to MLflow; print a table per placement.",
    )
    study.add_argument("--debug", **sub_debug)
    _add_study_flags(study)
    sweep = commands.add_parser(
        "sweep",
        help="run every study file in a folder in turn (for cron / systemd timers)",
        description="Runs each studies/*.toml in name order: a study at its target_trials is "
        "'up to date'; others get trials up to the target and a refreshed verdict. Exit "
        "codes: 0 all fine, 1 a study failed, 2 a bad study file, 3 a study was locked.",
    )
    sweep.add_argument("folder", help="folder of study files")
    sweep.add_argument("--storage", help="Optuna storage URL for every study")
    sweep.add_argument("--tracking-uri", help="MLflow tracking URI for every study")
    sweep.add_argument("--debug", **sub_debug)
    worker = commands.add_parser(
        "worker",
        argument_default=argparse.SUPPRESS,
        help="pull trials of a shared study until it reaches target_trials (run on many machines)",
        description="One of many workers sharing an Optuna storage (e.g. PostgreSQL) and an "
        "MLflow server. Each claims whole paired blocks until the study holds target_trials "
        "search trials, retrying trials of workers that died (failed once their heartbeat "
        "stops for the grace period), and waits for the others' trials before it exits. "
        "Workers skip the confirmation round: run `study` or `report` afterwards.",
    )
    worker.add_argument("--debug", **sub_debug)
    _add_study_flags(worker)
    prepare = commands.add_parser(
        "prepare",
        argument_default=argparse.SUPPRESS,
        help="create a shared study and its MLflow experiment once, before starting workers",
        description="Creates the Optuna study (with its space, data and network fingerprints) "
        "and the MLflow experiment, so workers started together never race to create them. "
        "Trains nothing; safe to run again.",
    )
    prepare.add_argument("--debug", **sub_debug)
    _add_study_flags(prepare)
    ui = commands.add_parser("ui", help="open the MLflow UI on the project's store")
    ui.add_argument(
        "--tracking-uri", help="default $MLFLOW_TRACKING_URI or sqlite:///mlruns/mlflow.db"
    )
    ui.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1")
    ui.add_argument("--port", type=int, default=5000, help="default 5000")
    ui.add_argument("--debug", **sub_debug)
    report = commands.add_parser(
        "report", help="rebuild the verdict and report of an Optuna study (trains nothing)"
    )
    report.add_argument("--study-name", required=True, help="the study to report on")
    report.add_argument("--storage", help="Optuna storage URL; default sqlite:///mlruns/optuna.db")
    report.add_argument("--tracking-uri", help="MLflow tracking URI for the report run")
    from bnsearch.config import METRIC_CHOICES

    report.add_argument("--metric", choices=METRIC_CHOICES, default="val_loss")
    report.add_argument("--threshold", type=float, default=0.01, help="default 0.01")
    report.add_argument("--out", help="folder for the report; default mlruns/reports/<study>")
    report.add_argument("--debug", **sub_debug)
    bench = commands.add_parser(
        "bench", help="time the Keras and population engines side by side (prints figures)"
    )
    bench.add_argument(
        "--short", action="store_true", help="6,000 rows, P = 1, 8, 64: under a minute"
    )
    bench.add_argument("--populations", help="comma-separated population sizes")
    bench.add_argument("--rows", type=_positive_int, help="rows of synthetic data")
    bench.add_argument("--debug", **sub_debug)
    return parser


def _config_from_args(args: argparse.Namespace, **forced: object):  # noqa: ANN202
    """Defaults, then the study file's settings, then the flags given; a StudyConfig."""
    from pathlib import Path

    from bnsearch.config import StudyConfig
    from bnsearch.model import NetworkSettings
    from bnsearch.space import SearchSpace
    from bnsearch.studyfile import NETWORK_KEYS, load_study_file

    given = {k: v for k, v in vars(args).items() if k not in ("command", "debug", "study_file")}
    study_file = getattr(args, "study_file", None)
    settings = load_study_file(Path(study_file)) if study_file else {"network": {}, "space": {}}
    network = dict(settings.pop("network"))
    space = dict(settings.pop("space"))
    if "name" in settings:
        settings["study_name"] = settings.pop("name")
    for flag, key in (("hidden_units", "hidden_units"), ("conv_filters", "conv_filters")):
        if flag in given:
            text = given.pop(flag)
            try:
                given[key] = [int(u) for u in text.split(",")]
            except ValueError:
                option = "--" + flag.replace("_", "-")
                raise UsageError(
                    f"{option} takes comma-separated integers such as 64,64, not {text!r}."
                ) from None
    if "placements" in given:
        space["placement"] = [p.strip() for p in given.pop("placements").split(",") if p.strip()]
    if "activations" in given:
        space["activation"] = [a.strip() for a in given.pop("activations").split(",") if a.strip()]
    if given.pop("quiet", False):
        given["verbose"] = False
    for key in list(given):
        if key in NETWORK_KEYS:
            network[key] = given.pop(key)
    for key in ("hidden_units", "conv_filters"):
        if isinstance(network.get(key), int):
            network[key] = [network[key]]
        if key in network:
            network[key] = tuple(network[key])
    settings.update(given)
    settings.update(forced)
    return StudyConfig(
        **settings,
        space=SearchSpace.from_overrides(space),
        network=NetworkSettings(**network),
    )


def _run(args: argparse.Namespace) -> int:
    if args.command == "study":
        from bnsearch.study import run_study, study_lock

        config = _config_from_args(args)
        with study_lock(config):
            run_study(config)
        return 0
    if args.command == "worker":
        from bnsearch.errors import ConfigError
        from bnsearch.study import run_study

        if not getattr(args, "study_file", None):
            raise UsageError("worker needs a study file: python -m bnsearch worker studies/x.toml")
        config = _config_from_args(args, confirm_seeds=0)
        if config.target_trials is None:
            raise ConfigError(
                f"{args.study_file}: a worker needs `target_trials` (in the file or "
                "--target-trials) to know when the shared study is done."
            )
        run_study(config)
        return 0
    if args.command == "prepare":
        from bnsearch.study import prepare_study

        prepare_study(_config_from_args(args))
        return 0
    if args.command == "sweep":
        return _sweep(args)
    if args.command == "ui":
        from bnsearch.tracking import default_tracking_uri, ui_command

        command = ui_command(args.tracking_uri or default_tracking_uri(), args.host, args.port)
        print("bnsearch: " + " ".join(command), flush=True)
        os.execvp(sys.executable, [sys.executable, "-m", "mlflow", *command[1:]])
    if args.command == "report":
        from pathlib import Path

        from bnsearch.config import StudyConfig
        from bnsearch.study import rebuild_report

        config = StudyConfig(
            study_name=args.study_name,
            storage=args.storage,
            tracking_uri=args.tracking_uri,
            metric=args.metric,
            threshold=args.threshold,
        )
        rebuild_report(config, Path(args.out) if args.out else None)
        return 0
    if args.command == "bench":
        from bnsearch.bench import run_benchmark

        populations = None
        if args.populations:
            try:
                populations = [int(p) for p in args.populations.split(",")]
            except ValueError:
                raise UsageError(
                    f"--populations takes sizes such as 1,8,64, not {args.populations!r}."
                ) from None
        run_benchmark(short=args.short, populations=populations, n_rows=args.rows)
        return 0
    raise UsageError("say what to do: python -m bnsearch study (see --help).")


def _sweep(args: argparse.Namespace) -> int:
    """Run each study file in turn; one log line per study; the worst outcome's exit code."""
    import time
    from pathlib import Path

    from bnsearch.study import run_study, study_lock

    folder = Path(args.folder)
    files = sorted(folder.glob("*.toml")) if folder.is_dir() else []
    if not files:
        raise UsageError(f"no study files (*.toml) in {folder}; give a folder such as studies/.")
    codes: list[int] = []
    for path in files:
        started = time.monotonic()
        ns = argparse.Namespace(study_file=str(path), quiet=True)
        for key in ("storage", "tracking_uri"):
            if getattr(args, key):
                setattr(ns, key, getattr(args, key))
        try:
            config = _config_from_args(ns)
            with study_lock(config):
                outcome = run_study(config)
        except BnsearchError as error:
            codes.append(error.exit_code)
            print(f"sweep: {path.name}: error (exit {error.exit_code}): {error}", flush=True)
            continue
        verdict = outcome.verdict
        print(
            f"sweep: {path.name}: study {outcome.study_name!r}, "
            f"+{len(outcome.new_results)} trials ({len(outcome.all_results)} in total) in "
            f"{time.monotonic() - started:.0f} s; verdict {verdict.outcome}: {verdict.statement}",
            flush=True,
        )
        codes.append(0)
    for code in (2, 3, 1):
        if code in codes:
            return code
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    from bnsearch.interrupts import install_handlers

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # SIGTERM (systemd stop, kill) takes the Ctrl-C path: trials in flight end as failed.
    install_handlers()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except BnsearchError as error:
        if args.debug:
            raise
        print(f"bnsearch: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("bnsearch: interrupted; trials in flight were marked failed.", file=sys.stderr)
        return 130

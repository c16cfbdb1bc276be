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
    from bnsearch.config import DEFAULT_N_TRIALS, DEFAULT_POPULATION, PRUNERS, SAMPLERS
    from bnsearch.engines import ENGINES
    from bnsearch.model import ACTIVATIONS, INITIALIZERS
    from bnsearch.space import PLACEMENTS

    opt = parser.add_argument_group("study (flags follow Optuna's CLI where they overlap)")
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
    opt.add_argument("--seed", type=int, default=0, help="seed of the sampler and trials")
    opt.add_argument(
        "--backend",
        choices=("optuna", "keras-tuner"),
        default="optuna",
        help="optuna (default) or keras-tuner (uses the Keras engine; no paired verdict)",
    )
    opt.add_argument(
        "--tuner",
        choices=("random", "bayesian", "hyperband", "grid"),
        default="random",
        help="Keras Tuner's tuner with --backend keras-tuner (default random); hyperband runs "
        "one full Hyperband iteration and ignores --n-trials",
    )
    opt.add_argument("--sampler", choices=SAMPLERS, default="tpe", help="default tpe")
    opt.add_argument(
        "--pruner",
        choices=PRUNERS,
        default="none",
        help="default none: a pruned trial breaks its paired block; median and hyperband "
        "prune on per-epoch validation loss",
    )
    verdict = parser.add_argument_group("verdict")
    verdict.add_argument(
        "--metric",
        choices=("val_loss", "val_accuracy"),
        default="val_loss",
        help="metric compared between placements (final epoch); default val_loss",
    )
    verdict.add_argument(
        "--threshold",
        type=float,
        default=0.01,
        help="smallest difference that matters in practice (default 0.01)",
    )
    verdict.add_argument(
        "--confirm-seeds",
        type=_positive_int,
        default=5,
        help="fresh seeds to re-train each placement's best configuration with (default 5)",
    )
    opt.add_argument(
        "--engine",
        choices=ENGINES,
        default="population",
        help="population (default: many trials in one vectorised graph) or keras "
        "(one model.fit per trial, the reference)",
    )
    opt.add_argument(
        "--population",
        type=_positive_int,
        default=DEFAULT_POPULATION,
        help=f"trials trained at once by the population engine (default {DEFAULT_POPULATION})",
    )
    opt.add_argument(
        "--heartbeat-interval",
        type=_positive_int,
        default=10,
        help="seconds between Optuna heartbeats of running trials (default 10)",
    )
    opt.add_argument(
        "--grace-period",
        type=_positive_int,
        default=60,
        help="a RUNNING trial without a heartbeat for this long is failed on the next run "
        "(default 60)",
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
    net.add_argument("--epochs", type=_positive_int, default=20, help="default 20")
    net.add_argument("--batch-size", type=_positive_int, default=16, help="default 16")
    net.add_argument("--validation-split", type=float, default=0.2, help="default 0.2")
    net.add_argument("--hidden-units", default="64,64", help="widths, default 64,64")
    net.add_argument("--activation", choices=ACTIVATIONS, default="tanh", help="default tanh")
    net.add_argument(
        "--initializer",
        choices=INITIALIZERS,
        default="glorot_uniform",
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
        help="run (or resume) a BN configuration study",
        description="Train the thread's network under BN configurations chosen by Optuna; "
        "log every trial to MLflow; print a table per placement.",
    )
    study.add_argument("--debug", **sub_debug)
    _add_study_flags(study)
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
    report.add_argument("--metric", choices=("val_loss", "val_accuracy"), default="val_loss")
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


def _config_from_args(args: argparse.Namespace):  # noqa: ANN202 - StudyConfig, imported late
    from bnsearch.config import StudyConfig
    from bnsearch.model import NetworkSettings
    from bnsearch.space import SearchSpace

    try:
        units = tuple(int(u) for u in args.hidden_units.split(","))
    except ValueError:
        raise UsageError(
            f"--hidden-units takes comma-separated widths such as 64,64, not {args.hidden_units!r}."
        ) from None
    overrides = {}
    if args.placements:
        overrides["placement"] = [p.strip() for p in args.placements.split(",") if p.strip()]
    return StudyConfig(
        study_name=args.study_name,
        data=args.data,
        target=args.target,
        standardize=args.standardize,
        n_trials=args.n_trials,
        timeout=args.timeout,
        seed=args.seed,
        storage=args.storage,
        tracking_uri=args.tracking_uri,
        engine=args.engine,
        backend=args.backend,
        tuner=args.tuner,
        population=args.population,
        sampler=args.sampler,
        pruner=args.pruner,
        metric=args.metric,
        threshold=args.threshold,
        confirm_seeds=args.confirm_seeds,
        space=SearchSpace.from_overrides(overrides),
        network=NetworkSettings(
            hidden_units=units,
            activation=args.activation,
            initializer=args.initializer,
            batch_size=args.batch_size,
            epochs=args.epochs,
            validation_split=args.validation_split,
        ),
        allow_changed_study=args.allow_changed_study,
        heartbeat_interval=args.heartbeat_interval,
        grace_period=args.grace_period,
        verbose=not args.quiet,
    )


def _run(args: argparse.Namespace) -> int:
    if args.command == "study":
        from bnsearch.study import run_study

        run_study(_config_from_args(args))
        return 0
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


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
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

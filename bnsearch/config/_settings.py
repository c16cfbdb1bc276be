"""Every setting of a study, declared once: its name, type, rule and help. The flags, the
study-file keys and their checks, StudyConfig's checks and the docs' table of settings
(docs/reference/cli.md) come from it; defaults are read from the dataclass holding each."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bnsearch.data import ACCEPTED, TASKS
from bnsearch.networks import ACTIVATIONS, FAMILIES, INITIALIZERS
from bnsearch.trial import (
    NON_NEGATIVE,
    NON_NEGATIVE_INT,
    PLACEMENTS,
    POSITIVE_INT,
    POSITIVE_SECONDS,
    VERDICT_METRICS,
    Rule,
    SearchSpace,
    check,
    one_of,
)

#: The local store (Optuna's and MLflow's files), relative to the folder a command runs in.
DEFAULT_STORE_DIR = Path("mlruns")
#: Where a study without ``--storage`` keeps its trials, and MLflow's store there.
DEFAULT_STORAGE = f"sqlite:///{DEFAULT_STORE_DIR / 'optuna.db'}"
LOCAL_TRACKING_URI = f"sqlite:///{DEFAULT_STORE_DIR / 'mlflow.db'}"
#: Smallest difference in the metric that counts as "placement matters".
DEFAULT_THRESHOLD = 0.01
#: The stopping rules and the questions a study run until settled waits for (``--until``,
#: ``--question``).
UNTIL = ("settled", "budget")
QUESTIONS = ("both", "bn", "placement")
#: The built-in engines, the first the default.
ENGINES = ("population", "keras")
#: Engines registered by :func:`bnsearch.engines.register_engine`: name → whether a study
#: on it imports TensorFlow.
REGISTERED_ENGINES: dict[str, bool] = {}
#: Trials added per run without --n-trials: each fits the default study's ~10 minutes on 2 CPUs.
DEFAULT_N_TRIALS = {"population": 256, "keras": 16}
#: Trials the population engine trains in one graph.
DEFAULT_POPULATION = 64


def needs_tensorflow(engine: str | None) -> bool:
    """Whether a study on ``engine`` (None: not said) imports TensorFlow."""
    return REGISTERED_ENGINES.get(engine or "", True)


def default_tracking_uri() -> str:
    """``$MLFLOW_TRACKING_URI``, else the SQLite file under the local store."""
    return os.environ.get("MLFLOW_TRACKING_URI") or LOCAL_TRACKING_URI


#: Tuners whose trials bnsearch pairs in blocks and trains on any engine (the others run
#: Keras Tuner's own search with model.fit).
PAIRED_TUNERS = ("random", "bayesian")


@dataclass(frozen=True)
class Setting:
    """One setting. ``section`` is ``study`` (a StudyConfig field), ``network`` (a
    NetworkSettings field, the study file's ``[network]`` table) or ``space`` (a flag that
    overrides the search space, the study file's ``[space]`` table)."""

    name: str
    types: tuple[type, ...]
    help: str
    section: str = "study"
    group: str = "study"
    choices: tuple[str, ...] = ()
    rule: Rule | None = None
    file_key: str | None = ""  # "" → the name; None → not a study-file key
    default_text: Callable[[], str] | None = None  # for defaults computed at run time
    more_choices: Callable[[], tuple[str, ...]] | None = None  # accepted, not listed

    @property
    def accepted(self) -> tuple[str, ...]:
        """Its choices (listed in ``--help`` and the docs), then those added at run time."""
        return self.choices + (self.more_choices() if self.more_choices else ())

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def key(self) -> str | None:
        return self.name if self.file_key == "" else self.file_key


_S = Setting


def _N(name: str, types: tuple[type, ...], help: str, **more: Any) -> Setting:
    return Setting(name, types, help, section="network", group="network", **more)


SETTINGS: tuple[Setting, ...] = (
    _S("study_name", (str,), "study name", file_key="name",
       default_text=lambda: "bnsearch-<dataset name>; a study file's name is its file name"),
    _S("storage", (str,), "Optuna storage URL. A study that exists there is resumed: trials "
       "are added, never started over", default_text=lambda: DEFAULT_STORAGE),
    _S("n_trials", (int,), "trials to add in this run", rule=NON_NEGATIVE_INT,
       default_text=lambda: ", ".join(
           f"{n} with the {e} engine" for e, n in DEFAULT_N_TRIALS.items())),
    _S("until", (str,), "settled: stop adding blocks as soon as the anytime-valid interval "
       "answers (placement matters, or no effect beyond the threshold), with --n-trials / "
       "target_trials as the cap; budget: train the whole budget and decide once",
       choices=UNTIL),
    _S("question", (str,), "what --until settled waits for: both (does BN help here, each BN "
       "placement against none; and before or after), bn (the first) or placement (the "
       "second); the verdict states both answers either way", group="verdict",
       choices=QUESTIONS),
    _S("timeout", (int, float), "stop starting new trials after this many seconds",
       rule=POSITIVE_SECONDS),
    _S("target_trials", (int,), "add search trials until the study holds this many (what "
       "sweeps and workers use); a study already there is 'up to date'", rule=NON_NEGATIVE_INT),
    _S("seed", (int,), "seed of the sampler and trials", rule=NON_NEGATIVE_INT),
    _S("backend", (str,), "what chooses the trials: Optuna's sampler or Keras Tuner's oracle",
       choices=("optuna", "keras-tuner")),
    _S("tuner", (str,), "Keras Tuner's tuner with --backend keras-tuner; random and bayesian "
       "run paired blocks on --engine; hyperband (one full iteration, ignores --n-trials) and "
       "grid run Keras Tuner's own search on the Keras engine, unpaired",
       choices=("random", "bayesian", "hyperband", "grid")),
    _S("sampler", (str,), "Optuna's sampler", choices=("tpe", "random", "grid", "qmc")),
    _S("pruner", (str,), "none keeps paired blocks whole; median and hyperband prune on "
       "per-epoch validation loss", choices=("none", "median", "hyperband")),
    _S("engine", (str,), "population (many trials in one vectorised graph: the built-in "
       "families and a --model of known layers) or keras (one model.fit per trial, the "
       "reference)", choices=ENGINES, more_choices=lambda: tuple(REGISTERED_ENGINES)),
    _S("population", (int,), "trials trained at once by the population engine",
       rule=POSITIVE_INT),
    _S("heartbeat_interval", (int,), "seconds between Optuna heartbeats of running trials",
       rule=POSITIVE_INT),
    _S("grace_period", (int,), "a RUNNING trial without a heartbeat for this long is failed "
       "(and retried) by the next run or worker; must exceed the heartbeat interval",
       rule=POSITIVE_INT),
    _S("allow_changed_study", (bool,), "add trials to an existing study even if its space, "
       "data or network changed"),
    _S("metric", (str,), "metric compared between placements (final epoch)", group="verdict",
       choices=VERDICT_METRICS),
    _S("threshold", (int, float), "smallest difference that matters in practice",
       group="verdict", rule=NON_NEGATIVE),
    _S("confirm_seeds", (int,), "fresh seeds to re-train each placement's best configuration "
       "with", group="verdict", rule=NON_NEGATIVE_INT),
    _S("keep_models", (bool,), "log each confirmation trial's trained model to its MLflow run "
       "(Keras flavor, loadable with mlflow.pyfunc.load_model)", group="verdict"),
    _S("data", (str,), f"synthetic, {ACCEPTED}, sklearn:NAME (breast_cancer, diabetes, "
       "digits, iris, wine) or openml:ID", group="data", default_text=lambda: "synthetic"),
    _S("target", (str,), "label column of a table file (CSV, TSV, Parquet, Feather)",
       group="data"),
    _S("standardize", (bool,), "scale features with training-row mean/std (off, as in the "
       "thread); a regression's target too, whose val_loss and val_mae are then in "
       "standardised units", group="data"),
    _S("shuffle", (bool,), "shuffle the rows with --seed before the validation split (off: "
       "the last rows validate, as Keras' validation_split takes them); for a file sorted by "
       "its target, which the study warns of", group="data"),
    _S("task", (str,), "classification, or regression (a real-valued target: a Dense(1) linear "
       "output, mean squared error as loss and val_loss, mean absolute error in place of "
       "accuracy); auto: regression when the target is a floating-point column with a "
       "fractional value or more than 20 distinct values, said in one line", group="data",
       choices=TASKS),
    _N("epochs", (int,), "training epochs per trial"),
    _N("batch_size", (int,), "training batch size"),
    _N("validation_split", (float, int), "share of rows (the last ones) held out for "
       "validation"),
    _N("hidden_units", (list, int), "widths of the hidden Dense layers, one per layer"),
    _N("activation", (str,), "activation of the hidden layers", choices=ACTIVATIONS),
    _N("initializer", (str,), "kernel initialiser; 'uniform' is the thread's ±0.05",
       choices=INITIALIZERS),
    _N("family", (str,), "network family; cnn: Conv2D blocks for image data such as sklearn:digits",
       choices=FAMILIES),
    _N("conv_filters", (list, int), "cnn: filters per Conv2D block"),
    _N("kernel_size", (int,), "cnn: Conv2D kernel size"),
    _N("builder", (str,), "your own network: module:function built with bnsearch.blocks "
       "(population engine when it places BN by the --model rule, else Keras)"),
    _N("model", (str,), "your own Keras model as it is: a .keras file, module:name or "
       "file.py:name (a model, or a function returning one), rewritten into each trial's "
       "placement (docs: Your model); see python -m bnsearch model"),
    _N("keep_optimizer", (bool,), "with --model: train with the model's own compiled "
       "optimizer at the trial's learning rate, not the thread's SGD"),
    _S("placements", (list,), f"placements to compare (from {', '.join(PLACEMENTS)})",
       section="space", group="network", file_key=None,
       default_text=lambda: ",".join(SearchSpace().placement)),
    _S("activations", (list,), "search the activation too (e.g. tanh,relu); the verdict is "
       "then also given per activation", section="space", group="network", file_key=None,
       default_text=lambda: "not searched"),
    _S("tracking_uri", (str,), "MLflow tracking URI", group="tracking",
       default_text=lambda: f"$MLFLOW_TRACKING_URI or {LOCAL_TRACKING_URI}"),
)  # fmt: skip


def check_settings(holder: object, section: str) -> None:
    """Apply the table's choices and range rules to ``holder``'s settings of ``section``."""
    for item in (item for item in SETTINGS if item.section == section):
        for rule in (one_of(item.accepted) if item.choices else None, item.rule):
            if rule is not None:
                check(holder, {item.name: rule})

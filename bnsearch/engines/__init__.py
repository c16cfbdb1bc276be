"""Engines decide *how* a batch of trials is trained; backends decide what to train."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from bnsearch.config import ENGINES, REGISTERED_ENGINES, StudyConfig
from bnsearch.data import Dataset
from bnsearch.engines._base import Engine, EpochCallback, TrainOutput
from bnsearch.engines._keras import KerasEngine, fit_arguments
from bnsearch.engines._population import PopulationEngine, SlotUse
from bnsearch.errors import ConfigError, name_list
from bnsearch.networks import NetworkSettings, describe_network, load_plan
from bnsearch.trial import SearchSpace

if TYPE_CHECKING:
    from bnsearch.engines._population._population import Population

__all__ = [
    "ENGINES",
    "Engine",
    "EngineClass",
    "EpochCallback",
    "KerasEngine",
    "Population",
    "PopulationEngine",
    "SlotUse",
    "TrainOutput",
    "engine_for",
    "engine_notice",
    "fit_arguments",
    "make_engine",
    "network_notice",
    "register_engine",
    "resolve",
]


def __getattr__(name: str) -> Any:
    if name == "Population":  # it imports TensorFlow: only when asked for
        from bnsearch.engines._population._population import Population

        return Population
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class EngineClass(Protocol):
    """What :func:`register_engine` takes: a class of the :class:`Engine` protocol, made
    with one argument, the most trials one ``train`` call takes (``--population``)."""

    def __call__(self, max_population: int, /) -> Engine: ...

    def trains(
        self,
        network: NetworkSettings,
        dataset: Dataset | None = None,
        space: SearchSpace | None = None,
    ) -> bool: ...


_REGISTERED: dict[str, EngineClass] = {}
_BUILT_IN: dict[str, type[Engine]] = {"population": PopulationEngine, "keras": KerasEngine}
assert tuple(_BUILT_IN) == ENGINES, "config.ENGINES names the engines defined here"


def register_engine(name: str, engine: EngineClass, *, tensorflow: bool = True) -> None:
    """Add the engine ``name`` for this process: ``--engine NAME`` and a study file's
    ``engine = "NAME"`` then pick it (the docs list the built-in engines only).

    Args:
        name: what a study names it; not a built-in engine's name. Registering a name again
            replaces the engine.
        engine: the class of the :class:`Engine` protocol (``name``, ``trials_at_once``,
            ``trains``, ``check_fits``, ``train``); a study makes one with
            ``engine(population)``. A network its ``trains`` refuses trains on the Keras
            engine, as with the population engine.
        tensorflow: False if the engine never needs TensorFlow: a study on it then does not
            import it (a stand-in engine that only sleeps starts in a second).

    Call it before the study runs, in the process that runs it; for the command line, in a
    launcher of your own: ``register_engine("mine", MyEngine); sys.exit(bnsearch.cli.main())``.
    """
    if name in ENGINES:
        raise ValueError(f"{name!r} is a built-in engine; register yours under another name.")
    _REGISTERED[name] = engine
    REGISTERED_ENGINES[name] = tensorflow


def engine_for(
    requested: str,
    network: NetworkSettings,
    model_fit_only: bool = False,
    dataset: Dataset | None = None,
    space: SearchSpace | None = None,
) -> str:
    """The engine that will train ``network`` (on ``dataset``, for ``space``): the one asked
    for if it can, else the Keras engine. ``model_fit_only``: the backend trains through
    ``model.fit`` itself (Keras Tuner)."""
    engine = _BUILT_IN.get(requested) or _REGISTERED.get(requested)
    if engine is None or model_fit_only or not engine.trains(network, dataset, space):
        return "keras" if engine is not None else requested
    return requested


def engine_notice(
    network: NetworkSettings, dataset: Dataset | None = None, space: SearchSpace | None = None
) -> str | None:
    """What a study says, before training, about its network and task (one line each)."""
    lines = [dataset.task_note] if dataset is not None and dataset.task_note else []
    if network.kind == "model":
        plan = load_plan(network.model or "")
        kept_bns = [n.name for n in plan.nodes if n.role == "kept_bn"]
        if kept_bns:
            lines.append(
                f"bnsearch: notice: --model {plan.spec} has {len(kept_bns)} BatchNormalization "
                f"layers at no site ({name_list(kept_bns)}): kept in every placement, "
                "removed in none."
            )
        if plan.kept:
            lines.append(
                f"bnsearch: notice: --model {plan.spec} keeps these layers as they are "
                f"(bnsearch does not reason about them): {', '.join(plan.kept)}."
            )
    why = PopulationEngine.untrainable(network, dataset, space)
    if why is not None:
        lines.append(
            f"bnsearch: notice: the population engine has no form for {why}, so this "
            "network trains on the Keras engine (one model.fit per trial)."
        )
    return "\n".join(lines) or None


def network_notice(tracker: Any, config: StudyConfig, dataset: Dataset) -> str | None:
    """:func:`engine_notice`, once a ``--model`` network's rewritten layers of each placement
    are logged to the parent run as ``model.txt`` (best effort, as the trial runs are)."""
    if config.network.kind == "model":
        text = describe_network(
            config.network, config.space.placement, dataset.x.shape[1:], dataset.n_classes
        )
        tracker.best_effort("log_text", tracker.parent_run_id, text + "\n", "model.txt")
    return engine_notice(config.network, dataset, config.space)


def resolve(config: StudyConfig, dataset: Dataset | None = None) -> StudyConfig:
    """``config`` with the engine that will train it on ``dataset`` (:func:`engine_for`)."""
    engine = engine_for(config.engine, config.network, config.fit_only, dataset, config.space)
    return config.with_changes(engine=engine)


def make_engine(name: str, max_population: int = 64, population_size: int | None = None) -> Engine:
    """The engine ``name``; ``population_size`` fixes the population engine's graph size."""
    if name == "keras":
        return KerasEngine()
    if name == "population":
        return PopulationEngine(max_population=max_population, population_size=population_size)
    if name in _REGISTERED:
        return _REGISTERED[name](max_population)
    known = ", ".join((*ENGINES, *_REGISTERED))
    raise ConfigError(f"unknown engine {name!r}; choose one of {known}.")

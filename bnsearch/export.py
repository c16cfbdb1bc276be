"""``python -m bnsearch export``: each placement's best search configuration re-trained on
the Keras engine and logged as an MLflow model (docs/guides/review-replay-export.md)."""

from __future__ import annotations

from dataclasses import dataclass

from bnsearch.backends import read_study
from bnsearch.config import StudyConfig
from bnsearch.engines import KerasEngine
from bnsearch.errors import ConfigError
from bnsearch.stats import best_per_placement, loss_text
from bnsearch.study import load_study_dataset
from bnsearch.tracking import MlflowTracker, run_name
from bnsearch.trial import TrialState, keys


@dataclass(frozen=True)
class Exported:
    placement: str
    trial: int
    model_uri: str
    run_id: str
    val_loss: float | None  # of the re-trained model, final epoch


def export_best(
    config: StudyConfig,
    placement: str | None = None,
    register_as: str | None = None,
) -> list[Exported]:
    """Re-train and log the best configuration of each placement (or ``placement``)."""
    every = best_per_placement(read_study(config).stored_trials().results)
    best = [r for r in every if placement is None or r.config.placement == placement]
    if not best:
        have = ", ".join(sorted(r.config.placement for r in every)) or "none"
        which = f" with placement {placement!r}" if placement else ""
        raise ConfigError(
            f"study {config.resolved_study_name!r} has no completed search trial{which} "
            f"(placements with one: {have}); run the study first or pick another --placement."
        )
    dataset = load_study_dataset(config)
    tracker = MlflowTracker(config.resolved_tracking_uri, config.resolved_study_name)
    exported = []
    for original in best:
        spec = original.spec
        trained = KerasEngine().train([spec], dataset, config.network, keep_models=True)
        (result,), (model,) = trained.results, trained.models
        if result.state is not TrialState.COMPLETE or model is None:
            raise ConfigError(
                f"re-training trial {spec.number} ({spec.config.placement}) failed "
                f"({result.fail_reason}); nothing was exported for it."
            )
        run_id = tracker.start_study_run(
            run_name=run_name("export", spec),
            params={**spec.config.as_params(), "seed": spec.seed},
            tags={keys.KIND: "export", keys.EXPORTS_TRIAL: str(spec.number)},
        )
        with tracker.study_run_guard():
            final = result.final("val_loss")  # logged with the model: linked to it
            uri = tracker.log_keras_model(
                run_id, model, dataset.x, register_as, metrics={"final_val_loss": final}
            )
            tracker.end_study_run()
        exported.append(Exported(spec.config.placement, spec.number, uri, run_id, final))
        shown = loss_text(final) if final is not None else "n/a"
        print(
            f"bnsearch: exported the best {spec.config.placement} configuration (trial "
            f"{spec.number}, val_loss {shown} re-trained) as {uri}",
            flush=True,
        )
    return exported

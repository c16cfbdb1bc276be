"""The reference engine: one ``keras.Model.fit`` per trial, networks from :mod:`bnsearch.model`."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

from bnsearch.data import Dataset
from bnsearch.engines._base import EpochCallback
from bnsearch.model import NetworkSettings, build_model
from bnsearch.results import METRICS, TrialResult, TrialSpec, TrialState

__all__ = ["KerasEngine"]


def _epoch_callback(index: int, on_epoch: EpochCallback | None, outcome: dict[str, Any]) -> Any:
    import keras

    class _Reporter(keras.callbacks.Callback):
        """Collects per-epoch metrics, stops on NaN/inf and asks the backend about pruning."""

        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            logs = {m: float((logs or {}).get(m, math.nan)) for m in METRICS}
            for metric in METRICS:
                outcome["history"][metric].append(logs[metric])
            bad = [m for m in ("loss", "val_loss") if not math.isfinite(logs[m])]
            if bad:
                outcome["state"] = TrialState.FAILED
                outcome["reason"] = f"{bad[0]} became {logs[bad[0]]} at epoch {epoch}"
                self.model.stop_training = True
            elif on_epoch is not None and on_epoch(index, epoch, logs):
                outcome["state"] = TrialState.PRUNED
                outcome["reason"] = f"pruned after epoch {epoch}"
                self.model.stop_training = True

        def on_train_batch_end(self, batch: int, logs: dict[str, float] | None = None) -> None:
            # A diverged batch poisons every later one; stop at once instead of at epoch end.
            loss = (logs or {}).get("loss")
            if loss is not None and not math.isfinite(float(loss)):
                outcome["state"] = TrialState.FAILED
                outcome["reason"] = f"loss became {float(loss)} during training"
                self.model.stop_training = True

    return _Reporter()


class KerasEngine:
    """Trains trials one after another with ``model.fit``; the numerical reference.

    A trial that raises or diverges becomes a FAILED result with the reason; the batch goes on.
    """

    name = "keras"

    def __init__(self, verbose: int = 0) -> None:
        self.verbose = verbose

    def train(
        self,
        specs: Sequence[TrialSpec],
        dataset: Dataset,
        network: NetworkSettings,
        on_epoch: EpochCallback | None = None,
    ) -> list[TrialResult]:
        x_train, y_train, x_val, y_val = dataset.split(network.validation_split)
        return [
            self._train_one(i, spec, dataset, network, (x_train, y_train, x_val, y_val), on_epoch)
            for i, spec in enumerate(specs)
        ]

    def _train_one(
        self,
        index: int,
        spec: TrialSpec,
        dataset: Dataset,
        network: NetworkSettings,
        arrays: tuple[Any, ...],
        on_epoch: EpochCallback | None,
    ) -> TrialResult:
        import keras

        x_train, y_train, x_val, y_val = arrays
        outcome: dict[str, Any] = {
            "history": {m: [] for m in METRICS},
            "state": TrialState.COMPLETE,
            "reason": None,
        }
        started = time.perf_counter()
        try:
            keras.backend.clear_session()
            keras.utils.set_random_seed(spec.seed)
            model = build_model(
                spec.config, dataset.x.shape[1:], dataset.n_classes, network, seed=spec.seed
            )
            model.fit(
                x_train,
                y_train,
                batch_size=network.batch_size,
                epochs=network.epochs,
                validation_data=(x_val, y_val),
                shuffle=True,
                verbose=self.verbose,
                callbacks=[_epoch_callback(index, on_epoch, outcome)],
            )
        except Exception as error:  # noqa: BLE001 - a trial's failure is data, not a crash
            outcome["state"] = TrialState.FAILED
            outcome["reason"] = f"{type(error).__name__}: {error}".splitlines()[0][:500]
        return TrialResult(
            spec=spec,
            state=outcome["state"],
            history=outcome["history"],
            fail_reason=outcome["reason"],
            wall_time_s=time.perf_counter() - started,
            engine=self.name,
        )

"""The reference engine: one ``keras.Model.fit`` per trial, networks from
:func:`bnsearch.networks.build_model`."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from bnsearch.data import Dataset
from bnsearch.engines._base import EpochCallback, TrainOutput
from bnsearch.networks import NetworkSettings, build_model, check_model_fits, load_plan
from bnsearch.trial import SearchSpace, TrialRecorder, TrialSpec


def model_fits_data(dataset: Dataset, network: NetworkSettings) -> None:
    """Refuse, in one line, a ``--model`` whose input or output does not suit ``dataset``."""
    if network.kind == "model":
        check_model_fits(load_plan(network.model or ""), dataset.x.shape[1:], dataset.n_classes)


def fit_arguments(arrays: tuple[Any, ...], network: NetworkSettings) -> dict[str, Any]:
    """``model.fit``'s arguments (the Keras engine's and Keras Tuner's ``search``);
    ``arrays`` is ``Dataset.split``'s four arrays."""
    x_train, y_train, x_val, y_val = arrays
    return {
        "x": x_train,
        "y": y_train,
        "batch_size": network.batch_size,
        "epochs": network.epochs,
        "validation_data": (x_val, y_val),
        "shuffle": True,
        "verbose": 0,
    }


def recording_callback(recorder: TrialRecorder) -> Any:
    """A Keras callback that feeds a :class:`TrialRecorder` and stops training when it says so."""
    import keras

    class _Recording(keras.callbacks.Callback):
        epoch = 0

        def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            self.epoch = epoch

        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            if recorder.record_epoch(epoch, logs or {}):
                self.model.stop_training = True

        def on_train_batch_end(self, batch: int, logs: dict[str, float] | None = None) -> None:
            loss = (logs or {}).get("loss")
            if loss is not None and recorder.record_batch_loss(self.epoch, float(loss)):
                self.model.stop_training = True

    return _Recording()


class KerasEngine:
    """Trains trials one after another with ``model.fit``; the numerical reference. A trial
    that raises or diverges becomes a FAILED result with the reason; the batch goes on."""

    name = "keras"
    trials_at_once = 1

    def check_fits(self, dataset: Dataset, network: NetworkSettings) -> str | None:
        """Refuse a ``--model`` that does not suit the data (no memory to check)."""
        model_fits_data(dataset, network)
        return None

    @staticmethod
    def trains(
        network: NetworkSettings, dataset: Dataset | None = None, space: SearchSpace | None = None
    ) -> bool:
        """Every network bnsearch can build, your own ``builder`` included."""
        return True

    def train(
        self,
        specs: Sequence[TrialSpec],
        dataset: Dataset,
        network: NetworkSettings,
        on_epoch: EpochCallback | None = None,
        keep_models: bool = False,
    ) -> TrainOutput:
        import keras

        arrays = dataset.split(network.validation_split)
        output = TrainOutput([], [])
        for index, spec in enumerate(specs):
            prune = None if on_epoch is None else functools.partial(on_epoch, index)
            recorder = TrialRecorder(spec, self.name, prune)
            model = None  # the last trial's model goes before this one is built
            try:
                keras.backend.clear_session()
                keras.utils.set_random_seed(spec.seed)
                model = build_model(
                    spec.config, dataset.x.shape[1:], dataset.n_classes, network, seed=spec.seed
                )
                model.fit(
                    **fit_arguments(arrays, network),
                    callbacks=[recording_callback(recorder)],
                )
            except Exception as error:  # noqa: BLE001 - a trial's failure is data, not a crash
                recorder.fail_with(error)
            output.results.append(recorder.result())
            if keep_models:
                output.models.append(model)
        return output

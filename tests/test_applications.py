"""The architectures people use, read by the rewrite rule: keras.applications built with
``weights=None`` (nothing downloaded) at 32x32x3, 10 classes."""

from __future__ import annotations

import pytest

import bnsearch
from bnsearch.networks import plan_of_model

pytestmark = pytest.mark.slow

CORES = ("Dense", "Conv2D", "DepthwiseConv2D", "SeparableConv2D")
NON_LINEAR = ("Activation", "ReLU", "ELU", "LeakyReLU")


def _application(name: str):
    import keras

    return getattr(keras.applications, name)(weights=None, input_shape=(32, 32, 3), classes=10)


@pytest.fixture(scope="module")
def saved_application(tmp_path_factory):
    """``saved_application(name, folder)``: the application saved as ``folder/app.keras``,
    built and saved once a module (the file is only read, so the tests can share it)."""
    import shutil

    saved: dict = {}

    def copy_to(name: str, folder):
        if name not in saved:
            saved[name] = tmp_path_factory.mktemp(name) / f"{name}.keras"
            _application(name).save(saved[name])
        return shutil.copyfile(saved[name], folder / "app.keras")

    return copy_to


def _consumers(model):
    """Each layer's consumers, read from Keras' own graph (not bnsearch's tracing: read
    before bnsearch calls the layers on inputs of its own)."""
    found: dict[str, list] = {layer.name: [] for layer in model.layers}
    for layer in model.layers:
        for node in layer._inbound_nodes:
            for tensor in node.input_tensors:
                found.setdefault(tensor._keras_history.operation.name, []).append(layer)
    return found


def _expected_sites(model) -> set[str]:
    """Every core whose output goes through a non-linearity (fused, or an activation layer
    as its only consumer, possibly through one BN), unless that non-linearity is a sigmoid
    gate into a Multiply or it feeds only such a gate (squeeze-and-excitation)."""
    consumers = _consumers(model)

    def activation_after(layer):
        fused = layer.get_config().get("activation", "linear")
        if fused not in (None, "linear"):
            return fused, layer
        nxt = consumers[layer.name]
        if len(nxt) == 1 and type(nxt[0]).__name__ == "BatchNormalization":
            nxt = consumers[nxt[0].name]
        if len(nxt) == 1 and type(nxt[0]).__name__ in NON_LINEAR:
            config = nxt[0].get_config()
            return str(config.get("activation", type(nxt[0]).__name__.lower())), nxt[0]
        return None, None

    def gate(layer):
        activation, end = activation_after(layer)
        users = consumers[end.name] if end is not None else []
        return (
            activation == "sigmoid" and users and all(type(u).__name__ == "Multiply" for u in users)
        )

    sites = set()
    for layer in model.layers[:-1]:
        if type(layer).__name__ not in CORES:
            continue
        activation, end = activation_after(layer)
        if activation is None or gate(layer):
            continue
        users = consumers[end.name]
        if users and all(type(u).__name__ in CORES and gate(u) for u in users):
            continue  # squeeze-and-excitation's reducing conv feeds the gate only
        sites.add(layer.name)
    return sites


@pytest.mark.parametrize("name", ["MobileNetV2", "ResNet50V2", "DenseNet121", "EfficientNetB0"])
def test_the_applications_are_read_by_the_rule(name):
    model = _application(name)
    expected = _expected_sites(model)
    plan = plan_of_model(name, model)
    sites = set(plan.site_names)

    assert sites == expected
    assert not {s for s in sites if "_se_" in s}, "a squeeze-and-excitation conv is no site"
    if name in ("MobileNetV2", "EfficientNetB0"):
        assert any(plan.nodes[i].cls == "DepthwiseConv2D" for i in plan.sites)
    if name in ("ResNet50V2", "DenseNet121"):  # BN → ReLU → conv: placed per trial
        assert plan.preacts, "the pre-activation pattern is a site"

    kinds = {
        placement: [
            type(layer)
            for layer in bnsearch.rewrite(model, bnsearch.BNConfig(placement=placement)).layers
        ]
        for placement in ("none", "before", "after")
    }
    bn_count = {p: sum(k.__name__ == "BatchNormalization" for k in v) for p, v in kinds.items()}
    kept = sum(node.role == "kept_bn" for node in plan.nodes)
    assert bn_count["none"] == 0
    assert bn_count["before"] == bn_count["after"] == len(sites) + len(plan.preacts) + kept


def test_without_bn_every_linear_layer_has_its_bias_back():
    model = _application("MobileNetV2")
    assert any(not getattr(layer, "use_bias", True) for layer in model.layers)

    none = bnsearch.rewrite(model, bnsearch.BNConfig(placement="none"))
    before = bnsearch.rewrite(model, bnsearch.BNConfig(placement="before", use_bias=False))

    cores = [layer for layer in none.layers if type(layer).__name__ in CORES]
    assert cores and all(layer.use_bias for layer in cores)
    biased = {
        layer.name: layer.use_bias for layer in before.layers if type(layer).__name__ in CORES
    }
    followed = _followed_by_bn(before)
    assert all(biased[name] == (name not in followed) for name in biased)


def _followed_by_bn(model) -> set[str]:
    consumers = _consumers(model)
    return {
        name
        for name, users in consumers.items()
        if len(users) == 1 and type(users[0]).__name__ == "BatchNormalization"
    }


@pytest.mark.parametrize("name", ["MobileNetV2", "ResNet50V2", "DenseNet121", "EfficientNetB0"])
def test_every_layer_of_the_applications_has_a_population_form(name, tmp_path, saved_application):
    from bnsearch.engines import engine_for

    path = saved_application(name, tmp_path)
    network = bnsearch.NetworkSettings(model=str(path))
    assert engine_for("population", network) == "population"


@pytest.mark.parametrize("name", ["MobileNetV2", "ResNet50V2"])
def test_a_short_study_of_an_application_trains_on_the_population_engine(
    name, tmp_path, cli, saved_application
):
    _images(tmp_path, rows=_FEW_ROWS)
    saved_application(name, tmp_path)

    result = cli(
        "study", "--model", "app.keras", "--data", "images.npz", "--epochs", "1",
        "--n-trials", "3", "--confirm-seeds", "0", "--until", "budget", "--quiet",
        "--study-name", "app", cwd=tmp_path,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr[-3000:]
    import optuna

    from bnsearch.backends.optuna import results_from_study

    study = optuna.load_study(study_name="app", storage=f"sqlite:///{tmp_path}/mlruns/optuna.db")
    results = results_from_study(study)
    assert len(results) == 3 and {r.state for r in results} == {bnsearch.TrialState.COMPLETE}
    assert {r.engine for r in results} == {"population"}


def test_a_population_too_large_for_the_memory_limit_is_halved_and_one_that_never_fits_refused():
    from bnsearch.engines import PopulationEngine
    from bnsearch.errors import ConfigError

    data = bnsearch.load_dataset(n_rows=400)
    network = bnsearch.NetworkSettings(hidden_units=(64, 64))
    roomy = PopulationEngine(max_population=64)
    assert roomy.check_fits(data, network) is None and roomy.max_population == 64

    engine = PopulationEngine(max_population=64, memory_limit_bytes=4 * 2**20)  # 4 MiB
    said = engine.check_fits(data, network)
    assert said is not None and said.startswith("bnsearch: notice: a population of 64 ")
    assert 1 <= engine.max_population < 64 and f"trains {engine.max_population} trials" in said

    with pytest.raises(ConfigError, match="--engine keras"):
        PopulationEngine(memory_limit_bytes=2**10).check_fits(data, network)  # 1 KiB


#: Rows for a study of an application: 16 to train on (one full batch, no partial last
#: batch to compile a second graph for) and 4 to validate on.
_FEW_ROWS = 20


def _images(folder, rows: int = 40):
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, 32, 32, 3)).astype("float32")
    np.savez(folder / "images.npz", X=x, y=np.arange(rows) % 10)
    return bnsearch.load_dataset(str(folder / "images.npz"))


def test_a_network_of_dozens_of_convolutions_is_built_without_xla_32_trials_at_a_time(
    tmp_path,
):
    from bnsearch.engines import PopulationEngine
    from bnsearch.networks import network_graph

    model = _application("MobileNetV2")
    model.save(tmp_path / "app.keras")
    convolutions = sum(type(layer).__name__.endswith("Conv2D") for layer in model.layers)
    network = bnsearch.NetworkSettings(model=str(tmp_path / "app.keras"))
    engine = PopulationEngine(max_population=64)
    said = engine.check_fits(_images(tmp_path), network)

    assert not engine.xla_for(network_graph(network))
    assert engine.max_population == 32
    assert said == (
        f"bnsearch: notice: this network has {convolutions} convolutions, so the population "
        "engine builds it without XLA and trains 32 trials at a time."
    )
    import keras

    layers = keras.layers
    small = keras.Sequential([keras.Input((32, 32, 3)), layers.Conv2D(8, 3, activation="relu")])
    small.add(layers.Conv2D(8, 3, activation="relu"))
    small.add(layers.GlobalAveragePooling2D())
    small.add(layers.Dense(10, activation="softmax"))
    small.save(tmp_path / "small.keras")
    small_network = bnsearch.NetworkSettings(model=str(tmp_path / "small.keras"))
    assert PopulationEngine().xla_for(network_graph(small_network))


def test_vgg16_at_a_population_of_three_trains_on_the_population_engine(tmp_path, cli):
    _images(tmp_path, rows=_FEW_ROWS)
    _application("VGG16").save(tmp_path / "app.keras")

    result = cli(
        "study", "--model", "app.keras", "--data", "images.npz", "--epochs", "1",
        "--population", "3", "--n-trials", "3", "--confirm-seeds", "0", "--until", "budget",
        "--quiet", "--study-name", "vgg", cwd=tmp_path,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr[-3000:]
    import optuna

    from bnsearch.backends.optuna import results_from_study

    study = optuna.load_study(study_name="vgg", storage=f"sqlite:///{tmp_path}/mlruns/optuna.db")
    results = results_from_study(study)
    assert len(results) == 3 and {r.engine for r in results} == {"population"}

"""`python -m bnsearch model`: a summary a person reads at a glance, however large the model
(a DenseNet121 of 429 layers here), naming the engine that will train it; every layer of
each placement with `--full`."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def densenet(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """DenseNet121 as keras.applications builds it (no weights downloaded), saved as .keras;
    and how many BatchNormalization layers it holds."""
    import keras

    model = keras.applications.DenseNet121(weights=None, input_shape=(32, 32, 3), classes=10)
    path = tmp_path_factory.mktemp("densenet") / "densenet121.keras"
    model.save(path)
    bns = sum(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers)
    assert len(model.layers) >= 400
    return path, bns


def test_a_400_layer_model_is_summarized_in_at_most_40_short_lines(densenet, tmp_path, cli):
    path, bns = densenet

    shown = cli("model", "--show", str(path), cwd=tmp_path)

    assert shown.returncode == 0, shown.stderr[-2000:]
    lines = shown.stdout.splitlines()
    assert len(lines) <= 40, shown.stdout
    assert all(len(line) <= 100 and line.isascii() for line in lines), shown.stdout
    assert f"BatchNormalization in the file: {bns};" in shown.stdout
    # Every layer of it has a form: the engine that will train the model said.
    assert "no population-engine form (" not in shown.stdout
    assert "engine: population" in lines
    per_placement = next(line for line in lines if line.startswith("BatchNormalization layers"))
    assert "none 0, " in per_placement and "before " in per_placement and "after " in per_placement
    for placement in ("none", "before", "after"):  # the layer lists are --full's alone
        assert f"placement {placement}:" not in shown.stdout


def test_full_lists_every_layer_of_each_placement(densenet, tmp_path, cli):
    path, bns = densenet

    full = cli("model", "--show", str(path), "--full", cwd=tmp_path)

    assert full.returncode == 0, full.stderr[-2000:]
    # 427 layers with BN (before, after), 306 without (none).
    assert len(full.stdout.splitlines()) > 2 * 400 + 300
    for placement in ("none", "before", "after"):
        assert f"placement {placement}:" in full.stdout  # (the summary has none of them)
    # Every BatchNormalization of the file is named once: placed per trial (at a site, or
    # before/after a pre-activation's activation) or kept where it is.
    named = []
    for line in full.stdout.splitlines():
        for head in ("BatchNormalization removed and placed per trial: ",
                     "BatchNormalization kept where it is (no site): "):  # fmt: skip
            if line.startswith(head):
                named += line.removeprefix(head).split(", ")
    assert len(named) == len(set(named)) == bns


def test_a_model_of_known_layers_says_the_population_engine_trains_it(tmp_path, cli):
    import keras

    inputs = keras.Input(shape=(14,))
    # Named: Keras' default names count the layers made before in the process.
    x = keras.layers.Dense(8, activation="tanh", name="dense")(inputs)
    x = keras.layers.Dense(8, name="dense_1")(x)
    x = keras.layers.Activation("relu", name="relu")(x)
    outputs = keras.layers.Dense(2, activation="softmax", name="out")(x)
    path = tmp_path / "mlp.keras"
    keras.Model(inputs, outputs).save(path)

    shown = cli("model", "--show", str(path), cwd=tmp_path)

    assert shown.returncode == 0, shown.stderr[-2000:]
    assert "sites (2): dense and dense_1" in shown.stdout
    assert "engine: population" in shown.stdout.splitlines()
    assert "BatchNormalization layers per placement: none 0, before 2, after 2" in shown.stdout
    assert "no population-engine form" not in shown.stdout


def test_a_model_named_by_a_python_file_and_a_function_is_shown_and_bad_ones_refused(tmp_path, cli):
    """``--model file.py:name``: the file is run as a script and ``name()`` builds the model;
    a missing file, a missing name and a file that fails are each refused in one line."""
    (tmp_path / "mine.py").write_text(
        "import keras\n\n\n"
        "def build():\n"
        "    inputs = keras.Input(shape=(14,))\n"
        "    x = keras.layers.Dense(8, activation='tanh', name='hidden')(inputs)\n"
        "    return keras.Model(inputs, keras.layers.Dense(2, activation='softmax')(x))\n"
    )
    (tmp_path / "broken.py").write_text("raise RuntimeError('no model today')\n")

    shown = cli("model", "--show", "mine.py:build", cwd=tmp_path)

    assert shown.returncode == 0, shown.stderr[-2000:]
    assert "sites (1): hidden" in shown.stdout
    refusals = {
        "absent.py:build": "--model absent.py:build: absent.py does not exist; check the path.",
        "mine.py:nothing": "mine.py has no 'nothing' (--model mine.py:nothing).",
        "broken.py:build": "--model broken.py:build: importing broken.py failed "
        "(RuntimeError: no model today).",
    }
    for spec, line in refusals.items():
        refused = cli("model", "--show", spec, cwd=tmp_path)
        assert refused.returncode != 0
        assert line in refused.stderr, refused.stderr

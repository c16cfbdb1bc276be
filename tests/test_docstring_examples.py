"""Every example in the public API's docstrings runs and says what it shows."""

from __future__ import annotations

import doctest

import pytest

import bnsearch

#: The functions a person calls first: each must carry an example.
_WITH_EXAMPLES = (
    "suggest", "suggest_keras_tuner", "build_model", "load_dataset", "run_study", "rewrite",
    "paired_objective", "verdict", "paired_oracle_class", "MlflowCallback",
)  # fmt: skip
#: The classes a person builds, and the errors they catch: each shows how, in an example.
_CLASSES_WITH_EXAMPLES = (
    "BNConfig",
    "SearchSpace",
    "NetworkSettings",
    "Dataset",
    "StudyConfig",
    "TrialSpec",
    "TrialResult",
    "BnsearchError",
    "ConfigError",
    "DataError",
)


@pytest.mark.trains
@pytest.mark.parametrize("name", bnsearch.__all__)
def test_the_docstring_examples_of_the_public_api_run(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # an example that writes (run_study) writes here
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    finder = doctest.DocTestFinder(recurse=False)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for test in finder.find(getattr(bnsearch, name), name, globs={}):
        runner.run(test)
    results = runner.summarize(verbose=False)
    assert results.failed == 0, f"{name}: {results.failed} of its examples failed"
    if name in _WITH_EXAMPLES + _CLASSES_WITH_EXAMPLES:
        assert results.attempted > 0, f"{name} has no example"


def test_every_public_name_is_listed_by_dir_even_those_imported_on_first_use():
    # run_study and MlflowCallback are imported on first use (``import bnsearch`` stays
    # light); a shell's or notebook's completion reads dir() and must offer them too.
    assert set(bnsearch.__all__) <= set(dir(bnsearch))

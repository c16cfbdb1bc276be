from __future__ import annotations

from pathlib import Path

import pytest

from bnsearch.cli import build_parser, config_from_args
from bnsearch.config import load_study_file
from bnsearch.engines import resolve
from bnsearch.errors import ConfigError

STUDIES = Path(__file__).resolve().parent.parent / "studies"


@pytest.mark.parametrize("path", sorted(STUDIES.glob("*.toml")), ids=lambda p: p.name)
def test_shipped_study_files_load_into_valid_configs(path):
    args = build_parser().parse_args(["study", str(path)])
    config = config_from_args(args)
    assert config.study_name and config.target_trials


def test_flags_override_the_file(tmp_path: Path):
    path = tmp_path / "s.toml"
    path.write_text('name = "x"\nn_trials = 9\n[network]\nepochs = 7\nhidden_units = [8, 4]\n')
    args = build_parser().parse_args(["study", str(path), "--epochs", "3", "--seed", "5"])
    config = config_from_args(args)
    assert config.study_name == "x" and config.n_trials == 9 and config.seed == 5
    assert config.network.epochs == 3 and config.network.hidden_units == (8, 4)


def test_relative_data_paths_are_relative_to_the_file(tmp_path: Path):
    (tmp_path / "s.toml").write_text('data = "d.csv"\n')
    assert load_study_file(tmp_path / "s.toml")["data"] == str(tmp_path / "d.csv")


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("n_trails = 3\n", ["n_trails", "n_trials", "s.toml"]),
        ('n_trials = "many"\n', ["n_trials", "int", "s.toml"]),
        ("standardize = 1\n", ["standardize", "bool"]),
        ("[network]\nepoch = 3\n", ["epoch", "epochs", "[network]"]),
        ("[space]\nmomentum = [0.5, 1.0]\n", ["momentum", "< 1"]),
        ("name = \n", ["not valid TOML"]),
    ],
)
def test_bad_study_files_name_the_key_and_the_file(tmp_path: Path, text, words):
    path = tmp_path / "s.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        config_from_args(build_parser().parse_args(["study", str(path)]))
    for word in words:
        assert word in str(caught.value)


def test_network_family_builder_and_activation_search_have_flags_and_file_keys(tmp_path: Path):
    path = tmp_path / "s.toml"
    path.write_text(
        'name = "x"\n[network]\nfamily = "cnn"\nconv_filters = [4, 8]\nkernel_size = 5\n'
        '[space]\nactivation = ["tanh", "relu"]\n'
    )
    config = config_from_args(build_parser().parse_args(["study", str(path)]))
    assert config.network.family == "cnn" and config.network.conv_filters == (4, 8)
    assert config.network.kernel_size == 5 and config.space.activation == ("tanh", "relu")
    assert resolve(config).engine == "population"  # the population engine trains the cnn family too
    args = build_parser().parse_args(
        ["study", "--conv-filters", "2,3", "--family", "cnn", "--activations", "elu,relu",
         "--builder", "my_nets:build"]
    )  # fmt: skip
    config = config_from_args(args)
    assert config.network.conv_filters == (2, 3) and config.network.builder == "my_nets:build"
    assert config.space.activation == ("elu", "relu") and config.network.kind == "custom"

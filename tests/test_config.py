"""Config classes: defaults, validation messages, TOML loading and JSON export."""

import dataclasses
import json

import pytest

from systolica.config import (
    ArrayConfig, CONFIG_CLASSES, ConfigError, SbufConfig, default_config, load_toml)


def test_default_config_loads_every_registered_section():
    configs = default_config()
    assert set(configs) == set(CONFIG_CLASSES)
    for section, config in configs.items():
        assert isinstance(config, CONFIG_CLASSES[section])


def test_default_toml_matches_class_defaults():
    # default.toml is the shipped config; it should not silently disagree with the code.
    configs = default_config()
    assert configs["array"] == ArrayConfig()
    assert configs["sbuf"] == SbufConfig()


def test_json_round_trip():
    config = ArrayConfig(rows=3, cols=5, moving_dtype="uint16", acc_bits=40)
    exported = json.loads(config.to_json())
    assert ArrayConfig.from_dict(exported) == config


def test_toml_overrides_and_errors(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[array]\nrows = 4\ncols = 2\nmoving_dtype = "uint8"\n')
    configs = load_toml(path)
    assert configs["array"] == ArrayConfig(rows=4, cols=2, moving_dtype="uint8")
    with pytest.raises(ConfigError, match="unknown config section"):
        load_toml("[arrray]\nrows = 4\n", text=True)
    with pytest.raises(ConfigError, match="unknown ArrayConfig parameter.*colums"):
        load_toml("[array]\ncolums = 4\n", text=True)
    with pytest.raises(ConfigError, match="ArrayConfig.rows must be in"):
        load_toml("[array]\nrows = 1000\n", text=True)
    with pytest.raises(ConfigError, match="must be a table"):
        load_toml("array = 3\n", text=True)


def test_describe_covers_every_field():
    names = [row[0] for row in ArrayConfig.describe()]
    assert names == [f.name for f in dataclasses.fields(ArrayConfig)]
    assert all(row[3] for row in ArrayConfig.describe()), "every field has help text"


def test_docs_config_reference_is_current():
    import pathlib
    from systolica.config import config_reference_markdown
    doc = pathlib.Path(__file__).parent.parent / "docs" / "config.md"
    assert doc.read_text() == config_reference_markdown(), \
        "docs/config.md is stale: regenerate with `systolica config --reference > docs/config.md`"

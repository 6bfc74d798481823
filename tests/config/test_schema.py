"""The JSON Schema of the rules file (`watcher schema`): generated from the model that
`watcher check` uses, checked here with the `jsonschema` package as an editor would."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from watcher.cli.main import main
from watcher.config.rules_file import parse_rules
from watcher.config.schema import RulesFile, json_schema
from watcher.config.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "corpus" / "rules"


def printed_schema(capsys: pytest.CaptureFixture[str]) -> dict:
    assert main(["schema"]) == 0
    return json.loads(capsys.readouterr().out)


def validator(schema: dict) -> jsonschema.Draft202012Validator:
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_watcher_schema_validates_the_example_and_rejects_a_misspelled_key(capsys) -> None:
    check = validator(printed_schema(capsys))
    example = yaml.safe_load((ROOT / "rules.example.yaml").read_text())
    assert list(check.iter_errors(example)) == []
    example["rules"][0]["severty"] = "critical"
    (error,) = check.iter_errors(example)
    assert "'severty' was unexpected" in error.message and list(error.path) == ["rules", 0]


def test_the_schema_knows_values_as_well_as_keys(capsys) -> None:
    check = validator(printed_schema(capsys))
    good = {"channels": {"default": "console://"}, "rules": [{"name": "a", "when": "total > 1"}]}
    assert check.is_valid(good)
    assert check.is_valid({**good, "x-anchors": {"anything": [1, 2]}})  # free x- keys
    assert check.is_valid({**good, "heartbeat": {"url": "${HC}", "every": "5m"}})
    assert check.is_valid({**good, "heartbeat": [{"url": "${HC}"}, {"url": "${KUMA}"}]})
    for bad in (
        {**good, "rules": [{"name": "a", "when": "total > 1", "severity": "loud"}]},
        {**good, "rules": [{"name": "Bad_Name", "when": "total > 1"}]},
        {**good, "rules": [{"name": "a"}]},  # no when
        {**good, "channels": {"default": {"url": "console://"}}},
        {**good, "accounts": {"main": {"source": "ftx"}}},
        {**good, "rulez": []},
    ):
        assert not check.is_valid(bad), bad


def test_the_committed_schema_is_what_watcher_schema_prints(capsys) -> None:
    """rules.example.yaml's header points editors at rules.schema.json in the repository."""
    committed = json.loads((ROOT / "rules.schema.json").read_text())
    assert committed == printed_schema(capsys) == json.loads(json.dumps(json_schema()))
    first = (ROOT / "rules.example.yaml").read_text().splitlines()[0]
    assert first == "# yaml-language-server: $schema=rules.schema.json"


def test_model_and_check_agree_on_the_example() -> None:
    """One model: the schema's source is what `check` parses with."""
    text = (ROOT / "rules.example.yaml").read_text()
    parsed = RulesFile.model_validate(yaml.safe_load(text))
    ruleset = parse_rules(text, "rules.example.yaml")
    assert [r.name for r in parsed.rules] == [r.name for r in ruleset.rules]
    assert Settings.model_json_schema()  # settings are a pydantic model as well


@pytest.mark.parametrize(
    "name",
    [
        "unknown-rule-key",
        "unknown-top-key",
        "channel-unknown-key",
        "bad-severity",
        "name-uppercase",
    ],
)
def test_corpus_shape_mistakes_fail_the_schema_too(capsys, name: str) -> None:
    check = validator(printed_schema(capsys))
    document = yaml.safe_load((CORPUS / f"{name}.yaml").read_text())
    assert not check.is_valid(document)

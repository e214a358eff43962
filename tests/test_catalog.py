"""The threat catalog loads, and every kind of mistake in a rule fails loudly at load time."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mlhunt.errors import CatalogError
from mlhunt.system import system_from_dict
from mlhunt.threatmodel import build_threat_model, default_catalog, load_catalog

RULE = {
    "id": "MLH-TEST-CUSTOM",
    "title": "Custom rule on {name}",
    "description": "A project-specific rule used by the tests to exercise the loader.",
    "framework": "ML",
    "scope": "element",
    "kinds": ["inference_api"],
    "condition": "element.model.output == 'scores' and element.internet_facing",
    "atlas": ["AML.T0024.002"],
    "owasp_ml": ["ML05"],
    "mitigations": [{"control": "output_hardening", "action": "Return labels, not scores."}],
}


def _write(directory: Path, rule: dict) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{rule['id']}.yaml"
    path.write_text(yaml.safe_dump(rule), encoding="utf-8")
    return path


def test_builtin_catalog_covers_all_frameworks() -> None:
    catalog = default_catalog()
    frameworks = {r.rule.framework.value for r in catalog.rules}
    assert frameworks == {"STRIDE", "LINDDUN", "ML"}
    letters = {s for r in catalog.rules for s in r.rule.stride}
    assert letters == set("STRIDE")
    linddun = {c for r in catalog.rules for c in r.rule.linddun}
    assert linddun == set(catalog.taxonomy["linddun"])
    llm = {c for r in catalog.rules for c in r.rule.owasp_llm}
    assert llm == set(catalog.taxonomy["owasp_llm"])
    for r in catalog.rules:
        assert r.rule.mitigations, r.id
        assert Path(r.path).stem == r.id, "one rule per file, named by its id"


def test_project_rules_are_added_and_fire(tmp_path: Path, minimal_system: dict) -> None:
    _write(tmp_path, RULE)
    catalog = load_catalog([tmp_path])
    assert catalog.by_id("MLH-TEST-CUSTOM")
    tm = build_threat_model(system_from_dict(minimal_system), catalog)
    hits = [f for f in tm.findings if f.rule_id == "MLH-TEST-CUSTOM"]
    assert [f.target for f in hits] == ["api"]
    assert hits[0].title == "Custom rule on api"


@pytest.mark.parametrize(
    ("change", "expect"),
    [
        ({"condition": "element.modle.output == 'scores'"}, "Element has no attribute 'modle'"),
        (
            {"condition": "element.model.output == 'probabilities'"},
            "'probabilities' is not a ModelOutput",
        ),
        (
            {"condition": "'persnal' in element.classifications"},
            "'persnal' is not a Classification",
        ),
        ({"condition": "flow.encrypted"}, "unknown name 'flow'"),
        ({"condition": "__import__('os').system('true')"}, "Call is not allowed"),
        ({"condition": "element.__class__"}, "private attribute"),
        ({"condition": "element.id[0] == 'a'"}, "Subscript is not allowed"),
        ({"condition": "element.kind ==="}, "syntax error"),
        ({"atlas": ["AML.T9999"]}, "atlas: unknown id 'AML.T9999'"),
        ({"owasp_ml": ["ML11"]}, "owasp_ml: unknown id 'ML11'"),
        ({"cwe": ["79"]}, "CWE-<number>"),
        ({"kinds": ["inference-api"]}, "unknown kind 'inference-api'"),
        ({"framework": "PASTA"}, "framework"),
        ({"mitigated_by": ["firewall"]}, "mitigated_by"),
        ({"likelihood": {"base": 7}}, "likelihood.base"),
        ({"likelihood": {"factors": ["sunny_day"]}}, "likelihood.factors"),
        ({"severity": "high"}, "severity: Extra inputs are not permitted"),
        ({"mitigations": []}, "mitigations"),
        ({"id": "custom-rule"}, "id: String should match pattern"),
        ({"compliance": [{"when": "element.nope", "pci_dss": ["3.5.1"]}]}, "no attribute 'nope'"),
    ],
)
def test_bad_rule_fails_loudly(tmp_path: Path, change: dict, expect: str) -> None:
    path = _write(tmp_path, {**RULE, **change})
    with pytest.raises(CatalogError) as info:
        load_catalog([tmp_path])
    assert expect in str(info.value)
    assert str(path) in str(info.value)


def test_duplicate_rule_id(tmp_path: Path) -> None:
    builtin = default_catalog().rules[0].rule.model_dump(mode="json")
    _write(tmp_path, builtin)
    with pytest.raises(CatalogError, match="duplicate rule id"):
        load_catalog([tmp_path])


def test_missing_rules_dir(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="not found"):
        load_catalog([tmp_path / "nope"])


def test_optional_attributes_are_null_safe(tmp_path: Path, minimal_system: dict) -> None:
    """element.model.output on an element without a model is simply false, never an error."""
    _write(tmp_path, {**RULE, "kinds": ["any"], "condition": "element.model.output == 'scores'"})
    tm = build_threat_model(system_from_dict(minimal_system), load_catalog([tmp_path]))
    hits = {t for f in tm.findings if f.rule_id == "MLH-TEST-CUSTOM" for t in f.affected or ()}
    assert hits == {"api", "train"}  # the elements that have a model (default output: scores)


def test_shipped_rules_parsed_form_is_cached_by_content(tmp_path: Path) -> None:
    """The JSON kept for a shipped rule file gives the YAML's data; an edited file is parsed
    again (its name follows the content), and a file that is not plain JSON data is not kept."""
    from mlhunt.threatmodel.catalog import read_yaml

    cache = tmp_path / "cache"
    rule = tmp_path / "rule.yaml"
    rule.write_text("id: X-1\nmitigated_by: [a, b]\nscore: 2.5\n", encoding="utf-8")
    first = read_yaml(rule, cache)
    assert first == {"id": "X-1", "mitigated_by": ["a", "b"], "score": 2.5}
    assert len(list(cache.glob("rules-*.json"))) == 1
    assert read_yaml(rule, cache) == first  # served from the cache
    rule.write_text("id: X-2\n", encoding="utf-8")
    assert read_yaml(rule, cache) == {"id": "X-2"}
    assert len(list(cache.glob("rules-*.json"))) == 2
    dated = tmp_path / "dated.yaml"
    dated.write_text("when: 2001-12-14\n", encoding="utf-8")
    assert str(read_yaml(dated, cache)["when"]) == "2001-12-14"
    assert len(list(cache.glob("rules-*.json"))) == 2
    # Every shipped rule reads the same through the cache as from its YAML.
    for path in sorted(Path(load_catalog().rules[0].path).parents[1].rglob("*.yaml")):
        assert read_yaml(path, cache) == read_yaml(path) == read_yaml(path, cache)

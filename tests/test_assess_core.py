"""The assess core: targets, the budgeted plan, survivors, skips, errors, resume, findings."""

from __future__ import annotations

import json
import pickle
import time
from pathlib import Path

import numpy as np
import pytest
import skops.io as sio
from sklearn.linear_model import LogisticRegression

from mlhunt.assess.api import TargetOptions, assess, open_target
from mlhunt.assess.catalog import load_attacks
from mlhunt.assess.results import parse_thresholds
from mlhunt.assess.runner import parse_params
from mlhunt.assess.targets import load_spec
from mlhunt.errors import InputError
from mlhunt.report import render
from tests.assess_fakes import write_catalog


@pytest.fixture
def model_files(tmp_path: Path) -> dict[str, Path]:
    """A real (tiny) logistic regression as skops and as pickle, and its data as .npz."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 4))
    y = (x[:, 0] + 0.5 * x[:, 1] + rng.normal(scale=0.8, size=400) > 0).astype(np.int64)
    model = LogisticRegression().fit(x[:200], y[:200])
    sio.dump(model, tmp_path / "model.skops")
    (tmp_path / "model.pkl").write_bytes(pickle.dumps(model))
    np.savez(tmp_path / "data.npz", x=x[200:], y=y[200:], x_pool=x[:50])
    return {
        "skops": tmp_path / "model.skops",
        "pickle": tmp_path / "model.pkl",
        "data": tmp_path / "data.npz",
    }


def _opts(files: dict[str, Path], **kw: object) -> TargetOptions:
    return TargetOptions(target=str(files["skops"]), data=files["data"], **kw)  # type: ignore[arg-type]


def _enter(opts: TargetOptions) -> None:
    with open_target(opts):
        pass


def test_budget_is_never_overrun(tmp_path: Path, model_files: dict[str, Path]) -> None:
    cat = load_attacks(
        write_catalog(
            tmp_path / "cat",
            {
                "GREEDY-A": {"entry": "greedy", "cost": 1},
                "GREEDY-B": {"entry": "greedy", "cost": 3},
                "ESCAPE": {"entry": "escape", "cost": 2},
            },
        )
    )
    with open_target(_opts(model_files)) as (target, data):
        report = assess(target, data, catalog=cat, max_queries=100, state_dir=tmp_path / "s")
    by_id = {r.attack_id: r for r in report.results}
    assert [r.attack_id for r in report.results] == [
        "MLH-ASSESS-GREEDY-A",
        "MLH-ASSESS-ESCAPE",
        "MLH-ASSESS-GREEDY-B",
    ]  # cheap first
    assert report.budget["queries_this_run"] <= 100
    assert sum(r.queries for r in report.results) <= 100
    # Cost-weighted shares: A gets 100 * 1/6 = 16 (two batches of 7); what it leaves flows on.
    assert by_id["MLH-ASSESS-GREEDY-A"].queries == 14
    assert by_id["MLH-ASSESS-GREEDY-B"].queries > by_id["MLH-ASSESS-GREEDY-A"].queries
    escaped = by_id["MLH-ASSESS-ESCAPE"]
    assert escaped.verdict == "inconclusive" and "budget exhausted" in escaped.summary
    assert escaped.queries <= 100


def test_declared_query_need_is_met_when_the_budget_allows(
    tmp_path: Path, model_files: dict[str, Path]
) -> None:
    """A cheap attack that declares the queries it needs gets them, not just its cost share."""
    cat = load_attacks(
        write_catalog(
            tmp_path / "cat",
            {
                "NEEDY": {"entry": "greedy", "cost": 1, "queries": 50},
                "BIG": {"entry": "greedy", "cost": 5},
            },
        )
    )
    with open_target(_opts(model_files)) as (target, data):
        report = assess(target, data, catalog=cat, max_queries=120, state_dir=tmp_path / "s")
    by_id = {r.attack_id: r for r in report.results}
    assert by_id["MLH-ASSESS-NEEDY"].queries == 49  # 7 batches of 7 fit in its 50
    assert sum(r.queries for r in report.results) <= 120


def test_survivors_are_handed_on_and_baseline_skips_misclassified(
    tmp_path: Path, model_files: dict[str, Path]
) -> None:
    cat = load_attacks(
        write_catalog(
            tmp_path / "cat",
            {
                "FIRST": {"entry": "probe", "cost": 1, "params": {"n": 5, "narrow": True}},
                "SECOND": {"entry": "probe", "cost": 2, "params": {"n": 5, "narrow": False}},
            },
        )
    )
    with open_target(_opts(model_files)) as (target, data):
        clean = np.argmax(target.sklearn_estimator().predict_proba(data.x_eval), axis=1)
        report = assess(target, data, catalog=cat, state_dir=tmp_path / "s")
    correct = [int(i) for i in np.flatnonzero(clean == data.y_eval)]
    first, second = report.results
    assert first.metrics["survivors_in"] == correct  # misclassified rows never reach attacks
    assert len(correct) < len(data.y_eval)
    assert second.metrics["survivors_in"] == correct[::2]  # narrowed by the first
    assert report.document()["clean_accuracy"] == pytest.approx(len(correct) / len(data.y_eval))


def test_missing_requirement_is_skipped_with_reason(
    tmp_path: Path, model_files: dict[str, Path]
) -> None:
    cat = load_attacks(
        write_catalog(
            tmp_path / "cat",
            {
                "MEMBERS": {"entry": "probe", "kind": "membership", "requires": ["members"]},
                "TORCHY": {"entry": "probe", "requires": ["torch"]},
                "IMAGES": {"entry": "probe", "applies_to": ["image"]},
                "OK": {"entry": "probe"},
            },
        )
    )
    with open_target(_opts(model_files)) as (target, data):
        report = assess(target, data, catalog=cat, state_dir=tmp_path / "s")
        named = assess(target, data, catalog=cat, select=["images"], state_dir=tmp_path / "t")
    doc = report.document()
    ev = {f["rule_id"]: f["evidence"] for f in doc["findings"]}
    assert "MLH-ASSESS-IMAGES" not in ev  # another input kind: not planned unless named
    assert ev["MLH-ASSESS-MEMBERS"]["verdict"] == "skipped"
    assert "members" in ev["MLH-ASSESS-MEMBERS"]["reason"]
    assert "PyTorch" in ev["MLH-ASSESS-TORCHY"]["reason"]
    assert ev["MLH-ASSESS-OK"]["verdict"] in ("validated", "refuted")
    skipped = [f for f in doc["findings"] if f["evidence"]["verdict"] == "skipped"]
    assert all(f["severity"] == "info" and f["status"] == "open" for f in skipped)
    assert "image inputs" in named.results[0].summary


def test_failing_attack_is_recorded_and_the_run_continues(
    tmp_path: Path, model_files: dict[str, Path]
) -> None:
    cat = load_attacks(
        write_catalog(
            tmp_path / "cat",
            {"BOOM": {"entry": "boom", "cost": 1}, "OK": {"entry": "probe", "cost": 2}},
        )
    )
    with open_target(_opts(model_files)) as (target, data):
        report = assess(target, data, catalog=cat, state_dir=tmp_path / "s")
        boom = report.results[0]
        assert boom.verdict == "error" and "traceback" not in boom.metrics
        assert boom.metrics["error"] == "ValueError: deliberate failure second line"
        assert report.results[1].verdict in ("validated", "refuted")
        # An error is not a finished result: resume runs it again.
        again = assess(target, data, catalog=cat, state_dir=tmp_path / "s", resume=True)
        assert again.resumed == ["MLH-ASSESS-OK"]
        debug = assess(target, data, catalog=cat, state_dir=tmp_path / "d", debug=True)
        assert "Traceback" in debug.results[0].metrics["traceback"]


def test_resume_skips_finished_and_reruns_on_new_params(
    tmp_path: Path, model_files: dict[str, Path]
) -> None:
    counter = tmp_path / "counter.txt"
    cat = load_attacks(
        write_catalog(
            tmp_path / "cat",
            {
                "A": {
                    "entry": "sleepy",
                    "params": {"counter": str(counter), "tag": "A", "sleep": 0},
                },
                "B": {
                    "entry": "sleepy",
                    "cost": 2,
                    "params": {"counter": str(counter), "tag": "B", "sleep": 0},
                },
            },
        )
    )
    state = tmp_path / "s"
    with open_target(_opts(model_files)) as (target, data):
        first = assess(target, data, catalog=cat, state_dir=state, seed=3)
        second = assess(target, data, catalog=cat, state_dir=state, seed=3, resume=True)
        assert counter.read_text().split() == ["A", "B"]
        assert sorted(second.resumed) == ["MLH-ASSESS-A", "MLH-ASSESS-B"]
        assert second.document()["findings"] == first.document()["findings"]
        params = parse_params(["b.sleep=0.01"], cat)
        assess(target, data, catalog=cat, state_dir=state, seed=3, resume=True, params=params)
        assess(target, data, catalog=cat, state_dir=state, seed=4, resume=True)
    assert counter.read_text().split() == ["A", "B", "B", "A", "B"]
    assert not list(state.glob(".*.tmp"))


def test_findings_severity_thresholds_and_stable_ids(
    tmp_path: Path, model_files: dict[str, Path]
) -> None:
    cat = load_attacks(write_catalog(tmp_path / "cat", {"PLOT": {"entry": "plotter"}}))
    with open_target(_opts(model_files)) as (target, data):
        plain = assess(target, data, catalog=cat, state_dir=tmp_path / "s").document()
        limits = parse_thresholds(["plot.critical=0.8"], cat)
        strict = assess(target, data, catalog=cat, state_dir=tmp_path / "t", thresholds=limits)
    f = plain["findings"][0]
    assert f["severity"] == "high" and f["source"] == "assess"
    assert f["atlas"] == ["AML.T0015"] and f["owasp_ml"] == ["ML01"]
    assert f["evidence"]["validates"] == ["MLH-ML-EVASION-API"]
    assert f["evidence"]["success_rate"] == 0.9 and f["evidence"]["verdict"] == "validated"
    assert f["evidence"]["curves"]["acc"] == [0.9, 0.5, 0.1]
    plot = Path(f["evidence"]["plots"][0])
    assert plot.is_file() and plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    strict_f = strict.document()["findings"][0]
    assert strict_f["severity"] == "critical"
    assert strict_f["id"] == f["id"]  # stable: rule id + target
    html = render(plain, "html")
    assert "data:image/png;base64," in html
    with pytest.raises(InputError, match="threshold"):
        parse_thresholds(["plot.severe=1"], cat)


def test_target_loading_refuses_unsafe_files(tmp_path: Path, model_files: dict[str, Path]) -> None:
    with pytest.raises(InputError, match="pickle/joblib"):
        _enter(TargetOptions(target=str(model_files["pickle"]), data=model_files["data"]))
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(b"cos\nsystem\n(S'touch " + str(tmp_path / "pwned").encode() + b"'\ntR.")
    with pytest.raises(InputError, match="MLH-SCAN-PICKLE"):
        _enter(TargetOptions(target=str(evil), data=model_files["data"]))
    assert not (tmp_path / "pwned").exists()
    opts = TargetOptions(target=str(model_files["pickle"]), data=model_files["data"], trust=True)
    with open_target(opts) as (target, _data):
        assert target.classes == ("0", "1")
        assert target.predict_proba(np.zeros((3, 4))).shape == (3, 2)
        assert target.budget.used == 3


def test_spec_and_data_errors_name_the_field(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "kind: tabular\nfeatures:\n  - {name: age, lower: 18, upper: 90, "
        "mutable: false}\n  - {name: income, lower: 0}\n"
    )
    with pytest.raises(InputError) as exc:
        load_spec(spec)
    assert "features.1.upper" in str(exc.value) and str(spec) in str(exc.value)
    loaded, _classes, _s = load_spec(spec, np.array([[20.0, 5.0], [30.0, 9.0]]))
    assert loaded.upper == (90.0, 9.0) and loaded.mutable == (False, True)
    spec.write_text("kind: tabular\nfeatures: [{name: a, lowr: 1}]\n")
    with pytest.raises(InputError, match="lowr"):
        load_spec(spec)
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.zeros((3, 2)))
    with pytest.raises(InputError, match="y"):
        _enter(TargetOptions(target="m.skops", data=bad))
    obj = tmp_path / "obj.npz"
    np.savez(obj, x=np.zeros((2, 2)), y=np.array([{"a": 1}, None], dtype=object))
    with pytest.raises(InputError):
        _enter(TargetOptions(target="m.skops", data=obj))


def test_document_lists_attacks_and_budget(tmp_path: Path, model_files: dict[str, Path]) -> None:
    cat = load_attacks(
        write_catalog(
            tmp_path / "cat",
            {"OK": {"entry": "probe"}, "NP": {"entry": "numpy_metrics", "cost": 2}},
        )
    )
    with open_target(_opts(model_files)) as (target, data):
        doc = assess(
            target, data, catalog=cat, state_dir=tmp_path / "s", max_queries=500, seed=7
        ).document()
    assert doc["command"] == "assess" and doc["target"] == "model.skops"
    assert doc["budget"]["max_queries"] == 500 and doc["budget"]["seed"] == 7
    assert doc["attacks"][0]["id"] == "MLH-ASSESS-OK"
    np_ev = doc["findings"][1]["evidence"]
    assert np_ev["n"] == 3 and np_ev["curves"] == {"x": [0, 1, 2]}
    assert json.loads(render(doc, "json"))["findings"][1]["severity"] == "high"
    saved = json.loads((tmp_path / "s" / "MLH-ASSESS-OK.json").read_text())
    assert saved["result"]["attack_id"] == "MLH-ASSESS-OK"


def test_torch_and_callable_targets(tmp_path: Path) -> None:
    import torch

    from tests.assess_fakes import threshold_fn, tiny_net

    net = tiny_net()
    with torch.no_grad():
        net[0].weight.mul_(3.0)  # weights that differ from the factory's: the file must load
    torch.save(net.state_dict(), tmp_path / "w.pt")
    x = np.random.default_rng(0).normal(size=(20, 3))
    np.savez(tmp_path / "d.npz", x=x, y=(x[:, 0] > 0).astype(np.int64))
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "kind: tabular\nclasses: [deny, allow]\nfeatures: [a, b, {name: c, mutable: false}]\n"
    )
    opts = TargetOptions(
        target=str(tmp_path / "w.pt"),
        factory="tests.assess_fakes:tiny_net",
        data=tmp_path / "d.npz",
        spec=spec,
    )
    with open_target(opts) as (target, _data):
        assert target.torch_module() is not None and target.classes == ("deny", "allow")
        assert target.spec.mutable == (True, True, False)
        with torch.no_grad():
            want = torch.softmax(net(torch.as_tensor(x[:5], dtype=torch.float32)), 1).numpy()
        assert np.allclose(target.predict_proba(x[:5]), want, atol=1e-6)
    opts = TargetOptions(target="tests.assess_fakes:threshold_fn", data=tmp_path / "d.npz")
    with open_target(opts) as (target, data):
        assert target.torch_module() is None and target.sklearn_estimator() is None
        assert np.allclose(target.predict_proba(data.x_eval), threshold_fn(data.x_eval))
        assert target.budget.used == 20


def test_time_budget_is_shared_and_exhaustion_skips(
    tmp_path: Path, model_files: dict[str, Path]
) -> None:
    cat = load_attacks(
        write_catalog(
            tmp_path / "cat",
            {
                "A": {"entry": "greedy", "cost": 1},
                "B": {"entry": "greedy", "cost": 1},
                "C": {
                    "entry": "sleepy",
                    "cost": 5,
                    "params": {"counter": str(tmp_path / "c.txt"), "tag": "C", "sleep": 0},
                },
            },
        )
    )
    # 2.1 s shared by cost: A gets 1/7 (0.3 s), B 1/6 of what is left (about 0.3 s), C the rest.
    # An attack stops at its first query past its share, so it never ends before the share and
    # ends after it by one batch plus scheduling: the upper bounds allow 1.5 s of that (a busy
    # machine), still well below what an attack would take with the whole budget (2.1 s).
    with open_target(_opts(model_files)) as (target, data):
        start = time.monotonic()
        report = assess(target, data, catalog=cat, max_seconds=2.1, state_dir=tmp_path / "s")
        elapsed = time.monotonic() - start
    a, b, c = report.results
    assert 0.25 < a.seconds < 0.3 + 1.5 and a.metrics["sent"] > 0
    assert b.seconds < 0.3 + 1.5
    assert elapsed < 2.1 + 3.0  # the three shared one budget: not 2.1 s each
    assert c.verdict in ("skipped", "validated")  # C starts with what is left, if anything

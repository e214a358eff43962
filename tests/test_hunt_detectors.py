"""Hunt detectors on small generated logs: abuse (401 bursts, floods, which the simulator does
not produce), inversion sweeps vs what-if variants, membership probing vs retries, the online
(prefix-honest) scores, the segment operations and the YAML contract."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlhunt.errors import CatalogError
from mlhunt.hunt.api import hunt
from mlhunt.hunt.detectors import load_detectors, load_spec
from mlhunt.hunt.events import GroupBatch, PopulationBuilder, window_count
from tests.hunt_segments import seg_cummax, seg_cumsum, seg_first_true

T0 = 1709632800.0
D = 5


def _rec(t: float, cid: str, x: np.ndarray, ip: str, status: int = 200) -> dict[str, Any]:
    p = float(1 / (1 + np.exp(-(x[0] - 0.2 * x[1]))))
    return {
        "ts": T0 + t,
        "client_id": cid,
        "input": [round(float(v), 4) for v in x],
        "output": {"label": "yes" if p > 0.5 else "no", "scores": [1 - p, p]},
        "source_ip": ip,
        "status": status,
    }


def _background(rng: np.random.Generator, n_clients: int = 80) -> list[dict[str, Any]]:
    out = []
    for c in range(n_clients):
        for k in range(int(rng.integers(10, 60))):
            x = rng.normal(0, 1, D) * [1, 2, 1, 3, 1] + [0, 5, 1, 10, 2]
            out.append(_rec(c * 300 + k * 40.0, f"user{c}", x, f"10.0.{c}.1"))
    return out


def _hunt(tmp: Path, recs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    p = tmp / "logs.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in recs))
    doc = hunt(p).document()
    by: dict[str, list[dict[str, Any]]] = {}
    for f in doc["findings"]:
        by.setdefault(f["target"], []).append(f)
    return by


def test_credential_stuffing_and_flood(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    recs = _background(rng)
    x = np.zeros(D)
    # 30 rejected keys in two minutes from one address; a slow retrier with an expired key
    recs += [_rec(5000 + 4 * i, f"guess{i}", x, "198.51.100.7", 401) for i in range(30)]
    recs += [_rec(5000 + 600 * i, "expired", x, "198.51.100.8", 401) for i in range(30)]
    # 3,000 requests in 10 s from one address; a batch job at 20/s stays quiet
    recs += [_rec(9000 + i / 300, "flooder", x, "203.0.113.9") for i in range(3000)]
    recs += [_rec(20000 + i / 20, "batch", x, "203.0.113.10") for i in range(2000)]
    by = _hunt(tmp_path, recs)
    stuffing = [f for f in by["198.51.100.7"] if f["rule_id"] == "MLH-HUNT-CREDENTIAL-STUFFING"]
    assert stuffing and stuffing[0]["evidence"]["detected_at_event"] == 20
    assert stuffing[0]["evidence"]["client_ids_tried"] == 30
    assert "198.51.100.8" not in by
    flood = [f for f in by["203.0.113.9"] if f["rule_id"] == "MLH-HUNT-REQUEST-FLOOD"]
    assert flood and flood[0]["evidence"]["peak_rate_per_s"] >= 200
    assert not [f for f in by.get("203.0.113.10", []) if f["rule_id"] == "MLH-HUNT-REQUEST-FLOOD"]


def test_inversion_sweeps_vs_what_if_and_membership_vs_retries(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    recs = _background(rng)
    base = rng.normal(0, 1, (6, D)) + np.array([0, 5, 1, 10, 2])
    t = 30000.0
    for rec in base[:4]:  # sweeps of field 3 over its whole range, others fixed
        for v in np.linspace(2, 18, 20):
            x = rec.copy()
            x[3] = v
            recs.append(_rec(t, "inverter", x, "192.0.2.1"))
            t += 1.0
    for rec in base:  # what-if: four variants lowering field 3 by 10% steps, repeated
        for _ in range(4):
            for k in range(5):
                x = rec.copy()
                x[3] *= 1 - 0.1 * k
                recs.append(_rec(t, "officer", x, "192.0.2.2"))
                t += 30.0
    for rec in base:  # membership: the same records with 0.3% noise on every field
        for _ in range(10):
            recs.append(_rec(t, "prober", rec * (1 + rng.normal(0, 0.003, D)), "192.0.2.3"))
            t += 1.0
    for rec in base:  # retries: the identical request again
        for _ in range(10):
            recs.append(_rec(t, "retrier", rec, "192.0.2.4"))
            t += 5.0
    by = _hunt(tmp_path, recs)
    assert {f["rule_id"] for f in by["inverter"]} >= {"MLH-HUNT-INVERSION-SWEEP"}
    inv = next(f for f in by["inverter"] if f["rule_id"] == "MLH-HUNT-INVERSION-SWEEP")
    # fires during the second sweep (min_sweeps 2), once it covers half the field's range
    assert inv["evidence"]["sweeps"] == 4 and 20 < inv["evidence"]["detected_at_event"] <= 40
    assert "officer" not in by and "retrier" not in by
    assert "MLH-HUNT-MEMBERSHIP-PROBING" in {f["rule_id"] for f in by["prober"]}
    assert not any(t.startswith("user") for t in by)


def _toy_batch(rng: np.random.Generator) -> tuple[GroupBatch, Any]:
    n_groups, d = 12, 4
    lengths = rng.integers(1, 80, n_groups)
    n = int(lengths.sum())
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    x = rng.normal(0, 1, (n, d))
    x[offsets[3] : offsets[4]] = rng.uniform(-4, 4, (lengths[3], d))  # one extractor
    x[offsets[5] + 1 : offsets[6]] = x[offsets[5]] * (1 + rng.normal(0, 1e-3, (lengths[5] - 1, d)))
    keys = [f"k{g:02d}" for g in range(n_groups)]
    client = np.repeat(np.array(keys, dtype=object), lengths)
    b = PopulationBuilder()
    margin = rng.uniform(0, 1, n)
    label = np.where(x[:, 0] > 0, "a", "b").astype(object)
    b.update(client, x, label, margin)
    b.add_sample(x)
    pop = b.build()
    batch = GroupBatch.from_columns(
        "client_id",
        {
            "ts": np.concatenate([np.sort(rng.uniform(0, 1000, k)) for k in lengths]),
            "client_id": client,
            "source_ip": client,
            "input": list(x),
            "label": label,
            "margin": margin,
            "status": np.full(n, 200),
            "file": np.full(n, "f", dtype=object),
            "line": np.arange(n),
        },
        pop.classes,
        d,
    )
    return batch, pop


def _prefix(batch: GroupBatch, k: int) -> tuple[GroupBatch, np.ndarray]:
    """Every group cut to its first k events, and the kept rows."""
    keep = np.concatenate(
        [
            np.arange(a, min(a + k, b))
            for a, b in zip(batch.offsets[:-1], batch.offsets[1:], strict=True)
        ]
    )
    lens = np.minimum(batch.lengths, k)
    sub = GroupBatch(
        batch.scope,
        batch.keys,
        np.concatenate([[0], np.cumsum(lens)]),
        batch.ts[keep],
        batch.x[keep],
        batch.label[keep],
        batch.margin[keep],
        batch.status[keep],
        batch.client[keep],
        batch.file[keep],
        batch.line[keep],
    )
    return sub, keep


@pytest.mark.parametrize("k", [1, 7, 30, 50])
def test_online_scores_use_only_the_prefix(k: int) -> None:
    """detected_at_event is honest: a detector's score after event i of a target is the same
    whether or not the target's later events exist."""
    batch, pop = _toy_batch(np.random.default_rng(k))
    sub, keep = _prefix(batch, k)
    for det in load_detectors():
        if not det.applies(pop):
            continue
        full = det.score(batch, pop).online[keep]
        part = det.score(sub, pop).online
        np.testing.assert_allclose(part, full, rtol=1e-9, atol=1e-9, err_msg=det.spec.id)


#: Scored columns that hold a row of the batch (an earlier event's index, or -1).
ROW_COLUMNS = {"match"}


def test_scores_of_a_group_do_not_depend_on_its_batch() -> None:
    """Engines batch groups differently (DuckDB by its scan, Spark by hash bucket), so a
    target's scores and per-event columns must be those of its events alone, bit for bit:
    a score on its threshold would otherwise fire one event apart (issue 23: an inversion
    sweep's coverage was computed over the whole batch)."""
    batch, pop = _toy_batch(np.random.default_rng(23))
    a = int(batch.offsets[7])
    for i in range(a + 1, int(batch.offsets[8])):  # group 7 sweeps field 2 in steps of 0.1
        batch.x[i] = batch.x[a]
        batch.x[i, 2] = batch.x[a, 2] + 0.1 * (i - a)
    for det in load_detectors():
        if not det.applies(pop):
            continue
        whole = det.score(batch, pop)
        for g in range(len(batch.keys)):
            lo, hi = int(batch.offsets[g]), int(batch.offsets[g + 1])
            alone = det.score(_only(batch, g), pop)
            assert np.array_equal(alone.online, whole.online[lo:hi], equal_nan=True), det.spec.id
            for name, col in alone.columns.items():
                got, want = np.asarray(col), np.asarray(whole.columns[name])[lo:hi]
                if name in ROW_COLUMNS:  # rows of the batch: relative to the group's start
                    want = np.where(want >= 0, want - lo, want)
                assert np.array_equal(got, want, equal_nan=got.dtype.kind == "f"), (
                    det.spec.id,
                    name,
                )


def _only(batch: GroupBatch, g: int) -> GroupBatch:
    """Group ``g`` of the batch as a batch of its own."""
    lo, hi = int(batch.offsets[g]), int(batch.offsets[g + 1])
    rows = slice(lo, hi)
    return GroupBatch(
        batch.scope,
        [batch.keys[g]],
        np.array([0, hi - lo], dtype=np.int64),
        batch.ts[rows],
        batch.x[rows],
        batch.label[rows],
        batch.margin[rows],
        batch.status[rows],
        batch.client[rows],
        batch.file[rows],
        batch.line[rows],
    )


def test_segment_operations_match_loops() -> None:
    rng = np.random.default_rng(3)
    offsets = np.array([0, 4, 4, 9, 10])
    v = rng.normal(size=10)
    ts = np.sort(rng.uniform(0, 20, 10))
    ts[4:9].sort()
    flags = rng.random(10) < 0.5
    for a, b in itertools.pairwise(offsets):
        np.testing.assert_allclose(seg_cumsum(v, offsets)[a:b], np.cumsum(v[a:b]))
        np.testing.assert_allclose(seg_cummax(v, offsets)[a:b], np.maximum.accumulate(v[a:b]))
        want = [sum(flags[j] for j in range(a, i + 1) if ts[j] > ts[i] - 5) for i in range(a, b)]
        np.testing.assert_allclose(window_count(ts, offsets, flags, 5.0)[a:b], want)
    # a leading empty group (the running total before it is 0, not the batch's last total)
    lead = np.array([0, 0, 4, 10])
    for a, b in itertools.pairwise(lead):
        np.testing.assert_allclose(seg_cumsum(v, lead)[a:b], np.cumsum(v[a:b]))
    first = seg_first_true(v > 0, offsets)
    assert first.tolist() == [
        next((i - a for i in range(a, b) if v[i] > 0), -1) for a, b in itertools.pairwise(offsets)
    ]


def test_detector_yaml_contract(tmp_path: Path) -> None:
    specs = [d.spec for d in load_detectors()]
    assert len({s.id for s in specs}) == len(specs) >= 8
    assert all(s.false_positive_notes and s.atlas for s in specs)
    good = Path(__file__).parents[1] / "src/mlhunt/hunt/detectors/extraction.yaml"
    bad = tmp_path / "x.yaml"
    bad.write_text(good.read_text() + "surprise: 1\n")
    with pytest.raises(CatalogError, match=r"x\.yaml: surprise"):
        load_spec(bad)
    bad.write_text(good.read_text().replace("AML.T0040", "AML.T9999"))
    with pytest.raises(CatalogError, match=r"x\.yaml: atlas: unknown id\(s\) AML.T9999"):
        load_spec(bad)

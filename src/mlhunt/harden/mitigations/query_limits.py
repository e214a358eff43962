"""Query limits replayed over simulated traffic: who gets cut, and whether it is enough.

The day of traffic comes from :func:`mlhunt.scenarios.traffic.simulate` (real model answers,
labelled clients). Each client's requests pass, in time order, through a token bucket
(``burst`` tokens, refilled at ``rate_per_minute``) and a daily quota; a request with no token
or over quota is rejected. What an extraction needs is measured, not assumed: the assess
extraction attack runs on the same API (scores, or labels when ``output: labels``) and the
first query count at which its copy reaches ``target`` balanced agreement is the need.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

import numpy as np

from mlhunt._threads import few_threads
from mlhunt.assess.attacks import extraction_tabular
from mlhunt.errors import InputError
from mlhunt.harden.base import HardenContext, ModelTarget, Outcome, attack_params, run_attack
from mlhunt.harden.mitigations.output_hardening import curve, hardened, reach

EXTRACTION = extraction_tabular.ID


def token_bucket(times_s: np.ndarray, rate_per_minute: float, burst: float, quota: int) -> int:
    """How many of one client's requests (sorted times in seconds) are allowed."""
    tokens, last, allowed = float(burst), None, 0
    rate = rate_per_minute / 60.0
    for t in times_s.tolist():
        if last is not None:
            tokens = min(float(burst), tokens + (t - last) * rate)
        last = t
        if tokens >= 1.0 and allowed < quota:
            tokens -= 1.0
            allowed += 1
    return allowed


def read_traffic(out_dir: Any) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Per-client request times (seconds into the day) and the labels document."""
    times: dict[str, list[str]] = defaultdict(list)
    with (out_dir / "logs.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            rec = json.loads(line)
            times[rec["client_id"]].append(rec["ts"].rstrip("Z"))
    labels = json.loads((out_dir / "labels.json").read_text(encoding="utf-8"))
    day = np.datetime64(labels["day"], "ms")
    seconds = {
        c: np.sort((np.array(ts, dtype="datetime64[ms]") - day).astype(np.int64) / 1e3)
        for c, ts in times.items()
    }
    return seconds, labels


def _limit(spec: Any, mitigation: str) -> tuple[float, float, int]:
    try:
        return (float(spec["rate_per_minute"]), float(spec["burst"]), int(spec["daily_quota"]))
    except (KeyError, TypeError, ValueError):
        raise InputError(
            f"{mitigation}.limits: each entry needs rate_per_minute, burst and daily_quota numbers"
        ) from None


def run(ctx: HardenContext) -> list[Outcome]:
    with few_threads(2):
        return _run(ctx)


def _run(ctx: HardenContext) -> list[Outcome]:
    from mlhunt.scenarios.traffic import simulate

    loaded, p = ctx.loaded, ctx.params
    limits = [_limit(s, ctx.mitigation) for s in p.get("limits") or []]
    if not limits:
        raise InputError(f"{ctx.mitigation}.limits: at least one limit is needed")
    output = str(p.get("output", "scores"))
    predict = (
        loaded.predict_proba if output == "scores" else hardened(loaded.predict_proba, output, 1)
    )
    ctx.progress(f"extraction on the {output} API: how many queries it needs")
    target = ModelTarget(
        f"{loaded.model_name}+{output}", loaded.spec, tuple(loaded.classes), predict
    )
    result = run_attack(
        ctx,
        extraction_tabular,
        target,
        attack_params(EXTRACTION, p.get("extraction")),
        "extraction",
    )
    need = reach(curve(result.curves), "balanced_agreement", float(p.get("target", 0.95)))
    ctx.progress("simulating a day of traffic")
    traffic = ctx.out_dir / "traffic"
    simulate(loaded, traffic, seed=ctx.seed, scale=float(p.get("scale", 1.0)))
    times, labels = read_traffic(traffic)
    benign = [c for c, lab in labels["clients"].items() if lab == "benign"]
    attackers = {
        style: info["clients"] for style, info in labels["attacks"].items() if "extraction" in style
    }
    before = {
        style: {
            "queries": sum(len(times.get(c, ())) for c in clients),
            "clients": len(clients),
            "fidelity": labels["attacks"][style].get("fidelity"),
            "queries_needed": need["queries_to_target"],
        }
        for style, clients in attackers.items()
    }
    u_before = {"benign_clients_throttled": 0.0, "benign_requests_rejected": 0.0}
    outcomes = []
    for rate, burst, quota in limits:
        allowed = {c: token_bucket(t, rate, burst, quota) for c, t in times.items()}
        after = {}
        for style, clients in attackers.items():
            got = sum(allowed.get(c, 0) for c in clients)
            q = need["queries_to_target"]
            after[style] = {
                "queries_allowed": got,
                "queries_made": before[style]["queries"],
                "stopped": q is None or got < q,
            }
        hit = [c for c in benign if allowed[c] < len(times[c])]
        lost = sum(len(times[c]) - allowed[c] for c in benign)
        total = sum(len(times[c]) for c in benign)
        u_after = {
            "benign_clients_throttled": round(len(hit) / max(len(benign), 1), 4),
            "benign_requests_rejected": round(lost / max(total, 1), 4),
        }
        ok = all(a["stopped"] for a in after.values()) and u_after[
            "benign_clients_throttled"
        ] <= float(p.get("max_benign_throttled", 0.01))
        passed = ", ".join(
            f"{s} {a['queries_allowed']}/{a['queries_made']}" for s, a in after.items()
        )
        summary = (
            f"{rate:g}/min, burst {burst:g}, quota {quota}: extraction on the {output} API needs "
            f"{need['queries_to_target'] or 'more than ' + str(need['queries_tried'])} queries; "
            f"allowed/made per attacker: {passed}; {len(hit)} of {len(benign)} benign clients "
            f"throttled ({u_after['benign_requests_rejected']:.2%} of benign requests)"
        )
        outcomes.append(
            Outcome(
                variant={"rate_per_minute": rate, "burst": burst, "daily_quota": quota},
                utility_before=u_before,
                utility_after=u_after,
                attack_before=before,
                attack_after=after,
                effective=ok,
                summary=summary,
                extra={
                    "extraction_need": {**need, "output": output},
                    "benign_throttled": len(hit),
                    "benign_clients": len(benign),
                    "traffic": str(traffic),
                },
            )
        )
    for o in outcomes:
        o.plots.append(_plot(ctx, o, need["queries_to_target"]))
    return outcomes


def _plot(ctx: HardenContext, o: Outcome, needed: int | None) -> str:
    """Per extraction attacker: queries made and queries the limit lets through, against what
    the attack needs (dashed line)."""
    from mlhunt.harden._plots import bars

    styles = list(o.attack_after)
    v = o.variant
    name = f"query_limits_{v['rate_per_minute']:g}pm_{v['burst']:g}_{v['daily_quota']}.png"
    line = (float(needed), "queries the extraction needs") if needed else None
    return bars(
        ctx.out_dir,
        name,
        styles,
        {
            "made": [o.attack_after[s]["queries_made"] for s in styles],
            "let through": [o.attack_after[s]["queries_allowed"] for s in styles],
        },
        ylabel="queries",
        logy=True,
        hline=line,
        title=f"{v['rate_per_minute']:g}/min, burst {v['burst']:g}, quota "
        f"{v['daily_quota']}: {o.utility_after['benign_clients_throttled']:.1%} "
        "benign clients throttled",
    )

"""Score an `mlhunt hunt` JSON report against the outside range's labels.

A style's attacker is caught by a finding of that style's detector naming its key at or above
the severity the docs give (docs/llmhunt.md): medium for most, high for a canary leak, low for
indirect injection the model read but did not act on in that answer and for probing alone;
for campaigns, a campaign finding whose members include the key, medium from 3 keys, high
from 5, critical from 10. A benign key is alerted by any finding at medium or above naming it
(or listing it as a campaign member). `python -m tests.llm_range_outside_score OUT` prints
the table for a range under OUT hunted into OUT/hunt.json.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

SEV = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}
DETECTOR = {
    "prompt-injection": "MLH-HUNT-LLM-PROMPT-INJECTION",
    "indirect-injection": "MLH-HUNT-LLM-INDIRECT-INJECTION",
    "prompt-extraction": "MLH-HUNT-LLM-PROMPT-LEAK",
    "sensitive-output": "MLH-HUNT-LLM-SENSITIVE-OUTPUT",
    "excessive-agency": "MLH-HUNT-LLM-EXCESSIVE-AGENCY",
    "unbounded-consumption": "MLH-HUNT-LLM-CONSUMPTION",
    "campaign": "MLH-HUNT-LLM-CAMPAIGN",
}


# Where the docs say a variant is seen by another detector, or not yet by its own:
# docs/llmhunt.md lists "sensitive reads followed by outbound writes in one tool chain" as not
# yet covered by excessive agency; the data such a chain sends out is the sensitive-output
# detector's ("in tool arguments sent outside").
ALSO = {"read-then-exfiltrate": "MLH-HUNT-LLM-SENSITIVE-OUTPUT"}


def documented_floor(style: str, variant: str) -> str:
    if variant == "canary-leak":
        return "high"
    # indirect instructions the model read but did not act on in that same answer are low (0.5,
    # docs/llmhunt.md), and so are probes alone (prompt_leak.yaml)
    if variant in ("phishing-answer", "probing-only", "transaction-memo-delayed"):
        return "low"
    if variant.startswith("jailbreak-12"):
        return "critical"
    if variant.startswith("template-6"):
        return "high"
    return "medium"


def score(report: dict, labels: dict[str, dict]) -> dict:
    """Per variant: attackers caught / total, first-detection events; benign keys alerted."""
    by_target: dict[str, list[dict]] = defaultdict(list)
    for f in report["findings"]:
        by_target[f["target"]].append(f)
        for m in f["evidence"].get("members", []):
            by_target[m].append(f)
    variants: dict[str, dict] = {}
    events: list[int] = []
    for key, lab in sorted(labels.items()):
        if lab["label"] != "attack":
            continue
        v = variants.setdefault(
            f"{lab['style']}/{lab['variant']}",
            {"keys": 0, "caught": 0, "missed": [], "got": [], "events": []},
        )
        v["keys"] += 1
        floor = SEV[documented_floor(lab["style"], lab["variant"])]
        want = {DETECTOR[lab["style"]], ALSO.get(lab["variant"], "")}
        hits = [
            f
            for f in by_target[key]
            if f["evidence"]["detector"] in want and SEV[f["severity"]] >= floor
        ]
        v["got"].append(
            sorted({f"{f['evidence']['detector'][13:]}:{f['severity']}" for f in by_target[key]})
        )
        if hits:
            v["caught"] += 1
            if lab["style"] != "campaign":
                events.append(min(f["evidence"]["detected_at_event"] for f in hits))
                v["events"].append(events[-1])
        else:
            v["missed"].append(key)
    benign = [k for k, lab in labels.items() if lab["label"] == "benign"]
    alerted = {
        k: sorted({f"{f['evidence']['detector'][13:]}:{f['severity']}" for f in by_target[k]})
        for k in benign
        if any(SEV[f["severity"]] >= SEV["medium"] for f in by_target[k])
    }
    events.sort()
    return {
        "variants": variants,
        "benign": len(benign),
        "benign_alerted": {k: (labels[k]["variant"], v) for k, v in alerted.items()},
        "median_detected_at_event": events[len(events) // 2] if events else None,
        "max_detected_at_event": events[-1] if events else None,
    }


def main(out: Path) -> None:
    labels = json.loads((out / "labels.json").read_text("utf-8"))
    s = score(json.loads((out / "hunt.json").read_text("utf-8")), labels)
    for name, v in s["variants"].items():
        print(f"{v['caught']}/{v['keys']}  {name:44s} at {v['events']} {v['got']}")
    print(f"benign alerted: {len(s['benign_alerted'])}/{s['benign']}", s["benign_alerted"])
    print(
        "detected_at_event median", s["median_detected_at_event"], "max", s["max_detected_at_event"]
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]))

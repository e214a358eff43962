"""`mlhunt run` on the LLM example (examples/llm-helpdesk): the LLM range's gateway log is
simulated, hunted by the LLM detectors, and every LLM threat a detector validates is marked
observed with the hunt's findings as evidence."""

from __future__ import annotations

from pathlib import Path

from mlhunt.run.api import run_project
from mlhunt.run.project import load_project

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "llm-helpdesk" / "mlhunt.yaml"
OBSERVED = {
    "MLH-LLM-PROMPT-INJECTION-DIRECT",
    "MLH-LLM-PROMPT-INJECTION-INDIRECT",
    "MLH-LLM-SYSTEM-PROMPT-LEAKAGE",
    "MLH-LLM-SENSITIVE-INFORMATION-DISCLOSURE",
    "MLH-LLM-EXCESSIVE-AGENCY",
    "MLH-ML-DENIAL-OF-AI-SERVICE",  # where the threat model puts unbounded consumption
}


def test_run_marks_the_llm_threats_observed_with_hunt_evidence(tmp_path: Path) -> None:
    project = load_project(EXAMPLE)
    project.output = str(tmp_path / "out")
    project.logs[0].scale = 0.2  # 40 benign users and every attack style: seconds
    doc = run_project(project).document
    hunt = {f["id"]: f for f in doc["findings"] if f["source"] == "hunt"}
    assert hunt and all(f["rule_id"].startswith("MLH-HUNT-LLM-") for f in hunt.values())
    (part,) = doc["parts"]["hunt"]
    assert part["engine"] == "llmhunt" and part["read"]["malformed"] == 0
    verdicts = {
        f["rule_id"]: f["validation"]
        for f in doc["findings"]
        if f["source"] == "model" and f.get("validation")
    }
    for rule in OBSERVED:
        v = verdicts[rule]
        assert "observed" in v["statuses"], rule
        assert v["evidence"] and set(v["evidence"]) <= set(hunt), rule
    # threats no detector speaks to stay untested
    assert verdicts["MLH-LLM-SUPPLY-CHAIN"]["statuses"] == ["untested"]
    assert doc["summary"]["by_validation"]["observed"] >= len(OBSERVED)

"""Model theft from storage, decided by the artifact's bytes at rest: a model format in the
clear validates the threat on the element that owns the artifact, an encryption envelope refutes
it, a blob the check does not know says nothing (and the run names the check that would test
it)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from mlhunt.run.api import run_scan, threat_model
from mlhunt.run.coverage import annotate_untested, registry
from mlhunt.run.project import ScanConfig, load_project
from mlhunt.run.validation import link, scan_evidence
from mlhunt.scan.at_rest import RULE, at_rest, envelope
from tests.conftest import EXAMPLES

THEFT = "MLH-ML-MODEL-THEFT-STORAGE"


def _b64(obj: dict[str, str]) -> bytes:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=")


# Headers as each format's specification writes them, followed by opaque bytes.
ENVELOPES = {
    "age": b"age-encryption.org/v1\n-> X25519 abc\nxyz\n--- def\n" + bytes(range(64)),
    "age (armoured)": b"-----BEGIN AGE ENCRYPTED FILE-----\nYWdlLWVu\n",
    "OpenPGP message (armoured)": b"\n-----BEGIN PGP MESSAGE-----\n\nhF4DAAAA\n",
    "Vault transit ciphertext": b"vault:v1:8SDd3WHDOjf7mq69CyCqYjBXAiQQAVZRkFM13ok481zo==",
    "AWS Encryption SDK message (KMS envelope)": b"\x02\x05\x78" + bytes(range(61)),
    "JWE (dir, A256GCM)": _b64({"alg": "dir", "enc": "A256GCM"}) + b"..aXY.Y2lwaGVy.dGFn",
}


def test_envelopes_and_formats_from_bytes(tmp_path: Path) -> None:
    """Each documented envelope header is recognised; a model format is the model in the clear;
    a JWS (signed, not encrypted), random bytes and text are not judged."""
    for name, head in ENVELOPES.items():
        assert envelope(head) == name, name
    jws = _b64({"alg": "RS256", "typ": "JWT"}) + b"." + _b64({"sub": "x"}) + b".c2ln"
    noise = np.random.default_rng(0).bytes(4096)
    for blob in (jws, noise, b"tree\nversion=v4\n", b"\x01\x80\x99\x99" + noise):
        assert envelope(blob) is None

    np.savez(tmp_path / "model.npz", w=np.zeros(3))
    (tmp_path / "model.age").write_bytes(ENVELOPES["age"])
    (tmp_path / "model.bin").write_bytes(noise)
    assert at_rest(tmp_path / "model.npz").in_clear is True
    age = at_rest(tmp_path / "model.age")
    assert (age.in_clear, age.what) == (False, "age")
    assert at_rest(tmp_path / "model.bin").in_clear is None


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_openssl_encrypted_artifact_is_an_envelope(tmp_path: Path) -> None:
    """A model encrypted by the real openssl tool is not in the clear."""
    np.savez(tmp_path / "model.npz", w=np.zeros(3))
    out = tmp_path / "model.npz.enc"
    cmd = ["openssl", "enc", "-aes-256-cbc", "-pbkdf2", "-salt", "-pass", "pass:test"]
    subprocess.run(
        [*cmd, "-in", str(tmp_path / "model.npz"), "-out", str(out)],
        check=True,
        timeout=30,
    )
    assert (at_rest(out).in_clear, at_rest(out).what) == (False, "openssl enc")


def _linked(tmp_path: Path, artifact: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The scenario-artifact scan of ``artifact`` as loan approval's model-artifact evidence,
    linked and annotated as `run` does: (the theft threat, the scan's at-rest finding)."""
    tmp_path.mkdir()
    path = tmp_path / "mlhunt.yaml"
    doc = {"system": str(EXAMPLES / "loan-approval" / "system.yaml"), "output": str(tmp_path)}
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    project = load_project(path)
    cfg = ScanConfig(scenario="loan-approval", element="model-artifact")
    model_doc = threat_model(project)
    scan = run_scan(project, cfg, artifact, model_doc)
    sets, loose = scan_evidence(scan["findings"], cfg.element)
    assert not loose
    linked = annotate_untested(link(model_doc, sets))
    theft = next(f for f in linked["findings"] if f["rule_id"] == THEFT and f["source"] == "model")
    (finding,) = [f for f in scan["findings"] if f["rule_id"] == RULE]
    return theft, finding


def test_bytes_at_rest_decide_theft_from_storage(tmp_path: Path) -> None:
    """Loan approval's model-artifact declares encryption at rest. Weights in the clear validate
    its theft threat anyway (server-side encryption decrypts for a reader of the store), and
    only there: the registry, grouped in the same threat, stays untested. An age envelope
    refutes it; an unknown blob leaves it untested with the at-rest scan as the check to run."""
    np.savez(tmp_path / "model.npz", w=np.arange(4.0))
    os.chmod(tmp_path / "model.npz", 0o640)
    theft, finding = _linked(tmp_path / "clear", tmp_path / "model.npz")
    v = theft["validation"]
    assert v["status"] == "validated"
    assert v["by_target"] == {"model-artifact": "validated", "model-registry": "untested"}
    (evidence_id,) = v["evidence"]
    assert evidence_id.startswith(f"{RULE}@") and "a scan found it" in v["reason"]
    assert v["risk_before"] < theft["risk"]  # the likelihood rose by the evidence
    ev = finding["evidence"]
    assert ev["weights_in_clear"] is True and ev["format"] == "npz"
    assert (ev["file_mode"], ev["others_can_read"]) == ("0640", False)
    assert ev["size"] == (tmp_path / "model.npz").stat().st_size
    assert ev["store_encryption"].startswith("declared on model-artifact, so server-side")

    (tmp_path / "model.age").write_bytes(ENVELOPES["age"])
    v = _linked(tmp_path / "sealed", tmp_path / "model.age")[0]["validation"]
    assert v["status"] == "refuted" and v["by_target"]["model-artifact"] == "refuted"

    (tmp_path / "model.bin").write_bytes(np.random.default_rng(1).bytes(2048))
    v = _linked(tmp_path / "blob", tmp_path / "model.bin")[0]["validation"]
    assert v["status"] == "untested"
    (check,) = [c for c in v["checks"] if c["kind"] == "scan"]
    assert RULE in check["id"]


def test_theft_check_is_registered_by_its_scan_link() -> None:
    """The coverage registry lists the at-rest scan for the theft threat (from scan_links)."""
    assert any(c.kind == "scan" and c.id == RULE and THEFT in c.threats for c in registry())

"""Secrets: ML credentials and detect-secrets' detectors in .env, YAML, .netrc, configs and
notebooks, with the right line (and notebook cell), no placeholders, no base64 image outputs,
and never the raw secret in the output."""

from __future__ import annotations

import base64
import json
import random
import string
from pathlib import Path

import pytest

from mlhunt.findings import Severity, document
from mlhunt.scan.secrets import redact, scan_secrets

# Synthetic credentials, built at run time so the repository holds none.
RNG = random.Random(1234)


def _rand(alphabet: str, n: int) -> str:
    return "".join(RNG.choice(alphabet) for _ in range(n))


HF = "hf_" + _rand(string.ascii_letters + string.digits, 34)
WANDB = _rand("0123456789abcdef", 40)
MLFLOW_PW = "Tr4ck" + _rand(string.ascii_letters + string.digits, 10)
DB_PW = "Pg" + _rand(string.ascii_letters + string.digits, 14)
AWS = "AKIA" + _rand(string.ascii_uppercase + "234567", 16)
SECRETS = [HF, WANDB, MLFLOW_PW, DB_PW, AWS]


@pytest.fixture(autouse=True)
def precheck_hides_nothing(monkeypatch, tmp_path_factory):
    """Every text these tests scan doubles as a check of the pre-check before detect-secrets
    (mlhunt.scan.secret_shapes): where it spares detect-secrets, detect-secrets finds nothing."""
    from mlhunt.scan import secrets
    from tests.test_scan_secret_shapes import detect_secrets_types

    real = secrets.could_hold_secret

    def checked(text: str, suffix: str) -> bool:
        answer = real(text, suffix)
        if not answer:
            scratch = tmp_path_factory.mktemp("precheck")
            assert detect_secrets_types([(text, suffix)], scratch) == [[]], text
        return answer

    monkeypatch.setattr(secrets, "could_hold_secret", checked)


def by_rule(findings) -> dict[str, list]:
    out: dict[str, list] = {}
    for f in findings:
        out.setdefault(f.rule_id, []).append(f)
    return out


def assert_no_raw_secret(findings) -> None:
    text = json.dumps(document("scan", findings))
    for s in SECRETS:
        assert s not in text


def test_env_file(tmp_path):
    p = tmp_path / ".env"
    p.write_text(
        "# training settings\n"
        f"HF_TOKEN={HF}\n"
        f"WANDB_API_KEY={WANDB}\n"
        f"MLFLOW_TRACKING_URI=https://mlops:{MLFLOW_PW}@mlflow.internal.example.org\n"
        f"DATABASE_URL=postgresql://loan_rw:{DB_PW}@db.bank.internal:5432/loans\n"
        f"AWS_ACCESS_KEY_ID={AWS}\n"
    )
    findings = scan_secrets(p, display="repo/.env")
    rules = by_rule(findings)
    expected = {
        "MLH-SECRET-HF-TOKEN": 2,
        "MLH-SECRET-WANDB-KEY": 3,
        "MLH-SECRET-MLFLOW-URI": 4,
        "MLH-SECRET-DB-URL": 5,
        "MLH-SECRET-AWS-ACCESS-KEY": 6,
    }
    for rule, line in expected.items():
        assert rule in rules, sorted(rules)
        assert [f.evidence["line"] for f in rules[rule]] == [line]
        f = rules[rule][0]
        assert f.severity is Severity.HIGH and f.source == "scan" and f.target == "repo/.env"
        assert f.evidence["preview"] and f.evidence["detector"] and f.mitigations
        assert "CWE-798" in f.cwe
    # One finding per secret: the URL password is not also a Basic Auth / entropy finding.
    assert len(findings) == len(expected)
    assert (
        rules["MLH-SECRET-DB-URL"][0]
        .evidence["context"]
        .startswith("postgresql://loan_rw:****@db.bank.internal")
    )
    assert_no_raw_secret(findings)


def test_yaml_config(tmp_path):
    p = tmp_path / "train.yaml"
    p.write_text(
        "experiment:\n"
        "  name: credit\n"
        "  tracking:\n"
        f"    uri: https://bob:{MLFLOW_PW}@mlflow.example.net/\n"
        "hub:\n"
        f"  token: {HF}\n"
        "storage:\n"
        f"  redis: redis://:{DB_PW}@cache.internal:6379/0\n"
        f"  aws_access_key_id: {AWS}\n"
    )
    rules = by_rule(scan_secrets(p))
    assert rules["MLH-SECRET-MLFLOW-URI"][0].evidence["line"] == 4
    assert rules["MLH-SECRET-HF-TOKEN"][0].evidence["line"] == 6
    assert rules["MLH-SECRET-DB-URL"][0].evidence["line"] == 8
    assert rules["MLH-SECRET-AWS-ACCESS-KEY"][0].evidence["line"] == 9
    assert_no_raw_secret([f for fs in rules.values() for f in fs])


def test_wandb_netrc(tmp_path):
    p = tmp_path / ".netrc"
    p.write_text(
        f"machine github.com\n  login me\n  password {_rand('0123456789abcdef', 40)}\n"
        f"machine api.wandb.ai\n  login user\n  password {WANDB}\n"
    )
    wandb = [f for f in scan_secrets(p) if f.rule_id == "MLH-SECRET-WANDB-KEY"]
    assert [f.evidence["line"] for f in wandb] == [6]
    assert wandb[0].evidence["context"] == "machine api.wandb.ai"


def test_other_db_urls(tmp_path):
    p = tmp_path / "settings.ini"
    p.write_text(
        "[db]\n"
        f"primary = mysql+pymysql://app:{DB_PW}@mysql.internal/app\n"
        f"events = mongodb+srv://reader:{DB_PW}x@cluster0.mongodb.net/events\n"
    )
    db = [f for f in scan_secrets(p) if f.rule_id == "MLH-SECRET-DB-URL"]
    assert sorted(f.evidence["line"] for f in db) == [2, 3]


def test_placeholders_are_not_reported(tmp_path):
    p = tmp_path / "config.env"
    p.write_text(
        "DB_PASSWORD=changeme\n"
        "API_TOKEN=${API_TOKEN}\n"
        "DATABASE_URL=postgresql://user:<password>@localhost:5432/db\n"
        "MLFLOW_TRACKING_URI=https://user:${MLFLOW_PASSWORD}@mlflow.example.com\n"
        "HF_TOKEN=hf_your_token_here\n"
        "SECRET_KEY=example-secret-key\n"
        "REDIS_URL=redis://:{{ redis_password }}@redis:6379\n"
    )
    assert scan_secrets(p) == []


def _notebook(tmp_path: Path, with_image: bool = True) -> Path:
    png = base64.b64encode(bytes(RNG.randrange(256) for _ in range(6000))).decode()
    nb = {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
        "cells": [
            {"cell_type": "markdown", "metadata": {}, "source": ["# Fine-tune\n", "notes\n"]},
            {
                "cell_type": "code",
                "metadata": {},
                "execution_count": 1,
                "source": [
                    "import os\n",
                    "from huggingface_hub import login\n",
                    f'login(token="{HF}")\n',
                ],
                "outputs": [
                    {
                        "output_type": "display_data",
                        "metadata": {},
                        "data": {"image/png": png, "text/plain": ["<Figure size 640x480>"]},
                    }
                ]
                if with_image
                else [],
            },
            {
                "cell_type": "code",
                "metadata": {},
                "execution_count": 2,
                "source": [
                    "import boto3\n",
                    f's3 = boto3.client("s3", aws_access_key_id="{AWS}")\n',
                ],
                "outputs": [
                    {
                        "output_type": "stream",
                        "name": "stdout",
                        "text": [f"WANDB_API_KEY={WANDB}\n"],
                    },
                ],
            },
        ],
    }
    p = tmp_path / "train.ipynb"
    p.write_text(json.dumps(nb, indent=1))
    return p


def test_notebook_cells_and_lines(tmp_path):
    p = _notebook(tmp_path)
    findings = scan_secrets(p)
    rules = by_rule(findings)
    raw_lines = p.read_text().splitlines()

    hf = rules["MLH-SECRET-HF-TOKEN"][0]
    assert hf.evidence["cell"] == 2 and hf.evidence["cell_line"] == 3
    assert "login(token=" in raw_lines[hf.evidence["line"] - 1]

    aws = rules["MLH-SECRET-AWS-ACCESS-KEY"][0]
    assert aws.evidence["cell"] == 3 and aws.evidence["cell_line"] == 2
    assert "boto3.client" in raw_lines[aws.evidence["line"] - 1]

    wandb = rules["MLH-SECRET-WANDB-KEY"][0]
    assert wandb.evidence["cell"] == 3 and wandb.evidence.get("in_output") is True
    assert_no_raw_secret(findings)


def test_notebook_base64_images_are_not_secrets(tmp_path):
    with_image = scan_secrets(_notebook(tmp_path, with_image=True))
    (tmp_path / "train.ipynb").unlink()
    without = scan_secrets(_notebook(tmp_path, with_image=False))
    assert [f.rule_id for f in with_image] == [f.rule_id for f in without]
    assert not [f for f in with_image if f.rule_id == "MLH-SECRET-HIGH-ENTROPY"]


def test_generic_high_entropy_is_medium(tmp_path):
    p = tmp_path / "app.json"
    p.write_text(json.dumps({"signing": _rand(string.ascii_letters + string.digits, 48)}))
    findings = scan_secrets(p)
    assert findings and all(f.severity is Severity.MEDIUM for f in findings)
    assert findings[0].rule_id == "MLH-SECRET-HIGH-ENTROPY"


def test_binary_and_clean_files(tmp_path):
    b = tmp_path / "weights.bin"
    b.write_bytes(b"\x00\x01" + HF.encode())
    assert scan_secrets(b) == []
    c = tmp_path / "params.yaml"
    c.write_text("lr: 0.001\nepochs: 10\nmodel: resnet50\n")
    assert scan_secrets(c) == []


@pytest.mark.parametrize("secret", ["hunter2", "Sup3rS3cretPw", HF, WANDB])
def test_redact_never_reveals(secret):
    preview = redact(secret)
    assert secret not in preview and f"({len(secret)} chars)" in preview


def test_ids_are_stable(tmp_path):
    p = tmp_path / ".env"
    p.write_text(f"HF_TOKEN={HF}\n")
    assert [f.id for f in scan_secrets(p)] == [f.id for f in scan_secrets(p)]


def test_secret_store_references_are_not_secrets(tmp_path):
    """Vault paths and mounted secret files say where a secret is, not what it is."""
    f = tmp_path / "deploy.yaml"
    f.write_text(
        "metadata:\n"
        "  annotations:\n"
        "    vault.hashicorp.com/agent-inject-secret-db-password: database/creds/dashboard_rw\n"
        "env:\n"
        "  DB_PASSWORD_FILE: /vault/secrets/db-password\n"
        "  api_secret: arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/api\n"
        "  db_password: Xk29fPq7Lm3Rt8Vw\n"
    )
    (hit,) = scan_secrets(f)
    assert hit.evidence["line"] == 7

"""Plaintext secrets in configs, YAML, ``.env``, ``.ini``/``.toml``/``.json`` and notebooks.

Two sets of detectors run over every file:

* detect-secrets' default plugin set, in-process (``detect_secrets.core.scan.scan_file`` under
  ``default_settings()``, so its own filters apply: templated values, UUIDs, sequential strings
  ...). Its "Public IP" detector is left out (an address is not a credential), and AWS
  access key ids are also matched directly (its "likely an id" filter drops them after
  ``aws_access_key_id=``).
* ML-specific detectors: Hugging Face tokens, Weights & Biases API keys (in ``WANDB_API_KEY`` /
  ``wandb.login(key=...)`` contexts or a ``.netrc`` entry for api.wandb.ai), MLflow tracking
  URIs with credentials, and database URLs with passwords (PostgreSQL, MySQL, MongoDB, Redis,
  ...).

Jupyter notebooks are parsed as JSON: only cell sources and text outputs (stream text and
``text/plain``) are scanned, never ``image/*`` or other binary outputs, so base64 images are
not mistaken for secrets. Findings carry the cell number, the line inside the cell and, where
it can be located, the line in the ``.ipynb`` file.

Evidence never holds the secret: only a redacted preview (its first characters and its
length). Obvious placeholders (``changeme``, ``<password>``, ``${VAR}``, ``example`` ...) are
not reported.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mlhunt.findings import Finding, Severity
from mlhunt.record import FrozenRecord, Record
from mlhunt.scan.secret_shapes import could_hold_secret

__all__ = ["SECRET_SUFFIXES", "is_secret_candidate", "redact", "scan_secrets"]

MAX_BYTES = 5 * 1024 * 1024

# Files worth scanning for secrets (the caller may pass any text file).
SECRET_SUFFIXES = (
    ".env",
    ".ini",
    ".cfg",
    ".conf",
    ".toml",
    ".json",
    ".yaml",
    ".yml",
    ".properties",
    ".ipynb",
    ".py",
    ".sh",
    ".txt",
    ".netrc",
    ".tf",
    ".tfvars",
)
SECRET_NAMES = (".env", ".netrc", "_netrc", ".pgpass", ".pypirc", "credentials", "config")


def is_secret_candidate(path: Path) -> bool:
    """True for files the secrets scan looks at: config-like suffixes and names (``.env*``)."""
    name = path.name.lower()
    return (
        path.suffix.lower() in SECRET_SUFFIXES
        or name in SECRET_NAMES
        or name.startswith(".env")
        or name.endswith(".env")
    )


# ------------------------------------------------------------------------------------------
# Detectors
# ------------------------------------------------------------------------------------------


class _Kind(FrozenRecord):
    __slots__ = ("priority", "rule_id", "severity", "title")
    rule_id: str
    title: str
    severity: Severity
    priority: int  # lower wins when several detectors hit the same value

    def __init__(self, rule_id: str, title: str, severity: Severity, priority: int) -> None:
        self.set_fields(rule_id=rule_id, title=title, severity=severity, priority=priority)


_HF = _Kind("MLH-SECRET-HF-TOKEN", "Hugging Face access token in plaintext", Severity.HIGH, 0)
_WANDB = _Kind("MLH-SECRET-WANDB-KEY", "Weights & Biases API key in plaintext", Severity.HIGH, 0)
_MLFLOW = _Kind(
    "MLH-SECRET-MLFLOW-URI", "MLflow tracking URI with embedded credentials", Severity.HIGH, 0
)
_DBURL = _Kind("MLH-SECRET-DB-URL", "Database URL with embedded password", Severity.HIGH, 0)

# detect-secrets finds AWS keys, but its "likely an id" filter drops them after
# `aws_access_key_id=`, the most common way they leak in notebooks: matched here as well.
_AWS = _Kind("MLH-SECRET-AWS-ACCESS-KEY", "AWS Access Key in plaintext", Severity.HIGH, 1)
_AWS_ID_RE = re.compile(
    r"(?<![A-Z0-9])((?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[0-9A-Z]{16})(?![A-Z0-9])"
)

_HF_RE = re.compile(r"(?<![A-Za-z0-9_])(hf_[A-Za-z0-9]{34,})(?![A-Za-z0-9])")
_WANDB_CTX_RE = re.compile(
    r"(?i)(?:wandb[_-]?api[_-]?key|wandb\.login\s*\([^)]*?key)\W{0,6}([0-9a-f]{40})(?![0-9a-f])"
)
_NETRC_MACHINE_RE = re.compile(r"\bmachine\s+(\S+)")
_NETRC_PASSWORD_RE = re.compile(r"\bpassword\s+([0-9a-f]{40})(?![0-9a-f])")
_DB_SCHEMES = (
    r"postgres(?:ql)?(?:\+\w+)?|mysql(?:\+\w+)?|mariadb(?:\+\w+)?|mongodb(?:\+srv)?|rediss?"
    r"|mssql(?:\+\w+)?|oracle(?:\+\w+)?|cockroachdb|clickhouse(?:\+\w+)?|snowflake|amqps?"
)
_DBURL_RE = re.compile(r"(?i)\b(" + _DB_SCHEMES + r")://([^:/@\s'\"]*):([^@\s'\"]+)@([^\s'\"/]+)")
_HTTP_CRED_RE = re.compile(r"(?i)\b(https?)://([^:/@\s'\"]+):([^@\s'\"]+)@([^\s'\"/]+)")

# detect-secrets types: credential-specific ones are high, generic entropy is medium.
_GENERIC_TYPES = {"Base64 High Entropy String", "Hex High Entropy String"}
_SKIPPED_TYPES = {"Public IP (ipv4)"}
_TYPE_PRIORITY = {"Secret Keyword": 2, "Basic Auth Credentials": 2}

_PLACEHOLDER_RE = re.compile(
    r"(?i)(change[_-]?me|changeit|example|placeholder|your[_-]|<[^>]*>|\$\{[^}]*\}|\{\{[^}]*\}\}"
    r"|\$\([^)]*\)|^\$[A-Za-z_]\w*$|%\([^)]*\)s|^%s$|^x{3,}$|^\*{3,}$|redacted|dummy|fake|"
    r"^(password|passwd|secret|token|none|null|true|false|test|pass|admin)$|^\.\.\.$)"
)


# Where a secret lives, not the secret: Vault paths (database/creds/app), mounted files,
# cloud secret-manager names. Lower-case path segments only: random keys are mixed case.
_REFERENCE_RE = re.compile(
    r"^(/[\w.-]+(/[\w.-]+)*|vault:\S+|arn:aws:secretsmanager:\S+|projects/[^/\s]+/secrets/\S+"
    r"|[a-z0-9_.-]+(/[a-z0-9_.-]+)+)$"
)


def _is_placeholder(value: str) -> bool:
    v = value.strip().strip("'\"")
    if len(v) < 4 or len(set(v)) <= 2:
        return True
    return bool(_PLACEHOLDER_RE.search(v) or _REFERENCE_RE.match(v))


def redact(secret: str) -> str:
    """A preview that identifies a secret without revealing it: a few leading characters, then
    asterisks, then its length. Never contains the whole value."""
    n = len(secret)
    keep = 4 if n >= 16 else (2 if n >= 8 else 1 if n >= 4 else 0)
    return f"{secret[:keep]}{'*' * 8} ({n} chars)"


class _Hit(Record):
    __slots__ = ("context", "detector", "kind", "line", "secret")

    def __init__(
        self,
        kind: _Kind,
        detector: str,
        line: int,  # 1-based line in the scanned text
        secret: str,
        context: str = "",  # e.g. the URL with its password masked
    ) -> None:
        self.kind = kind
        self.detector = detector
        self.line = line
        self.secret = secret
        self.context = context


def _mask_url(scheme: str, user: str, host: str) -> str:
    return f"{scheme}://{user}:****@{host}"


def _ml_hits(lines: list[str]) -> list[_Hit]:
    hits: list[_Hit] = []
    machine: str | None = None
    for i, line in enumerate(lines, start=1):
        for m in _HF_RE.finditer(line):
            hits.append(_Hit(_HF, "huggingface-token", i, m.group(1)))
        for m in _AWS_ID_RE.finditer(line):
            hits.append(_Hit(_AWS, "aws-access-key-id", i, m.group(1)))
        for m in _WANDB_CTX_RE.finditer(line):
            hits.append(_Hit(_WANDB, "wandb-api-key", i, m.group(1)))
        mm = _NETRC_MACHINE_RE.search(line)
        if mm:
            machine = mm.group(1)
        if machine and "wandb" in machine.lower():
            for m in _NETRC_PASSWORD_RE.finditer(line):
                hits.append(_Hit(_WANDB, "wandb-netrc", i, m.group(1), f"machine {machine}"))
        for m in _DBURL_RE.finditer(line):
            scheme, user, password, host = m.groups()
            hits.append(_Hit(_DBURL, "database-url", i, password, _mask_url(scheme, user, host)))
        for m in _HTTP_CRED_RE.finditer(line):
            scheme, user, password, host = m.groups()
            if "mlflow" in line.lower() or "mlflow" in host.lower():
                hits.append(
                    _Hit(_MLFLOW, "mlflow-tracking-uri", i, password, _mask_url(scheme, user, host))
                )
    return hits


def _slug(text: str) -> str:
    return re.sub(r"[^A-Z0-9]+", "-", text.upper()).strip("-")


def _ds_kind(secret_type: str) -> _Kind:
    if secret_type in _GENERIC_TYPES:
        return _Kind(
            "MLH-SECRET-HIGH-ENTROPY", "High-entropy string (possible secret)", Severity.MEDIUM, 3
        )
    return _Kind(
        f"MLH-SECRET-{_slug(secret_type)}",
        f"{secret_type} in plaintext",
        Severity.HIGH,
        _TYPE_PRIORITY.get(secret_type, 1),
    )


def _detect_secrets_hits(path: Path) -> list[_Hit]:
    from detect_secrets.core.scan import scan_file
    from detect_secrets.settings import default_settings

    hits = []
    with default_settings():
        for s in scan_file(str(path)):
            if s.type in _SKIPPED_TYPES or not s.secret_value:
                continue
            hits.append(
                _Hit(_ds_kind(s.type), f"detect-secrets: {s.type}", s.line_number, s.secret_value)
            )
    return hits


def _scan_text(text: str, suffix: str) -> list[_Hit]:
    """Every detector over ``text`` (written to a temporary file so detect-secrets can pick its
    transformer by suffix); placeholders dropped, overlapping hits reduced to the best one."""
    lines = text.splitlines()
    hits = _ml_hits(lines)
    # Importing detect-secrets costs more than a small scan: skipped when none of its plugins
    # can match (mlhunt.scan.secret_shapes says why that loses nothing).
    if could_hold_secret(text, suffix or ".txt"):
        hits += _detect_secrets_text(text, suffix)
    hits = [h for h in hits if not _is_placeholder(h.secret)]
    return _reduce(hits)


def _detect_secrets_text(text: str, suffix: str) -> list[_Hit]:
    import tempfile

    hits: list[_Hit] = []
    with tempfile.TemporaryDirectory(prefix="mlhunt-secrets-") as tmp:
        tmp_path = Path(tmp) / f"scan{suffix or '.txt'}"
        # "replace": a notebook's JSON may hold lone surrogates ("\\ud800"), not UTF-8 text
        tmp_path.write_text(text, encoding="utf-8", errors="replace")
        try:
            hits += _detect_secrets_hits(tmp_path)
        except (ValueError, OverflowError, RecursionError):
            # detect-secrets' YAML/INI transformers let some parser errors through (PyYAML's
            # chr() of "\U10010000"): scan the same text as plain lines instead.
            plain = tmp_path.with_suffix(".txt")
            tmp_path.replace(plain)
            hits += _detect_secrets_hits(plain)
    return hits


def _reduce(hits: list[_Hit]) -> list[_Hit]:
    best: dict[tuple[int, str], _Hit] = {}
    for h in hits:
        key = (h.line, h.secret)
        if key not in best or h.kind.priority < best[key].kind.priority:
            best[key] = h
    kept = list(best.values())
    # A value another detector already explains (a URL's password, an AWS secret) is not also a
    # generic high-entropy string or keyword hit.
    out = []
    for h in kept:
        shadowed = any(
            o is not h
            and o.line == h.line
            and o.kind.priority < h.kind.priority
            and (h.secret in o.secret or o.secret in h.secret)
            for o in kept
        )
        generic_on_specific_line = h.kind.priority == 3 and any(
            o.line == h.line and o.kind.priority <= 1 for o in kept
        )
        if not shadowed and not generic_on_specific_line:
            out.append(h)
    out.sort(key=lambda h: (h.line, h.kind.priority, h.kind.rule_id))
    return out


# ------------------------------------------------------------------------------------------
# Files and notebooks
# ------------------------------------------------------------------------------------------


def _read(path: Path) -> str | None:
    # Bounded read: a multi-GB (or sparse) file must never be pulled into memory to learn that
    # it is too large.
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_BYTES + 1)
    except OSError:
        return None
    if len(data) > MAX_BYTES or b"\x00" in data[:8192]:
        return None
    return data.decode("utf-8", errors="replace")


def _text_of(value: Any) -> str:
    if isinstance(value, list):
        return "".join(str(v) for v in value)
    return value if isinstance(value, str) else ""


def _list(value: Any) -> list[Any]:
    # A notebook is attacker-controlled JSON: a field that should be a list may be anything.
    return value if isinstance(value, list) else []


def _notebook_parts(nb: dict[str, Any]) -> Iterable[tuple[int, str, str, str]]:
    """(cell number, part, text, suffix) for every cell source and text output."""
    cells = nb.get("cells")
    if not isinstance(cells, list):  # nbformat 3: worksheets
        cells = [
            c
            for ws in _list(nb.get("worksheets"))
            if isinstance(ws, dict)
            for c in _list(ws.get("cells"))
        ]
    for n, cell in enumerate(cells, start=1):
        if not isinstance(cell, dict):
            continue
        kind = cell.get("cell_type")
        source = _text_of(cell.get("source", cell.get("input")))
        if source:
            yield n, "source", source, ".py" if kind == "code" else ".md"
        for out in _list(cell.get("outputs")):
            if not isinstance(out, dict):
                continue
            text = _text_of(out.get("text"))
            data = out.get("data")
            if isinstance(data, dict):
                # text/plain only: image/png, application/pdf ... are base64, never scanned.
                text += _text_of(data.get("text/plain"))
            if text:
                yield n, "output", text, ".txt"


def _file_line(raw_lines: list[str], cursor: int, text_line: str) -> tuple[int | None, int]:
    """The 1-based line of the .ipynb file holding ``text_line`` (JSON-encoded), searching from
    ``cursor``; returns (line or None, new cursor)."""
    needle = json.dumps(text_line)[1:-1].strip()
    if not needle:
        return None, cursor
    for i in range(cursor, len(raw_lines)):
        if needle in raw_lines[i]:
            return i + 1, i
    return None, cursor


class _Located(Record):
    __slots__ = ("extra", "hit", "line")

    def __init__(self, hit: _Hit, line: int, extra: dict[str, Any]) -> None:
        self.hit = hit
        self.line = line
        self.extra = extra


def _scan_notebook(raw: str) -> list[_Located] | None:
    try:
        nb = json.loads(raw)
    except json.JSONDecodeError:
        return None
    if not isinstance(nb, dict):
        return None
    raw_lines = raw.splitlines()
    cursor = 0
    located: list[_Located] = []
    for cell, part, text, suffix in _notebook_parts(nb):
        text_lines = text.splitlines()
        for hit in _scan_text(text, suffix):
            src = text_lines[hit.line - 1] if 0 < hit.line <= len(text_lines) else ""
            file_line, cursor = _file_line(raw_lines, cursor, src)
            extra = {"cell": cell, "cell_line": hit.line}
            if part == "output":
                extra["in_output"] = True
            located.append(_Located(hit, file_line or 1, extra))
    return located


def scan_secrets(path: Path, *, display: str | None = None) -> list[Finding]:
    """Plaintext credentials in one file (text files only; binaries and files over 5 MB are
    skipped). ``display`` is the finding target (default: the path as given).

    Each finding's evidence holds ``line`` (1-based, in the file), ``detector``, ``type`` and a
    redacted ``preview``; notebook findings add ``cell`` (1-based) and ``cell_line``.
    """
    path = Path(path)
    target = display or str(path)
    raw = _read(path)
    if raw is None:
        return []
    located: list[_Located] | None = None
    if path.suffix.lower() == ".ipynb":
        located = _scan_notebook(raw)
    if located is None:
        suffix = path.suffix.lower()
        if not suffix and path.name.lower().startswith(".env"):
            suffix = ".env"
        located = [_Located(h, h.line, {}) for h in _scan_text(raw, suffix or ".txt")]
    findings: list[Finding] = []
    seen: dict[str, int] = {}
    for loc in located:
        h = loc.hit
        where = f"{loc.line}" + (f"/cell{loc.extra['cell']}" if "cell" in loc.extra else "")
        fid = f"{h.kind.rule_id}@{target}:{where}"
        seen[fid] = seen.get(fid, 0) + 1
        if seen[fid] > 1:
            fid += f"~{seen[fid]}"
        evidence: dict[str, Any] = {
            "line": loc.line,
            "detector": h.detector,
            "type": h.kind.title.replace(" in plaintext", ""),
            "preview": redact(h.secret),
        }
        if h.context:
            evidence["context"] = h.context
        evidence.update(loc.extra)
        findings.append(
            Finding(
                id=fid,
                rule_id=h.kind.rule_id,
                title=h.kind.title,
                severity=h.kind.severity,
                source="scan",
                target=target,
                description=_description(h),
                stride=["I"],
                cwe=["CWE-798", "CWE-312"] if h.kind.priority < 3 else ["CWE-312"],
                atlas=["AML.T0055"],
                evidence=evidence,
                mitigations=_mitigations(h),
            )
        )
    return findings


def _description(h: _Hit) -> str:
    if h.kind.priority == 3:
        return (
            "A high-entropy string that may be a key or token is stored in plain text. Check it; "
            "if it is a credential, move it out of the file and rotate it."
        )
    return (
        f"{h.kind.title.replace(' in plaintext', '')} stored in plain text. Anyone with read "
        "access to the file, the repository history or a copy of it can use the credential, "
        "e.g. to pull or replace models, read experiment data or reach the database."
    )


def _mitigations(h: _Hit) -> list[str]:
    common = [
        "Revoke and rotate the credential now: removing it from the file does not remove it from "
        "history or copies.",
        "Load it at run time from a secret store (Vault, Kubernetes Secret, cloud secrets "
        "manager) or an environment variable that is not committed.",
        "Add a pre-commit secret scan (mlhunt scan or detect-secrets) so it does not come back.",
    ]
    if h.kind is _HF:
        return [*common, "Use fine-grained, read-only Hugging Face tokens scoped to the repos."]
    if h.kind is _WANDB:
        return [*common, "Use `wandb login` on the machine or WANDB_API_KEY from a secret."]
    if h.kind in (_MLFLOW, _DBURL):
        return [
            *common,
            "Keep the URL without user:password and pass credentials separately "
            "(MLFLOW_TRACKING_USERNAME/PASSWORD from a secret, PGPASSFILE, IAM auth).",
        ]
    return common

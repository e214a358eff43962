"""A cheap pre-check before detect-secrets: can any of its plugins find anything in a text?

Importing detect-secrets costs more than the rest of a small scan (it imports ``requests`` for
secret verification, which mlhunt never runs). :func:`could_hold_secret` answers False only
when no plugin of detect-secrets 1.5.0's default set, public IP aside (mlhunt drops that one),
can report a value in the text, so skipping detect-secrets then changes no finding.

Why the answer is a superset. detect-secrets reads a file's lines as they are, or as its
transformers rewrite them: configparser (tried on every file) gives ``key = "value"``, the YAML
parser (``.yaml``, ``.yml``, ``.eyaml``) ``key: "value"  # comment``. Each rewritten piece
(key, value, comment) is a piece of the raw text, with two exceptions, both sent to
detect-secrets: configparser interpolation (``%(name)s``: any ``%``) and, in YAML, escapes,
tags, directives, anchors, aliases and complex keys (any of ``\\ ! % & * ? [ {``). The only
characters added are the separators, the quotes around the value and a backslash before an
inner ``"``. Every plugin's match holds a "shape" below made only of characters those
additions cannot supply, so the shape lies within one piece and is in the raw text too:

* the keyword plugin: one of its denylist words, all holding key, pass, pwd, secret or
  contrase (matched case-insensitively, as the plugin does);
* the credential plugins (AWS, GitHub, Slack, JWT, Stripe ...): a fixed prefix or a long run
  of their characters, each a relaxation of the plugin's own regular expression;
* the entropy plugins: a quoted run of their charset whose Shannon entropy exceeds the limit,
  which needs at least 23 distinct characters (base64, limit 4.5) or 9 (hex, limit 3.0). A
  rewritten run is a raw run plus at most the added backslash (in the base64 charset), so a
  raw run with 22 distinct characters is asked for (base64), or 8 (hex, a margin of one).

The table was derived from detect-secrets 1.5.0; with another version installed every text goes
to detect-secrets (``tests/test_scan_secret_shapes.py`` checks the plugin set and the superset
on the corpora, the secrets fixtures and seeded generated lines).
"""

from __future__ import annotations

import importlib.util
import re
from functools import cache
from pathlib import Path

__all__ = ["SHAPES_VERSION", "could_hold_secret", "shapes_apply"]

#: The detect-secrets release the shapes were derived from.
SHAPES_VERSION = "1.5.0"
#: Suffixes detect-secrets parses as YAML (``detect_secrets.util.filetype``).
YAML_SUFFIXES = frozenset({".yaml", ".yml", ".eyaml"})

# Characters with which a transformer builds text that is not in the file (see above).
_INTERPOLATION = "%"
_YAML_BUILDERS = re.compile(r"[\\!%&*?\[{]")

_SHAPES = re.compile(
    "|".join(
        (
            # Keyword plugin: every denylist word holds one of these.
            r"(?i:key|pass|pwd|secret|contrase)",
            # Basic auth, Slack webhooks, Cloudant and SoftLayer URLs.
            r"://",
            # Artifactory.
            r"AKC[a-zA-Z0-9]{10}",
            r"AP[\dABCDEF][a-zA-Z0-9]{8}",
            # AWS access key id, and the 40-character secret (case-insensitive, as the plugin).
            r"(?:A3T[A-Z0-9]|ABIA|ACCA|AKIA|ASIA)[0-9A-Z]{16}",
            r"(?i:[0-9a-zA-Z/+]{40})",
            # Discord bot token.
            r"[MNO][a-zA-Z\d_-]{23}",
            # GitHub and GitLab tokens.
            r"gh[pousr]_",
            r"(?:glpat|gldt|glft|glsoat|glrt|glcbt|glimt|glptt|glagent|gloas)-",
            r"GR1348941",
            # IBM Cloud IAM (44), IBM COS HMAC (48 hex), SoftLayer (64), Cloudant (64 hex).
            r"[a-zA-Z0-9_-]{44}",
            # Cloudant API key.
            r"[a-z]{24}",
            # JWT, Mailchimp, NPM, OpenAI, PyPI, SendGrid.
            r"eyJ",
            r"[0-9a-z]{32}-us[0-9]",
            r"_authToken=",
            r"T3BlbkFJ",
            r"pypi-AgE",
            r"SG\.",
            # Slack, Square, Stripe, Telegram, Twilio.
            r"(?i:xox[abposr]-)",
            r"sq0csp-",
            r"[rs]k_live_",
            r"\d{8}:",
            r"AC[a-z0-9]{32}",
            r"SK[a-z0-9]{32}",
        )
    )
)

# The entropy plugins' charsets (``high_entropy_strings``), as runs long enough to matter.
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/\\=_-]{22,}")
_BASE64_DISTINCT = 22
_HEX_RUN = re.compile(r"[0-9a-fA-F]{8,}")
_HEX_DISTINCT = 8


@cache
def shapes_apply() -> bool:
    """True when the installed detect-secrets is the release the shapes were derived from
    (found without importing it)."""
    try:
        spec = importlib.util.find_spec("detect_secrets")
    except (ImportError, ValueError):
        return False
    if spec is None or spec.origin is None:
        return False
    site = Path(spec.origin).parent.parent
    return (site / f"detect_secrets-{SHAPES_VERSION}.dist-info").is_dir()


def _entropy_run(text: str) -> bool:
    return any(len(set(m.group())) >= _BASE64_DISTINCT for m in _BASE64_RUN.finditer(text)) or any(
        len(set(m.group())) >= _HEX_DISTINCT for m in _HEX_RUN.finditer(text)
    )


def could_hold_secret(text: str, suffix: str) -> bool:
    """False only when detect-secrets (default plugins, public IP aside) can report nothing
    in ``text`` scanned as a file with ``suffix``; True when it may, or cannot be told."""
    if not shapes_apply() or _INTERPOLATION in text:
        return True
    if suffix.lower() in YAML_SUFFIXES and _YAML_BUILDERS.search(text):
        return True
    return _SHAPES.search(text) is not None or _entropy_run(text)

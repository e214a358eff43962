"""The pre-check before detect-secrets (``mlhunt.scan.secret_shapes``) never hides a finding.

A text the pre-check lets pass is one detect-secrets would have found nothing in: checked
against detect-secrets itself on seeded generated texts (near misses of every plugin's shape,
entropy strings around the limits, keywords in odd cases and scripts, config and YAML files),
and, with the pre-check switched off, on the text files of the LLM corpus and of every example's
deploy folders (the whole scan corpus: ``test_scan_artifacts``; the secrets fixtures:
``test_scan_secrets``).
"""

from __future__ import annotations

import base64
import json
import random
import string
from collections.abc import Callable
from pathlib import Path

import pytest
from detect_secrets.core.scan import scan_file
from detect_secrets.settings import default_settings

from mlhunt.findings import document
from mlhunt.scan import SECRET_SUFFIXES
from mlhunt.scan.secret_shapes import SHAPES_VERSION, could_hold_secret, shapes_apply
from mlhunt.scan.secrets import scan_secrets
from tests.conftest import EXAMPLES
from tests.scan_llm_corpus import build_llm_corpus

# The plugins detect-secrets 1.5.0 enables by default; the shapes cover each of them.
PLUGINS = {
    "ArtifactoryDetector",
    "AWSKeyDetector",
    "AzureStorageKeyDetector",
    "Base64HighEntropyString",
    "BasicAuthDetector",
    "CloudantDetector",
    "DiscordBotTokenDetector",
    "GitHubTokenDetector",
    "GitLabTokenDetector",
    "HexHighEntropyString",
    "IbmCloudIamDetector",
    "IbmCosHmacDetector",
    "IPPublicDetector",
    "JwtTokenDetector",
    "KeywordDetector",
    "MailchimpDetector",
    "NpmDetector",
    "OpenAIDetector",
    "PrivateKeyDetector",
    "PypiTokenDetector",
    "SendGridDetector",
    "SlackDetector",
    "SoftlayerDetector",
    "SquareOAuthDetector",
    "StripeDetector",
    "TelegramBotTokenDetector",
    "TwilioKeyDetector",
}
SUFFIXES = (".txt", ".yaml", ".yml", ".ini", ".cfg", ".py", ".env", ".json", ".toml", ".md")
B64 = string.ascii_letters + string.digits + "+/\\-_="
ALNUM = string.ascii_letters + string.digits


def detect_secrets_types(texts: list[tuple[str, str]], scratch: Path) -> list[list[str]]:
    """What detect-secrets (default plugins, public IP aside) reports in each text, written as
    mlhunt writes it (``scan<suffix>``; a parser error retried as ``.txt``)."""
    out = []
    with default_settings():
        for n, (text, suffix) in enumerate(texts):
            folder = scratch / str(n)
            folder.mkdir(parents=True)
            path = folder / f"scan{suffix}"
            path.write_text(text, encoding="utf-8", errors="replace")
            try:
                found = list(scan_file(str(path)))
            except (ValueError, OverflowError, RecursionError):
                found = list(scan_file(str(path.replace(path.with_suffix(".txt")))))
            out.append([s.type for s in found if s.type != "Public IP (ipv4)" and s.secret_value])
    return out


# ------------------------------------------------------------------------ generated near misses


def _jwt(rng: random.Random) -> str:
    def part(obj: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    return f"{part({'alg': 'HS256'})}.{part({'sub': rng.randrange(10**6)})}.{_s(rng, ALNUM, 20)}"


def _s(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _distinct(rng: random.Random, alphabet: str, k: int, extra: int) -> str:
    """A string of exactly ``k`` distinct characters (entropy near log2 k), ``k + extra`` long."""
    chars = rng.sample(alphabet, k)
    body = chars + [rng.choice(chars) for _ in range(extra)]
    rng.shuffle(body)
    return "".join(body)


TOKENS: list[Callable[[random.Random], str]] = [
    lambda r: "AKIA" + _s(r, string.ascii_uppercase + string.digits, 16),
    lambda r: "aws_secret_key = '" + _s(r, ALNUM + "/+", 40) + "'",
    lambda r: "ghp_" + _s(r, ALNUM, 36),
    lambda r: "glpat-" + _s(r, ALNUM, 20),
    lambda r: "xoxb-" + str(r.randrange(10**9)) + "-" + _s(r, "abcdef0123", 12),
    lambda r: "sk_live_" + _s(r, ALNUM, 24),
    lambda r: "SG." + _s(r, ALNUM, 22) + "." + _s(r, ALNUM, 43),
    lambda r: "eyJ" + _jwt(r)[3:],
    lambda r: str(r.randrange(10**8, 10**9)) + ":" + _s(r, ALNUM, 35),
    lambda r: "AC" + _s(r, string.ascii_lowercase + string.digits, 32),
    lambda r: _s(r, string.ascii_lowercase + string.digits, 32) + "-us" + str(r.randrange(20)),
    lambda r: "pypi-AgEIcHlwaS5vcmc" + _s(r, ALNUM, 70),
    lambda r: "sk-" + _s(r, ALNUM, 20) + "T3BlbkFJ" + _s(r, ALNUM, 20),
    lambda r: "sq0csp-" + _s(r, ALNUM, 43),
    lambda r: " AKC" + _s(r, ALNUM, 12),
    lambda r: "=AP6" + _s(r, ALNUM, 10),
    lambda r: "M" + _s(r, ALNUM, 23) + "." + _s(r, ALNUM, 6) + "." + _s(r, ALNUM, 27),
    lambda r: "//registry.npmjs.org/:_authToken=npm_" + _s(r, ALNUM, 36),
    lambda r: "https://user:" + _s(r, ALNUM, 10) + "@example.com",
    lambda r: "-----BEGIN RSA PRIVATE KEY-----",
    lambda r: "AccountKey=" + _s(r, ALNUM + "+/", 88),
    lambda r: "ibm_api_key = " + _s(r, ALNUM + "_-", 44),
    lambda r: "cos_secret_key = " + _s(r, "0123456789abcdef", 48),
    lambda r: "softlayer_api_key = " + _s(r, string.ascii_lowercase + string.digits, 64),
    lambda r: "cloudant_password = " + _s(r, "0123456789abcdef", 64),
    lambda r: "cl_api_key = " + _s(r, string.ascii_lowercase, 24),
]
KEYWORDS = ["api_key", "apikey", "db_pass", "password", "passwd", "pwd", "secret", "contraseña"]
SEPARATORS = ["=", " = ", ": ", ":=", " => ", " == ", "(", " "]
WORDS = ["model", "threshold", "tuned", "data", "batch", "epochs", "learning", "rate", "served"]
# What a mutation may put in: separators, look-alikes (Kelvin sign, long s), other scripts.
ODD = [*string.punctuation, " ", "\t", "\u212a", "\u017f", "é", "\u0663", "ñ", "0", "Z"]


def _entropy_value(rng: random.Random) -> str:
    # Repeats lower the entropy: half the strings have none, to sit right at the limits.
    extra = rng.choice([0, rng.randint(1, 12)])
    if rng.random() < 0.5:
        return _distinct(rng, B64, rng.randint(17, 27), extra)
    return _distinct(rng, string.hexdigits, rng.randint(5, 12), extra)


def _line(rng: random.Random) -> str:
    kind = rng.randrange(5)
    quote = rng.choice(["", '"', "'"])
    if kind == 0:
        kw = rng.choice(KEYWORDS)
        kw = "".join(c.upper() if rng.random() < 0.3 else c for c in kw)
        value = _s(rng, ALNUM + "!@#", rng.randint(4, 16))
        return f"{kw}{rng.choice(SEPARATORS)}{quote}{value}{quote}"
    if kind == 1:
        return rng.choice(TOKENS)(rng)
    if kind == 2:
        name = rng.choice(WORDS)
        return f"{name}{rng.choice(SEPARATORS)}{quote}{_entropy_value(rng)}{quote}"
    if kind == 3:
        return " ".join(rng.choice([*WORDS, str(rng.randrange(10**9))]) for _ in range(5))
    return rng.choice(["[section]", "---", "key_name:", "  - item", "# comment"])


def _mutate(rng: random.Random, line: str) -> str:
    chars = list(line)
    for _ in range(rng.randint(1, 3)):
        if not chars:
            break
        i = rng.randrange(len(chars))
        op = rng.randrange(3)
        if op == 0:
            chars[i] = rng.choice(ODD)
        elif op == 1:
            del chars[i]
        else:
            chars[i] = chars[i].swapcase()
    return "".join(chars)


def generated_texts(seed: int, count: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    texts = []
    for _ in range(count):
        lines = [_line(rng) for _ in range(rng.randint(1, 3))]
        lines = [_mutate(rng, x) if rng.random() < 0.7 else x for x in lines]
        texts.append(("\n".join(lines) + "\n", rng.choice(SUFFIXES)))
    return texts


# ---------------------------------------------------------------------------------- the tests


def test_the_installed_plugin_set_is_the_one_the_shapes_cover() -> None:
    from detect_secrets.__version__ import VERSION
    from detect_secrets.settings import get_plugins

    assert VERSION == SHAPES_VERSION and shapes_apply()
    with default_settings():
        assert {type(p).__name__ for p in get_plugins()} == PLUGINS


def test_each_plugin_shape_is_seen(tmp_path: Path) -> None:
    """Each credential template is a real detect-secrets finding, and the pre-check sees it."""
    rng = random.Random(7)
    texts = [(f"{make(rng)}\n", ".txt") for make in TOKENS]
    texts += [('token = "' + _distinct(rng, B64, 26, 10) + '"\n', ".py")]
    texts += [('token = "' + _distinct(rng, "abcdef0123456789", 12, 4) + '"\n', ".py")]
    found = detect_secrets_types(texts, tmp_path)
    for (text, suffix), types in zip(texts, found, strict=True):
        assert types, text
        assert could_hold_secret(text, suffix), text


def test_generated_texts_the_precheck_passes_hold_nothing(tmp_path: Path) -> None:
    texts = generated_texts(seed=20, count=1500)
    passed = [(t, s) for t, s in texts if not could_hold_secret(t, s)]
    sent = [(t, s) for t, s in texts if could_hold_secret(t, s)]
    # Both sides are exercised: many near misses pass, and what is sent holds real findings.
    assert len(passed) >= 300 and len(sent) >= 300
    found = detect_secrets_types(passed, tmp_path / "p")
    for (text, suffix), types in zip(passed, found, strict=True):
        assert types == [], (suffix, text)
    sample = random.Random(3).sample(sent, 150)
    hits = sum(bool(t) for t in detect_secrets_types(sample, tmp_path / "s"))
    assert hits >= 40


def test_entropy_limits_sit_one_character_below_the_plugins_reach() -> None:
    """A base64 run needs 23 distinct characters to pass 4.5 bits, a hex run 9 to pass 3.0;
    one may be added by detect-secrets' quoting, so 22 and 8 are sent, 21 and 7 are not."""
    letters = "ghijklmnopqrstuvwxyz"  # no hex digit, no keyword, no long lower-case run
    assert not could_hold_secret(f"x = '{letters}+'\n", ".txt")
    assert could_hold_secret(f"x = '{letters}+/'\n", ".txt")
    assert not could_hold_secret("x = 'abcdef1'\n", ".txt")
    assert could_hold_secret("x = 'abcdef12'\n", ".txt")


def test_entropy_strings_at_the_limits(tmp_path: Path) -> None:
    """Strings with 20-24 (base64) and 7-10 (hex) distinct characters, bare or ending in a
    quote that detect-secrets' config rewriting escapes with a backslash (one more base64
    character: 22 distinct plus that backslash is a finding, so 22 must be sent)."""
    rng = random.Random(5)
    plain_b64 = B64.replace("\\", "")
    texts = []
    for alphabet, ks in ((plain_b64, range(20, 25)), (string.hexdigits, range(7, 11))):
        for k in ks:
            for _ in range(3):
                value = _distinct(rng, alphabet, k, 0)
                for tail in ("", '"'):
                    texts.append((f"[s]\nname = {value}{tail}\n", ".ini"))
                    texts.append((f"name: {value}{tail}\n", ".yaml"))
                    texts.append((f"name = {value}{tail}\n", ".txt"))
                    texts.append((f"name = '{value}'{tail}\n", ".py"))
    found = detect_secrets_types(texts, tmp_path)
    for (text, suffix), types in zip(texts, found, strict=True):
        assert types == [] or could_hold_secret(text, suffix), (suffix, text)
    quoted_22 = [
        types
        for (text, _), types in zip(texts, found, strict=True)
        if text.endswith('"\n') and len(set(text.split()[-1]) - set('"')) == 22
    ]
    assert any(quoted_22)


@pytest.mark.parametrize(
    ("text", "suffix"),
    [
        ("a = %(b)s\n", ".ini"),  # configparser interpolation builds values
        ("a: 'x'\n", ".txt"),
        ('a: "\\x41KIA"\n', ".yaml"),  # YAML escapes
        ("a: !!binary QUtJQQ==\n", ".yml"),  # YAML tags
        ("a: &x y\nb: *x\n", ".yaml"),  # anchors and aliases
        ("? [a, b]\n: c\n", ".yaml"),  # complex keys
    ],
)
def test_text_that_can_be_built_into_a_secret_is_sent(text: str, suffix: str) -> None:
    expect = suffix != ".txt"
    assert could_hold_secret(text, suffix) is expect


def _secrets_both(monkeypatch: pytest.MonkeyPatch, root: Path) -> tuple[str, str]:
    """The secrets findings of every text file under ``root``, with the pre-check and without."""
    files = [
        p
        for p in sorted(root.rglob("*"))
        if p.is_file() and (p.suffix.lower() in SECRET_SUFFIXES or p.name.startswith(".env"))
    ]
    assert files

    def scan() -> str:
        return json.dumps([document("scan", scan_secrets(p)) for p in files], sort_keys=True)

    shaped = scan()
    with monkeypatch.context() as m:
        m.setattr("mlhunt.scan.secrets.could_hold_secret", lambda text, suffix: True)
        plain = scan()
    return shaped, plain


def test_llm_corpus_findings_unchanged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    build_llm_corpus(tmp_path)
    shaped, plain = _secrets_both(monkeypatch, tmp_path)
    assert shaped == plain


@pytest.mark.parametrize("folder", sorted(p.name for p in EXAMPLES.iterdir() if p.is_dir()))
def test_example_deploy_findings_unchanged(folder: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for deploy in sorted((EXAMPLES / folder).glob("deploy*")):
        shaped, plain = _secrets_both(monkeypatch, deploy)
        assert shaped == plain, deploy

"""Whether a model artifact's weights are readable at rest, from its bytes: model theft from
storage.

Whoever can read the store (an insider, a leaked credential, an over-broad service account)
gets the bytes a scan reads. A recognised model format in those bytes (joblib, ``torch.save``,
skops, safetensors, ONNX, ...) is the model itself: the theft threat of the element that owns
the artifact is validated. A recognised encryption envelope (age, ASCII-armoured OpenPGP, a
compact JWE, an AWS Encryption SDK message as KMS envelope encryption writes it, a Vault transit
ciphertext, ``openssl enc``) needs a key the reader of the store does not have by that right
alone: refuted. Anything else says nothing. Server-side encryption that the system description
declares (``encrypted_at_rest``) does not change the verdict: the store decrypts for every
principal it lets read, so it protects lost disks and backups, not the model from a reader of
the store; the evidence says which case it is. Only the head of the file and its metadata are
read (magic headers as their specifications document them; a JWE header with :mod:`base64` and
:mod:`json`); nothing is loaded.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path

from mlhunt.findings import Finding
from mlhunt.scan.art_rules import make_finding
from mlhunt.scan.model_format import model_format

RULE = "MLH-SCAN-MODEL-AT-REST"
#: Model formats whose bytes are the weights (no key needed to read them).
_ZIP_FORMATS = ("torch-zip", "torchscript", "skops", "npz", "keras")
_HEAD = 4096
# AWS Encryption SDK message header (docs: "AWS Encryption SDK message format reference"):
# version 1 is 0x01, type 0x80 and an algorithm suite id; version 2 is 0x02 and a committing
# suite id. The closed list of suite ids keeps a random 0x01 0x80 from passing.
_AWS_V1_SUITES = {0x0014, 0x0046, 0x0078, 0x0114, 0x0146, 0x0178, 0x0214, 0x0346, 0x0378}
_AWS_V2_SUITES = {0x0478, 0x0578}
# Headers at offset 0, as their specifications write them.
_MAGIC = ((b"age-encryption.org/v1\n", "age"), (b"Salted__", "openssl enc"))
# Armour lines (text: blank lines may come first).
_ARMOUR = (
    (b"-----BEGIN AGE ENCRYPTED FILE-----", "age (armoured)"),
    (b"-----BEGIN PGP MESSAGE-----", "OpenPGP message (armoured)"),
)
_VAULT = re.compile(rb"vault:v[0-9]{1,6}:[A-Za-z0-9+/]")
_ALG = re.compile(r"[A-Za-z0-9+._-]{1,40}")
_JWE_HEADER = re.compile(rb"(eyJ[A-Za-z0-9_-]{8,4000})\.[A-Za-z0-9_-]*\.")


@dataclass(frozen=True)
class AtRest:
    """What the bytes at rest are: ``in_clear`` True (a model format), False (an encryption
    envelope) or None (not recognised)."""

    in_clear: bool | None
    what: str  # the model format or the envelope
    reason: str


def envelope(head: bytes) -> str | None:
    """The encryption envelope whose documented header starts ``head``, or None."""
    text = head.lstrip()
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    for magic, name in _ARMOUR:
        if text.startswith(magic):
            return name
    if _VAULT.match(text):
        return "Vault transit ciphertext"
    if len(head) >= 4:
        suite = int.from_bytes(head[2:4] if head[0] == 1 else head[1:3], "big")
        if (head[:2] == b"\x01\x80" and suite in _AWS_V1_SUITES) or (
            head[0] == 2 and suite in _AWS_V2_SUITES
        ):
            return "AWS Encryption SDK message (KMS envelope)"
    m = _JWE_HEADER.match(text)
    if m is not None:
        try:
            raw = m.group(1)
            header = json.loads(base64.urlsafe_b64decode(raw + b"=" * (-len(raw) % 4)))
        except (binascii.Error, ValueError):
            return None
        # A JWE protected header names the content encryption ("enc"); a JWS has none.
        if isinstance(header, dict) and isinstance(header.get("enc"), str):
            return f"JWE ({_token(header.get('alg'))}, {_token(header['enc'])})"
    return None


def _token(value: object) -> str:
    """An algorithm name from a file, shown only when it looks like one (the file chose it)."""
    return value if isinstance(value, str) and _ALG.fullmatch(value) else "?"


def _zip_encrypted(path: Path) -> bool:
    """Whether any member of the zip at ``path`` is encrypted (its names are in the clear, its
    contents are not: this check does not judge zip encryption)."""
    try:
        with zipfile.ZipFile(path) as zf:
            return any(info.flag_bits & 0x1 for info in zf.infolist()[:10_000])
    except (OSError, zipfile.BadZipFile, ValueError):
        return False


def at_rest(path: Path) -> AtRest:
    """Whether the bytes of the artifact at ``path`` are the model in the clear."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(_HEAD)
    except OSError as exc:
        return AtRest(None, "unreadable", str(exc))
    env = envelope(head)
    if env is not None:
        return AtRest(False, env, f"an {env} envelope: reading the weights needs its key")
    mf = model_format(path)
    if mf.format in _ZIP_FORMATS and _zip_encrypted(path):
        return AtRest(None, f"{mf.format} (encrypted zip members)", "zip encryption not judged")
    if mf.code_on_load is not None or mf.format in ("keras", "hdf5"):
        return AtRest(True, mf.format, f"{mf.format}: any reader of the file has the weights")
    return AtRest(None, mf.format, "neither a model format nor an encryption envelope it knows")


def at_rest_finding(
    path: Path, element: str | None = None, store_encrypted: bool = False
) -> Finding:
    """The artifact at ``path`` at rest (evidence ``weights_in_clear``, ``format`` or
    ``envelope``, ``size``, ``file_mode``, ``others_can_read``, ``store_encryption``).
    ``store_encrypted``: the owning ``element`` declares encryption at rest."""
    ar = at_rest(path)
    try:
        st = os.stat(path)
        size, mode = st.st_size, stat.S_IMODE(st.st_mode)
    except OSError:
        size, mode = None, None
    others = bool(mode is not None and mode & stat.S_IROTH)
    owner = element or "the owning element"
    if not store_encrypted:
        store = f"none declared on {owner}"
    elif ar.in_clear:
        store = (
            f"declared on {owner}, so server-side: the store decrypts for every reader it "
            "lets in; it protects lost disks and backups, not the model from a reader of the "
            "store (the verdict stands)"
        )
    else:
        store = f"declared on {owner}"
    evidence: dict[str, object] = {
        "weights_in_clear": ar.in_clear,
        "envelope" if ar.in_clear is False else "format": ar.what,
        "size": size,
        "file_mode": None if mode is None else f"{mode:04o}",
        "others_can_read": others,
        "store_encryption": store,
    }
    if ar.in_clear:
        severity = "low"
        local = " The scanned file is readable by every local user." if others else ""
        text = (
            f"The artifact at rest is {ar.what} in the clear: whoever can read the store "
            f"copies the model. Encryption at rest: {store}.{local}"
        )
    elif ar.in_clear is False:
        severity = "info"
        text = f"The artifact at rest is {ar.reason}; a reader of the store gets ciphertext."
    else:
        severity = "info"
        text = f"The artifact ({ar.what}) was not judged: {ar.reason}."
    return make_finding(RULE, str(path), ar.what, text, evidence, severity=severity)

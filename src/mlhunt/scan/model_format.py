"""The format of a model artifact, from its bytes: can loading it run code?

``run`` scans the artifact a built scenario publishes and links this answer to the
unsafe-serialization threat of the element that owns it: a pickle-based format (pickle, joblib,
a ``torch.save`` zip, TorchScript) runs the pickle machine when loaded, so whoever can replace
the file runs code in the loader (validated); a data-only format (skops, safetensors, ONNX, a
NumPy archive) does not (refuted). Formats it cannot tell say nothing. An artifact with no
signature beside it (Sigstore bundle, detached ``.sig`` or ``.asc``) is reported too: nothing
proves that the file served is the one trained (the supply-chain threat). Bytes are only read:
the head through :func:`mlhunt.scan.artifacts.sniff_deep`, a zip's member names through
:mod:`zipfile` (its central directory, nothing extracted).
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

from mlhunt.findings import Finding
from mlhunt.scan import formats as fmt
from mlhunt.scan.art_rules import make_finding
from mlhunt.scan.artifacts import container_kind, sniff_deep

RULE = "MLH-SCAN-MODEL-FORMAT"
UNSIGNED_RULE = "MLH-SCAN-MODEL-UNSIGNED"
#: Signature files a signing tool writes beside an artifact (cosign, Sigstore model signing, GPG).
SIGNATURE_SUFFIXES = (".sig", ".sigstore", ".sigstore.json", ".bundle", ".asc")
_MAX_MEMBERS = 10_000  # a zip with more members is not a model this check recognises
_PICKLE_KINDS = (fmt.PICKLE, fmt.PICKLE_TEXT, *fmt.COMPRESSED)


@dataclass(frozen=True)
class ModelFormat:
    format: str
    code_on_load: bool | None  # None: a format this check cannot judge
    reason: str


def _zip_format(path: Path) -> ModelFormat:
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            if len(infos) > _MAX_MEMBERS:
                return ModelFormat("zip", None, f"a zip of {len(infos)} members")
            names = [i.filename for i in infos]
    except (OSError, zipfile.BadZipFile, ValueError) as exc:
        return ModelFormat("zip", None, f"unreadable zip ({exc})")
    kind = container_kind(names)
    if kind in ("torch-zip", "torchscript"):
        return ModelFormat(
            kind,
            True,
            "a torch.save zip whose data.pkl is a pickle: torch.load without weights_only=True "
            "runs it",
        )
    if "schema.json" in names and all(n == "schema.json" or n.endswith(".npy") for n in names):
        return ModelFormat("skops", False, "skops: JSON schema and NumPy arrays, no pickle")
    if kind == "npz":
        return ModelFormat("npz", False, "NumPy arrays (object arrays are flagged separately)")
    return ModelFormat(kind, None, f"a {kind} archive this check does not judge")


def model_format(path: Path) -> ModelFormat:
    """What ``path`` is and whether loading it with its usual loader can run code."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(64 << 10)
            size = os.fstat(fh.fileno()).st_size
    except OSError as exc:
        return ModelFormat("unreadable", None, str(exc))
    kind = sniff_deep(head, size)
    if kind == fmt.ZIP:
        return _zip_format(path)
    if kind in _PICKLE_KINDS:
        name = "pickle" if kind in (fmt.PICKLE, fmt.PICKLE_TEXT) else f"{kind}-compressed pickle"
        if head.startswith(fmt.TORCH_LEGACY_MAGIC):
            name = "torch-legacy"
        elif b"joblib.numpy_pickle" in head:
            name = "joblib"
        return ModelFormat(name, True, f"{name}: loading it runs the pickle machine")
    if kind in (fmt.SAFETENSORS, fmt.ONNX, fmt.NPY):
        return ModelFormat(kind, False, f"{kind}: tensors and metadata, no code")
    return ModelFormat(kind or "unknown", None, "a format this check does not judge")


def format_finding(path: Path) -> Finding:
    """The format of the model artifact at ``path`` as an info finding (evidence
    ``format``, ``code_on_load``)."""
    mf = model_format(path)
    verdict = {True: "can run code when loaded", False: "is data only", None: "was not judged"}
    return make_finding(
        RULE,
        str(path),
        mf.format,
        f"The artifact is {mf.format} and {verdict[mf.code_on_load]}: {mf.reason}.",
        {"format": mf.format, "code_on_load": mf.code_on_load},
    )


def signature_of(path: Path) -> Path | None:
    """A signature file beside the artifact (``model.pt.sig``, ``model.pt.sigstore.json`` ...),
    or None."""
    for suffix in SIGNATURE_SUFFIXES:
        candidate = path.with_name(path.name + suffix)
        if candidate.is_file():
            return candidate
    return None


def unsigned_finding(path: Path) -> Finding | None:
    """A finding when no signature file accompanies the artifact at ``path``."""
    if signature_of(path) is not None:
        return None
    return make_finding(
        UNSIGNED_RULE,
        str(path),
        "no-signature",
        f"No signature beside the artifact (looked for {', '.join(SIGNATURE_SUFFIXES)}): "
        "nothing proves that the file a loader reads is the one the training job published.",
        {"looked_for": [path.name + s for s in SIGNATURE_SUFFIXES]},
    )

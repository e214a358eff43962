"""Rule catalog of the artifact scanner: one entry per rule id, and the Finding factory."""

from __future__ import annotations

from typing import Any

from mlhunt.findings import Finding, Severity
from mlhunt.record import FrozenRecord

_CODE_EXEC_ATLAS = ["AML.T0011.000", "AML.T0010.003", "AML.T0018.002"]
_SUPPLY = ["AML.T0010.003"]
_DESER_MITIGATIONS = [
    "Do not load this file with pickle, joblib.load, torch.load(weights_only=False) or "
    "numpy.load(allow_pickle=True); quarantine it and trace where it came from.",
    "Re-export the model from a trusted training run in a format without code: safetensors "
    "for tensors, ONNX, or skops with an explicit trusted-types list for scikit-learn.",
    "Load PyTorch checkpoints with torch.load(weights_only=True) and verify artifact digests "
    "(signed hashes in the model registry) before deployment.",
]


class Rule(FrozenRecord):
    __slots__ = ("atlas", "cwe", "mitigations", "rule_id", "severity", "stride", "title")
    rule_id: str
    title: str
    severity: Severity
    atlas: tuple[str, ...]
    cwe: tuple[str, ...]
    mitigations: tuple[str, ...]
    stride: tuple[str, ...]

    def __init__(
        self,
        rule_id: str,
        title: str,
        severity: Severity,
        atlas: tuple[str, ...],
        cwe: tuple[str, ...],
        mitigations: tuple[str, ...],
        stride: tuple[str, ...] = ("T", "E"),
    ) -> None:
        self.set_fields(
            rule_id=rule_id,
            title=title,
            severity=severity,
            atlas=atlas,
            cwe=cwe,
            mitigations=mitigations,
            stride=stride,
        )


def _r(
    rule_id: str,
    title: str,
    severity: str,
    atlas: list[str],
    cwe: list[str],
    mitigations: list[str],
    stride: tuple[str, ...] = ("T", "E"),
) -> Rule:
    return Rule(
        rule_id, title, Severity(severity), tuple(atlas), tuple(cwe), tuple(mitigations), stride
    )


RULES: dict[str, Rule] = {
    r.rule_id: r
    for r in [
        _r(
            "MLH-SCAN-PICKLE-DANGEROUS-GLOBAL",
            "Pickle imports a known-dangerous callable (code execution on load)",
            "critical",
            _CODE_EXEC_ATLAS,
            ["CWE-502", "CWE-94"],
            _DESER_MITIGATIONS,
        ),
        _r(
            "MLH-SCAN-PICKLE-UNKNOWN-GLOBAL",
            "Pickle imports a callable outside the allow-list",
            "high",
            _CODE_EXEC_ATLAS,
            ["CWE-502"],
            [
                "Check that the named module and callable are expected for this model; if they "
                "are, add the exact 'module.name' to the project's scan allow-list.",
                *_DESER_MITIGATIONS[1:],
            ],
        ),
        _r(
            "MLH-SCAN-PICKLE-DYNAMIC-GLOBAL",
            "Pickle computes an import name at load time",
            "high",
            _CODE_EXEC_ATLAS,
            ["CWE-502", "CWE-470"],
            _DESER_MITIGATIONS,
        ),
        _r(
            "MLH-SCAN-PICKLE-NESTED-PAYLOAD",
            "Pickle deserialises embedded bytes with a second loader",
            "high",
            _CODE_EXEC_ATLAS,
            ["CWE-502"],
            _DESER_MITIGATIONS,
        ),
        _r(
            "MLH-SCAN-PICKLE-BUILD-ON-IMPORT",
            "Pickle BUILD overwrites attributes of an imported module or class",
            "high",
            _CODE_EXEC_ATLAS,
            ["CWE-502", "CWE-915"],
            _DESER_MITIGATIONS,
        ),
        _r(
            "MLH-SCAN-PICKLE-ALLOWLISTED",
            "Pickle format, allow-listed globals",
            "info",
            _SUPPLY,
            ["CWE-502"],
            [
                "Every import is on the allow-list, so nothing known-dangerous is in the file; "
                "a code-free format (skops with trusted types, ONNX, safetensors) removes the "
                "need to trust the file at all.",
                "Verify the artifact digest (a signed hash in the model registry) before "
                "loading it.",
            ],
            ("T",),
        ),
        _r(
            "MLH-SCAN-MODEL-FORMAT",
            "Model artifact format (whether loading it can run code)",
            "info",
            _SUPPLY,
            ["CWE-502"],
            [
                "Publish models in a format without code: skops with trusted types, ONNX or "
                "safetensors; load PyTorch checkpoints with torch.load(weights_only=True).",
                "Verify the artifact digest (a signed hash in the model registry) before "
                "loading it.",
            ],
            ("T",),
        ),
        _r(
            "MLH-SCAN-MODEL-UNSIGNED",
            "Model artifact without a signature",
            "low",
            _SUPPLY,
            ["CWE-345", "CWE-494"],
            [
                "Sign models at the end of training (Sigstore model signing, cosign) and verify "
                "the signature and a pinned digest before loading.",
            ],
            ("T", "S"),
        ),
        _r(
            "MLH-SCAN-MODEL-AT-REST",
            "Model artifact readable at rest (weights in the clear)",
            "low",
            ["AML.T0035", "AML.T0048.004"],
            ["CWE-311", "CWE-732"],
            [
                "Encrypt the artifact client-side (envelope encryption with a KMS or Vault "
                "transit key whose decrypt permission only serving holds), so that read access "
                "to the store is not access to the model; server-side encryption alone is not.",
                "Restrict read access to the store to the serving and release identities, keep "
                "the file unreadable by other local users, and alert on downloads outside "
                "deployments.",
            ],
            ("I",),
        ),
        _r(
            "MLH-SCAN-PICKLE-MALFORMED",
            "Pickle stream is malformed (the part before the error still runs under pickle.load)",
            "low",
            _SUPPLY,
            ["CWE-502"],
            [
                "Regenerate the file from its source; a truncated or tampered pickle should not be "
                "loaded."
            ],
        ),
        _r(
            "MLH-SCAN-NPY-OBJECT-ARRAY",
            "NumPy object array: loading it needs allow_pickle=True",
            "low",
            _SUPPLY,
            ["CWE-502"],
            [
                "Store numeric arrays only; load .npy/.npz files with "
                "numpy.load(allow_pickle=False) (the default)."
            ],
        ),
        _r(
            "MLH-SCAN-NPY-MALFORMED",
            "NumPy file with a malformed header",
            "low",
            _SUPPLY,
            ["CWE-20"],
            ["Regenerate the array file from a trusted source."],
        ),
        _r(
            "MLH-SCAN-ZIP-BOMB",
            "Archive looks like a decompression bomb (ratio, total size or nesting)",
            "high",
            ["AML.T0010.003", "AML.T0029"],
            ["CWE-409"],
            [
                "Do not extract or load this archive; reject archives whose declared sizes exceed "
                "the model's expected size before loading."
            ],
            ("D",),
        ),
        _r(
            "MLH-SCAN-ZIP-PATH-TRAVERSAL",
            "Archive entry name escapes the extraction folder",
            "medium",
            _SUPPLY,
            ["CWE-22"],
            [
                "Never extract model archives with unchecked member names; rebuild the archive "
                "with relative, normalised paths."
            ],
            ("T",),
        ),
        _r(
            "MLH-SCAN-ZIP-SYMLINK",
            "Archive contains a symbolic link entry",
            "medium",
            _SUPPLY,
            ["CWE-59"],
            [
                "Reject symlinks in model archives; extraction can write or read outside the "
                "target folder."
            ],
            ("T",),
        ),
        _r(
            "MLH-SCAN-ZIP-UNREADABLE",
            "Archive or entry could not be inspected (encrypted, corrupt or unsupported)",
            "low",
            _SUPPLY,
            ["CWE-20"],
            ["Obtain an unencrypted, intact copy from the model registry and rescan it."],
            (),
        ),
        _r(
            "MLH-SCAN-KERAS-LAMBDA",
            "Keras Lambda layer with serialised Python code",
            "critical",
            _CODE_EXEC_ATLAS,
            ["CWE-94", "CWE-502"],
            [
                "Load Keras models with safe_mode=True (the default in Keras 3) and never with "
                "custom_objects you did not write; replace Lambda layers with registered layer "
                "classes and re-export the model.",
                "Treat .h5 models with Lambda layers as code: Keras 2 runs their bytecode on load.",
            ],
        ),
        _r(
            "MLH-SCAN-KERAS-MODULE-IMPORT",
            "Keras config makes the loader import a module outside Keras",
            "high",
            _CODE_EXEC_ATLAS,
            ["CWE-94", "CWE-470"],
            [
                "Upgrade Keras to a release that restricts config modules (CVE-2025-1550 fix) and "
                "load with safe_mode=True; reject configs naming modules outside keras.*."
            ],
        ),
        _r(
            "MLH-SCAN-KERAS-CUSTOM-OBJECT",
            "Keras config needs a custom object (its code runs when the model loads)",
            "medium",
            _SUPPLY,
            ["CWE-829"],
            [
                "Review the package that provides the custom object and pin it; register it "
                "explicitly instead of trusting module paths from the file."
            ],
            ("T",),
        ),
        _r(
            "MLH-SCAN-ONNX-EXTERNAL-DATA-PATH",
            "ONNX external data path escapes the model folder",
            "high",
            ["AML.T0010.003"],
            ["CWE-22", "CWE-73"],
            [
                "Keep external tensor files next to the model with plain relative names; load "
                "ONNX models from an isolated folder and reject absolute or '..' locations."
            ],
            ("T", "I"),
        ),
        _r(
            "MLH-SCAN-ONNX-MALFORMED",
            "ONNX protobuf could not be walked",
            "low",
            _SUPPLY,
            ["CWE-20"],
            ["Re-export the ONNX model and validate it with onnx.checker."],
            (),
        ),
        _r(
            "MLH-SCAN-SAFETENSORS-HEADER",
            "safetensors header is inconsistent with the file",
            "medium",
            _SUPPLY,
            ["CWE-20", "CWE-130"],
            [
                "Re-export the tensors with the safetensors library; a header whose sizes or "
                "offsets disagree with the file was edited by hand or hides extra bytes."
            ],
            ("T",),
        ),
        _r(
            "MLH-SCAN-SAFETENSORS-METADATA",
            "safetensors __metadata__ is not a small string map",
            "low",
            _SUPPLY,
            ["CWE-20"],
            ["Keep __metadata__ to short string values; inspect what the extra data carries."],
            ("T",),
        ),
        _r(
            "MLH-SCAN-POLYGLOT",
            "File is valid as two formats at once (pickle and zip)",
            "medium",
            _SUPPLY,
            ["CWE-436"],
            ["Different loaders will see different content; reject the file and re-export it."],
            ("T",),
        ),
        _r(
            "MLH-SCAN-LIMIT",
            "Scan stopped at a safety limit; the rest of the artifact was not inspected",
            "medium",
            _SUPPLY,
            ["CWE-400"],
            [
                "Inspect the file by hand or raise the scan limits for this project; do not "
                "load it until it has been fully scanned."
            ],
            ("D",),
        ),
        _r(
            "MLH-SCAN-ERROR",
            "The scanner failed on this file; it was not fully inspected",
            "medium",
            _SUPPLY,
            [],
            [
                "Do not load the file until it has been inspected; report the error with the "
                "file's format so the scanner can be fixed."
            ],
            (),
        ),
        _r(
            "MLH-SCAN-HDF5-PARSER-CRASH",
            "HDF5 file crashes the HDF5 library (malformed, possibly an exploit)",
            "high",
            _SUPPLY,
            ["CWE-20", "CWE-787"],
            [
                "Do not open the file with h5py, Keras or any HDF5 tool on a machine that "
                "matters; quarantine it and trace where it came from.",
                "Re-export the model from a trusted training run (the .keras zip format or "
                "safetensors) and rescan it.",
            ],
            ("T", "D"),
        ),
        _r(
            "MLH-SCAN-HDF5-UNINSPECTED",
            "HDF5 model not inspected (h5py is not installed)",
            "info",
            _SUPPLY,
            [],
            ["Install h5py so Keras .h5 model configs can be read."],
            (),
        ),
    ]
}


def make_finding(
    rule_id: str,
    target: str,
    detail: str,
    description: str,
    evidence: dict[str, Any],
    severity: str | Severity | None = None,
) -> Finding:
    rule = RULES[rule_id]
    sev = Severity(severity) if severity is not None else rule.severity
    return Finding(
        id=f"{rule_id}@{target}#{detail}",
        rule_id=rule_id,
        title=rule.title,
        severity=sev,
        source="scan",
        target=target,
        description=description,
        atlas=list(rule.atlas),
        owasp_ml=["ML06"],
        stride=list(rule.stride),
        cwe=list(rule.cwe),
        evidence=evidence,
        mitigations=list(rule.mitigations),
    )

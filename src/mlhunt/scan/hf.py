"""Hugging Face model folders: configuration that runs repository code, code beside the weights,
and the chat template a tokenizer configuration carries.

Weights themselves (safetensors headers, ONNX external data, pickles) are judged by the artifact
scanner; this module reads the small JSON files next to them, as JSON, with a size bound.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from mlhunt.findings import Finding
from mlhunt.scan.llm import TEMPLATE_FILES
from mlhunt.scan.llm_rules import llm_finding
from mlhunt.scan.templates import analyze_template
from mlhunt.scan.textsignals import escape

__all__ = [
    "model_hint",
    "python_beside_weights",
    "scan_hf_file",
]

MAX_JSON_BYTES = 16 << 20
_RISKY_CODE = re.compile(
    r"\b(os\.system|subprocess|eval\(|exec\(|__import__|socket|urllib|requests\.|base64\."
    r"b64decode|pickle\.loads|marshal\.loads|ctypes)",
)


def _load_json(path: Path) -> tuple[Any, str | None]:
    try:
        if path.stat().st_size > MAX_JSON_BYTES:
            return None, f"larger than {MAX_JSON_BYTES} bytes"
        return json.loads(path.read_bytes().decode("utf-8")), None
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        return None, str(exc)[:200]


def model_hint(folder: Path) -> str:
    """What the folder's config.json says the model is (model_type, architectures)."""
    doc, _ = _load_json(folder / "config.json")
    if not isinstance(doc, dict):
        return ""
    arch = doc.get("architectures")
    parts = [str(doc.get("model_type", ""))]
    if isinstance(arch, list):
        parts += [str(a) for a in arch[:4]]
    return " ".join(parts)[:300]


#: model_type values transformers implements itself: an auto_map beside one of these runs
#: repository code only when the user also passes trust_remote_code=True.
NATIVE_MODEL_TYPES = frozenset(
    {
        *("llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "gemma"),
        *("gemma2", "gemma3", "gemma3_text", "phi", "phi3", "phimoe", "gpt2", "gpt_neox"),
        *("falcon", "bert", "roberta", "t5", "bart", "deepseek_v3", "starcoder2", "olmo"),
        *("olmo2", "cohere", "granite", "mpt", "bloom", "opt", "gptj", "stablelm"),
    }
)


def _modules(auto_map: dict[str, Any]) -> set[str]:
    """The module names an auto_map points at ("modeling_x.Class", ["tok.A", "tok.B"])."""
    refs: list[str] = []
    for value in list(auto_map.values())[:50]:
        refs += [str(v) for v in value] if isinstance(value, list) else [str(value)]
    return {r.rpartition("--")[2].partition(".")[0] for r in refs if r and r != "None"}


def _remote_code(
    doc: dict[str, Any], target: str, name: str, folder: Path | None = None
) -> list[Finding]:
    findings = []
    auto_map = doc.get("auto_map")
    if isinstance(auto_map, dict) and auto_map:
        refs = {str(k): escape(str(v))[:200] for k, v in list(auto_map.items())[:20]}
        other = [v for v in refs.values() if "--" in v]
        present = sorted(
            m for m in _modules(auto_map) if folder is not None and (folder / f"{m}.py").is_file()
        )
        native = str(doc.get("model_type", "")) in NATIVE_MODEL_TYPES
        # Another repository's code: critical. Code shipped here, or a model transformers does
        # not implement: high. A built-in model type whose mapped code is not here (an old
        # config kept after the architecture moved into transformers): low, for review.
        severity = "critical" if other else ("high" if present or not native else "low")
        findings.append(
            llm_finding(
                "MLH-SCAN-HF-REMOTE-CODE",
                target,
                "auto_map",
                f"{name} maps model classes to code in the repository"
                + (f", some in another repository ({other[0]})" if other else "")
                + "; loading it with trust_remote_code=True runs that code.",
                {
                    "file": name,
                    "auto_map": refs,
                    "other_repositories": other[:5],
                    "code_in_folder": present[:10],
                    "native_model_type": native,
                },
                severity,
            )
        )
    if doc.get("trust_remote_code") is True:
        findings.append(
            llm_finding(
                "MLH-SCAN-HF-REMOTE-CODE",
                target,
                "trust_remote_code",
                f"{name} asks loaders to trust remote code.",
                {"file": name, "trust_remote_code": True},
            )
        )
    return findings


def _templates(doc: dict[str, Any]) -> list[tuple[str, str]]:
    """(field, template) pairs: a string, or a list of {name, template} as transformers saves."""
    value = doc.get("chat_template")
    if isinstance(value, str):
        return [("chat_template", value)]
    out = []
    if isinstance(value, list):
        for i, entry in enumerate(value[:32]):
            if isinstance(entry, dict) and isinstance(entry.get("template"), str):
                out.append((f"chat_template.{entry.get('name', i)}", entry["template"]))
    return out


def scan_hf_file(path: Path, *, display: str | None = None, render: bool = True) -> list[Finding]:
    """Findings for one Hugging Face configuration file (``llm.HF_JSON_NAMES``) or a
    ``chat_template.jinja``."""
    target = display if display is not None else str(path)
    if path.name in TEMPLATE_FILES:
        try:
            source = path.read_bytes()[: 4 << 20].decode("utf-8", "replace")
        except OSError:
            return []
        return analyze_template(
            source, target, where="chat_template.jinja", hint=model_hint(path.parent), render=render
        )
    doc, _error = _load_json(path)
    if not isinstance(doc, dict):
        return []  # not a model config after all: the secrets and manifest passes still see it
    findings = _remote_code(doc, target, path.name, path.parent)
    templates = _templates(doc)
    if templates:
        hint = model_hint(path.parent)
        for field, source in templates:
            findings.extend(analyze_template(source, target, where=field, hint=hint, render=render))
    return findings


def python_beside_weights(path: Path, *, display: str | None = None) -> Finding:
    """The finding for a ``.py`` file in a folder that holds model weights or a model config."""
    target = display if display is not None else str(path)
    try:
        text = path.read_bytes()[: 1 << 20].decode("utf-8", "replace")
    except OSError:
        text = ""
    risky = sorted({m.group(0) for m in _RISKY_CODE.finditer(text)})[:10]
    imports = [
        line.strip()[:120]
        for line in text.splitlines()[:400]
        if line.startswith(("import ", "from "))
    ][:10]
    return llm_finding(
        "MLH-SCAN-HF-PYTHON-FILE",
        target,
        "code",
        f"{path.name} sits beside model weights: a trust_remote_code load imports it"
        + (f" (it uses {', '.join(risky[:4])})" if risky else "")
        + ".",
        {"file": path.name, "imports": imports, "risky_calls": risky},
        "critical" if risky else None,
    )

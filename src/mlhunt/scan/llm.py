"""The LLM and agent supply-chain pass of ``mlhunt scan``: which file goes to which scanner.

GGUF files (by magic), Hugging Face configuration files and chat templates (by name), MCP
configurations and tool manifests (by name or content), and Python files in a folder that holds
model weights. One :class:`LlmScan` lives for one walk: it remembers the tools of every MCP
server it saw so that :meth:`LlmScan.finish` can compare them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mlhunt.findings import Finding

if TYPE_CHECKING:
    from mlhunt.scan.mcp import McpScan

__all__ = ["GGUF_MAGIC", "HF_JSON_NAMES", "TEMPLATE_FILES", "WEIGHT_SUFFIXES", "LlmScan", "is_gguf"]

# Kept here, beside the dispatch, so that a walk over files that are none of these kinds never
# imports jinja2, numpy or gguf (start-up time of every ``mlhunt scan``).
GGUF_MAGIC = b"GGUF"
HF_JSON_NAMES = frozenset(
    {
        "config.json",
        "tokenizer_config.json",
        "generation_config.json",
        "processor_config.json",
        "preprocessor_config.json",
        "chat_template.json",
    }
)
TEMPLATE_FILES = frozenset({"chat_template.jinja"})
WEIGHT_SUFFIXES = frozenset(
    {".safetensors", ".bin", ".gguf", ".onnx", ".pt", ".pth", ".h5", ".msgpack", ".ckpt"}
)


class LlmScan:
    def __init__(self, render: bool = True) -> None:
        self.render = render  # the sandboxed rendering pass of chat templates
        self._weights: dict[Path, bool] = {}
        self._mcp: McpScan | None = None

    def claims(self, path: Path) -> bool:
        """Whether the file is a GGUF model: then this pass alone reads it."""
        return is_gguf(path)

    def scan(self, path: Path) -> list[Finding]:
        """Findings for one file (empty when it is none of the kinds above). A scanner bug is
        reported on the file (``MLH-SCAN-ERROR``) and does not end the walk."""
        try:
            return self._scan(path)
        except Exception as exc:  # RecursionError and MemoryError included
            from mlhunt.scan.art_rules import make_finding

            return [
                make_finding(
                    "MLH-SCAN-ERROR",
                    str(path),
                    type(exc).__name__,
                    f"The LLM supply-chain scanner failed on this file: {exc!r}"[:500],
                    {"error": repr(exc)[:500]},
                )
            ]

    def _scan(self, path: Path) -> list[Finding]:
        name = path.name
        suffix = path.suffix.lower()
        if self.claims(path):
            from mlhunt.scan.gguf_scan import scan_gguf

            return scan_gguf(path, render=self.render)
        findings: list[Finding] = []
        if name in HF_JSON_NAMES or name in TEMPLATE_FILES:
            from mlhunt.scan.hf import scan_hf_file

            findings.extend(scan_hf_file(path, render=self.render))
        if suffix == ".py" and self._beside_weights(path.parent):
            from mlhunt.scan.hf import python_beside_weights

            findings.append(python_beside_weights(path))
        if suffix == ".json":
            from mlhunt.scan.mcp import McpScan, is_mcp_config

            if is_mcp_config(path):
                if self._mcp is None:
                    self._mcp = McpScan()
                findings.extend(self._mcp.scan_file(path))
        return findings

    def finish(self) -> list[Finding]:
        """Cross-file findings (MCP tool shadowing) once every file has been seen."""
        return [] if self._mcp is None else self._mcp.finish()

    def _beside_weights(self, folder: Path) -> bool:
        """Whether the folder holds weights, or a config.json that names a model type."""
        known = self._weights.get(folder)
        if known is None:
            try:
                known = any(
                    p.suffix.lower() in WEIGHT_SUFFIXES for p in folder.iterdir() if p.is_file()
                )
                if not known and (folder / "config.json").is_file():
                    from mlhunt.scan.hf import model_hint

                    known = bool(model_hint(folder).strip())
            except OSError:
                known = False
            self._weights[folder] = known
        return known


def is_gguf(path: Path) -> bool:
    """Whether the file starts with the GGUF magic."""
    try:
        with open(path, "rb") as fh:
            return fh.read(4) == GGUF_MAGIC
    except OSError:
        return False

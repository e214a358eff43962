"""MCP and agent configurations: client configs (``mcp.json``, ``.cursor/mcp.json``,
``.vscode/mcp.json``, ``claude_desktop_config.json``, ...) and the tool manifests servers publish
(a ``tools/list`` answer), found by name and by content, read as JSON and never run.

Per-file rules look at each server (how it is started, its environment, its URL) and each tool
(its name and descriptions); :meth:`McpScan.finish` then compares tools across every server seen
in the scan, for one server's tool shadowing another's. Nothing is sent anywhere.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlhunt.findings import Finding
from mlhunt.scan.llm_rules import llm_finding
from mlhunt.scan.textsignals import escape, instruction_signals, invisible_chars

__all__ = ["HEAD_BYTES", "MCP_NAMES", "McpScan", "is_mcp_config", "looks_like_mcp"]

MCP_NAMES = frozenset(
    {"mcp.json", "claude_desktop_config.json", "cline_mcp_settings.json", "mcp_config.json"}
)
MAX_BYTES = 4 << 20
HEAD_BYTES = 64 << 10  # ~/.claude.json keeps mcpServers after other settings
_SERVER_KEYS = ("mcpServers", "servers", "context_servers")
_SECRET_KEY = re.compile(
    r"(token|secret|passw|api[_-]?key|apikey|private[_-]?key|credential|access[_-]?key|"
    r"client[_-]?key|auth[_-]?key|(^|_)pat$|^authorization$)",
    re.I,
)
_TOKEN_VALUE = re.compile(
    r"^(ghp_|gho_|ghs_|github_pat_|glpat-|xox[abprs]-|sk-|sk_live_|rk_live_|hf_|AKIA|AIza|"
    r"npm_|pypi-|eyJ)[A-Za-z0-9_\-\.=]{8,}"
)
_PLACEHOLDER = re.compile(
    r"^\s*$|\$\{|^\$[A-Z_]+$|^<.*>$|^%[A-Z_]+%$|your[_-]|changeme|placeholder|xxxx|\.\.\.|^\*+$",
    re.I,
)
_HOME = re.compile(
    r"^(/|~/?|\$HOME/?|\$\{HOME\}/?|%USERPROFILE%\\?|[A-Za-z]:[\\/]?|"
    r"/home/[^/]+/?|/Users/[^/]+/?|/root/?)$"
)
_LOOPBACK = re.compile(r"^http://(localhost|127\.\d+\.\d+\.\d+|\[::1\])(:\d+)?(/|$)", re.I)
_RUNNERS = {"npx": "npm", "bunx": "npm", "pnpx": "npm", "uvx": "pypi", "pipx": "pypi"}


def looks_like_mcp(path: Path, head: bytes) -> bool:
    """By name, or a JSON file whose first bytes name MCP servers or list tools."""
    if path.name in MCP_NAMES or path.name.endswith(".mcp.json"):
        return True
    if path.suffix.lower() != ".json":
        return False
    return any(k in head for k in (b'"mcpServers"', b'"context_servers"', b'"inputSchema"')) or (
        b'"servers"' in head and (b'"command"' in head or b'"url"' in head)
    )


def is_mcp_config(path: Path) -> bool:
    """Whether the scan reads ``path`` as an MCP configuration: a ``.json`` file that
    :func:`looks_like_mcp` by name or by its first :data:`HEAD_BYTES`."""
    if path.suffix.lower() != ".json":
        return False
    try:
        with open(path, "rb") as fh:
            head = fh.read(HEAD_BYTES)
    except OSError:
        return False
    return looks_like_mcp(path, head)


@dataclass
class _Tool:
    server: str
    name: str
    description: str
    target: str


@dataclass
class McpScan:
    """One scan's MCP state: per-file findings as files come, cross-server ones at the end."""

    tools: list[_Tool] = field(default_factory=list)

    def scan_file(self, path: Path, *, display: str | None = None) -> list[Finding]:
        target = display if display is not None else str(path)
        try:
            with open(path, "rb") as fh:
                raw = fh.read(MAX_BYTES + 1)
            if len(raw) > MAX_BYTES:
                raise ValueError(f"larger than {MAX_BYTES} bytes; not read")
            doc = json.loads(raw.decode("utf-8"))
        except OSError:
            return []
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            if path.name in MCP_NAMES or path.name.endswith(".mcp.json"):
                return [
                    llm_finding(
                        "MLH-SCAN-MCP-MALFORMED",
                        target,
                        "json",
                        f"The MCP configuration is not valid JSON: {str(exc)[:200]}",
                        {"error": str(exc)[:300]},
                    )
                ]
            return []
        if not isinstance(doc, dict):
            return []
        findings: list[Finding] = []
        for name, spec in _servers(doc):
            findings.extend(_server(name, spec, target))
            for tool in _tool_list(spec):
                findings.extend(self._tool(name, tool, target))
        result = doc.get("result") if isinstance(doc.get("result"), dict) else {}
        manifest = _tool_list(doc) or _tool_list(result)
        if manifest:
            info = doc.get("serverInfo") or result.get("serverInfo") or {}
            server = str(info.get("name") if isinstance(info, dict) else "") or str(
                doc.get("name") or path.stem
            )
            for tool in manifest:
                findings.extend(self._tool(server, tool, target))
        for key in ("description", "instructions"):
            if isinstance(doc.get(key), str):
                findings.extend(_text_rules(doc[key], target, f"server.{key}", "server"))
        return findings

    def _tool(self, server: str, tool: dict[str, Any], target: str) -> list[Finding]:
        name = str(tool.get("name", ""))[:200]
        texts = list(_strings(tool, 0))
        description = "\n".join(texts)
        self.tools.append(_Tool(server, name, description, target))
        return _text_rules(description + "\n" + name, target, f"tool.{escape(name)}", "tool")

    def finish(self) -> list[Finding]:
        """Tools that shadow or re-describe another server's tools, over the whole scan."""
        findings: list[Finding] = []
        first: dict[str, _Tool] = {}
        for tool in self.tools:
            seen = first.get(tool.name)
            if seen is not None and seen.server != tool.server:
                findings.append(_shadow(tool, seen, "offers a tool of the same name as"))
            first.setdefault(tool.name, tool)
        for tool in self.tools:
            for other in first.values():
                if other.server == tool.server or len(other.name) < 4 or "_" not in other.name:
                    continue
                if re.search(rf"\b{re.escape(other.name)}\b", tool.description):
                    findings.append(_shadow(tool, other, "describes how to use"))
                    break
        return findings


def _shadow(tool: _Tool, other: _Tool, how: str) -> Finding:
    return llm_finding(
        "MLH-SCAN-MCP-TOOL-SHADOWING",
        tool.target,
        f"shadow.{escape(tool.server)}.{escape(tool.name)}",
        f"Server {tool.server!r}'s tool {tool.name!r} {how} server {other.server!r}'s tool "
        f"{other.name!r}: a model cannot tell which one it is calling or whose rules apply.",
        {
            "server": escape(tool.server),
            "tool": escape(tool.name),
            "other_server": escape(other.server),
            "other_tool": escape(other.name),
            "other_file": other.target,
        },
    )


def _servers(doc: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    holders = [doc]
    if isinstance(doc.get("mcp"), dict):  # VS Code settings.json: {"mcp": {"servers": ...}}
        holders.append(doc["mcp"])
    for holder in holders:
        for key in _SERVER_KEYS:
            servers = holder.get(key)
            if isinstance(servers, dict):
                for name, spec in list(servers.items())[:1000]:
                    if isinstance(spec, dict):
                        yield str(name), spec
            elif isinstance(servers, list) and key != "servers":
                # a list under "servers" is OpenAPI's, not MCP's: only mcpServers lists count
                for i, spec in enumerate(servers[:1000]):
                    if isinstance(spec, dict):
                        yield str(spec.get("name", i)), spec


def _tool_list(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, dict) or not isinstance(value.get("tools"), list):
        return []
    return [t for t in value["tools"][:5000] if isinstance(t, dict) and "name" in t]


def _strings(value: Any, depth: int) -> Iterator[str]:
    """Every string of a tool that the model reads (description, schema texts), bounded."""
    if depth > 12:
        return
    if isinstance(value, str):
        yield value[:100_000]
    elif isinstance(value, dict):
        for k, v in list(value.items())[:500]:
            if k != "name" or depth > 0:
                yield from _strings(v, depth + 1)
    elif isinstance(value, list):
        for v in value[:500]:
            yield from _strings(v, depth + 1)


def _text_rules(
    text: str, target: str, where: str, what: str, *, signals: bool = True
) -> list[Finding]:
    """Invisible characters, and (for text the model reads) instructions to the model."""
    findings = []
    invisible = invisible_chars(text)
    if invisible:
        findings.append(
            llm_finding(
                "MLH-SCAN-MCP-INVISIBLE-UNICODE",
                target,
                f"{where}:invisible",
                f"The {what} text holds invisible characters {', '.join(invisible[:8])}: the "
                "model reads what the reviewer does not see.",
                {"where": where, "characters": invisible[:20], "text": escape(text)[:400]},
            )
        )
    found = instruction_signals(text) if signals else []
    if found:
        findings.append(
            llm_finding(
                "MLH-SCAN-MCP-TOOL-POISONING",
                target,
                f"{where}:poisoning",
                f"The {what} description gives the model instructions "
                f"({', '.join(s.kind for s in found)}).",
                {"where": where, "signals": [{"kind": s.kind, "quote": s.quote} for s in found]},
            )
        )
    return findings


def _server(name: str, spec: dict[str, Any], target: str) -> list[Finding]:
    findings: list[Finding] = []
    where = f"server.{escape(name)}"
    command = str(spec.get("command", ""))
    raw_args = spec.get("args") if isinstance(spec.get("args"), list) else []
    args = [str(a) for a in raw_args[:200] if isinstance(a, str | int | float)]
    env = spec.get("env") if isinstance(spec.get("env"), dict) else {}
    texts = [name, command, *args, *(str(v) for v in list(env.values())[:500])]
    # Names, commands and paths are not read by the model: only hidden characters count there.
    findings.extend(_text_rules("\n".join(texts), target, where, "server", signals=False))
    for key in ("description", "instructions"):
        if isinstance(spec.get(key), str):
            findings.extend(_text_rules(spec[key], target, f"{where}.{key}", "server"))
    package = _unpinned(command, args)
    if package:
        findings.append(
            llm_finding(
                "MLH-SCAN-MCP-UNPINNED-PACKAGE",
                target,
                f"{where}:unpinned",
                f"Server {name!r} runs {package!r} through {Path(command).name} without a "
                "version: each start may fetch different code than the one approved.",
                {"server": escape(name), "command": command, "args": args[:10], "package": package},
            )
        )
    findings.extend(_secrets(name, spec, args, target, where))
    joined = " ".join([command, *args]).lower()
    if "filesystem" in joined:
        roots = [a for a in args if _HOME.match(a.strip())]
        if roots:
            findings.append(
                llm_finding(
                    "MLH-SCAN-MCP-BROAD-FILESYSTEM",
                    target,
                    f"{where}:root",
                    f"Server {name!r} gives the model the file system from {roots[0]!r}: every "
                    "key, token and document below it.",
                    {"server": escape(name), "roots": roots[:5], "args": args[:10]},
                )
            )
    url = spec.get("url") or spec.get("serverUrl")
    if isinstance(url, str) and url.lower().startswith("http://") and not _LOOPBACK.match(url):
        findings.append(
            llm_finding(
                "MLH-SCAN-MCP-PLAIN-HTTP",
                target,
                f"{where}:http",
                f"Server {name!r} is reached over plain HTTP ({url[:120]}): anyone on the path "
                "can read and rewrite its tools and answers.",
                {"server": escape(name), "url": escape(url)[:300]},
            )
        )
    return findings


def _unpinned(command: str, args: list[str]) -> str | None:
    runner = Path(command.replace("\\", "/")).name.lower().removesuffix(".cmd")
    rest = args
    if runner in ("pnpm", "bun") and args[:1] in (["dlx"], ["x"]):
        runner, rest = "npx", args[1:]
    if runner == "pipx" and args[:1] == ["run"]:
        rest = args[1:]
    if runner not in _RUNNERS:
        return None
    package = None
    skip = False
    for arg in rest:
        if skip:
            skip = False
            if arg.startswith("-"):
                continue
            package = arg  # --package/--from/-p name: that is what gets installed
            break
        if arg in ("-p", "--package", "--from", "--spec"):
            skip = True
            continue
        if arg.startswith("-"):
            continue
        package = arg
        break
    if package is None:
        return None
    if _RUNNERS[runner] == "npm":
        version = (
            package[1:].partition("@")[2] if package.startswith("@") else package.partition("@")[2]
        )
        pinned = bool(re.match(r"^v?\d+\.\d+\.\d+", version))
    else:
        pinned = "==" in package or package.endswith(".whl") or package.startswith(("/", "."))
    return None if pinned else package


def _secrets(
    name: str, spec: dict[str, Any], args: list[str], target: str, where: str
) -> list[Finding]:
    hits = []
    env = spec.get("env") if isinstance(spec.get("env"), dict) else {}
    headers = spec.get("headers") if isinstance(spec.get("headers"), dict) else {}
    for source, mapping in (("env", env), ("headers", headers)):
        for key, value in list(mapping.items())[:500]:
            if not isinstance(value, str) or _PLACEHOLDER.search(value):
                continue
            bare = value.removeprefix("Bearer ").removeprefix("token ").strip()
            wordlike = len(bare) >= 8 and not any(c.isspace() for c in bare)
            if _TOKEN_VALUE.match(bare) or (_SECRET_KEY.search(str(key)) and wordlike):
                hits.append({"in": source, "key": escape(str(key)), "value": _mask(bare)})
    for arg in args:
        value = arg.partition("=")[2] if arg.startswith("--") else arg
        if _TOKEN_VALUE.match(value):
            hits.append({"in": "args", "key": arg.partition("=")[0][:40], "value": _mask(value)})
    if not hits:
        return []
    return [
        llm_finding(
            "MLH-SCAN-MCP-INLINE-SECRET",
            target,
            f"{where}:secret",
            f"Server {name!r} has {len(hits)} secret value(s) written into the configuration "
            f"({', '.join(h['key'] for h in hits[:4])}).",
            {"server": escape(name), "secrets": hits[:20]},
        )
    ]


def _mask(value: str) -> str:
    return value[:4] + "…" + f"({len(value)} chars)"

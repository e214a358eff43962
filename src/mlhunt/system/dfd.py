"""Data-flow diagrams of a ``model`` document: Graphviz DOT (and SVG through ``dot``) and Mermaid.

Everything here reads the JSON document (``ThreatModel.to_document()``), never the pydantic
classes, so the report formatters can draw any document that carries ``elements``, ``flows`` and
``trust_boundaries``. Every id and label coming from the input is escaped for the target language.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from typing import Any
from urllib.parse import quote

from mlhunt.system.model import EXTERNAL_KINDS, STORE_KINDS, ElementKind

__all__ = ["ML_KINDS", "element_shape", "to_dot", "to_mermaid", "to_svg"]

_EXTERNAL = frozenset(k.value for k in EXTERNAL_KINDS)
_STORES = frozenset(k.value for k in STORE_KINDS)
#: Kinds that are ML components: drawn with their own fill and a bold purple border.
ML_KINDS = frozenset(
    k.value
    for k in (
        ElementKind.FEATURE_PIPELINE,
        ElementKind.TRAINING_JOB,
        ElementKind.MODEL_REGISTRY,
        ElementKind.MODEL_ARTIFACT,
        ElementKind.INFERENCE_API,
        ElementKind.LLM,
        ElementKind.VECTOR_STORE,
        ElementKind.AGENT_TOOL,
    )
)

_FILL = {"external": "#eceff1", "store": "#e3f2fd", "process": "#ffffff", "ml": "#ede7f6"}
_ML_BORDER = "#5e35b1"
_INSECURE = "#c62828"
_BOUNDARY = "#c62828"


def element_shape(element: dict[str, Any]) -> str:
    """'external', 'store' or 'process' (the DFD element types); unknown kinds are processes."""
    kind = str(element.get("kind", ""))
    if kind in _EXTERNAL:
        return "external"
    if kind in _STORES:
        return "store"
    return "process"


def is_ml(element: dict[str, Any]) -> bool:
    return str(element.get("kind", "")) in ML_KINDS or bool(element.get("model"))


def _s(value: Any) -> str:
    return "" if value is None else str(value)


def _label(obj: dict[str, Any]) -> str:
    return _s(obj.get("name") or obj.get("id"))


class _Layout:
    """Elements and boundaries of a document, with boundary nesting resolved safely."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.elements = [e for e in doc.get("elements") or [] if isinstance(e, dict)]
        self.flows = [f for f in doc.get("flows") or [] if isinstance(f, dict)]
        self.boundaries = [b for b in doc.get("trust_boundaries") or [] if isinstance(b, dict)]
        ids = {_s(b.get("id")) for b in self.boundaries}
        self.children: dict[str | None, list[dict[str, Any]]] = {}
        for b in self.boundaries:
            parent = _s(b.get("parent")) or None
            if parent not in ids or self._cycles(b, {_s(x.get("id")): x for x in self.boundaries}):
                parent = None
            self.children.setdefault(parent, []).append(b)
        self.members: dict[str | None, list[dict[str, Any]]] = {}
        for e in self.elements:
            boundary = _s(e.get("boundary")) or None
            if boundary not in ids:
                boundary = None
            self.members.setdefault(boundary, []).append(e)

    @staticmethod
    def _cycles(b: dict[str, Any], by_id: dict[str, dict[str, Any]]) -> bool:
        seen = {_s(b.get("id"))}
        parent = _s(b.get("parent")) or None
        while parent is not None and parent in by_id:
            if parent in seen:
                return True
            seen.add(parent)
            parent = _s(by_id[parent].get("parent")) or None
        return False


# --------------------------------------------------------------------------------------------
# Graphviz
# --------------------------------------------------------------------------------------------


def _dq(value: Any) -> str:
    """A DOT double-quoted string; '&' is escaped too because Graphviz decodes HTML entities."""
    s = _s(value).replace("\\", "\\\\").replace('"', '\\"').replace("&", "&amp;")
    s = s.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\\n")
    return f'"{s}"'


def _attrs(**attrs: Any) -> str:
    return ", ".join(f"{k}={_dq(v)}" for k, v in attrs.items() if v is not None and v != "")


def _href(value: Any) -> str:
    """A link target Graphviz can copy into SVG as is: Graphviz does not escape URLs, so
    everything outside a conservative URL character set is percent-encoded."""
    return quote(_s(value), safe="#/:?=@!$+,;~.-_%")


def _node_label(e: dict[str, Any]) -> str:
    label = _label(e)
    tech = _s(e.get("technology"))
    kind = _s(e.get("kind")).replace("_", " ")
    sub = f"«{kind}»" if kind else ""
    if tech:
        tech = tech if len(tech) <= 40 else tech[:39] + "…"
        sub = f"{sub} {tech}".strip()
    return f"{label}\n{sub}" if sub else label


def _dot_node(
    e: dict[str, Any],
    colors: dict[str, str],
    links: dict[str, str],
    indent: str,
    ids: bool = False,
) -> str:
    eid = _s(e.get("id"))
    shape = element_shape(e)
    ml = is_ml(e)
    attrs: dict[str, Any] = {"label": _node_label(e), "tooltip": _s(e.get("description"))}
    if shape == "external":
        attrs.update(shape="box", style="filled")
    elif shape == "store":
        attrs.update(shape="cylinder", style="filled")
    else:
        attrs.update(shape="box", style="rounded,filled")
    attrs["fillcolor"] = colors.get(eid) or _FILL["ml" if ml else shape]
    if ml:
        attrs.update(color=_ML_BORDER, penwidth="2")
    if eid in links:
        attrs.update(href=_href(links[eid]), target="_self")
    if ids:
        attrs["id"] = f"dfd-e-{eid}"  # the HTML report highlights attack paths by these ids
    return f"{indent}{_dq(eid)} [{_attrs(**attrs)}];"


def to_dot(
    doc: dict[str, Any],
    *,
    colors: dict[str, str] | None = None,
    links: dict[str, str] | None = None,
    ids: bool = False,
) -> str:
    """Graphviz DOT of the document's DFD (``ids``: SVG ids ``dfd-e-<element>`` and
    ``dfd-f-<flow>`` on nodes and edges, for highlighting attack paths).

    Trust boundaries are nested ``cluster_*`` subgraphs following ``parent``; external entities
    are boxes, stores cylinders, processes rounded boxes; ML components get a purple border and
    lavender fill (``colors`` maps element ids to fills, e.g. by worst severity, and overrides the
    fill); ``links`` maps element or flow ids to hrefs that the SVG nodes and edges link to.
    Unencrypted flows are dashed and red.
    """
    colors = colors or {}
    links = links or {}
    layout = _Layout(doc)
    name = _s((doc.get("system") or {}).get("name")) if isinstance(doc.get("system"), dict) else ""
    lines = [
        "digraph dfd {",
        f"  graph [{_attrs(rankdir='LR', fontname='Helvetica', fontsize='11', label=name)}, "
        'labelloc="t", compound=true, nodesep="0.35", ranksep="0.7"];',
        '  node [fontname="Helvetica", fontsize="10", margin="0.12,0.06"];',
        '  edge [fontname="Helvetica", fontsize="9", color="#455a64", fontcolor="#37474f"];',
    ]
    counter = iter(range(1_000_000))

    def emit(parent: str | None, depth: int) -> None:
        indent = "  " * depth
        for b in layout.children.get(parent, []):
            bid = _s(b.get("id"))
            kind = _s(b.get("kind"))
            label = _label(b) + (f" [{kind}]" if kind else "")
            lines.append(f"{indent}subgraph cluster_{next(counter)} {{")
            lines.append(
                f"{indent}  graph [{_attrs(label=label, tooltip=_s(b.get('description')))}, "
                f'style="dashed,rounded", color="{_BOUNDARY}", fontcolor="{_BOUNDARY}", '
                'labeljust="l"];'
            )
            for e in layout.members.get(bid, []):
                lines.append(_dot_node(e, colors, links, indent + "  ", ids))
            emit(bid, depth + 1)
            lines.append(f"{indent}}}")

    emit(None, 1)
    for e in layout.members.get(None, []):
        lines.append(_dot_node(e, colors, links, "  ", ids))
    element_ids = {_s(e.get("id")) for e in layout.elements}
    for f in layout.flows:
        src, dst = _s(f.get("source")), _s(f.get("target"))
        if src not in element_ids or dst not in element_ids:
            continue
        label = _label(f)
        if f.get("protocol"):
            label += f"\n[{_s(f['protocol'])}]"
        attrs: dict[str, Any] = {"label": label, "tooltip": _s(f.get("description"))}
        if not f.get("encrypted"):
            attrs.update(style="dashed", color=_INSECURE, fontcolor=_INSECURE)
        fid = _s(f.get("id"))
        if fid in links:
            attrs.update(href=_href(links[fid]), target="_self")
        if ids:
            attrs["id"] = f"dfd-f-{fid}"
        lines.append(f"  {_dq(src)} -> {_dq(dst)} [{_attrs(**attrs)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_svg(dot: str, *, timeout: float = 60.0) -> str:
    """Render DOT to SVG with the Graphviz ``dot`` binary (no shell)."""
    exe = shutil.which("dot")
    if exe is None:
        raise RuntimeError("Graphviz `dot` not found; install graphviz")
    try:
        proc = subprocess.run(
            [exe, "-Tsvg"],
            input=dot.encode("utf-8"),
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"Graphviz `dot` did not finish within {timeout:g} s") from None
    except OSError as exc:
        raise RuntimeError(f"Graphviz `dot` could not run: {exc}") from None
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip()
        raise RuntimeError(f"Graphviz `dot` failed (exit {proc.returncode}): {err}")
    return proc.stdout.decode("utf-8", "replace")


# --------------------------------------------------------------------------------------------
# Mermaid
# --------------------------------------------------------------------------------------------

# Mermaid decodes '#<code>;' entity codes inside labels; everything that could end a quoted label,
# start markup or an entity is written as one.
_MERMAID_ESCAPES = {
    "#": "#35;",
    '"': "#quot;",
    "&": "#amp;",
    "<": "#lt;",
    ">": "#gt;",
    "|": "#124;",
    "`": "#96;",
}
_MERMAID_RE = re.compile("|".join(re.escape(k) for k in _MERMAID_ESCAPES))


def _mq(value: Any) -> str:
    """A quoted Mermaid label with entity escapes; newlines become line breaks."""
    s = _MERMAID_RE.sub(lambda m: _MERMAID_ESCAPES[m.group(0)], _s(value))
    s = s.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "<br/>")
    return f'"{s}"'


_SHAPES = {
    "external": ("[", "]"),
    "store": ("[(", ")]"),
    "process": ("(", ")"),
}


def to_mermaid(doc: dict[str, Any], *, colors: dict[str, str] | None = None) -> str:
    """Mermaid ``flowchart LR`` of the document's DFD (boundaries as nested subgraphs).

    Node ids are generated (``n0``, ``b0`` ...), so any input id is safe; labels are quoted and
    entity-escaped. External entities are rectangles, stores cylinders, processes rounded; ML
    components have their own class; unencrypted flows are dotted red links.
    """
    colors = colors or {}
    layout = _Layout(doc)
    node_ids = {_s(e.get("id")): f"n{i}" for i, e in enumerate(layout.elements)}
    lines = ["flowchart LR"]
    bcount = iter(range(1_000_000))

    def node(e: dict[str, Any], indent: str) -> str:
        open_, close = _SHAPES[element_shape(e)]
        label = _label(e)
        kind = _s(e.get("kind")).replace("_", " ")
        if kind:
            label = f"{label}\n«{kind}»"
        return f"{indent}{node_ids[_s(e.get('id'))]}{open_}{_mq(label)}{close}"

    def emit(parent: str | None, depth: int) -> None:
        indent = "  " * depth
        for b in layout.children.get(parent, []):
            bid = _s(b.get("id"))
            lines.append(f"{indent}subgraph b{next(bcount)}[{_mq(_label(b))}]")
            for e in layout.members.get(bid, []):
                lines.append(node(e, indent + "  "))
            emit(bid, depth + 1)
            lines.append(f"{indent}end")

    emit(None, 1)
    for e in layout.members.get(None, []):
        lines.append(node(e, "  "))
    insecure: list[int] = []
    n = 0
    for f in layout.flows:
        src, dst = node_ids.get(_s(f.get("source"))), node_ids.get(_s(f.get("target")))
        if src is None or dst is None:
            continue
        label = _label(f)
        if f.get("protocol"):
            label += f" [{_s(f['protocol'])}]"
        arrow = "-->" if f.get("encrypted") else "-.->"
        if not f.get("encrypted"):
            insecure.append(n)
        lines.append(f"  {src} {arrow}|{_mq(label)}| {dst}")
        n += 1
    lines += [
        "  classDef external fill:#eceff1,stroke:#546e7a",
        "  classDef store fill:#e3f2fd,stroke:#1565c0",
        "  classDef process fill:#ffffff,stroke:#455a64",
        "  classDef ml fill:#ede7f6,stroke:#5e35b1,stroke-width:2px",
    ]
    for cls in ("external", "store", "process", "ml"):
        members = [
            node_ids[_s(e.get("id"))]
            for e in layout.elements
            if (is_ml(e) if cls == "ml" else element_shape(e) == cls and not is_ml(e))
        ]
        if members:
            lines.append(f"  class {','.join(members)} {cls}")
    color_re = re.compile(r"^#[0-9A-Fa-f]{3,8}$")
    for eid, color in colors.items():
        if eid in node_ids and color_re.match(color):
            lines.append(f"  style {node_ids[eid]} fill:{color}")
    if insecure:
        indices = ",".join(map(str, insecure))
        lines.append(f"  linkStyle {indices} stroke:{_INSECURE},color:{_INSECURE}")
    return "\n".join(lines) + "\n"

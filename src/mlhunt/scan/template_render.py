"""The rendering pass of chat template analysis, in a child process and a Jinja2 sandbox.

Static rules read the literal text of a template; a template can also *build* its text
(``'snoitcurtsni' | reverse``, joins, character arithmetic). So the template is rendered on a
few probe conversations, and the text it inserts (what is left once the messages themselves are
removed) is judged like literal text. Rendering happens in an isolated child
(``python -I`` running :mod:`mlhunt.scan.jinja_sandbox` as a script) under an address-space and
CPU limit, in Jinja2's ``ImmutableSandboxedEnvironment`` (no attribute of Python internals, no
mutation), with bounded output; the parent only reads JSON from a pipe, so a hostile template
can neither reach the scanner nor hang it.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from mlhunt.findings import Finding
from mlhunt.scan.jinja_sandbox import PROBES
from mlhunt.scan.llm_rules import llm_finding
from mlhunt.scan.textsignals import instruction_signals

__all__ = ["render_findings", "render_in_child"]

_MEMORY = 1 << 30
_CPU_SECONDS = 5
_TIMEOUT = 20.0  # wall clock; the CPU limit is the real bound, this one survives a busy host
# The child runs this file as a script: it imports jinja2 and nothing of mlhunt.
_SCRIPT = str(Path(__file__).resolve().with_name("jinja_sandbox.py"))


@functools.lru_cache(maxsize=64)
def render_in_child(source: str) -> dict[str, Any]:
    """``{"outputs": [...]}`` (one per probe; ``{"error": ...}`` where one failed), or
    ``{"crashed": reason}`` when the child ran out of time or memory. Cached per template text:
    a model's GGUF and its Hugging Face folder usually carry the same template. Callers must
    not modify the result."""
    try:
        out = subprocess.run(  # our own interpreter and script, no shell
            [sys.executable, "-I", _SCRIPT, str(_MEMORY), str(_CPU_SECONDS)],
            input=json.dumps({"template": source}).encode("utf-8", "surrogatepass"),
            capture_output=True,
            timeout=_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"crashed": f"no answer within {_TIMEOUT:.0f} s"}
    except OSError as exc:
        return {"crashed": f"could not start the renderer: {exc}"}
    try:
        return dict(json.loads(out.stdout.decode("utf-8")))
    except (UnicodeDecodeError, ValueError):
        code = out.returncode
        why = f"signal {-code}" if code < 0 else f"exit {code}"
        return {"crashed": f"the renderer died ({why}; over {_MEMORY >> 20} MB or CPU time?)"}


def render_findings(source: str, target: str, where: str, tree: Any = None) -> list[Finding]:
    """Findings from rendering ``source`` on :data:`PROBES` in the sandboxed child."""
    result = render_in_child(source)
    base = {"field": where}
    if "crashed" in result:
        return [
            llm_finding(
                "MLH-SCAN-TEMPLATE-RENDER",
                target,
                f"{where}:render-crash",
                f"Rendering the template on an ordinary conversation did not finish: "
                f"{result['crashed']}. An inference server rendering it hangs or runs out of "
                "memory on every request.",
                {**base, "reason": result["crashed"]},
                "medium",
            )
        ]
    findings: list[Finding] = []
    for i, output in enumerate(result.get("outputs", [])):
        if output.get("security"):
            findings.append(
                llm_finding(
                    "MLH-SCAN-TEMPLATE-SSTI",
                    target,
                    f"{where}:sandbox",
                    "The sandbox stopped the template reaching Python internals while it "
                    f"rendered: {output['security']}",
                    {**base, "probe": i, "error": output["security"][:300]},
                )
            )
            continue
        text = output.get("text", "")
        for msg in PROBES[i]["messages"]:
            text = text.replace(msg["content"], " ")
        signals = instruction_signals(text)
        if signals:
            findings.append(
                llm_finding(
                    "MLH-SCAN-TEMPLATE-RENDER",
                    target,
                    f"{where}:render:{i}",
                    "Rendered on an ordinary conversation, the template inserts text that "
                    f"speaks to the model ({', '.join(s.kind for s in signals)}).",
                    {
                        **base,
                        "probe": i,
                        "signals": [{"kind": s.kind, "quote": s.quote} for s in signals[:8]],
                    },
                )
            )
            break
    return findings

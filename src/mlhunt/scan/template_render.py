"""The rendering pass of chat template analysis, in a child process and a Jinja2 sandbox.

Static rules read the literal text of a template; a template can also *build* its text
(``'snoitcurtsni' | reverse``, joins, character arithmetic). So the template is rendered on a
few probe conversations, and the text it inserts (what is left once the messages themselves are
removed) is judged like literal text. Rendering happens in an isolated child
(``python -I``, this copy of the module) under an address-space and CPU limit, in Jinja2's
``ImmutableSandboxedEnvironment`` (no attribute of Python internals, no mutation), with bounded
output; the parent only reads JSON from a pipe, so a hostile template can neither reach the
scanner nor hang it.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from mlhunt.findings import Finding
from mlhunt.scan.llm_rules import llm_finding
from mlhunt.scan.textsignals import instruction_signals

__all__ = ["PROBES", "render_findings", "render_in_child"]

_MEMORY = 1 << 30
_CPU_SECONDS = 5
_TIMEOUT = 10.0
# The child imports this very copy of mlhunt (-I drops the environment and the current folder).
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])
_BOOT = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "from mlhunt.scan.template_render import main; main()"
)
MAX_OUTPUT = 64 << 10  # characters of rendered text kept per probe

_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
#: Probe conversations: ordinary ones, so the text a template adds on every request shows.
PROBES: tuple[dict[str, Any], ...] = (
    {
        "messages": [
            {"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": "What is the capital of France?"},
            {"role": "assistant", "content": "Paris."},
            {"role": "user", "content": "And of Italy?"},
        ],
        "add_generation_prompt": True,
    },
    {
        "messages": [{"role": "user", "content": "Summarise this invoice for me."}],
        "add_generation_prompt": True,
        "tools": [_TOOL],
    },
)


@functools.lru_cache(maxsize=64)
def render_in_child(source: str) -> dict[str, Any]:
    """``{"outputs": [...]}`` (one per probe; ``{"error": ...}`` where one failed), or
    ``{"crashed": reason}`` when the child ran out of time or memory. Cached per template text:
    a model's GGUF and its Hugging Face folder usually carry the same template. Callers must
    not modify the result."""
    try:
        out = subprocess.run(  # our own interpreter and module, no shell
            [sys.executable, "-I", "-c", _BOOT, _PACKAGE_ROOT],
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


# --------------------------------------------------------------------------- the child


def _child(source: str) -> dict[str, Any]:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (_MEMORY, _MEMORY))
    resource.setrlimit(resource.RLIMIT_CPU, (_CPU_SECONDS, _CPU_SECONDS))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    from jinja2.exceptions import SecurityError, TemplateError

    from mlhunt.scan.templates import sandbox_env

    class Refused(Exception):
        pass

    def raise_exception(message: object) -> None:
        raise Refused(str(message))

    env = sandbox_env()
    env.globals.update(raise_exception=raise_exception, strftime_now=lambda fmt: "01 Jan 2025")
    try:
        template = env.from_string(source)
    except TemplateError as exc:
        return {"error": f"{type(exc).__name__}: {exc}"[:500]}
    outputs: list[dict[str, Any]] = []
    for probe in PROBES:
        ctx = {"bos_token": "<s>", "eos_token": "</s>", **probe}
        parts: list[str] = []
        size = 0
        try:
            for chunk in template.generate(**ctx):
                parts.append(chunk)
                size += len(chunk)
                if size > MAX_OUTPUT:
                    break
            outputs.append({"text": "".join(parts)[:MAX_OUTPUT]})
        except SecurityError as exc:
            outputs.append({"security": str(exc)[:500]})
        except Refused as exc:
            outputs.append({"text": "".join(parts)[:MAX_OUTPUT], "refused": str(exc)[:300]})
        except Exception as exc:  # a template error on one probe: the others still count
            outputs.append({"text": "".join(parts)[:MAX_OUTPUT], "error": repr(exc)[:300]})
    return {"outputs": outputs}


def main() -> None:
    """The child's entry point: a JSON request on stdin, the JSON result on stdout."""
    request = json.loads(sys.stdin.buffer.read().decode("utf-8", "surrogatepass"))
    sys.stdout.write(json.dumps(_child(str(request["template"]))))


if __name__ == "__main__":
    main()

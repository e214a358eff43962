"""The Jinja2 sandbox chat templates are parsed and rendered with, and the render child itself.

Run as a script (``python -I jinja_sandbox.py MEMORY CPU``, see :mod:`template_render`) it reads
``{"template": ...}`` on stdin, limits its own address space and CPU time, renders the template
on :data:`PROBES` in ``ImmutableSandboxedEnvironment`` with bounded output, and writes JSON on
stdout. It imports jinja2 and nothing of mlhunt, so the child starts fast.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from jinja2 import nodes
from jinja2.ext import Extension
from jinja2.sandbox import ImmutableSandboxedEnvironment

__all__ = ["MAX_OUTPUT", "PROBES", "sandbox_env"]

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


class _Generation(Extension):
    """transformers' ``{% generation %}`` block (marks assistant tokens): parsed as a scope."""

    tags = {"generation"}

    def parse(self, parser: Any) -> nodes.Node:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return nodes.Scope(body, lineno=lineno)


def sandbox_env() -> ImmutableSandboxedEnvironment:
    """The sandbox, with the extensions transformers enables for chat templates (so real
    templates parse): ``loopcontrols`` and ``{% generation %}``."""
    return ImmutableSandboxedEnvironment(extensions=["jinja2.ext.loopcontrols", _Generation])


def render_probes(source: str) -> dict[str, Any]:
    """``{"outputs": [...]}``, one per probe (``text``, or ``security`` when the sandbox
    refused an operation, or ``error``)."""
    from jinja2.exceptions import SecurityError, TemplateError

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
    specials = {"bos_token": "<s>", "eos_token": "</s>"}  # the tokenizer's, not secrets
    for probe in PROBES:
        parts: list[str] = []
        size = 0
        try:
            for chunk in template.generate(**specials, **probe):
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


def _main(memory: int, cpu_seconds: int) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    request = json.loads(sys.stdin.buffer.read().decode("utf-8", "surrogatepass"))
    sys.stdout.write(json.dumps(render_probes(str(request["template"]))))


if __name__ == "__main__":
    _main(int(sys.argv[1]), int(sys.argv[2]))

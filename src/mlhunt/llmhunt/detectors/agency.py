"""Excessive agency: tool calls per session far above the population, and tool calls whose
arguments break the declared limits (the tool's JSON Schema in the request, or the schema the
user gives in ``tool_limits``, which wins), or that name a tool the request did not offer."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mlhunt.llmhunt.detectors.base import ClientScore, Context, LlmDetector
from mlhunt.llmhunt.records import Call, ToolCall


def declared(call: Call) -> dict[str, Any]:
    """Tool name -> JSON Schema of its arguments, as offered in the request."""
    out: dict[str, Any] = {}
    for t in call.tools:
        fn = t.get("function", t)
        if isinstance(fn, Mapping) and isinstance(fn.get("name"), str):
            params = fn.get("parameters")
            out[fn["name"]] = params if isinstance(params, Mapping) else {}
    return out


MAX_RESULTS = 100_000  # tool calls whose verdict is remembered (bounded memory)


class Violations:
    """Checks tool calls against schemas; validators are built once per schema."""

    def __init__(self, limits: Mapping[str, Mapping[str, Any]]) -> None:
        self.limits = limits
        self.cache: dict[str, Any] = {}
        self.by_id: dict[int, tuple[Any, str]] = {}
        self.results: dict[tuple[str, str, str], str | None] = {}

    def check(self, tc: ToolCall, offered: Mapping[str, Any]) -> str | None:
        schema = self.limits.get(tc.name)
        if schema is None:
            if offered and tc.name not in offered:
                return f"tool {tc.name!r} was not offered"
            schema = offered.get(tc.name)
        if not schema:
            return None
        pinned = self.by_id.get(id(schema))  # calls of one reader share their tools' schemas
        if pinned is not None and pinned[0] is schema:
            key = pinned[1]
        else:
            key = json.dumps(schema, sort_keys=True, default=str)
            self.by_id[id(schema)] = (schema, key)  # (the schema kept: its id stays its own)
        seen = (tc.name, key, tc.arguments)  # agents repeat calls: each is judged once
        if seen in self.results:
            return self.results[seen]
        why = self.validate(tc, schema, key)
        if len(self.results) < MAX_RESULTS:
            self.results[seen] = why
        return why

    def validate(self, tc: ToolCall, schema: Any, key: str) -> str | None:
        from jsonschema import Draft202012Validator
        from jsonschema.exceptions import SchemaError

        try:
            args = json.loads(tc.arguments or "{}")
        except (ValueError, RecursionError):
            return "arguments are not JSON"
        if key not in self.cache:
            try:
                self.cache[key] = Draft202012Validator(schema)
            except SchemaError:
                self.cache[key] = None
        validator = self.cache[key]
        err = next(iter(validator.iter_errors(args)), None) if validator else None
        if err is None:
            return None
        path = ".".join(map(str, err.absolute_path)) or "arguments"
        return f"{tc.name}.{path}: {err.message[:120]}"


class ExcessiveAgency(LlmDetector):
    yaml_name = "excessive_agency.yaml"
    population = True

    def score(
        self, by_client: Mapping[str, Sequence[Call]], ctx: Context
    ) -> dict[str, ClientScore]:
        per_session: Counter[str] = Counter()
        for calls in by_client.values():
            for c in calls:
                per_session[c.session] += len(c.tool_calls)
        used = [n for n in per_session.values() if n > 0]
        median = float(np.median(used)) if used else 0.0
        limit = max(float(self.param("factor")) * median, float(self.param("min_calls")))
        weight = float(self.param("violation_weight"))
        checker = Violations(ctx.tool_limits)
        seen_tools: dict[int, tuple[Any, dict[str, Any]]] = {}  # tools tuple -> declared
        out: dict[str, ClientScore] = {}
        for client, calls in by_client.items():
            if not any(c.tool_calls for c in calls):
                continue
            counts: Counter[str] = Counter()
            offered: dict[str, dict[str, Any]] = {}
            online, bad, peak = [], [], 0.0
            for c in calls:
                if c.kind == "chat":
                    tools = seen_tools.get(id(c.tools))
                    if tools is None or tools[0] is not c.tools:
                        tools = seen_tools[id(c.tools)] = (c.tools, declared(c))
                    offered[c.session] = tools[1] or offered.get(c.session, {})
                for tc in c.tool_calls:
                    counts[c.session] += 1
                    why = checker.check(tc, offered.get(c.session, {}))
                    if why:
                        bad.append({"where": c.where, "why": why})
                peak = max(peak, counts[c.session] / limit) if c.tool_calls else peak
                online.append(peak + weight * len(bad))
            if online and online[-1] > 0.5:
                out[client] = ClientScore(
                    online,
                    {
                        "max_tool_calls_per_session": max(counts.values()),
                        "population_median_per_session": median,
                        "limit_per_session": limit,
                        "violations": len(bad),
                        "violation_samples": bad[:5],
                        "tools": dict(Counter(tc.name for c in calls for tc in c.tool_calls)),
                    },
                )
        return out

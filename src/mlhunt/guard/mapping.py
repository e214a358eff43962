"""Reading inputs and answers at the proxy, with the request/response mapping ``assess`` uses for
HTTP targets (:class:`mlhunt.assess.http.HttpConfig`: where the input vector sits in the request
body, the dotted paths of the scores and the label in the response), and degrading answers.

Parsing happens in the guard's worker, off the request path; only a degraded answer is parsed
(and rewritten) while the client waits.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlhunt.assess.http import PLACEHOLDERS, HttpConfig, dotted_get
from mlhunt.guard.config import Degrade

MAX_LABEL = 256


def _find(node: Any, trail: tuple[str, ...] = ()) -> tuple[str, tuple[str, ...]] | None:
    """(placeholder, path) of the first placeholder in the body template."""
    if isinstance(node, str) and node in PLACEHOLDERS:
        return node, trail
    if isinstance(node, dict):
        for k, v in node.items():
            got = _find(v, (*trail, str(k)))
            if got:
                return got
    if isinstance(node, list):
        for i, v in enumerate(node):
            got = _find(v, (*trail, str(i)))
            if got:
                return got
    return None


@dataclass
class Mapping:
    """Where to read the input and the answer (see the module docstring)."""

    config: HttpConfig
    feature_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self._where = _find(self.config.body) or ("{vector}", ("vector",))

    def input_vector(self, body: Any) -> list[float] | None:
        """The feature vector of a request body (None when absent, malformed or an image)."""
        kind, trail = self._where
        node = dotted_get(body, ".".join(trail)) if trail else body
        if node is None and isinstance(body, dict):  # the loan API takes either form
            node = body.get("vector", body.get("features"))
        try:
            if isinstance(node, dict):
                names = self.feature_names or tuple(sorted(node))
                vec = [float(node[n]) for n in names]
            elif isinstance(node, list) and kind != "{image}":
                if all(type(v) is float or type(v) is int for v in node):  # the common case
                    vec = [float(v) for v in node]
                else:
                    vec = np.asarray(node, dtype=np.float64).ravel().tolist()
            else:
                return None
        except (KeyError, TypeError, ValueError, OverflowError):
            return None
        return vec if all(map(math.isfinite, vec)) else None

    def answer(self, doc: Any) -> tuple[str | None, list[float] | None]:
        """(label, scores) of a response document."""
        cfg = self.config
        scores = dotted_get(doc, cfg.scores) if cfg.scores else None
        label = dotted_get(doc, cfg.label) if cfg.label else None
        try:
            sc = [float(s) for s in scores] if isinstance(scores, list) else None
        except (TypeError, ValueError):
            sc = None
        if label is None and sc:
            classes = cfg.classes or (doc.get("classes") if isinstance(doc, dict) else None)
            idx = int(np.argmax(sc))
            label = classes[idx] if classes and idx < len(classes) else idx
        if label is not None:  # labels are counted per value: bounded, whatever the answer
            label = str(label)[:MAX_LABEL]
        return label, sc


def margin(scores: list[float] | None) -> float:
    """Top-1 minus top-2 probability (NaN when unknown): what the low-confidence detector reads."""
    if not scores or len(scores) < 2:
        return float("nan")
    top = sorted(scores, reverse=True)
    return float(top[0] - top[1])


def degrade(
    body: bytes, config: HttpConfig, how: Degrade, rng: np.random.Generator
) -> bytes | None:
    """The answer with its scores degraded: removed (``labels``), rounded (``round``) or
    perturbed PRADA-style (``noise``: positive noise, renormalised, the top class kept), so a
    benign caller still gets the right decision and an extractor gets less signal per query.

    Every list of numbers under the scores key (the last part of ``config.scores``) anywhere in
    the document is degraded: a batch answer (a top-level array, ``predictions[].scores``, a
    list of score lists) is not a way around it. None when the answer cannot be read (not JSON,
    nested deeper than the interpreter parses): the caller refuses it rather than pass exact
    scores (fail closed). A JSON answer without any scores key passes unchanged."""
    if not config.scores or not body.strip():
        return body
    key = config.scores.split(".")[-1]
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        return None
    found = False
    stack = [doc]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for k in list(node):
                v = node[k]
                if k == key and isinstance(v, list):
                    new = _degraded(v, how, rng)
                    if new is not None:
                        found = True
                        if how.mode == "labels":
                            del node[k]
                        else:
                            node[k] = new
                        continue
                if isinstance(v, dict | list):
                    stack.append(v)
        elif isinstance(node, list):
            stack.extend(v for v in node if isinstance(v, dict | list))
    if not found:
        return body
    try:
        return json.dumps(doc, separators=(",", ":")).encode()
    except (ValueError, RecursionError):
        return None


def _degraded(v: list[Any], how: Degrade, rng: np.random.Generator) -> list[Any] | None:
    """One scores value degraded: a list of numbers, or (a batch) a list of such lists; None
    when it is neither."""
    if v and all(isinstance(s, list) for s in v):
        parts = [_degraded(s, how, rng) for s in v]
        return None if any(p is None for p in parts) else parts
    if not v or not all(isinstance(s, int | float) and not isinstance(s, bool) for s in v):
        return None
    p = np.asarray(v, dtype=np.float64)
    if not np.all(np.isfinite(p)):
        return [None] * len(p)  # nothing to keep of a broken answer's scores
    if how.mode == "labels":
        return []
    if how.mode == "round":
        return [round(float(s), how.decimals) for s in p]
    q = np.abs(p + rng.normal(0.0, how.noise, p.shape))
    q = q / q.sum() if q.sum() > 0 else np.full(len(p), 1.0 / len(p))
    top, got = int(np.argmax(p)), int(np.argmax(q))
    if top != got:  # keep the decision: swap the two values
        q[top], q[got] = q[got], q[top]
    return [round(float(s), 4) for s in q]

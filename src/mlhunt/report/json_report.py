"""The JSON document as is (docs/architecture.md, "The finding contract")."""

from __future__ import annotations

import json
from typing import Any


def render(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2) + "\n"

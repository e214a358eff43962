"""The JSON document as is (DESIGN.md, "The one currency")."""

from __future__ import annotations

import json
from typing import Any


def render(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2) + "\n"

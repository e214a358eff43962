"""Issue #9, trust: every string that came from an input is shown as text, never run.

A system whose names, descriptions and data assets carry markup, inference logs whose client id
is markup, and an artifact whose file name is markup go through a real ``mlhunt run``; every HTML
report it writes (the run report, and the model/hunt/scan reports of its parts) is opened in
headless Chromium. Each payload would set ``document.title`` to ``PWNED`` if it ran: the title
after the page's scripts ran proves nothing executed, and the dumped DOM holds no element or
handler that came from the input. The Markdown and SARIF of the same run stay well-formed.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from mlhunt.report import render
from tests.conftest import ROOT

_BROWSERS = ("chromium", "chromium-browser", "google-chrome")
CHROMIUM = next((p for p in map(shutil.which, _BROWSERS) if p), None)

RUN = "document.title='PWNED'"
# Attribute break-out, a tag with a handler, a script element, a script-closing sequence and an
# HTML comment opener (which would swallow the rest of an inline <script> or <svg>).
PAYLOAD = f'"\'><img src=x onerror="{RUN}"><script>{RUN}</script></script><!--<svg onload={RUN}>'
# A file name cannot hold '/', so no closing tags there.
FILE_PAYLOAD = f"\"'><img src=x onerror={RUN}><svg onload={RUN}><!--"


def _system() -> dict[str, Any]:
    return {
        "name": f"Shop{PAYLOAD}",
        "description": PAYLOAD,
        "owner": PAYLOAD,
        "criticality": "high",
        "data_assets": [
            {
                "id": "records",
                "name": f"Records{PAYLOAD}",
                "description": PAYLOAD,
                "classification": "personal",
            }
        ],
        "trust_boundaries": [{"id": "corp", "name": f"Corp{PAYLOAD}"}],
        "elements": [
            {"id": "user", "name": f"User{PAYLOAD}", "kind": "actor", "description": PAYLOAD},
            {
                "id": "db",
                "name": f"DB{PAYLOAD}",
                "kind": "data_store",
                "boundary": "corp",
                "data": ["records"],
                "uses_sql": True,
                "technology": PAYLOAD,
            },
            {
                "id": "api",
                "name": f"API{PAYLOAD}",
                "kind": "inference_api",
                "boundary": "corp",
                "internet_facing": True,
                "authentication": "api_key",
                "model": {
                    "algorithm": "logistic_regression",
                    "output": "scores",
                    "ip_value": "high",
                },
            },
            {
                "id": "artifacts",
                "name": f"Artifacts{PAYLOAD}",
                "kind": "data_store",
                "boundary": "corp",
            },
        ],
        "flows": [
            {
                "id": "query",
                "name": f"Query{PAYLOAD}",
                "source": "user",
                "target": "api",
                "data": ["records"],
                "protocol": "https",
                "description": PAYLOAD,
            },
            {
                "id": "read",
                "name": f"Read{PAYLOAD}",
                "source": "db",
                "target": "api",
                "data": ["records"],
                "protocol": "jdbc",
            },
        ],
    }


def _logs(path: Path) -> None:
    """Benign clients and one extractor whose client id is the payload."""
    rng = np.random.default_rng(0)
    rows = [
        {
            "ts": 1709632800 + c * 100 + k,
            "client_id": f"user{c}",
            "source_ip": f"10.0.0.{c}",
            "input": rng.normal([40, 5e4, 3], [10, 2e4, 1]).round(3).tolist(),
            "output": {"label": "ok", "scores": [0.2, 0.8]},
        }
        for c in range(40)
        for k in range(30)
    ]
    rows += [
        {
            "ts": 1709640000 + k,
            "client_id": PAYLOAD,
            "source_ip": "192.0.2.66",
            "model": PAYLOAD,
            "output": {"label": PAYLOAD, "scores": [0.45, 0.55]},
            "input": rng.uniform([0, 0, -10], [120, 5e5, 20]).round(3).tolist(),
        }
        for k in range(200)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


@pytest.fixture(scope="module")
def evil_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("evil")
    (folder / "system.yaml").write_text(yaml.safe_dump(_system()), encoding="utf-8")
    _logs(folder / "logs.jsonl")
    art = folder / "artifacts"
    art.mkdir()
    # A pickle that would run a command when loaded, under a file name that is markup.
    (art / f"{FILE_PAYLOAD}.pkl").write_bytes(b"cos\nsystem\n(S'echo pwned'\ntR.")
    project = {
        "system": "system.yaml",
        "output": "out",
        "logs": [{"path": "logs.jsonl", "element": "api"}],
        "scan": [{"path": "artifacts", "element": "artifacts"}],
    }
    (folder / "mlhunt.yaml").write_text(yaml.safe_dump(project), encoding="utf-8")
    cmd = [sys.executable, "-m", "mlhunt", "run", str(folder / "mlhunt.yaml")]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    out = folder / "out"
    # The parts' own reports, as `mlhunt model|hunt|scan -f html` render them.
    for part in ("hunt-0", "scan-0"):
        doc = json.loads((out / "parts" / f"{part}.json").read_text())["document"]
        (out / f"{part}.html").write_text(render(doc, "html"), encoding="utf-8")
    run_doc = json.loads((out / "run.json").read_text())
    model_findings = [f for f in run_doc["findings"] if f["source"] == "model"]
    model_doc = {**run_doc, "command": "model", "findings": model_findings}
    (out / "model.html").write_text(render(model_doc, "html"), encoding="utf-8")
    return out


def test_the_payloads_reached_every_report(evil_run: Path) -> None:
    """Otherwise the browser test below would prove nothing."""
    doc = json.loads((evil_run / "run.json").read_text())
    targets = {f["target"] for f in doc["findings"]}
    assert PAYLOAD in targets  # the extractor's client id is an alert's target
    assert any(FILE_PAYLOAD in t for t in targets)  # the artifact's file name
    assert any(PAYLOAD in (e.get("name") or "") for e in doc["elements"])
    for page in evil_run.glob("*.html"):
        html = page.read_text(encoding="utf-8")
        assert "PWNED" in html, page.name  # there, as text
        assert "<img src=x" not in html and f"<script>{RUN}" not in html, page.name
        assert "<svg onload" not in html and "<!--<svg" not in html, page.name


class _Dom(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.title, self.in_title = "", False
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self.in_title = tag == "title"

    def handle_endtag(self, tag: str) -> None:
        self.in_title = False if tag == "title" else self.in_title

    def handle_data(self, data: str) -> None:
        if self.in_title:
            self.title += data


def _browse(page: Path, fragment: str = "") -> tuple[_Dom, str]:
    """The DOM after the page's scripts ran (headless Chromium), and its console log."""
    assert CHROMIUM is not None
    with tempfile.TemporaryDirectory(prefix="mlhunt-chromium-") as profile:
        cmd = [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--enable-logging=stderr",
            "--log-level=0",
            "--virtual-time-budget=3000",
            "--dump-dom",
            page.as_uri() + fragment,
        ]
        proc = subprocess.run(
            cmd, capture_output=True, encoding="utf-8", errors="replace", timeout=60, check=False
        )
    assert proc.returncode == 0 and "<body" in proc.stdout, proc.stderr[-2000:]
    dom = _Dom()
    dom.feed(proc.stdout)
    console = "\n".join(ln for ln in proc.stderr.splitlines() if ":CONSOLE" in ln)
    return dom, console


@pytest.mark.skipif(CHROMIUM is None, reason="no headless browser on PATH")
@pytest.mark.parametrize("page", ["report.html", "model.html", "hunt-0.html", "scan-0.html"])
def test_nothing_from_the_input_runs_in_the_browser(evil_run: Path, page: str) -> None:
    path = evil_run / page
    static = _Dom()
    static.feed(path.read_text(encoding="utf-8"))  # as written, before any script ran
    own_scripts = [t for t, _ in static.tags].count("script")
    # A crafted link to the report must not run anything either (the fragment drives filters).
    fragment = "#filter=q:" + PAYLOAD.replace("#", "%23") if page == "report.html" else ""
    dom, console = _browse(path, fragment)
    # The system name (payload included) is in the title as text; had a payload run, the title
    # would be just "PWNED".
    assert dom.title == static.title and dom.title != "PWNED", dom.title
    assert "Uncaught" not in console, console
    tags = [t for t, _ in dom.tags]
    assert tags.count("script") == own_scripts <= 1  # only the report's own script
    assert not [a for t, a in dom.tags if t == "img" and a.get("src") == "x"]
    handlers = [(t, k) for t, a in dom.tags for k in a if k.startswith("on")]
    assert not handlers, handlers
    # SVG: Graphviz' labels stay text, no input-made element inside the diagram
    assert not [a for t, a in dom.tags if t == "svg" and "onload" in a]


def test_markdown_and_sarif_stay_well_formed(evil_run: Path) -> None:
    md = (evil_run / "run.md").read_text(encoding="utf-8")
    outside_code = re.sub(r"(`+)[^`]*?\1", "", md)
    for raw in ("<img", "<script", "<svg", "<!--"):
        assert raw not in outside_code, raw  # markup only ever inside code spans
    # every table row has as many cells as its header (no payload pipe split a row)
    table: int | None = None
    for line in md.splitlines():
        if not line.startswith("|"):
            table = None
            continue
        cells = len(re.findall(r"(?<!\\)\|", line))
        table = cells if table is None else table
        assert cells == table, line
    sarif = json.loads((evil_run / "run.sarif").read_text(encoding="utf-8"))
    results = sarif["runs"][0]["results"]
    assert results and all(r["ruleId"] and r["message"]["text"] for r in results)
    assert any(PAYLOAD in t for t in _strings(results))  # kept verbatim, as JSON text


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    return [s for v in value for s in _strings(v)] if isinstance(value, list) else []


def test_markup_in_an_id_is_refused_with_one_line(tmp_path: Path) -> None:
    system = _system()
    system["elements"][0]["id"] = f"user{FILE_PAYLOAD}"
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(system), encoding="utf-8")
    r = subprocess.run(
        [sys.executable, "-m", "mlhunt", "model", str(tmp_path / "s.yaml"), "-f", "html"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )
    assert r.returncode == 2 and "elements[0].id" in r.stderr and "Traceback" not in r.stderr
    assert not r.stdout

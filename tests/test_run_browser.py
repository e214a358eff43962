"""Acceptance (issue #7): the run report works in a real browser.

The generated HTML is opened in headless Chromium (Debian's ``chromium``, installed by
scripts/system-deps.sh) through its command line only: ``--dump-dom`` prints the DOM after the
page's scripts ran. run.js marks on <body> what actually rendered (plots decoded and laid out,
the DFD's SVG with a non-zero box, table rows drawn) and applies a ``#sort=col:dir`` /
``#filter=key:value`` fragment by clicking the column header / choosing the filter value, so the
dumped row order proves the sorting code works in the browser. A screenshot is kept in
``test-artifacts/`` (or ``$MLHUNT_TEST_ARTIFACTS``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from mlhunt.report.run_html import render_run_html
from tests.conftest import ROOT
from tests.run_fixture import build_run_doc

_BROWSERS = ("chromium", "chromium-browser", "google-chrome")
CHROMIUM = next((p for p in map(shutil.which, _BROWSERS) if p), None)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason=f"no headless browser: none of {', '.join(_BROWSERS)} on PATH"
)
SHOT_SIZE = (1400, 2600)


@dataclass
class Dom:
    """What the tests need from a dumped DOM: <body> attributes, the threat table, the console."""

    body: dict[str, str] = field(default_factory=dict)
    th: dict[str, str] = field(default_factory=dict)  # header text -> class ("asc"/"desc"/"")
    rows: list[dict[str, Any]] = field(default_factory=list)
    shown: str = ""
    console: list[str] = field(default_factory=list)


class _Parser(HTMLParser):
    def __init__(self, dom: Dom) -> None:
        super().__init__()
        self.dom = dom
        self.in_table = False
        self.cell: dict[str, Any] | None = None
        self.th_class: str | None = None
        self.text: list[str] = []
        self.in_shown = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "body":
            self.dom.body = a
        elif tag == "table":
            self.in_table = a.get("id") == "threat-table"
        elif self.in_table and tag == "tr" and "data-status" in a:
            self.dom.rows.append({"attrs": a, "hidden": "hidden" in a, "cells": []})
        elif self.in_table and tag == "td" and self.dom.rows:
            self.cell = {"value": a.get("data-value")}
            self.text = []
        elif self.in_table and tag == "th":
            self.th_class, self.text = a.get("class", ""), []
        self.in_shown = a.get("id") == "shown"

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self.in_table = False
        elif tag == "td" and self.cell is not None:
            self.cell["text"] = " ".join("".join(self.text).split())
            self.dom.rows[-1]["cells"].append(self.cell)
            self.cell = None
        elif tag == "th" and self.th_class is not None:
            self.dom.th["".join(self.text).strip().lower()] = self.th_class
            self.th_class = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self.in_shown:
            self.dom.shown += data
            self.in_shown = False


def _open(page: Path, fragment: str = "", screenshot: Path | None = None) -> Dom:
    """Load the page in a fresh headless Chromium profile and parse the DOM it dumps."""
    with tempfile.TemporaryDirectory(prefix="mlhunt-chromium-") as profile:
        cmd = [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--no-first-run",
            "--disable-component-update",
            "--disable-sync",
            "--disable-quic",
            f"--user-data-dir={profile}",
            "--enable-logging=stderr",
            "--log-level=0",  # console messages go to stderr
            "--virtual-time-budget=5000",  # let load handlers run before the dump
            f"--window-size={SHOT_SIZE[0]},{SHOT_SIZE[1]}",
            "--dump-dom",
        ]
        if screenshot is not None:
            cmd.append(f"--screenshot={screenshot}")
        cmd.append(page.as_uri() + fragment)
        proc = subprocess.run(
            cmd, capture_output=True, encoding="utf-8", errors="replace", timeout=60, check=False
        )
    assert proc.returncode == 0 and "<body" in proc.stdout, proc.stderr[-2000:]
    dom = Dom(console=[ln for ln in proc.stderr.splitlines() if ":CONSOLE" in ln])
    _Parser(dom).feed(proc.stdout)
    return dom


def _artifacts() -> Path:
    out = Path(os.environ.get("MLHUNT_TEST_ARTIFACTS") or ROOT / "test-artifacts")
    out.mkdir(parents=True, exist_ok=True)
    return out


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], Dom]:
    tmp = tmp_path_factory.mktemp("browser")
    doc = build_run_doc(tmp)
    page = tmp / "report.html"
    page.write_text(render_run_html(doc), encoding="utf-8")
    static = Dom()
    _Parser(static).feed(page.read_text(encoding="utf-8"))  # the order as written, before JS
    return page, doc, static


def _risks(dom: Dom) -> list[float]:
    return [float(r["cells"][1]["value"]) for r in dom.rows]


def _titles(dom: Dom) -> list[str]:
    return [r["cells"][3]["text"] for r in dom.rows]


def test_dfd_rows_and_plots_render(report: tuple[Path, dict[str, Any], Dom]) -> None:
    page, doc, _ = report
    shot = _artifacts() / "run-report.png"
    shot.unlink(missing_ok=True)
    dom = _open(page, "#sort=risk:desc", screenshot=shot)
    shutil.copyfile(page, shot.with_suffix(".html"))  # keep what the screenshot shows
    errors = [c for c in dom.console if "Uncaught" in c or "Error" in c]
    assert not errors, errors
    body = dom.body
    assert body.get("data-js-ok") == "1", body  # run.js ran to the end of its set-up
    n_threats = sum(f["source"] == "model" for f in doc["findings"])
    assert int(body["data-rows"]) == int(body["data-rows-drawn"]) == n_threats == len(dom.rows)
    # every plot <img> decoded to a real bitmap and laid out (the fixture has four)
    assert int(body["data-plots-ok"]) == int(body["data-plots"]) >= 1
    assert int(body["data-plots"]) == 4
    # the inline Graphviz SVG has a non-empty box, and so has a node per system element
    assert body.get("data-dfd-ok") == "1"
    assert int(body["data-dfd-nodes"]) == len(doc["elements"]) > 0
    assert dom.shown == f"{n_threats} of {n_threats} threats shown"

    assert shot.is_file() and shot.stat().st_size > 50_000
    from PIL import Image

    with Image.open(shot) as img:
        assert img.size == SHOT_SIZE
        colours = img.convert("RGB").getcolors(maxcolors=1 << 20) or []
    # a blank or failed page is one or two colours; the report has text, chips, the DFD, plots
    assert len(colours) > 200, len(colours)
    assert max(n for n, _ in colours) < 0.95 * SHOT_SIZE[0] * SHOT_SIZE[1]


def test_sorting_by_number_works_in_the_browser(report: tuple[Path, dict[str, Any], Dom]) -> None:
    page, _, static = report
    asc, desc = _open(page, "#sort=risk:asc"), _open(page, "#sort=risk:desc")
    assert asc.th["risk"] == "asc" and desc.th["risk"] == "desc"
    assert _risks(asc) == sorted(_risks(static)) and _risks(desc) == sorted(_risks(static))[::-1]
    # the rows themselves moved (same set, another order), not just a class on the header
    assert _titles(asc) != _titles(desc) and _titles(asc) != _titles(static)
    assert sorted(_titles(asc)) == sorted(_titles(desc)) == sorted(_titles(static))


def test_sorting_by_text_and_filtering(report: tuple[Path, dict[str, Any], Dom]) -> None:
    page, _, static = report
    dom = _open(page, "#sort=threat:asc&filter=status:validated")
    assert dom.th["threat"] == "asc"
    titles = _titles(dom)
    assert titles == sorted(titles, key=str.lower) and titles != _titles(static)
    shown = [r for r in dom.rows if not r["hidden"]]
    validated = [r for r in static.rows if "validated" in r["attrs"]["data-status"].split()]
    assert shown and len(shown) == len(validated) < len(dom.rows)
    assert all("validated" in r["attrs"]["data-status"].split() for r in shown)
    assert dom.shown == f"{len(shown)} of {len(dom.rows)} threats shown"

"""The report of ``mlhunt run`` (issue #7): HTML per system, the index page and Markdown, rendered
from a real linked run document (tests/run_fixture.py)."""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from mlhunt.report.run_html import render_run_html
from mlhunt.report.run_index import render_run_index
from mlhunt.report.run_markdown import render_run_markdown
from tests.run_fixture import EVIL, EXTRACTION_CLIENT, build_run_doc


@pytest.fixture(scope="module")
def run_doc(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return build_run_doc(tmp_path_factory.mktemp("run"))


@pytest.fixture(scope="module")
def page(run_doc: dict[str, Any]) -> str:
    return render_run_html(run_doc)


class _Tags(HTMLParser):
    """Every start tag with its attributes, and the text of <script> elements."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts.append(data)


def _tags(html: str) -> _Tags:
    p = _Tags()
    p.feed(html)
    return p


def _section(html: str, sid: str) -> str:
    start = html.index(f'<section id="{sid}">')
    return html[start : html.index("</section>", start)]


def test_summary_names_what_was_proven_and_observed(page: str) -> None:
    summary = _section(page, "summary")
    # extraction validated by the attack, with its number, and observed by hunt
    assert "Model extraction: 0.97 agreement after 2,000 queries" in summary
    assert "Model extraction through the prediction interface" in summary
    assert "3</b> hunt alerts from <b>3</b> client" in summary
    assert EXTRACTION_CLIENT in summary and "extraction" in summary
    # refuted membership inference is told with its numbers, not hidden
    assert "AUC 0.52" in summary and "TPR 0.0011 at FPR 0.001" in summary
    # fix first: the extraction threat's own first mitigation is in the list
    assert "Return the decision label" in summary
    assert "Against the baseline" in summary


def test_dfd_is_inline_svg_coloured_and_clickable(page: str, run_doc: dict[str, Any]) -> None:
    dfd = _section(page, "dfd")
    assert "<svg" in dfd
    # the prediction API carries validated+observed critical threats after evidence
    # (Graphviz writes '-' in titles as '&#45;')
    node = r'<g id="node\d+" class="([^"]+)" data-el="(el-\d+)">\s*<title>prediction&#45;api<'
    api = re.search(node, dfd)
    assert api is not None
    assert "risk-critical" in api.group(1) and "is-validated" in api.group(1)
    assert "is-observed" in api.group(1)
    assert f'href="#{api.group(2)}"' in dfd  # the node links to its element card
    card = page[page.index(f'id="{api.group(2)}"') :][:4000]
    assert "Model extraction through the prediction interface" in card


def test_threat_table_rows_carry_filter_attributes(page: str, run_doc: dict[str, Any]) -> None:
    rows = [a for t, a in _tags(_section(page, "threats")).tags if t == "tr" and "data-status" in a]
    model = [f for f in run_doc["findings"] if f["source"] == "model"]
    assert len(rows) == len(model)
    extraction = [
        r
        for r in rows
        if r["data-element"] == "prediction-api" and "validated" in (r["data-status"] or "")
    ]
    assert any(r["data-status"] == "validated observed" for r in extraction)
    assert {r["data-framework"] for r in rows} == {"STRIDE", "LINDDUN", "ML"}
    assert any(r["data-status"] == "refuted" for r in rows)
    assert {"untested", "modelled"} <= {r["data-status"] for r in rows}
    assert all(r["data-severity"] in ("critical", "high", "medium", "low", "info") for r in rows)


def test_plots_embedded_and_missing_plot_is_marked(page: str, run_doc: dict[str, Any]) -> None:
    imgs = [a["src"] or "" for t, a in _tags(page).tags if t == "img"]
    pngs = [s for s in imgs if s.startswith("data:image/png;base64,")]
    assert len(pngs) == 4 == len(imgs)  # agreement, robustness, ROC, patch grid; nothing external
    assert all(base64.b64decode(s.split(",", 1)[1]).startswith(b"\x89PNG") for s in pngs)
    assert "plot missing" in page and "robustness-per-feature.png" in page
    assert not re.search(r'(src|href)="(https?:)?//', page)  # no network at view time


def test_hunt_timeline_and_atlas_and_checklist(page: str) -> None:
    details = _section(page, "details")
    assert 'class="spark"' in details and "<polyline points=" in details
    assert "no series" in details  # the alert without a score series still shows its numbers
    assert "1,250" in details  # detected_at_event of that client
    atlas = _section(page, "atlas")
    assert "Exfiltration" in atlas and "AML.T0024.002" in atlas
    cell = r'class="tech st-{}"[^>]*>\s*<div class="mono small">{}<'
    assert re.search(cell.format("validated", r"AML\.T0024\.002"), atlas)  # extraction
    assert re.search(cell.format("refuted", r"AML\.T0024\.000"), atlas)  # membership
    checklist = _section(page, "checklist")
    assert '<h3 class="control">Rate limiting</h3>' in checklist
    assert "Enforce per-API-key rate limits" in checklist
    appendix = _section(page, "appendix")
    assert "3 malformed" in appendix and "48,213 records read" in appendix
    assert "Privileged container" in appendix  # the real deploy scan
    assert "MLH-OLD@gone" in appendix  # fixed since the baseline


def test_input_strings_are_escaped(tmp_path: Path) -> None:
    doc = build_run_doc(tmp_path, evil=True)
    for html in (render_run_html(doc), render_run_index([(doc, "report.html")])):
        parsed = _tags(html)
        # the only script is the report's own; no tag or handler came from the input
        assert [t for t, _ in parsed.tags].count("script") == (1 if "threat-table" in html else 0)
        assert "<script>alert" not in html and "<script>x" not in html
        assert not any(k.startswith("on") for _, a in parsed.tags for k in a)
    html = render_run_html(doc)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # shown, as text
    # the element name (DFD label, element card), the client id and the file names all appear
    assert html.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 4
    assert "&lt;script&gt;alert(1).pkl" in html and "patch&lt;script&gt;alert(1).png" in html
    # Markdown: raw only inside code spans (which renderers show as text), escaped elsewhere
    md = render_run_markdown(doc)
    assert EVIL not in re.sub(r"(`+)[^`]*?\1", "", md)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in md


def test_markdown_has_summary_statuses_and_plot_links(run_doc: dict[str, Any]) -> None:
    md = render_run_markdown(run_doc)
    assert "Model extraction: 0.97 agreement after 2,000 queries" in md
    assert "| **validated**, **observed** |" in md
    assert "| refuted |" in md and "| untested |" in md
    assert "[extraction-agreement.png](extraction-agreement.png)" in md
    assert "- [ ] Enforce per-API-key rate limits" in md
    assert "3 malformed" in md and "data:image" not in md


def test_index_links_each_system(run_doc: dict[str, Any]) -> None:
    html = render_run_index([(run_doc, "loan-approval/report.html"), (run_doc, "b/report.html")])
    assert html.count('href="loan-approval/report.html"') >= 2
    assert "Loan approval scoring" in html and "0.97 agreement" in html


def test_tolerates_a_model_document_without_evidence(tmp_path: Path) -> None:
    doc = build_run_doc(tmp_path)
    doc = {k: v for k, v in doc.items() if k not in ("parts", "baseline", "assets_dir")}
    doc["findings"] = [f for f in doc["findings"] if f["source"] == "model"]
    for f in doc["findings"]:
        f.pop("validation", None)
    html = render_run_html(doc, tmp_path / "nowhere")
    assert "No threat was validated in this run." in html
    assert "No hunt alert in this run." in html
    assert "No threat was validated" in render_run_markdown(doc)

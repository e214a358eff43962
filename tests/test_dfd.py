"""DFD rendering: Graphviz DOT/SVG and Mermaid from the `model` JSON document."""

from __future__ import annotations

import re
import shutil

import pytest

from mlhunt.system import dfd, system_from_dict
from mlhunt.threatmodel import ThreatModel

HOSTILE = 'Say "hi" <b>&amp; \\N\nnext | `tick` #1;'


def _system() -> dict:
    return {
        "name": "DFD test",
        "data_assets": [{"id": "records", "classification": "personal"}],
        "trust_boundaries": [
            {"id": "internet", "name": "Internet"},
            {"id": "corp", "name": "Corporate", "parent": "internet"},
            {"id": "k8s", "name": "Cluster", "kind": "cluster", "parent": "corp"},
            {"id": "ns", "name": "Namespace", "kind": "namespace", "parent": "k8s"},
        ],
        "elements": [
            {"id": "user", "name": "Applicant", "kind": "actor"},
            {"id": "db", "name": HOSTILE, "kind": "data_store", "boundary": "corp"},
            {
                "id": "train",
                "name": "Trainer",
                "kind": "training_job",
                "boundary": "ns",
                "model": {"algorithm": "cnn"},
            },
            {"id": "api", "name": "API", "kind": "inference_api", "boundary": "k8s", "model": {}},
            {"id": "app", "name": "Portal", "kind": "process", "boundary": "corp"},
        ],
        "flows": [
            {
                "id": "f1",
                "source": "user",
                "target": "app",
                "name": "apply",
                "protocol": "https",
                "encrypted": True,
            },
            {
                "id": "f2",
                "source": "app",
                "target": "db",
                "name": 'write "rows"',
                "protocol": "jdbc",
            },
            {
                "id": "f3",
                "source": "db",
                "target": "train",
                "name": "read",
                "protocol": "s3",
                "encrypted": True,
            },
            {"id": "f4", "source": "app", "target": "api", "name": "score", "protocol": "grpc"},
        ],
    }


@pytest.fixture
def doc() -> dict:
    # The DFD needs no findings: a ThreatModel without them keeps these tests independent of
    # the rule catalog.
    return ThreatModel(system_from_dict(_system()), []).to_document()


def _cluster_depths(dot: str) -> dict[str, int]:
    """Boundary label -> brace depth of its cluster (1 = top level)."""
    depths: dict[str, int] = {}
    depth = 0
    stack: list[int] = []
    for line in dot.splitlines():
        stripped = line.strip()
        if stripped.startswith("subgraph cluster_"):
            depth += 1
            stack.append(depth)
        elif stripped == "}" and stack:
            stack.pop()
            depth -= 1
        m = re.match(r'graph \[label="([^"]*)"', stripped)
        if m and stack:
            depths[m.group(1).split(" [")[0]] = depth
    return depths


def test_dot_nests_boundaries_following_parent(doc):
    dot = dfd.to_dot(doc)
    assert dot.startswith("digraph dfd {")
    assert dot.count("subgraph cluster_") == 4
    assert _cluster_depths(dot) == {"Internet": 1, "Corporate": 2, "Cluster": 3, "Namespace": 4}


def test_dot_shapes_styles_and_edges(doc):
    dot = dfd.to_dot(doc)
    lines = {
        m.group(1): line for line in dot.splitlines() if (m := re.match(r'\s*"([^"]+)" \[', line))
    }
    assert 'shape="box", style="filled"' in lines["user"]  # external entity
    assert 'shape="cylinder"' in lines["db"]
    assert 'style="rounded,filled"' in lines["app"]
    assert 'color="#5e35b1"' in lines["train"] and 'color="#5e35b1"' in lines["api"]
    assert 'color="#5e35b1"' not in lines["app"]
    edges = {
        m.group(1): line
        for line in dot.splitlines()
        if (m := re.match(r'\s*"[^"]+" -> "([^"]+)"', line))
    }
    assert 'label="apply\\n[https]"' in edges["app"]
    assert "dashed" not in edges["app"]
    assert 'style="dashed"' in edges["api"] and "#c62828" in edges["api"]


def test_dot_escapes_input(doc):
    dot = dfd.to_dot(doc)
    line = next(x for x in dot.splitlines() if x.strip().startswith('"db"'))
    # quotes and backslashes escaped, newline as \n, '&' as an entity: one line, one string
    assert 'Say \\"hi\\" <b>&amp;amp; \\\\N\\nnext' in line
    assert 'label="write \\"rows\\"' in dot


def test_dot_colors_and_links(doc):
    dot = dfd.to_dot(doc, colors={"api": "#ff0000"}, links={"api": "#el-api", "f4": "#flow-f4"})
    api = next(x for x in dot.splitlines() if x.strip().startswith('"api"'))
    assert 'fillcolor="#ff0000"' in api and 'href="#el-api"' in api
    assert 'href="#flow-f4"' in dot


@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz not installed")
def test_to_svg_renders_and_escapes(doc):
    svg = dfd.to_svg(dfd.to_dot(doc, links={"db": "#el-db"}))
    assert "<svg" in svg and "</svg>" in svg
    assert svg.count('class="cluster"') == 4
    assert 'href="#el-db"' in svg
    # the hostile name is text, never markup
    assert "<b>" not in svg
    assert "&lt;b&gt;&amp;amp;" in svg
    assert "Say &quot;hi&quot;" in svg or 'Say "hi"' in svg.replace("&#34;", '"')


@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz not installed")
def test_to_svg_survives_hostile_ids():
    doc = {
        "elements": [
            {"id": 'x" onload="alert(1)', "name": "<script>alert(1)</script>", "kind": "actor"},
            {"id": "y", "kind": "process"},
        ],
        "flows": [{"id": "f", "source": 'x" onload="alert(1)', "target": "y"}],
        "trust_boundaries": [],
    }
    svg = dfd.to_svg(dfd.to_dot(doc, links={'x" onload="alert(1)': '#el-x" onload="a'}))
    assert "<script" not in svg
    assert 'onload="' not in svg  # the quote stays escaped inside attribute values


def test_to_svg_without_graphviz(monkeypatch):
    monkeypatch.setattr(dfd.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match=r"Graphviz `dot` not found; install graphviz"):
        dfd.to_svg("digraph { a }")


def test_to_svg_reports_dot_errors():
    if shutil.which("dot") is None:
        pytest.skip("graphviz not installed")
    with pytest.raises(RuntimeError, match="failed"):
        dfd.to_svg("digraph { a -> }")


def test_mermaid_subgraphs_shapes_and_escaping(doc):
    mm = dfd.to_mermaid(doc)
    lines = mm.splitlines()
    assert lines[0] == "flowchart LR"
    assert sum(1 for x in lines if x.strip().startswith("subgraph ")) == 4
    assert sum(1 for x in lines if x.strip() == "end") == 4
    # nesting: each subgraph is indented one level deeper than its parent
    indents = {
        re.search(r'"(.*)"', x).group(1): len(x) - len(x.lstrip())
        for x in lines
        if x.strip().startswith("subgraph ")
    }
    assert indents == {"Internet": 2, "Corporate": 4, "Cluster": 6, "Namespace": 8}
    assert any('[("' in x and "Say" in x for x in lines)  # store: cylinder
    assert any('["Applicant' in x for x in lines)  # external: rectangle
    assert any('("Portal' in x for x in lines)  # process: rounded
    assert "classDef ml" in mm and re.search(r"class (n\d+,?)+ ml", mm)
    # every quoted label holds no raw quote, angle bracket or pipe
    for label in re.findall(r'"((?:[^"\n])*)"', mm):
        assert "<b>" not in label and "|" not in label
    db_line = next(x for x in lines if "Say" in x)
    assert "#quot;hi#quot;" in db_line
    assert "#lt;b#gt;#amp;amp;" in db_line
    assert "#35;1;" in db_line and "#96;tick#96;" in db_line
    assert db_line.count('"') == 2
    assert '-.->|"write #quot;rows#quot; [jdbc]"|' in mm  # unencrypted: dotted
    assert '-->|"apply [https]"|' in mm
    assert "linkStyle" in mm


def test_mermaid_ids_are_generated_and_cycles_are_safe():
    doc = {
        "elements": [
            {"id": "end", "kind": "process"},
            {"id": "a-->b", "kind": "process", "boundary": "x"},
        ],
        "flows": [{"id": "f", "source": "end", "target": "a-->b", "encrypted": True}],
        "trust_boundaries": [{"id": "x", "parent": "y"}, {"id": "y", "parent": "x"}],
    }
    mm = dfd.to_mermaid(doc)
    assert "n0 -->|" in mm and "| n1" in mm
    assert dfd.to_dot(doc).count("subgraph cluster_") == 2

"""Fuzzing of the text parsers of ``mlhunt scan`` (issue #9): Kubernetes / KServe / Kubeflow /
Istio manifests (YAML and JSON, multi-document, odd YAML types, aliases, tags, BOMs, mutated
bytes) and the secrets scanner (config files and notebooks). Same witnesses and outcomes as
test_fuzz_scan.py (see its docstring); shared pieces in :mod:`tests.scan_fuzzkit`.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlhunt.scan.manifests import is_manifest, scan_manifests
from mlhunt.scan.secrets import scan_secrets
from tests.fuzzcount import flush_after_module, scaled
from tests.scan_fuzzkit import TALLY, guarded, json_values, mutated, warm
from tests.scan_guard import install_canary

pytestmark = pytest.mark.fuzz


_write_counts = flush_after_module(TALLY)


@pytest.fixture(scope="module")
def work() -> Iterator[tuple[Path, Path]]:
    """A scratch folder and the canary's marker file."""
    with tempfile.TemporaryDirectory(prefix="mlhunt-fuzz-scan-text-") as d:
        folder = Path(d)
        warm(folder, text=True)
        yield folder, install_canary(folder)


# ---------------------------------------------------------------------------------- manifests

_KINDS = [
    ("v1", "Pod"),
    ("apps/v1", "Deployment"),
    ("serving.kserve.io/v1beta1", "InferenceService"),
    ("kubeflow.org/v1", "PyTorchJob"),
    ("security.istio.io/v1", "PeerAuthentication"),
    ("security.istio.io/v1", "AuthorizationPolicy"),
    ("v1", "Service"),
    ("v1", "ConfigMap"),
    ("v1", "List"),
    ("batch/v1", "Job"),
]
_odd = st.one_of(
    json_values,
    st.floats(),
    st.datetimes(),
    st.dates(),
    st.binary(max_size=8),
    st.integers(min_value=-(2**80), max_value=2**80),
)
_container = st.fixed_dictionaries(
    {
        "name": st.text(max_size=5),
        "image": st.one_of(st.sampled_from(["m:latest", "m@sha256:" + "a" * 64]), _odd),
    },
    optional={
        "securityContext": st.one_of(
            st.fixed_dictionaries(
                {},
                optional={
                    "privileged": st.one_of(st.booleans(), _odd),
                    "runAsNonRoot": st.booleans(),
                    "capabilities": st.one_of(_odd, st.just({"add": ["SYS_ADMIN"]})),
                },
            ),
            _odd,
        ),
        "env": st.one_of(
            _odd,
            st.lists(
                st.fixed_dictionaries({"name": st.text(max_size=8), "value": _odd}), max_size=3
            ),
        ),
        "resources": _odd,
    },
)


@st.composite
def k8s_docs(draw: st.DrawFn) -> Any:
    api, kind = draw(st.sampled_from(_KINDS))
    pod = {
        "containers": draw(st.one_of(st.lists(_container, max_size=3), _odd)),
        "hostNetwork": draw(st.one_of(st.booleans(), _odd)),
    }
    spec = draw(
        st.sampled_from(
            [
                pod,
                {"template": {"spec": pod}},
                {
                    "predictor": {
                        "model": {"storageUri": draw(_odd)},
                        "containers": pod["containers"],
                    }
                },
                {"mtls": {"mode": draw(_odd)}},
                {"rules": draw(_odd), "selector": draw(_odd)},
                draw(_odd),
            ]
        )
    )
    meta = draw(st.one_of(st.fixed_dictionaries({"name": _odd, "namespace": _odd}), _odd))
    doc: dict[Any, Any] = {"apiVersion": api, "kind": kind, "metadata": meta, "spec": spec}
    if kind == "List":
        doc["items"] = draw(st.lists(st.just(dict(doc, kind="Pod")), max_size=2))
    return doc


_yaml_tails = st.sampled_from(
    [
        "",
        "\nx: &a [1, 2]\ny: *a\n",
        "\n<<: {extra: 1}\n",
        "\nz: !!binary aGVsbG8=\n",
        "\nt: 2001-12-14t21:59:43.10-05:00\n",
        "\n? [a, b]\n: c\n",
        "\nbad: !!python/object:os.system x\n",
        "\n\tkey: tab\n",
        "\nn: .nan\ni: -.inf\n",
        "\nself: &s [*s]\n",
        "\n---\n",
        "\n...\n",
        '\nu: "\\ud800"\n',
        '\nq: "\\U10010000"\n',
        "\nk: {a: 1, a: 2}\n",
        "\ndeep: " + "[" * 60 + "]" * 60 + "\n",
    ]
)


@st.composite
def manifest_texts(draw: st.DrawFn) -> tuple[str, bytes]:
    import yaml

    docs = draw(st.lists(k8s_docs(), min_size=1, max_size=3))
    if draw(st.integers(0, 5)) == 0:
        return "m.json", json.dumps(docs[0], default=str).encode()
    text = "\n---\n".join(yaml.safe_dump(d, sort_keys=False) for d in docs)
    text += draw(_yaml_tails)
    raw = text.encode("utf-8", "surrogatepass")
    if draw(st.booleans()):
        raw = draw(mutated(raw))
    if draw(st.integers(0, 5)) == 0:
        raw = b"\xef\xbb\xbf" + raw.replace(b"\n", b"\r\n")
    return "m.yaml", raw


@settings(scaled(4))  # rego-cpp compiles each query: ~0.2 s a document
@given(item=manifest_texts())
def test_fuzz_manifests(work: tuple[Path, Path], item: tuple[str, bytes]) -> None:
    folder, marker = work
    path = folder / item[0]
    path.write_bytes(item[1])
    guarded("scan-manifest-sniff", marker, is_manifest, path)
    guarded("scan-manifests", marker, scan_manifests, [path])


# ---------------------------------------------------------------------------------- secrets

_TOKEN = "hf_" + "Qm7x" * 9
_fragments = st.sampled_from(
    [
        f"HF_TOKEN={_TOKEN}",
        "password = 'Zq8vN3kLp2Wx'",
        "postgresql://app:Zq8vN3kL@db/x",
        "aws_access_key_id=AKIAZ7Q2MXKD4RPLW3TN",
        "wandb.login(key='" + "a1" * 20 + "')",
        "machine api.wandb.ai password " + "b2" * 20,
        "${SECRET}",
        "<password>",
        "\x00",
        "\ud800",
        "'",
        '"',
        "\\",
        "x" * 300,
        'k: "\\U10010000"',
        "# comment",
        "key: |",
        "  - item",
        "=",
        "",
    ]
)


@st.composite
def secret_files(draw: st.DrawFn) -> tuple[str, str]:
    lines = draw(st.lists(st.one_of(_fragments, st.text(max_size=40)), max_size=12))
    sep = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    text = sep.join(lines)
    suffix = draw(
        st.sampled_from(
            [".env", ".yaml", ".json", ".ini", ".toml", ".py", ".txt", ".netrc", ".ipynb", ".cfg"]
        )
    )
    if suffix == ".ipynb" and draw(st.booleans()):
        cells = [
            {
                "cell_type": draw(st.sampled_from(["code", "markdown", 3, None])),
                "source": draw(st.one_of(st.just(lines), st.just(text), json_values)),
                "outputs": draw(
                    st.one_of(json_values, st.just([{"output_type": "stream", "text": lines}]))
                ),
            }
            for _ in range(draw(st.integers(0, 3)))
        ]
        text = json.dumps(draw(st.sampled_from([{"cells": cells}, {"cells": "x"}, cells])))
    return suffix, text


@settings(scaled(2))
@given(item=secret_files())
def test_fuzz_secrets(work: tuple[Path, Path], item: tuple[str, str]) -> None:
    folder, marker = work
    path = folder / f"f{item[0]}"
    path.write_bytes(item[1].encode("utf-8", "surrogatepass"))
    findings = guarded("scan-secrets", marker, scan_secrets, path) or []
    report = json.dumps([f.to_dict() for f in findings])
    assert _TOKEN not in report and "Zq8vN3kLp2Wx" not in report  # redacted, always

"""Manifest policies: each shipped policy fires on a bad resource and stays quiet on the fixed
one, the scenarios' deploy/ folders are flagged and deploy-fixed/ folders pass, and the policy
loader refuses what it must (old syntax, missing metadata, network built-ins)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from mlhunt.errors import InputError
from mlhunt.findings import Severity
from mlhunt.scan.manifests import (
    SHIPPED_POLICY_DIR,
    PolicyError,
    is_manifest,
    load_policies,
    scan_manifest,
    scan_manifests,
)

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"

DIGEST = "@sha256:" + "ab" * 32
SECURE_CTR = f"""
          image: registry.example/app{DIGEST}
          securityContext:
            runAsNonRoot: true
            allowPrivilegeEscalation: false
          resources:
            limits: {{cpu: "1", memory: 1Gi}}
"""


def write(tmp_path: Path, text: str, name: str = "m.yaml") -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text).lstrip())
    return p


def ids(findings) -> set[str]:
    return {f.rule_id for f in findings}


def deployment(extra_ctr: str = "", extra_pod: str = "", ctr: str = SECURE_CTR) -> str:
    return (
        textwrap.dedent(
            """
            apiVersion: apps/v1
            kind: Deployment
            metadata: {name: web, namespace: apps}
            spec:
              template:
                metadata: {labels: {app: web}}
                spec:
            """
        ).lstrip()
        + textwrap.indent(textwrap.dedent(extra_pod).strip("\n"), "      ")
        + ("\n" if extra_pod.strip() else "")
        + "      containers:\n"
        + "        - name: app"
        + ctr
        + textwrap.indent(textwrap.dedent(extra_ctr).strip("\n"), "          ")
        + "\n"
    )


# --------------------------------------------------------------------------------------------
# Shipped policies: Rego v1, self-describing
# --------------------------------------------------------------------------------------------


def test_shipped_policies_parse_as_rego_v1():
    from regopy import Interpreter

    files = sorted(SHIPPED_POLICY_DIR.rglob("*.rego"))
    assert len(files) >= 15
    lib = SHIPPED_POLICY_DIR / "lib" / "mlhunt.rego"
    for f in files:
        src = f.read_text()
        assert "import rego.v1" in src, f
        assert re.search(r"^package \w", src, re.M), f
        # No pre-v1 rule heads: deny[msg] { ... } or bodies without `if`.
        assert not re.search(r"^\s*(deny|violation|warn)\w*\s*\[", src, re.M), f
        assert not re.search(r"^[a-z_]\w*(\([^)]*\))?\s*\{", src, re.M), f
        interp = Interpreter()
        if f != lib:
            interp.add_module(str(lib), lib.read_text())
        interp.add_module(str(f), src)  # raises on a parse or compile error
    policies = load_policies()
    assert len(policies) == len(files) - 1  # every file but the library is one policy
    assert len({p.id for p in policies}) == len(policies)
    for p in policies:
        assert p.id.startswith("MLH-K8S-")
        assert p.package == "main" and p.rules == ("deny",)
        assert p.title and p.description and p.mitigations and p.cwe and p.stride
        assert p.input in ("document", "combined")


def test_policy_severities():
    sev = {p.id: p.severity for p in load_policies()}
    assert sev["MLH-K8S-PRIVILEGED"] is Severity.CRITICAL
    assert sev["MLH-K8S-MTLS-MISSING"] is Severity.HIGH
    assert sev["MLH-K8S-AUTHZ-MISSING"] is Severity.HIGH
    assert sev["MLH-K8S-IMAGE-DIGEST"] is Severity.MEDIUM


# --------------------------------------------------------------------------------------------
# Each policy: bad fires, fixed stays quiet
# --------------------------------------------------------------------------------------------

CASES = {
    "MLH-K8S-IMAGE-DIGEST": (
        deployment(ctr=SECURE_CTR.replace(DIGEST, ":1.0")),
        deployment(),
    ),
    "MLH-K8S-RUN-AS-ROOT": (
        deployment(ctr=SECURE_CTR.replace("runAsNonRoot: true", "runAsUser: 0")),
        deployment(
            ctr=SECURE_CTR.replace("runAsNonRoot: true", "runAsUser: 1000"),
            extra_pod="securityContext: {runAsNonRoot: true}",
        ),
    ),
    "MLH-K8S-PRIVILEGED": (
        deployment(
            ctr=SECURE_CTR.replace(
                "runAsNonRoot: true", "runAsNonRoot: true\n            privileged: true"
            )
        ),
        deployment(
            ctr=SECURE_CTR.replace(
                "runAsNonRoot: true", "runAsNonRoot: true\n            privileged: false"
            )
        ),
    ),
    "MLH-K8S-PRIV-ESCALATION": (
        deployment(
            ctr=SECURE_CTR.replace(
                "allowPrivilegeEscalation: false", "allowPrivilegeEscalation: true"
            )
        ),
        deployment(),
    ),
    "MLH-K8S-HOSTPATH": (
        deployment(extra_pod="volumes: [{name: models, hostPath: {path: /mnt/models}}]"),
        deployment(extra_pod="volumes: [{name: models, emptyDir: {}}]"),
    ),
    "MLH-K8S-HOST-NAMESPACES": (
        deployment(extra_pod="hostNetwork: true"),
        deployment(extra_pod="hostNetwork: false"),
    ),
    "MLH-K8S-RESOURCE-LIMITS": (
        deployment(
            ctr=SECURE_CTR.replace('limits: {cpu: "1", memory: 1Gi}', "requests: {memory: 1Gi}")
        ),
        deployment(),
    ),
    "MLH-K8S-LITERAL-SECRET-ENV": (
        deployment(extra_ctr="env: [{name: MLFLOW_TRACKING_TOKEN, value: tok-1234567890}]"),
        deployment(
            extra_ctr="env: [{name: MLFLOW_TRACKING_TOKEN, valueFrom: "
            "{secretKeyRef: {name: mlflow, key: token}}}, "
            "{name: TOKEN_FILE, value: /vault/secrets/token}]"
        ),
    ),
    "MLH-K8S-CONFIGMAP-SECRET": (
        """
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: cfg}
        data:
          S3_SECRET_KEY: 9f8e7d6c5b4a
        """,
        """
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: cfg}
        data:
          S3_SECRET_KEY_PATH: /vault/secrets/s3
          LOG_LEVEL: info
        """,
    ),
    "MLH-K8S-MODEL-URI-UNPINNED": (
        """
        apiVersion: machinelearning.seldon.io/v1
        kind: SeldonDeployment
        metadata: {name: credit}
        spec:
          predictors:
            - name: default
              graph: {name: clf, implementation: SKLEARN_SERVER, modelUri: "gs://models/credit"}
        """,
        """
        apiVersion: machinelearning.seldon.io/v1
        kind: SeldonDeployment
        metadata: {name: credit}
        spec:
          predictors:
            - name: default
              graph: {name: clf, implementation: SKLEARN_SERVER, modelUri: "gs://models/credit/v7"}
        """,
    ),
    "MLH-K8S-PUBLIC-LOADBALANCER": (
        """
        apiVersion: v1
        kind: Service
        metadata: {name: model-api}
        spec: {type: LoadBalancer, selector: {app: model-api}}
        """,
        """
        apiVersion: v1
        kind: Service
        metadata:
          name: model-api
          annotations: {service.beta.kubernetes.io/aws-load-balancer-internal: "true"}
        spec: {type: LoadBalancer, selector: {app: model-api}}
        """,
    ),
    "MLH-K8S-AUTHZ-ALLOW-ALL": (
        """
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: open, namespace: serving}
        spec:
          rules:
            - from: [{source: {principals: ["*"]}}]
        """,
        """
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: narrow, namespace: serving}
        spec:
          rules:
            - from: [{source: {principals: ["cluster.local/ns/web/sa/frontend"]}}]
        """,
    ),
    "MLH-K8S-MTLS-PERMISSIVE": (
        """
        apiVersion: security.istio.io/v1
        kind: PeerAuthentication
        metadata: {name: default, namespace: serving}
        spec: {mtls: {mode: STRICT}, portLevelMtls: {"9090": {mode: DISABLE}}}
        """,
        """
        apiVersion: security.istio.io/v1
        kind: PeerAuthentication
        metadata: {name: default, namespace: serving}
        spec: {mtls: {mode: STRICT}}
        """,
    ),
}

ISVC = """
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata: {name: credit, namespace: serving}
spec:
  predictor:
    model:
      modelFormat: {name: sklearn}
      storageUri: s3://models/credit/v3/
      resources: {limits: {cpu: "1", memory: 1Gi}}
"""
STRICT = """
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec: {mtls: {mode: STRICT}}
"""
AUTHZ = """
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: credit, namespace: serving}
spec:
  selector: {matchLabels: {serving.kserve.io/inferenceservice: credit}}
  rules: [{from: [{source: {principals: ["cluster.local/ns/web/sa/frontend"]}}]}]
"""
CASES["MLH-K8S-MTLS-MISSING"] = (ISVC + AUTHZ, ISVC + AUTHZ + STRICT)
CASES["MLH-K8S-AUTHZ-MISSING"] = (
    ISVC + STRICT + AUTHZ.replace("inferenceservice: credit", "inferenceservice: other"),
    ISVC + STRICT + AUTHZ,
)


def test_every_policy_has_a_case():
    assert set(CASES) == {p.id for p in load_policies()}


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_policy_fires_on_bad_and_not_on_fixed(tmp_path, rule_id):
    bad, good = CASES[rule_id]
    bad_findings = scan_manifest(write(tmp_path, bad, "bad.yaml"))
    assert rule_id in ids(bad_findings), [f.evidence["message"] for f in bad_findings]
    hit = next(f for f in bad_findings if f.rule_id == rule_id)
    assert hit.source == "scan" and hit.target.endswith("bad.yaml")
    assert isinstance(hit.evidence["line"], int) and hit.evidence["line"] >= 1
    assert hit.evidence["message"] and hit.evidence["kind"] and hit.evidence["name"]
    assert hit.mitigations and hit.cwe
    good_findings = scan_manifest(write(tmp_path, good, "good.yaml"))
    assert rule_id not in ids(good_findings), [f.evidence["message"] for f in good_findings]


def test_line_points_at_the_offending_field(tmp_path):
    path = write(
        tmp_path,
        """
        apiVersion: v1
        kind: Namespace
        metadata: {name: serving}
        ---
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: api}
        spec:
          template:
            spec:
              containers:
                - name: api
                  image: registry.example/api:2.0
                  securityContext:
                    runAsNonRoot: true
                    allowPrivilegeEscalation: false
                    privileged: true
                  resources: {limits: {cpu: "1", memory: 1Gi}}
        """,
    )
    findings = {f.rule_id: f for f in scan_manifest(path, display="deploy/api.yaml")}
    lines = path.read_text().splitlines()
    digest = findings["MLH-K8S-IMAGE-DIGEST"]
    assert lines[digest.evidence["line"] - 1].strip().startswith("image:")
    assert digest.evidence["field"] == "spec.template.spec.containers[0].image"
    assert digest.evidence["document"] == 2
    assert digest.target == "deploy/api.yaml"
    priv = findings["MLH-K8S-PRIVILEGED"]
    assert lines[priv.evidence["line"] - 1].strip() == "privileged: true"
    assert priv.severity is Severity.CRITICAL
    assert priv.id == (
        "MLH-K8S-PRIVILEGED@deploy/api.yaml#Deployment//api:"
        "spec.template.spec.containers[0].securityContext.privileged"
    )
    # Stable across runs.
    again = {f.id for f in scan_manifest(path, display="deploy/api.yaml")}
    assert {f.id for f in findings.values()} <= again


def test_training_and_pipeline_workloads_are_checked(tmp_path):
    path = write(
        tmp_path,
        """
        apiVersion: kubeflow.org/v1
        kind: TFJob
        metadata: {name: train}
        spec:
          tfReplicaSpecs:
            Worker:
              template:
                spec:
                  containers: [{name: tensorflow, image: tf:2.16}]
        ---
        apiVersion: argoproj.io/v1alpha1
        kind: Workflow
        metadata: {generateName: pipeline-}
        spec:
          templates:
            - name: preprocess
              container: {image: "python:3.12", securityContext: {privileged: true}}
        ---
        apiVersion: batch/v1
        kind: CronJob
        metadata: {name: nightly}
        spec:
          jobTemplate:
            spec:
              template:
                spec:
                  containers: [{name: job, image: "job:1"}]
        """,
    )
    found = {(f.evidence["kind"], f.rule_id) for f in scan_manifest(path)}
    for kind in ("TFJob", "Workflow", "CronJob"):
        assert (kind, "MLH-K8S-RESOURCE-LIMITS") in found
        assert (kind, "MLH-K8S-IMAGE-DIGEST") in found
    assert ("Workflow", "MLH-K8S-PRIVILEGED") in found


def test_combined_rules_see_all_files(tmp_path):
    (tmp_path / "isvc.yaml").write_text(ISVC)
    (tmp_path / "mesh.yaml").write_text(STRICT.lstrip("\n-") + AUTHZ)
    alone = ids(scan_manifest(tmp_path / "isvc.yaml"))
    assert {"MLH-K8S-MTLS-MISSING", "MLH-K8S-AUTHZ-MISSING"} <= alone
    together = scan_manifests(sorted(tmp_path.glob("*.yaml")))
    assert not {"MLH-K8S-MTLS-MISSING", "MLH-K8S-AUTHZ-MISSING"} & ids(together)


def test_combined_finding_points_at_the_resource(tmp_path):
    (tmp_path / "other.yaml").write_text(STRICT.lstrip("\n-"))
    (tmp_path / "isvc.yaml").write_text("# serving\n" + ISVC.lstrip())
    findings = scan_manifests(
        [tmp_path / "other.yaml", tmp_path / "isvc.yaml"],
        displays={tmp_path / "isvc.yaml": "deploy/isvc.yaml"},
    )
    authz = next(f for f in findings if f.rule_id == "MLH-K8S-AUTHZ-MISSING")
    assert authz.target == "deploy/isvc.yaml"
    assert authz.evidence["line"] == 2 and authz.evidence["kind"] == "InferenceService"


# --------------------------------------------------------------------------------------------
# Scenario manifests
# --------------------------------------------------------------------------------------------

EXPECTED = {
    "loan-approval": {
        "MLH-K8S-IMAGE-DIGEST",
        "MLH-K8S-RUN-AS-ROOT",
        "MLH-K8S-PRIV-ESCALATION",
        "MLH-K8S-LITERAL-SECRET-ENV",
        "MLH-K8S-CONFIGMAP-SECRET",
        "MLH-K8S-MODEL-URI-UNPINNED",
        "MLH-K8S-MTLS-MISSING",
        "MLH-K8S-AUTHZ-MISSING",
        "MLH-K8S-PRIVILEGED",
    },
    "image-moderation": {
        "MLH-K8S-MODEL-URI-UNPINNED",
        "MLH-K8S-RESOURCE-LIMITS",
        "MLH-K8S-MTLS-MISSING",
        "MLH-K8S-AUTHZ-MISSING",
        "MLH-K8S-PRIVILEGED",
        "MLH-K8S-RUN-AS-ROOT",
        "MLH-K8S-PRIV-ESCALATION",
        "MLH-K8S-IMAGE-DIGEST",
        "MLH-K8S-LITERAL-SECRET-ENV",
    },
    "fraud-detection": {
        "MLH-K8S-PUBLIC-LOADBALANCER",
        "MLH-K8S-AUTHZ-ALLOW-ALL",
        "MLH-K8S-MTLS-PERMISSIVE",
        "MLH-K8S-MTLS-MISSING",
        "MLH-K8S-LITERAL-SECRET-ENV",
        "MLH-K8S-CONFIGMAP-SECRET",
    },
    "clickstream-recommender": {
        "MLH-K8S-MODEL-URI-UNPINNED",
        "MLH-K8S-AUTHZ-ALLOW-ALL",
        "MLH-K8S-PUBLIC-LOADBALANCER",
        "MLH-K8S-HOSTPATH",
        "MLH-K8S-PRIVILEGED",
        "MLH-K8S-RUN-AS-ROOT",
        "MLH-K8S-PRIV-ESCALATION",
        "MLH-K8S-RESOURCE-LIMITS",
        "MLH-K8S-IMAGE-DIGEST",
        "MLH-K8S-LITERAL-SECRET-ENV",
    },
}


def manifests(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if is_manifest(p))
    assert files, folder
    return files


@pytest.mark.parametrize("scenario", sorted(EXPECTED))
def test_example_deploy_is_flagged(scenario):
    findings = scan_manifests(manifests(EXAMPLES / scenario / "deploy"))
    assert ids(findings) == EXPECTED[scenario]
    for f in findings:
        lines = Path(f.target).read_text().splitlines()
        assert 1 <= f.evidence["line"] <= len(lines)


@pytest.mark.parametrize("scenario", sorted(EXPECTED))
def test_example_deploy_fixed_passes(scenario):
    findings = scan_manifests(manifests(EXAMPLES / scenario / "deploy-fixed"))
    assert not [f for f in findings if f.severity.rank >= Severity.HIGH.rank]
    assert findings == []


def test_compiled_bundle_cache(tmp_path, monkeypatch):
    """The shipped policies' bundle is written on the first scan and loaded on the next, with
    the same findings; a damaged cache file means compiling again, never an error."""
    from mlhunt.scan import manifests as m
    from mlhunt.scan import pycache

    monkeypatch.setattr(pycache, "cache_dir", lambda: tmp_path / "cache" / "scan")
    files = manifests(EXAMPLES / "image-moderation" / "deploy")
    m._CACHE.clear()
    cold = scan_manifests(files)
    (cached,) = (tmp_path / "cache" / "scan").glob("rego-*.rbb")
    m._CACHE.clear()
    warm = scan_manifests(files)
    assert [f.to_dict() for f in warm] == [f.to_dict() for f in cold] != []
    cached.write_bytes(b"not a bundle")
    m._CACHE.clear()
    assert [f.id for f in scan_manifests(files)] == [f.id for f in cold]
    m._CACHE.clear()


def test_parsed_policy_cache(tmp_path, monkeypatch):
    """The shipped policies' METADATA is parsed once and read back from a JSON copy named by
    their sources; the copy gives the same policies, and a damaged one is parsed again."""
    from mlhunt.scan import manifests as m
    from mlhunt.scan import pycache

    monkeypatch.setattr(pycache, "cache_dir", lambda: tmp_path / "scan")
    fresh = m._parse_dir(m.SHIPPED_POLICY_DIR, shipped=True)
    (copy,) = (tmp_path / "scan").glob("policies-*.json")
    kept = m._parse_dir(m.SHIPPED_POLICY_DIR, shipped=True)
    assert kept == fresh and sum(pol is not None for _, _, pol in kept) >= 10
    for bad in ('{"truncated": ', "[1, 2]", json.dumps([{"id": 1}] * len(fresh))):
        copy.write_text(bad, encoding="utf-8")
        assert m._parse_dir(m.SHIPPED_POLICY_DIR, shipped=True) == fresh


# --------------------------------------------------------------------------------------------
# User policies and the loader's refusals
# --------------------------------------------------------------------------------------------

USER_POLICY = """
package main

import rego.v1

# METADATA
# title: Model servers must carry an owner label
# custom:
#   id: ACME-K8S-OWNER
#   severity: low
#   cwe: [CWE-1059]
#   mitigation: Add metadata.labels.owner.
deny contains msg if {
    input.kind == "InferenceService"
    not input.metadata.labels.owner
    msg := concat("", ["InferenceService ", input.metadata.name, " has no owner label"])
}
"""


def test_user_policy_dir_adds_a_rule(tmp_path):
    pdir = tmp_path / "policies"
    pdir.mkdir()
    (pdir / "owner.rego").write_text(USER_POLICY)
    path = write(tmp_path, ISVC)
    assert "ACME-K8S-OWNER" not in ids(scan_manifest(path))
    findings = scan_manifest(path, policy_dirs=[pdir])
    owner = [f for f in findings if f.rule_id == "ACME-K8S-OWNER"]
    assert len(owner) == 1
    assert owner[0].severity is Severity.LOW
    assert owner[0].evidence["message"] == "InferenceService credit has no owner label"
    assert owner[0].evidence["policy"] == str(pdir / "owner.rego")
    assert owner[0].mitigations == ["Add metadata.labels.owner."]
    assert "MLH-K8S-MTLS-MISSING" in ids(findings)  # shipped policies still run


def _refused(tmp_path, source: str) -> PolicyError:
    pdir = tmp_path / "bad"
    pdir.mkdir(exist_ok=True)
    (pdir / "p.rego").write_text(textwrap.dedent(source).lstrip())
    path = write(tmp_path, ISVC)
    with pytest.raises(PolicyError) as err:
        scan_manifest(path, policy_dirs=[pdir])
    assert isinstance(err.value, InputError)
    assert str(pdir / "p.rego") in str(err.value)
    return err.value


def test_network_builtin_is_refused(tmp_path):
    err = _refused(
        tmp_path,
        """
        package main

        import rego.v1

        # METADATA
        # custom: {id: ACME-EXFIL, severity: high}
        deny contains msg if {
            resp := http.send({"method": "POST", "url": "http://127.0.0.1:9/", "body": input})
            msg := resp.body
        }
        """,
    )
    assert "http.send" in str(err)


def test_old_syntax_is_refused(tmp_path):
    err = _refused(
        tmp_path,
        """
        package main

        # METADATA
        # custom: {id: ACME-OLD, severity: high}
        deny[msg] {
          input.kind == "Pod"
          msg := "pod"
        }
        """,
    )
    assert "old Rego syntax" in str(err)


@pytest.mark.parametrize(
    "custom, words",
    [
        ("", "custom.id"),
        ("# custom: {id: ACME-X}\n", "severity"),
        ("# custom: {id: ACME-X, severity: urgent}\n", "severity"),
    ],
)
def test_missing_metadata_is_refused(tmp_path, custom, words):
    src = "package main\n\nimport rego.v1\n\n# METADATA\n# title: t\n" + custom
    src += 'deny contains "x" if input.kind == "Pod"\n'
    err = _refused(tmp_path, src)
    assert words in str(err)


def test_rego_error_is_reported_with_the_file(tmp_path):
    err = _refused(
        tmp_path,
        """
        package main

        import rego.v1

        # METADATA
        # custom: {id: ACME-BROKEN, severity: high}
        deny contains msg if {
            msg := input.kind ==
        }
        """,
    )
    assert "Rego error" in str(err)


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def test_is_manifest(tmp_path):
    assert is_manifest(write(tmp_path, ISVC, "a.yaml"))
    assert is_manifest(write(tmp_path, '{"apiVersion": "v1", "kind": "Pod"}', "a.json"))
    assert not is_manifest(write(tmp_path, "name: not kubernetes\n", "system.yaml"))
    assert not is_manifest(write(tmp_path, "a: [unclosed\n", "broken.yaml"))
    assert not is_manifest(write(tmp_path, ISVC, "a.txt"))
    assert not is_manifest(EXAMPLES / "loan-approval" / "system.yaml")


def test_invalid_yaml_is_an_input_error_with_line(tmp_path):
    path = write(tmp_path, "apiVersion: v1\nkind: Pod\nmetadata: {name: [x\n", "bad.yaml")
    with pytest.raises(InputError) as err:
        scan_manifest(path)
    assert err.value.line and "bad.yaml" in str(err.value)


def test_list_kind_and_empty_documents(tmp_path):
    path = write(
        tmp_path,
        """
        ---
        ---
        apiVersion: v1
        kind: List
        items:
          - apiVersion: v1
            kind: Pod
            metadata: {name: p}
            spec:
              containers: [{name: c, image: "busybox", securityContext: {privileged: true}}]
        """,
    )
    priv = [f for f in scan_manifest(path) if f.rule_id == "MLH-K8S-PRIVILEGED"]
    assert priv and priv[0].evidence["name"] == "p"


# --------------------------------------------------------------------------------------------
# conftest (only where it is installed)
# --------------------------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("conftest") is None, reason="conftest not installed")
def test_policies_run_under_conftest():
    deploy = EXAMPLES / "clickstream-recommender" / "deploy"
    run = subprocess.run(
        ["conftest", "test", "--policy", str(SHIPPED_POLICY_DIR), "--no-color", str(deploy)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 1, run.stdout + run.stderr
    assert "runs privileged" in run.stdout
    fixed = EXAMPLES / "clickstream-recommender" / "deploy-fixed"
    run = subprocess.run(
        ["conftest", "test", "--combine", "--policy", str(SHIPPED_POLICY_DIR), str(fixed)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr

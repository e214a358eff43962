"""``python -m bench model``: a generated ML estate, threat-modelled by mlhunt and by pytm.

The workload is a deterministic (seeded) system description of a large organisation's ML estate:
100 teams ("domains"), each with its own data sources, ingestion, stores holding personal,
cardholder or internal data, feature pipelines, training jobs, registries, inference APIs with
model properties, notebooks, monitoring and LLM / vector-store / agent-tool components, spread
over 50 nested trust boundaries (internet > corp > cloud accounts > clusters > namespaces), with
data assets, declared controls, and flows of varied protocol, encryption, authentication and
data. Full size: 5,000 elements and 10,000 flows; ``--quick``: 500 and 1,000.

Both sides run in this process on the same generated dict:

* mlhunt, "model loaded to findings": load the rule catalog (not the process-wide cached one),
  validate and link the description (``system_from_dict``), apply every rule
  (``build_threat_model``).
* pytm 1.4: build the equivalent ``TM`` (Actor, Server, Process, LLM, Datastore, Boundary with
  ``inBoundary`` nesting, Dataflow with protocol / TLS / ``isEncrypted`` /
  ``authenticatesSource`` and ``Data`` objects of the matching classification), run ``check()``
  (pytm's own linking: inputs/outputs, data carriers) and ``resolve()`` with pytm's bundled
  threat library. ``process()`` is not called: it parses ``sys.argv`` and prints reports.

ratio = pytm seconds / mlhunt seconds, both from the dict in memory to the list of findings.
"""

from __future__ import annotations

import gc
import random
from collections import Counter
from typing import Any

from bench import log, stopwatch

FULL_ELEMENTS = 5_000
QUICK_ELEMENTS = 500
FLOWS_PER_ELEMENT = 2
SEED = 20240611
#: pytm's run is measured on a smaller system with the same mix (and scaled linearly) only if a
#: full-size run is predicted to exceed this many seconds.
PEER_BUDGET_S = 600.0

# --- the generator ----------------------------------------------------------------------------

# Element kinds and their share of the estate (per mille).
KIND_WEIGHTS: dict[str, int] = {
    "actor": 40,
    "external_entity": 30,
    "data_source": 60,
    "ingestion": 60,
    "data_store": 140,
    "feature_pipeline": 90,
    "training_job": 80,
    "model_registry": 40,
    "model_artifact": 40,
    "inference_api": 100,
    "notebook": 60,
    "monitoring": 50,
    "process": 120,
    "llm": 30,
    "vector_store": 30,
    "agent_tool": 30,
}

# Plausible flows: (source kind, target kind, protocols, weight).
FLOW_TEMPLATES: tuple[tuple[str, str, tuple[str, ...], int], ...] = (
    ("actor", "inference_api", ("https",), 8),
    ("actor", "notebook", ("https",), 3),
    ("actor", "llm", ("https",), 3),
    ("actor", "process", ("https",), 3),
    ("external_entity", "inference_api", ("https", "grpc"), 6),
    ("external_entity", "ingestion", ("https", "sftp"), 3),
    ("data_source", "ingestion", ("kafka", "sftp", "https", "s3"), 10),
    ("ingestion", "data_store", ("s3", "jdbc", "kafka"), 10),
    ("ingestion", "feature_pipeline", ("kafka",), 5),
    ("data_store", "feature_pipeline", ("jdbc", "s3"), 9),
    ("data_store", "training_job", ("s3", "jdbc"), 8),
    ("data_store", "notebook", ("jdbc", "s3"), 4),
    ("data_store", "inference_api", ("redis", "jdbc"), 5),
    ("data_store", "process", ("jdbc",), 4),
    ("feature_pipeline", "data_store", ("s3", "jdbc", "redis"), 9),
    ("feature_pipeline", "vector_store", ("grpc",), 2),
    ("training_job", "model_registry", ("https",), 7),
    ("training_job", "model_artifact", ("s3",), 5),
    ("training_job", "monitoring", ("https",), 2),
    ("model_registry", "inference_api", ("https", "s3"), 6),
    ("model_registry", "notebook", ("https",), 2),
    ("model_artifact", "inference_api", ("s3", "file"), 4),
    ("model_artifact", "model_registry", ("s3",), 2),
    ("inference_api", "monitoring", ("https", "kafka"), 6),
    ("inference_api", "data_store", ("kafka", "jdbc"), 3),
    ("inference_api", "actor", ("https",), 3),
    ("inference_api", "process", ("grpc",), 3),
    ("notebook", "model_registry", ("https",), 3),
    ("notebook", "data_store", ("jdbc", "s3"), 3),
    ("notebook", "training_job", ("https",), 2),
    ("monitoring", "data_store", ("https", "jdbc"), 3),
    ("monitoring", "actor", ("https",), 1),
    ("process", "data_store", ("jdbc",), 4),
    ("process", "inference_api", ("grpc", "https"), 4),
    ("process", "ingestion", ("kafka",), 3),
    ("llm", "vector_store", ("grpc", "https"), 3),
    ("llm", "agent_tool", ("https",), 3),
    ("llm", "actor", ("https",), 2),
    ("vector_store", "llm", ("grpc",), 2),
    ("agent_tool", "data_store", ("jdbc", "https"), 2),
    ("agent_tool", "process", ("https",), 2),
)

CLASSIFICATION_WEIGHTS = {
    "personal": 30,
    "internal": 25,
    "confidential": 20,
    "cardholder": 10,
    "special_category": 5,
    "public": 10,
}
ASSET_KINDS = ("records", "events", "features", "labels", "predictions", "weights", "logs")
AUTHN = ("none", "password", "api_key", "token", "oauth2", "mtls", "sso", "cloud_iam")
AUTHZ = ("none", "coarse", "rbac", "abac", "policy")
CONTROL_TYPES = (
    "rate_limiting",
    "query_auditing",
    "output_hardening",
    "secrets_management",
    "admission_policy",
    "network_policy",
    "differential_privacy",
    "model_signing",
    "data_provenance",
    "data_validation",
    "encryption_in_transit",
    "anomaly_detection",
    "pseudonymization",
    "retention_policy",
    "least_privilege",
    "output_filtering",
    "prompt_isolation",
    "tokenization",
)
MODEL_KINDS = frozenset({"training_job", "model_artifact", "inference_api", "llm"})
STORE_KINDS = frozenset({"data_store", "model_registry", "model_artifact", "vector_store"})
EXTERNAL_KINDS = frozenset({"actor", "external_entity", "data_source"})
ALGORITHMS = (
    ("gradient_boosting", "tabular"),
    ("logistic_regression", "tabular"),
    ("cnn", "image"),
    ("transformer", "text"),
    ("lstm", "time_series"),
    ("gnn", "graph"),
    ("two_tower", "events"),
)


def _boundaries() -> list[dict[str, Any]]:
    """50 trust boundaries, parents first: internet > corp > 5 accounts > 10 clusters > 30 ns."""
    out: list[dict[str, Any]] = [
        {"id": "internet", "name": "Public internet", "kind": "network"},
        {"id": "partner-extranet", "kind": "network", "parent": "internet"},
        {"id": "vendor-net", "kind": "network", "parent": "internet"},
        {"id": "corp", "name": "Corporate network", "kind": "network", "parent": "internet"},
        {"id": "dmz", "name": "API DMZ", "kind": "network", "parent": "corp"},
    ]
    for a in range(5):
        out.append({"id": f"acct-{a}", "kind": "account", "parent": "corp"})
        for c in range(2):
            cluster = f"acct-{a}.k8s-{c}"
            out.append({"id": cluster, "kind": "cluster", "parent": f"acct-{a}"})
            for ns in ("ingest", "train", "serve"):
                out.append({"id": f"{cluster}.{ns}", "kind": "namespace", "parent": cluster})
    return out


def generate(n_elements: int = FULL_ELEMENTS, n_flows: int | None = None, seed: int = SEED):
    """A realistic ML-estate system description (a plain dict), the same for the same args."""
    rng = random.Random(seed)
    n_flows = FLOWS_PER_ELEMENT * n_elements if n_flows is None else n_flows
    boundaries = _boundaries()
    clusters = [b["id"] for b in boundaries if b["kind"] == "cluster"]
    n_domains = max(1, n_elements // 50)

    assets: list[dict[str, Any]] = []
    domain_assets: list[list[str]] = []
    cls_names, cls_w = zip(*CLASSIFICATION_WEIGHTS.items(), strict=True)
    for d in range(n_domains):
        mine = []
        for k in rng.sample(ASSET_KINDS, 4):
            cls = rng.choices(cls_names, cls_w)[0]
            if k == "weights":
                cls = "confidential"
            aid = f"d{d}.{k}"
            asset: dict[str, Any] = {
                "id": aid,
                "name": f"Team {d} {k}",
                "classification": cls,
                "confidentiality": rng.choice(("low", "medium", "high", "critical")),
                "integrity": rng.choice(("medium", "high", "critical")),
            }
            if cls in ("personal", "special_category", "cardholder"):
                asset["data_subjects"] = [rng.choice(("customers", "applicants", "card holders"))]
                asset["quasi_identifiers"] = ["postcode", "birth_date"][: rng.randint(0, 2)]
            assets.append(asset)
            mine.append(aid)
        domain_assets.append(mine)

    kinds, kind_w = zip(*KIND_WEIGHTS.items(), strict=True)
    elements: list[dict[str, Any]] = []
    by_domain_kind: dict[tuple[int, str], list[str]] = {}
    by_kind: dict[str, list[str]] = {}
    for i in range(n_elements):
        d = i % n_domains
        kind = rng.choices(kinds, kind_w)[0]
        eid = f"d{d}.{kind}-{i}"
        cluster = clusters[d % len(clusters)]
        e: dict[str, Any] = {"id": eid, "name": f"{kind.replace('_', ' ')} {i}", "kind": kind}
        internet_facing = False
        if kind == "actor":
            e["boundary"] = rng.choice(("internet", "corp", "corp", "partner-extranet"))
            internet_facing = e["boundary"] == "internet"
        elif kind == "external_entity":
            e["boundary"] = rng.choice(("internet", "partner-extranet", "vendor-net"))
        elif kind == "data_source":
            e["boundary"] = rng.choice(("vendor-net", "partner-extranet", f"{cluster}.ingest"))
        elif kind == "inference_api" and rng.random() < 0.3:
            e["boundary"] = "dmz"
            internet_facing = True
        elif kind in ("data_store", "model_registry") and rng.random() < 0.25:
            e["boundary"] = cluster.split(".")[0]  # a bucket or managed DB at account level
        elif kind in ("ingestion", "data_source"):
            e["boundary"] = f"{cluster}.ingest"
        elif kind in ("training_job", "notebook", "feature_pipeline", "model_artifact"):
            e["boundary"] = f"{cluster}.train"
        else:
            e["boundary"] = f"{cluster}.{rng.choice(('ingest', 'train', 'serve', 'serve'))}"
        if internet_facing:
            e["internet_facing"] = True
        if kind not in EXTERNAL_KINDS:
            e["technology"] = rng.choice(("Kubernetes", "Spark", "FastAPI", "PostgreSQL", "S3"))
            e["authentication"] = rng.choice(AUTHN)
            e["authorization"] = rng.choice(AUTHZ)
            e["audit_logging"] = rng.random() < 0.5
            e["input_validation"] = rng.random() < 0.4
            e["resource_limits"] = rng.random() < 0.5
            e["high_availability"] = rng.random() < 0.3
            if rng.random() < 0.1:
                e["privileged"] = True
            if kind == "notebook" or rng.random() < 0.05:
                e["shared_tenancy"] = True
            if kind in STORE_KINDS:
                e["encrypted_at_rest"] = rng.random() < 0.6
                e["uses_sql"] = kind == "data_store" and rng.random() < 0.5
            elif kind == "process" and rng.random() < 0.3:
                e["uses_sql"] = True
            if kind in ("inference_api", "llm") and rng.random() < 0.5:
                e["rate_limit"] = rng.choice(("10/second", "100/minute", "1000/hour"))
            if rng.random() < 0.2:
                e["criticality"] = rng.choice(("low", "medium", "high", "critical"))
        if kind not in ("actor", "external_entity"):
            e["data"] = rng.sample(domain_assets[d], rng.randint(0, 3))
        if kind in MODEL_KINDS or (kind == "model_registry" and rng.random() < 0.5):
            algorithm, input_type = rng.choice(ALGORITHMS)
            if kind == "llm":
                algorithm, input_type = "transformer", "text"
            e["model"] = {
                "algorithm": algorithm,
                "input_type": input_type,
                "output": "text"
                if kind == "llm"
                else rng.choice(("scores", "label", "top_k", "rounded_scores", "embedding")),
                "retrains_on_feedback": rng.random() < 0.2,
                "training_data_provenance": rng.choice(
                    ("verified", "internal", "third_party", "public_scraped", "user_generated")
                ),
                "human_review": rng.random() < 0.2,
                "ip_value": rng.choice(("low", "medium", "high", "critical")),
                "pretrained_from": rng.choice((None, None, "resnet50", "bert-base")),
                "physical_world_inputs": input_type == "image" and rng.random() < 0.5,
                "signed": rng.random() < 0.4,
                "serialization": rng.choice(("pickle", "joblib", "safetensors", "onnx", "torch")),
            }
        elements.append(e)
        by_domain_kind.setdefault((d, kind), []).append(eid)
        by_kind.setdefault(kind, []).append(eid)

    templates = [t for t in FLOW_TEMPLATES if t[0] in by_kind and t[1] in by_kind]
    t_w = [t[3] for t in templates]
    flows: list[dict[str, Any]] = []
    for i in range(n_flows):
        src = dst = ""
        while src == dst:  # no self-loops (possible only in tiny systems)
            src_kind, dst_kind, protocols, _ = rng.choices(templates, t_w)[0]
            d = rng.randrange(n_domains)
            src = rng.choice(by_domain_kind.get((d, src_kind)) or by_kind[src_kind])
            d2 = d if rng.random() < 0.85 else rng.randrange(n_domains)
            dst = rng.choice(by_domain_kind.get((d2, dst_kind)) or by_kind[dst_kind])
        protocol = rng.choice(protocols)
        encrypted = protocol not in ("file",) and rng.random() < 0.7
        f: dict[str, Any] = {
            "id": f"f{i}",
            "source": src,
            "target": dst,
            "name": f"{src_kind} to {dst_kind} {i}",
            "protocol": protocol,
            "encrypted": encrypted,
            "authenticated": rng.random() < 0.6,
            "authorization": rng.choice(AUTHZ),
            "data": rng.sample(domain_assets[d], rng.randint(0, 2)),
        }
        flows.append(f)

    element_ids = [e["id"] for e in elements]
    boundary_ids = [b["id"] for b in boundaries]
    controls: list[dict[str, Any]] = []
    for i in range(max(1, n_elements // 10)):
        pool = rng.random()
        if pool < 0.6:
            targets = rng.sample(element_ids, rng.randint(1, 4))
        elif pool < 0.9:
            targets = [f"f{j}" for j in rng.sample(range(n_flows), rng.randint(1, 4))]
        else:
            targets = [rng.choice(boundary_ids)]
        controls.append(
            {"id": f"ctl-{i}", "type": rng.choice(CONTROL_TYPES), "applies_to": targets}
        )

    return {
        "name": f"Generated ML estate ({n_elements} elements, {n_flows} flows)",
        "description": "Deterministic benchmark workload: 100 teams' ML platforms.",
        "criticality": "high",
        "regulations": ["gdpr", "pci_dss"],
        "data_assets": assets,
        "trust_boundaries": boundaries,
        "elements": elements,
        "flows": flows,
        "controls": controls,
    }


# --- mlhunt -------------------------------------------------------------------------------------


def run_mlhunt(data: dict[str, Any]) -> dict[str, Any]:
    from mlhunt.system.loader import system_from_dict
    from mlhunt.threatmodel.catalog import load_catalog
    from mlhunt.threatmodel.engine import build_threat_model

    gc.collect()
    total = stopwatch()
    t = stopwatch()
    catalog = load_catalog()
    catalog_s = t()
    t = stopwatch()
    system = system_from_dict(data)
    validate_s = t()
    t = stopwatch()
    model = build_threat_model(system, catalog)
    rules_s = t()
    total_s = total()
    return {
        "seconds": round(total_s, 4),
        "catalog_s": round(catalog_s, 4),
        "validate_s": round(validate_s, 4),
        "rules_s": round(rules_s, 4),
        "rules": len(catalog.rules),
        "findings": len(model.findings),
    }


# --- pytm ---------------------------------------------------------------------------------------

_PYTM_CLASSIFICATION = {
    "public": "PUBLIC",
    "internal": "RESTRICTED",
    "confidential": "SENSITIVE",
    "personal": "SENSITIVE",
    "special_category": "SECRET",
    "cardholder": "SECRET",
}
_PERSONAL = frozenset({"personal", "special_category", "cardholder"})
_STRONG_AUTHZ = frozenset({"rbac", "abac", "policy"})


def build_pytm(data: dict[str, Any]) -> tuple[Any, list[tuple[Any, dict[str, Any]]]]:
    """The pytm TM equivalent to ``data``; also each Dataflow with the flow dict it came from."""
    import pytm

    pytm.TM.reset()  # pytm keeps its elements and threats in class-level state
    tm = pytm.TM(data["name"], description=data["description"])  # loads threats.json

    classification = {a["id"]: a.get("classification", "internal") for a in data["data_assets"]}
    stored = {d for e in data["elements"] if e["kind"] in STORE_KINDS for d in e.get("data", ())}
    datas = {
        aid: pytm.Data(
            aid,
            description=a.get("name", ""),
            classification=pytm.Classification[_PYTM_CLASSIFICATION[cls]],
            isPII=cls in _PERSONAL,
            isStored=aid in stored,
        )
        for a in data["data_assets"]
        for aid, cls in [(a["id"], classification[a["id"]])]
    }
    boundaries: dict[str, Any] = {}
    for b in data["trust_boundaries"]:  # parents come first in the generated list
        parent = boundaries.get(b["parent"]) if b.get("parent") else None
        boundaries[b["id"]] = pytm.Boundary(b["id"], inBoundary=parent)

    elements: dict[str, Any] = {}
    for e in data["elements"]:
        kind = e["kind"]
        authn = e.get("authentication", "none")
        authz = e.get("authorization", "none")
        model = e.get("model") or {}
        controls = pytm.Controls(
            authenticatesSource=authn != "none",
            authenticationScheme=authn if authn != "none" else "",
            usesMFA=authn == "sso",
            authorizesSource=authz != "none",
            hasAccessControl=authz in _STRONG_AUTHZ,
            validatesInput=bool(e.get("input_validation")),
            sanitizesInput=bool(e.get("input_validation")),
            usesParameterizedInput=bool(e.get("uses_sql") and e.get("input_validation")),
            isEncryptedAtRest=bool(e.get("encrypted_at_rest")),
            handlesResourceConsumption=bool(e.get("resource_limits") or e.get("rate_limit")),
            isResilient=bool(e.get("high_availability")),
            implementsPOLP=not e.get("privileged", False),
            usesCodeSigning=bool(model.get("signed")),
            providesIntegrity=bool(model.get("signed")),
        )
        data_objs = [datas[d] for d in e.get("data", ())]
        common: dict[str, Any] = {
            "description": e.get("description", ""),
            "inBoundary": boundaries.get(e.get("boundary") or ""),
            "controls": controls,
            "data": data_objs,
            "maxClassification": max(
                (datas[d].classification for d in e.get("data", ())),
                default=pytm.Classification.UNKNOWN,
            ),
        }
        if kind in EXTERNAL_KINDS:
            obj = pytm.Actor(e["id"], isAdmin=bool(e.get("privileged")), **common)
        elif kind in STORE_KINDS:
            sens = [classification[d] for d in e.get("data", ())]
            obj = pytm.Datastore(
                e["id"],
                storesPII=any(c in _PERSONAL for c in sens),
                storesSensitiveData=any(c != "public" and c != "internal" for c in sens),
                isSQL=bool(e.get("uses_sql")),
                isShared=bool(e.get("shared_tenancy")),
                hasWriteAccess=True,
                type=pytm.DatastoreType.SQL if e.get("uses_sql") else pytm.DatastoreType.AWS_S3,
                **common,
            )
        elif kind == "inference_api":
            obj = pytm.Server(e["id"], **common)
        elif kind == "llm":
            obj = pytm.LLM(
                e["id"],
                processesPersonalData=any(
                    classification[d] in _PERSONAL for d in e.get("data", ())
                ),
                processesUntrustedInput=bool(e.get("internet_facing")),
                isSelfHosted=True,
                **common,
            )
        else:
            obj = pytm.Process(e["id"], implementsAPI=kind == "agent_tool", **common)
        elements[e["id"]] = obj

    flows: list[tuple[Any, dict[str, Any]]] = []
    for f in data["flows"]:
        flow = pytm.Dataflow(
            elements[f["source"]],
            elements[f["target"]],
            f["id"],
            protocol=f.get("protocol", ""),
            tlsVersion=pytm.TLSVersion.TLSv12 if f.get("encrypted") else pytm.TLSVersion.NONE,
            data=[datas[d] for d in f.get("data", ())],
            controls=pytm.Controls(
                isEncrypted=bool(f.get("encrypted")),
                authenticatesSource=bool(f.get("authenticated")),
                authorizesSource=f.get("authorization", "none") in _STRONG_AUTHZ,
            ),
        )
        flows.append((flow, f))
    return tm, flows


def run_pytm(data: dict[str, Any]) -> dict[str, Any]:
    import pytm

    gc.collect()
    total = stopwatch()
    t = stopwatch()
    tm, flows = build_pytm(data)
    construct_s = t()
    log(f"pytm: constructed in {construct_s:.2f} s; check()")
    t = stopwatch()
    tm.check()
    # pytm 1.4's check() overwrites each flow's protocol and controls.isEncrypted with its
    # sink's defaults; put the per-flow values back so the threats see the same system.
    for flow, f in flows:
        flow.protocol = f.get("protocol", "")
        flow.controls.isEncrypted = bool(f.get("encrypted"))
    check_s = t()
    log(f"pytm: check() in {check_s:.2f} s; resolve() with {len(pytm.TM._threats)} threats")
    t = stopwatch()
    tm.resolve()
    resolve_s = t()
    total_s = total()
    return {
        "seconds": round(total_s, 4),
        "construct_s": round(construct_s, 4),
        "check_s": round(check_s, 4),
        "resolve_s": round(resolve_s, 4),
        "threats": len(pytm.TM._threats),
        "findings": len(tm.findings),
        "version": _pytm_version(),
    }


def _pytm_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pytm")
    except PackageNotFoundError:
        return "unknown"


# --- the benchmark ------------------------------------------------------------------------------


def _best(fn: Any, data: dict[str, Any], repeats: int) -> dict[str, Any]:
    """The run with the lowest total seconds out of ``repeats`` (all totals kept)."""
    runs = [fn(data) for _ in range(repeats)]
    best = min(runs, key=lambda r: r["seconds"])
    if repeats > 1:
        best["runs_s"] = [r["seconds"] for r in runs]
    return best


def run(
    quick: bool = False,
    size: int | None = None,
    peer_size: int | None = None,
    repeats: int | None = None,
) -> dict[str, Any]:
    """Time mlhunt and pytm on the generated estate; ``size`` overrides the number of elements.

    Each side runs ``repeats`` times (3 for a full run, 1 for ``quick``) and reports its fastest
    run. ``peer_size`` forces pytm onto a smaller system of the same mix (its seconds then
    scaled linearly to ``size``); by default pytm runs at full size unless a probe run predicts
    more than ``PEER_BUDGET_S`` seconds.
    """
    n = size or (QUICK_ELEMENTS if quick else FULL_ELEMENTS)
    repeats = repeats or (1 if quick else 3)
    t = stopwatch()
    data = generate(n)
    log(
        f"generated {len(data['elements'])} elements, {len(data['flows'])} flows, "
        f"{len(data['trust_boundaries'])} boundaries, {len(data['data_assets'])} data assets, "
        f"{len(data['controls'])} controls in {t():.2f} s"
    )
    workload = {
        "elements": len(data["elements"]),
        "flows": len(data["flows"]),
        "trust_boundaries": len(data["trust_boundaries"]),
        "data_assets": len(data["data_assets"]),
        "controls": len(data["controls"]),
        "kinds": dict(sorted(Counter(e["kind"] for e in data["elements"]).items())),
        "seed": SEED,
        "repeats": repeats,
    }

    log(f"mlhunt: catalog + system_from_dict + build_threat_model, best of {repeats}")
    mlhunt = _best(run_mlhunt, data, repeats)
    log(
        f"mlhunt: {mlhunt['seconds']:.3f} s (catalog {mlhunt['catalog_s']:.3f}, validate "
        f"{mlhunt['validate_s']:.3f}, rules {mlhunt['rules_s']:.3f}), "
        f"{mlhunt['findings']} findings"
    )

    if peer_size is None and n > QUICK_ELEMENTS:
        probe_n = QUICK_ELEMENTS
        log(f"pytm: probe run at {probe_n} elements to predict the full-size time")
        probe = run_pytm(generate(probe_n))
        predicted = probe["seconds"] * n / probe_n
        log(f"pytm: probe {probe['seconds']:.2f} s -> predicted {predicted:.0f} s at {n}")
        if predicted * repeats > PEER_BUDGET_S:
            peer_size = max(QUICK_ELEMENTS, int(n * PEER_BUDGET_S / predicted / repeats / 2))
    if peer_size is not None and peer_size < n:
        log(f"pytm: running on a {peer_size}-element subset with the same mix")
        sub = generate(peer_size)
        peer = _best(run_pytm, sub, repeats)
        factor = len(data["elements"]) / len(sub["elements"])
        peer = {
            "scaled_from": {
                "elements": len(sub["elements"]),
                "flows": len(sub["flows"]),
                "measured_s": peer["seconds"],
                "findings": peer["findings"],
                "factor": round(factor, 3),
                "note": "pytm timed on a smaller system of the same mix, scaled linearly",
            },
            **{k: v for k, v in peer.items() if k not in ("seconds", "findings")},
            "seconds": round(peer["seconds"] * factor, 4),
            "findings": round(peer["findings"] * factor),
        }
    else:
        log(f"pytm: TM construction + check() + resolve() on the same system, best of {repeats}")
        peer = _best(run_pytm, data, repeats)
    log(
        f"pytm: {peer['seconds']:.3f} s (construct {peer['construct_s']:.3f}, "
        f"check {peer['check_s']:.3f}, resolve {peer['resolve_s']:.3f}), "
        f"{peer['findings']} findings"
    )
    ratio = peer["seconds"] / mlhunt["seconds"] if mlhunt["seconds"] > 0 else float("inf")
    return {
        "mlhunt": mlhunt,
        "peer": {"name": "pytm", **peer},
        "ratio": round(ratio, 2),
        "workload": workload,
    }

package main

import rego.v1

import data.lib.mlhunt

# METADATA
# title: Model served without Istio mTLS STRICT
# description: >-
#   No PeerAuthentication with mtls.mode STRICT covers the namespace (or the mesh root namespace)
#   where this model is served. Requests, feature vectors and scores travel in plaintext inside
#   the cluster and any pod can call the model without a workload identity.
#   Cross-resource rule: it needs every manifest of the deployment at once (mlhunt combines the
#   scanned files; with conftest run it with --combine).
# custom:
#   id: MLH-K8S-MTLS-MISSING
#   severity: high
#   input: combined
#   cwe: [CWE-319, CWE-306]
#   stride: [I, T, S]
#   atlas: [AML.T0024]
#   mitigations:
#     - Add a namespace-wide PeerAuthentication with spec.mtls.mode STRICT in every model-serving namespace (or mesh-wide in istio-system).
#     - Enable sidecar injection (istio-injection=enabled) on the serving namespace.
deny contains result if {
	some r in mlhunt.resources
	mlhunt.is_model_server(r.resource)
	ns := mlhunt.namespace(r.resource)
	not _strict_covers(r.resource, ns)
	result := {
		"msg": concat("", [r.resource.kind, " ", mlhunt.name(r.resource), " in namespace ", ns, " is served without Istio mTLS STRICT (no PeerAuthentication with mtls.mode STRICT covers it)"]),
		"path": r.path,
		"index": r.index,
	}
}

_strict(pa) if pa.spec.mtls.mode == "STRICT"

_strict_covers(obj, ns) if {
	some p in mlhunt.resources
	pa := p.resource
	pa.kind == "PeerAuthentication"
	_strict(pa)
	mlhunt.namespace(pa) == ns
	_selects(pa, obj)
}

_strict_covers(_, _) if {
	some p in mlhunt.resources
	pa := p.resource
	pa.kind == "PeerAuthentication"
	_strict(pa)
	mlhunt.namespace(pa) == mlhunt.istio_root_namespace
	not pa.spec.selector
}

_selects(pa, _) if not pa.spec.selector

_selects(pa, obj) if {
	labels := mlhunt.pod_labels(obj)
	every k, v in pa.spec.selector.matchLabels {
		labels[k] == v
	}
}

package main

import rego.v1

import data.lib.mlhunt

# METADATA
# title: Inference service without an AuthorizationPolicy
# description: >-
#   No Istio AuthorizationPolicy (ALLOW or CUSTOM) selects this model server or its namespace, so
#   any workload in the mesh, and anything the ingress forwards, may call the model: nothing
#   limits who can run extraction, inversion or membership-inference queries against it.
#   Cross-resource rule: it needs every manifest of the deployment at once (mlhunt combines the
#   scanned files; with conftest run it with --combine).
# custom:
#   id: MLH-K8S-AUTHZ-MISSING
#   severity: high
#   input: combined
#   cwe: [CWE-862, CWE-284]
#   stride: [S, E, I]
#   atlas: [AML.T0040, AML.T0024]
#   owasp_ml: [ML05]
#   mitigations:
#     - Add an AuthorizationPolicy in the serving namespace whose selector matches the model server and whose rules list the allowed callers' principals.
#     - Keep a deny-by-default policy (ALLOW with no rules) in the namespace.
deny contains result if {
	some r in mlhunt.resources
	mlhunt.is_model_server(r.resource)
	ns := mlhunt.namespace(r.resource)
	not _authorized(r.resource, ns)
	result := {
		"msg": concat("", [r.resource.kind, " ", mlhunt.name(r.resource), " in namespace ", ns, " has no Istio AuthorizationPolicy selecting it"]),
		"path": r.path,
		"index": r.index,
	}
}

_enforcing(ap) if not ap.spec.action

_enforcing(ap) if ap.spec.action in {"ALLOW", "CUSTOM"}

_authorized(obj, ns) if {
	some p in mlhunt.resources
	ap := p.resource
	ap.kind == "AuthorizationPolicy"
	_enforcing(ap)
	mlhunt.namespace(ap) == ns
	_selects(ap, obj)
}

_authorized(_, _) if {
	some p in mlhunt.resources
	ap := p.resource
	ap.kind == "AuthorizationPolicy"
	_enforcing(ap)
	mlhunt.namespace(ap) == mlhunt.istio_root_namespace
	not ap.spec.selector
	not ap.spec.targetRefs
	not ap.spec.targetRef
}

_selects(ap, _) if {
	not ap.spec.selector
	not ap.spec.targetRefs
	not ap.spec.targetRef
}

_selects(ap, obj) if {
	labels := mlhunt.pod_labels(obj)
	every k, v in ap.spec.selector.matchLabels {
		labels[k] == v
	}
}

# Gateway-API style attachment (targetRefs) to the model's Service: trusted as covering it.
_selects(ap, _) if ap.spec.targetRefs

_selects(ap, _) if ap.spec.targetRef

package main

import rego.v1

import data.lib.mlhunt

# METADATA
# title: Istio mTLS not STRICT
# description: >-
#   A PeerAuthentication sets mTLS to PERMISSIVE or DISABLE: workloads it selects accept plaintext
#   connections, so in-cluster traffic to and from the model (features, scores, verdicts) can be
#   read or forged by any pod that can reach them.
# custom:
#   id: MLH-K8S-MTLS-PERMISSIVE
#   severity: high
#   input: document
#   cwe: [CWE-319, CWE-306]
#   stride: [I, T, S]
#   mitigations:
#     - Set spec.mtls.mode STRICT (and every portLevelMtls entry) once all clients have sidecars.
deny contains result if {
	input.kind == "PeerAuthentication"
	mode := input.spec.mtls.mode
	mode in {"PERMISSIVE", "DISABLE"}
	result := {
		"msg": concat("", ["PeerAuthentication ", mlhunt.namespace(input), "/", mlhunt.name(input), " sets mTLS mode ", mode]),
		"field": ["spec", "mtls", "mode"],
	}
}

deny contains result if {
	input.kind == "PeerAuthentication"
	some port, setting in input.spec.portLevelMtls
	setting.mode in {"PERMISSIVE", "DISABLE"}
	result := {
		"msg": concat("", ["PeerAuthentication ", mlhunt.namespace(input), "/", mlhunt.name(input), " sets mTLS mode ", setting.mode, " on port ", port]),
		"field": ["spec", "portLevelMtls", port],
	}
}

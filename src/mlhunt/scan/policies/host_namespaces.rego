package main

import rego.v1

import data.lib.mlhunt

# METADATA
# title: Host namespaces shared with the pod
# description: >-
#   The pod shares the node's network, PID or IPC namespace: it sees other tenants' traffic and
#   processes (including other models' servers) and bypasses network policies.
# custom:
#   id: MLH-K8S-HOST-NAMESPACES
#   severity: high
#   input: document
#   cwe: [CWE-668]
#   stride: [I, E]
#   mitigations:
#     - Remove hostNetwork, hostPID and hostIPC; expose ports through a Service.
deny contains result if {
	some ps in mlhunt.pod_specs(input)
	some key in ["hostNetwork", "hostPID", "hostIPC"]
	ps.spec[key] == true
	result := {
		"msg": concat("", [input.kind, " ", mlhunt.name(input), ": pod sets ", key, ": true"]),
		"field": array.concat(ps.path, [key]),
	}
}

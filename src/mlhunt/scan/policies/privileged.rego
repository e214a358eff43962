package main

import rego.v1

import data.lib.mlhunt

# METADATA
# title: Privileged container
# description: >-
#   A container runs privileged or adds kernel capabilities that amount to it (SYS_ADMIN, ALL).
#   On shared GPU or data nodes this hands the node, its other tenants' models and data, and the
#   node's cloud credentials to anyone who compromises the workload.
# custom:
#   id: MLH-K8S-PRIVILEGED
#   severity: critical
#   input: document
#   cwe: [CWE-250, CWE-269]
#   stride: [E]
#   atlas: [AML.T0011]
#   mitigations:
#     - "Remove privileged: true; GPUs are exposed through the device plugin, not privilege."
#     - Drop ALL capabilities and add back only what the workload needs (usually nothing).
#     - Enforce the Kubernetes restricted Pod Security Standard on ML namespaces.
deny contains result if {
	some c in mlhunt.containers(input)
	c.container.securityContext.privileged == true
	result := {
		"msg": concat("", [input.kind, " ", mlhunt.name(input), ": container '", mlhunt.container_name(c), "' runs privileged"]),
		"field": array.concat(c.path, ["securityContext", "privileged"]),
	}
}

deny contains result if {
	some c in mlhunt.containers(input)
	some cap in c.container.securityContext.capabilities.add
	upper(cap) in {"ALL", "SYS_ADMIN", "CAP_SYS_ADMIN", "SYS_PTRACE", "SYS_MODULE"}
	result := {
		"msg": concat("", [input.kind, " ", mlhunt.name(input), ": container '", mlhunt.container_name(c), "' adds capability ", cap]),
		"field": array.concat(c.path, ["securityContext", "capabilities", "add"]),
	}
}

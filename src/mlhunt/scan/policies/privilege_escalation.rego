package main

import rego.v1

import data.lib.mlhunt

# METADATA
# title: Privilege escalation not disabled
# description: >-
#   The container does not set allowPrivilegeEscalation: false, so a setuid binary in the image
#   (or a kernel bug) can give a compromised model server more privileges than it started with.
# custom:
#   id: MLH-K8S-PRIV-ESCALATION
#   severity: medium
#   input: document
#   cwe: [CWE-269]
#   stride: [E]
#   mitigations:
#     - Set securityContext.allowPrivilegeEscalation false on every container.
deny contains result if {
	some c in mlhunt.containers(input)
	not mlhunt.runtime_managed(c)
	not c.container.securityContext.allowPrivilegeEscalation == false
	result := {
		"msg": concat("", [input.kind, " ", mlhunt.name(input), ": container '", mlhunt.container_name(c), "' does not set allowPrivilegeEscalation: false"]),
		"field": c.path,
	}
}

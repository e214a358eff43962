package main

import rego.v1

import data.lib.mlhunt

# METADATA
# title: Container may run as root
# description: >-
#   Neither the container nor its pod sets runAsNonRoot: true (or runAsUser is 0). A model server
#   or training job that runs as root turns any deserialisation or dependency exploit into root
#   in the container, one step from the node.
# custom:
#   id: MLH-K8S-RUN-AS-ROOT
#   severity: high
#   input: document
#   cwe: [CWE-250]
#   stride: [E]
#   atlas: [AML.T0011]
#   mitigations:
#     - Set securityContext.runAsNonRoot true and a non-zero runAsUser on the pod (or every container).
#     - Build model-server images with a numeric non-root USER.
deny contains result if {
	some c in mlhunt.containers(input)
	not mlhunt.runtime_managed(c)
	not _non_root(c)
	result := {
		"msg": concat("", [input.kind, " ", mlhunt.name(input), ": container '", mlhunt.container_name(c), "' does not set runAsNonRoot: true"]),
		"field": c.path,
	}
}

deny contains result if {
	some c in mlhunt.containers(input)
	_run_as_user(c) == 0
	result := {
		"msg": concat("", [input.kind, " ", mlhunt.name(input), ": container '", mlhunt.container_name(c), "' runs as UID 0 (root)"]),
		"field": c.path,
	}
}

_non_root(c) if c.container.securityContext.runAsNonRoot == true

_non_root(c) if {
	not _has_container_setting(c)
	c.pod.securityContext.runAsNonRoot == true
}

_has_container_setting(c) if is_boolean(c.container.securityContext.runAsNonRoot)

_run_as_user(c) := c.container.securityContext.runAsUser

_run_as_user(c) := c.pod.securityContext.runAsUser if not c.container.securityContext.runAsUser

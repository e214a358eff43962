package main

import rego.v1

import data.lib.mlhunt

# METADATA
# title: Missing CPU or memory limit
# description: >-
#   A serving or training container has no CPU or no memory limit. On a shared cluster one
#   runaway training job, a Spark shuffle, or a flood of expensive inference requests starves
#   every other workload on the node (noisy-neighbour denial of service).
# custom:
#   id: MLH-K8S-RESOURCE-LIMITS
#   severity: medium
#   input: document
#   cwe: [CWE-770, CWE-400]
#   stride: [D]
#   atlas: [AML.T0029, AML.T0034]
#   mitigations:
#     - Set resources.limits.cpu and resources.limits.memory on every container (Spark, coreLimit and memory on driver and executor).
#     - Add a LimitRange and ResourceQuota to every ML namespace.
deny contains result if {
	some c in mlhunt.containers(input)
	not c.init
	missing := _missing(c)
	result := {
		"msg": concat("", [input.kind, " ", mlhunt.name(input), ": container '", mlhunt.container_name(c), "' has no ", missing, " limit"]),
		"field": c.path,
	}
}

# (The phrase is spelled out: rego-cpp 1.5 quotes built-in results formatted by sprintf.)
_missing(c) := "cpu or memory" if {
	not _has_limit(c, "cpu")
	not _has_limit(c, "memory")
}

_missing(c) := "cpu" if {
	not _has_limit(c, "cpu")
	_has_limit(c, "memory")
}

_missing(c) := "memory" if {
	_has_limit(c, "cpu")
	not _has_limit(c, "memory")
}

_has_limit(c, r) if {
	value := c.container.resources.limits[r]
	value != null
	value != ""
}

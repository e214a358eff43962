package main

import rego.v1

import data.lib.mlhunt

# METADATA
# title: hostPath volume
# description: >-
#   The pod mounts a directory of the node. A hostPath model store or scratch disk is shared with
#   every pod scheduled on that node, escapes the storage's access control and versioning, and a
#   writable one lets a compromised pod plant a model (or a binary) for the next one.
# custom:
#   id: MLH-K8S-HOSTPATH
#   severity: high
#   input: document
#   cwe: [CWE-668, CWE-732]
#   stride: [T, I, E]
#   atlas: [AML.T0010, AML.T0018]
#   owasp_ml: [ML06, ML10]
#   mitigations:
#     - Load models from versioned object storage or a read-only PVC/image volume instead of the node's disk.
#     - Use emptyDir (or a generic ephemeral volume) for scratch and shuffle space.
deny contains result if {
	some v in mlhunt.volumes(input)
	host := v.volume.hostPath
	result := {
		"msg": concat("", [input.kind, " ", mlhunt.name(input), ": volume '", object.get(v.volume, "name", "?"), "' mounts host path '", object.get(host, "path", "?"), "'"]),
		"field": array.concat(v.path, ["hostPath"]),
	}
}

package main

import rego.v1

import data.lib.mlhunt

# METADATA
# title: Credential in a literal environment value
# description: >-
#   An environment variable named like a credential (PASSWORD, TOKEN, SECRET, KEY ...) is set to a
#   literal value in the manifest or read from a ConfigMap. The secret is then in Git, in every
#   rendered manifest, and readable by anyone who can read the workload.
# custom:
#   id: MLH-K8S-LITERAL-SECRET-ENV
#   severity: high
#   input: document
#   cwe: [CWE-798, CWE-312]
#   stride: [I]
#   atlas: [AML.T0055]
#   mitigations:
#     - Read credentials from a Secret (valueFrom.secretKeyRef) or inject them from Vault (vault.hashicorp.com/agent-inject annotations, or the Secrets Store CSI driver).
#     - "Rotate the exposed credential: it is in the repository history."
deny contains result if {
	some c in mlhunt.containers(input)
	some i
	env := object.get(c.container, "env", [])[i]
	mlhunt.literal_secret(env.name, env.value)
	result := {
		"msg": concat("", [input.kind, " ", mlhunt.name(input), ": container '", mlhunt.container_name(c), "' sets ", env.name, " to a literal value"]),
		"field": _env_path(c, i),
	}
}

deny contains result if {
	some c in mlhunt.containers(input)
	some i
	env := object.get(c.container, "env", [])[i]
	mlhunt.secret_name(env.name)
	env.valueFrom.configMapKeyRef
	result := {
		"msg": concat("", [input.kind, " ", mlhunt.name(input), ": container '", mlhunt.container_name(c), "' reads credential ", env.name, " from ConfigMap '", object.get(env.valueFrom.configMapKeyRef, "name", "?"), "'"]),
		"field": _env_path(c, i),
	}
}

# Spark envVars are synthesised into env: point at the driver/executor instead of an index.
_env_path(c, i) := array.concat(c.path, ["env", i]) if input.kind != "SparkApplication"

_env_path(c, _) := c.path if input.kind == "SparkApplication"

package main

import rego.v1

import data.lib.mlhunt

# METADATA
# title: Credential stored in a ConfigMap
# description: >-
#   A ConfigMap holds a password, token or key, or a connection URL with a password in it.
#   ConfigMaps are not secrets: they are readable by far more roles, shown in dashboards and
#   logged by tooling.
# custom:
#   id: MLH-K8S-CONFIGMAP-SECRET
#   severity: high
#   input: document
#   cwe: [CWE-312, CWE-798]
#   stride: [I]
#   atlas: [AML.T0055]
#   mitigations:
#     - Move the value to a Secret (or Vault) and reference it with secretKeyRef / Vault injection.
#     - Rotate the exposed credential.
deny contains result if {
	input.kind == "ConfigMap"
	some key
	value := input.data[key]
	mlhunt.literal_secret(key, value)
	result := {
		"msg": concat("", ["ConfigMap ", mlhunt.name(input), ": key '", key, "' holds a credential in plain text"]),
		"field": ["data", key],
	}
}

deny contains result if {
	input.kind == "ConfigMap"
	some key
	value := input.data[key]
	not mlhunt.literal_secret(key, value)
	regex.match(mlhunt.credential_url_pattern, value)
	result := {
		"msg": concat("", ["ConfigMap ", mlhunt.name(input), ": key '", key, "' holds a URL with an embedded password"]),
		"field": ["data", key],
	}
}

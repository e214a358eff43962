package main

import rego.v1

import data.lib.mlhunt

# METADATA
# title: Istio AuthorizationPolicy allows any caller
# description: >-
#   An ALLOW AuthorizationPolicy has a rule that matches every request (an empty rule, a rule with
#   no 'from', or a wildcard source). Requests from any workload, namespace or unauthenticated
#   client reach the model: the policy documents access control without providing it.
# custom:
#   id: MLH-K8S-AUTHZ-ALLOW-ALL
#   severity: high
#   input: document
#   cwe: [CWE-862, CWE-284]
#   stride: [S, E, I]
#   atlas: [AML.T0040, AML.T0024]
#   owasp_ml: [ML05]
#   mitigations:
#     - List the callers that may reach the model in rules[].from[].source.principals (SPIFFE ids of their service accounts) or requestPrincipals.
#     - Keep a namespace-wide deny-by-default policy (an ALLOW policy with no rules) and add narrow ALLOW rules.
deny contains result if {
	input.kind == "AuthorizationPolicy"
	_allow_action
	some i
	rule := input.spec.rules[i]
	reason := _open(rule)
	result := {
		"msg": concat("", ["AuthorizationPolicy ", mlhunt.name(input), ": rule ", format_int(i, 10), " ", reason]),
		"field": ["spec", "rules", i],
	}
}

_allow_action if not input.spec.action

_allow_action if input.spec.action == "ALLOW"

_open(rule) := "is empty and allows every request" if count(rule) == 0

_open(rule) := "has no 'from' and allows any source" if {
	count(rule) > 0
	not rule.from
}

# A wildcard source. (A separate rule, not a third _open definition: a function may return
# only one value per input in OPA, and a rule can hold several wildcards.)
deny contains result if {
	input.kind == "AuthorizationPolicy"
	_allow_action
	some i
	rule := input.spec.rules[i]
	some f in rule.from
	some field in ["principals", "namespaces", "requestPrincipals", "ipBlocks", "remoteIpBlocks"]
	some value in object.get(f.source, field, [])
	value in {"*", "0.0.0.0/0", "::/0"}
	result := {
		"msg": concat("", ["AuthorizationPolicy ", mlhunt.name(input), ": rule ", format_int(i, 10), " allows any ", field, " ('", value, "')"]),
		"field": ["spec", "rules", i],
	}
}

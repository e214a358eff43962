package main

import rego.v1

import data.lib.mlhunt

# METADATA
# title: Model API behind a public LoadBalancer
# description: >-
#   A Service of type LoadBalancer in front of a model API gets an internet-facing address with
#   no source restriction. The model is then reachable by anyone, outside the API gateway, WAF,
#   authentication and rate limits that normally stand between attackers and model extraction,
#   membership inference or adversarial probing.
# custom:
#   id: MLH-K8S-PUBLIC-LOADBALANCER
#   severity: high
#   input: document
#   cwe: [CWE-284, CWE-668]
#   stride: [I, D, S]
#   atlas: [AML.T0040, AML.T0024]
#   owasp_ml: [ML05]
#   mitigations:
#     - Use ClusterIP and publish the model through the authenticated, rate-limited gateway (Istio/KServe ingress, API gateway).
#     - If a load balancer is required, make it internal (e.g. service.beta.kubernetes.io/aws-load-balancer-internal) or set loadBalancerSourceRanges.
deny contains result if {
	input.kind == "Service"
	input.spec.type == "LoadBalancer"
	_model_api
	not _internal
	not _restricted
	result := {
		"msg": concat("", ["Service ", mlhunt.name(input), " exposes a model API through a public LoadBalancer with no source restriction"]),
		"field": ["spec", "type"],
	}
}

_model_api_pattern := `(predict|inference|infer|model|serving|scoring|kserve|seldon|torchserve|triton|mlserver)`

_model_api if regex.match(_model_api_pattern, lower(mlhunt.name(input)))

_model_api if {
	some k, v in object.get(input.spec, "selector", {})
	regex.match(_model_api_pattern, lower(concat("=", [k, v])))
}

_model_api if {
	some k, v in object.get(input.metadata, "labels", {})
	regex.match(_model_api_pattern, lower(concat("=", [k, v])))
}

_internal_annotations := {
	"service.beta.kubernetes.io/aws-load-balancer-internal": {"true", "0.0.0.0/0"},
	"service.beta.kubernetes.io/aws-load-balancer-scheme": {"internal"},
	"service.beta.kubernetes.io/azure-load-balancer-internal": {"true"},
	"networking.gke.io/load-balancer-type": {"Internal"},
	"cloud.google.com/load-balancer-type": {"Internal", "internal"},
	"service.beta.kubernetes.io/oci-load-balancer-internal": {"true"},
	"service.kubernetes.io/ibm-load-balancer-cloud-provider-ip-type": {"private"},
}

_internal if {
	some k, allowed in _internal_annotations
	value := input.metadata.annotations[k]
	allowed[value]
}

_restricted if {
	ranges := input.spec.loadBalancerSourceRanges
	count(ranges) > 0
	not _open_range(ranges)
}

_open_range(ranges) if {
	some r in ranges
	r in {"0.0.0.0/0", "::/0"}
}

package main

import rego.v1

import data.lib.mlhunt

# METADATA
# title: Container image not pinned by digest
# description: >-
#   A serving or training container runs an image referenced by a mutable tag (or no tag, i.e.
#   latest). Whoever can push to the registry, or a registry mix-up, changes the code that loads
#   and serves the model without any change to the manifest.
# custom:
#   id: MLH-K8S-IMAGE-DIGEST
#   severity: medium
#   input: document
#   cwe: [CWE-494, CWE-829]
#   stride: [T]
#   atlas: [AML.T0010]
#   owasp_ml: [ML06]
#   mitigations:
#     - Reference every image as registry/repository@sha256:<digest> (tags may stay for humans, e.g. repo:1.4.2@sha256:...).
#     - Enforce digests and signatures at admission (Kyverno verifyImages, Gatekeeper, cosign policy-controller).
deny contains result if {
	some c in mlhunt.containers(input)
	image := object.get(c.container, "image", "")
	image != ""
	not contains(image, "@sha256:")
	result := {
		"msg": concat("", [input.kind, " ", mlhunt.name(input), ": container '", mlhunt.container_name(c), "' image '", image, "' is not pinned by digest"]),
		"field": array.concat(c.path, ["image"]),
	}
}

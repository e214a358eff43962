package main

import rego.v1

import data.lib.mlhunt

# METADATA
# title: Model storage URI not versioned or pinned
# description: >-
#   The model server loads its weights from a mutable location (storageUri, modelUri, or a
#   MODEL_URI-style environment variable): a 'latest' path or tag, a
#   registry stage alias, or a bucket prefix with no version in it. Anyone who can write there
#   (or a mistaken upload) silently replaces the production model, including with a poisoned or
#   backdoored one, and nobody can tell which model answered a given request.
# custom:
#   id: MLH-K8S-MODEL-URI-UNPINNED
#   severity: high
#   input: document
#   cwe: [CWE-494, CWE-345]
#   stride: [T, R]
#   atlas: [AML.T0010, AML.T0018]
#   owasp_ml: [ML06, ML10]
#   mitigations:
#     - Point storageUri/modelUri at an immutable, versioned location (e.g. s3://models/credit/v12/, models:/credit/12, oci://registry/model@sha256:...).
#     - Enable object versioning or object lock on the model bucket and verify a model signature or hash before serving.
deny contains result if {
	some u in _uris
	reason := _unpinned(u.uri)
	result := {
		"msg": concat("", [input.kind, " ", mlhunt.name(input), ": model URI '", u.uri, "' ", reason]),
		"field": u.path,
	}
}

_uri_keys := {"storageUri", "modelUri"}

_uris contains {"path": path, "uri": value} if {
	input.kind in {"InferenceService", "SeldonDeployment", "TrainedModel", "InferenceGraph"}
	walk(input.spec, [p, value])
	is_string(value)
	count(p) > 0
	_uri_keys[p[count(p) - 1]]
	path := array.concat(["spec"], p)
}

_uris contains {"path": path, "uri": value} if {
	input.kind == "InferenceService"
	walk(input.spec, [p, value])
	is_string(value)
	count(p) > 1
	p[count(p) - 2] == "storageUris"
	path := array.concat(["spec"], p)
}

# Plain Deployments and Jobs that download their model name it in the environment.
_uris contains {"path": array.concat(c.path, ["env", i, "value"]), "uri": env.value} if {
	some c in mlhunt.containers(input)
	some i
	env := object.get(c.container, "env", [])[i]
	is_string(env.name)
	regex.match(`^(model|storage|artifact|checkpoint)[_-]?(uri|url|path|location)$`, lower(env.name))
	is_string(env.value)
	contains(env.value, "://")
}

_unpinned(uri) := "uses 'latest'" if {
	_latest(uri)
}

_unpinned(uri) := "is an MLflow stage or alias, not a model version" if {
	not _latest(uri)
	startswith(uri, "models:/")
	not regex.match(`^models:/[^/@]+/[0-9]+/?$`, uri)
}

_unpinned(uri) := "is an OCI reference without a digest" if {
	not _latest(uri)
	startswith(uri, "oci://")
	not contains(uri, "@sha256:")
}

_unpinned(uri) := "has no revision pinned" if {
	not _latest(uri)
	startswith(uri, "hf://")
	not regex.match(`:[0-9a-f]{7,40}$`, uri)
}

_unpinned(uri) := "is an unversioned storage path" if {
	not _latest(uri)
	not startswith(uri, "models:/")
	not startswith(uri, "oci://")
	not startswith(uri, "hf://")
	not _versioned_path(uri)
}

# A version or content hash somewhere in the path: /v12/, /12/, /1.4.0/, model-v3.joblib,
# ?versionId=..., a sha256 or a long hex digest.
_versioned_path(uri) if regex.match(`(/v?[0-9]+(\.[0-9]+)*(/|$)|[-_.]v[0-9]+([-_.]|/|$)|[?&]versionid=|sha256[:=/-]|/[0-9a-f]{12,64}(/|$))`, lower(uri))

_latest(uri) if regex.match(`(^|[/:@=_.-])latest($|[/:@?._-])`, lower(uri))

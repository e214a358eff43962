# Shared helpers for the mlhunt manifest policies (not a policy itself: it defines no deny rule).
#
# Every helper takes the resource as an argument so the same code serves per-document policies
# (`input` is one Kubernetes object, conftest's default) and combined policies (`input` is a list
# of {"path", "contents"} entries, conftest's --combine).
#
# Locations are returned as paths (arrays of keys and indices) so that mlhunt can point at the
# exact line of the offending field; conftest prints only the message.
package lib.mlhunt

import rego.v1

workload_kinds := {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "Notebook"}

framework_keys := {
	"sklearn", "xgboost", "lightgbm", "pytorch", "tensorflow", "onnx", "triton",
	"pmml", "paddle", "huggingface", "model",
}

kserve_components := {"predictor", "transformer", "explainer"}

name(obj) := object.get(obj, ["metadata", "name"], "<unnamed>")

namespace(obj) := object.get(obj, ["metadata", "namespace"], "default")

# ---------------------------------------------------------------------------------------------
# Pod specs: {"path": [...], "spec": {...}} for every pod-like spec a resource carries.
# ---------------------------------------------------------------------------------------------

pod_specs(obj) := {{"path": ["spec"], "spec": obj.spec} | obj.kind == "Pod"} | _template_specs(obj)

_template_specs(obj) := {{"path": ["spec", "template", "spec"], "spec": s} |
	workload_kinds[obj.kind]
	s := obj.spec.template.spec
} | {{"path": ["spec", "jobTemplate", "spec", "template", "spec"], "spec": s} |
	obj.kind == "CronJob"
	s := obj.spec.jobTemplate.spec.template.spec
} | {{"path": ["spec", key, role, "template", "spec"], "spec": s} |
	# Kubeflow Training Operator: PyTorchJob, TFJob, MPIJob, XGBoostJob, PaddleJob ...
	some key
	replicas := obj.spec[key]
	endswith(key, "ReplicaSpecs")
	some role
	replica := replicas[role]
	s := replica.template.spec
} | {{"path": ["spec", component], "spec": s} |
	# KServe: the predictor (and transformer, explainer) is a pod spec with extra fields.
	obj.kind == "InferenceService"
	some component in kserve_components
	s := obj.spec[component]
} | {{"path": ["spec", "predictors", i, "componentSpecs", j, "spec"], "spec": s} |
	obj.kind == "SeldonDeployment"
	some i, j
	cs := obj.spec.predictors[i].componentSpecs[j]
	s := cs.spec
} | {{"path": ["spec", "templates", i], "spec": pod} |
	# Argo Workflows (what Kubeflow Pipelines runs): each template is a pod.
	_argo_kinds[obj.kind]
	some i
	t := _argo_templates(obj)[i]
	_argo_container_key(t)
	pod := {
		"securityContext": object.get(t, "securityContext", object.get(_argo_spec(obj), "securityContext", {})),
		"volumes": array.concat(object.get(_argo_spec(obj), "volumes", []), object.get(t, "volumes", [])),
	}
} | {{"path": ["spec", role], "spec": pod} |
	# Spark Operator: driver and executor carry pod-level settings themselves.
	obj.kind == "SparkApplication"
	some role in ["driver", "executor"]
	d := object.get(obj.spec, role, {})
	pod := {
		"securityContext": object.get(d, "podSecurityContext", {}),
		"volumes": object.get(obj.spec, "volumes", []),
		"hostNetwork": object.get(d, "hostNetwork", false),
	}
}

_argo_kinds := {"Workflow", "WorkflowTemplate", "ClusterWorkflowTemplate", "CronWorkflow"}

_argo_spec(obj) := obj.spec.workflowSpec if obj.kind == "CronWorkflow"

_argo_spec(obj) := obj.spec if obj.kind != "CronWorkflow"

_argo_templates(obj) := object.get(_argo_spec(obj), "templates", [])

_argo_container_key(t) := "container" if t.container

_argo_container_key(t) := "script" if {
	not t.container
	t.script
}

# ---------------------------------------------------------------------------------------------
# Containers: {"path", "container", "pod", "pod_path", "init"} with the container normalised
# enough for the policies (image, securityContext, resources.limits, env).
# ---------------------------------------------------------------------------------------------

containers(obj) := _pod_containers(obj) | _kserve_model_containers(obj) | _argo_containers(obj) | _spark_containers(obj)

_pod_containers(obj) := {c |
	some ps in pod_specs(obj)
	not _argo_kinds[obj.kind]
	obj.kind != "SparkApplication"
	some key in ["containers", "initContainers"]
	some i
	ctr := object.get(ps.spec, key, [])[i]
	c := {
		"path": array.concat(ps.path, [key, i]),
		"container": ctr,
		"pod": ps.spec,
		"pod_path": ps.path,
		"init": key == "initContainers",
	}
}

# KServe's model / framework sections are containers (image supplied by the serving runtime).
_kserve_model_containers(obj) := {c |
	obj.kind == "InferenceService"
	some component in kserve_components
	spec := obj.spec[component]
	some key in framework_keys
	ctr := spec[key]
	is_object(ctr)
	c := {
		"path": ["spec", component, key],
		"container": ctr,
		"pod": spec,
		"pod_path": ["spec", component],
		"init": false,
	}
}

_argo_containers(obj) := {c |
	_argo_kinds[obj.kind]
	some i
	t := _argo_templates(obj)[i]
	key := _argo_container_key(t)
	some ps in pod_specs(obj)
	ps.path == ["spec", "templates", i]
	c := {
		"path": ["spec", "templates", i, key],
		"container": t[key],
		"pod": ps.spec,
		"pod_path": ps.path,
		"init": false,
	}
}

_spark_containers(obj) := {c |
	obj.kind == "SparkApplication"
	some ps in pod_specs(obj)
	role := ps.path[1]
	d := object.get(obj.spec, role, {})
	limits := {k: v |
		some k
		src := {"cpu": "coreLimit", "memory": "memory"}[k]
		v := d[src]
	}
	env_vars := [{"name": k, "value": v} | some k; v := object.get(d, "envVars", {})[k]]
	ctr := {
		"name": role,
		"image": object.get(d, "image", object.get(obj.spec, "image", "")),
		"securityContext": object.get(d, "securityContext", {}),
		"resources": {"limits": limits},
		"env": array.concat(object.get(d, "env", []), env_vars),
	}
	c := {
		"path": ["spec", role],
		"container": ctr,
		"pod": ps.spec,
		"pod_path": ps.path,
		"init": false,
	}
}

container_name(c) := object.get(c.container, "name", c.path[count(c.path) - 1])

# ---------------------------------------------------------------------------------------------
# Model serving: which resources serve a model, and the pod labels they run with.
# ---------------------------------------------------------------------------------------------

serving_components := {"inference", "predictor", "model-server", "model-serving", "serving"}

serving_image_pattern := `(torchserve|tritonserver|tensorflow/serving|tfserving|seldon|mlserver|kserve|bentoml|text-generation-inference|vllm)`

is_model_server(obj) if obj.kind in {"InferenceService", "SeldonDeployment"}

is_model_server(obj) if {
	workload_kinds[obj.kind]
	labels := object.union(object.get(obj, ["metadata", "labels"], {}), pod_labels(obj))
	serving_components[labels["app.kubernetes.io/component"]]
}

is_model_server(obj) if {
	workload_kinds[obj.kind]
	some c in containers(obj)
	regex.match(serving_image_pattern, object.get(c.container, "image", ""))
}

is_model_server(obj) if {
	obj.kind == "Pod"
	labels := object.get(obj, ["metadata", "labels"], {})
	serving_components[labels["app.kubernetes.io/component"]]
}

pod_labels(obj) := object.get(obj, ["spec", "template", "metadata", "labels"], {}) if workload_kinds[obj.kind]

pod_labels(obj) := object.get(obj, ["metadata", "labels"], {}) if obj.kind == "Pod"

pod_labels(obj) := object.union(object.get(obj, ["metadata", "labels"], {}), {
	"serving.kserve.io/inferenceservice": name(obj),
	"component": "predictor",
}) if obj.kind == "InferenceService"

pod_labels(obj) := object.union(object.get(obj, ["metadata", "labels"], {}), {
	"seldon-deployment-id": name(obj),
}) if obj.kind == "SeldonDeployment"

# ---------------------------------------------------------------------------------------------
# Combined input (conftest --combine): [{"path": file, "contents": doc-or-list-of-docs}].
# resources is the flat set of {"path", "index", "resource"}.
# ---------------------------------------------------------------------------------------------

resources := {r |
	is_array(input)
	some entry in input
	is_array(entry.contents)
	some i
	doc := entry.contents[i]
	is_object(doc)
	r := {"path": entry.path, "index": i, "resource": doc}
} | {r |
	is_array(input)
	some entry in input
	is_object(entry.contents)
	r := {"path": entry.path, "index": 0, "resource": entry.contents}
}

istio_root_namespace := "istio-system"

# ---------------------------------------------------------------------------------------------
# Volumes: {"path", "volume"} for every volume a resource's pods mount.
# ---------------------------------------------------------------------------------------------

volumes(obj) := {v |
	some ps in pod_specs(obj)
	not _argo_kinds[obj.kind]
	obj.kind != "SparkApplication"
	some i
	vol := object.get(ps.spec, "volumes", [])[i]
	v := {"path": array.concat(ps.path, ["volumes", i]), "volume": vol}
} | {v |
	_argo_kinds[obj.kind]
	some i
	vol := object.get(_argo_spec(obj), "volumes", [])[i]
	v := {"path": ["spec", "volumes", i], "volume": vol}
} | {v |
	_argo_kinds[obj.kind]
	some i, j
	vol := _argo_templates(obj)[i].volumes[j]
	v := {"path": ["spec", "templates", i, "volumes", j], "volume": vol}
} | {v |
	obj.kind == "SparkApplication"
	some i
	vol := object.get(obj.spec, "volumes", [])[i]
	v := {"path": ["spec", "volumes", i], "volume": vol}
}

# A KServe model/framework section without its own image runs the serving runtime's container,
# whose security context comes from the ServingRuntime: only explicit settings are judged.
runtime_managed(c) if {
	c.path[0] == "spec"
	kserve_components[c.path[1]]
	framework_keys[c.path[2]]
	count(c.path) == 3
	not c.container.image
}

# A name that holds a credential (matched lower-cased: rego-cpp's regex has no (?i)).
secret_name(n) if {
	is_string(n)
	regex.match(secret_name_pattern, lower(n))
	not regex.match(reference_name_pattern, lower(n))
}

# Names of environment variables and ConfigMap keys that hold credentials.
secret_name_pattern := `(passw(or)?d|passwd|pwd|token|secret|api[_-]?key|access[_-]?key|private[_-]?key|(^|[_-])key($|[_-])|credential|auth)`

# ...unless the name says the value is a reference to the secret, not the secret.
reference_name_pattern := `([_-](file|path|dir|name|ref|url|uri|endpoint|header|mount|secret_name)$)`

# Values that point at a secret store instead of holding the secret.
reference_value_pattern := `^(\$\(|\$\{|vault:|/vault/secrets/|/var/run/secrets/|/etc/secrets/|arn:aws:secretsmanager:|projects/[^/]+/secrets/|secretref:|ref\+)`

literal_secret(name_, value) if {
	secret_name(name_)
	is_string(value)
	value != ""
	not regex.match(reference_value_pattern, value)
}

# URLs that carry a password (scheme://user:password@host).
credential_url_pattern := `[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]*:[^/\s@]+@`

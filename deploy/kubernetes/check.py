"""Checks deploy/kubernetes/switchyard.yaml for validity without a cluster: every document
parses, names the API fields Kubernetes requires, and refers to what the file defines
(selectors match the pod labels, probes name a container port, the Secret and ConfigMap
mounted exist). Prints the ConfigMap's switchyard.toml, which the Rust test that runs this
(crates/switchyard/tests/deploy_manifest.rs) validates as a Switchyard config."""

import sys

import yaml


def fail(message):
    print(f"deploy/kubernetes/switchyard.yaml: {message}", file=sys.stderr)
    sys.exit(1)


def main(path):
    with open(path, encoding="utf-8") as f:
        docs = [d for d in yaml.safe_load_all(f) if d is not None]
    by_kind = {}
    for d in docs:
        for field in ("apiVersion", "kind", "metadata"):
            if field not in d:
                fail(f"a document has no {field}")
        if "name" not in d["metadata"]:
            fail(f"a {d['kind']} has no metadata.name")
        by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
    for kind in ("Secret", "ConfigMap", "Deployment", "Service", "PodDisruptionBudget"):
        if kind not in by_kind:
            fail(f"no {kind}")
    (deployment,) = by_kind["Deployment"].values()
    pod = deployment["spec"]["template"]
    labels = pod["metadata"]["labels"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    if any(labels.get(k) != v for k, v in selector.items()):
        fail("the Deployment's selector does not match its pod labels")
    for service in by_kind["Service"].values():
        if any(labels.get(k) != v for k, v in service["spec"]["selector"].items()):
            fail(f"Service {service['metadata']['name']} selects no pod of the Deployment")
    for pdb in by_kind["PodDisruptionBudget"].values():
        if any(labels.get(k) != v for k, v in pdb["spec"]["selector"]["matchLabels"].items()):
            fail("the PodDisruptionBudget selects no pod of the Deployment")
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    for container in pod["spec"]["containers"]:
        ports = {p["name"] for p in container.get("ports", [])}
        for probe in ("readinessProbe", "livenessProbe"):
            port = container[probe]["httpGet"]["port"]
            if port not in ports:
                fail(f"{probe} names port {port!r}, which the container does not declare")
        for source in container.get("envFrom", []):
            name = source["secretRef"]["name"]
            if name not in by_kind["Secret"]:
                fail(f"envFrom names Secret {name!r}, which the file does not define")
        for mount in container.get("volumeMounts", []):
            if mount["name"] not in volumes:
                fail(f"volume mount {mount['name']!r} has no volume")
    for volume in volumes.values():
        if "configMap" in volume and volume["configMap"]["name"] not in by_kind["ConfigMap"]:
            fail(f"volume {volume['name']!r} names a ConfigMap the file does not define")
    secret = next(iter(by_kind["Secret"].values()))
    for var in ("SWITCHYARD_STORAGE_URL", "SWITCHYARD_REDIS_URL"):
        if var not in secret.get("stringData", {}):
            fail(f"the Secret does not set {var}")
    config = next(iter(by_kind["ConfigMap"].values()))["data"]["switchyard.toml"]
    sys.stdout.write(config)


if __name__ == "__main__":
    main(sys.argv[1])

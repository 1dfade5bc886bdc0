#!/usr/bin/python3
"""Checks deploy/kubernetes/ without a cluster.

- every YAML document parses and is the Kubernetes object it claims to be: deserialized into
  the models of Debian's python3-kubernetes (V1Namespace, V1ConfigMap, V1DaemonSet), with
  required fields checked by the models and unknown fields refused here (the models' own
  deserializer drops them silently, as a typo'd field would be dropped by a lenient client);
- kustomization.yaml lists exactly the other manifests;
- the ConfigMap's meshlane.toml parses (tomllib), names only tables and keys that
  config/meshlane.toml documents, and is accepted by meshlaned's own config loader
  (`meshlaned install-cni --config FILE` against an empty conf dir: exit 3 "no primary CNI
  config yet" means the config loaded; nothing is written);
- every hostPath the DaemonSet mounts is a path the daemon or install-cni uses (from the
  ConfigMap's config, or their defaults), mounted at the same path where the config names it,
  and the commands agree with the config (socket of the readiness probe, --config path, CNI
  dirs of install-cni).

Usage: check_manifests.py --repo DIR [--meshlaned build/bin/meshlaned]
Runs with Debian's /usr/bin/python3 (python3-yaml, python3-kubernetes: scripts/deps.sh).
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import tomllib

import yaml
from kubernetes import client

MODELS = {
    ("v1", "Namespace"): "V1Namespace",
    ("v1", "ConfigMap"): "V1ConfigMap",
    ("apps/v1", "DaemonSet"): "V1DaemonSet",
}
PRIMITIVES = {"str": str, "int": int, "bool": bool, "float": (int, float)}
KUSTOMIZATION_KEYS = {"apiVersion", "kind", "namespace", "resources", "images", "labels",
                      "commonLabels", "configMapGenerator", "patches"}

failures = []


def fail(message):
    failures.append(message)
    print("FAIL: " + message)


def model_class(type_name):
    return getattr(client.models, type_name)


def check_fields(data, type_name, where):
    """Refuses keys the model does not define, recursively (list[...], dict(str, ...))."""
    if data is None:
        return
    match = re.fullmatch(r"list\[(.+)\]", type_name)
    if match:
        if not isinstance(data, list):
            fail(f"{where}: expected a list, got {type(data).__name__}")
            return
        for index, item in enumerate(data):
            check_fields(item, match.group(1), f"{where}[{index}]")
        return
    match = re.fullmatch(r"dict\(([^,]+), (.+)\)", type_name)
    if match:
        if not isinstance(data, dict):
            fail(f"{where}: expected a map, got {type(data).__name__}")
            return
        for key, value in data.items():
            check_fields(value, match.group(2), f"{where}.{key}")
        return
    primitive = PRIMITIVES.get(type_name)
    if primitive is not None:
        # The deserializer would coerce ("yes" -> True, 1 -> "1"); YAML typos show up here.
        if not isinstance(data, primitive) or (primitive is int and isinstance(data, bool)):
            fail(f"{where}: expected {type_name}, got {type(data).__name__} {data!r}")
        return
    if not hasattr(client.models, type_name):
        return  # object, datetime: left to the deserializer
    cls = model_class(type_name)
    if not isinstance(data, dict):
        fail(f"{where}: expected an object ({type_name}), got {type(data).__name__}")
        return
    json_to_attr = {json_key: attr for attr, json_key in cls.attribute_map.items()}
    for key, value in data.items():
        if key not in json_to_attr:
            fail(f"{where}: unknown field {key!r} in {type_name}")
            continue
        check_fields(value, cls.openapi_types[json_to_attr[key]], f"{where}.{key}")


class _Response:  # what ApiClient.deserialize reads
    def __init__(self, obj):
        self.data = json.dumps(obj)


def deserialize(obj, type_name, where):
    check_fields(obj, type_name, where)
    try:
        return client.ApiClient().deserialize(_Response(obj), type_name)
    except (ValueError, TypeError) as error:
        fail(f"{where}: not a valid {type_name}: {error}")
        return None


def toml_keys(document):
    """{table: set(keys)} of the plain tables (arrays of tables such as [[workload]] aside)."""
    return {table: set(values) for table, values in document.items() if isinstance(values, dict)}


def load_manifests(kube_dir):
    objects = []
    for name in sorted(os.listdir(kube_dir)):
        if not name.endswith((".yaml", ".yml")) or name == "kustomization.yaml":
            continue
        with open(os.path.join(kube_dir, name), encoding="utf-8") as stream:
            try:
                documents = [d for d in yaml.safe_load_all(stream) if d is not None]
            except yaml.YAMLError as error:
                fail(f"{name}: not YAML: {error}")
                continue
        if not documents:
            fail(f"{name}: no object")
        for index, document in enumerate(documents):
            where = f"{name}#{index}"
            key = (document.get("apiVersion"), document.get("kind"))
            if key not in MODELS:
                fail(f"{where}: {key} is not one of the kinds this check knows: {sorted(MODELS)}")
                continue
            model = deserialize(document, MODELS[key], where)
            if model is not None:
                objects.append((name, document, model))
    return objects


def check_kustomization(kube_dir):
    with open(os.path.join(kube_dir, "kustomization.yaml"), encoding="utf-8") as stream:
        kustomization = yaml.safe_load(stream)
    unknown = set(kustomization) - KUSTOMIZATION_KEYS
    if unknown:
        fail(f"kustomization.yaml: unexpected keys {sorted(unknown)}")
    if kustomization.get("kind") != "Kustomization":
        fail("kustomization.yaml: kind is not Kustomization")
    listed = sorted(kustomization.get("resources", []))
    present = sorted(n for n in os.listdir(kube_dir)
                     if n.endswith((".yaml", ".yml")) and n != "kustomization.yaml")
    if listed != present:
        fail(f"kustomization.yaml: resources {listed} != the manifests in the directory {present}")
    return kustomization


def option(command, name):
    """The value of --name=VALUE or --name VALUE in a command list, or None."""
    for index, word in enumerate(command):
        if word.startswith(f"--{name}="):
            return word.split("=", 1)[1]
        if word == f"--{name}" and index + 1 < len(command):
            return command[index + 1]
    return None


def check_config(text, repo, meshlaned):
    try:
        config = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        fail(f"configmap.yaml: meshlane.toml does not parse: {error}")
        return {}
    with open(os.path.join(repo, "config", "meshlane.toml"), "rb") as stream:
        documented = toml_keys(tomllib.load(stream))
    for table, keys in toml_keys(config).items():
        if table not in documented:
            fail(f"configmap.yaml: meshlane.toml: table [{table}] is not in config/meshlane.toml")
            continue
        for key in sorted(keys - documented[table]):
            fail(f"configmap.yaml: meshlane.toml: [{table}] {key} is not in config/meshlane.toml")
    if meshlaned:
        with tempfile.TemporaryDirectory(prefix="meshlane-manifests-") as scratch:
            path = os.path.join(scratch, "meshlane.toml")
            with open(path, "w", encoding="utf-8") as stream:
                stream.write(text)
            run = subprocess.run(
                [meshlaned, "install-cni", "--config", path, "--plugin", path,
                 "--cni-bin-dir", os.path.join(scratch, "bin"),
                 "--cni-conf-dir", os.path.join(scratch, "net.d")],
                capture_output=True, text=True, timeout=30, check=False)
            if run.returncode != 3 or "no primary CNI config yet" not in run.stderr:
                fail(f"configmap.yaml: meshlaned does not accept meshlane.toml "
                     f"(install-cni exit {run.returncode}): {run.stderr.strip()}")
            if os.path.exists(os.path.join(scratch, "bin")):
                fail("install-cni wrote into the bin dir without a primary config")
    with open(os.path.join(repo, "config", "meshlane.toml"), "rb") as stream:
        defaults = tomllib.load(stream)
    merged = {table: dict(values) for table, values in defaults.items() if isinstance(values, dict)}
    for table, values in config.items():
        if isinstance(values, dict):
            merged.setdefault(table, {}).update(values)
    return merged


def check_daemonset(document, config):
    spec = document["spec"]["template"]["spec"]
    daemon = config.get("daemon", {})
    socket = daemon["socket"]
    for key, expected in (("hostNetwork", True), ("hostPID", True),
                          ("priorityClassName", "system-node-critical")):
        if spec.get(key) != expected:
            fail(f"daemonset.yaml: {key} is {spec.get(key)!r}, expected {expected!r}")
    if {"operator": "Exists"} not in spec.get("tolerations", []):
        fail("daemonset.yaml: does not tolerate every taint (- operator: Exists)")
    strategy = document["spec"].get("updateStrategy", {})
    if strategy.get("type") != "RollingUpdate" or \
            strategy.get("rollingUpdate", {}).get("maxUnavailable") != 1:
        fail("daemonset.yaml: updateStrategy is not RollingUpdate with maxUnavailable 1")

    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    config_volume = next((n for n, v in volumes.items() if "configMap" in v), None)
    # What the daemon and install-cni use on the host, each at the path the config names.
    used = {
        "/sys/fs/bpf": "daemon.bpffs_dir " + daemon["bpffs_dir"] + " is on the host's bpffs",
        "/sys/fs/cgroup": "daemon.cgroup \"" + daemon["cgroup"] + "\" is below the cgroup v2 root",
        os.path.dirname(socket): "daemon.socket " + socket,
        daemon["state_dir"]: "daemon.state_dir",
        "/var/run/netns": "pods' netns files (CNI_NETNS, meshlanectl's default prefix)",
        "/opt/cni/bin": "install-cni --cni-bin-dir",
        "/etc/cni/net.d": "install-cni --cni-conf-dir, kubernetes.cni_conf_dir",
        "/var/lib/cni": "kubernetes.cni_cache_dir (the runtime's CNI result cache)",
    }
    kubernetes = config.get("kubernetes", {})
    # Where the daemon container must see each host path: the config's name for it.
    daemon_paths = {"/var/lib/cni": kubernetes.get("cni_cache_dir", ""),
                    "/etc/cni/net.d": kubernetes.get("cni_conf_dir", "")}
    if daemon_paths["/var/lib/cni"] != "/var/lib/cni":
        fail("configmap.yaml: kubernetes.cni_cache_dir is not /var/lib/cni: without it a restarted "
             f"daemon misses the pods added while it was down (got {daemon_paths['/var/lib/cni']!r})")
    if not daemon["bpffs_dir"].startswith("/sys/fs/bpf/"):
        fail(f"daemonset.yaml: daemon.bpffs_dir {daemon['bpffs_dir']} is not under /sys/fs/bpf")
    host_paths = {}
    for name, volume in volumes.items():
        if "hostPath" in volume:
            path = volume["hostPath"]["path"]
            host_paths[name] = path
            if path not in used:
                fail(f"daemonset.yaml: hostPath {path} (volume {name}) is not a path meshlane "
                     f"uses: {sorted(used)}")

    containers = {c["name"]: c for c in spec.get("containers", []) + spec.get("initContainers", [])}
    daemon_container = next((c for c in spec.get("containers", [])
                             if c["command"][0].endswith("/meshlaned") and
                             "install-cni" not in c["command"]), None)
    if daemon_container is None:
        fail("daemonset.yaml: no container runs the daemon (meshlaned without install-cni)")
        return
    for container in containers.values():
        command = container.get("command", [])
        mounts = {m["name"]: m for m in container.get("volumeMounts", [])}
        for name in mounts:
            if name not in volumes:
                fail(f"daemonset.yaml: {container['name']} mounts unknown volume {name}")
        config_path = option(command, "config")
        if config_path is not None:
            mount = mounts.get(config_volume)
            if mount is None or os.path.dirname(config_path) != mount["mountPath"]:
                fail(f"daemonset.yaml: {container['name']}: --config {config_path} is not in the "
                     "ConfigMap's mount")
        if "install-cni" in command:
            for flag, host in (("cni-bin-dir", "/opt/cni/bin"), ("cni-conf-dir", "/etc/cni/net.d")):
                inside = option(command, flag) or host
                volume = next((n for n, p in host_paths.items() if p == host), None)
                if volume not in mounts or mounts[volume]["mountPath"] != inside:
                    fail(f"daemonset.yaml: {container['name']}: --{flag} {inside} is not where "
                         f"{host} is mounted")
    # The daemon sees the host's paths where the config names them.
    mounts = {m["name"]: m for m in daemon_container.get("volumeMounts", [])}
    for name, path in host_paths.items():
        if path == "/opt/cni/bin":
            continue
        inside = daemon_paths.get(path, path)
        if name not in mounts:
            fail(f"daemonset.yaml: the daemon container does not mount {path} ({used[path]})")
        elif mounts[name]["mountPath"] != inside:
            fail(f"daemonset.yaml: the daemon container mounts {path} at "
                 f"{mounts[name]['mountPath']}, but the config names {inside}")
        elif path in daemon_paths and not mounts[name].get("readOnly"):
            fail(f"daemonset.yaml: the daemon container mounts {path} writable; it only reads it")
    if not daemon_container.get("securityContext", {}).get("privileged"):
        fail("daemonset.yaml: the daemon container is not privileged (BPF, cgroup attach, setns)")
    probe = daemon_container.get("readinessProbe", {}).get("exec", {}).get("command", [])
    if not probe or not probe[0].endswith("/meshlanectl") or "status" not in probe:
        fail(f"daemonset.yaml: readinessProbe is not `meshlanectl status`: {probe}")
    elif (option(probe, "socket") or "/run/meshlane/meshlane.sock") != socket:
        fail(f"daemonset.yaml: readinessProbe asks {option(probe, 'socket')}, daemon.socket is "
             f"{socket}")
    # install-cni and its watcher must write the same entry, or they would rewrite it in turn.
    installs = [c["command"] for c in containers.values() if "install-cni" in c.get("command", [])]
    if len(installs) < 2:
        fail("daemonset.yaml: expected the install-cni init step and the install-cni --watch "
             "container")
    for flag in ("failure-policy", "exclude-namespaces", "control-socket", "config"):
        values = {option(command, flag) for command in installs}
        if len(values) > 1:
            fail(f"daemonset.yaml: install-cni commands disagree on --{flag}: {sorted(map(str, values))}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", required=True)
    parser.add_argument("--meshlaned", help="build/bin/meshlaned, to check the config with it")
    args = parser.parse_args()
    kube_dir = os.path.join(args.repo, "deploy", "kubernetes")
    if args.meshlaned and not os.access(args.meshlaned, os.X_OK):
        fail(f"{args.meshlaned} is missing: build meshlaned first")
        args.meshlaned = None

    check_kustomization(kube_dir)
    objects = load_manifests(kube_dir)
    kinds = sorted(document["kind"] for _, document, _ in objects)
    if kinds != ["ConfigMap", "DaemonSet", "Namespace"]:
        fail(f"expected one Namespace, ConfigMap and DaemonSet, found {kinds}")
    namespaces = {d["metadata"]["name"] for _, d, _ in objects if d["kind"] == "Namespace"}
    for name, document, _ in objects:
        if document["kind"] != "Namespace" and document["metadata"].get("namespace") not in namespaces:
            fail(f"{name}: namespace {document['metadata'].get('namespace')} is not created here")

    config = {}
    for name, document, _ in objects:
        if document["kind"] == "ConfigMap":
            if "meshlane.toml" not in document.get("data", {}):
                fail(f"{name}: no meshlane.toml key")
                continue
            config = check_config(document["data"]["meshlane.toml"], args.repo, args.meshlaned)
    for name, document, _ in objects:
        if document["kind"] == "DaemonSet" and config:
            check_daemonset(document, config)
            config_maps = {d["metadata"]["name"] for _, d, _ in objects if d["kind"] == "ConfigMap"}
            for volume in document["spec"]["template"]["spec"].get("volumes", []):
                if "configMap" in volume and volume["configMap"]["name"] not in config_maps:
                    fail(f"{name}: volume {volume['name']} uses ConfigMap "
                         f"{volume['configMap']['name']}, which is not defined here")

    if failures:
        print(f"check_manifests: {len(failures)} problem(s)")
        return 1
    print(f"check_manifests: {len(objects)} objects in {kube_dir} are valid "
          f"({', '.join(kinds)}){'' if args.meshlaned else '; meshlaned not given: config loader not run'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

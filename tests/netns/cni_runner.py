#!/usr/bin/env python3
"""A small CNI runtime for the tests: runs a conflist's plugins the way the spec (SPEC.md,
"Section 4: Plugin Delegation" and "Network configuration list runtime semantics") and libcni
do, on one attachment (container id, netns, ifname).

  ADD    plugins in order; each gets the previous one's result as prevResult; the last result is
         printed and cached as libcni (>= 1.1, containerd and CRI-O) caches it:
         <cache-dir>/results/<network>-<container>-<ifname>, a "cniCacheV1" object holding the
         conflist's bytes (base64), netns, CNI_ARGS pairs, every capability passed, the result.
  DEL    plugins in reverse order, each with the cached result as prevResult (0.4.0 and later);
         the cache entry is removed. A plugin's failure is reported after the others ran.
  CHECK  plugins in order with the cached result as prevResult.
  STATUS plugins in order (1.1.0).
  GC     plugins in order with "cni.dev/valid-attachments" from the cache directory (1.1.0).
  VERSION every plugin's answer, as {"<type>": answer}.

Each plugin's configuration is its conflist entry plus the list's cniVersion and name, and
"runtimeConfig" holding only the capabilities the entry declares ("capabilities": {KEY: true})
that the caller passed with --capability KEY=JSON (what containerd does for
io.kubernetes.cri.pod-annotations). --trace DIR writes each plugin's stdin and stdout.

Exit status: 0 when every plugin succeeded; 1 otherwise, with the failing plugin's error object
on stdout (as the runtime would show it) and its stderr passed through.
"""

import argparse
import base64
import json
import os
import subprocess
import sys


def find_plugin(kind, bin_dirs):
    for directory in bin_dirs:
        path = os.path.join(directory, kind)
        if os.access(path, os.X_OK):
            return path
    sys.exit(f"cni_runner: no plugin {kind!r} in {':'.join(bin_dirs)}")


def plugin_conf(conflist, entry, capabilities):
    conf = dict(entry)
    conf["cniVersion"] = conflist["cniVersion"]
    conf["name"] = conflist["name"]
    runtime = {key: value for key, value in capabilities.items()
               if entry.get("capabilities", {}).get(key) is True}
    if runtime:
        conf["runtimeConfig"] = runtime
    return conf


def invoke(args, command, index, entry, conf):
    env = {
        "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        "CNI_COMMAND": command,
        "CNI_PATH": ":".join(args.bin_dir),
    }
    if command in ("ADD", "DEL", "CHECK"):
        env.update({"CNI_CONTAINERID": args.container_id, "CNI_IFNAME": args.ifname,
                    "CNI_NETNS": args.netns, "CNI_ARGS": args.cni_args})
    stdin = json.dumps(conf)
    proc = subprocess.run([find_plugin(entry["type"], args.bin_dir)], input=stdin, env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    if args.trace:
        base = os.path.join(args.trace, f"{command}-{index}-{entry['type']}")
        with open(base + ".in", "w", encoding="utf-8") as f:
            f.write(stdin)
        with open(base + ".out", "w", encoding="utf-8") as f:
            f.write(proc.stdout)
    sys.stderr.write(proc.stderr)
    return proc


def results_dir(args):
    return os.path.join(args.cache_dir, "results")


def cache_path(args, conflist):
    return os.path.join(results_dir(args), f"{conflist['name']}-{args.container_id}-{args.ifname}")


def cache_entry(args, conflist_bytes, conflist, capabilities, result):
    pairs = [item.split("=", 1) for item in args.cni_args.split(";") if item]
    return {"kind": "cniCacheV1", "containerId": args.container_id,
            "config": base64.b64encode(conflist_bytes).decode("ascii"),
            "ifName": args.ifname, "networkName": conflist["name"], "netns": args.netns,
            "cniArgs": pairs, "capabilityArgs": capabilities, "result": result}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["ADD", "DEL", "CHECK", "STATUS", "GC", "VERSION"])
    parser.add_argument("--conflist", required=True)
    parser.add_argument("--bin-dir", action="append", required=True)
    parser.add_argument("--cache-dir", required=True)
    parser.add_argument("--container-id", default="")
    parser.add_argument("--netns", default="")
    parser.add_argument("--ifname", default="eth0")
    parser.add_argument("--cni-args", default="")
    parser.add_argument("--capability", action="append", default=[], metavar="KEY=JSON")
    parser.add_argument("--trace")
    args = parser.parse_args()

    with open(args.conflist, "rb") as f:
        conflist_bytes = f.read()
    conflist = json.loads(conflist_bytes)
    capabilities = {}
    for item in args.capability:
        key, _, value = item.partition("=")
        capabilities[key] = json.loads(value)
    plugins = conflist["plugins"]
    os.makedirs(results_dir(args), exist_ok=True)

    if args.command == "VERSION":
        answers = {}
        for index, entry in enumerate(plugins):
            proc = invoke(args, "VERSION", index, entry, {"cniVersion": conflist["cniVersion"]})
            answers[entry["type"]] = json.loads(proc.stdout) if proc.stdout.strip() else None
        print(json.dumps(answers))
        return 0

    cached = None
    if args.command in ("DEL", "CHECK") and os.path.exists(cache_path(args, conflist)):
        with open(cache_path(args, conflist), encoding="utf-8") as f:
            cached = json.load(f)["result"]

    order = list(enumerate(plugins))
    if args.command == "DEL":
        order.reverse()
    result = None
    failure = None
    for index, entry in order:
        conf = plugin_conf(conflist, entry, capabilities)
        if args.command == "ADD" and result is not None:
            conf["prevResult"] = result
        if args.command in ("DEL", "CHECK") and cached is not None:
            conf["prevResult"] = cached
        if args.command == "GC":
            attachments = []
            for name in sorted(os.listdir(results_dir(args))):
                with open(os.path.join(results_dir(args), name), encoding="utf-8") as f:
                    entry_cache = json.load(f)
                attachments.append({"containerID": entry_cache["containerId"],
                                    "ifname": entry_cache["ifName"]})
            conf["cni.dev/valid-attachments"] = attachments
        proc = invoke(args, args.command, index, entry, conf)
        if proc.returncode != 0:
            failure = failure or proc
            if args.command != "DEL":
                break  # DEL goes on: every plugin gets to release what it holds
            continue
        if args.command == "ADD":
            result = json.loads(proc.stdout)

    if failure is not None:
        sys.stdout.write(failure.stdout)
        return 1
    if args.command == "ADD":
        with open(cache_path(args, conflist), "w", encoding="utf-8") as f:
            json.dump(cache_entry(args, conflist_bytes, conflist, capabilities, result), f)
        print(json.dumps(result))
    if args.command == "DEL":
        try:
            os.remove(cache_path(args, conflist))
        except FileNotFoundError:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Checks everything in deploy/ without a Docker engine or a Kubernetes cluster.

    python3 deploy/validate.py --xj target/debug/xj [--nats-server PATH]

- cluster/: each node's configuration passes `nats-server -t` (with the
  generated auth.conf and routes.conf beside it), binds monitoring to
  127.0.0.1 only, and takes its routes and route authorization from
  routes.conf, whose three route URLs carry exactly its user and password;
  auth.conf is the accounts form `xj nats-config` prints (the hub's account
  XJ_HUB with JetStream); the hub's configuration passes `xj check`. (A
  test starts a real three-node cluster from these files and checks that a
  server without the route credentials cannot join:
  services/xj/tests/deploy.rs.)
- k8s/xianjie.yaml: every object validates against the Kubernetes JSON
  schemas (PyPI kubernetes-validate, strict: unknown fields are errors),
  installed into the project's cache on first use; every Deployment has
  readiness and liveness probes, requests and limits, and a
  PodDisruptionBudget selecting exactly its pods when it runs more than one;
  the ConfigMap's configuration passes `xj check`.
- k8s/nats-values.yaml: only keys of NATS's official chart (1.x) that this
  file means to set, with the right types (a typo is an error); route
  credentials set; the hub's account XJ_HUB with the services' user and
  JetStream; the nats.conf the chart renders from them (approximated here
  for the parts this file sets) passes `nats-server -t`.
- compose/docker-compose.yml: parses; every file it mounts exists; every
  named volume is declared; depends_on names services; every file a NATS
  node's configuration includes is mounted beside it; healthchecks reach
  monitoring on loopback; each hub service runs `xj run <a service>` with
  a configuration the image contains; every environment variable the
  configuration reads is given.
- systemd/: `systemd-analyze verify` on each unit (paths to the binaries
  pointed at the ones here), or a structural check when systemd-analyze is
  missing.

Exit status 0 when everything holds; every problem is printed.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
KV_VERSION = "1.37.0"
K8S_VERSION = "1.33.0"
SERVICES = {"gateway", "router", "courier", "tracker", "ledger", "console"}
problems = []


def problem(where, text):
    problems.append(f"{where}: {text}")


def cache_dir():
    if os.environ.get("XJ_CACHE_DIR"):
        return os.environ["XJ_CACHE_DIR"]
    return os.path.join(os.path.expanduser("~"), ".cache", "xianjie")


def import_yaml():
    try:
        import yaml  # noqa: F401
    except ImportError:
        ensure_kubernetes_validate()
    import yaml

    return yaml


def ensure_kubernetes_validate():
    """kubernetes-validate (and PyYAML, jsonschema) in the project's cache."""
    target = os.path.join(cache_dir(), f"kubernetes-validate-{KV_VERSION}")
    if not os.path.isdir(os.path.join(target, "kubernetes_validate")):
        staging = f"{target}.staging-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        print(f"validate: installing kubernetes-validate {KV_VERSION} (PyPI) into {target}", file=sys.stderr)
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--quiet",
             "--target", staging, f"kubernetes-validate=={KV_VERSION}"],
            check=True,
        )
        try:
            os.rename(staging, target)
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
    if target not in sys.path:
        sys.path.insert(0, target)


def load_yaml_all(path):
    yaml = import_yaml()
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def run(cmd, env=None, cwd=None):
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd)
    return r.returncode, (r.stdout + r.stderr).strip()


def xj_check(xj, config_text, where, extra_files=()):
    """`xj check` on a configuration placed like the image places it."""
    with tempfile.TemporaryDirectory() as d:
        os.makedirs(os.path.join(d, "cluster"))
        shutil.copy(os.path.join(HERE, "sandbox.toml"), os.path.join(d, "sandbox.toml"))
        for f in extra_files:
            shutil.copy(f, os.path.join(d, os.path.basename(f)))
        path = os.path.join(d, "cluster", "xianjie.toml")
        with open(path, "w", encoding="utf-8") as f:
            f.write(config_text)
        env = dict(os.environ, XIANJIE_NATS_PASSWORD="validate-password-0123456789")
        code, out = run([xj, "check", "--config", path], env=env)
        if code != 0:
            problem(where, f"xj check failed:\n{out}")
        return out


# ------------------------------------------------------------ cluster/ --

NODES = ("nats-1", "nats-2", "nats-3")
# What may appear in a password that is also part of a route URL unescaped.
URL_SAFE = re.compile(r"^[A-Za-z0-9_-]+$")


def strip_comments(text):
    return "\n".join(l.split("#", 1)[0] for l in text.splitlines())


def block(text, name):
    """The body of the first top-level `name { … }` block of a nats-server
    configuration (comments removed), or None."""
    text = strip_comments(text)
    m = re.search(rf"^\s*{re.escape(name)}\s*[:=]?\s*{{", text, re.M)
    if not m:
        return None
    depth, start = 1, m.end()
    for k in range(start, len(text)):
        if text[k] == "{":
            depth += 1
        elif text[k] == "}":
            depth -= 1
            if depth == 0:
                return text[start:k]
    return None


def check_routes(cluster):
    """routes.conf: the route authorization, and routes to the three nodes
    that carry exactly its credentials."""
    path = os.path.join(cluster, "routes.conf")
    where = "cluster/routes.conf"
    if not os.path.exists(path):
        problem(where, "missing (the route user and password, included by every node)")
        return
    text = strip_comments(open(path, encoding="utf-8").read())
    auth = block(text, "authorization") or ""
    user = re.search(r"\buser\s*[:=]\s*\"?([^\s\"]+)\"?", auth)
    password = re.search(r"\bpassword\s*[:=]\s*\"?([^\s\"]+)\"?", auth)
    if not user or not password:
        problem(where, "no authorization { user, password }: any server could join the cluster")
        return
    user, password = user.group(1), password.group(1)
    for what, value in (("user", user), ("password", password)):
        if not URL_SAFE.match(value):
            problem(where, f"the route {what} is part of the route URLs: use only letters, digits, - and _")
    urls = re.findall(r"nats-route://(\S+)", text)
    hosts = []
    for url in urls:
        m = re.match(r"^([^:@/]+):([^@/]+)@([\w.-]+):6222$", url)
        if not m:
            problem(where, f"route {url} carries no credentials (user:password@host:6222)")
            continue
        if (m.group(1), m.group(2)) != (user, password):
            problem(where, f"route to {m.group(3)} carries other credentials than the authorization")
        hosts.append(m.group(3))
    if sorted(hosts) != list(NODES):
        problem(where, f"routes should name the three nodes, found {hosts}")


def check_cluster(xj, nats_server):
    cluster = os.path.join(HERE, "cluster")
    check_routes(cluster)
    for i in (1, 2, 3):
        conf = os.path.join(cluster, f"nats-{i}.conf")
        where = f"cluster/nats-{i}.conf"
        if not os.path.exists(conf):
            problem(where, "missing")
            continue
        raw = open(conf, encoding="utf-8").read()
        text = strip_comments(raw)
        for want in (f"server_name: nats-{i}", "jetstream", "include ./auth.conf"):
            if want not in text:
                problem(where, f"does not contain {want!r}")
        body = block(text, "cluster")
        if body is None:
            problem(where, "no cluster block")
        else:
            if "include ./routes.conf" not in body:
                problem(where, "the cluster block does not include ./routes.conf (route authorization and routes)")
            if re.search(r"\broutes\s*[:=]", body) or re.search(r"\bauthorization\b", body):
                problem(where, "routes and route authorization belong in routes.conf, the one place of the secret")
        # Monitoring (/healthz, /varz, /connz, …) answers anyone who reaches
        # it: loopback only, for checks run on the node.
        http = re.findall(r"^\s*(?:http|http_port|monitor_port)\s*[:=]\s*(\S+)", text, re.M)
        if http != ["127.0.0.1:8222"]:
            problem(where, f"monitoring should listen on 127.0.0.1:8222 only, found {http}")
        if nats_server:
            code, out = run([nats_server, "-t", "-c", conf], cwd=cluster)
            if code != 0:
                problem(where, f"nats-server -t: {out}")
    auth = os.path.join(cluster, "auth.conf")
    if not os.path.exists(auth):
        problem("cluster/auth.conf", "missing (xj nats-config writes it)")
    else:
        text = open(auth, encoding="utf-8").read()
        accounts = block(text, "accounts")
        if accounts is None or block(text, "authorization") is not None:
            problem("cluster/auth.conf", "not the accounts form `xj nats-config` prints: regenerate it")
        elif '"XJ_HUB"' not in accounts or "jetstream: enabled" not in accounts:
            problem("cluster/auth.conf", "no hub account XJ_HUB with JetStream")
    if xj:
        out = xj_check(xj, open(os.path.join(cluster, "xianjie.toml"), encoding="utf-8").read(), "cluster/xianjie.toml")
        if "ok" not in out:
            problem("cluster/xianjie.toml", out)


# ---------------------------------------------------------------- k8s/ --

def check_k8s(xj, nats_server=None):
    ensure_kubernetes_validate()
    import kubernetes_validate
    from kubernetes_validate import utils as kv

    path = os.path.join(HERE, "k8s", "xianjie.yaml")
    docs = load_yaml_all(path)
    by_kind = {}
    for d in docs:
        name = f"{d.get('kind')}/{d.get('metadata', {}).get('name')}"
        try:
            kv.validate(d, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            problem(f"k8s/xianjie.yaml {name}", f"{'/'.join(str(p) for p in e.path)}: {e.message}")
        except Exception as e:  # schema not found and the like
            problem(f"k8s/xianjie.yaml {name}", str(e))
        by_kind.setdefault(d.get("kind"), []).append(d)
    pdbs = by_kind.get("PodDisruptionBudget", [])
    configmaps = {c["metadata"]["name"]: c for c in by_kind.get("ConfigMap", [])}
    seen = set()
    for dep in by_kind.get("Deployment", []):
        name = dep["metadata"]["name"]
        where = f"k8s/xianjie.yaml Deployment/{name}"
        spec = dep["spec"]
        labels = spec["template"]["metadata"]["labels"]
        if spec["selector"]["matchLabels"] != labels:
            problem(where, "selector does not match the pod labels")
        for c in spec["template"]["spec"]["containers"]:
            for probe in ("readinessProbe", "livenessProbe"):
                if probe not in c:
                    problem(where, f"container {c['name']} has no {probe}")
            res = c.get("resources", {})
            for part in ("requests", "limits"):
                if not {"cpu", "memory"} <= set(res.get(part, {})) and not (part == "limits" and "memory" in res.get(part, {})):
                    problem(where, f"container {c['name']} lacks resources.{part}")
            args = c.get("args", [])
            if len(args) < 2 or args[0] != "run" or args[1] not in SERVICES:
                problem(where, f"args should be `run <service>`, got {args}")
            else:
                seen.add(args[1])
        for v in spec["template"]["spec"].get("volumes", []):
            if "configMap" in v and v["configMap"]["name"] not in configmaps:
                problem(where, f"volume {v['name']} names ConfigMap {v['configMap']['name']} not in the file")
        if spec.get("replicas", 1) > 1:
            match = [p for p in pdbs if p["spec"]["selector"].get("matchLabels") == labels]
            if len(match) != 1:
                problem(where, f"runs {spec['replicas']} replicas but has {len(match)} PodDisruptionBudget(s) selecting its pods")
    for svc in ("gateway", "router", "courier", "tracker", "ledger"):
        if svc not in seen:
            problem("k8s/xianjie.yaml", f"no Deployment runs {svc}")
    if xj and "xianjie-config" in configmaps:
        out = xj_check(xj, configmaps["xianjie-config"]["data"]["xianjie.toml"], "k8s ConfigMap xianjie-config")
        if "ok" not in out:
            problem("k8s ConfigMap xianjie-config", out)
    check_nats_values(nats_server)


# The part of NATS's official chart (1.x) values this project sets: a typo
# or a key from another chart version fails here instead of being ignored by
# helm.
NATS_VALUES_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "config": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "cluster": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "enabled": {"type": "boolean"},
                        "replicas": {"type": "integer", "minimum": 3},
                        # The chart writes user and password into the
                        # cluster's authorization and every route URL.
                        "routeURLs": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {
                                "user": {"type": "string", "minLength": 1},
                                "password": {"type": "string", "minLength": 1},
                                "useFQDN": {"type": "boolean"},
                                "k8sClusterDomain": {"type": "string"},
                            },
                            "required": ["user", "password"],
                        },
                        "tls": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {
                                "enabled": {"type": "boolean"},
                                "secretName": {"type": "string"},
                                "dir": {"type": "string"},
                                "cert": {"type": "string"},
                                "key": {"type": "string"},
                                "merge": {"type": "object"},
                            },
                        },
                        "merge": {"type": "object"},
                    },
                    "required": ["enabled", "replicas", "routeURLs"],
                },
                "jetstream": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "enabled": {"const": True},
                        "fileStore": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {
                                "enabled": {"const": True},
                                "dir": {"type": "string"},
                                "pvc": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "properties": {
                                        "enabled": {"type": "boolean"},
                                        "size": {"type": "string", "pattern": "^[0-9]+(Mi|Gi|Ti)$"},
                                        "storageClassName": {"type": "string"},
                                    },
                                },
                            },
                        },
                        "merge": {"type": "object"},
                    },
                    "required": ["enabled", "fileStore"],
                },
                "monitor": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"enabled": {"type": "boolean"}, "port": {"type": "integer"}},
                },
                "merge": {"type": "object"},
            },
            "required": ["cluster", "jetstream"],
        },
        "container": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "image": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"tag": {"type": "string"}, "repository": {"type": "string"}},
                },
                "merge": {"type": "object"},
            },
        },
        "podTemplate": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"topologySpreadConstraints": {"type": "object"}, "merge": {"type": "object"}},
        },
        "podDisruptionBudget": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"enabled": {"type": "boolean"}},
        },
        "natsBox": {"type": "object", "additionalProperties": False, "properties": {"enabled": {"type": "boolean"}}},
    },
    "required": ["config"],
}


def chart_value(v):
    """A value as the chart writes it into nats.conf: JSON, except that a
    string "<< x >>" is written as x (how sizes and variables are given)."""
    import json

    return re.sub(r'"<<\s+(.*?)\s+>>"', r"\1", json.dumps(v, indent=2))


def render_nats_values(values, store_dir):
    """nats.conf as chart 1.x renders it from these values, for the parts
    this file sets (files/config/{config,cluster,jetstream}.yaml): the
    chart's defaults, then each `merge` over them."""
    import copy

    cfg = values.get("config", {})
    conf = {"server_name": "nats-0", "port": 4222, "lame_duck_duration": "30s"}
    mon = cfg.get("monitor", {"enabled": True, "port": 8222})
    if mon.get("enabled", True):
        conf["http_port"] = mon.get("port", 8222)
    c = cfg.get("cluster", {})
    if c.get("enabled"):
        ru = c.get("routeURLs", {})
        auth = ""
        if ru.get("user") and ru.get("password"):
            from urllib.parse import quote_plus

            auth = f"{quote_plus(ru['user'])}:{quote_plus(ru['password'])}@"
        cluster = {
            "name": "nats",
            "port": 6222,
            "no_advertise": True,
            "routes": [f"nats://{auth}nats-{i}.nats-headless:6222" for i in range(int(c.get("replicas", 3)))],
        }
        if auth:
            cluster["authorization"] = {"user": ru["user"], "password": ru["password"]}
        cluster.update(copy.deepcopy(c.get("merge", {})))
        conf["cluster"] = cluster
    js = cfg.get("jetstream", {})
    if js.get("enabled"):
        fs = js.get("fileStore", {})
        jetstream = {"store_dir": store_dir}
        if fs.get("pvc", {}).get("enabled", True):
            jetstream["max_file_store"] = f"<< {fs.get('pvc', {}).get('size', '10Gi')} >>"
        jetstream.update(copy.deepcopy(js.get("merge", {})))
        conf["jetstream"] = jetstream
    conf.update(copy.deepcopy(cfg.get("merge", {})))
    return chart_value(conf)


def check_nats_values(nats_server):
    import jsonschema

    path = os.path.join(HERE, "k8s", "nats-values.yaml")
    where = "k8s/nats-values.yaml"
    (values,) = load_yaml_all(path)
    v = jsonschema.Draft202012Validator(NATS_VALUES_SCHEMA)
    for e in v.iter_errors(values):
        problem(where, f"/{'/'.join(str(p) for p in e.path)}: {e.message}")
    merge = values.get("config", {}).get("merge", {})
    if "authorization" in merge:
        problem(where, "config.merge.authorization: the hub's users live in accounts now (`xj nats-config`)")
    hub = merge.get("accounts", {}).get("XJ_HUB", {})
    if not any(u.get("user") == "xj-services" for u in hub.get("users", [])):
        problem(where, "config.merge.accounts.XJ_HUB has no xj-services user")
    if str(hub.get("jetstream", "")).lower() not in ("enabled", "true"):
        problem(where, "config.merge.accounts.XJ_HUB does not enable JetStream")
    tag = values.get("container", {}).get("image", {}).get("tag", "")
    if not tag.startswith("2.15.1"):
        problem(where, f"image tag {tag!r} is not the pinned nats-server 2.15.1")
    if nats_server:
        # The server configuration these values make must load: a size
        # given as a plain string ("8MB"), for one, stops nats-server.
        with tempfile.TemporaryDirectory() as d:
            conf = os.path.join(d, "nats.conf")
            with open(conf, "w", encoding="utf-8") as f:
                f.write(render_nats_values(values, os.path.join(d, "data")))
            code, out = run([nats_server, "-t", "-c", conf], cwd=d)
            if code != 0:
                problem(where, f"nats-server -t on the nats.conf the chart would render: {out}")


# ------------------------------------------------------------ compose/ --

def check_compose():
    compose_dir = os.path.join(HERE, "compose")
    path = os.path.join(compose_dir, "docker-compose.yml")
    (doc,) = load_yaml_all(path)
    where = "compose/docker-compose.yml"
    services = doc.get("services", {})
    volumes = set((doc.get("volumes") or {}).keys())
    dockerfile_text = open(os.path.join(HERE, "Dockerfile"), encoding="utf-8").read()
    in_image = set(re.findall(r"^COPY\s+(?:--from=\S+\s+)?\S+\s+(\S+)", dockerfile_text, re.M))
    nodes = [n for n in services if n.startswith("nats-")]
    if len(nodes) != 3:
        problem(where, f"expected three NATS nodes, found {nodes}")
    for name, svc in services.items():
        w = f"{where} services.{name}"
        if "image" not in svc and "build" not in svc:
            problem(w, "neither image nor build")
        build = svc.get("build")
        if build:
            ctx = os.path.normpath(os.path.join(compose_dir, build.get("context", ".")))
            if not os.path.exists(os.path.join(ctx, build.get("dockerfile", "Dockerfile"))):
                problem(w, f"build dockerfile {build.get('dockerfile')} not found in {ctx}")
        for vol in svc.get("volumes", []):
            src = vol.split(":")[0]
            if src.startswith(".") or src.startswith("/"):
                if not os.path.exists(os.path.normpath(os.path.join(compose_dir, src))):
                    problem(w, f"mounts {src}, which does not exist")
            elif src not in volumes:
                problem(w, f"named volume {src} is not declared under volumes")
        for dep in svc.get("depends_on", {}):
            if dep not in services:
                problem(w, f"depends_on {dep}, no such service")
        if "healthcheck" not in svc:
            problem(w, "no healthcheck")
        cmd = svc.get("command", [])
        if name.startswith("nats-"):
            conf = cmd[-1] if cmd else ""
            mounts = {v.split(":")[1]: v.split(":")[0] for v in svc.get("volumes", []) if len(v.split(":")) > 1}
            if conf not in mounts:
                problem(w, f"runs {conf}, which is not mounted")
                continue
            # Every file the node's configuration includes (auth.conf,
            # routes.conf) is mounted beside it.
            src = os.path.normpath(os.path.join(compose_dir, mounts[conf]))
            if os.path.exists(src):
                for inc in re.findall(r"^\s*include\s+(\S+)", strip_comments(open(src, encoding="utf-8").read()), re.M):
                    dest = os.path.normpath(os.path.join(os.path.dirname(conf), inc.strip("\"'")))
                    if dest not in mounts:
                        problem(w, f"{conf} includes {inc}, which is not mounted at {dest}")
            # Monitoring listens on the container's loopback only.
            test = " ".join(map(str, (svc.get("healthcheck") or {}).get("test", [])))
            if ":8222" in test and not re.search(r"//(127\.0\.0\.1|localhost):8222", test):
                problem(w, f"the healthcheck reaches monitoring other than on loopback: {test}")
            continue
        if len(cmd) < 4 or cmd[0] != "run" or cmd[1] not in SERVICES or cmd[2] != "--config":
            problem(w, f"command should be `run <service> --config F`, got {cmd}")
            continue
        config = cmd[3]
        if not any(config.startswith(dest.rstrip("/")) or config == dest for dest in in_image):
            problem(w, f"config {config} is not put in the image by deploy/Dockerfile")
        env = svc.get("environment", {})
        text = open(os.path.join(HERE, "cluster", "xianjie.toml"), encoding="utf-8").read()
        for var in re.findall(r'password_env\s*=\s*"([A-Z0-9_]+)"', text):
            if var not in env:
                problem(w, f"the configuration reads {var}, which is not in its environment")


# ------------------------------------------------------------ systemd/ --

def check_systemd(xj, nats_server):
    sd = os.path.join(HERE, "systemd")
    units = sorted(f for f in os.listdir(sd) if f.endswith(".service"))
    if not units:
        problem("systemd", "no units")
    analyze = shutil.which("systemd-analyze")
    for unit in units:
        text = open(os.path.join(sd, unit), encoding="utf-8").read()
        for section in ("[Unit]", "[Service]", "[Install]"):
            if section not in text:
                problem(f"systemd/{unit}", f"no {section} section")
        if "ExecStart=" not in text:
            problem(f"systemd/{unit}", "no ExecStart")
        if not analyze:
            continue
        with tempfile.TemporaryDirectory() as d:
            instances = {"xianjie@.service": ["gateway", "router"], "nats-server@.service": ["1"]}.get(unit, [None])
            for inst in instances:
                name = unit.replace("@.", f"@{inst}.") if inst else unit
                t = text.replace("/usr/local/bin/xj", xj or "/bin/true")
                t = t.replace("/usr/local/bin/nats-server", nats_server or "/bin/true")
                with open(os.path.join(d, name), "w", encoding="utf-8") as f:
                    f.write(t)
                dropins = os.path.join(sd, f"{name}.d")
                if os.path.isdir(dropins):
                    shutil.copytree(dropins, os.path.join(d, f"{name}.d"))
                code, out = run([analyze, "verify", os.path.join(d, name)])
                lines = [
                    l for l in out.splitlines()
                    # The units name users and paths of the target hosts.
                    if l.strip() and "does not exist" not in l and "Failed to resolve" not in l
                ]
                if code != 0 or lines:
                    problem(f"systemd/{name}", "systemd-analyze verify:\n" + "\n".join(lines or [out]))
    for d in os.listdir(sd):
        if d.endswith(".service.d"):
            for f in os.listdir(os.path.join(sd, d)):
                text = open(os.path.join(sd, d, f), encoding="utf-8").read()
                if "[Service]" not in text:
                    problem(f"systemd/{d}/{f}", "no [Service] section")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--xj", help="the xj binary (for xj check)")
    ap.add_argument("--nats-server", help="the nats-server binary (for nats-server -t)")
    args = ap.parse_args()
    if args.xj:
        args.xj = os.path.abspath(args.xj)
    nats = args.nats_server
    if not nats:
        cand = os.path.join(cache_dir(), "nats-server-2.15.1", "bin", "nats-server")
        nats = cand if os.path.exists(cand) else shutil.which("nats-server")
    if nats:
        nats = os.path.abspath(nats)
    check_cluster(args.xj, nats)
    check_k8s(args.xj, nats)
    check_compose()
    check_systemd(args.xj, nats)
    for p in problems:
        print(p)
    checked = "cluster, k8s, nats-values, compose, systemd"
    if problems:
        print(f"deploy: {len(problems)} problem(s)")
        return 1
    print(f"deploy: ok ({checked})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

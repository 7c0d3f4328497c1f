#!/usr/bin/env python3
"""A real Keystone on loopback for tern's tests: started, seeded and stopped by the tests themselves.

Run it with the Python of the virtualenv that scripts/python-env.sh makes (target/python-venv), which
holds keystone, gunicorn, python-openstackclient and tempest:

  keystone.py start --dir DIR --port PORT [--admin-password P] [--token-expiration SECONDS]
                    [--workers N] [--watch-pid PID] [--no-template]
      Writes DIR/keystone.conf (SQLite under DIR, fernet tokens, no cache), bootstraps Keystone (admin
      user and project, roles admin/manager/member/reader/service, identity endpoints
      http://127.0.0.1:PORT/v3 in RegionOne), serves it with gunicorn on 127.0.0.1:PORT in the
      background (pidfile DIR/gunicorn.pid, log DIR/keystone.log), waits until GET /v3 answers and
      prints one JSON line {"url": ..., "pid": ...}. Setting up takes about 10 s of keystone-manage, so
      the database is made once per keystone version and admin password under target/keystone-template
      (bootstrapped, then seeded with the default identities through the API of a temporary server)
      and copied: every start gets fresh fernet and credential keys and its own identity endpoint URLs,
      and then takes about 2 s. --no-template bootstraps from scratch (no seeded identities). With
      --watch-pid the server stops itself once that process is gone (a test killed before it could
      stop it leaves nothing behind).
  keystone.py stop --dir DIR
      Stops the gunicorn of DIR (its pidfile) and its workers, and waits until they are gone.
  keystone.py seed --url URL [--admin-password P] [--network-url URL] [--compute-url URL] [--spec JSON]
                   [--reset-passwords]
      Makes sure, through Keystone's API, that the identities tern's tests use exist (creates what is
      missing; safe to re-run) and prints their ids as JSON: project service with users tern and nova
      (roles admin and service), projects alpha and beta with users <project>-member (member) and
      <project>-reader (reader); every password is "<user>-secret" (set on existing users only with
      --reset-passwords). --network-url registers service neutron (type network) and --compute-url
      service nova (type compute), with public, internal and admin endpoints in RegionOne (an existing
      endpoint's URL is updated). --spec replaces the default identities (see `keystone.py
      default-spec`). Keystone has no cache here and spends about 0.25 s on every authenticated
      request, so seeding lists first and then calls only for what is missing (about 3.5 s with two
      services on a started template).
"""

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request

REGION = "RegionOne"
DEFAULT_ADMIN_PASSWORD = "admin-secret"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
# Bump when the template's content or layout changes.
TEMPLATE_FORMAT = "1"
# The identity endpoints' URL inside a template; every start rewrites it to its own port.
TEMPLATE_URL = "http://keystone-template.invalid/v3"

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)

WSGI_MODULE = '''\
"""Keystone's WSGI application for gunicorn (written by scripts/keystone.py).

Keystone's config loader parses sys.argv[1:], which under gunicorn are gunicorn's own options: every
worker would die with "unrecognized arguments" while the socket accepts and never answers. So the
configuration comes from OS_KEYSTONE_CONFIG_FILES and sys.argv is cut while keystone loads.
"""
import os
import sys

os.environ["OS_KEYSTONE_CONFIG_FILES"] = {conf!r}
_argv = sys.argv
sys.argv = sys.argv[:1]
try:
    from keystone.wsgi.api import application  # noqa: E402,F401
finally:
    sys.argv = _argv
'''

GUNICORN_CONFIG = '''\
"""gunicorn settings (written by scripts/keystone.py): with a watched pid, the master stops itself
once that process is gone."""
import os
import signal
import threading
import time

WATCH_PID = {watch_pid!r}


def _alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        return False


def when_ready(server):
    if not WATCH_PID:
        return
    master = os.getpid()

    def watch():
        while _alive(WATCH_PID):
            time.sleep(1)
        server.log.info("watched pid %d is gone: stopping", WATCH_PID)
        os.kill(master, signal.SIGTERM)

    threading.Thread(target=watch, daemon=True).start()
'''


def log(message):
    print("keystone.py: " + message, file=sys.stderr, flush=True)


class Failure(Exception):
    """Ends the script with this message and exit status 1."""


def tail(path, lines=40):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError as e:
        return "(cannot read %s: %s)" % (path, e)


# ---------------------------------------------------------------- configuration and bootstrap


def write_conf(directory, token_expiration):
    d = os.path.abspath(directory)
    conf = os.path.join(d, "keystone.conf")
    text = """[DEFAULT]
use_stderr = true
debug = false

[database]
connection = sqlite:///{d}/keystone.db

[token]
provider = fernet
expiration = {expiration}
revoke_by_id = true

[fernet_tokens]
key_repository = {d}/fernet-keys

[fernet_receipts]
key_repository = {d}/fernet-keys

[credential]
key_repository = {d}/credential-keys

[cache]
enabled = false

[identity]
# bcrypt's cheapest cost: every user creation and password login hashes once (at the default cost 12
# that is about a second each on a small machine). 72 is bcrypt's own limit (no truncation warning).
password_hash_rounds = 4
max_password_length = 72
""".format(d=d, expiration=token_expiration)
    with open(conf, "w") as f:
        f.write(text)
    return conf


def manage(conf, directory, *args):
    """Runs keystone-manage, its output appended to DIR/keystone-manage.log."""
    out = os.path.join(directory, "keystone-manage.log")
    started = time.monotonic()
    with open(out, "a") as f:
        f.write("+ keystone-manage %s\n" % " ".join(args))
        f.flush()
        rc = subprocess.call(
            [os.path.join(BIN, "keystone-manage"), "--config-file", conf] + list(args),
            stdin=subprocess.DEVNULL,
            stdout=f,
            stderr=subprocess.STDOUT,
        )
    if rc != 0:
        raise Failure("keystone-manage %s failed (exit %d); its output:\n%s" % (args[0], rc, tail(out)))
    log("keystone-manage %s: %.1f s" % (args[0], time.monotonic() - started))


def owner_flags():
    import grp
    import pwd

    return [
        "--keystone-user",
        pwd.getpwuid(os.getuid()).pw_name,
        "--keystone-group",
        grp.getgrgid(os.getgid()).gr_name,
    ]


def bootstrap(conf, directory, password, url):
    """db_sync, fernet_setup, credential_setup and bootstrap, as an operator does."""
    manage(conf, directory, "db_sync")
    manage(conf, directory, "fernet_setup", *owner_flags())
    manage(conf, directory, "credential_setup", *owner_flags())
    manage(
        conf,
        directory,
        "bootstrap",
        "--bootstrap-password",
        password,
        "--bootstrap-admin-url",
        url,
        "--bootstrap-internal-url",
        url,
        "--bootstrap-public-url",
        url,
        "--bootstrap-region-id",
        REGION,
    )


def new_key_repository(path):
    """A key repository as `keystone-manage fernet_setup` leaves it: key 0 staged, key 1 primary."""
    from cryptography.fernet import Fernet

    os.makedirs(path, mode=0o700, exist_ok=True)
    for index in (0, 1):
        fd = os.open(os.path.join(path, str(index)), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(Fernet.generate_key())


def template_dir(password):
    from importlib.metadata import version

    key = "|".join(
        [
            TEMPLATE_FORMAT,
            version("keystone"),
            version("SQLAlchemy"),
            REGION,
            password,
            json.dumps(default_spec(), sort_keys=True),
        ]
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return os.path.join(ROOT, "target", "keystone-template", "keystone-%s-%s" % (version("keystone"), digest))


def ensure_template(password):
    """The template database for this keystone and admin password, made once (under a lock):
    bootstrapped, then seeded with the default identities through the API of a temporary server."""
    import fcntl

    template = template_dir(password)
    db = os.path.join(template, "keystone.db")
    if os.path.isfile(os.path.join(template, "complete")):
        return db
    os.makedirs(os.path.dirname(template), exist_ok=True)
    with open(template + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.isfile(os.path.join(template, "complete")):
            return db
        started = time.monotonic()
        log("making the template %s (once per keystone version and admin password)" % template)
        build = "%s.build-%d" % (template, os.getpid())
        shutil.rmtree(build, ignore_errors=True)
        shutil.rmtree(template, ignore_errors=True)
        os.makedirs(build)
        conf = write_conf(build, 3600)
        bootstrap(conf, build, password, TEMPLATE_URL)
        for attempt in range(3):
            port = free_port()
            try:
                process = serve(build, conf, port, workers=1, watch_pid=os.getpid())
                break
            except PortTaken:
                if attempt == 2:
                    raise
        try:
            api = Api("http://127.0.0.1:%d/v3" % port)
            api.login("admin", password, "admin")
            seed(api, default_spec(), [])
        finally:
            stop(process.pid)
        # Only the database is kept: every start makes its own keys and configuration.
        for name in os.listdir(build):
            if name != "keystone.db":
                path = os.path.join(build, name)
                shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
        with open(os.path.join(build, "complete"), "w") as f:
            f.write("bootstrapped with identity endpoints at %s, seeded with the default spec\n" % TEMPLATE_URL)
        os.rename(build, template)
        log("template made: %.1f s" % (time.monotonic() - started))
    return db


def from_template(directory, password, url):
    db = ensure_template(password)
    target = os.path.join(directory, "keystone.db")
    shutil.copyfile(db, target)
    new_key_repository(os.path.join(directory, "fernet-keys"))
    new_key_repository(os.path.join(directory, "credential-keys"))
    with contextlib.closing(sqlite3.connect(target)) as connection:
        with connection:
            changed = connection.execute("UPDATE endpoint SET url = ? WHERE url = ?", (url, TEMPLATE_URL)).rowcount
    if changed != 3:
        raise Failure("the template %s had %d identity endpoints at %s, expected 3" % (db, changed, TEMPLATE_URL))


# ---------------------------------------------------------------- serving


class PortTaken(Failure):
    pass


def free_port():
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pid_alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        return False


def ours(pid, directory):
    """Whether pid is the gunicorn serving directory (guards against a stale pidfile)."""
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            argv = f.read().decode(errors="replace").split("\0")
    except OSError:
        return False
    return any("gunicorn" in a for a in argv) and os.path.abspath(directory) in argv


def read_pid(directory):
    try:
        with open(os.path.join(directory, "gunicorn.pid")) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def serve(directory, conf, port, workers, watch_pid):
    """Starts gunicorn on 127.0.0.1:port in the background and waits until GET /v3 answers."""
    started = time.monotonic()
    with open(os.path.join(directory, "tern_keystone_wsgi.py"), "w") as f:
        f.write(WSGI_MODULE.format(conf=conf))
    gunicorn_conf = os.path.join(directory, "gunicorn_conf.py")
    with open(gunicorn_conf, "w") as f:
        f.write(GUNICORN_CONFIG.format(watch_pid=watch_pid))
    log_path = os.path.join(directory, "keystone.log")
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--config",
        gunicorn_conf,
        "--chdir",
        directory,
        "--bind",
        "127.0.0.1:%d" % port,
        "--workers",
        str(workers),
        "--timeout",
        "120",
        "--graceful-timeout",
        "5",
        "--access-logfile",
        os.path.join(directory, "access.log"),
        "--error-logfile",
        "-",
        "--name",
        "tern-keystone",
        "tern_keystone_wsgi:application",
    ]
    with open(log_path, "a") as out:
        # A session of its own: the server outlives this script and no terminal signal reaches it; its
        # output goes to the log only, so whoever reads this script's stdout sees it end.
        process = subprocess.Popen(
            command,
            cwd=directory,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    with open(os.path.join(directory, "gunicorn.pid"), "w") as f:
        f.write("%d\n" % process.pid)
    url = "http://127.0.0.1:%d/v3" % port
    # Only our gunicorn's own "Listening at" line proves that the port is ours: another server on it
    # would answer GET /v3 just as well.
    listening = "Listening at: http://127.0.0.1:%d (%d)" % (port, process.pid)
    deadline = time.monotonic() + START_TIMEOUT
    last = ""
    while True:
        code = process.poll()
        text = tail(log_path, 200)
        if code is not None:
            message = "gunicorn exited during startup (exit %d); the tail of %s:\n%s" % (code, log_path, text)
            raise PortTaken(message) if "in use" in text else Failure(message)
        if listening not in text and "Connection in use" in text:
            # Still retrying its bind, with no worker yet: nothing to shut down gracefully.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise PortTaken("127.0.0.1:%d is in use; the tail of %s:\n%s" % (port, log_path, text))
        try:
            if listening not in text:
                last = "gunicorn not listening yet"
            else:
                with urllib.request.urlopen(url, timeout=2) as r:
                    if r.status == 200:
                        break
        except urllib.error.HTTPError as e:
            last = "HTTP %d" % e.code
        except (OSError, ValueError) as e:
            last = str(e)
        if time.monotonic() >= deadline:
            stop(process.pid)
            raise Failure(
                "keystone did not answer GET %s within %.0f s (last: %s); the tail of %s:\n%s"
                % (url, START_TIMEOUT, last, log_path, tail(log_path))
            )
        time.sleep(0.1)
    # The server is left running; keep the Popen finaliser from warning about it.
    process.returncode = 0
    log("gunicorn serves %s (pid %d) after %.1f s" % (url, process.pid, time.monotonic() - started))
    return process


def cmd_start(args):
    started = time.monotonic()
    directory = os.path.abspath(args.dir)
    os.makedirs(directory, exist_ok=True)
    pid = read_pid(directory)
    if pid and pid_alive(pid) and ours(pid, directory):
        raise Failure("a keystone (pid %d) already runs in %s: stop it first" % (pid, directory))
    url = "http://127.0.0.1:%d/v3" % args.port
    conf = write_conf(directory, args.token_expiration)
    if args.no_template:
        bootstrap(conf, directory, args.admin_password, url)
    else:
        from_template(directory, args.admin_password, url)
    log("keystone database and keys ready after %.1f s" % (time.monotonic() - started))
    try:
        process = serve(directory, conf, args.port, args.workers, args.watch_pid)
    except PortTaken as e:
        # The caller picks the port; tell it plainly so that it can retry with another.
        raise Failure("port %d is in use: %s" % (args.port, e))
    log("keystone ready: %.1f s in all" % (time.monotonic() - started))
    print(json.dumps({"url": url, "pid": process.pid}), flush=True)


def stop(pid):
    """SIGTERM to the gunicorn master (it stops its workers), SIGKILL to its process group if slow."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + STOP_TIMEOUT
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    log("gunicorn %d did not stop within %.0f s: killing its process group" % (pid, STOP_TIMEOUT))
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    return False


def cmd_stop(args):
    directory = os.path.abspath(args.dir)
    pidfile = os.path.join(directory, "gunicorn.pid")
    pid = read_pid(directory)
    if pid is None:
        log("no pidfile in %s: nothing to stop" % directory)
        return
    if not pid_alive(pid) or not ours(pid, directory):
        log("pid %d of %s does not run keystone any more" % (pid, pidfile))
        os.remove(pidfile)
        return
    if not stop(pid):
        raise Failure("gunicorn %d is still alive" % pid)
    os.remove(pidfile)
    log("stopped keystone (pid %d)" % pid)


# ---------------------------------------------------------------- seeding


class Api:
    """Keystone's v3 API over plain HTTP (no client library: starts in milliseconds)."""

    def __init__(self, url, token=None):
        self.url = url.rstrip("/")
        self.token = token

    def call(self, method, path, body=None, ok=(200, 201, 204)):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_header("X-Auth-Token", self.token)
        try:
            with urllib.request.urlopen(request, timeout=60) as r:
                status, raw, headers = r.status, r.read(), r.headers
        except urllib.error.HTTPError as e:
            status, raw, headers = e.code, e.read(), e.headers
        except OSError as e:
            raise Failure("%s %s%s: %s" % (method, self.url, path, e))
        if status not in ok:
            raise Failure("%s %s: HTTP %d %s" % (method, path, status, raw.decode(errors="replace")[:500]))
        return (json.loads(raw) if raw else None), headers

    def login(self, user, password, project):
        body = {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {"user": {"name": user, "domain": {"id": "default"}, "password": password}},
                },
                "scope": {"project": {"name": project, "domain": {"id": "default"}}},
            }
        }
        _, headers = self.call("POST", "/auth/tokens", body, ok=(201,))
        self.token = headers["X-Subject-Token"]

    def list(self, collection, query=""):
        body, _ = self.call("GET", "/%s%s" % (collection, query))
        return body[collection]

    def create(self, collection, kind, fields):
        body, _ = self.call("POST", "/" + collection, {kind: fields}, ok=(201,))
        return body[kind]


def default_spec():
    users = [
        {"name": "tern", "project": "service", "roles": ["admin", "service"]},
        {"name": "nova", "project": "service", "roles": ["admin", "service"]},
    ]
    for project in ("alpha", "beta"):
        users.append({"name": project + "-member", "project": project, "roles": ["member"]})
        users.append({"name": project + "-reader", "project": project, "roles": ["reader"]})
    for user in users:
        user["password"] = user["name"] + "-secret"
    return {"projects": ["service", "alpha", "beta"], "roles": ["service"], "users": users}


def seed(api, spec, services, reset_passwords=False):
    """Makes what spec and services name exist (creating only what is missing); returns the ids.
    A few list calls and one call per missing thing: keystone spends about a quarter of a second
    on every authenticated request here."""
    domain = "default"
    roles = {r["name"]: r["id"] for r in api.list("roles")}
    wanted = set(spec.get("roles", []))
    for user in spec.get("users", []):
        wanted.update(user.get("roles", []))
    for name in sorted(wanted - set(roles)):
        roles[name] = api.create("roles", "role", {"name": name})["id"]

    projects = {p["name"]: p["id"] for p in api.list("projects", "?domain_id=" + domain)}
    wanted = list(spec.get("projects", [])) + [u["project"] for u in spec.get("users", [])]
    for name in wanted:
        if name not in projects:
            fields = {"name": name, "domain_id": domain, "description": "tern test project " + name}
            projects[name] = api.create("projects", "project", fields)["id"]

    users = {u["name"]: u["id"] for u in api.list("users", "?domain_id=" + domain)}
    assigned = set()
    for a in api.list("role_assignments"):
        project = a.get("scope", {}).get("project", {}).get("id")
        if project and "user" in a:
            assigned.add((a["user"]["id"], project, a["role"]["id"]))
    for user in spec.get("users", []):
        project = projects[user["project"]]
        if user["name"] not in users:
            fields = {
                "name": user["name"],
                "password": user["password"],
                "domain_id": domain,
                "default_project_id": project,
            }
            users[user["name"]] = api.create("users", "user", fields)["id"]
        elif reset_passwords:
            fields = {"password": user["password"], "default_project_id": project, "enabled": True}
            api.call("PATCH", "/users/" + users[user["name"]], {"user": fields})
        for role in user.get("roles", []):
            key = (users[user["name"]], project, roles[role])
            if key not in assigned:
                api.call("PUT", "/projects/%s/users/%s/roles/%s" % (project, key[0], key[2]))
                assigned.add(key)

    result = {}
    if services:
        existing = {(s["type"], s["name"]): s["id"] for s in api.list("services")}
        endpoints = {(e["service_id"], e["interface"]): e for e in api.list("endpoints")}
        for service in services:
            service_id = existing.get((service["type"], service["name"]))
            if service_id is None:
                fields = {"name": service["name"], "type": service["type"], "enabled": True}
                service_id = api.create("services", "service", fields)["id"]
            for interface in ("public", "internal", "admin"):
                endpoint = endpoints.get((service_id, interface))
                if endpoint is None:
                    fields = {
                        "service_id": service_id,
                        "interface": interface,
                        "url": service["url"],
                        "region_id": REGION,
                        "enabled": True,
                    }
                    api.create("endpoints", "endpoint", fields)
                elif endpoint["url"] != service["url"] or endpoint.get("region_id") != REGION:
                    fields = {"url": service["url"], "region_id": REGION}
                    api.call("PATCH", "/endpoints/" + endpoint["id"], {"endpoint": fields})
            result[service["name"]] = {"id": service_id, "type": service["type"], "url": service["url"]}

    named = set(spec.get("projects", [])) | {u["project"] for u in spec.get("users", [])} | {"admin"}
    return {
        "projects": {n: i for n, i in projects.items() if n in named},
        "users": {n: i for n, i in users.items() if n == "admin" or n in {u["name"] for u in spec.get("users", [])}},
        "roles": roles,
        "services": result,
    }


def cmd_seed(args):
    started = time.monotonic()
    spec = json.loads(args.spec) if args.spec else default_spec()
    services = list(spec.get("services", []))
    if args.network_url:
        services.append({"name": "neutron", "type": "network", "url": args.network_url})
    if args.compute_url:
        services.append({"name": "nova", "type": "compute", "url": args.compute_url})
    api = Api(args.url)
    api.login("admin", args.admin_password, "admin")
    ids = seed(api, spec, services, args.reset_passwords)
    log("seeded: %.1f s" % (time.monotonic() - started))
    print(json.dumps(ids), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    start = sub.add_parser("start", help="bootstrap and serve a keystone on 127.0.0.1:PORT")
    start.add_argument("--dir", required=True)
    start.add_argument("--port", type=int, required=True)
    start.add_argument("--admin-password", default=DEFAULT_ADMIN_PASSWORD)
    start.add_argument("--token-expiration", type=int, default=3600, metavar="SECONDS")
    start.add_argument("--workers", type=int, default=2)
    start.add_argument("--watch-pid", type=int, default=None, help="stop the server once this process is gone")
    start.add_argument("--no-template", action="store_true", help="bootstrap from scratch, no cached template")

    stop_parser = sub.add_parser("stop", help="stop the keystone of DIR")
    stop_parser.add_argument("--dir", required=True)

    seed = sub.add_parser("seed", help="create the test identities and service endpoints")
    seed.add_argument("--url", required=True, help="keystone's .../v3 URL")
    seed.add_argument("--admin-password", default=DEFAULT_ADMIN_PASSWORD)
    seed.add_argument("--network-url")
    seed.add_argument("--compute-url")
    seed.add_argument("--spec", help="JSON replacing the default identities (see default-spec)")
    seed.add_argument("--reset-passwords", action="store_true", help="set the spec's passwords on existing users")

    sub.add_parser("default-spec", help="print the default seeding spec")

    args = parser.parse_args()
    try:
        if args.command == "start":
            cmd_start(args)
        elif args.command == "stop":
            cmd_stop(args)
        elif args.command == "seed":
            cmd_seed(args)
        else:
            print(json.dumps(default_spec(), indent=2))
    except Failure as e:
        print("keystone.py: error: %s" % e, file=sys.stderr, flush=True)
        sys.exit(1)


if __name__ == "__main__":
    main()

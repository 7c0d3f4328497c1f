#!/usr/bin/env python3
"""Drives a running `tern server` with the real openstacksdk, without Keystone.

Usage: openstacksdk_compat.py ENDPOINT [TOKEN] [--quick] [--agent HOST]

  ENDPOINT  the bare Neutron endpoint, e.g. http://127.0.0.1:9696 (no /v2.0)
  TOKEN     the server's --token, if it has one (sent as X-Auth-Token)
  --quick   a shorter subset (discovery, networks, subnets, ports, bindings, errors)
  --agent   a chassis that must be listed by GET /v2.0/agents

openstacksdk reaches the endpoint through keystoneauth's "none" plugin
(auth_type="none", auth={"endpoint": URL}) or, with a token, its "admin_token"
plugin (auth={"endpoint": URL, "token": T}); it then finds v2.0 through the
server's version document at GET /.

Prints one line per step; on a failure, prints the HTTP exchanges that led to
it. Exits 0 only if every step passed.
"""

import argparse
import collections
import ipaddress
import json
import re
import sys
import traceback
import uuid

import openstack
import openstack.version
from openstack import exceptions as osexc

MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
RUN = uuid.uuid4().hex[:8]  # names are unique per run, so reruns on one store do not collide


def name(what):
    return f"compat-{RUN}-{what}"


class StepFailed(Exception):
    pass


class Recorder:
    """Keeps the last HTTP exchanges (requests' response hook) to show on failure."""

    def __init__(self, size=8):
        self.exchanges = collections.deque(maxlen=size)

    def hook(self, response, *args, **kwargs):
        request = response.request
        body = request.body
        if isinstance(body, bytes):
            body = body.decode("utf-8", "replace")
        self.exchanges.append(
            (request.method, request.url, body, response.status_code, response.text[:2000])
        )

    def clear(self):
        self.exchanges.clear()

    def dump(self):
        lines = []
        for method, url, body, status, text in self.exchanges:
            lines.append(f"    sent:     {method} {url}")
            if body:
                lines.append(f"              {body[:2000]}")
            lines.append(f"    received: {status} {text}")
        return "\n".join(lines) if lines else "    (no HTTP exchange recorded)"


def expect(condition, message, *values):
    if not condition:
        shown = " | ".join(_show(v) for v in values)
        raise StepFailed(f"{message}{': ' + shown if shown else ''}")


def expect_eq(actual, wanted, what, *context):
    if actual != wanted:
        shown = "".join(f" | {_show(v)}" for v in context)
        raise StepFailed(f"{what}: expected {_show(wanted)}, got {_show(actual)}{shown}")


def _show(value):
    if hasattr(value, "to_dict"):
        value = value.to_dict(computed=False)
    try:
        return json.dumps(value, default=str, sort_keys=True)[:1500]
    except (TypeError, ValueError):
        return repr(value)[:1500]


def expect_raises(exc_types, fn, what):
    """Calls fn, which must raise one of exc_types (an openstacksdk exception class or a tuple)."""
    try:
        result = fn()
    except exc_types as e:
        return e
    except osexc.HttpException as e:
        raise StepFailed(
            f"{what}: expected {_expected(exc_types)}, got {type(e).__name__} (HTTP {e.status_code}): {e}"
        )
    raise StepFailed(f"{what}: expected {_expected(exc_types)}, but it succeeded: {_show(result)}")


def _expected(exc_types):
    statuses = {
        osexc.BadRequestException: 400,
        osexc.NotFoundException: 404,
        osexc.ConflictException: 409,
    }
    types = exc_types if isinstance(exc_types, tuple) else (exc_types,)
    return " or ".join(f"{t.__name__} (HTTP {statuses.get(t, '?')})" for t in types)


def ip_of(port, subnet_id=None):
    for fixed in port.fixed_ips or []:
        if subnet_id is None or fixed.get("subnet_id") == subnet_id:
            return fixed.get("ip_address")
    return None


class Compat:
    def __init__(self, endpoint, token, agent):
        self.endpoint = endpoint.rstrip("/")
        self.token = token
        self.agent = agent
        self.recorder = Recorder()
        self.passed = 0
        self.failed = []
        self.cleanup = []  # (description, callable), undone in reverse order at the end
        self.conn = self.connect()
        self.net = self.conn.network

    # ---- plumbing ----

    def connect(self):
        common = dict(
            load_yaml_config=False,  # ignore clouds.yaml and OS_* variables of whoever runs this
            load_envvars=False,
            region_name="RegionOne",
            api_timeout=30,
        )
        # No network_endpoint_override: openstacksdk discovers v2.0 from the bare endpoint, as a client would.
        if self.token:
            conn = openstack.connect(
                auth_type="admin_token",
                auth={"endpoint": self.endpoint, "token": self.token},
                **common,
            )
        else:
            conn = openstack.connect(auth_type="none", auth={"endpoint": self.endpoint}, **common)
        conn.session.session.hooks["response"].append(self.recorder.hook)
        return conn

    def step(self, title, fn):
        self.recorder.clear()
        try:
            result = fn()
        except Exception as e:  # noqa: BLE001 - every failure is reported the same way
            detail = str(e) if isinstance(e, StepFailed) else f"{type(e).__name__}: {e}"
            print(f"FAIL {title}: {detail}", flush=True)
            if not isinstance(e, (StepFailed, osexc.SDKException)):
                traceback.print_exc(file=sys.stdout)
            print(self.recorder.dump(), flush=True)
            self.failed.append(title)
            raise SectionAborted() from e
        print(f"ok   {title}", flush=True)
        self.passed += 1
        return result

    def later(self, description, fn):
        self.cleanup.append((description, fn))

    def raw(self, method, path, body=None, authenticated=True):
        """A request through openstacksdk's own session (endpoint = the discovered /v2.0 URL)."""
        kwargs = {"raise_exc": False}
        if body is not None:
            kwargs["json"] = body
        if not authenticated:
            kwargs["authenticated"] = False
        return self.net.request(path, method, **kwargs)

    def run_sections(self, sections):
        for section in sections:
            print(f"# {section.__name__.removeprefix('section_').replace('_', ' ')}", flush=True)
            try:
                section()
            except SectionAborted:
                print("     (rest of this section skipped)", flush=True)
        print("# cleanup", flush=True)
        for description, fn in reversed(self.cleanup):
            try:
                fn()
            except osexc.NotFoundException:
                pass
            except Exception as e:  # noqa: BLE001 - cleanup failures are reported, not fatal
                print(f"warn cleanup {description}: {type(e).__name__}: {e}", flush=True)
        total = self.passed + len(self.failed)
        print(f"openstacksdk {openstack.version.__version__}: {self.passed} passed, {len(self.failed)} failed")
        for title in self.failed:
            print(f"  failed: {title}")
        return 0 if not self.failed and total > 0 else 1

    # ---- fixtures ----

    def make_network(self, what, **attrs):
        network = self.net.create_network(name=name(what), **attrs)
        self.later(f"network {network.id}", lambda: self.net.delete_network(network, ignore_missing=True))
        return network

    def make_subnet(self, network, cidr, **attrs):
        subnet = self.net.create_subnet(
            network_id=network.id, cidr=cidr, ip_version=4, name=name(f"subnet-{cidr}"), **attrs
        )
        self.later(f"subnet {subnet.id}", lambda: self.net.delete_subnet(subnet, ignore_missing=True))
        return subnet

    def make_port(self, network, what, **attrs):
        port = self.net.create_port(network_id=network.id, name=name(what), **attrs)
        self.later(f"port {port.id}", lambda: self.net.delete_port(port, ignore_missing=True))
        return port

    # ---- sections ----

    def section_discovery(self):
        def version_document():
            response = self.conn.session.get(self.endpoint + "/", authenticated=False, raise_exc=False)
            expect_eq(response.status_code, 200, "GET / status")
            versions = response.json().get("versions")
            expect(isinstance(versions, list), "GET / has no 'versions' list", response.text)
            v2 = [v for v in versions if v.get("id") == "v2.0"]
            expect(len(v2) == 1, "GET / lists no v2.0", versions)
            expect_eq(v2[0].get("status"), "CURRENT", "v2.0 status")
            links = v2[0].get("links") or []
            expect(
                any(link.get("rel") == "self" and "/v2.0" in link.get("href", "") for link in links),
                "v2.0 has no self link to /v2.0",
                links,
            )

        def resource_list():
            response = self.raw("GET", "/")
            expect_eq(response.status_code, 200, "GET /v2.0/ status")
            resources = response.json().get("resources")
            expect(isinstance(resources, list), "GET /v2.0/ has no 'resources' list", response.text)
            collections_ = {r.get("collection") for r in resources}
            for wanted in ("networks", "subnets", "ports"):
                expect(wanted in collections_, f"GET /v2.0/ does not list {wanted}", resources)
            for r in resources:
                expect(r.get("name") and r.get("links"), "resource without name or links", r)

        def endpoint_discovered():
            url = self.net.get_endpoint()
            expect(url.rstrip("/").endswith("/v2.0"), "openstacksdk's network endpoint is not .../v2.0", url)
            print(f"     network endpoint: {url}")

        self.step("GET / is Neutron's version document with v2.0 CURRENT", version_document)
        self.step("GET /v2.0/ lists the core resources", resource_list)
        self.step("openstacksdk discovers the v2.0 endpoint without Keystone", endpoint_discovered)
        if self.token:

            def token_required():
                bare = self.conn.session.get(
                    self.endpoint + "/v2.0/networks", authenticated=False, raise_exc=False
                )
                expect_eq(bare.status_code, 401, "GET /v2.0/networks without X-Auth-Token")
                wrong = self.conn.session.get(
                    self.endpoint + "/v2.0/networks",
                    authenticated=False,
                    headers={"X-Auth-Token": self.token + "-wrong"},
                    raise_exc=False,
                )
                expect_eq(wrong.status_code, 401, "GET /v2.0/networks with a wrong X-Auth-Token")

            self.step("--token: requests without the right X-Auth-Token get 401", token_required)

    def section_networks(self):
        state = {}

        def create():
            network = self.make_network("net-a", description="first", is_admin_state_up=True)
            expect(network.id, "no id", network)
            expect_eq(network.name, name("net-a"), "name")
            expect_eq(network.description, "first", "description")
            expect_eq(network.is_admin_state_up, True, "admin_state_up")
            expect_eq(network.status, "ACTIVE", "status")
            expect_eq(network.subnet_ids, [], "subnets")
            expect_eq(network.is_router_external, False, "router:external")
            expect(isinstance(network.revision_number, int), "revision_number is not an int", network)
            # Without Keystone there is no project to take from a token: any string will do ("" included).
            expect(isinstance(network.project_id, str), "project_id is not a string", network)
            state["a"] = network
            for what in ("net-b", "net-c"):
                state[what] = self.make_network(what)

        def get():
            network = self.net.get_network(state["a"].id)
            expect_eq(network.id, state["a"].id, "id")
            expect_eq(network.name, name("net-a"), "name")
            response = self.raw("GET", f"/networks/{state['a'].id}")
            body = response.json().get("network", {})
            expect_eq(body.get("tenant_id"), body.get("project_id"), "tenant_id == project_id in the raw body")

        def list_filtered():
            got = list(self.net.networks(name=name("net-a")))
            expect_eq([n.id for n in got], [state["a"].id], "networks(name=net-a)")
            # The same filter must be applied by the server itself (openstacksdk may filter client-side).
            response = self.raw("GET", f"/networks?name={name('net-b')}")
            ids = [n["id"] for n in response.json()["networks"]]
            expect_eq(ids, [state["net-b"].id], "GET /networks?name=net-b")
            ids = {n.id for n in self.net.networks()}
            expect({state[k].id for k in ("a", "net-b", "net-c")} <= ids, "unfiltered list misses networks", ids)

        def fields():
            response = self.raw("GET", f"/networks?name={name('net-a')}&fields=id&fields=name")
            items = response.json()["networks"]
            expect_eq(len(items), 1, "number of networks")
            expect_eq(sorted(items[0].keys()), ["id", "name"], "keys with fields=id&fields=name")

        def pagination():
            ours = {state[k].id for k in ("a", "net-b", "net-c")}
            first = self.raw("GET", "/networks?limit=1").json()
            expect_eq(len(first["networks"]), 1, "GET /networks?limit=1 count")
            marker = first["networks"][0]["id"]
            second = self.raw("GET", f"/networks?limit=1&marker={marker}").json()
            expect_eq(len(second["networks"]), 1, "GET /networks?limit=1&marker=... count")
            expect(second["networks"][0]["id"] != marker, "the marker page repeats the marker", second)
            # openstacksdk walks every page with limit=1 and must see each network exactly once.
            seen = [n.id for n in self.net.networks(limit=1)]
            expect_eq(len(seen), len(set(seen)), "pages repeat networks")
            expect(ours <= set(seen), "paging misses networks", seen)

        def update():
            # openstacksdk updates the object it is given in place: keep plain copies of what to compare.
            before = self.net.get_network(state["a"].id).revision_number
            updated = self.net.update_network(state["a"].id, name=name("net-a2"), description="second")
            expect_eq(updated.name, name("net-a2"), "name after update")
            expect_eq(updated.description, "second", "description after update")
            after = updated.revision_number
            expect(after > before, "revision_number did not increase", before, after)
            again = self.net.update_network(state["a"].id, is_admin_state_up=False)
            expect_eq(again.is_admin_state_up, False, "admin_state_up after update")
            expect(again.revision_number > after, "revision_number did not increase twice", after, again.revision_number)
            expect_eq(self.net.get_network(state["a"].id).revision_number, again.revision_number, "revision read back")
            found = self.net.find_network(name("net-a2"))
            expect(found is not None and found.id == state["a"].id, "find_network by the new name", found)

        def delete():
            self.net.delete_network(state["net-c"], ignore_missing=False)
            expect_raises(osexc.ResourceNotFound, lambda: self.net.get_network(state["net-c"].id), "get a deleted network")
            expect_raises(
                osexc.ResourceNotFound,
                lambda: self.net.delete_network(state["net-c"], ignore_missing=False),
                "delete a deleted network",
            )

        def not_found_shape():
            missing = str(uuid.uuid4())
            expect_raises(osexc.ResourceNotFound, lambda: self.net.get_network(missing), "get an unknown network")
            response = self.raw("GET", f"/networks/{missing}")
            expect_eq(response.status_code, 404, "status")
            body = response.json().get("NeutronError")
            expect(isinstance(body, dict), "no NeutronError object", response.text)
            for key in ("type", "message", "detail"):
                expect(key in body, f"NeutronError has no {key!r}", body)

        def unknown_field():
            response = self.raw("POST", "/networks", {"network": {"name": name("bad"), "no_such_field": 1}})
            expect_eq(response.status_code, 400, "POST /networks with an unknown field")
            expect(
                not [n for n in self.net.networks(name=name("bad"))], "a rejected network was written anyway"
            )
            expect_raises(
                osexc.BadRequestException,
                lambda: self.net.create_network(name=name("bad"), is_admin_state_up="maybe"),
                "create a network with admin_state_up='maybe'",
            )

        self.step("create networks (name, description, admin_state_up; status, project_id, revision_number)", create)
        self.step("get a network", get)
        self.step("list networks filtered by name (openstacksdk and the raw query)", list_filtered)
        self.step("list networks with fields=", fields)
        self.step("list networks with limit/marker", pagination)
        self.step("update a network; revision_number increases", update)
        self.step("delete a network; 404 afterwards (ResourceNotFound)", delete)
        self.step("404 for an unknown network in NeutronError's shape", not_found_shape)
        self.step("400 for an unknown field or a bad value (BadRequestException), nothing written", unknown_field)

    def section_subnets(self):
        state = {}

        def create():
            network = self.make_network("subnets")
            state["net"] = network
            subnet = self.make_subnet(
                network,
                "10.10.0.0/24",
                gateway_ip="10.10.0.1",
                allocation_pools=[{"start": "10.10.0.10", "end": "10.10.0.200"}],
                dns_nameservers=["8.8.8.8", "1.1.1.1"],
                host_routes=[{"destination": "192.168.100.0/24", "nexthop": "10.10.0.254"}],
                is_dhcp_enabled=True,
            )
            expect_eq(subnet.network_id, network.id, "network_id")
            expect_eq(subnet.cidr, "10.10.0.0/24", "cidr")
            expect_eq(subnet.ip_version, 4, "ip_version")
            expect_eq(subnet.gateway_ip, "10.10.0.1", "gateway_ip")
            expect_eq(subnet.allocation_pools, [{"start": "10.10.0.10", "end": "10.10.0.200"}], "allocation_pools")
            expect_eq(subnet.dns_nameservers, ["8.8.8.8", "1.1.1.1"], "dns_nameservers")
            expect_eq(
                subnet.host_routes, [{"destination": "192.168.100.0/24", "nexthop": "10.10.0.254"}], "host_routes"
            )
            expect_eq(subnet.is_dhcp_enabled, True, "enable_dhcp")
            state["a"] = subnet

        def defaults():
            subnet = self.make_subnet(state["net"], "10.11.0.0/24")
            expect_eq(subnet.gateway_ip, "10.11.0.1", "default gateway_ip")
            expect_eq(subnet.allocation_pools, [{"start": "10.11.0.2", "end": "10.11.0.254"}], "default allocation_pools")
            expect_eq(subnet.is_dhcp_enabled, True, "default enable_dhcp")
            expect_eq(subnet.dns_nameservers, [], "default dns_nameservers")
            expect_eq(subnet.host_routes, [], "default host_routes")
            state["b"] = subnet

        def network_lists_subnets():
            network = self.net.get_network(state["net"].id)
            expect_eq(sorted(network.subnet_ids), sorted([state["a"].id, state["b"].id]), "network's subnets")

        def list_filtered():
            got = sorted(s.id for s in self.net.subnets(network_id=state["net"].id))
            expect_eq(got, sorted([state["a"].id, state["b"].id]), "subnets(network_id=...)")
            got = [s.id for s in self.net.subnets(network_id=state["net"].id, cidr="10.11.0.0/24")]
            expect_eq(got, [state["b"].id], "subnets(network_id=..., cidr=10.11.0.0/24)")
            response = self.raw("GET", f"/subnets?network_id={state['net'].id}&cidr=10.10.0.0/24")
            expect_eq([s["id"] for s in response.json()["subnets"]], [state["a"].id], "GET /subnets?network_id&cidr")

        def update():
            before = state["a"].revision_number
            updated = self.net.update_subnet(
                state["a"].id,
                name=name("subnet-a2"),
                dns_nameservers=["9.9.9.9"],
                host_routes=[],
                is_dhcp_enabled=False,
                allocation_pools=[{"start": "10.10.0.10", "end": "10.10.0.220"}],
            )
            expect_eq(updated.name, name("subnet-a2"), "name")
            expect_eq(updated.dns_nameservers, ["9.9.9.9"], "dns_nameservers")
            expect_eq(updated.host_routes, [], "host_routes")
            expect_eq(updated.is_dhcp_enabled, False, "enable_dhcp")
            expect_eq(updated.allocation_pools, [{"start": "10.10.0.10", "end": "10.10.0.220"}], "allocation_pools")
            expect(updated.revision_number > before, "revision_number did not increase", before, updated.revision_number)

        def bad_input():
            expect_raises(
                osexc.BadRequestException,
                lambda: self.net.create_subnet(network_id=state["net"].id, cidr="10.12.0.0/33", ip_version=4),
                "create a subnet with cidr 10.12.0.0/33",
            )
            expect_raises(
                osexc.BadRequestException,
                lambda: self.net.create_subnet(network_id=state["net"].id, cidr="not-a-cidr", ip_version=4),
                "create a subnet with cidr not-a-cidr",
            )
            expect_raises(
                osexc.BadRequestException,
                lambda: self.net.create_subnet(
                    network_id=state["net"].id,
                    cidr="10.13.0.0/24",
                    ip_version=4,
                    allocation_pools=[{"start": "10.99.0.10", "end": "10.99.0.20"}],
                ),
                "create a subnet with an allocation pool outside its cidr",
            )
            expect_raises(
                osexc.ResourceNotFound,
                lambda: self.net.create_subnet(network_id=str(uuid.uuid4()), cidr="10.14.0.0/24", ip_version=4),
                "create a subnet on an unknown network",
            )

        def overlap():
            # Neutron itself answers 400 (InvalidInput) here; tern's issue asks for 409. Either is an error.
            try:
                subnet = self.net.create_subnet(network_id=state["net"].id, cidr="10.10.0.128/25", ip_version=4)
            except (osexc.ConflictException, osexc.BadRequestException) as e:
                print(f"     overlap rejected with HTTP {e.status_code}")
                return
            self.net.delete_subnet(subnet, ignore_missing=True)
            raise StepFailed(f"an overlapping subnet was accepted: {_show(subnet)}")

        def delete():
            self.net.delete_subnet(state["b"], ignore_missing=False)
            expect_raises(osexc.ResourceNotFound, lambda: self.net.get_subnet(state["b"].id), "get a deleted subnet")
            network = self.net.get_network(state["net"].id)
            expect_eq(network.subnet_ids, [state["a"].id], "network's subnets after the delete")

        self.step("create a subnet with pools, gateway, DNS servers, host routes", create)
        self.step("create a subnet with defaults (gateway .1, pool .2-.254, DHCP on)", defaults)
        self.step("the network lists its subnets", network_lists_subnets)
        self.step("list subnets filtered by network_id and cidr", list_filtered)
        self.step("update a subnet (name, DNS, host routes, DHCP, pools)", update)
        self.step("400 for a bad cidr / pool (BadRequestException), 404 for an unknown network", bad_input)
        self.step("an overlapping subnet on the same network is refused", overlap)
        self.step("delete a subnet", delete)

    def section_ports(self):
        state = {}

        def setup():
            state["net"] = self.make_network("ports")
            state["subnet"] = self.make_subnet(
                state["net"], "10.20.0.0/24", allocation_pools=[{"start": "10.20.0.10", "end": "10.20.0.100"}]
            )
            sg = self.net.create_security_group(name=name("ports-sg"))
            self.later(f"security group {sg.id}", lambda: self.net.delete_security_group(sg, ignore_missing=True))
            state["sg"] = sg

        def create_full():
            subnet = state["subnet"]
            device = str(uuid.uuid4())
            port = self.make_port(
                state["net"],
                "p1",
                fixed_ips=[{"subnet_id": subnet.id, "ip_address": "10.20.0.10"}],
                binding_host_id="compute-1",
                binding_vnic_type="normal",
                binding_profile={},
                device_owner="compute:nova",
                device_id=device,
                allowed_address_pairs=[{"ip_address": "10.20.0.250"}],
            )
            expect(MAC_RE.match(port.mac_address or ""), "mac_address is not a MAC", port.mac_address)
            expect_eq(port.network_id, state["net"].id, "network_id")
            expect_eq(port.fixed_ips, [{"subnet_id": subnet.id, "ip_address": "10.20.0.10"}], "fixed_ips")
            expect_eq(port.binding_host_id, "compute-1", "binding:host_id")
            expect_eq(port.binding_vif_type, "ovs", "binding:vif_type of a bound port")
            expect_eq(port.binding_vnic_type, "normal", "binding:vnic_type")
            expect_eq(port.device_owner, "compute:nova", "device_owner")
            expect_eq(port.device_id, device, "device_id")
            expect_eq(port.is_port_security_enabled, True, "port_security_enabled (default)")
            expect(port.status in ("ACTIVE", "DOWN", "BUILD"), "status", port.status)
            expect_eq(
                port.allowed_address_pairs,
                [{"ip_address": "10.20.0.250", "mac_address": port.mac_address}],
                "allowed_address_pairs (mac_address defaults to the port's)",
            )
            sgs = port.security_group_ids or []
            expect_eq(len(sgs), 1, "security_groups: the project's default group", sgs)
            default = self.net.get_security_group(sgs[0])
            expect_eq(default.name, "default", "the port's security group name")
            expect_eq(port.project_id, state["net"].project_id, "project_id")
            state["p1"] = port

        def create_allocated():
            a = self.make_port(state["net"], "p2")
            b = self.make_port(state["net"], "p3", fixed_ips=[{"subnet_id": state["subnet"].id}])
            pool = ipaddress.ip_network("10.20.0.0/24")
            ips = []
            for port in (a, b):
                expect_eq(len(port.fixed_ips or []), 1, "fixed_ips count", port.fixed_ips)
                expect_eq(port.fixed_ips[0]["subnet_id"], state["subnet"].id, "allocated subnet_id")
                ip = ipaddress.ip_address(port.fixed_ips[0]["ip_address"])
                expect(ip in pool and 10 <= int(ip) - int(pool.network_address) <= 100, "IP outside the pool", str(ip))
                ips.append(str(ip))
            expect(len({"10.20.0.10", *ips}) == 3, "an allocated IP is reused", ips)
            macs = {a.mac_address, b.mac_address, state["p1"].mac_address}
            expect_eq(len(macs), 3, "distinct generated MACs")
            state["p2"], state["p3"] = a, b

        def create_with_mac_and_sg():
            port = self.make_port(
                state["net"], "p4", mac_address="fa:16:3e:00:00:01", security_group_ids=[state["sg"].id]
            )
            expect_eq(port.mac_address, "fa:16:3e:00:00:01", "mac_address")
            expect_eq(port.security_group_ids, [state["sg"].id], "security_groups")
            state["p4"] = port

        def port_security():
            port = self.make_port(state["net"], "p5", is_port_security_enabled=False, security_group_ids=[])
            expect_eq(port.is_port_security_enabled, False, "port_security_enabled")
            expect_eq(port.security_group_ids, [], "security_groups")
            port = self.net.update_port(port, is_port_security_enabled=True)
            expect_eq(port.is_port_security_enabled, True, "port_security_enabled after update")
            state["p5"] = port
            network = self.make_network("no-port-security", is_port_security_enabled=False)
            expect_eq(network.is_port_security_enabled, False, "network port_security_enabled")
            state["other_subnet"] = self.make_subnet(network, "10.21.0.0/24")
            inherited = self.make_port(network, "inherits")
            expect_eq(inherited.is_port_security_enabled, False, "port_security_enabled inherited from the network")

        def list_filtered():
            ours = {state[k].id for k in ("p1", "p2", "p3", "p4", "p5")}
            got = {p.id for p in self.net.ports(network_id=state["net"].id)}
            expect_eq(got, ours, "ports(network_id=...)")
            got = [p.id for p in self.net.ports(device_id=state["p1"].device_id)]
            expect_eq(got, [state["p1"].id], "ports(device_id=...)")
            got = [p.id for p in self.net.ports(mac_address="fa:16:3e:00:00:01", network_id=state["net"].id)]
            expect_eq(got, [state["p4"].id], "ports(mac_address=...)")
            got = [p.id for p in self.net.ports(fixed_ips=["ip_address=10.20.0.10"], network_id=state["net"].id)]
            expect_eq(got, [state["p1"].id], "ports(fixed_ips=['ip_address=10.20.0.10'])")
            response = self.raw("GET", f"/ports?network_id={state['net'].id}&name={name('p3')}")
            expect_eq([p["id"] for p in response.json()["ports"]], [state["p3"].id], "GET /ports?network_id&name")
            response = self.raw("GET", f"/ports?network_id={state['net'].id}&binding:host_id=compute-1")
            expect_eq([p["id"] for p in response.json()["ports"]], [state["p1"].id], "GET /ports?binding:host_id=")

        def update():
            before = self.net.get_port(state["p1"].id)
            updated = self.net.update_port(
                state["p1"].id,
                name=name("p1b"),
                binding_host_id="compute-2",
                security_group_ids=[state["sg"].id],
                allowed_address_pairs=[{"ip_address": "10.20.0.0/28", "mac_address": "fa:16:3e:aa:bb:cc"}],
                fixed_ips=[{"subnet_id": state["subnet"].id, "ip_address": "10.20.0.20"}],
                binding_profile={"migrating_to": "compute-3"},
            )
            expect_eq(updated.name, name("p1b"), "name")
            expect_eq(updated.binding_host_id, "compute-2", "binding:host_id")
            expect_eq(updated.security_group_ids, [state["sg"].id], "security_groups")
            expect_eq(
                updated.allowed_address_pairs,
                [{"ip_address": "10.20.0.0/28", "mac_address": "fa:16:3e:aa:bb:cc"}],
                "allowed_address_pairs",
            )
            expect_eq(updated.fixed_ips, [{"subnet_id": state["subnet"].id, "ip_address": "10.20.0.20"}], "fixed_ips")
            expect_eq(updated.binding_profile, {"migrating_to": "compute-3"}, "binding:profile")
            expect_eq(updated.mac_address, before.mac_address, "mac_address changed")
            expect(
                updated.revision_number > before.revision_number,
                "revision_number did not increase",
                before.revision_number,
                updated.revision_number,
            )
            # The old address is free again.
            reuse = self.make_port(
                state["net"], "p6", fixed_ips=[{"subnet_id": state["subnet"].id, "ip_address": "10.20.0.10"}]
            )
            expect_eq(ip_of(reuse), "10.20.0.10", "the released IP")
            state["p1"], state["p6"] = updated, reuse

        def conflicts():
            e = expect_raises(
                osexc.ConflictException,
                lambda: self.net.create_port(
                    network_id=state["net"].id,
                    fixed_ips=[{"subnet_id": state["subnet"].id, "ip_address": "10.20.0.20"}],
                ),
                "create a port with an IP in use",
            )
            print(f"     IP in use: HTTP {e.status_code}: {e.details}")
            expect_raises(
                osexc.ConflictException,
                lambda: self.net.create_port(network_id=state["net"].id, mac_address="fa:16:3e:00:00:01"),
                "create a port with a MAC in use",
            )
            expect_raises(
                osexc.ConflictException,
                lambda: self.net.update_port(
                    state["p2"], fixed_ips=[{"subnet_id": state["subnet"].id, "ip_address": "10.20.0.20"}]
                ),
                "move a port onto an IP in use",
            )
            got = {p.id for p in self.net.ports(network_id=state["net"].id)}
            expect_eq(len(got), 6, "ports on the network after the refused writes")

        def bad_input():
            subnet = state["subnet"]
            expect_raises(
                osexc.BadRequestException,
                lambda: self.net.create_port(
                    network_id=state["net"].id, fixed_ips=[{"subnet_id": subnet.id, "ip_address": "10.99.0.5"}]
                ),
                "create a port with an IP outside its subnet",
            )
            expect_raises(
                osexc.BadRequestException,
                lambda: self.net.create_port(network_id=state["net"].id, mac_address="not-a-mac"),
                "create a port with a bad MAC",
            )
            expect_raises(
                osexc.BadRequestException,
                lambda: self.net.create_port(
                    network_id=state["net"].id, fixed_ips=[{"subnet_id": subnet.id, "ip_address": "10.20.0.999"}]
                ),
                "create a port with a malformed IP",
            )
            response = self.raw("POST", "/ports", {"port": {"network_id": state["net"].id, "bogus": True}})
            expect_eq(response.status_code, 400, "POST /ports with an unknown field")
            expect_raises(
                osexc.ResourceNotFound,
                lambda: self.net.create_port(network_id=str(uuid.uuid4())),
                "create a port on an unknown network",
            )
            expect_raises(
                osexc.ResourceNotFound,
                lambda: self.net.create_port(
                    network_id=state["net"].id, fixed_ips=[{"subnet_id": str(uuid.uuid4())}]
                ),
                "create a port on an unknown subnet",
            )
            # Neutron: InvalidInput "fixed_ips included invalid subnet" for another network's subnet.
            expect_raises(
                osexc.BadRequestException,
                lambda: self.net.create_port(
                    network_id=state["net"].id, fixed_ips=[{"subnet_id": state["other_subnet"].id}]
                ),
                "create a port with another network's subnet",
            )
            expect_raises(osexc.ResourceNotFound, lambda: self.net.get_port(str(uuid.uuid4())), "get an unknown port")
            got = {p.id for p in self.net.ports(network_id=state["net"].id)}
            expect_eq(len(got), 6, "ports on the network after the refused writes")

        def in_use():
            expect_raises(
                osexc.ConflictException,
                lambda: self.net.delete_network(state["net"], ignore_missing=False),
                "delete a network that has ports",
            )
            expect_raises(
                osexc.ConflictException,
                lambda: self.net.delete_subnet(state["subnet"], ignore_missing=False),
                "delete a subnet whose IPs are allocated",
            )
            expect_raises(
                osexc.ConflictException,
                lambda: self.net.delete_security_group(state["sg"], ignore_missing=False),
                "delete a security group that ports use",
            )
            self.net.get_network(state["net"].id)
            self.net.get_subnet(state["subnet"].id)

        def delete():
            for key in ("p1", "p2", "p3", "p4", "p5", "p6"):
                self.net.delete_port(state[key], ignore_missing=False)
            expect_eq(list(self.net.ports(network_id=state["net"].id)), [], "ports left on the network")
            expect_raises(osexc.ResourceNotFound, lambda: self.net.get_port(state["p1"].id), "get a deleted port")
            self.net.delete_security_group(state["sg"], ignore_missing=False)
            self.net.delete_subnet(state["subnet"], ignore_missing=False)
            self.net.delete_network(state["net"], ignore_missing=False)
            expect_raises(osexc.ResourceNotFound, lambda: self.net.get_network(state["net"].id), "get the network")

        self.step("set up a network, a subnet (pool .10-.100) and a security group", setup)
        self.step("create a port with a fixed IP, binding host, owner, address pair", create_full)
        self.step("create ports with allocated IPs (none given / subnet only)", create_allocated)
        self.step("create a port with a given MAC and security group", create_with_mac_and_sg)
        self.step("port security disabled / enabled, inherited from the network", port_security)
        self.step("list ports filtered by network, device, MAC, fixed IP, name, host", list_filtered)
        self.step("update a port (name, host, groups, pairs, fixed IP, profile)", update)
        self.step("409 for an IP or MAC in use (ConflictException), nothing written", conflicts)
        self.step("400 for bad IP / MAC / field / foreign subnet (BadRequestException), 404 for unknown ids", bad_input)
        self.step("409 deleting a network, subnet or security group in use", in_use)
        self.step("delete ports, then the security group, subnet and network", delete)

    def section_security_groups(self):
        state = {}

        def default_group():
            project = self.make_network("sg-probe").project_id
            groups = [g for g in self.net.security_groups(name="default") if g.project_id == project]
            expect_eq(len(groups), 1, "default groups of the project", [g.to_dict() for g in self.net.security_groups()])
            group = groups[0]
            rules = {
                (r["direction"], r["ethertype"], r.get("remote_group_id"), r.get("remote_ip_prefix"), r.get("protocol"))
                for r in group.security_group_rules
            }
            wanted = {
                ("egress", "IPv4", None, None, None),
                ("egress", "IPv6", None, None, None),
                ("ingress", "IPv4", group.id, None, None),
                ("ingress", "IPv6", group.id, None, None),
            }
            expect(wanted <= rules, "the default group lacks Neutron's default rules", sorted(map(str, rules)))
            listed = {r.id for r in self.net.security_group_rules(security_group_id=group.id)}
            expect_eq(listed, {r["id"] for r in group.security_group_rules}, "security_group_rules(security_group_id=)")

        def create():
            group = self.net.create_security_group(name=name("web"), description="web servers")
            self.later(f"security group {group.id}", lambda: self.net.delete_security_group(group, ignore_missing=True))
            expect_eq(group.name, name("web"), "name")
            expect_eq(group.description, "web servers", "description")
            directions = sorted((r["direction"], r["ethertype"]) for r in group.security_group_rules)
            expect_eq(directions, [("egress", "IPv4"), ("egress", "IPv6")], "a new group's default rules")
            state["sg"] = group

        def rules():
            sg = state["sg"]
            ssh = self.net.create_security_group_rule(
                security_group_id=sg.id,
                direction="ingress",
                ether_type="IPv4",
                protocol="tcp",
                port_range_min=22,
                port_range_max=22,
                remote_ip_prefix="0.0.0.0/0",
            )
            expect_eq(
                (ssh.direction, ssh.ether_type, ssh.protocol, ssh.port_range_min, ssh.port_range_max, ssh.remote_ip_prefix),
                ("ingress", "IPv4", "tcp", 22, 22, "0.0.0.0/0"),
                "ssh rule",
            )
            expect_eq(ssh.security_group_id, sg.id, "security_group_id")
            web = self.net.create_security_group_rule(
                security_group_id=sg.id,
                direction="ingress",
                ether_type="IPv4",
                protocol="tcp",
                port_range_min=80,
                port_range_max=443,
                remote_group_id=sg.id,
            )
            expect_eq(web.remote_group_id, sg.id, "remote_group_id")
            icmp = self.net.create_security_group_rule(
                security_group_id=sg.id, direction="ingress", ether_type="IPv4", protocol="icmp"
            )
            expect_eq(icmp.protocol, "icmp", "protocol")
            state["rules"] = [ssh, web, icmp]
            listed = {r.id for r in self.net.security_group_rules(security_group_id=sg.id, direction="ingress")}
            expect_eq(listed, {r.id for r in state["rules"]}, "security_group_rules(direction=ingress)")
            response = self.raw("GET", f"/security-group-rules?security_group_id={sg.id}&protocol=tcp")
            got = {r["id"] for r in response.json()["security_group_rules"]}
            expect_eq(got, {ssh.id, web.id}, "GET /security-group-rules?security_group_id&protocol=tcp")
            group = self.net.get_security_group(sg.id)
            expect({r.id for r in state["rules"]} <= {r["id"] for r in group.security_group_rules}, "group lacks its rules")

        def bad_rules():
            sg = state["sg"]
            expect_raises(
                osexc.ConflictException,
                lambda: self.net.create_security_group_rule(
                    security_group_id=sg.id,
                    direction="ingress",
                    ether_type="IPv4",
                    protocol="tcp",
                    port_range_min=22,
                    port_range_max=22,
                    remote_ip_prefix="0.0.0.0/0",
                ),
                "create a duplicate rule",
            )
            expect_raises(
                osexc.BadRequestException,
                lambda: self.net.create_security_group_rule(
                    security_group_id=sg.id, direction="sideways", ether_type="IPv4"
                ),
                "create a rule with direction=sideways",
            )
            expect_raises(
                osexc.BadRequestException,
                lambda: self.net.create_security_group_rule(
                    security_group_id=sg.id,
                    direction="ingress",
                    ether_type="IPv4",
                    protocol="tcp",
                    port_range_min=90,
                    port_range_max=80,
                ),
                "create a rule with port_range_min > port_range_max",
            )
            expect_raises(
                osexc.ResourceNotFound,
                lambda: self.net.create_security_group_rule(
                    security_group_id=str(uuid.uuid4()), direction="ingress", ether_type="IPv4"
                ),
                "create a rule in an unknown group",
            )

        def update():
            group = self.net.update_security_group(state["sg"].id, name=name("web2"), description="changed")
            expect_eq((group.name, group.description), (name("web2"), "changed"), "name, description")
            got = [g.id for g in self.net.security_groups(name=name("web2"))]
            expect_eq(got, [state["sg"].id], "security_groups(name=...)")

        def delete():
            self.net.delete_security_group_rule(state["rules"][0], ignore_missing=False)
            expect_raises(
                osexc.ResourceNotFound,
                lambda: self.net.get_security_group_rule(state["rules"][0].id),
                "get a deleted rule",
            )
            self.net.delete_security_group(state["sg"], ignore_missing=False)
            expect_raises(
                osexc.ResourceNotFound, lambda: self.net.get_security_group(state["sg"].id), "get a deleted group"
            )
            expect_raises(
                osexc.ResourceNotFound,
                lambda: self.net.get_security_group_rule(state["rules"][1].id),
                "get a rule of a deleted group",
            )

        self.step("the project's default security group has Neutron's default rules", default_group)
        self.step("create a security group (gets the two egress rules)", create)
        self.step("create rules (port, range, remote group, icmp); list with filters", rules)
        self.step("409 for a duplicate rule, 400 for bad rules, 404 for an unknown group", bad_rules)
        self.step("update a security group", update)
        self.step("delete a rule and a group (its rules go with it)", delete)

    def section_routers_and_floating_ips(self):
        state = {}

        def setup():
            ext = self.make_network("public", is_router_external=True)
            expect_eq(ext.is_router_external, True, "router:external")
            got = [n.id for n in self.net.networks(is_router_external=True, name=name("public"))]
            expect_eq(got, [ext.id], "networks(router:external=True)")
            response = self.raw("GET", f"/networks?router:external=true&name={name('public')}")
            expect_eq([n["id"] for n in response.json()["networks"]], [ext.id], "GET /networks?router:external=true")
            state["ext"] = ext
            state["ext_subnet"] = self.make_subnet(ext, "172.24.4.0/24", gateway_ip="172.24.4.1", is_dhcp_enabled=False)
            state["int"] = self.make_network("private")
            state["int_subnet"] = self.make_subnet(state["int"], "10.30.0.0/24")
            state["vm"] = self.make_port(state["int"], "vm", device_owner="compute:nova", device_id=str(uuid.uuid4()))

        def create_router():
            router = self.net.create_router(name=name("router"))
            self.later(f"router {router.id}", lambda: self.net.delete_router(router, ignore_missing=True))
            expect_eq(router.name, name("router"), "name")
            expect(not router.external_gateway_info, "external_gateway_info of a new router", router.external_gateway_info)
            expect_eq(router.status, "ACTIVE", "status")
            state["router"] = router
            got = [r.id for r in self.net.routers(name=name("router"))]
            expect_eq(got, [router.id], "routers(name=...)")

        def add_interface():
            result = self.net.add_interface_to_router(state["router"], subnet_id=state["int_subnet"].id)
            expect_eq(result.get("id"), state["router"].id, "id in add_router_interface's answer")
            expect_eq(result.get("subnet_id"), state["int_subnet"].id, "subnet_id")
            expect(result.get("port_id"), "no port_id in add_router_interface's answer", result)
            port = self.net.get_port(result["port_id"])
            expect_eq(port.device_owner, "network:router_interface", "interface port device_owner")
            expect_eq(port.device_id, state["router"].id, "interface port device_id")
            expect_eq(ip_of(port), "10.30.0.1", "interface port IP (the subnet's gateway)")
            got = [p.id for p in self.net.ports(device_id=state["router"].id)]
            expect_eq(got, [port.id], "ports(device_id=router)")
            state["interface_port"] = port.id
            expect_raises(
                (osexc.BadRequestException, osexc.ConflictException),
                lambda: self.net.add_interface_to_router(state["router"], subnet_id=state["int_subnet"].id),
                "add the same subnet twice",
            )

        def gateway():
            router = self.net.update_router(state["router"].id, external_gateway_info={"network_id": state["ext"].id})
            info = router.external_gateway_info or {}
            expect_eq(info.get("network_id"), state["ext"].id, "external_gateway_info.network_id")
            fixed = info.get("external_fixed_ips") or []
            expect(len(fixed) == 1, "external_fixed_ips", info)
            expect_eq(fixed[0].get("subnet_id"), state["ext_subnet"].id, "external_fixed_ips subnet")
            expect(
                ipaddress.ip_address(fixed[0]["ip_address"]) in ipaddress.ip_network("172.24.4.0/24"),
                "gateway IP outside the external subnet",
                fixed,
            )
            expect(router.revision_number is None or router.revision_number >= 1, "revision")

        def floating_ip():
            fip = self.net.create_ip(floating_network_id=state["ext"].id)
            self.later(f"floating ip {fip.id}", lambda: self.net.delete_ip(fip, ignore_missing=True))
            expect_eq(fip.floating_network_id, state["ext"].id, "floating_network_id")
            address = ipaddress.ip_address(fip.floating_ip_address)
            expect(address in ipaddress.ip_network("172.24.4.0/24"), "floating IP outside the external subnet", str(address))
            expect_eq(fip.port_id, None, "port_id of a new floating IP")
            expect_eq(fip.fixed_ip_address, None, "fixed_ip_address of a new floating IP")
            state["fip"] = fip
            got = [f.id for f in self.net.ips(floating_network_id=state["ext"].id)]
            expect_eq(got, [fip.id], "ips(floating_network_id=...)")

        def associate():
            vm = state["vm"]
            fip = self.net.update_ip(state["fip"].id, port_id=vm.id)
            expect_eq(fip.port_id, vm.id, "port_id")
            expect_eq(fip.fixed_ip_address, ip_of(vm), "fixed_ip_address")
            expect_eq(fip.router_id, state["router"].id, "router_id")
            got = [f.id for f in self.net.ips(port_id=vm.id)]
            expect_eq(got, [fip.id], "ips(port_id=...)")
            got = self.net.get_ip(fip.id)
            expect_eq(got.port_id, vm.id, "port_id read back")

        def create_associated():
            vm2 = self.make_port(state["int"], "vm2")
            fip = self.net.create_ip(floating_network_id=state["ext"].id, port_id=vm2.id)
            self.later(f"floating ip {fip.id}", lambda: self.net.delete_ip(fip, ignore_missing=True))
            expect_eq(fip.port_id, vm2.id, "port_id")
            expect_eq(fip.fixed_ip_address, ip_of(vm2), "fixed_ip_address")
            expect(fip.floating_ip_address != state["fip"].floating_ip_address, "floating IP reused")
            self.net.delete_ip(fip, ignore_missing=False)
            expect_raises(osexc.ResourceNotFound, lambda: self.net.get_ip(fip.id), "get a deleted floating IP")

        def bad_floating_ips():
            expect_raises(
                osexc.BadRequestException,
                lambda: self.net.create_ip(floating_network_id=state["int"].id),
                "create a floating IP on a network that is not external",
            )
            expect_raises(
                osexc.ResourceNotFound,
                lambda: self.net.create_ip(floating_network_id=str(uuid.uuid4())),
                "create a floating IP on an unknown network",
            )
            expect_raises(
                osexc.ResourceNotFound,
                lambda: self.net.update_ip(state["fip"].id, port_id=str(uuid.uuid4())),
                "associate a floating IP with an unknown port",
            )
            expect_raises(
                osexc.ConflictException,
                lambda: self.net.create_ip(
                    floating_network_id=state["ext"].id, floating_ip_address=state["fip"].floating_ip_address
                ),
                "create a floating IP with an address in use",
            )

        def disassociate():
            fip = self.net.update_ip(state["fip"].id, port_id=None)
            expect_eq(fip.port_id, None, "port_id")
            expect_eq(fip.fixed_ip_address, None, "fixed_ip_address")
            expect_eq(list(self.net.ips(port_id=state["vm"].id)), [], "ips(port_id=vm)")

        def clear_gateway():
            router = self.net.update_router(state["router"].id, external_gateway_info=None)
            expect(not router.external_gateway_info, "external_gateway_info after clearing", router.external_gateway_info)

        def remove_interface():
            result = self.net.remove_interface_from_router(state["router"], subnet_id=state["int_subnet"].id)
            expect_eq(result.get("subnet_id"), state["int_subnet"].id, "subnet_id")
            expect_eq(result.get("port_id"), state["interface_port"], "port_id")
            expect_raises(
                osexc.ResourceNotFound, lambda: self.net.get_port(state["interface_port"]), "get the interface port"
            )
            expect_raises(
                osexc.ResourceNotFound,
                lambda: self.net.remove_interface_from_router(state["router"], subnet_id=state["int_subnet"].id),
                "remove an interface that is not there",
            )

        def delete():
            self.net.delete_ip(state["fip"], ignore_missing=False)
            self.net.delete_router(state["router"], ignore_missing=False)
            expect_raises(osexc.ResourceNotFound, lambda: self.net.get_router(state["router"].id), "get a deleted router")

        self.step("external and internal networks (router:external filter)", setup)
        self.step("create a router", create_router)
        self.step("add a router interface by subnet (gateway IP port)", add_interface)
        self.step("set the router's external gateway", gateway)
        self.step("create a floating IP on the external network", floating_ip)
        self.step("associate the floating IP with a port", associate)
        self.step("create a floating IP already associated; delete it", create_associated)
        self.step("400 / 404 / 409 for bad floating IP requests", bad_floating_ips)
        self.step("disassociate the floating IP", disassociate)
        self.step("clear the router's external gateway", clear_gateway)
        self.step("remove the router interface by subnet", remove_interface)
        self.step("delete the floating IP and the router", delete)

    def section_port_bindings(self):
        state = {}

        def setup():
            network = self.make_network("bindings")
            self.make_subnet(network, "10.40.0.0/24")
            state["port"] = self.make_port(
                network, "migrating", binding_host_id="host-a", device_owner="compute:nova", device_id=str(uuid.uuid4())
            )

        def list_active():
            bindings = list(self.net.port_bindings(state["port"]))
            expect_eq(len(bindings), 1, "bindings of a port bound to host-a", [b.to_dict() for b in bindings])
            binding = bindings[0]
            expect_eq((binding.host, binding.status), ("host-a", "ACTIVE"), "host, status")
            expect_eq(binding.vif_type, "ovs", "vif_type")
            expect_eq(binding.vnic_type, "normal", "vnic_type")

        def create_inactive():
            binding = self.net.create_port_binding(state["port"], host="host-b", profile={"migrating": True})
            expect_eq((binding.host, binding.status), ("host-b", "INACTIVE"), "host, status of the new binding")
            expect_eq(binding.vif_type, "ovs", "vif_type")
            port = self.net.get_port(state["port"].id)
            expect_eq(port.binding_host_id, "host-a", "the port's binding:host_id while the new binding is inactive")
            got = sorted((b.host, b.status) for b in self.net.port_bindings(state["port"]))
            expect_eq(got, [("host-a", "ACTIVE"), ("host-b", "INACTIVE")], "bindings")
            response = self.raw("GET", f"/ports/{state['port'].id}/bindings?host=host-b")
            got = [b["host"] for b in response.json()["bindings"]]
            expect_eq(got, ["host-b"], "GET /ports/{id}/bindings?host=host-b")

        def duplicate():
            expect_raises(
                osexc.ConflictException,
                lambda: self.net.create_port_binding(state["port"], host="host-b"),
                "create a second binding on host-b",
            )
            expect_raises(
                osexc.ResourceNotFound,
                lambda: self.net.create_port_binding(str(uuid.uuid4()), host="host-b"),
                "create a binding for an unknown port",
            )
            response = self.raw("GET", f"/ports/{uuid.uuid4()}/bindings")
            expect_eq(response.status_code, 404, "GET /ports/{unknown}/bindings")
            response = self.raw("PUT", f"/ports/{state['port'].id}/bindings/host-z/activate")
            expect_eq(response.status_code, 404, "PUT /ports/{id}/bindings/host-z/activate (no such binding)")

        def activate():
            revision = self.net.get_port(state["port"].id).revision_number
            binding = self.net.activate_port_binding(state["port"].id, "host-b")
            expect(binding is not None, "activate_port_binding found no binding on host-b")
            response = self.raw("GET", f"/ports/{state['port'].id}/bindings?host=host-b")
            got = [(b["host"], b["status"]) for b in response.json()["bindings"]]
            expect_eq(got, [("host-b", "ACTIVE")], "host-b's binding after activation")
            got = sorted((b.host, b.status) for b in self.net.port_bindings(state["port"]))
            expect_eq(got, [("host-a", "INACTIVE"), ("host-b", "ACTIVE")], "bindings after activation")
            port = self.net.get_port(state["port"].id)
            expect_eq(port.binding_host_id, "host-b", "the port's binding:host_id after activation")
            expect(port.revision_number > revision, "port revision_number did not increase", revision, port.revision_number)
            expect_raises(
                osexc.ConflictException,
                lambda: self.net.activate_port_binding(state["port"], "host-b"),
                "activate the active binding again",
            )

        def delete():
            self.net.delete_port_binding(state["port"], "host-a", ignore_missing=False)
            got = [(b.host, b.status) for b in self.net.port_bindings(state["port"])]
            expect_eq(got, [("host-b", "ACTIVE")], "bindings after deleting host-a's")
            response = self.raw("DELETE", f"/ports/{state['port'].id}/bindings/host-a")
            expect_eq(response.status_code, 404, "DELETE a deleted binding")
            port = self.net.get_port(state["port"].id)
            expect_eq(port.binding_host_id, "host-b", "binding:host_id")

        def raw_paths():
            # The exact requests Nova sends, without openstacksdk's helpers.
            port_id = state["port"].id
            response = self.raw("POST", f"/ports/{port_id}/bindings", {"binding": {"host": "host-c", "vnic_type": "normal"}})
            expect_eq(response.status_code, 201, "POST /ports/{id}/bindings status")
            body = response.json().get("binding", {})
            expect_eq((body.get("host"), body.get("status")), ("host-c", "INACTIVE"), "POST answer's binding")
            response = self.raw("PUT", f"/ports/{port_id}/bindings/host-c/activate")
            expect_eq(response.status_code, 200, "PUT .../bindings/host-c/activate status")
            body = response.json().get("binding", {})
            expect_eq((body.get("host"), body.get("status")), ("host-c", "ACTIVE"), "activate answer's binding")
            response = self.raw("DELETE", f"/ports/{port_id}/bindings/host-b")
            expect_eq(response.status_code, 204, "DELETE .../bindings/host-b status")
            response = self.raw("GET", f"/ports/{port_id}/bindings")
            got = [(b["host"], b["status"]) for b in response.json()["bindings"]]
            expect_eq(got, [("host-c", "ACTIVE")], "GET /ports/{id}/bindings")

        def cleanup():
            self.net.delete_port(state["port"], ignore_missing=False)
            response = self.raw("GET", f"/ports/{state['port'].id}/bindings")
            expect_eq(response.status_code, 404, "bindings of a deleted port")

        self.step("a port bound to host-a", setup)
        self.step("GET /ports/{id}/bindings lists the active binding", list_active)
        self.step("create an inactive binding on host-b (create_port_binding)", create_inactive)
        self.step("409 for a second binding on one host, 404 for unknown port / binding", duplicate)
        self.step("activate host-b's binding (activate_port_binding); host-a's turns INACTIVE", activate)
        self.step("delete host-a's binding (delete_port_binding)", delete)
        self.step("the raw binding requests Nova sends (POST, PUT activate, DELETE)", raw_paths)
        self.step("deleting the port deletes its bindings", cleanup)

    def section_agents_and_extensions(self):
        def agents():
            agents_ = list(self.net.agents())
            for agent in agents_:
                expect(agent.id and agent.host and agent.agent_type, "agent without id, host or agent_type", agent)
                expect(isinstance(agent.is_alive, bool), "agent 'alive' is not a bool", agent)
            hosts = [a.host for a in agents_]
            print(f"     {len(agents_)} agent(s): {', '.join(hosts) or '-'}")
            if self.agent:
                expect(self.agent in hosts, f"agent {self.agent} is not listed", hosts)
                got = [a.host for a in self.net.agents(host=self.agent)]
                expect_eq(got, [self.agent], "agents(host=...)")
                agent = next(a for a in agents_ if a.host == self.agent)
                expect_eq(self.net.get_agent(agent.id).host, self.agent, "get_agent")
            response = self.raw("POST", "/agents", {"agent": {"host": "made-up", "agent_type": "Open vSwitch agent"}})
            expect(400 <= response.status_code < 500, "POST /agents (read-only) is not refused", response.status_code)
            expect("made-up" not in [a.host for a in self.net.agents()], "POST /agents created an agent")

        def extensions():
            aliases = {e.alias for e in self.net.extensions()}
            print(f"     extensions: {', '.join(sorted(aliases))}")
            for wanted in (
                "binding",
                "binding-extended",
                "router",
                "external-net",
                "security-group",
                "allowed-address-pairs",
                "port-security",
                "agent",
            ):
                expect(wanted in aliases, f"extension {wanted!r} is not listed", sorted(aliases))
            ext = self.net.find_extension("binding-extended", ignore_missing=False)
            expect_eq(ext.alias, "binding-extended", "find_extension('binding-extended')")
            expect(ext.name, "extension without a name", ext)
            response = self.raw("GET", "/extensions/binding-extended")
            expect_eq(response.status_code, 200, "GET /extensions/binding-extended")
            expect_eq(response.json().get("extension", {}).get("alias"), "binding-extended", "its alias")
            response = self.raw("GET", "/extensions/no-such-extension")
            expect_eq(response.status_code, 404, "GET /extensions/no-such-extension")

        self.step("list agents (read-only)", agents)
        self.step("list extensions (binding-extended and the others clients check)", extensions)

class SectionAborted(Exception):
    pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("endpoint")
    parser.add_argument("token", nargs="?", default="")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--agent", default="")
    args = parser.parse_args()
    try:
        compat = Compat(args.endpoint, args.token, args.agent)
    except Exception:  # noqa: BLE001
        print(f"FAIL connect to {args.endpoint} with openstacksdk {openstack.version.__version__}")
        traceback.print_exc(file=sys.stdout)
        return 1
    print(f"openstacksdk {openstack.version.__version__} -> {args.endpoint} (run {RUN})", flush=True)
    if args.quick:
        sections = [
            compat.section_discovery,
            compat.section_networks,
            compat.section_subnets,
            compat.section_ports,
            compat.section_port_bindings,
        ]
    else:
        sections = [
            compat.section_discovery,
            compat.section_networks,
            compat.section_subnets,
            compat.section_ports,
            compat.section_security_groups,
            compat.section_routers_and_floating_ips,
            compat.section_port_bindings,
            compat.section_agents_and_extensions,
        ]
    return compat.run_sections(sections)


if __name__ == "__main__":
    sys.exit(main())

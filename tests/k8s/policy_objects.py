"""Our rules for the objects around the pods: the web Service, the PodDisruptionBudgets,
the NetworkPolicies, and the KEDA credentials matching the pods' broker URL."""

from __future__ import annotations

from urllib.parse import urlsplit

from tests.k8s.manifests import Doc, Manifests, Workload, ref


def selects(selector: Doc, labels: dict[str, str]) -> bool:
    wanted = selector.get("matchLabels", {})
    return bool(wanted) and all(labels.get(k) == v for k, v in wanted.items())


def labels_of(workload: Workload) -> dict[str, str]:
    found: dict[str, str] = workload.deployment["spec"]["template"]["metadata"].get("labels", {})
    return found


def check_objects(manifests: Manifests) -> list[str]:
    problems: list[str] = []
    workloads = list(manifests.workloads())
    for workload in workloads:
        budgets = [
            ref(pdb)
            for pdb in manifests.of_kind("PodDisruptionBudget")
            if selects(pdb["spec"].get("selector", {}), labels_of(workload))
        ]
        if len(budgets) != 1:
            problems.append(f"{workload.ref}: needs exactly one PodDisruptionBudget; has {budgets}")
    policies = manifests.of_kind("NetworkPolicy")
    deny_all = [
        p
        for p in policies
        if "Ingress" in p["spec"].get("policyTypes", [])
        and not p["spec"].get("ingress")
        and all(selects(p["spec"].get("podSelector", {}), labels_of(w)) for w in workloads)
    ]
    if not deny_all:
        problems.append("no NetworkPolicy denies ingress to every asyncjobs pod by default")
    web = manifests.workload("web")
    services = [
        s
        for s in manifests.of_kind("Service")
        if selects({"matchLabels": s["spec"].get("selector", {})}, labels_of(web))
    ]
    ports = {p.get("name") for c in web.containers for p in c.get("ports", [])}
    if not services:
        problems.append(f"no Service selects the pods of {web.ref}")
    for service in services:
        for port in service["spec"].get("ports", []):
            if port.get("targetPort") not in ports:
                problems.append(
                    f"{ref(service)}: targetPort {port.get('targetPort')!r} is not a "
                    f"named containerPort of {web.ref} ({sorted(map(str, ports))})"
                )
    allowed = {
        str(port.get("port"))
        for p in policies
        if selects(p["spec"].get("podSelector", {}), labels_of(web))
        for rule in p["spec"].get("ingress", [])
        for port in rule.get("ports", [])
    }
    if not ports & allowed:
        problems.append(f"no NetworkPolicy lets HTTP reach {web.ref} (its ports {sorted(ports)})")
    return problems


def redis_credentials_problems(broker_url: str, params: dict[str, str], db: str) -> list[str]:
    """KEDA's address, password and database index are those of ASYNCJOBS_BROKER_URL."""
    url = urlsplit(broker_url)
    problems: list[str] = []
    address = f"{url.hostname}:{url.port or 6379}"
    if "address" in params and params["address"] != address:
        problems.append(f"KEDA's address {params['address']!r} is not BROKER_URL's {address!r}")
    if (url.password or "") != params.get("password", ""):
        problems.append("KEDA's password is not BROKER_URL's")
    url_db = url.path.strip("/") or "0"
    if db != url_db:
        problems.append(f"databaseIndex {db!r} is not BROKER_URL's database {url_db!r}")
    return problems

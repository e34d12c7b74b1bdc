#!/usr/bin/env python3
"""Dashboard and alert rules against a real Prometheus scraping real demos.

Two tslab-demo processes on ephemeral loopback ports, one clean and one injecting stale and double
frees, are scraped every second by a Prometheus (its own port, temporary storage) that loads the
real dashboards/tslab-alerts.yml, unchanged. Then:

1. every dashboard variable (label_values) returns values, and every panel query, with $job,
   $instance and $allocator substituted the way Grafana does (regex-escaped, multi-value joined),
   returns a non-empty result with at least one finite value from /api/v1/query;
2. every metric name the dashboard and the rules use appears in /api/v1/targets/metadata with the
   type the exporter promises (series Prometheus makes itself, such as `up`, are queried instead);
3. every rule evaluates without error (/api/v1/rules health "ok");
4. TslabStaleOrDoubleFree fires for the injecting demo, and neither it nor TslabExporterDown is
   pending or firing for the clean one.

The rule has no `for:` (one stale free is already a caller bug), so the real file reaches
`firing` within a few evaluation intervals: nothing is shortened for the test. Only the global
scrape and evaluation intervals (1 s) differ from production.

usage: live_prometheus.py --demo PATH [--prometheus PATH] --workdir DIR
Exit 77 (skip) when the demo or prometheus is missing, unless CI=true.
"""
import argparse
import json
import math
import os
import re
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.parse

import tslabdash as td

RATE_INTERVAL = "15s"   # $__rate_interval stand-in: >= 4 scrape intervals, as Grafana computes it
RANGE = "2m"            # $__range stand-in


def grafana_regex_value(values):
    """A multi-value variable as Grafana's Prometheus data source interpolates it into =~"...":
    each value regex-escaped (backslashes doubled for the PromQL string), joined as (a|b)."""
    esc = [re.sub(r"([\\^$*+?.()|{}\[\]])", r"\\\\\1", v) for v in values]
    return esc[0] if len(esc) == 1 else "(" + "|".join(esc) + ")"


class Prom:
    def __init__(self, base):
        self.base = base

    def api(self, path, **params):
        q = urllib.parse.urlencode(params, doseq=True)
        status, body = td.http_get(self.base + path + ("?" + q if q else ""), timeout=15)
        doc = json.loads(body)
        if doc.get("status") != "success":
            raise RuntimeError("%s: %s" % (path, doc))
        return doc["data"]

    def query(self, expr):
        return self.api("/api/v1/query", query=expr)


def substitute(expr, variables):
    for name, value in variables.items():
        expr = expr.replace("${%s}" % name, value).replace("$" + name, value)
    return expr.replace("$__rate_interval", RATE_INTERVAL).replace("$__range", RANGE)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--demo", default="")
    ap.add_argument("--prometheus", default="")
    ap.add_argument("--workdir", required=True)
    args = ap.parse_args()
    if not args.demo or not os.path.isfile(args.demo):
        td.skip_or_fail("tslab-demo not built (%r)" % args.demo)
    prometheus = td.find_tool(args.prometheus, "prometheus")
    if not prometheus:
        td.skip_or_fail("prometheus not installed (Debian package `prometheus`)")
    td.install_cleanup()
    os.makedirs(args.workdir, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="tslab-prom-", dir=args.workdir)
    failures = []
    try:
        failures = run(args, prometheus, tmp)
    finally:
        td._kill_children()
        shutil.rmtree(tmp, ignore_errors=True)
    for f in failures:
        print("FAIL: " + f, file=sys.stderr)
    print("live prometheus: %s" % ("FAILED" if failures else "ok"))
    return 1 if failures else 0


def start_prometheus(prometheus, tmp, clean, inject):
    cfg = os.path.join(tmp, "prometheus.yml")
    with open(cfg, "w") as f:
        f.write("""global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - %s
scrape_configs:
  - job_name: tslab
    static_configs:
      - targets: [%s]
        labels: {role: clean}
      - targets: [%s]
        labels: {role: inject}
""" % (json.dumps(td.RULES), json.dumps(clean), json.dumps(inject)))
    for attempt in range(3):
        port = td.free_port()
        if port == 9090:
            continue
        log = open(os.path.join(tmp, "prometheus.log"), "w")
        p = td.spawn([prometheus, "--config.file=" + cfg, "--storage.tsdb.path=" + os.path.join(tmp, "data"),
                      "--web.listen-address=127.0.0.1:%d" % port, "--log.level=warn"],
                     stdout=log, stderr=log)
        base = "http://127.0.0.1:%d" % port
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and p.poll() is None:
            try:
                if td.http_get(base + "/-/ready", timeout=2)[0] == 200:
                    return p, base
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(0.2)
        if p.poll() is None:
            raise SystemExit("prometheus not ready in 30 s; log:\n" + open(log.name).read()[-3000:])
        print("prometheus exited (port %d taken?), retrying; log:\n%s" % (port, open(log.name).read()[-1000:]))
    raise SystemExit("prometheus would not start")


def check_panels(prom, dash, variables, what, verbose):
    """Every panel query with `variables` substituted returns at least one finite sample; polled
    until a deadline, since rates need a few scrapes first."""
    failures = []
    pending = {(t, r): substitute(e, variables) for t, r, e in td.dashboard_exprs(dash)}
    total = len(pending)
    results = {}
    deadline = time.monotonic() + 60
    while pending and time.monotonic() < deadline:
        for key, expr in list(pending.items()):
            res = prom.query(expr)["result"]
            finite = [s for s in res if not math.isnan(float(s["value"][1]))]
            if finite:
                results[key] = (len(res), len(finite))
                del pending[key]
        if pending:
            time.sleep(1)
    if verbose:
        for (title, ref), (n, nf) in sorted(results.items()):
            print("  ok  %-58s %s: %d series (%d finite)" % (title, ref, n, nf))
    for (title, ref), expr in sorted(pending.items()):
        res = prom.query(expr)["result"]
        failures.append("panel %r query %s (%s) returned %s: %s" %
                        (title, ref, what, "NaN only" if res else "nothing", expr))
    if pending:
        targets = prom.api("/api/v1/targets", state="active")["activeTargets"]
        failures.append("targets then: %s" % [(t["labels"]["instance"], t["health"], t.get("lastError"))
                                              for t in targets])
    print("%s: %d of %d panel queries returned data" % (what, len(results), total))
    return failures


def run(args, prometheus, tmp):
    failures = []
    _c, clean_url = td.start_demo(args.demo, "--threads", "1")
    _i, inject_url = td.start_demo(args.demo, "--threads", "1", "--inject-bad-frees", "20")
    clean = urllib.parse.urlparse(clean_url).netloc
    inject = urllib.parse.urlparse(inject_url).netloc
    print("demos: clean %s, injecting %s" % (clean, inject))
    t_start = time.monotonic()
    _p, base = start_prometheus(prometheus, tmp, clean, inject)
    prom = Prom(base)
    print("prometheus at", base)

    # Targets are listed a few seconds after start: poll until both are up.
    deadline = time.monotonic() + 60
    health = {}
    while time.monotonic() < deadline:
        active = prom.api("/api/v1/targets", state="active")["activeTargets"]
        health = {t["labels"]["instance"]: (t["health"], t.get("lastError")) for t in active}
        if health.get(clean, ("",))[0] == "up" and health.get(inject, ("",))[0] == "up":
            break
        time.sleep(0.5)
    else:
        return ["targets not up in 60 s: %r" % health]
    print("targets up:", health)

    # 1. Variables, resolved the way Grafana would, then every panel query.
    dash = td.dashboard()
    variables = {"job": None, "instance": None, "allocator": None}
    for name in ("job", "instance", "allocator"):
        v = td.dashboard_variables(dash)[name]
        q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
        sel, label = re.match(r"label_values\((.*),\s*(\w+)\)$", q).groups()
        sel = substitute(sel, {k: val for k, val in variables.items() if val is not None})
        values = sorted(prom.api("/api/v1/label/%s/values" % label, **{"match[]": sel}))
        print("variable %s = %r  (%s)" % (name, values, sel))
        if not values:
            failures.append("variable %s: label_values(%s, %s) is empty" % (name, sel, label))
            return failures
        variables[name] = grafana_regex_value(values)
    if not {clean, inject} <= set(prom.api("/api/v1/label/instance/values", **{"match[]": "tslab_build_info"})):
        failures.append("instance variable does not list both demos")

    failures += check_panels(prom, dash, variables, "all values", verbose=True)
    # The same with one value per variable (Grafana interpolates a single value unbracketed).
    first_alloc = sorted(prom.api("/api/v1/label/allocator/values", **{"match[]": "tslab_reserved_bytes"}))[0]
    single = {"job": grafana_regex_value(["tslab"]), "instance": grafana_regex_value([inject]),
              "allocator": grafana_regex_value([first_alloc])}
    failures += check_panels(prom, dash, single, "single values %s" % json.dumps(single), verbose=False)

    # 2. Every metric name used in the dashboard and the rules, in the targets' metadata.
    meta = prom.api("/api/v1/targets/metadata", match_target='{job="tslab"}')
    have = {}
    for m in meta:
        have.setdefault(m["metric"], set()).add(m["type"])
    rules_api = prom.api("/api/v1/rules")
    loaded = [r for g in rules_api["groups"] for r in g["rules"]]
    used = set()
    for _t, _r, e in td.dashboard_exprs(dash):
        used |= td.metric_names(e)
    for v in td.dashboard_variables(dash).values():
        if v.get("type") == "query":
            q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
            used |= td.metric_names(re.match(r"label_values\((.*),\s*\w+\)$", q).group(1))
    for r in loaded:
        used |= td.metric_names(r["query"])
    cat = td.catalogue()
    for name in sorted(used):
        if name in td.SYNTHETIC:
            res = prom.query('%s{job="tslab"}' % name)["result"]
            ok = len(res) >= 2
            print("  %s  %-40s (made by Prometheus: %d series)" % ("ok" if ok else "--", name, len(res)))
            if not ok:
                failures.append("Prometheus series %s missing for the tslab targets" % name)
            continue
        want = cat.get(name)
        types, family = set(), name
        if name in have:
            types = have[name]
        elif name.endswith("_total") and "counter" in have.get(name[:-6], set()):
            types, family = {"counter"}, name[:-6]   # OpenMetrics: counter family without _total
        elif name.endswith("_info") and "info" in have.get(name[:-5], set()):
            types, family = {"info"}, name[:-5]
        elif (re.sub(r"_(bucket|sum|count)$", "", name) != name and
              "histogram" in have.get(re.sub(r"_(bucket|sum|count)$", "", name), set())):
            # A histogram's series: counters to rate(), under their family's metadata.
            family = re.sub(r"_(bucket|sum|count)$", "", name)
            types = {"counter"}
        ok = bool(types) and (want in types or (name == "tslab_build_info" and "info" in types))
        print("  %s  %-40s metadata %s %s, expected %s" %
              ("ok" if ok else "--", name, family, sorted(types) or "absent", want))
        if not types:
            failures.append("metric %s is not in /api/v1/targets/metadata" % name)
        elif not ok:
            failures.append("metric %s has type %s in metadata, expected %s" % (name, sorted(types), want))
    if len(used) < 15:
        failures.append("only %d metric names found in dashboard and rules: scanner broken?" % len(used))

    # 3. The real rule file is loaded and every rule evaluates cleanly.
    names = sorted(r["name"] for r in loaded)
    expected = sorted(r["alert"] for r in td.rules())
    if names != expected:
        failures.append("loaded rules %r, expected %r" % (names, expected))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        loaded = [r for g in prom.api("/api/v1/rules")["groups"] for r in g["rules"]]
        if all(r.get("health") == "ok" for r in loaded):
            break
        time.sleep(0.5)
    for r in loaded:
        if r.get("health") != "ok":
            failures.append("rule %s health %s: %s" % (r["name"], r.get("health"), r.get("lastError")))

    # 4. The stale-free alert fires for the injecting demo only.
    t0 = time.monotonic()
    deadline = t0 + 60
    firing = []
    while time.monotonic() < deadline:
        alerts = prom.api("/api/v1/alerts")["alerts"]
        firing = [a for a in alerts if a["labels"].get("alertname") == "TslabStaleOrDoubleFree"
                  and a["state"] == "firing" and a["labels"].get("instance") == inject]
        if any(a["labels"].get("reason") == "stale" for a in firing):
            break
        time.sleep(0.5)
    else:
        stale = prom.query('tslab_free_rejections_total{reason="stale",instance="%s"}' % inject)["result"]
        failures.append("TslabStaleOrDoubleFree not firing for %s after 60 s (stale counters: %s; alerts: %s)" %
                        (inject, [s["value"][1] for s in stale], alerts))
    print("TslabStaleOrDoubleFree firing for %s %.1f s after Prometheus started: reasons %s" %
          (inject, time.monotonic() - t_start, sorted({a["labels"].get("reason") for a in firing})))
    for a in prom.api("/api/v1/alerts")["alerts"]:
        n, inst = a["labels"].get("alertname"), a["labels"].get("instance")
        print("  alert %s %s %s" % (n, a["state"], json.dumps(a["labels"], sort_keys=True)))
        if n == "TslabStaleOrDoubleFree" and inst == clean:
            failures.append("TslabStaleOrDoubleFree is %s for the clean demo" % a["state"])
        if n == "TslabExporterDown":
            failures.append("TslabExporterDown is %s for %s" % (a["state"], inst))
    return failures


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Static checks of dashboards/: the Grafana dashboard, the alert rules and their unit tests, the
runbook and the built-in live page. Needs nothing but Python 3; runs without Prometheus.

Metric names and types come from the X-macro lists in allocator/include/tslab.h (plus the
exporter's fixed families), so renaming a counter there fails this test until the dashboard and
rules follow.
"""
import re
import sys

import tslabdash as td

errors = []


def err(msg):
    errors.append(msg)


def check_selectors(where, expr, cat, dashboard):
    sels = td.selectors(expr)
    if not sels:
        err("%s: no metric selector found in %r" % (where, expr))
    for s in sels:
        if s.name is None:
            err("%s: selector without a metric name: {%s}" % (where, s.matchers))
            continue
        typ = cat.get(s.name) or td.SYNTHETIC.get(s.name)
        if typ is None:
            err("%s: unknown metric %s (not exported by tslab)" % (where, s.name))
            continue
        if typ == "counter" and s.func not in td.RATE_FUNCS:
            err("%s: counter %s used outside rate/irate/increase (in %s)" % (where, s.name, s.func))
        if typ == "gauge" and s.func in td.RATE_FUNCS:
            err("%s: gauge %s inside %s()" % (where, s.name, s.func))
        if s.range is not None and s.func is None:
            err("%s: range selector %s[%s] outside a function" % (where, s.name, s.range))
        if dashboard:
            if s.range is not None:
                ok = {"$__rate_interval"} if s.func in ("rate", "irate") else {"$__rate_interval", "$__range"}
                if s.range not in ok:
                    err("%s: %s(%s[%s]) must use %s" % (where, s.func, s.name, s.range, " or ".join(sorted(ok))))
            for var in ("job", "instance"):
                if not re.search(r'\b%s=~"\$%s"' % (var, var), s.matchers):
                    err('%s: selector %s lacks %s=~"$%s"' % (where, s.name, var, var))
            if s.name.startswith("tslab_") and s.name not in ("tslab_build_info", "tslab_exporter_scrapes_total",
                                                               "tslab_exporter_render_seconds"):
                if 'allocator=~"$allocator"' not in s.matchers:
                    err('%s: selector %s lacks allocator=~"$allocator"' % (where, s.name))
    return {s.name for s in sels if s.name}


def lint_dashboard(cat):
    dash = td.dashboard()
    used = set()
    inputs = dash.get("__inputs", [])
    if not any(i.get("type") == "datasource" and i.get("pluginId") == "prometheus" for i in inputs):
        err("dashboard: __inputs has no Prometheus datasource")
    ds_input = next((i["name"] for i in inputs if i.get("pluginId") == "prometheus"), None)
    variables = td.dashboard_variables(dash)
    dsv = variables.get("datasource")
    if not dsv or dsv.get("type") != "datasource" or dsv.get("query") != "prometheus":
        err("dashboard: no `datasource` variable of type datasource/prometheus")
    elif ds_input and dsv.get("current", {}).get("value") != "${%s}" % ds_input:
        err("dashboard: datasource variable does not default to ${%s}" % ds_input)
    for name in ("job", "instance", "allocator"):
        v = variables.get(name)
        if not v or v.get("type") != "query":
            err("dashboard: missing query variable %s" % name)
            continue
        if v.get("datasource", {}).get("uid") != "${datasource}":
            err("dashboard: variable %s does not use ${datasource}" % name)
        q = v.get("query")
        q = q.get("query") if isinstance(q, dict) else q
        m = re.match(r"label_values\((.*),\s*(\w+)\)$", q or "")
        if not m or m.group(2) != name:
            err("dashboard: variable %s query %r is not label_values(..., %s)" % (name, q, name))
        else:
            used |= {s.name for s in td.selectors(m.group(1))}
            for s in td.selectors(m.group(1)):
                if s.name not in cat:
                    err("dashboard: variable %s selects unknown metric %s" % (name, s.name))
    panels = td.dashboard_panels(dash)
    titles = set()
    for p in panels:
        t = p.get("title") or ""
        where = "panel %r" % t
        if not t:
            err("dashboard: panel id %s has no title" % p.get("id"))
        if t in titles:
            err("dashboard: duplicate panel title %r" % t)
        titles.add(t)
        if len(p.get("description", "")) < 20:
            err("%s: no useful description" % where)
        if not p.get("fieldConfig", {}).get("defaults", {}).get("unit"):
            err("%s: no unit" % where)
        if p.get("datasource", {}).get("uid") != "${datasource}":
            err("%s: panel datasource is not ${datasource}" % where)
        if not p.get("targets"):
            err("%s: no queries" % where)
        for tgt in p.get("targets", []):
            w = "%s/%s" % (where, tgt.get("refId"))
            if tgt.get("datasource", {}).get("uid") != "${datasource}":
                err("%s: target datasource is not ${datasource}" % w)
            expr = tgt.get("expr", "")
            for var in ("$job", "$instance", "$allocator"):
                if var not in expr:
                    err("%s: query does not use %s" % (w, var))
            if re.search(r"\[\s*\d+[smhdwy]", expr):
                err("%s: hard-coded range in %r" % (w, expr))
            used |= check_selectors(w, expr, cat, dashboard=True)
    # The panels the issue asks for, by the metrics they must show.
    required = ["tslab_allocations_total", "tslab_frees_total", "tslab_live_objects",
                "tslab_slab_cache_hits_total", "tslab_slab_cache_lookups_total",
                "tslab_slab_cache_overflows_total", "tslab_free_rejections_total",
                "tslab_resident_bytes", "tslab_mapped_bytes", "process_resident_memory_bytes",
                "tslab_slabs", "tslab_exporter_render_seconds", "tslab_exporter_scrapes_total",
                "tslab_epochs_open", "tslab_epoch_closed_live_objects",
                "tslab_epoch_oldest_closed_live_age_seconds", "tslab_epochs_leaking"]
    for m in required:
        if m not in used:
            err("dashboard: no panel shows %s" % m)
    return len(panels)


def lint_rules(cat):
    rules = td.rules()
    readme = open(td.README, encoding="utf-8").read()
    headings = {h.strip() for h in re.findall(r"^###\s+(.+)$", readme, re.M)}
    names = [r["alert"] for r in rules]
    if len(rules) != 7 or len(set(names)) != len(names):
        err("rules: expected 7 distinct alerts, parsed %r" % names)
    for r in rules:
        w = "alert %s" % r["alert"]
        if not r["expr"]:
            err("%s: no expr parsed" % w)
            continue
        check_selectors(w, r["expr"], cat, dashboard=False)
        for a in ("summary", "description", "runbook_url"):
            if not r["annotations"].get(a):
                err("%s: no %s annotation" % (w, a))
        if r["labels"].get("severity") not in ("critical", "warning", "info"):
            err("%s: severity label missing or unusual: %r" % (w, r["labels"].get("severity")))
        anchor = "dashboards/README.md#" + r["alert"].lower()
        if r["annotations"].get("runbook_url") != anchor:
            err("%s: runbook_url should be %s" % (w, anchor))
        if r["alert"] not in headings:
            err("%s: no runbook heading `### %s` in dashboards/README.md" % (w, r["alert"]))
    cases = td.rule_test_cases()
    for n in names:
        fires = [c for c in cases if c[0] == n and c[2]]
        quiet = [c for c in cases if c[0] == n and not c[2]]
        if not fires:
            err("tests: no promtool case where %s fires" % n)
        if not quiet:
            err("tests: no promtool case where %s must not fire" % n)
    for c in cases:
        if c[0] not in names:
            err("tests: case for unknown alert %s" % c[0])
    return len(rules), len(cases)


def lint_page():
    html = open(td.INDEX_HTML, encoding="utf-8").read()
    # Self-contained: no external script, style, font, image or fetch.
    for pat, what in [(r"<script[^>]*\bsrc\s*=", "external <script src>"),
                      (r"<link[^>]*rel\s*=\s*[\"']?stylesheet", "external stylesheet"),
                      (r"@import", "CSS @import"),
                      (r"@font-face", "web font"),
                      (r"(?:src|href|url)\s*[=(]\s*[\"']?\s*(?:https?:)?//", "absolute URL"),
                      (r"fetch\(\s*[\"'`](?:https?:)?//", "absolute fetch")]:
        if re.search(pat, html, re.I):
            err("index.html: %s" % what)
    if "metrics.json" not in html:
        err("index.html: does not poll /metrics.json")
    fields = {f for f, *_ in td.header_stats()}
    # The JSON keys the page reads must be TSLAB_CLASS_STATS fields (the JSON keys).
    for key in ("allocations", "frees", "cache_hits", "cache_lookups", "live_objects", "resident_bytes",
                "mapped_bytes", "rejected_stale", "rejected_double"):
        if key not in fields:
            err("index.html: JSON key %s is no longer a TSLAB_CLASS_STATS field" % key)
        if not re.search(r"\b%s\b" % key, html):
            err("index.html: does not show %s" % key)
    if not re.search(r"getContext\(\s*[\"']2d", html) and "<svg" not in html:
        err("index.html: no canvas or svg charts")


def main():
    cat = td.catalogue()
    npanels = lint_dashboard(cat)
    nrules, ncases = lint_rules(cat)
    lint_page()
    # The scanner itself: a few fixed expectations, so a scanner bug cannot pass silently.
    probe = td.selectors('sum by (a) (rate(x_total{b="c{"}[5m])) / on (d) group_left (e) y and z offset 1h')
    if [(s.name, s.range, s.func) for s in probe] != [("x_total", "5m", "rate"), ("y", None, None), ("z", None, None)]:
        err("scanner self-test failed: %r" % probe)
    for e in errors:
        print("lint: " + e)
    print("lint: %d panels, %d alerts, %d promtool cases, %d problems" % (npanels, nrules, ncases, len(errors)))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A real Prometheus (2.42, Debian package) scrapes tslab-demo.

Prometheus runs on 127.0.0.1 on a free port (never 9090) with temporary storage and a 1 s scrape
interval; tslab-demo listens on an ephemeral port and injects bad frees. The test polls
/api/v1/targets until the target is up (no fixed sleeps), asserts through /api/v1/query that the
series exist with the expected label sets and that the counters grow, and through
/api/v1/targets/metadata that every family has the type and HELP the exporter declares.

Prometheus 2.42 asks for OpenMetrics first, so it stores counter metadata under the OpenMetrics
family name (tslab_allocations, not tslab_allocations_total); the test checks exactly that, which
also proves the content negotiation works with a real client.

usage: prometheus_scrape.py TSLAB_DEMO
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

import demolib

checks = demolib.Checks("prometheus_scrape")
JOB = "tslab-demo"


def api(prom_port, path, **params):
    url = f"http://127.0.0.1:{prom_port}{path}"
    if params:
        url += "?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=10) as r:
        doc = json.load(r)
    assert doc.get("status") == "success", f"{url}: {doc}"
    return doc["data"]


def query(prom_port, expr):
    """The instant vector of expr as a list of (labels, float value)."""
    data = api(prom_port, "/api/v1/query", query=expr)
    assert data["resultType"] == "vector", data
    return [(r["metric"], float(r["value"][1])) for r in data["result"]]


def poll(what, fn, deadline_s):
    """Calls fn every 100 ms until it returns a true value; that value, or fails after
    deadline_s. Polling a condition, not sleeping in its place."""
    end = time.monotonic() + deadline_s
    last_error = None
    while time.monotonic() < end:
        try:
            v = fn()
            if v:
                return v
        except (OSError, AssertionError, ValueError) as e:
            last_error = e
        time.sleep(0.1)
    raise AssertionError(f"timed out after {deadline_s}s waiting for {what}"
                         + (f" (last error: {last_error})" if last_error else ""))


def start_prometheus(prometheus, tmp, demo_port, scrape_configs=None):
    """Starts Prometheus scraping the demo (or with the given scrape_configs YAML text)."""
    config = os.path.join(tmp, "prometheus.yml")
    if scrape_configs is None:
        scrape_configs = f"""  - job_name: {JOB}
    static_configs:
      - targets: ['127.0.0.1:{demo_port}']
"""
    with open(config, "w") as f:
        f.write(f"""global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
{scrape_configs}""")
    for attempt in range(3):  # the free port may be taken between probe and bind
        port = demolib.free_port()
        log = open(os.path.join(tmp, f"prometheus-{attempt}.log"), "wb")
        p = demolib.spawn([prometheus, f"--config.file={config}",
                           f"--storage.tsdb.path={os.path.join(tmp, f'data{attempt}')}",
                           f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                          stdout=log, stderr=subprocess.STDOUT)

        def ready():
            if p.poll() is not None:
                raise RuntimeError("exited")
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=2) as r:
                return r.status == 200

        try:
            poll("Prometheus to be ready", ready, 60)
            return p, port
        except RuntimeError:
            log.close()
            with open(log.name, "rb") as f:
                sys.stderr.write(f.read().decode(errors="replace")[-2000:])
    raise AssertionError("Prometheus did not start")


def main():
    prometheus = demolib.need_tool("prometheus")
    demo, demo_port = demolib.start_demo(sys.argv[1], "--threads", "2",
                                         "--inject-bad-frees", "20")
    tmp = tempfile.mkdtemp(prefix="tslab-prom-")
    try:
        prom, prom_port = start_prometheus(prometheus, tmp, demo_port)
        print(f"prometheus on 127.0.0.1:{prom_port}, demo on 127.0.0.1:{demo_port}")

        def target_up():
            for t in api(prom_port, "/api/v1/targets")["activeTargets"]:
                if t["labels"].get("job") == JOB:
                    if t["health"] == "up":
                        return t
                    if t.get("lastError"):
                        print(f"  target: {t['health']} {t['lastError']}", file=sys.stderr)
            return None

        t = poll("the target to be up", target_up, 60)
        checks.check(t["scrapeUrl"] == f"http://127.0.0.1:{demo_port}/metrics",
                     f"scrape URL {t['scrapeUrl']}")

        # Series exist, with the intended label sets (9 classes: 4 sessions + 5 buffers).
        def count(expr):
            v = query(prom_port, f"count({expr})")
            return int(v[0][1]) if v else 0

        poll("tslab series in the TSDB", lambda: count("tslab_allocations_total") > 0, 30)
        checks.check(count("tslab_allocations_total") == 9, "9 allocations_total series")
        checks.check(count('tslab_free_rejections_total') == (9 + 2) * 4,
                     "rejections: 4 reasons x (9 classes + one class=\"none\" per allocator)")
        checks.check(count('tslab_free_rejections_total{class="none"}') == 8,
                     "class=\"none\" rejections for both allocators")
        checks.check(count('tslab_slabs') == 9 * 4, "slabs by 4 states for 9 classes")
        checks.check(count('tslab_slab_transitions_total') == 9 * 2, "2 transitions x 9 classes")
        checks.check(count('tslab_reserved_bytes') == 2, "reserved_bytes per allocator")
        v = query(prom_port, "tslab_build_info")
        checks.check(len(v) == 1 and v[0][1] == 1 and v[0][0].get("version") == "1.1.0",
                     f"tslab_build_info: {v}")
        v = query(prom_port, 'tslab_allocations_total{allocator="sessions",class="128"}')
        checks.check(len(v) == 1 and v[0][0].get("job") == JOB, f"sessions/128 series: {v}")
        for gauge in ["tslab_live_objects", "tslab_resident_bytes", "tslab_mapped_bytes",
                      "process_resident_memory_bytes", "process_open_fds", "process_threads",
                      "process_start_time_seconds", "process_max_fds",
                      "process_virtual_memory_bytes", "tslab_exporter_render_seconds"]:
            checks.check(count(gauge) >= 1, f"{gauge} is stored")
        v = query(prom_port, "sum(process_resident_memory_bytes)")
        checks.check(v and v[0][1] > 0, "process RSS > 0")

        # Counters grow between scrapes.
        counters = ["tslab_allocations_total", "tslab_frees_total", "tslab_slow_path_total",
                    'tslab_free_rejections_total{reason="stale"}',
                    'tslab_free_rejections_total{reason="double"}',
                    "tslab_exporter_scrapes_total", "process_cpu_seconds_total"]
        first = {}
        for c in counters:
            v = query(prom_port, f"sum({c})")
            first[c] = v[0][1] if v else None
            checks.check(first[c] is not None, f"{c} exists")
        for c in counters:
            if first[c] is None:
                continue
            try:
                poll(f"{c} to grow past {first[c]}",
                     lambda c=c: query(prom_port, f"sum({c})")[0][1] > first[c], 30)
            except AssertionError as e:
                checks.check(False, str(e))
        v = poll("a nonzero allocation rate",
                 lambda: query(prom_port, "sum(rate(tslab_allocations_total[5s])) > 0"), 30)
        print(f"allocation rate seen by Prometheus: {v[0][1]:.0f}/s")

        # Metadata: every family the exporter declares, with its type and HELP.
        _, _, body = demolib.get(demo_port, "/metrics",
                                 headers={"Accept": "application/openmetrics-text"})
        declared, helps = {}, {}
        for line in body.decode().splitlines():
            if line.startswith("# TYPE "):
                _, _, fam, typ = line.split(" ", 3)
                declared[fam] = typ
            elif line.startswith("# HELP "):
                _, _, fam, text = line.split(" ", 3)
                helps[fam] = text
        checks.check(len(declared) >= 25, f"only {len(declared)} families declared")

        def metadata():
            rows = api(prom_port, "/api/v1/targets/metadata",
                       match_target=f'{{job="{JOB}"}}')
            got = {r["metric"]: r for r in rows}
            return got if all(f in got for f in declared) else None

        try:
            meta = poll("metadata of every family", metadata, 30)
        except AssertionError as e:
            checks.check(False, str(e))
            meta = {r["metric"]: r for r in api(prom_port, "/api/v1/targets/metadata",
                                                  match_target=f'{{job="{JOB}"}}')}
        for fam, typ in sorted(declared.items()):
            m = meta.get(fam)
            if checks.check(m is not None, f"metadata for {fam}"):
                checks.check(m["type"] == typ, f"{fam}: type {m['type']}, declared {typ}")
                checks.check(m["help"] == helps.get(fam), f"{fam}: help {m['help']!r}")
        expected = {"tslab_allocations": "counter", "tslab_frees": "counter",
                    "tslab_free_rejections": "counter", "tslab_slab_cache_hits": "counter",
                    "tslab_slab_cache_lookups": "counter", "tslab_slow_path": "counter",
                    "tslab_live_objects": "gauge", "tslab_slabs": "gauge",
                    "tslab_resident_bytes": "gauge", "tslab_build_info": "gauge",
                    "tslab_exporter_scrapes": "counter", "process_cpu_seconds": "counter",
                    "process_resident_memory_bytes": "gauge"}
        for fam, typ in expected.items():
            m = meta.get(fam)
            checks.check(m is not None and m["type"] == typ,
                         f"{fam} has type {m['type'] if m else None}, expected {typ}")

        checks.check(demolib.stop(prom) == 0, "prometheus stopped cleanly")
        checks.check(demolib.stop(demo) == 0, "tslab-demo exited 0 after SIGTERM")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return checks.done()


if __name__ == "__main__":
    sys.exit(main())

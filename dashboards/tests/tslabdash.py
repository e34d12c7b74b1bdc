# SPDX-License-Identifier: MIT
"""Shared helpers for the dashboards/ tests (Python 3 standard library only).

- the metric catalogue, derived from TSLAB_CLASS_STATS, TSLAB_INSTANCE_STATS and
  TSLAB_EPOCH_STATS in allocator/include/tslab.h plus the exporter's fixed families, so a renamed counter breaks these tests instead of a dashboard;
- a small PromQL scanner that finds the metric names an expression selects and the function
  each selector sits in (enough for our own expressions; not a full parser);
- readers for our own dashboard JSON and rule/test YAML files (line based: the standard library
  has no YAML, and the files are ours, written in one consistent layout).
"""
import json
import os
import re

HERE = os.path.dirname(os.path.abspath(__file__))
DASH_DIR = os.path.dirname(HERE)
ROOT = os.path.dirname(DASH_DIR)
HEADER = os.path.join(ROOT, "allocator", "include", "tslab.h")
DASHBOARD = os.path.join(DASH_DIR, "tslab-overview.json")
RULES = os.path.join(DASH_DIR, "tslab-alerts.yml")
RULE_TESTS = os.path.join(DASH_DIR, "tslab-alerts.test.yml")
README = os.path.join(DASH_DIR, "README.md")
INDEX_HTML = os.path.join(ROOT, "telemetry", "src", "index.html")

# Series Prometheus itself attaches to every target; they are never in /targets/metadata.
SYNTHETIC = {"up": "gauge", "scrape_duration_seconds": "gauge", "scrape_samples_scraped": "gauge",
             "scrape_samples_post_metric_relabeling": "gauge", "scrape_series_added": "gauge"}


def header_stats(path=HEADER):
    """[(field, type, metric, label_key, label_value)] from the TSLAB_CLASS_STATS X-macro."""
    text = open(path, encoding="utf-8").read()
    m = re.search(r"#define TSLAB_CLASS_STATS\(X\)(.*?)\n\s*\n", text, re.S)
    if not m:
        raise SystemExit("TSLAB_CLASS_STATS not found in " + path)
    body = m.group(1).replace("\\\n", " ")
    rows = re.findall(r'X\(\s*(\w+)\s*,\s*(\w+)\s*,\s*(\w+)\s*,\s*"([^"]*)"\s*,\s*"([^"]*)"\s*,'
                      r'\s*"([^"]*)"', body)
    if len(rows) < 10:
        raise SystemExit("parsed only %d TSLAB_CLASS_STATS rows" % len(rows))
    return [(f, t.lower(), metric, lk, lv) for f, _src, t, metric, lk, lv in rows]


def catalogue():
    """{metric family name as exposed in the text format: 'counter' | 'gauge'}."""
    cat = {}
    for _f, typ, metric, _lk, _lv in header_stats():
        cat["tslab_" + metric] = typ
    # TSLAB_INSTANCE_STATS: X(field, "metric", ...), every row a gauge.
    text = open(HEADER, encoding="utf-8").read()
    m = re.search(r"#define TSLAB_INSTANCE_STATS\(X\)(.*?)\n\s*\n", text, re.S)
    if not m:
        raise SystemExit("TSLAB_INSTANCE_STATS not found in " + HEADER)
    for metric in re.findall(r'X\(\s*\w+\s*,\s*"([^"]*)"', m.group(1).replace("\\\n", " ")):
        cat["tslab_" + metric] = "gauge"
    # TSLAB_EPOCH_STATS: X(field, TYPE, "metric", "help"), one series per allocator and label.
    m = re.search(r"#define TSLAB_EPOCH_STATS\(X\)(.*?)\n\s*\n", text, re.S)
    if not m:
        raise SystemExit("TSLAB_EPOCH_STATS not found in " + HEADER)
    rows = re.findall(r'X\(\s*\w+\s*,\s*(COUNTER|GAUGE)\s*,\s*"([^"]*)"', m.group(1).replace("\\\n", " "))
    if len(rows) < 5:
        raise SystemExit("parsed only %d TSLAB_EPOCH_STATS rows" % len(rows))
    for typ, metric in rows:
        cat["tslab_" + metric] = typ.lower()
    cat.update({
        "tslab_reserved_bytes": "gauge", "tslab_build_info": "gauge",
        "tslab_epoch_leak_threshold_seconds": "gauge",
        "tslab_exporter_scrapes_total": "counter", "tslab_exporter_render_seconds": "gauge",
        "process_resident_memory_bytes": "gauge", "process_virtual_memory_bytes": "gauge",
        "process_start_time_seconds": "gauge", "process_open_fds": "gauge",
        "process_max_fds": "gauge", "process_threads": "gauge",
        "process_cpu_seconds_total": "counter",
        # The sampler's families (telemetry/src/render_prom.c): a histogram's series are
        # counters, the age buckets a gauge.
        "tslab_object_lifetime_seconds_bucket": "counter",
        "tslab_object_lifetime_seconds_sum": "counter",
        "tslab_object_lifetime_seconds_count": "counter",
        "tslab_sampled_live_objects_by_age": "gauge",
        "tslab_class_lock_waits_total": "counter", "tslab_class_lock_wait_seconds_total": "counter"})
    return cat


# ---- PromQL scanning --------------------------------------------------------------------------
AGGREGATIONS = {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
                "bottomk", "topk", "quantile"}
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
            "unless", "offset", "atan2", "inf", "nan", "start", "end"}
LABEL_LIST = {"by", "without", "on", "ignoring", "group_left", "group_right"}
RATE_FUNCS = {"rate", "irate", "increase"}
IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


class Selector:
    def __init__(self, name, matchers, rng, func):
        self.name, self.matchers, self.range, self.func = name, matchers, rng, func

    def __repr__(self):
        return "Selector(%s{%s}[%s] in %s)" % (self.name, self.matchers, self.range, self.func)


def _skip_string(s, i):
    q = s[i]
    i += 1
    while i < len(s) and s[i] != q:
        i += 2 if s[i] == "\\" and q != "`" else 1
    return i + 1


def _until(s, i, close):
    """Index just past the bracket that closes at s[i] (strings inside are skipped)."""
    depth = 0
    opener = s[i]
    while i < len(s):
        c = s[i]
        if c in "\"'`":
            i = _skip_string(s, i)
            continue
        if c == opener:
            depth += 1
        elif c == close:
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise ValueError("unbalanced %r in %r" % (opener, s))


def selectors(expr):
    """Every vector selector in expr, with its matcher text, range (or None) and the innermost
    function it is an argument of (None at top level or inside plain parentheses)."""
    out, stack, i, s = [], [], 0, expr
    while i < len(s):
        c = s[i]
        if c in "\"'`":
            i = _skip_string(s, i)
        elif c == "#":  # comment to end of line
            j = s.find("\n", i)
            i = len(s) if j < 0 else j
        elif c == "(":
            stack.append(None)
            i += 1
        elif c == ")":
            if stack:
                stack.pop()
            i += 1
        elif c == "{":  # selector with no metric name: {__name__=...}; not used by us
            j = _until(s, i, "}")
            out.append(Selector(None, s[i + 1:j - 1], None, _innermost(stack)))
            i = j
        elif c == "[":  # subquery or stray range: skip
            i = _until(s, i, "]")
        elif c.isdigit() or (c == "." and i + 1 < len(s) and s[i + 1].isdigit()):
            j = i
            while j < len(s) and (s[j].isalnum() or s[j] in "._"):
                j += 1
            i = j
        elif c == "$":  # Grafana variable outside a string (none expected); skip it
            m = re.compile(r"\$\{?[A-Za-z0-9_]+\}?").match(s, i)
            i = m.end() if m else i + 1
        else:
            m = IDENT.match(s, i)
            if not m:
                i += 1
                continue
            word, j = m.group(0), m.end()
            k = j
            while k < len(s) and s[k].isspace():
                k += 1
            nxt = s[k] if k < len(s) else ""
            low = word.lower()
            if low in LABEL_LIST:
                if nxt == "(":
                    j = _until(s, k, ")")
                i = j
            elif low in KEYWORDS:
                i = j
            elif low in AGGREGATIONS:
                stack_name = low
                # sum by (x) (...) / sum (...) by (x): the next "(" that is not a label list
                i = j
                stack.append(("pending", stack_name))
            elif nxt == "(":
                stack.append(("pending", word))
                i = j
            else:
                matchers, rng, j2 = "", None, k
                if nxt == "{":
                    j2 = _until(s, k, "}")
                    matchers = s[k + 1:j2 - 1]
                    k2 = j2
                    while k2 < len(s) and s[k2].isspace():
                        k2 += 1
                else:
                    k2 = k
                if k2 < len(s) and s[k2] == "[":
                    j3 = _until(s, k2, "]")
                    rng = s[k2 + 1:j3 - 1].strip()
                    j2 = j3
                out.append(Selector(word, matchers, rng, _innermost(stack)))
                i = max(j2, j)
            continue
        # a "(" right after a pending function name belongs to that function
        if c == "(" and len(stack) >= 2 and isinstance(stack[-2], tuple) and stack[-2][0] == "pending":
            name = stack[-2][1]
            stack.pop()
            stack[-1] = ("call", name)
    return out


def _innermost(stack):
    for item in reversed(stack):
        if isinstance(item, tuple) and item[0] == "call":
            return item[1]
    return None


def metric_names(expr):
    return {sel.name for sel in selectors(expr) if sel.name}


# ---- our files --------------------------------------------------------------------------------
def dashboard():
    with open(DASHBOARD, encoding="utf-8") as f:
        return json.load(f)


def dashboard_panels(dash=None):
    """Non-row panels, including those nested in collapsed rows."""
    dash = dash or dashboard()
    out = []
    for p in dash.get("panels", []):
        if p.get("type") == "row":
            out.extend(p.get("panels", []))
        else:
            out.append(p)
    return out


def dashboard_exprs(dash=None):
    """[(panel title, refId, expr)] for every query target of every panel."""
    return [(p.get("title"), t.get("refId"), t.get("expr"))
            for p in dashboard_panels(dash) for t in p.get("targets", [])]


def dashboard_variables(dash=None):
    dash = dash or dashboard()
    return {v["name"]: v for v in dash.get("templating", {}).get("list", [])}


def _block_scalar(lines, i, indent):
    """Lines of a YAML block scalar (| or >-) starting after line i, at more than indent."""
    out = []
    i += 1
    while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent):
        out.append(lines[i].strip())
        i += 1
    return out, i


def rules():
    """[{alert, expr, for, labels{}, annotations{}}] from tslab-alerts.yml."""
    lines = open(RULES, encoding="utf-8").read().split("\n")
    out, cur, section, i = [], None, None, 0
    while i < len(lines):
        line = lines[i]
        s = line.strip()
        ind = len(line) - len(line.lstrip())
        if not s or s.startswith("#"):
            i += 1
            continue
        m = re.match(r"- alert:\s*(\S+)", s)
        if m:
            cur = {"alert": m.group(1), "expr": None, "for": None, "labels": {}, "annotations": {}}
            out.append(cur)
            section = None
            i += 1
            continue
        m = re.match(r"([A-Za-z_]+):\s*(.*)$", s)
        if cur is not None and m:
            key, val = m.group(1), m.group(2)
            if key in ("labels", "annotations") and not val:
                section, section_indent = key, ind
                i += 1
                continue
            if section and ind <= section_indent:
                section = None
            if val in ("|", "|-", ">", ">-"):
                body, i = _block_scalar(lines, i, ind)
                text = ("\n" if val.startswith("|") else " ").join(body).strip()
            else:
                text = val.strip().strip('"')
                i += 1
            if section:
                cur[section][key] = text
            elif key in ("expr", "for"):
                cur[key] = text
            continue
        i += 1
    return out


def rule_test_cases():
    """[(alertname, eval_time, fires: bool)] from tslab-alerts.test.yml."""
    text = open(RULE_TESTS, encoding="utf-8").read()
    out = []
    for m in re.finditer(r"- eval_time:\s*(\S+)\s*\n\s*alertname:\s*(\S+)\s*\n\s*exp_alerts:(.*)", text):
        out.append((m.group(2), m.group(1), m.group(3).strip() != "[]"))
    return out


def skip_or_fail(msg):
    """Missing prerequisite: skip (77) locally, fail in CI (CI=true)."""
    import sys
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        print("FAIL (CI=true, not skipping): " + msg, file=sys.stderr)
        sys.exit(1)
    print("SKIP: " + msg, file=sys.stderr)
    sys.exit(77)


# ---- processes ----------------------------------------------------------------------------------
import select
import signal
import subprocess
import time

_children = []


def _kill_children(*_):
    """Stops every process group this test started (by id), newest first."""
    while _children:
        p = _children.pop()
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait()
    _reap_orphans()


def _reap_orphans():
    """Waits for descendants that were re-parented to us (see install_cleanup)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def install_cleanup():
    """Kills every started process group at exit or on a signal. The test also becomes a child
    subreaper (Linux), so helpers that daemonise (Chromium's zygote) are re-parented to it and
    reaped here instead of lingering as zombies under a PID 1 that may not reap."""
    import atexit
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        pass
    atexit.register(_reap_orphans)
    atexit.register(_kill_children)

    def on_signal(signum, _frame):
        _kill_children()
        os._exit(128 + signum)

    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, on_signal)


def _die_with_parent():
    import ctypes

    try:
        ctypes.CDLL(None).prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def spawn(argv, **kw):
    """Starts argv in its own process group (so the whole tree can be stopped) and tracks it. The
    child also gets SIGTERM if this test dies without cleaning up (SIGKILL from a timeout)."""
    p = subprocess.Popen(argv, start_new_session=True, preexec_fn=_die_with_parent, **kw)
    _children.append(p)
    return p


def start_demo(demo, *extra, timeout=30):
    """Starts tslab-demo on an ephemeral loopback port; returns (process, base URL)."""
    # --duration: a demo outlives a killed test by a few minutes at most.
    argv = [demo, "--listen", "127.0.0.1:0", "--quiet", "--duration", "600"] + list(extra)
    p = spawn(argv, stdout=subprocess.PIPE, stderr=None, text=True, bufsize=1)
    deadline = time.monotonic() + timeout
    buf = ""
    while time.monotonic() < deadline:
        if p.poll() is not None:
            raise SystemExit("demo exited with %s before listening: %s" % (p.returncode, " ".join(argv)))
        r, _, _ = select.select([p.stdout], [], [], 0.5)
        if r:
            line = p.stdout.readline()
            buf += line
            m = re.match(r"listening on (http://[^/\s]+/)\s*$", line)
            if m:
                return p, m.group(1)
    raise SystemExit("demo printed no `listening on` line in %d s (got %r)" % (timeout, buf))


def http_get(url, timeout=10, headers=None):
    import urllib.request

    req = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, r.read()


def find_tool(explicit, name):
    import shutil

    if explicit and os.path.isfile(explicit) and os.access(explicit, os.X_OK):
        return explicit
    return shutil.which(name) if not explicit else None


def free_port():
    """A loopback port that was free a moment ago (for programs that cannot take port 0)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

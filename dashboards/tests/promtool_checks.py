#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""promtool on the rule and config files.

  check: `promtool check rules` (every alert of tslab-alerts.yml found) and `promtool check config prometheus.yml`.
  test:  `promtool test rules tslab-alerts.test.yml` passes; and, so that a firing case cannot
         pass by accident, for each alert a copy of the rules where only that alert can never
         fire must make the unit tests fail on that alert.

usage: promtool_checks.py check|test [--promtool PATH]
Exit 77 (skip) when promtool is missing, unless CI=true.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

import tslabdash as td


def run(argv, cwd):
    p = subprocess.run(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
    return p.returncode, p.stdout


def never_fires(rules_text, alert):
    """rules_text with alert's expression replaced by one that is never true."""
    lines = rules_text.split("\n")
    out, i, in_alert = [], 0, False
    while i < len(lines):
        line = lines[i]
        m = re.match(r"\s*- alert:\s*(\S+)", line)
        if m:
            in_alert = m.group(1) == alert
        m = re.match(r"(\s*)expr:\s*(.*)$", line)
        if in_alert and m:
            ind = len(m.group(1))
            out.append("%sexpr: vector(1) < 0" % m.group(1))
            i += 1
            if m.group(2).strip() in ("|", "|-", ">", ">-"):
                while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > ind):
                    i += 1
            continue
        out.append(line)
        i += 1
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["check", "test"])
    ap.add_argument("--promtool", default="")
    args = ap.parse_args()
    promtool = td.find_tool(args.promtool, "promtool")
    if not promtool:
        td.skip_or_fail("promtool not installed (Debian package `prometheus`)")
    failures = []
    d = td.DASH_DIR
    if args.mode == "check":
        rc, out = run([promtool, "check", "rules", td.RULES], d)
        print(out)
        n = len(td.rules())
        if rc != 0 or "SUCCESS: %d rules found" % n not in out:
            failures.append("promtool check rules: rc=%d, expected %d rules" % (rc, n))
        rc, out = run([promtool, "check", "config", os.path.join(d, "prometheus.yml")], d)
        print(out)
        if rc != 0:
            failures.append("promtool check config prometheus.yml: rc=%d" % rc)
    else:
        rc, out = run([promtool, "test", "rules", td.RULE_TESTS], d)
        print(out)
        if rc != 0 or "SUCCESS" not in out:
            failures.append("promtool test rules: rc=%d" % rc)
        tmp = tempfile.mkdtemp(prefix="tslab-promtool-")
        try:
            rules_text = open(td.RULES).read()
            tests_text = open(td.RULE_TESTS).read()
            for r in td.rules():
                name = r["alert"]
                with open(os.path.join(tmp, "tslab-alerts.yml"), "w") as f:
                    f.write(never_fires(rules_text, name))
                with open(os.path.join(tmp, "tslab-alerts.test.yml"), "w") as f:
                    f.write(tests_text)
                rc, out = run([promtool, "test", "rules", "tslab-alerts.test.yml"], tmp)
                caught = rc != 0 and ("alertname: %s" % name) in out
                print("  %s never firing: unit tests %s" % (name, "fail as they must" if caught else "STILL PASS"))
                if not caught:
                    failures.append("a never-firing %s still passes the unit tests (rc=%d)" % (name, rc))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    for f in failures:
        print("FAIL: " + f, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

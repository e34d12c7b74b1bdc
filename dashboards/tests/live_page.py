#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The built-in live page (telemetry/src/index.html, served by the exporter at /) in headless
Chromium, driven over the DevTools protocol:

- it loads from a running tslab-demo with no console error, no uncaught exception and no failed
  request, and every request stays on the exporter (the page is self-contained);
- every chart of every allocator draws (the page reports the points it drew, and the canvas
  really has line-coloured pixels);
- its numbers change between two screenshots, saved as artifacts (live-page-1.png, -2.png).

usage: live_page.py --demo PATH [--chromium PATH] --artifacts DIR
Exit 77 (skip) when the demo or chromium is missing, unless CI=true.
"""
import argparse
import base64
import json
import os
import shutil
import sys
import tempfile
import time

import tslabdash as td
from cdp import CDPError, Page

# Read by the test from the page: what every canvas drew and how many line-coloured pixels it has.
PROBE = r"""
(() => {
  const line = getComputedStyle(document.documentElement).getPropertyValue('--line').trim();
  const c = document.createElement('canvas').getContext('2d');
  c.fillStyle = line; c.fillRect(0, 0, 1, 1);
  const [lr, lg, lb] = c.getImageData(0, 0, 1, 1).data;
  const charts = [...document.querySelectorAll('canvas[data-chart]')].map(cv => {
    let px = 0;
    if (cv.width && cv.height) {
      const d = cv.getContext('2d').getImageData(0, 0, cv.width, cv.height).data;
      for (let i = 0; i < d.length; i += 4)
        if (d[i + 3] > 200 && Math.abs(d[i] - lr) < 40 && Math.abs(d[i + 1] - lg) < 40 && Math.abs(d[i + 2] - lb) < 40) px++;
    }
    return {allocator: cv.dataset.allocator, chart: cv.dataset.chart,
            points: Number(cv.dataset.points || 0), pixels: px, width: cv.width, height: cv.height};
  });
  const numbers = [...document.querySelectorAll('.chart .value, td[data-key], #process span')]
      .map(e => e.textContent);
  const allocs = [...document.querySelectorAll('td[data-key="allocations"]')]
      .reduce((s, e) => s + Number(e.textContent.replace(/,/g, '') || 0), 0);
  const st = window.tslabLive || {};
  return {samples: st.samples || 0, polls: st.polls || 0, errors: st.errors || 0,
          lastError: st.lastError || '', status: document.getElementById('status').textContent,
          charts, numbers, allocs, sections: document.querySelectorAll('main section').length};
})()
"""


def chart_failures(state):
    """What is wrong with the page's charts in one probe result (empty when all is well)."""
    if not state or state["samples"] < 6:
        return ["page took fewer than 6 samples in 60 s: %r" % (state,)]
    failures = []
    if state["sections"] < 1 or not state["charts"]:
        failures.append("no allocator section drawn")
    for c in state["charts"]:
        if c["chart"] == "hitRatio":
            continue
        if c["points"] < 2 or c["pixels"] < 20:
            failures.append("chart %s of %s did not draw (points=%d, pixels=%d)" %
                            (c["chart"], c["allocator"], c["points"], c["pixels"]))
    # A hit ratio needs slab-cache lookups in the window: at least one allocator has them.
    hr = [c for c in state["charts"] if c["chart"] == "hitRatio"]
    if hr and not any(c["points"] >= 1 and c["pixels"] > 0 for c in hr):
        failures.append("no hit-ratio chart drew (no slab-cache lookups in any 10 s window?)")
    if state["errors"]:
        failures.append("page failed %d polls: %s" % (state["errors"], state["lastError"]))
    return failures


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--demo", default="")
    ap.add_argument("--chromium", default="")
    ap.add_argument("--artifacts", required=True)
    args = ap.parse_args()
    if not args.demo or not os.path.isfile(args.demo):
        td.skip_or_fail("tslab-demo not built (%r)" % args.demo)
    chromium = td.find_tool(args.chromium, "chromium")
    if not chromium:
        td.skip_or_fail("chromium not installed (Debian package `chromium`)")
    os.makedirs(args.artifacts, exist_ok=True)
    for f in ("live-page-1.png", "live-page-2.png"):
        if os.path.exists(os.path.join(args.artifacts, f)):
            os.unlink(os.path.join(args.artifacts, f))
    td.install_cleanup()

    _demo, url = td.start_demo(args.demo, "--threads", "2", "--inject-bad-frees", "2")
    origin = url.rstrip("/")
    print("demo at", url)

    profile = tempfile.mkdtemp(prefix="tslab-chromium-")
    try:
        chrome = td.spawn([chromium, "--headless", "--no-sandbox", "--disable-gpu",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                  "--mute-audio", "--hide-scrollbars", "--user-data-dir=" + profile,
                  "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
                  "--window-size=1280,1800", "about:blank"],
                 stdout=open(os.path.join(args.artifacts, "chromium.log"), "w"),
                 stderr=open(os.path.join(args.artifacts, "chromium.err.log"), "w"))
        # Chromium writes its DevTools port to DevToolsActivePort once it listens.
        port_file = os.path.join(profile, "DevToolsActivePort")
        deadline = time.monotonic() + 60
        port = None
        while time.monotonic() < deadline:
            try:
                with open(port_file) as f:
                    first = f.readline().strip()
                if first.isdigit():
                    port = int(first)
                    break
            except FileNotFoundError:
                pass
            time.sleep(0.2)
        if not port:
            raise SystemExit("chromium did not open its DevTools port in 60 s (see chromium.err.log)")
        targets = json.loads(td.http_get("http://127.0.0.1:%d/json/list" % port)[1])
        page_t = next(t for t in targets if t.get("type") == "page")
        page = Page(page_t["webSocketDebuggerUrl"])
        for domain in ("Runtime", "Log", "Page", "Network"):
            page.call(domain + ".enable")
        page.call("Emulation.setDeviceMetricsOverride", width=1280, height=1800, deviceScaleFactor=1,
                  mobile=False)
        page.call("Page.navigate", url=url)

        # Bounded wait until the page shows what the test asserts: history is drawn as the
        # samples come in (a line a few seconds long on a one-minute axis is a few dozen pixels),
        # so on a slow build (TSan) the first samples can still be too short a line to count.
        deadline = time.monotonic() + 60
        state = None
        while time.monotonic() < deadline:
            page.pump(0.5)
            state = page.evaluate(PROBE)
            if not chart_failures(state) or state["errors"]:
                break
        failures = chart_failures(state)
        if state and state["samples"] >= 6:
            print("page: %d samples, %d allocator sections, %d charts" %
                  (state["samples"], state["sections"], len(state["charts"])))
            for c in state["charts"]:
                print("  chart %-10s %-16s points=%-4d line pixels=%d" %
                      (c["chart"], c["allocator"], c["points"], c["pixels"]))

        shot1 = page.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"]
        nums1, allocs1, samples1 = state["numbers"], state["allocs"], state["samples"]
        with open(os.path.join(args.artifacts, "live-page-1.png"), "wb") as f:
            f.write(base64.b64decode(shot1))
        # Wait for at least two more polls, then take the second picture.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            page.pump(0.5)
            state = page.evaluate(PROBE)
            if state["samples"] >= samples1 + 2 and state["numbers"] != nums1:
                break
        shot2 = page.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"]
        with open(os.path.join(args.artifacts, "live-page-2.png"), "wb") as f:
            f.write(base64.b64decode(shot2))
        if state["numbers"] == nums1:
            failures.append("no number on the page changed between the two screenshots")
        if not state["allocs"] > allocs1:
            failures.append("allocations in the class table did not grow (%s -> %s)" % (allocs1, state["allocs"]))
        if shot1 == shot2:
            failures.append("the two screenshots are identical")
        print("numbers changed: %d of %d; allocations %d -> %d" %
              (sum(a != b for a, b in zip(nums1, state["numbers"])), len(nums1), allocs1, state["allocs"]))

        # Console errors, exceptions, failed or foreign requests over the whole session.
        page.pump(0.2)
        for ev in page.events:
            m, p = ev["method"], ev.get("params", {})
            if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                failures.append("console.%s: %s" % (p["type"], json.dumps(p.get("args"))[:300]))
            elif m == "Runtime.exceptionThrown":
                failures.append("uncaught exception: %s" % json.dumps(p.get("exceptionDetails"))[:300])
            elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                e = p["entry"]
                failures.append("console error (%s): %s %s" % (e.get("source"), e.get("text"), e.get("url", "")))
            elif m == "Network.requestWillBeSent":
                u = p.get("request", {}).get("url", "")
                if not (u == origin or u.startswith(origin + "/") or u.startswith("data:")):
                    failures.append("request leaves the exporter: %s" % u)
            elif m == "Network.responseReceived":
                r = p.get("response", {})
                if r.get("status", 200) >= 400:
                    failures.append("HTTP %s for %s" % (r.get("status"), r.get("url")))
            elif m == "Network.loadingFailed" and not p.get("canceled"):
                failures.append("request failed: %s" % p.get("errorText"))
        requests = [ev for ev in page.events if ev["method"] == "Network.requestWillBeSent"]
        print("%d requests, %d DevTools events; screenshots in %s" % (len(requests), len(page.events), args.artifacts))
        page.close()
        # Close the browser cleanly so it reaps its own helpers; the finally block kills the rest.
        try:
            with open(port_file) as f:
                browser_path = f.read().split("\n")[1].strip()
            browser = Page("ws://127.0.0.1:%d%s" % (port, browser_path))
            browser.call("Browser.close", timeout=10)
            browser.close()
            chrome.wait(timeout=10)
        except (CDPError, OSError, IndexError, td.subprocess.TimeoutExpired) as e:
            print("note: Browser.close: %s" % e)
    except CDPError as e:
        failures = ["DevTools: %s" % e]
    finally:
        td._kill_children()
        shutil.rmtree(profile, ignore_errors=True)
    for f in failures:
        print("FAIL: " + f, file=sys.stderr)
    print("live page: %s" % ("FAILED" if failures else "ok"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

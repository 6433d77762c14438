// otelres status page: polls /api/status and redraws. No dependencies, no network but this server.
"use strict";

(function () {
  const refreshMs = Math.max(250, parseInt(document.body.dataset.refreshMs, 10) || 1000);
  let failures = 0;

  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined) continue;
      if (key === "text") node.textContent = String(value);
      else if (key === "class") node.className = value;
      // CSSOM, not a style attribute: the Content-Security-Policy forbids inline styles.
      else if (key === "width") node.style.width = value;
      else node.setAttribute(key, String(value));
    }
    for (const child of children || []) if (child) node.appendChild(child);
    return node;
  }

  function replace(container, nodes, emptyText) {
    container.replaceChildren(...(nodes.length ? nodes : [el("p", { class: "muted", text: emptyText })]));
  }

  function clock(unixSeconds) {
    if (unixSeconds === null || unixSeconds === undefined) return "–";
    return new Date(unixSeconds * 1000).toLocaleTimeString([], { hour12: false });
  }

  function pct(ratio) {
    return (100 * Math.max(0, Math.min(1, ratio || 0))).toFixed(0) + " %";
  }

  function num(value, digits) {
    if (value === null || value === undefined) return "–";
    return Number(value).toFixed(digits === undefined ? 0 : digits);
  }

  function stat(label, value) {
    return el("div", { text: label }, [el("b", { text: value })]);
  }

  function breakerCard(b) {
    const state = b.state.replace("_", "-");
    const transitions = (b.transitions || []).slice(-5).reverse().map((t) =>
      el("li", { class: "to-" + t.to, title: t.reason, text: clock(t.at) + "  " + t.from.replace("_", "-") + " → " + t.to.replace("_", "-") + " · " + t.reason }));
    const waitText = b.state === "open" && b.retry_after ? "probe in " + num(b.retry_after, 1) + " s" : "";
    return el("article", { class: "card breaker", "data-breaker": b.name, "data-state": b.state, "data-colour": b.colour }, [
      el("div", { class: "head" }, [
        el("span", { class: "name", text: b.name }),
        el("span", { class: "pill state", "data-colour": b.colour, text: state }),
      ]),
      el("div", { class: "caption" }, [el("span", { text: "failure rate" }), el("span", { class: "rate", text: pct(b.failure_rate) })]),
      el("div", { class: "bar rate" }, [el("span", { width: pct(b.failure_rate).replace(" ", "") })]),
      el("div", { class: "stats" }, [
        stat("calls", num(b.calls)), stat("failures", num(b.failures)), stat("rejected", num(b.rejected)),
      ]),
      el("div", { class: "caption" }, [
        el("span", { text: "opens after " + b.failure_threshold + " failures for " + num(b.reset_timeout, b.reset_timeout < 10 ? 1 : 0) + " s" }),
        el("span", { text: waitText }),
      ]),
      el("ul", { class: "transitions" }, transitions.length ? transitions : [el("li", { text: "no transitions yet" })]),
    ]);
  }

  function limiterCard(l) {
    const available = l.available === null ? 0 : Math.max(0, l.available);
    const fill = l.capacity ? available / l.capacity : 0;
    const colour = l.rejected > 0 ? "red" : l.waiting > 0 || l.wait_share > 0.5 ? "yellow" : "green";
    return el("article", { class: "card limiter", "data-limiter": l.name, "data-colour": colour }, [
      el("div", { class: "head" }, [
        el("span", { class: "name", text: l.name }),
        el("span", { class: "muted", text: num(l.rate, 1) + " /s" }),
      ]),
      el("div", { class: "caption" }, [
        el("span", { text: "tokens available" }),
        el("span", { class: "tokens", text: num(available, 1) + " / " + num(l.capacity, 0) }),
      ]),
      el("div", { class: "bar" }, [el("span", { width: (100 * fill).toFixed(0) + "%" })]),
      el("div", { class: "stats" }, [
        stat("granted", num(l.acquired)), stat("waited", num(l.waited)), stat("rejected", num(l.rejected)),
      ]),
      el("div", { class: "caption" }, [
        el("span", { text: pct(l.wait_share) + " of grants waited" }),
        el("span", { text: l.waiting ? l.waiting + " queued" : "" }),
      ]),
    ]);
  }

  function checkRow(c) {
    const status = c.status || "unknown";
    const history = (c.history || []).map((h) =>
      el("i", { "data-status": h.status, title: clock(h.at) + " " + h.status + ": " + h.message }));
    return el("li", { class: "check", "data-check": c.name, "data-status": status }, [
      el("span", { class: "light", "data-status": status, title: status }),
      el("span", { class: "cname", text: c.name }),
      el("span", { class: "msg", text: c.message }),
      el("span", {}),
      el("div", { class: "history", title: "recent results, oldest first" }, history),
    ]);
  }

  function retryRow(r) {
    return el("tr", { "data-retry": r.name }, [
      el("td", { text: r.name }),
      el("td", { text: num(r.calls) }),
      el("td", { text: num(r.success_without_retry) }),
      el("td", { text: num(r.success_with_retry) }),
      el("td", { text: num(r.failed_with_retry + r.failed_without_retry) }),
    ]);
  }

  function render(doc) {
    document.title = doc.title + " – " + (doc.overall || "unknown").toUpperCase();
    const overall = doc.overall || "unknown";
    document.getElementById("overall").dataset.status = overall;
    document.getElementById("subtitle").textContent =
      "overall " + overall.toUpperCase() + " · updated " + clock(doc.generated_at);

    const extra = document.getElementById("extra");
    extra.replaceChildren(...Object.entries(doc.extra || {}).map(([key, value]) =>
      el("div", { "data-extra": key }, [el("dt", { text: key }), el("dd", { text: value })])));

    replace(document.getElementById("breakers"), doc.breakers.map(breakerCard), "no breakers yet");
    replace(document.getElementById("limiters"), doc.limiters.map(limiterCard), "no rate limiters yet");

    const health = doc.health;
    const badge = document.getElementById("health-overall");
    const healthStatus = health && health.overall ? health.overall : "unknown";
    badge.dataset.status = healthStatus;
    badge.textContent = healthStatus;
    const checks = document.getElementById("checks");
    if (health && health.checks.length) checks.replaceChildren(...health.checks.map(checkRow));
    else checks.replaceChildren(el("li", { class: "muted", text: "no health checks" }));

    const body = document.querySelector("#retries tbody");
    if (doc.retries.length) body.replaceChildren(...doc.retries.map(retryRow));
    else body.replaceChildren(el("tr", {}, [el("td", { colspan: "5", class: "muted", text: "no retries shown" })]));

    const backup = document.getElementById("backup");
    const b = doc.backup;
    backup.dataset.status = b && b.status ? b.status : "unknown";
    if (!b) backup.replaceChildren(el("p", { class: "muted", text: "no backup check" }));
    else backup.replaceChildren(
      el("span", { class: "light", "data-status": b.status || "unknown" }),
      el("div", {}, [
        el("div", { class: "cname", text: b.message }),
        el("div", { class: "muted", text: (b.backup_id ? "newest " + b.backup_id : "no backup") +
          (b.interval_hours ? " · expected every " + b.interval_hours + " h" : "") }),
      ]));
  }

  function banner(text) {
    const node = document.getElementById("banner");
    node.hidden = !text;
    node.textContent = text || "";
  }

  async function refresh() {
    try {
      const response = await fetch("/api/status", { cache: "no-store" });
      if (!response.ok) throw new Error("HTTP " + response.status);
      render(await response.json());
      failures = 0;
      banner("");
    } catch (err) {
      failures += 1;
      if (failures > 1) banner("cannot reach the service (" + err.message + "); retrying…");
    } finally {
      setTimeout(refresh, refreshMs);
    }
  }

  refresh();
})();

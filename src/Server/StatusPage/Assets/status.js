// ContinualServe status page: polls api/status and redraws. No external libraries.
"use strict";

const REFRESH_MS = 2000;
const SVG_NS = "http://www.w3.org/2000/svg";
const COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];

function text(id, value) {
  document.getElementById(id).textContent = value;
}

function fixed(value, digits) {
  return typeof value === "number" && isFinite(value) ? value.toFixed(digits) : "–";
}

// Red (0) through yellow to green (1).
function heatColor(value) {
  const v = Math.max(0, Math.min(1, value));
  const hue = 120 * v;
  return "hsl(" + hue + ", 65%, " + (38 + 6 * (1 - v)) + "%)";
}

function renderHeatmap(evaluation) {
  const table = document.getElementById("heatmap");
  table.replaceChildren();
  if (!evaluation || evaluation.tasks.length === 0) {
    const row = table.insertRow();
    row.insertCell().textContent = "No evaluation yet: the live version has not been trained on any task.";
    return;
  }

  const head = table.createTHead().insertRow();
  head.appendChild(document.createElement("th")).textContent = "after task ↓ / task →";
  for (const task of evaluation.tasks) {
    head.appendChild(document.createElement("th")).textContent = String(task);
  }

  const body = table.createTBody();
  evaluation.accuracyMatrix.forEach((values, rowIndex) => {
    const row = body.insertRow();
    const rowTask = evaluation.tasks[rowIndex];
    row.appendChild(document.createElement("th")).textContent = String(rowTask);
    evaluation.tasks.forEach((task, column) => {
      const cell = row.insertCell();
      if (column < values.length) {
        cell.className = "cell";
        cell.dataset.afterTask = String(rowTask);
        cell.dataset.task = String(task);
        cell.textContent = fixed(values[column], 3);
        cell.title = "after task " + rowTask + ", accuracy on task " + task;
        cell.style.backgroundColor = heatColor(values[column]);
      } else {
        cell.className = "empty";
      }
    });
  });
}

function renderForgetting(evaluation) {
  const container = document.getElementById("forgetting");
  container.replaceChildren();
  const entries = evaluation ? Object.entries(evaluation.forgetting).sort((a, b) => Number(a[0]) - Number(b[0])) : [];
  if (entries.length === 0) {
    container.textContent = "No tasks seen yet.";
    return;
  }

  for (const [task, value] of entries) {
    const row = document.createElement("div");
    row.className = "bar-row";
    row.dataset.task = task;
    const label = row.appendChild(document.createElement("span"));
    label.className = "label";
    label.textContent = "task " + task;
    const track = row.appendChild(document.createElement("div"));
    track.className = "track";
    const bar = track.appendChild(document.createElement("div"));
    bar.className = "bar";
    bar.style.width = (100 * Math.max(0, Math.min(1, value))) + "%";
    const number = row.appendChild(document.createElement("span"));
    number.className = "value";
    number.textContent = fixed(value, 3);
    container.appendChild(row);
  }
}

function svgElement(name, attributes) {
  const element = document.createElementNS(SVG_NS, name);
  for (const [key, value] of Object.entries(attributes)) {
    element.setAttribute(key, String(value));
  }
  return element;
}

// series: [{ color, points: [[x, y], ...] }]; the y axis spans [yMin, yMax] (yMax defaults to the data's maximum).
function lineChart(svgId, series, yMin, yMax, xLabel) {
  const svg = document.getElementById(svgId);
  svg.replaceChildren();
  const box = svg.viewBox.baseVal;
  const left = 44, right = box.width - 10, top = 10, bottom = box.height - 30;
  const all = series.flatMap(s => s.points);
  if (all.length === 0) {
    svg.appendChild(svgElement("text", { x: left, y: 100 })).textContent = "no data yet";
    return;
  }

  const xs = all.map(p => p[0]);
  const xMin = Math.min(...xs), xMax = Math.max(...xs);
  const top_ = yMax !== undefined ? yMax : Math.max(...all.map(p => p[1]), 1e-9) * 1.1;
  const x = v => left + (xMax === xMin ? 0.5 : (v - xMin) / (xMax - xMin)) * (right - left);
  const y = v => bottom - (v - yMin) / (top_ - yMin) * (bottom - top);
  svg.appendChild(svgElement("line", { x1: left, y1: bottom, x2: right, y2: bottom, class: "axis" }));
  svg.appendChild(svgElement("line", { x1: left, y1: top, x2: left, y2: bottom, class: "axis" }));
  for (const tick of [yMin, (yMin + top_) / 2, top_]) {
    svg.appendChild(svgElement("text", { x: 2, y: y(tick) + 4 })).textContent = fixed(tick, top_ < 10 ? 2 : 0);
  }
  svg.appendChild(svgElement("text", { x: left, y: box.height - 10 })).textContent = xLabel(xMin);
  svg.appendChild(svgElement("text", { x: right - 80, y: box.height - 10 })).textContent = xLabel(xMax);
  for (const s of series) {
    if (s.points.length === 0) continue;
    const points = s.points.map(p => x(p[0]).toFixed(1) + "," + y(p[1]).toFixed(1)).join(" ");
    svg.appendChild(svgElement("polyline", { points, stroke: s.color }));
    if (s.points.length === 1) {
      svg.appendChild(svgElement("circle", { cx: x(s.points[0][0]), cy: y(s.points[0][1]), r: 3, fill: s.color }));
    }
  }
}

function renderAccuracyOverVersions(versions) {
  const tasks = [...new Set(versions.flatMap(v => Object.keys(v.accuracyByTask)))].sort((a, b) => Number(a) - Number(b));
  const series = tasks.map((task, index) => ({
    color: COLORS[index % COLORS.length],
    points: versions.filter(v => task in v.accuracyByTask).map(v => [v.version, v.accuracyByTask[task]]),
  }));
  series.push({ color: "#1d2330", points: versions.filter(v => Object.keys(v.accuracyByTask).length > 0).map(v => [v.version, v.averageAccuracy]) });
  lineChart("accuracy-chart", series, 0, 1, v => "version " + v);
  const legend = document.getElementById("accuracy-legend");
  legend.replaceChildren();
  tasks.forEach((task, index) => {
    const key = legend.appendChild(document.createElement("span"));
    key.className = "key s" + (index % COLORS.length);
    key.textContent = "task " + task;
  });
  const average = legend.appendChild(document.createElement("span"));
  average.className = "key";
  average.textContent = "average (ACC)";
}

function clock(time) {
  return new Date(time).toLocaleTimeString();
}

function renderTraffic(traffic) {
  const points = traffic.map(p => ({ t: Date.parse(p.time), ...p }));
  const maxRate = Math.max(0, ...points.map(p => p.requestsPerSecond));
  lineChart("rate-chart", [
    { color: COLORS[0], points: points.map(p => [p.t, p.requestsPerSecond]) },
    { color: COLORS[3], points: points.map(p => [p.t, p.errorRatio * maxRate]) },
  ], 0, undefined, clock);
  lineChart("latency-chart", [
    { color: COLORS[0], points: points.filter(p => p.p50Seconds !== null).map(p => [p.t, p.p50Seconds * 1000]) },
    { color: COLORS[1], points: points.filter(p => p.p99Seconds !== null).map(p => [p.t, p.p99Seconds * 1000]) },
  ], 0, undefined, clock);
}

// The learner's state words from api/status, as the page shows them.
const LEARNER_STATES = {
  running: "running", paused: "paused", diverged: "diverged", stalled: "stalled (store read or write)",
  broker_down: "broker down", joining: "joining the consumer group", stopped: "stopped", starting: "starting",
  golden_set_unusable: "holding a candidate (golden set unusable)",
};

// The lag is null until the group assigns partitions and the learner measures them, so null reads as unknown, not 0.
function describeLag(learner) {
  if (learner.consumerLag === null || learner.consumerLag === undefined) {
    return "unknown until the group assigns partitions and the learner measures them";
  }
  if (learner.assignedPartitions === 0) {
    return "0 (the group assigned no partition to this learner)";
  }
  return String(learner.consumerLag);
}

// learner is null (or missing) when the server process runs no learner.
function renderLearner(learner) {
  const present = learner !== null && learner !== undefined;
  document.getElementById("learner-none").hidden = present;
  document.getElementById("learner").hidden = !present;
  document.body.dataset.learnerState = present ? learner.state : "none";
  if (!present) {
    return;
  }

  const state = document.getElementById("learner-state");
  state.textContent = (LEARNER_STATES[learner.state] || learner.state) + (learner.ready ? ", ready" : ", not ready");
  state.className = learner.ready ? "ready" : "not-ready";
  text("learner-task", learner.currentTask === 0 ? "none yet" : String(learner.currentTask));
  text("learner-trained", String(learner.trained));
  text("learner-rejected", String(learner.rejected));
  text("learner-version", String(learner.latestVersion));
  text("learner-lag", describeLag(learner));
}

// The certificate state words from api/status, as the page shows them next to the days left.
const CERTIFICATE_STATES = {
  valid: "", expires_soon: ", renew soon", expired: ", expired", not_yet_valid: ", not valid yet",
};

// certificates is empty (or missing) when no setting names a certificate file, and the section stays hidden.
function renderCertificates(certificates) {
  const list = certificates || [];
  document.getElementById("certificates-section").hidden = list.length === 0;
  const facts = document.getElementById("certificates");
  facts.replaceChildren();
  for (const certificate of list) {
    const term = facts.appendChild(document.createElement("dt"));
    term.textContent = certificate.setting;
    term.title = certificate.subject;
    const days = facts.appendChild(document.createElement("dd"));
    days.dataset.state = certificate.state;
    days.textContent = fixed(certificate.daysLeft, 1) + " days" + (CERTIFICATE_STATES[certificate.state] || "");
    days.title = "expires " + new Date(certificate.notAfter).toUTCString();
  }
}

function render(status) {
  const evaluation = status.evaluation;
  text("model", status.model);
  text("version", status.version === null ? "none loaded" : String(status.version));
  text("parent", status.parentVersion === null ? "–" : String(status.parentVersion));
  text("examples", String(status.examplesTrained));
  text("acc", evaluation ? fixed(evaluation.averageAccuracy, 4) : "–");
  text("bwt", evaluation ? fixed(evaluation.backwardTransfer, 4) : "–");
  renderHeatmap(evaluation);
  renderForgetting(evaluation);
  renderAccuracyOverVersions(status.versions);
  renderTraffic(status.traffic);
  renderLearner(status.learner);
  renderCertificates(status.certificates);
  text("updated", "updated " + clock(status.generatedAt));
  document.body.dataset.loadedVersion = status.version === null ? "" : String(status.version);
}

async function refresh() {
  try {
    const response = await fetch("api/status", { cache: "no-store" });
    if (!response.ok) {
      text("updated", "status request failed: HTTP " + response.status);
      return;
    }
    render(await response.json());
  } catch (error) {
    text("updated", "server unreachable, retrying");
  }
}

refresh();
setInterval(refresh, REFRESH_MS);

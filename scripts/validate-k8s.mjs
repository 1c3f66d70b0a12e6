#!/usr/bin/env node
// validate-k8s.mjs - checks rendered Kubernetes manifests (`helm template`
// output) without a cluster. Used by scripts/helm-check.
//
//   node scripts/validate-k8s.mjs [--metrics docs/METRICS.md] FILE.yaml...
//
// 1. Schema: every document is validated against the OpenAPI schema of its
//    apiVersion/kind from the npm packages kubernetes-models and
//    @kubernetes-models/prometheus-operator (installed by scripts/install-helm
//    into .tools/node): wrong types, missing required fields and unknown
//    kinds fail. (Unknown fields are not caught by those schemas.)
// 2. References inside the release, which no schema sees: Service selectors
//    and PodDisruptionBudget/ServiceMonitor selectors match pods or Services
//    of the release, named targetPorts and probe ports exist on the
//    container, every volumeMount has a volume or volumeClaimTemplate,
//    names are DNS-1123 and label values at most 63 characters.
// 3. Grafana dashboards (ConfigMap data keys ending in .json with panels):
//    unique panel ids, gridPos, a query in every non-row panel, and every
//    layercache_* metric a query uses is documented in --metrics.
//
// Exit status: 0 all valid, 1 problems found (each printed), 2 usage/setup.
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const modules = process.env.LC_NODE_MODULES || join(root, ".tools", "node", "node_modules");

function usage(msg) {
  console.error(`validate-k8s: ${msg}`);
  console.error("usage: validate-k8s.mjs [--metrics METRICS.md] FILE.yaml...");
  process.exit(2);
}

let metricsDoc = null;
const files = [];
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === "--metrics") {
    if (i + 1 >= argv.length) usage("--metrics needs a file");
    metricsDoc = argv[++i];
  } else if (argv[i].startsWith("-")) {
    usage(`unknown option ${argv[i]}`);
  } else {
    files.push(argv[i]);
  }
}
if (files.length === 0) usage("no manifest files given");
if (!existsSync(join(modules, "kubernetes-models"))) {
  console.error(`validate-k8s: no kubernetes-models in ${modules}: run scripts/install-helm`);
  process.exit(2);
}

const { parseAllDocuments } = await import(pathToFileURL(join(modules, "yaml", "dist", "index.js")).href);

const problems = [];
const fail = (where, msg) => problems.push(`${where}: ${msg}`);

// ---- 1. schemas --------------------------------------------------------------

// apiVersion -> the module exporting its kinds.
function moduleFor(apiVersion) {
  if (typeof apiVersion !== "string" || apiVersion === "") return null;
  if (apiVersion === "v1") return join(modules, "kubernetes-models", "v1", "index.js");
  const [group] = apiVersion.split("/");
  if (group === "monitoring.coreos.com")
    return join(modules, "@kubernetes-models", "prometheus-operator", apiVersion, "index.js");
  return join(modules, "kubernetes-models", apiVersion, "index.js");
}

const moduleCache = new Map();
async function modelFor(apiVersion, kind) {
  const path = moduleFor(apiVersion);
  if (path === null || !existsSync(path)) return null;
  if (!moduleCache.has(path)) moduleCache.set(path, await import(pathToFileURL(path).href));
  const mod = moduleCache.get(path);
  const Model = mod[kind];
  // Only resource kinds (with apiVersion/kind), not nested types like PodSpec.
  if (typeof Model !== "function" || Model.kind !== kind || Model.apiVersion !== apiVersion)
    return null;
  return Model;
}

const docs = [];
for (const file of files) {
  let text;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    usage(`cannot read ${file}: ${e.message}`);
  }
  for (const d of parseAllDocuments(text)) {
    if (d.errors.length > 0) {
      fail(file, `YAML: ${d.errors[0].message}`);
      continue;
    }
    const obj = d.toJS();
    if (obj === null || obj === undefined) continue;
    docs.push({ file, obj });
  }
}
if (docs.length === 0) fail(files.join(","), "no Kubernetes documents found");

for (const { file, obj } of docs) {
  const where = `${file}: ${obj?.kind ?? "?"}/${obj?.metadata?.name ?? "?"}`;
  if (typeof obj !== "object" || Array.isArray(obj)) {
    fail(file, "a document that is not a mapping");
    continue;
  }
  if (!obj.apiVersion || !obj.kind) {
    fail(where, "apiVersion and kind are required");
    continue;
  }
  const Model = await modelFor(obj.apiVersion, obj.kind);
  if (Model === null) {
    fail(where, `unknown kind ${obj.kind} in apiVersion ${obj.apiVersion}`);
    continue;
  }
  try {
    new Model(obj).validate();
  } catch (e) {
    const errs = e.errors ?? [{ instancePath: "", message: e.message }];
    for (const err of errs) {
      const extra = err.params?.missingProperty ? ` (${err.params.missingProperty})` : "";
      fail(where, `schema: ${err.instancePath || "/"} ${err.message}${extra}`);
    }
  }
}

// ---- 2. references -------------------------------------------------------------

const DNS1123 = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const podsOf = (o) => (o.kind === "StatefulSet" || o.kind === "Deployment" || o.kind === "DaemonSet"
  ? o.spec?.template : o.kind === "Pod" ? o : null);
const matches = (selector, labels) =>
  Object.entries(selector ?? {}).every(([k, v]) => (labels ?? {})[k] === v);

const workloads = docs.map((d) => d.obj).filter((o) => podsOf(o));
const services = docs.map((d) => d.obj).filter((o) => o.kind === "Service");

for (const { file, obj } of docs) {
  const where = `${file}: ${obj.kind}/${obj.metadata?.name}`;
  const name = obj.metadata?.name ?? "";
  if (!DNS1123.test(name) || name.length > 253) fail(where, `name '${name}' is not DNS-1123`);
  if ((obj.kind === "Service" || obj.kind === "StatefulSet") && name.length > 63)
    fail(where, `name '${name}' is longer than 63 characters`);
  const allLabels = [obj.metadata?.labels, podsOf(obj)?.metadata?.labels];
  for (const labels of allLabels)
    for (const [k, v] of Object.entries(labels ?? {}))
      if (String(v).length > 63) fail(where, `label ${k} value longer than 63 characters`);

  if (obj.kind === "Service" && obj.spec?.selector) {
    const pods = workloads.filter((w) => matches(obj.spec.selector, podsOf(w).metadata?.labels));
    if (pods.length === 0) fail(where, "selector matches no pod template of the release");
    for (const p of obj.spec.ports ?? []) {
      if (typeof p.targetPort !== "string") continue;
      for (const w of pods) {
        const names = (podsOf(w).spec?.containers ?? []).flatMap((c) => (c.ports ?? []).map((cp) => cp.name));
        if (!names.includes(p.targetPort))
          fail(where, `targetPort '${p.targetPort}' is no container port of ${w.kind}/${w.metadata.name}`);
      }
    }
  }
  if (obj.kind === "PodDisruptionBudget") {
    const sel = obj.spec?.selector?.matchLabels;
    if (!workloads.some((w) => matches(sel, podsOf(w).metadata?.labels)))
      fail(where, "selector matches no pod template of the release");
  }
  if (obj.kind === "ServiceMonitor") {
    const sel = obj.spec?.selector?.matchLabels;
    const svcs = services.filter((s) => matches(sel, s.metadata?.labels));
    if (svcs.length !== 1) fail(where, `selector matches ${svcs.length} Services (want exactly 1: no double scrapes)`);
    for (const ep of obj.spec?.endpoints ?? [])
      for (const s of svcs)
        if (!(s.spec?.ports ?? []).some((p) => p.name === ep.port))
          fail(where, `endpoint port '${ep.port}' is not a port of Service/${s.metadata.name}`);
  }
  if (obj.kind === "StatefulSet") {
    const svc = obj.spec?.serviceName;
    const headless = services.find((s) => s.metadata?.name === svc);
    if (!headless) fail(where, `serviceName '${svc}' is no Service of the release`);
    else if (headless.spec?.clusterIP !== "None") fail(where, `serviceName '${svc}' is not headless`);
    if (!matches(obj.spec?.selector?.matchLabels, obj.spec?.template?.metadata?.labels))
      fail(where, "selector does not match the pod template's labels");
  }
  const tmpl = podsOf(obj);
  if (tmpl) {
    const vols = new Set([
      ...(tmpl.spec?.volumes ?? []).map((v) => v.name),
      ...(obj.spec?.volumeClaimTemplates ?? []).map((v) => v.metadata?.name),
    ]);
    for (const c of tmpl.spec?.containers ?? []) {
      const portNames = (c.ports ?? []).map((p) => p.name);
      for (const m of c.volumeMounts ?? [])
        if (!vols.has(m.name)) fail(where, `container ${c.name}: volumeMount '${m.name}' has no volume`);
      for (const probe of ["livenessProbe", "readinessProbe", "startupProbe"]) {
        const p = c[probe];
        if (!p) continue;
        const port = p.httpGet?.port ?? p.tcpSocket?.port ?? p.grpc?.port;
        if (typeof port === "string" && !portNames.includes(port))
          fail(where, `container ${c.name}: ${probe} port '${port}' is not a container port`);
        if (p.grpc && typeof p.grpc.port === "number" &&
            !(c.ports ?? []).some((cp) => cp.containerPort === p.grpc.port))
          fail(where, `container ${c.name}: ${probe} grpc port ${p.grpc.port} is not a container port`);
      }
    }
  }
}

// ---- 3. Grafana dashboards -----------------------------------------------------

function documentedMetrics(path) {
  const text = readFileSync(path, "utf8");
  const names = new Map(); // name -> type
  for (const m of text.matchAll(/^\|\s*`(layercache_[a-z0-9_]+)`\s*\|\s*([a-z]+)\s*\|/gm))
    names.set(m[1], m[2]);
  return names;
}

function checkDashboard(where, json, metrics) {
  let dash;
  try {
    dash = JSON.parse(json);
  } catch (e) {
    fail(where, `dashboard JSON does not parse: ${e.message}`);
    return;
  }
  for (const k of ["title", "uid", "panels", "schemaVersion"])
    if (dash[k] === undefined) fail(where, `dashboard has no '${k}'`);
  const ids = new Set();
  let queries = 0;
  const used = new Set();
  const checkMetrics = (w, expr) => {
    for (const m of expr.matchAll(/\blayercache_[a-z0-9_]+/g)) {
      let name = m[0];
      const base = name.replace(/_(bucket|sum|count)$/, "");
      if (!metrics.has(name) && metrics.get(base) === "histogram") name = base;
      used.add(name);
      if (!metrics.has(name)) fail(w, `metric ${m[0]} is not in ${metricsDoc}`);
    }
  };
  // Template variables query metrics too (label_values(...)).
  for (const v of dash.templating?.list ?? []) {
    const q = typeof v.query === "string" ? v.query : v.query?.query ?? "";
    if (v.type === "query") {
      if (q.trim() === "") fail(`${where}: variable ${v.name}`, "empty query");
      checkMetrics(`${where}: variable ${v.name}`, q);
    }
  }
  for (const p of dash.panels ?? []) {
    const pw = `${where}: panel ${JSON.stringify(p.title)}`;
    if (typeof p.id !== "number") fail(pw, "no numeric id");
    else if (ids.has(p.id)) fail(pw, `duplicate id ${p.id}`);
    ids.add(p.id);
    if (!p.type || !p.title) fail(pw, "type and title are required");
    const g = p.gridPos;
    if (!g || ![g.x, g.y, g.w, g.h].every((n) => Number.isInteger(n) && n >= 0) || g.x + g.w > 24)
      fail(pw, "gridPos must have integer x, y, w, h within 24 columns");
    if (p.type === "row") continue;
    if (!Array.isArray(p.targets) || p.targets.length === 0) {
      fail(pw, "no targets");
      continue;
    }
    const refs = new Set();
    for (const t of p.targets) {
      if (typeof t.expr !== "string" || t.expr.trim() === "") fail(pw, `target ${t.refId}: empty expr`);
      if (refs.has(t.refId)) fail(pw, `duplicate refId ${t.refId}`);
      refs.add(t.refId);
      queries++;
      let depth = 0;
      for (const ch of t.expr ?? "") {
        depth += "([{".includes(ch) ? 1 : ")]}".includes(ch) ? -1 : 0;
        if (depth < 0) break;
      }
      if (depth !== 0) fail(pw, `target ${t.refId}: unbalanced brackets`);
      checkMetrics(`${pw}: target ${t.refId}`, t.expr ?? "");
    }
  }
  if (queries === 0) fail(where, "dashboard has no queries");
  console.log(`validate-k8s: dashboard ${where}: ${ids.size} panels, ${queries} queries, ` +
    `${used.size} of ${metrics.size} documented metrics used`);
}

let dashboards = 0;
for (const { file, obj } of docs) {
  if (obj.kind !== "ConfigMap") continue;
  for (const [key, val] of Object.entries(obj.data ?? {})) {
    if (!key.endsWith(".json") || !String(val).includes("\"panels\"")) continue;
    dashboards++;
    if (metricsDoc === null) {
      fail(`${file}: ConfigMap/${obj.metadata.name}`, "a dashboard, but no --metrics file to check it against");
      continue;
    }
    checkDashboard(`${file}: ConfigMap/${obj.metadata.name}[${key}]`, String(val), documentedMetrics(metricsDoc));
  }
}

const kinds = docs.map((d) => d.obj.kind).join(", ");
if (problems.length > 0) {
  for (const p of problems) console.error(`validate-k8s: ${p}`);
  console.error(`validate-k8s: ${problems.length} problem(s) in ${docs.length} documents`);
  process.exit(1);
}
console.log(`validate-k8s: ${docs.length} documents valid (${kinds})${dashboards ? `, ${dashboards} dashboard(s)` : ""}`);

// Validates Kubernetes manifests, read from standard input as one JSON array, against the OpenAPI schemas that the
// kubernetes-models packages compile: field types, enumerations and required fields. Those schemas allow fields
// they do not name, so a misspelled field name passes. Prints one line per invalid or unknown manifest and exits 1
// when there is any.
import { readFileSync } from "node:fs";

const packages = { "monitoring.coreos.com": "@kubernetes-models/prometheus-operator" };

const manifests = JSON.parse(readFileSync(0, "utf8"));
let problems = 0;
for (const manifest of manifests) {
  const label = `${manifest.kind}/${manifest.metadata?.name}`;
  const slash = manifest.apiVersion.indexOf("/");
  const group = slash < 0 ? "" : manifest.apiVersion.slice(0, slash);
  const modulePath = `${packages[group] ?? "kubernetes-models"}/${manifest.apiVersion}/${manifest.kind}`;
  let model;
  try {
    model = (await import(modulePath))[manifest.kind];
  } catch (error) {
    console.log(`unknown ${label}: no schema for ${manifest.apiVersion} ${manifest.kind} (${error.code ?? error.message})`);
    problems++;
    continue;
  }

  try {
    new model(manifest).validate();
    console.log(`valid ${label}`);
  } catch (error) {
    console.log(`invalid ${label}: ${error.message}`);
    problems++;
  }
}

process.exit(problems === 0 ? 0 : 1);

// Validate custom resources against the CRD schemas published in the pinned @kubernetes-models packages.
//
//   node validate_crds.mjs < objects.json      (a JSON array of objects)
//
// Prints one JSON line: {"results": [{"kind", "name", "errors": [..]}]}. Two checks per object:
//  1. the package's schema validator (types, enums, required fields), as the API server's CRD validation would;
//  2. unknown fields: these schemas do not set additionalProperties=false (CRDs prune unknown fields silently,
//     and `kubectl apply --validate=strict` refuses them), so every key the validator never reads is reported,
//     except below paths whose schema is free-form (x-kubernetes-preserve-unknown-fields), listed in FREE_FORM.
import { ApplicationSet, Application, AppProject } from "@kubernetes-models/argo-cd/argoproj.io/v1alpha1";
import { ExternalSecret, SecretStore } from "@kubernetes-models/external-secrets/external-secrets.io/v1";
import { PodMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1";

const MODELS = {
  "argoproj.io/v1alpha1/ApplicationSet": ApplicationSet,
  "argoproj.io/v1alpha1/Application": Application,
  "argoproj.io/v1alpha1/AppProject": AppProject,
  "external-secrets.io/v1/ExternalSecret": ExternalSecret,
  "external-secrets.io/v1/SecretStore": SecretStore,
  // Azure Monitor's PodMonitor is prometheus-operator's schema under Azure's API group.
  "azmonitoring.coreos.com/v1/PodMonitor": PodMonitor,
};

// Paths (dot-separated, [] for any array index) whose content the CRD leaves free-form, or that the package's
// compiled validator never reads although the CRD declares them.
const FREE_FORM = [
  /^spec\.generators\[\]\.list\.elements\[\]\./, // list generator elements: any parameters
  // AppProject.spec.description is declared (AppProjectSpec.d.ts) but its schema property was dropped along with
  // the schema `description` keywords when the package was generated, so the validator never reads it.
  /^spec\.description$/,
];

function tracked(value, path, seen) {
  if (value === null || typeof value !== "object") return value;
  const isArray = Array.isArray(value);
  return new Proxy(value, {
    get(target, key, receiver) {
      const child = Reflect.get(target, key, receiver);
      if (typeof key !== "string") return child;
      if (isArray) {
        if (/^\d+$/.test(key)) return tracked(child, `${path}[]`, seen);
        return child;
      }
      if (Object.prototype.hasOwnProperty.call(target, key)) {
        const childPath = path ? `${path}.${key}` : key;
        seen.add(childPath);
        return tracked(child, childPath, seen);
      }
      return child;
    },
  });
}

function keys(value, path, out) {
  if (value === null || typeof value !== "object") return out;
  if (Array.isArray(value)) {
    value.forEach((v) => keys(v, `${path}[]`, out));
    return out;
  }
  for (const [k, v] of Object.entries(value)) {
    const childPath = path ? `${path}.${k}` : k;
    out.push(childPath);
    keys(v, childPath, out);
  }
  return out;
}

function check(object) {
  const id = `${object.apiVersion}/${object.kind}`;
  const Model = MODELS[id];
  const result = { kind: object.kind, name: object.metadata?.name ?? "", errors: [] };
  if (!Model) {
    result.errors.push(`no schema for ${id}`);
    return result;
  }
  const seen = new Set();
  try {
    // The model copies its input; the validator then reads the model's own properties, so those are swapped
    // for proxies that record every key the validator reads.
    const data = structuredClone(object);
    if (id === "azmonitoring.coreos.com/v1/PodMonitor") data.apiVersion = PodMonitor.apiVersion; // same schema
    const model = new Model(data);
    for (const key of Object.keys(model)) {
      if (["apiVersion", "kind", "metadata", "spec", "status"].includes(key)) seen.add(key);
      model[key] = tracked(model[key], key, seen);
    }
    model.validate();
  } catch (error) {
    result.errors.push(String(error.message ?? error));
  }
  // Keys inside maps (labels, annotations, data) are read when the validator iterates them, so only keys of
  // objects with a fixed property list can stay unread.
  for (const key of keys(object, "", [])) {
    if (seen.has(key) || FREE_FORM.some((re) => re.test(key))) continue;
    const parent = key.includes(".") ? key.slice(0, key.lastIndexOf(".")) : "";
    if (parent && !seen.has(parent) && !FREE_FORM.some((re) => re.test(parent))) continue; // report the top one
    result.errors.push(`unknown field ${key}`);
  }
  return result;
}

let input = "";
process.stdin.setEncoding("utf8");
for await (const chunk of process.stdin) input += chunk;
const objects = JSON.parse(input);
process.stdout.write(JSON.stringify({ results: objects.map(check) }) + "\n");

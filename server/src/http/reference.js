// Interactive API reference: renders the OpenAPI document and sends requests from forms.
"use strict";

const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v; else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
};

const resolve = (doc, schema) => {
  while (schema && schema.$ref) schema = doc.components.schemas[schema.$ref.split("/").pop()];
  return schema || {};
};

// A small example value for a schema, so request bodies start from something valid-looking.
const example = (doc, schema, depth = 0) => {
  schema = resolve(doc, schema);
  if (depth > 4) return null;
  if (schema.example !== undefined) return schema.example;
  if (schema.oneOf) return example(doc, schema.oneOf.find((s) => s.type !== "null") || schema.oneOf[0], depth + 1);
  const type = Array.isArray(schema.type) ? schema.type.find((t) => t !== "null") : schema.type;
  if (schema.enum) return schema.enum[0];
  switch (type) {
    case "object": {
      const out = {};
      for (const [k, v] of Object.entries(schema.properties || {})) {
        if ((schema.required || []).includes(k)) out[k] = example(doc, v, depth + 1);
      }
      return out;
    }
    case "array": return [];
    case "integer": return 1;
    case "number": return 0.5;
    case "boolean": return false;
    case "string": return "";
    default: return null;
  }
};

const operationCard = (doc, path, method, op) => {
  const params = op.parameters || [];
  const inputs = {};
  const form = el("form", { class: "stack-form" });
  for (const p of params) {
    const input = el("input", { type: "text", name: p.name, placeholder: p.in + (p.required ? ", required" : "") });
    inputs[p.name] = { input, where: p.in };
    form.append(el("label", {}, `${p.name} `, el("span", { class: "muted small" }, p.description || ""), input));
  }
  let body = null;
  const bodySchema = op.requestBody && op.requestBody.content && op.requestBody.content["application/json"];
  if (bodySchema) {
    body = el("textarea", { rows: "6", class: "mono", "aria-label": "Request body" });
    body.value = JSON.stringify(example(doc, bodySchema.schema), null, 2);
    form.append(el("label", {}, "Body (JSON)", body));
  }
  const output = el("pre", { class: "response", hidden: "" });
  form.append(el("button", { type: "submit" }, "Send"), output);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    let url = path;
    const query = new URLSearchParams();
    for (const [name, { input, where }] of Object.entries(inputs)) {
      if (where === "path") url = url.replace(`{${name}}`, encodeURIComponent(input.value));
      else if (input.value !== "") query.set(name, input.value);
    }
    if ([...query].length) url += `?${query}`;
    const init = { method: method.toUpperCase(), headers: {} };
    if (body) { init.body = body.value; init.headers["Content-Type"] = "application/json"; }
    output.hidden = false;
    output.textContent = `${init.method} ${url} …`;
    try {
      const res = await fetch(url, init);
      const text = await res.text();
      let pretty = text;
      try { pretty = JSON.stringify(JSON.parse(text), null, 2); } catch (_) { /* not JSON */ }
      output.textContent = `${res.status} ${res.statusText}\n\n${pretty}`;
    } catch (e) {
      output.textContent = `request failed: ${e}`;
    }
  });
  const details = el("details", { class: "panel op" },
    el("summary", {}, el("span", { class: `method ${method}` }, method.toUpperCase()), " ", el("code", {}, path), " ",
      el("span", { class: "muted" }, op.summary || "")),
    op.description && op.description !== op.summary ? el("p", { class: "muted" }, op.description) : "",
    el("p", { class: "small muted" }, "Responses: " + Object.keys(op.responses || {}).join(", ")),
    form);
  return details;
};

(async () => {
  const root = document.getElementById("reference");
  const doc = await (await fetch("/api/v1/openapi.json")).json();
  root.textContent = "";
  const byTag = new Map();
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      const tag = (op.tags && op.tags[0]) || "other";
      if (!byTag.has(tag)) byTag.set(tag, []);
      byTag.get(tag).push(operationCard(doc, path, method, op));
    }
  }
  for (const t of doc.tags || []) {
    if (!byTag.has(t.name)) continue;
    root.append(el("h2", {}, t.name), el("p", { class: "muted" }, t.description || ""), ...byTag.get(t.name));
    byTag.delete(t.name);
  }
  for (const [name, cards] of byTag) root.append(el("h2", {}, name), ...cards);
})();

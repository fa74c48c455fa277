/*
 * Knowledge uploads for tenant admins (knowledge.html): every file through a presigned upload, as
 * `kefu ingest` sends it. POST …/knowledge/uploads names the file (the admin API answers a URL and
 * form fields, or why the file is refused), the file goes straight to the bucket (no request size
 * limit of the API in between), then …/knowledge/uploads/{id} is polled until indexed or failed.
 * The admin API's address comes only from config.json (same origin); the key is never stored.
 */
"use strict";
(() => {
  const POLL_MS = 1000;
  const $ = (id) => document.getElementById(id);
  let adminUrl = "";

  async function loadConfig() {
    try {
      const response = await fetch("config.json", { cache: "no-store", credentials: "same-origin" });
      const config = await response.json();
      adminUrl = String(config.adminUrl || "").replace(/\/+$/, "");
    } catch (error) {
      adminUrl = "";
    }
    $("admin-url").textContent = adminUrl || "none configured (config.json has no adminUrl)";
    $("upload").disabled = !adminUrl;
  }

  async function api(path, key, options = {}) {
    const response = await fetch(adminUrl + path, {
      ...options,
      headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      const message = (body.error && body.error.message) || body.detail || `HTTP ${response.status}`;
      throw new Error(typeof message === "string" ? message : JSON.stringify(message));
    }
    return body;
  }

  // 18 B, 4.2 KB, 1.5 MB: a small file is not "0.0 MB".
  function sizeText(bytes) {
    if (bytes < 1024) return `${bytes} B`;
    if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
    return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
  }

  function addRow(file) {
    const row = document.createElement("tr");
    const name = document.createElement("td");
    const size = document.createElement("td");
    const status = document.createElement("td");
    name.textContent = file.name;
    size.textContent = sizeText(file.size);
    row.append(name, size, status);
    $("uploads").querySelector("tbody").append(row);
    $("uploads").hidden = false;
    return (text, kind = "") => {
      status.textContent = text;
      status.className = kind;
      row.dataset.status = kind || "working";
    };
  }

  async function send(file, tenant, key, show) {
    const base = `/v1/tenants/${encodeURIComponent(tenant)}/knowledge/uploads`;
    show("asking for an upload URL…");
    const declared = { filename: file.name, contentType: file.type || "application/octet-stream", size: file.size };
    const ticket = await api(base, key, { method: "POST", body: JSON.stringify(declared) });
    show("uploading…");
    const form = new FormData();
    for (const [field, value] of Object.entries(ticket.fields)) form.append(field, value);
    form.append("file", file); // last: the bucket reads the policy's fields first
    const sent = await fetch(ticket.url, { method: "POST", body: form });
    if (!sent.ok) {
      const found = /<Message>([^<]*)<\/Message>/.exec(await sent.text());
      throw new Error(`the bucket refused the file: ${found ? found[1] : `HTTP ${sent.status}`}`);
    }
    for (;;) {
      show("pending…");
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      const status = await api(`${base}/${encodeURIComponent(ticket.uploadId)}`, key);
      if (status.status === "indexed") {
        show(`indexed: ${status.chunks} chunks as ${status.documentId}`, "ok");
        return;
      }
      if (status.status === "failed") throw new Error(`${status.error.code}: ${status.error.message}`);
      show(`${status.status}…`);
    }
  }

  $("upload-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const tenant = $("tenant").value.trim();
    const key = $("admin-key").value.trim();
    for (const file of $("files").files) {
      const show = addRow(file);
      send(file, tenant, key, show).catch((error) => show(`failed: ${error.message}`, "error"));
    }
    $("files").value = "";
  });

  loadConfig();
})();

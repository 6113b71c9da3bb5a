// Helpers both SampleHub pages load before their own script: element lookup, the status
// line, and JSON calls to the API whose errors carry the server's message.
"use strict";

const $ = (id) => document.getElementById(id);

function status(message, isError = false) {
  $("status").textContent = message;
  $("status").className = isError ? "error" : "";
}

async function call(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json();
  if (!response.ok) {
    const detail = Array.isArray(data.detail)
      ? data.detail.map((d) => `${d.loc.join(".")}: ${d.msg}`).join("; ")
      : data.detail;
    throw new Error(detail || `${response.status} ${response.statusText}`);
  }
  return data;
}

// Helpers both SampleHub pages load before their own script: element lookup, the status
// line, and JSON calls to the API whose errors carry the server's message.
"use strict";

const $ = (id) => document.getElementById(id);

function status(message, isError = false) {
  $("status").textContent = message;
  $("status").className = isError ? "error" : "";
}

async function call(method, path, body, retried = false) {
  const response = await fetch(path, {
    method,
    headers: { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401 && !retried && askToken()) {
    return call(method, path, body, true);
  }
  const data = await response.json();
  if (!response.ok) {
    const detail = Array.isArray(data.detail)
      ? data.detail.map((d) => `${d.loc.join(".")}: ${d.msg}`).join("; ")
      : data.detail;
    throw new Error(detail || `${response.status} ${response.statusText}`);
  }
  return data;
}

// A server with an API token answers 401; the token goes into a same-site cookie, which
// every later call and image request of this page then carries.
function askToken() {
  const token = window.prompt("This SampleHub server needs its API token:");
  if (!token) return false;
  document.cookie = `samplehub_token=${encodeURIComponent(token)}; path=/; SameSite=Strict`;
  return true;
}

// sandcell playground: the page's logic over API v1 (no framework; the editor is the
// CodeMirror bundle next to this file). Everything the page does, an API client can do:
// GET /v1/languages, POST /v1/runs, GET /v1/runs/{id}/events (SSE, read with fetch so a
// Bearer key can be sent), DELETE /v1/runs/{id}.
import { createEditor } from "./editor.js";

const KEY_STORAGE = "sandcell.playground.key";

const HELLO = {
  python: 'print("Hello, world!")\n',
  cpp: '#include <iostream>\n\nint main() {\n    std::cout << "Hello, world!" << std::endl;\n}\n',
  c: '#include <stdio.h>\n\nint main(void) {\n    printf("Hello, world!\\n");\n    return 0;\n}\n',
  sh: 'echo "Hello, world!"\n',
  busybox: 'echo "Hello, world!"\n',
};

const VERDICTS = {
  OK: "Ran successfully",
  RE: "Runtime error",
  SG: "Killed by a signal",
  TO: "Time limit exceeded",
  MLE: "Memory limit exceeded",
  OLE: "Output limit exceeded",
  CE: "Compilation failed",
  CANCELLED: "Cancelled",
  XX: "Sandbox error",
};

const $ = (id) => document.getElementById(id);

const page = {
  settings: null,
  languages: [],
  editor: null,
  run: null, // { id, cancelled, wake }
};

// ---- small helpers --------------------------------------------------------------------

class ApiFailure extends Error {
  constructor(kind, message, response) {
    super(message);
    this.kind = kind; // "gone" | "key" | "busy" | "rejected" | "unavailable" | "other"
    this.response = response;
  }
}

function storedKey() {
  try {
    return localStorage.getItem(KEY_STORAGE) || "";
  } catch {
    return "";
  }
}

function storeKey(key) {
  try {
    if (key) localStorage.setItem(KEY_STORAGE, key);
    else localStorage.removeItem(KEY_STORAGE);
  } catch {
    // Storage switched off: the key lives as long as the page.
  }
  page.sessionKey = key;
}

function currentKey() {
  return storedKey() || page.sessionKey || "";
}

function authHeaders() {
  const key = currentKey();
  return key ? { Authorization: `Bearer ${key}` } : { "X-Sandcell-Playground": "1" };
}

function describe(status, error) {
  const detail = error.message ? ` (${error.message})` : "";
  switch (status) {
    case 401:
      return currentKey()
        ? ["key", `The server refused this API key${detail}. Check it under "API key".`]
        : ["key", `This server needs an API key: enter it under "API key" above${detail}.`];
    case 403:
      return ["key", `Not allowed${detail}.`];
    case 429:
      return ["busy", "all of this app's runs are in use"];
    case 503:
      return error.code === "queue_full"
        ? ["busy", "the server's queue is full"]
        : ["unavailable", `The server is not taking runs now${detail}.`];
    case 400:
    case 413:
    case 422:
      return ["rejected", `The server rejected the run${detail}.`];
    default:
      return ["other", `The server answered ${status}${detail}.`];
  }
}

// fetch with the page's credentials; throws ApiFailure for network errors and non-2xx.
async function api(method, path, body) {
  const headers = { ...authHeaders() };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
      credentials: "omit",
    });
  } catch {
    throw new ApiFailure("gone", "Cannot reach the sandcell server: it may have stopped, or the network is down.");
  }
  if (response.ok) return response;
  let error = {};
  try {
    error = (await response.json()).error || {};
  } catch {
    // Not JSON: keep the status alone.
  }
  const [kind, message] = describe(response.status, error);
  throw new ApiFailure(kind, message, response);
}

function sleep(ms, run) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    run.wake = () => {
      clearTimeout(timer);
      resolve();
    };
  });
}

function formatMs(ms) {
  if (ms === null || ms === undefined) return "–";
  return ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms} ms`;
}

function formatBytes(bytes) {
  if (bytes === null || bytes === undefined) return "–";
  if (bytes >= 1 << 20) return `${(bytes / (1 << 20)).toFixed(1)} MiB`;
  return `${Math.max(1, Math.round(bytes / 1024))} KiB`;
}

// ---- status, errors, output -----------------------------------------------------------

function showStatus(text, busy = false) {
  const status = $("status");
  status.textContent = text;
  status.classList.toggle("busy", busy);
}

function showError(text) {
  const error = $("error");
  error.textContent = text;
  error.hidden = !text;
}

function clearResult() {
  showError("");
  $("output").replaceChildren();
  $("verdict").hidden = true;
  $("compile").hidden = true;
  $("compile-output").textContent = "";
}

function appendOutput(stream, text) {
  if (!text) return;
  const output = $("output");
  const last = output.lastElementChild;
  if (last && last.dataset.stream === stream) {
    last.textContent += text;
  } else {
    const span = document.createElement("span");
    span.className = `out-${stream}`;
    span.dataset.stream = stream;
    span.textContent = text;
    output.append(span);
  }
  output.scrollTop = output.scrollHeight;
}

function showResult(result, replaceOutput) {
  const verdict = result.verdict || "XX";
  const badge = $("badge");
  badge.textContent = verdict;
  badge.className = `badge v-${verdict}`;
  let text = VERDICTS[verdict] || verdict;
  if (verdict === "RE" && result.exit_code !== null && result.exit_code !== undefined) {
    text += ` (exit code ${result.exit_code})`;
  } else if (verdict === "SG" && result.signal) {
    text += ` (signal ${result.signal})`;
  } else if (verdict === "TO" && result.reason) {
    text += result.reason === "cpu" ? " (CPU time)" : " (wall time)";
  }
  if (result.message && verdict !== "OK" && verdict !== "CE") text += `: ${result.message}`;
  $("verdict-text").textContent = text;
  $("wall").textContent = formatMs(result.wall_time_ms);
  $("cpu").textContent = formatMs(result.cpu_time_ms);
  $("peak").textContent = formatBytes(result.memory_peak_bytes);
  $("verdict").hidden = false;

  if (verdict === "CE") {
    // The top-level fields are the compile step's; the program did not run.
    const compiler = [result.stdout, result.stderr].filter(Boolean).join("");
    $("compile-output").textContent = compiler || "(the compiler printed nothing)";
    $("compile").hidden = false;
    $("compile").open = true;
    $("output").replaceChildren();
    showStatus("The program did not run: it did not compile.");
    return;
  }
  if (result.compile && (result.compile.stderr || result.compile.stdout)) {
    $("compile-output").textContent = [result.compile.stdout, result.compile.stderr].filter(Boolean).join("");
    $("compile").hidden = false;
    $("compile").open = false;
  }
  if (replaceOutput) {
    $("output").replaceChildren();
    appendOutput("stdout", result.stdout);
    appendOutput("stderr", result.stderr);
  }
  const truncated = result.stdout_truncated || result.stderr_truncated ? " Output was cut at the output limit." : "";
  showStatus(`Finished.${truncated}`);
}

// ---- server-sent events over fetch ----------------------------------------------------

function parseEvent(raw) {
  let name = "message";
  const data = [];
  for (const line of raw.split(/\r?\n/)) {
    if (line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") name = value;
    else if (field === "data") data.push(value);
  }
  if (!data.length) return null;
  try {
    return { name, data: JSON.parse(data.join("\n")) };
  } catch {
    return null;
  }
}

// Follows a run's events until its result; true if a result (or deferral) arrived.
async function follow(id) {
  const response = await api("GET", `/v1/runs/${encodeURIComponent(id)}/events`);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let lagged = false;
  for (;;) {
    let chunk;
    try {
      chunk = await reader.read();
    } catch {
      return false;
    }
    if (chunk.done) return false;
    buffer += chunk.value.replace(/\r\n/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = parseEvent(buffer.slice(0, end));
      buffer = buffer.slice(end + 2);
      if (!event) continue;
      switch (event.name) {
        case "status":
          if (event.data.status === "queued") showStatus("Queued: waiting for a free cell…");
          else if (event.data.status === "running") showStatus("Running…");
          break;
        case "stdout":
        case "stderr":
          appendOutput(event.name, event.data.text);
          break;
        case "lagged":
          lagged = true;
          break;
        case "result":
          showResult(event.data, lagged);
          return true;
        case "deferred":
          showError("The server is shutting down: this run stays queued and runs after it restarts.");
          showStatus("");
          return true;
        default:
          break;
      }
    }
  }
}

// ---- running ----------------------------------------------------------------------------

function currentLanguage() {
  return page.languages[Number($("language").value)] || null;
}

function readLimit(id, scale, name, unit) {
  const input = $(id);
  const value = Number(input.value);
  const min = Number(input.min);
  const max = Number(input.max);
  if (!input.value || !Number.isFinite(value) || value < min || value > max) {
    input.focus();
    throw new ApiFailure("rejected", `${name} must be between ${min} and ${max} ${unit}.`);
  }
  return Math.round(value * scale);
}

function readLimits() {
  return {
    wall_time: readLimit("wall-time", 1000, "Wall time", "s"),
    cpu_time: readLimit("cpu-time", 1000, "CPU time", "s"),
    memory: readLimit("memory", 1 << 20, "Memory", "MiB"),
  };
}

function setRunning(running) {
  $("run").disabled = running || !page.languages.length;
  $("cancel").disabled = !running;
}

async function run() {
  if (page.run || !page.languages.length) return;
  const language = currentLanguage();
  clearResult();
  let body;
  try {
    body = {
      language: language.request,
      files: [{ path: language.source_file, content: page.editor.getText() }],
      stdin: $("stdin").value,
      limits: readLimits(),
    };
  } catch (e) {
    showError(e.message);
    return;
  }
  const current = { id: null, cancelled: false, wake: null };
  page.run = current;
  setRunning(true);
  showStatus("Submitting…");
  try {
    let accepted = null;
    while (!accepted) {
      try {
        accepted = await (await api("POST", "/v1/runs", body)).json();
      } catch (e) {
        if (e.kind !== "busy") throw e;
        const secs = Math.max(1, Number(e.response.headers.get("Retry-After")) || 1);
        showStatus(`Server busy, retrying in ${secs} s: ${e.message}. Cancel stops waiting.`, true);
        await sleep(secs * 1000, current);
        if (current.cancelled) {
          showStatus("Cancelled before it started.");
          return;
        }
      }
    }
    current.id = accepted.id;
    showStatus("Queued: waiting for a free cell…");
    if (current.cancelled) await cancelRun(current);
    if (!(await follow(current.id))) await recover(current.id);
  } catch (e) {
    showStatus("");
    showError(e.message);
  } finally {
    page.run = null;
    setRunning(false);
  }
}

// The event stream ended without a result: ask once more, else say the server is gone.
async function recover(id) {
  try {
    const view = await (await api("GET", `/v1/runs/${encodeURIComponent(id)}`)).json();
    if (view.status === "done" && view.result) {
      showResult({ ...view.result, compile: view.compile }, true);
      return;
    }
    showError("Lost the connection to the server's event stream before the run ended; the run may still finish (its id: " + id + ").");
  } catch {
    showError("Lost the connection to the sandcell server while the run was going: it may have stopped.");
  }
  showStatus("");
}

async function cancelRun(current) {
  showStatus("Cancelling…");
  try {
    await api("DELETE", `/v1/runs/${encodeURIComponent(current.id)}`);
  } catch (e) {
    showError(e.message);
  }
}

function cancel() {
  const current = page.run;
  if (!current || current.cancelled) return;
  current.cancelled = true;
  if (current.id) {
    cancelRun(current); // the result (CANCELLED) arrives on the event stream
  } else if (current.wake) {
    current.wake(); // waiting to retry: stop waiting
  }
}

// ---- languages, limits, keys --------------------------------------------------------------

function requestName(language, all) {
  const same = all.filter((l) => l.name === language.name).length;
  return same > 1 && language.version ? `${language.name}:${language.version}` : language.name;
}

function helloFor(language) {
  return HELLO[language.name] || `// ${language.name}: write your program here\n`;
}

function selectLanguage(index, replaceCode) {
  const previous = page.selected;
  const language = page.languages[index];
  if (!language) return;
  $("language").value = String(index);
  page.selected = language;
  page.editor.setLanguage(language.name);
  const text = page.editor.getText();
  const untouched = !text.trim() || (previous && text === helloFor(previous));
  if (replaceCode || untouched) page.editor.setText(helloFor(language));
}

async function loadLanguages() {
  const select = $("language");
  select.disabled = true;
  let list;
  try {
    list = (await (await api("GET", "/v1/languages")).json()).languages || [];
  } catch (e) {
    select.replaceChildren(new Option("(no languages)", ""));
    if (e.kind === "key") $("key-panel").open = true;
    showError(e.message);
    setRunning(false);
    return false;
  }
  page.languages = list.map((l) => ({ ...l, request: requestName(l, list) }));
  select.replaceChildren(
    ...page.languages.map((l, i) => new Option(l.version ? `${l.name} ${l.version}` : l.name, String(i))),
  );
  select.disabled = !page.languages.length;
  if (!page.languages.length) {
    showError("This server has no languages: import the language images (scripts/build-images) and reload.");
  } else {
    showError("");
    const shared = readShare();
    if (!applyShare(shared)) selectLanguage(0, false);
  }
  setRunning(false);
  return true;
}

function setLimit(id, bound, scale) {
  const input = $(id);
  input.max = String(bound.max / scale);
  input.value = String(bound.default / scale);
}

function applySettings(settings) {
  const l = settings.limits;
  setLimit("wall-time", l.wall_time, 1000);
  setLimit("cpu-time", l.cpu_time, 1000);
  setLimit("memory", { max: Math.floor(l.memory.max / (1 << 20)), default: Math.floor(l.memory.default / (1 << 20)) }, 1);
  const who = settings.anonymous_app ? `the ${settings.anonymous_app} app's` : "this server's";
  $("limits-note").textContent =
    `At most ${l.wall_time.max / 1000} s wall time, ${l.cpu_time.max / 1000} s CPU time and ` +
    `${Math.floor(l.memory.max / (1 << 20))} MiB memory (${who} maxima).`;
  if (settings.anonymous_app) {
    $("key-note").textContent =
      "Optional here: without a key, runs use this server's shared playground quota. " +
      "A key is kept in this browser only (localStorage) and sent to this server only.";
  }
}

async function start() {
  page.editor = createEditor($("editor"), { doc: "", label: "Code editor", onRun: run });
  $("run").addEventListener("click", run);
  $("cancel").addEventListener("click", cancel);
  $("share").addEventListener("click", share);
  $("language").addEventListener("change", () => selectLanguage(Number($("language").value), false));
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    storeKey($("api-key").value.trim());
    $("api-key").value = "";
    loadLanguages();
  });
  $("forget-key").addEventListener("click", () => {
    storeKey("");
    loadLanguages();
  });
  window.addEventListener("hashchange", () => applyShare(readShare()));
  document.addEventListener("keydown", (event) => {
    // The editor handles its own Ctrl+Enter (and marks it handled); this is for the rest.
    if ((event.ctrlKey || event.metaKey) && event.key === "Enter" && !event.defaultPrevented) {
      event.preventDefault();
      run();
    }
  });

  let settings;
  try {
    const response = await fetch("/playground/settings.json", { cache: "no-store" });
    if (!response.ok) throw new Error(String(response.status));
    settings = await response.json();
  } catch {
    showError("Cannot reach the sandcell server: it may have stopped, or the network is down. Reload to try again.");
    return;
  }
  page.settings = settings;
  applySettings(settings);
  if (settings.key_required && !currentKey()) {
    $("key-panel").open = true;
    $("language").replaceChildren(new Option("(enter an API key first)", ""));
    showError('This server needs an API key: enter it under "API key" above.');
    // A shared link still shows its code while the key is missing.
    const shared = readShare();
    if (shared) {
      page.editor.setText(shared.code);
      $("stdin").value = shared.stdin;
    }
    return;
  }
  await loadLanguages();
}

// ---- share links: everything in the URL fragment, nothing stored on the server ---------------

function toBase64Url(text) {
  const bytes = new TextEncoder().encode(text);
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function fromBase64Url(text) {
  const binary = atob(text.replace(/-/g, "+").replace(/_/g, "/"));
  return new TextDecoder().decode(Uint8Array.from(binary, (c) => c.charCodeAt(0)));
}

function readShare() {
  const params = new URLSearchParams(location.hash.slice(1));
  if (!params.has("code")) return null;
  try {
    return {
      lang: params.get("lang") || "",
      code: fromBase64Url(params.get("code") || ""),
      stdin: fromBase64Url(params.get("stdin") || ""),
    };
  } catch {
    showError("This share link is damaged: its code could not be read.");
    return null;
  }
}

function applyShare(shared) {
  if (!shared || !page.languages.length) return false;
  let index = page.languages.findIndex((l) => l.request === shared.lang);
  if (index < 0) index = page.languages.findIndex((l) => l.name === shared.lang.split(":")[0]);
  if (index < 0) {
    showError(`The shared code is in ${shared.lang}, which this server does not offer.`);
    index = 0;
  }
  selectLanguage(index, false);
  page.editor.setText(shared.code);
  $("stdin").value = shared.stdin;
  return true;
}

async function share() {
  const language = currentLanguage();
  const params = new URLSearchParams();
  params.set("lang", language ? language.request : "");
  params.set("code", toBase64Url(page.editor.getText()));
  params.set("stdin", toBase64Url($("stdin").value));
  const url = `${location.origin}${location.pathname}#${params}`;
  history.replaceState(null, "", url);
  $("share-link").value = url;
  $("share-box").hidden = false;
  $("share-link").select();
  try {
    await navigator.clipboard.writeText(url);
    showStatus("Share link copied to the clipboard.");
  } catch {
    showStatus("Share link ready: copy it from the box below the editor.");
  }
}

start();

// The wspubsub dashboard: lists topics from the admin API (polled), tails a topic and
// publishes test messages with the browser module served at /wspubsub.js. No build step and
// nothing from other sites. The admin token, if any, comes from the URL fragment
// (/ui#token=...), which browsers never send to a server, and goes out as a Bearer header.

const POLL_MS = 1000;
const TAIL_LINES = 500;

const token = new URLSearchParams(location.hash.slice(1)).get("token");
const $ = (id) => document.getElementById(id);

/** GETs an admin API path as JSON, with the token when there is one. */
async function api(path) {
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  const response = await fetch(path, { headers, cache: "no-store" });
  if (!response.ok) {
    throw new Error(`${path}: ${response.status} ${response.statusText}`);
  }
  return response.json();
}

function setStatus(state, text) {
  const status = $("status");
  status.dataset.state = state;
  status.textContent = text;
}

const units = ["B", "KiB", "MiB", "GiB", "TiB"];
function bytes(count) {
  let value = count;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}

function rate(perSecond) {
  return perSecond >= 100 ? perSecond.toFixed(0) : perSecond.toFixed(1);
}

/** Sets a row's cell (found by its data attribute) to `text`, keeping `value` readable. */
function cell(row, field, text, value = text) {
  let td = row.querySelector(`[data-${field}]`);
  if (!td) {
    td = document.createElement("td");
    td.setAttribute(`data-${field}`, "");
    row.append(td);
  }
  td.setAttribute(`data-${field}`, String(value));
  td.textContent = text;
  return td;
}

function subscriberTotal(subscribers) {
  return Object.values(subscribers).reduce((sum, count) => sum + count, 0);
}

function renderTopics(topics) {
  const body = $("topic-rows");
  const seen = new Set();
  for (const topic of topics) {
    seen.add(topic.name);
    let row = [...body.rows].find((r) => r.dataset.topic === topic.name);
    if (!row) {
      row = document.createElement("tr");
      row.dataset.topic = topic.name;
      body.append(row);
    }
    cell(row, "name", topic.name);
    cell(row, "publishers", String(topic.publishers));
    const total = subscriberTotal(topic.subscribers);
    const kinds = Object.entries(topic.subscribers)
      .map(([kind, count]) => `${kind}: ${count}`)
      .join(", ");
    cell(row, "subscribers", String(total)).title = kinds;
    cell(row, "rate-in", rate(topic.rates.messages_in), topic.rates.messages_in);
    cell(row, "rate-out", rate(topic.rates.messages_out), topic.rates.messages_out);
    cell(row, "in", `${topic.messages_in} (${bytes(topic.bytes_in)})`, topic.messages_in);
    cell(row, "out", `${topic.messages_out} (${bytes(topic.bytes_out)})`, topic.messages_out);
    const history = topic.history;
    cell(row, "history", `${history.messages} (${bytes(history.bytes)})`, history.messages);
    const seq = history.oldest_seq === null ? "–" : `${history.oldest_seq}…${history.newest_seq}`;
    cell(row, "seq", seq);
    if (!row.querySelector("button")) {
      const td = document.createElement("td");
      const tail = document.createElement("button");
      tail.type = "button";
      tail.textContent = "tail";
      tail.addEventListener("click", () => {
        $("tail-topic").value = row.dataset.topic;
        $("publish-topic").value = row.dataset.topic;
        $("tail-form").requestSubmit();
      });
      td.append(tail);
      row.append(td);
    }
  }
  for (const row of [...body.rows]) {
    if (!seen.has(row.dataset.topic)) row.remove();
  }
  $("topic-count").textContent = String(topics.length);
  $("topic-count").dataset.count = String(topics.length);
  $("no-topics").hidden = topics.length > 0;
}

/** Where topics live (the main listener's ws:// or wss:// URL), asked of the admin API once:
 *  a promise, so that a tail or publish started before the first answer waits for it. */
let wsBase = null;
function topicsBase() {
  wsBase ??= api("/api/server").then(
    (server) => {
      $("server").textContent = `v${server.version} · topics at ${server.ws_base}`;
      return server.ws_base;
    },
    (error) => {
      wsBase = null; // asked again next time
      throw error;
    },
  );
  return wsBase;
}

async function poll() {
  try {
    await topicsBase();
    const { topics } = await api("/api/topics");
    renderTopics(topics);
    setStatus("ok", `updated ${new Date().toLocaleTimeString()}`);
  } catch (error) {
    setStatus("error", String(error.message || error));
  }
  setTimeout(poll, POLL_MS);
}

/** The topic's WebSocket URL, on the main listener (wherever this page is served). */
async function topicUrl(topic) {
  const path = topic.startsWith("/") ? topic : `/${topic}`;
  return `${await topicsBase()}${path}`;
}

/** The browser client module, loaded on first use (the topic list works without it). */
let client = null;
function wspubsub() {
  client ??= import("/wspubsub.js");
  return client;
}

function decode(data, encoding) {
  if (encoding === "hex") {
    return [...data].map((b) => b.toString(16).padStart(2, "0")).join(" ");
  }
  return new TextDecoder("utf-8", { fatal: false }).decode(data);
}

function tailLine(className, seqText, text) {
  const list = $("tail-messages");
  const item = document.createElement("li");
  item.className = className;
  const seq = document.createElement("span");
  seq.className = "seq";
  seq.textContent = seqText;
  item.append(seq, document.createTextNode(text));
  list.append(item);
  while (list.children.length > TAIL_LINES) list.firstElementChild.remove();
  list.scrollTop = list.scrollHeight;
  return item;
}

let tailing = null;

function stopTail() {
  tailing?.close();
  tailing = null;
  $("tail-stop").disabled = true;
}

$("tail-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  stopTail();
  $("tail-messages").replaceChildren();
  const topic = $("tail-topic").value.trim();
  const encoding = $("tail-encoding").value;
  try {
    const { subscribe } = await wspubsub();
    tailing = subscribe(await topicUrl(topic), {
      from: "latest",
      onMessage: ({ seq, data }) => {
        const line = tailLine("message", String(seq), decode(data, encoding));
        line.dataset.seq = String(seq);
      },
      onGap: ({ from, to, reason }) => tailLine("gap", "gap", `${from}…${to} (${reason})`),
      onState: (state) => {
        $("tail-state").dataset.state = state;
        $("tail-state").textContent = state;
      },
    });
    $("tail-stop").disabled = false;
  } catch (error) {
    tailLine("gap", "error", String(error.message || error));
  }
});

$("tail-stop").addEventListener("click", stopTail);

$("publish-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const result = $("publish-result");
  result.textContent = "publishing…";
  let publisher = null;
  try {
    const { publish } = await wspubsub();
    publisher = await publish(await topicUrl($("publish-topic").value.trim()), {
      reconnect: false,
    });
    const { seq } = await publisher.send($("publish-text").value);
    result.textContent = `stored as seq ${seq}`;
    result.dataset.seq = String(seq);
  } catch (error) {
    result.textContent = `failed: ${error.message || error}`;
  } finally {
    await publisher?.close();
  }
});

poll();

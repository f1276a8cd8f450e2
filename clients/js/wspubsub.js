/**
 * wspubsub in the browser: a stream-mode subscriber that reconnects and resumes, and a
 * publisher whose sends resolve once the server has stored them.
 *
 * One dependency-free ES module, no build step: import it from the server itself
 * (`import { subscribe, publish } from "/wspubsub.js"`) or copy this file. Both speak stream
 * mode (the WebSocket subprotocol `wspubsub.v2`, README "Stream mode"): messages carry their
 * position (`seq`), so a subscriber that loses its connection connects again (exponential
 * backoff with jitter) at `from=<last seq + 1>` and the server replays what it missed from
 * history; what history no longer holds is announced (`onGap`), never skipped silently, and
 * no message is delivered twice.
 *
 * A path with a segment `*` (one segment) or a last segment `**` (the rest) subscribes to a
 * pattern: every matching topic, existing and future, each message naming its topic. Pattern
 * subscriptions are live only: `from` must be `"latest"`, and a reconnect starts from the
 * newest messages again (what was published while disconnected is not replayed).
 *
 * @module wspubsub
 */

/** The subprotocol of stream mode. */
const SUBPROTOCOL = "wspubsub.v2";
/** First byte of a message envelope (other values are reserved). */
const MESSAGE_KIND = 1;
/** Envelope bytes before the topic name: kind, seq, time, topic length. */
const HEADER_LENGTH = 19;
/**
 * Close codes a new connection cannot fix: a protocol error, a text frame, a token that
 * expired (policy), a message too big, a missing extension.
 */
const FINAL_CLOSE_CODES = new Set([1002, 1003, 1008, 1009, 1010]);

/**
 * Reconnect policy: the delay before attempt `n` (0 after a connection that worked) is drawn
 * from the upper half of `min(maxDelayMs, initialDelayMs * 2^n)`; after `maxAttempts`
 * connections in a row that failed, it gives up.
 * @typedef {object} ReconnectOptions
 * @property {number} [initialDelayMs=100] first delay
 * @property {number} [maxDelayMs=10000] largest delay
 * @property {number} [maxAttempts=Infinity] failed connections in a row before giving up
 */

/**
 * One message as a subscriber receives it.
 * @typedef {object} Message
 * @property {number} seq its position in the topic (below 2^53: exact)
 * @property {number} time when the server took it, unix microseconds
 * @property {Uint8Array} data the payload, byte for byte as its publisher sent it
 * @property {string} topic the topic it was published to
 */

/**
 * Messages a subscriber asked for that it will never get (history no longer held them).
 * @typedef {object} Gap
 * @property {number} from the position asked for
 * @property {number} to where delivery resumes instead
 * @property {string} reason `history_evicted`, `history_off`, `topic_restarted`, `position_ahead`
 * @property {string} topic the topic
 */

/**
 * A connection's state changed: `"connecting"` (detail `{ attempt, url }`), `"open"`
 * (subscriber: the server's `subscribed` frame `{ topic, from, head, earliest }`; publisher:
 * `{ url }`), `"closed"` (detail `{ code, reason, retrying, delayMs }`; `retrying` false means
 * for good).
 * @callback StateListener
 * @param {"connecting"|"open"|"closed"} state
 * @param {object} detail
 * @returns {void}
 */

/**
 * A running subscription.
 * @typedef {object} Subscription
 * @property {() => void} close stops it for good: closes the connection (1000), no reconnect
 * @property {number|null} position the seq it resumes at (the last delivered + 1, or where
 *   the server placed it), `null` until the server has answered
 */

/**
 * A connected stream-mode publisher.
 * @typedef {object} Publisher
 * @property {(data: Uint8Array|ArrayBuffer|ArrayBufferView|string) => Promise<Acknowledged>} send
 *   publishes one message (a string as its UTF-8 bytes); resolves once the server stored it
 * @property {() => Promise<void>} close waits until every message sent is acknowledged, then
 *   closes the connection; rejects if one never is
 */

/**
 * A send the server acknowledged (stored in the topic's history).
 * @typedef {object} Acknowledged
 * @property {number} seq the message's seq when `exact`; otherwise the seq of a later
 *   message of the same publisher acknowledged together with it (it was stored before that)
 * @property {boolean} exact whether `seq` is this message's own
 */

/**
 * Subscribes to a topic (or a pattern of topics) in stream mode, reconnecting and resuming
 * until closed.
 *
 * @param {string|URL} url `ws://`/`wss://` URL of the topic, or a path (or `http(s)://` URL)
 *   resolved against the page's location; its query may carry `token=` and `name=`; a path
 *   with a `*` or last `**` segment follows every matching topic (live only)
 * @param {object} [options]
 * @param {"latest"|"earliest"|number|Date} [options.from="latest"] where the first connection
 *   starts: new messages only, the oldest in history, a seq (the first one wanted), or the
 *   first message taken at or after a time
 * @param {(message: Message) => void} [options.onMessage] each message, in order, once
 * @param {(gap: Gap) => void} [options.onGap] messages asked for that will never come
 * @param {StateListener} [options.onState] connection states
 * @param {ReconnectOptions|false} [options.reconnect] the reconnect policy, or `false` to end
 *   with the first connection
 * @returns {Subscription}
 */
export function subscribe(
  url,
  { from = "latest", onMessage, onGap, onState, reconnect = {} } = {},
) {
  const pattern = isPattern(url);
  if (pattern && from !== "latest") {
    throw new TypeError(`a pattern subscription is live only: from must be "latest", not ${String(from)}`);
  }
  const start = startQuery(from);
  const retry = reconnectPolicy(reconnect);
  const decoder = new TextDecoder();
  /** The seq of the next message wanted, once the server said where delivery begins. */
  let next = null;
  /** The subscription's topic, as the server names it. */
  let topic = "";
  let socket = null;
  let timer = null;
  let closed = false;
  /** Connections in a row that ended before the server's `subscribed` frame. */
  let failures = 0;

  function connect() {
    timer = null;
    const query = next === null || pattern ? start : { from: String(next) };
    const target = websocketUrl(url, "subscriber", query, ["from", "since"]);
    notify(onState, "connecting", { attempt: failures, url: target.href });
    const ws = new WebSocket(target, [SUBPROTOCOL]);
    ws.binaryType = "arraybuffer";
    socket = ws;
    let joined = false;
    let noStreamMode = false;
    ws.onopen = () => {
      noStreamMode = ws.protocol !== SUBPROTOCOL;
      if (noStreamMode) ws.close(1000, "no stream mode");
    };
    ws.onmessage = ({ data }) => {
      if (socket !== ws) return;
      if (typeof data === "string") {
        const control = parseControl(data);
        if (control?.type === "following") {
          // A pattern: each topic it comes to follow then has its own `subscribed`.
          joined = true;
          failures = 0;
          notify(onState, "open", control);
        } else if (control?.type === "subscribed" && pattern) {
          // One more topic followed, from its newest message on.
        } else if (control?.type === "subscribed") {
          // The server's word on where delivery begins (after a gap, not where we asked).
          next = control.from;
          topic = control.topic;
          joined = true;
          failures = 0;
          notify(onState, "open", control);
        } else if (control?.type === "gap") {
          const { from: gapFrom, to, reason } = control;
          notify(onGap, { from: gapFrom, to, reason, topic: control.topic });
        }
        return;
      }
      const message = decodeMessage(data, decoder, topic);
      if (message === null) return;
      if (!pattern) {
        if (next !== null && message.seq < next) return; // seen before
        next = message.seq + 1;
      }
      notify(onMessage, message);
    };
    ws.onclose = ({ code, reason }) => {
      if (socket !== ws || closed) return;
      socket = null;
      if (!joined) failures += 1;
      const retrying =
        retry !== null && !noStreamMode && !FINAL_CLOSE_CODES.has(code) && failures < retry.maxAttempts;
      const delayMs = retrying ? backoff(retry, failures) : 0;
      notify(onState, "closed", { code, reason, retrying, delayMs });
      if (retrying) timer = setTimeout(connect, delayMs);
      else closed = true;
    };
  }

  connect();
  return {
    close() {
      if (closed) return;
      closed = true;
      clearTimeout(timer);
      socket?.close(1000);
      socket = null;
      notify(onState, "closed", { code: 1000, reason: "closed by the client", retrying: false, delayMs: 0 });
    },
    get position() {
      return next;
    },
  };
}

/**
 * Connects a stream-mode publisher to a topic. Each `send` resolves once the server's
 * cumulative acknowledgement covers it; with `reconnect`, a broken connection is followed by
 * another and what was not acknowledged is sent again first, in order (at-least-once: a
 * message stored just before the break, its ack lost, is stored twice).
 *
 * @param {string|URL} url `ws://`/`wss://` URL of the topic, or a path (or `http(s)://` URL)
 *   resolved against the page's location; its query may carry `token=` and `name=`
 * @param {object} [options]
 * @param {boolean|ReconnectOptions} [options.reconnect=true] reconnect after a break (the
 *   policy, or `true` for the default one); without it, a break rejects every unacknowledged
 *   send and the publisher is done
 * @param {number} [options.closeTimeoutMs=30000] how long `close` waits for acknowledgements
 * @param {StateListener} [options.onState] connection states
 * @returns {Promise<Publisher>} once the first connection is open; rejects if it fails
 */
export async function publish(url, { reconnect = true, closeTimeoutMs = 30000, onState } = {}) {
  const retry = reconnect === false ? null : reconnectPolicy(reconnect === true ? {} : reconnect);
  const target = websocketUrl(url, "publisher", {}, []);
  /** Messages sent and not yet acknowledged, oldest first; all written while connected. */
  const pending = [];
  /** Messages of the current connection the server has acknowledged. */
  let acknowledged = 0;
  let socket = null;
  let timer = null;
  let failures = 0;
  /** Whether a connection ever opened: the first one failing rejects `publish` instead. */
  let everOpened = false;
  /** Set once the publisher is done: why later sends fail. */
  let ended = null;
  let closing = null;

  function fail(error) {
    ended ??= error;
    clearTimeout(timer);
    for (const message of pending.splice(0)) message.reject(error);
  }

  function acknowledge({ count, seq }) {
    const covered = Math.min(count - acknowledged, pending.length);
    if (!(covered > 0)) return;
    acknowledged += covered;
    for (const [index, message] of pending.splice(0, covered).entries()) {
      message.resolve({ seq, exact: index === covered - 1 });
    }
  }

  /** Opens a connection; resolves when it is open, rejects when it ends before. */
  function connect() {
    timer = null;
    notify(onState, "connecting", { attempt: failures, url: target.href });
    const ws = new WebSocket(target, [SUBPROTOCOL]);
    ws.binaryType = "arraybuffer";
    socket = ws;
    return new Promise((resolve, reject) => {
      let opened = false;
      let noStreamMode = false;
      ws.onopen = () => {
        noStreamMode = ws.protocol !== SUBPROTOCOL;
        if (noStreamMode) {
          ws.close(1000, "no stream mode");
          return;
        }
        opened = true;
        everOpened = true;
        failures = 0;
        acknowledged = 0;
        for (const message of pending) ws.send(message.frame);
        notify(onState, "open", { url: target.href });
        resolve();
      };
      ws.onmessage = ({ data }) => {
        if (typeof data !== "string") return;
        const control = parseControl(data);
        if (control?.type === "ack") acknowledge(control);
      };
      ws.onclose = ({ code, reason }) => {
        if (socket !== ws) return;
        socket = null;
        if (!opened) failures += 1;
        const error = new Error(
          noStreamMode
            ? `the server at ${target.href} does not speak ${SUBPROTOCOL}`
            : `connection to ${target.href} closed (${code}${reason ? `: ${reason}` : ""})`,
        );
        const retrying =
          everOpened &&
          ended === null &&
          retry !== null &&
          !noStreamMode &&
          !FINAL_CLOSE_CODES.has(code) &&
          failures < retry.maxAttempts;
        const delayMs = retrying ? backoff(retry, failures) : 0;
        notify(onState, "closed", { code, reason, retrying, delayMs });
        if (!opened) reject(error);
        if (retrying) {
          // The new connection's own close decides what comes after it.
          timer = setTimeout(() => connect().catch(() => {}), delayMs);
        } else {
          fail(error);
        }
      };
    });
  }

  await connect();
  return {
    send(data) {
      if (ended !== null) return Promise.reject(ended);
      if (closing !== null) return Promise.reject(new Error("the publisher is closing"));
      const frame = toBytes(data);
      return new Promise((resolve, reject) => {
        pending.push({ frame, resolve, reject });
        if (socket?.readyState === WebSocket.OPEN) socket.send(frame);
      });
    },
    close() {
      closing ??= closeWhenAcknowledged();
      return closing;
    },
  };

  async function closeWhenAcknowledged() {
    if (ended !== null) throw ended; // it broke before: its unacknowledged sends failed
    const outstanding = pending.map(
      (message) => new Promise((resolve, reject) => {
        const { resolve: acked, reject: failed } = message;
        message.resolve = (value) => (acked(value), resolve());
        message.reject = (error) => (failed(error), reject(error));
      }),
    );
    let deadline = null;
    const timedOut = new Promise((_, reject) => {
      deadline = setTimeout(
        () => reject(new Error(`${pending.length} messages not acknowledged within ${closeTimeoutMs} ms`)),
        closeTimeoutMs,
      );
    });
    try {
      await Promise.race([Promise.all(outstanding), timedOut]);
    } catch (error) {
      fail(error);
      throw error;
    } finally {
      clearTimeout(deadline);
      const ws = socket;
      ended ??= new Error("the publisher is closed");
      clearTimeout(timer);
      socket = null;
      if (ws !== null) await closeSocket(ws);
      notify(onState, "closed", { code: 1000, reason: "closed by the client", retrying: false, delayMs: 0 });
    }
  }
}

/** Closes `ws` with 1000 and resolves once it is closed. */
function closeSocket(ws) {
  return new Promise((resolve) => {
    ws.onclose = () => resolve();
    ws.close(1000);
  });
}

/** Whether `url`'s path is a pattern: a segment is exactly `*` or `**` (`%2A` is a star). */
function isPattern(url) {
  const base = typeof location === "undefined" ? "ws://localhost/" : location.href;
  const path = new URL(url, base).pathname;
  return path.split("/").some((segment) => segment === "*" || segment === "**");
}

/** The query of a subscriber's first connection for `from`; throws on a bad value. */
function startQuery(from) {
  if (from === "latest" || from === "earliest") return { from };
  if (Number.isSafeInteger(from) && from >= 0) return { from: String(from) };
  if (from instanceof Date && !Number.isNaN(from.getTime())) return { since: String(from.getTime()) };
  throw new TypeError(`from: "latest", "earliest", a seq or a Date, not ${String(from)}`);
}

/** The policy of `reconnect` (`false`: none), defaults filled in. */
function reconnectPolicy(reconnect) {
  if (reconnect === false) return null;
  const { initialDelayMs = 100, maxDelayMs = 10000, maxAttempts = Infinity } = reconnect;
  return { initialDelayMs, maxDelayMs, maxAttempts };
}

/** The delay before attempt `attempt`: from the upper half of the capped doubling (jitter). */
function backoff({ initialDelayMs, maxDelayMs }, attempt) {
  const cap = Math.min(maxDelayMs, initialDelayMs * 2 ** attempt);
  return cap / 2 + (Math.random() * cap) / 2;
}

/**
 * The WebSocket URL of `url` (a path resolves against the page) for `role`, with `query`
 * set after removing `drop`.
 */
function websocketUrl(url, role, query, drop) {
  const base = typeof location === "undefined" ? undefined : location.href;
  const target = new URL(url, base);
  if (target.protocol === "http:") target.protocol = "ws:";
  else if (target.protocol === "https:") target.protocol = "wss:";
  if (target.protocol !== "ws:" && target.protocol !== "wss:") {
    throw new TypeError(`not a ws://, wss:// or http(s):// URL: ${target.href}`);
  }
  for (const name of drop) target.searchParams.delete(name);
  target.searchParams.set("pubsub", role);
  for (const [name, value] of Object.entries(query)) target.searchParams.set(name, value);
  return target;
}

/** A control message's JSON, or `null` for a text frame that is not one. */
function parseControl(text) {
  try {
    const control = JSON.parse(text);
    return typeof control === "object" && control !== null ? control : null;
  } catch {
    return null;
  }
}

/** A message envelope decoded, or `null` for a frame of another (reserved) kind. */
function decodeMessage(buffer, decoder, subscriptionTopic) {
  if (buffer.byteLength < HEADER_LENGTH) return null;
  const view = new DataView(buffer);
  if (view.getUint8(0) !== MESSAGE_KIND) return null;
  const topicLength = view.getUint16(17);
  if (HEADER_LENGTH + topicLength > buffer.byteLength) return null;
  return {
    seq: Number(view.getBigUint64(1)),
    time: Number(view.getBigUint64(9)),
    topic: topicLength === 0 ? subscriptionTopic : decoder.decode(new Uint8Array(buffer, HEADER_LENGTH, topicLength)),
    data: new Uint8Array(buffer, HEADER_LENGTH + topicLength),
  };
}

/** A copy of `data` as bytes (a string as UTF-8): later changes to `data` do not leak in. */
function toBytes(data) {
  if (typeof data === "string") return new TextEncoder().encode(data);
  if (data instanceof ArrayBuffer) return new Uint8Array(data.slice(0));
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice();
  throw new TypeError("send: a Uint8Array, an ArrayBuffer, an ArrayBufferView or a string");
}

/** Calls a user callback; an exception it throws is reported, not allowed to stop delivery. */
function notify(callback, ...args) {
  if (typeof callback !== "function") return;
  try {
    callback(...args);
  } catch (error) {
    setTimeout(() => {
      throw error;
    });
  }
}

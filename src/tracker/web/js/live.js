// The WebSocket to /ws/flights: a snapshot, then updates at most once a second. When the connection
// drops it reports "lost" (the page shows a banner) and reconnects by itself with capped, jittered backoff.

export const BACKOFF_FIRST_MS = 500;
export const BACKOFF_MAX_MS = 10000;

// Delay before reconnect attempt n (0-based): doubling from 0.5 s, capped at 10 s, +-25% jitter so
// many open pages do not all come back in the same instant after a tracker restart.
export function backoffDelay(attempt, random = Math.random) {
  const base = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** Math.min(attempt, 20));
  return Math.round(base * (0.75 + random() * 0.5));
}

export function flightsSocketUrl(loc, bbox) {
  const scheme = loc.protocol === "https:" ? "wss:" : "ws:";
  const query = bbox ? `?bbox=${bbox.map((v) => v.toFixed(4)).join(",")}` : "";
  return `${scheme}//${loc.host}/ws/flights${query}`;
}

export class LiveConnection {
  // handlers: onSnapshot(msg), onUpdate(msg), optional onAlert(msg), onState(state, info) with state
  // "connecting" | "open" | "lost"; info.retryAt (ms epoch) when lost.
  constructor(url, handlers) {
    this.url = url;
    this.handlers = handlers;
    this.attempt = 0;
    this.socket = null;
    this.timer = null;
    this.closed = false;
  }

  connect() {
    this.closed = false;
    clearTimeout(this.timer);
    this.handlers.onState("connecting", { attempt: this.attempt });
    let socket;
    try {
      socket = new WebSocket(this.url);
    } catch (err) {
      this._scheduleReconnect(String(err));
      return;
    }
    this.socket = socket;
    socket.onopen = () => {
      this.attempt = 0;
      this.handlers.onState("open", {});
    };
    socket.onmessage = (event) => {
      let msg;
      try {
        msg = JSON.parse(event.data);
      } catch (err) {
        console.warn("tracker sent a message that is not JSON; ignored", err);
        return;
      }
      if (msg.type === "snapshot") this.handlers.onSnapshot(msg);
      else if (msg.type === "update") this.handlers.onUpdate(msg);
      else if (msg.type === "alert" && this.handlers.onAlert) this.handlers.onAlert(msg);
    };
    socket.onclose = (event) => {
      if (this.socket !== socket) return; // an old socket closing after a reconnect
      this.socket = null;
      if (!this.closed) this._scheduleReconnect(event.reason || `code ${event.code}`);
    };
    // onerror is always followed by onclose, which schedules the reconnect.
  }

  _scheduleReconnect(reason) {
    const delay = backoffDelay(this.attempt++);
    this.handlers.onState("lost", { retryAt: Date.now() + delay, reason, attempt: this.attempt });
    this.timer = setTimeout(() => this.connect(), delay);
  }

  close() {
    this.closed = true;
    clearTimeout(this.timer);
    if (this.socket) this.socket.close();
  }
}

// Sends the request to the upstream with safe retries and relays the answer unbuffered.
// Retries happen only while nothing has reached the client: on 429, 529, 5xx, a network
// error, or a 200 stream whose first event is an overloaded_error. Once bytes flow, a
// broken stream ends with an SSE error event and is never retried.
import type { Config } from "./config.ts";
import { sseErrorEvent } from "./errors.ts";
import { SseUsageScanner, isOverloadEvent, usageFromJson, type Usage } from "./usage.ts";

export interface Upstreamed {
  /** The upstream's response, or undefined when every attempt failed on the network. */
  response: Response | undefined;
  /** Bytes already read from the response (the first SSE event), to send first. */
  prefix: Uint8Array[];
  retries: number;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export function retryableStatus(status: number): boolean {
  return status === 429 || status === 529 || (status >= 500 && status <= 599);
}

/** retry-after in ms (`retry-after-ms`, seconds, or an HTTP date); undefined if absent. */
export function retryAfterMs(headers: Headers, nowMs: number): number | undefined {
  const ms = headers.get("retry-after-ms");
  if (ms !== null && Number.isFinite(Number(ms)) && Number(ms) >= 0) return Number(ms);
  const ra = headers.get("retry-after");
  if (ra === null) return undefined;
  if (/^\d+(\.\d+)?$/.test(ra.trim())) return Number(ra) * 1000;
  const t = Date.parse(ra);
  return Number.isNaN(t) ? undefined : Math.max(0, t - nowMs);
}

/** Exponential backoff with full jitter: random in [0, min(max, base * 2^attempt)]. */
export function backoffMs(attempt: number, cfg: Pick<Config, "retryBaseMs" | "retryMaxBackoffMs">, random: number): number {
  return Math.round(random * Math.min(cfg.retryMaxBackoffMs, cfg.retryBaseMs * 2 ** attempt));
}

/**
 * How long to wait before retrying a retryable answer: its retry-after when it sent one
 * (undefined = give up, when that is beyond the cap), else backoff.
 */
export function retryDelayMs(
  headers: Headers,
  attempt: number,
  cfg: Pick<Config, "retryBaseMs" | "retryMaxBackoffMs" | "retryAfterCapMs">,
  nowMs: number,
  random: number,
): number | undefined {
  const asked = retryAfterMs(headers, nowMs);
  if (asked !== undefined) return asked > cfg.retryAfterCapMs ? undefined : asked;
  return backoffMs(attempt, cfg, random);
}

function isEventStream(res: Response): boolean {
  return (res.headers.get("content-type") ?? "").toLowerCase().startsWith("text/event-stream");
}

const FIRST_EVENT_LIMIT = 64 * 1024;

/** Reads up to the end of the first SSE event. Throws on a network error. */
async function readFirstEvent(reader: ReadableStreamDefaultReader<Uint8Array>): Promise<{ chunks: Uint8Array[]; text: string }> {
  const chunks: Uint8Array[] = [];
  const dec = new TextDecoder();
  let text = "";
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return { chunks, text };
    chunks.push(value);
    size += value.byteLength;
    text += dec.decode(value, { stream: true });
    const norm = text.includes("\r") ? text.replace(/\r\n?/g, "\n") : text;
    const end = norm.indexOf("\n\n");
    if (end >= 0) return { chunks, text: norm.slice(0, end) };
    if (size > FIRST_EVENT_LIMIT) return { chunks, text: "" };
  }
}

export async function sendWithRetries(url: string, init: RequestInit, cfg: Config): Promise<Upstreamed> {
  let retries = 0;
  for (let attempt = 0; ; attempt++) {
    const last = attempt >= cfg.maxRetries;
    let res: Response;
    try {
      res = await fetch(url, init);
    } catch {
      if (last) return { response: undefined, prefix: [], retries };
      await sleep(backoffMs(attempt, cfg, Math.random()));
      retries++;
      continue;
    }
    if (retryableStatus(res.status)) {
      if (last) return { response: res, prefix: [], retries };
      const delay = retryDelayMs(res.headers, attempt, cfg, Date.now(), Math.random());
      // The upstream asked for a longer pause than we are willing to hold the client:
      // hand its answer (and its retry-after) to the client instead.
      if (delay === undefined) return { response: res, prefix: [], retries };
      await res.body?.cancel();
      await sleep(delay);
      retries++;
      continue;
    }
    if (res.status === 200 && res.body !== null && isEventStream(res)) {
      const reader = res.body.getReader();
      let first: { chunks: Uint8Array[]; text: string };
      try {
        first = await readFirstEvent(reader);
      } catch {
        // The stream broke before its first event: nothing was sent, so retry.
        if (last) return { response: undefined, prefix: [], retries };
        await sleep(backoffMs(attempt, cfg, Math.random()));
        retries++;
        continue;
      }
      if (!last && isOverloadEvent(first.text)) {
        await reader.cancel().catch(() => {});
        await sleep(backoffMs(attempt, cfg, Math.random()));
        retries++;
        continue;
      }
      reader.releaseLock();
      return { response: res, prefix: first.chunks, retries };
    }
    return { response: res, prefix: [], retries };
  }
}

export interface Relay {
  body: ReadableStream<Uint8Array> | null;
  /** Resolves when the body has been fully sent (or failed), with what it carried. */
  done: Promise<{ usage: Usage; interrupted: boolean }>;
}

const JSON_SCAN_LIMIT = 1024 * 1024;

/**
 * Relays the upstream body chunk by chunk (no buffering: a chunk is enqueued the moment
 * it is read) while a copy feeds the usage reader.
 */
export function relay(res: Response, prefix: Uint8Array[]): Relay {
  const sse = isEventStream(res);
  const scanner = sse ? new SseUsageScanner() : undefined;
  const jsonParts: Uint8Array[] = [];
  let jsonSize = 0;
  let finish!: (v: { usage: Usage; interrupted: boolean }) => void;
  const done = new Promise<{ usage: Usage; interrupted: boolean }>((r) => (finish = r));
  if (res.body === null) {
    finish({ usage: usageFromJson(""), interrupted: false });
    return { body: null, done };
  }
  const observe = (c: Uint8Array) => {
    if (scanner) scanner.push(c);
    else if (jsonSize < JSON_SCAN_LIMIT) {
      jsonParts.push(c);
      jsonSize += c.byteLength;
    }
  };
  const final = (interrupted: boolean, why = "stream_interrupted") => {
    if (scanner) {
      if (interrupted && scanner.usage.errorType === "") scanner.usage.errorType = why;
      finish({ usage: scanner.usage, interrupted });
      return;
    }
    const bytes = new Uint8Array(jsonSize);
    let off = 0;
    for (const p of jsonParts) {
      bytes.set(p, off);
      off += p.byteLength;
    }
    const usage = usageFromJson(new TextDecoder().decode(bytes));
    if (interrupted && usage.errorType === "") usage.errorType = why;
    finish({ usage, interrupted });
  };
  if (!sse && prefix.length === 0) {
    // JSON (and other non-stream) bodies: the runtime's own tee sends one branch to the
    // client untouched while the other is read for usage, off the client's path.
    const [client, copy] = res.body.tee();
    const read = async () => {
      const r = copy.getReader();
      let interrupted = false;
      try {
        for (;;) {
          const { done: end, value } = await r.read();
          if (end) break;
          if (jsonSize < JSON_SCAN_LIMIT) {
            jsonParts.push(value);
            jsonSize += value.byteLength;
          }
        }
      } catch {
        interrupted = true;
      }
      return interrupted;
    };
    void read().then((interrupted) => final(interrupted));
    return { body: client, done };
  }
  // SSE: the bytes already read (the first event) go first, then the runtime pipes the
  // rest natively to the client while a tee'd copy feeds the usage scanner. If the
  // upstream breaks mid-stream, the client's stream gets an SSE error event and closes.
  const [toClient, toScan] = res.body.tee();
  const out = new IdentityTransformStream();
  const enc = new TextEncoder();
  let upstreamFailed = false;
  const scanned = (async () => {
    for (const c of prefix) observe(c);
    const r = toScan.getReader();
    try {
      for (;;) {
        const { done: end, value } = await r.read();
        if (end) return;
        observe(value);
      }
    } catch {
      upstreamFailed = true;
    }
  })();
  void (async () => {
    let clientGone = false;
    try {
      const w = out.writable.getWriter();
      for (const c of prefix) await w.write(c);
      w.releaseLock();
      await toClient.pipeTo(out.writable, { preventClose: true, preventAbort: true });
    } catch {
      // Either side failed; the scanner tells which.
    }
    await scanned;
    try {
      const w = out.writable.getWriter();
      if (upstreamFailed) {
        // Close any half-sent event, then tell the client what happened.
        const tail = scanner!.atBoundary ? "" : "\n\n";
        await w.write(enc.encode(tail + sseErrorEvent("api_error", "upstream stream interrupted")));
      }
      await w.close();
    } catch {
      clientGone = true;
    }
    final(upstreamFailed || clientGone, upstreamFailed ? "stream_interrupted" : "client_closed");
  })();
  const body = out.readable;
  return { body, done };
}

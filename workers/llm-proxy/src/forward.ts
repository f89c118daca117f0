// Sends the request to the upstream with safe retries and relays the answer. Retries
// happen only while nothing has reached the client: on 429, 529, 5xx, a network error
// (also one that cuts a JSON answer short), or a 200 stream whose first event is an
// overloaded_error. SSE streams are relayed unbuffered; once their bytes flow, a broken
// stream ends with an SSE error event and is never retried. JSON (non-stream) answers are
// read whole before anything is sent: they are small (bounded by max_tokens), arrive in
// one piece anyway, and reading them here lets usage be taken from the same bytes with
// no second stream and no work after the response.
import type { Config } from "./config.ts";
import { sseErrorEvent } from "./errors.ts";
import { SseUsageScanner, type Usage } from "./usage.ts";

export interface Upstreamed {
  /** The upstream's response, or undefined when every attempt failed on the network. */
  response: Response | undefined;
  /** Non-stream answers: the whole body, already read (the response's body is used up). */
  bytes?: ArrayBuffer;
  /** SSE answers: the body, split for the client and for the usage scanner. */
  stream?: SplitStream;
  retries: number;
}

/**
 * An SSE body split with the runtime's tee(): the client's branch is untouched (nothing
 * has been read from it); the scan branch has had its first event read into `scanner`,
 * which is how an overloaded stream is recognised before a byte reaches the client.
 */
export interface SplitStream {
  client: ReadableStream<Uint8Array>;
  scan: ReadableStreamDefaultReader<Uint8Array>;
  scanner: SseUsageScanner;
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

/** Feeds the scanner up to the end of the first SSE event. Throws on a network error. */
async function readFirstEvent(reader: ReadableStreamDefaultReader<Uint8Array>, scanner: SseUsageScanner): Promise<void> {
  let size = 0;
  while (scanner.events === 0 && size <= FIRST_EVENT_LIMIT) {
    const { done, value } = await reader.read();
    if (done) return;
    size += value.byteLength;
    scanner.push(value);
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
      if (last) return { response: undefined, retries };
      await sleep(backoffMs(attempt, cfg, Math.random()));
      retries++;
      continue;
    }
    if (retryableStatus(res.status)) {
      const delay = last ? undefined : retryDelayMs(res.headers, attempt, cfg, Date.now(), Math.random());
      // The last attempt, or the upstream asked for a longer pause than we are willing to
      // hold the client: hand its answer (and its retry-after) to the client instead.
      if (delay === undefined) return passOn(res, retries);
      await res.body?.cancel();
      await sleep(delay);
      retries++;
      continue;
    }
    if (res.status === 200 && res.body !== null && isEventStream(res)) {
      const [client, copy] = res.body.tee();
      const scan = copy.getReader();
      const scanner = new SseUsageScanner();
      try {
        await readFirstEvent(scan, scanner);
      } catch {
        // The stream broke before its first event: nothing was sent, so retry.
        await client.cancel().catch(() => {});
        if (last) return { response: undefined, retries };
        await sleep(backoffMs(attempt, cfg, Math.random()));
        retries++;
        continue;
      }
      // Nothing has reached the client yet: an overload among the events read so far
      // (normally just the first) is as safe to retry as a 529.
      if (!last && scanner.usage.errorType === "overloaded_error") {
        await Promise.all([scan.cancel().catch(() => {}), client.cancel().catch(() => {})]);
        await sleep(backoffMs(attempt, cfg, Math.random()));
        retries++;
        continue;
      }
      return { response: res, stream: { client, scan, scanner }, retries };
    }
    if (isEventStream(res)) return passOn(res, retries);
    let bytes: ArrayBuffer;
    try {
      bytes = await res.arrayBuffer();
    } catch {
      // The answer broke before its end: nothing was sent, so retry.
      if (last) return { response: undefined, retries };
      await sleep(backoffMs(attempt, cfg, Math.random()));
      retries++;
      continue;
    }
    return { response: res, bytes, retries };
  }
}

/** An answer handed to the client as it is (no retry left): read whole unless a stream. */
async function passOn(res: Response, retries: number): Promise<Upstreamed> {
  if (isEventStream(res) && res.body !== null) {
    const [client, copy] = res.body.tee();
    return { response: res, stream: { client, scan: copy.getReader(), scanner: new SseUsageScanner() }, retries };
  }
  try {
    return { response: res, bytes: await res.arrayBuffer(), retries };
  } catch {
    return { response: undefined, retries };
  }
}

export interface Relayed {
  usage: Usage;
  /** The upstream or the client broke the stream before its end. */
  interrupted: boolean;
}

/**
 * Relays an SSE body: the runtime pipes the client's branch natively (no chunk waits for
 * JavaScript) while the scan branch feeds the usage scanner. The scan branch is read
 * lazily, since each read of a tee'd branch costs a JavaScript turn: once the client's
 * pipe has ended, or from `lagMs` (SSE_SCAN_LAG_MS) on, whichever comes first. tee()
 * keeps what a branch has not read yet and a lagging branch never holds the other back,
 * so a stream that ends within `lagMs` (most answers) is scanned in a few reads of what
 * was kept, and a longer one is scanned as it flows from then on: the branch never holds
 * much more than `lagMs` of the stream. With 0, every chunk is scanned as it comes.
 * If the upstream breaks mid-stream, the client's stream gets an SSE error event and
 * closes. `onDone` is called once, when the stream has ended or failed, before the
 * client's stream is closed.
 */
export function relayStream(split: SplitStream, lagMs: number, onDone: (r: Relayed) => void): ReadableStream<Uint8Array> {
  const scanner = split.scanner;
  const out = new IdentityTransformStream();
  void (async () => {
    const piped = split.client.pipeTo(out.writable, { preventClose: true, preventAbort: true }).then(
      () => false,
      () => true, // either side failed; the scan branch tells which
    );
    let pipeFailed: boolean | undefined;
    if (lagMs > 0) {
      let lag: ReturnType<typeof setTimeout> | undefined;
      pipeFailed = await Promise.race([piped, new Promise<undefined>((r) => (lag = setTimeout(r, lagMs, undefined)))]);
      if (lag !== undefined) clearTimeout(lag);
    }
    let upstreamFailed = false;
    try {
      for (;;) {
        const { done, value } = await split.scan.read();
        if (done) break;
        scanner.push(value);
      }
    } catch {
      upstreamFailed = true;
    }
    if (pipeFailed === undefined) pipeFailed = await piped;
    let clientGone = pipeFailed && !upstreamFailed;
    const w = out.writable.getWriter();
    if (upstreamFailed) {
      // Close any half-sent event, then tell the client what happened.
      const tail = scanner.atBoundary ? "" : "\n\n";
      await w.write(new TextEncoder().encode(tail + sseErrorEvent("api_error", "upstream stream interrupted"))).catch(() => (clientGone = true));
    }
    if ((upstreamFailed || clientGone) && scanner.usage.errorType === "") {
      scanner.usage.errorType = upstreamFailed ? "stream_interrupted" : "client_closed";
    }
    try {
      onDone({ usage: scanner.usage, interrupted: upstreamFailed || clientGone });
    } finally {
      await w.close().catch(() => {});
    }
  })();
  return out.readable;
}

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
import type { StreamEnd } from "../../shared/usage-event.ts";
import { retryAfterMs } from "../../shared/retry-after.ts";
import { SseUsageScanner, type Usage } from "./usage.ts";

export interface Upstreamed {
  /** The upstream's response, or undefined when no attempt produced one (see `failure`). */
  response: Response | undefined;
  /** Non-stream answers: the whole body, already read (the response's body is used up). */
  bytes?: ArrayBuffer;
  /** SSE answers: the body, split for the client and for the usage scanner. */
  stream?: SplitStream;
  retries: number;
  /**
   * Why there is no response: the last attempt failed on the network, or timed out (any
   * earlier one timing out also makes it "timeout"), or its answer broke off before it was
   * whole.
   */
  failure?: "unreachable" | "timeout" | "cut";
  /**
   * The last attempt may have been billed (`again` in sendWithRetries says which are): a
   * call that holds a reservation is then charged the whole of it.
   */
  billable?: boolean;
  /**
   * Attempts before the last that the upstream may have billed and the proxy retried
   * (only for a call holding no reservation: one that holds one is not retried after such
   * an attempt). Anthropic reported no usage for them; the usage event says how many.
   */
  maybeBilledRetries?: number;
  /**
   * The answer is a retryable failure and the proxy has used up what it may spend on it
   * (MAX_RETRIES, or RETRY_DEADLINE_MS): the client is told `x-should-retry: false`, so an
   * SDK's own retries do not multiply the proxy's (issue 14.4).
   */
  exhausted: boolean;
}

/**
 * An SSE body split with the runtime's tee(): the client's branch is untouched (nothing
 * has been read from it); the scan branch has had its first event read into `scanner`,
 * which is how an overloaded stream is recognised before a byte reaches the client.
 * Cancelling both branches cancels the upstream fetch (tee() cancels its source once
 * both of its branches are cancelled), which is how the proxy stops an upstream.
 */
export interface SplitStream {
  client: ReadableStream<Uint8Array>;
  scan: ReadableStreamDefaultReader<Uint8Array>;
  scanner: SseUsageScanner;
  /**
   * The attempt's timer, paused: the relay waits out its lag on it. It was armed to fire
   * no later than the lag after the attempt began, so a wait of the lag from the first
   * event needs no new timer (it re-arms once, for the rest, if the stream outlasts it).
   */
  dog: Watchdog;
}

/**
 * How long the relay leaves the scan branch unread (SSE_SCAN_LAG_MS, at most half the
 * idle timeout, which is only watched once the scan reads as it flows); 0: it reads as it
 * flows from the start.
 */
export function scanLagMs(lagMs: number, idleMs: number): number {
  return Math.min(lagMs, idleMs / 2);
}

/** What an attempt sends: the body is bytes (re-sendable) or a stream (one attempt only). */
export interface Outgoing {
  method: string;
  headers: Headers;
  body: ArrayBuffer | ReadableStream<Uint8Array> | null;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

const TIMEOUT = Symbol("timeout");

/**
 * The bounded waits of one attempt (headers, then a JSON answer's end or a stream's first
 * event) on a single timer. They use a timer instead of an AbortSignal on fetch(): in
 * workerd a signal on a subrequest costs ~80-100 µs of CPU per call (workerd then wraps
 * the request and the response body in the signal's canceler: http.c++
 * handleHttpResponse, AbortableInputStream; measured with `npm run bench:proxy`, issue
 * 14), about as much as the whole gap to the pass-through. What a signal would have
 * cancelled is cancelled through the body instead (see `discard` and the callers). One
 * timer, not one per wait: setting and clearing a timer is a measurable part of a call's
 * CPU (the profile in docs/llm-proxy.md), and the common call sets one and clears it.
 *
 * The timer first fires at the earlier of the two bounds; when it fires before the wait
 * in force is due (its bound is further, or it started later), it re-arms for the rest;
 * a wait due before the pending timer would fire replaces it.
 */
export class Watchdog {
  private timer: ReturnType<typeof setTimeout> | undefined;
  /** When the pending timer fires. */
  private firesAt = 0;
  private due = 0;
  private onDue: () => void = () => {};

  constructor(firstMs: number) {
    this.arm(firstMs);
  }

  /** From now on, `onDue` runs once `ms` have passed, unless `watch` or `clear` comes first. */
  watch(ms: number, onDue: () => void): void {
    this.until(Date.now() + ms, onDue);
  }

  /** From now on, `onDue` runs at `due` (a Date.now() time), unless `watch` or `clear` comes first. */
  until(due: number, onDue: () => void): void {
    this.due = due;
    this.onDue = onDue;
    // A timer that would fire after this wait is due (it was re-armed for the headers'
    // longer bound) is replaced; one that fires sooner re-arms itself when it fires.
    if (this.timer === undefined || this.firesAt > due) this.arm(Math.max(0, due - Date.now()));
  }

  /** `p` if it settles within `ms`, else TIMEOUT (the headers, then a JSON answer's body). */
  within<T>(p: Promise<T>, ms: number): Promise<T | typeof TIMEOUT> {
    return Promise.race([p, new Promise<typeof TIMEOUT>((r) => this.watch(ms, () => r(TIMEOUT)))]);
  }

  clear(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.onDue = () => {};
  }

  /**
   * Nothing is due, but the pending timer is kept (it fires as a no-op unless `until`
   * gives it a wait first): a stream's relay waits on it next (relayStream's lag), and
   * reusing it saves a clear and a set per streamed call.
   */
  pause(): void {
    this.onDue = () => {};
    this.due = 0;
  }

  private arm(ms: number): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.firesAt = Date.now() + ms;
    this.timer = setTimeout(this.tick, ms);
  }

  private readonly tick = (): void => {
    this.timer = undefined;
    const left = this.due - Date.now();
    if (left > 0) this.arm(left);
    else {
      const f = this.onDue;
      this.onDue = () => {};
      f();
    }
  };
}

/**
 * An attempt given up before its headers came: when they come, its body is cancelled at
 * once, which closes the connection. Until then the connection stays open; workerd closes
 * it when the call ends, since a request's subrequests end with it (not kept alive by
 * waitUntil; tested: forward.test.ts "an attempt whose headers never come").
 */
function discard(sent: Promise<Response>): void {
  sent.then(
    (r) => r.body?.cancel().catch(() => {}),
    () => {},
  );
}

/**
 * A whole body, or TIMEOUT when it did not end within `ms`. Throws when the body breaks.
 * One native `arrayBuffer()`, not a loop of `read()`s: each read is a JavaScript turn, and
 * the one read costs ~5% less workerd CPU per JSON call (30 alternating rounds in each
 * order, two proxy builds in one workerd; docs/llm-proxy.md). The price: a body locked by
 * `arrayBuffer()` cannot be cancelled, so the connection of an answer that stalls after
 * its headers stays open, like a hung attempt's (`discard`), until the call ends and
 * workerd ends its subrequests (tested: forward.test.ts "a JSON answer that stalls").
 */
async function readWithin(res: Response, ms: number, dog: Watchdog): Promise<ArrayBuffer | typeof TIMEOUT> {
  if (res.body === null) {
    dog.clear();
    return new ArrayBuffer(0);
  }
  const whole = res.arrayBuffer();
  try {
    const r = await dog.within(whole, ms);
    if (r === TIMEOUT) whole.catch(() => {});
    return r;
  } finally {
    dog.clear();
  }
}

export function retryableStatus(status: number): boolean {
  return status === 429 || status === 529 || (status >= 500 && status <= 599);
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

/**
 * Whether an answer may be retried: the upstream's `x-should-retry` first (Anthropic sends
 * it, and its SDKs obey it before their own rules: @anthropic-ai/sdk client.js
 * shouldRetry), then the status.
 */
export function upstreamRetryable(res: Response): boolean {
  const h = res.headers.get("x-should-retry");
  if (h === "true") return true;
  if (h === "false") return false;
  return retryableStatus(res.status);
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

type RetryCfg = Pick<
  Config,
  "maxRetries" | "retryBaseMs" | "retryMaxBackoffMs" | "retryAfterCapMs" | "retryDeadlineMs" | "headersTimeoutMs" | "firstEventTimeoutMs" | "sseScanLagMs" | "sseIdleTimeoutMs"
>;

/**
 * Sends `out` to `url` and retries while nothing has reached the client. Every wait is
 * bounded: an attempt gets HEADERS_TIMEOUT_MS to its headers and FIRST_EVENT_TIMEOUT_MS
 * from them to a stream's first event (or a JSON answer's end), and is retried like a
 * network error when it runs out; the waits between attempts (backoff, retry-after) end
 * by RETRY_DEADLINE_MS after `startedMs`, or are not started. A streamed body (`out.body`
 * a stream) is sent once.
 */
export async function sendWithRetries(url: string, out: Outgoing, cfg: RetryCfg, startedMs: number, oneBilledAttempt = false): Promise<Upstreamed> {
  const canRetry = !(out.body instanceof ReadableStream);
  const lag = scanLagMs(cfg.sseScanLagMs, cfg.sseIdleTimeoutMs);
  const deadline = startedMs + cfg.retryDeadlineMs;
  let retries = 0;
  let failure: "unreachable" | "timeout" = "unreachable";
  // Retried attempts the upstream may have billed; counted on what is returned.
  let maybeBilled = 0;
  const counted = (u: Upstreamed): Upstreamed => {
    if (maybeBilled > 0) u.maybeBilledRetries = maybeBilled;
    return u;
  };
  // The wait before the next attempt, or undefined when there is none: no retries left,
  // not retryable, or past the deadline. `cut` tells the client the proxy gave up for it.
  const nextWait = (attempt: number, proposed: number | undefined): { wait?: number; cut: boolean } => {
    if (!canRetry || cfg.maxRetries === 0) return { cut: false };
    if (attempt >= cfg.maxRetries) return { cut: true };
    if (proposed === undefined) return { cut: false }; // retry-after beyond the cap: the client's call
    if (Date.now() + proposed > deadline) return { cut: true };
    return { wait: proposed, cut: false };
  };

  for (let attempt = 0; ; attempt++) {
    // The attempt failed before anything reached the client: retry it, or give up.
    // `billable`: the upstream may have billed it. That is every attempt that may have
    // reached it and was not answered with an error status: its headers timed out, its
    // connection was lost (a connect failure cannot be told from a request cut in the
    // middle, which Anthropic bills for what it generated), or its 2xx answer broke off or
    // stalled. With `oneBilledAttempt` (a call holding a reservation sized for one attempt)
    // such an attempt ends the call: a retry could be billed again beyond the reservation,
    // and so overshoot the tenant's budget or token limit. The client's own retry is a new
    // call with a reservation of its own.
    const again = async (why: "unreachable" | "timeout" | "cut", billable: boolean): Promise<Upstreamed | undefined> => {
      if (why === "timeout") failure = "timeout";
      if (billable && oneBilledAttempt) return counted({ response: undefined, retries, failure: why, billable: true, exhausted: false });
      const n = nextWait(attempt, backoffMs(attempt, cfg, Math.random()));
      // The last attempt's 2xx answer broke off: say so (earlier timeouts still make it "timeout").
      if (n.wait === undefined) return counted({ response: undefined, retries, failure: why === "cut" && failure !== "timeout" ? "cut" : failure, billable, exhausted: n.cut });
      await sleep(n.wait);
      retries++;
      if (billable) maybeBilled++;
      return undefined;
    };
    const sent = fetch(url, { method: out.method, headers: out.headers, body: out.body });
    // The first timer fires no later than a stream's relay lag, which then waits on it
    // (SplitStream.dog). An attempt whose headers or first event take longer than the
    // lag re-arms it once when it fires (a JSON answer slower than that too): a timer set
    // more on slow calls, one set and clear fewer on every streamed call.
    const dog = new Watchdog(Math.min(cfg.headersTimeoutMs, cfg.firstEventTimeoutMs, lag > 0 ? lag : Infinity));
    let got: Response | typeof TIMEOUT;
    try {
      got = await dog.within(sent, cfg.headersTimeoutMs);
    } catch {
      dog.clear();
      const r = await again("unreachable", true);
      if (r) return r;
      continue;
    }
    if (got === TIMEOUT) {
      dog.clear();
      discard(sent);
      const r = await again("timeout", true);
      if (r) return r;
      continue;
    }
    const res = got;

    if (!res.ok && upstreamRetryable(res)) {
      const n = nextWait(attempt, retryDelayMs(res.headers, attempt, cfg, Date.now(), Math.random()));
      // No retry left, or the upstream asked for a longer pause than we are willing to hold
      // the client: hand its answer (and its retry-after) to the client instead.
      if (n.wait === undefined) return counted(await passOn(res, retries, n.cut, cfg.firstEventTimeoutMs, dog));
      dog.clear();
      await res.body?.cancel().catch(() => {});
      await sleep(n.wait);
      retries++;
      continue;
    }
    const sse = isEventStream(res);
    if (res.status === 200 && res.body !== null && sse) {
      const [client, copy] = res.body.tee();
      const scan = copy.getReader();
      const scanner = new SseUsageScanner();
      // Both branches cancelled: the upstream connection closes, and the pending read ends.
      const stop = () => Promise.all([scan.cancel().catch(() => {}), client.cancel().catch(() => {})]);
      let timedOut = false;
      dog.watch(cfg.firstEventTimeoutMs, () => {
        timedOut = true;
        void stop();
      });
      let broke = false;
      try {
        await readFirstEvent(scan, scanner);
      } catch {
        broke = true;
      }
      if (broke || timedOut) {
        dog.clear();
        // The stream broke (or went silent) before its first event: nothing was sent, so retry.
        await stop();
        const r = await again(timedOut ? "timeout" : "cut", true);
        if (r) return r;
        continue;
      }
      // Nothing has reached the client yet: an overload among the events read so far
      // (normally just the first) is as safe to retry as a 529. Unless a message_start came
      // before it in the same read: that message was started and may be billed, so a call
      // holding a reservation relays it as it came (settled as cut) instead.
      if (scanner.usage.errorType === "overloaded_error" && !(oneBilledAttempt && scanner.started)) {
        const n = nextWait(attempt, backoffMs(attempt, cfg, Math.random()));
        if (n.wait !== undefined) {
          dog.clear();
          await stop();
          await sleep(n.wait);
          retries++;
          // A message_start before the overload: that attempt's message was started, and
          // may be billed (its usage is not the retry's).
          if (scanner.started) maybeBilled++;
          continue;
        }
      }
      dog.pause();
      return counted({ response: res, stream: { client, scan, scanner, dog }, retries, exhausted: false });
    }
    if (sse) return counted(await passOn(res, retries, false, cfg.firstEventTimeoutMs, dog));
    let bytes: ArrayBuffer | typeof TIMEOUT;
    try {
      bytes = await readWithin(res, cfg.firstEventTimeoutMs, dog);
    } catch {
      // The answer broke before its end: nothing was sent, so retry (an error answer's
      // body cannot have been billed).
      const r = await again("cut", res.ok);
      if (r) return r;
      continue;
    }
    if (bytes === TIMEOUT) {
      // It stalled (readWithin cancelled it): nothing was sent, so retry.
      const r = await again("timeout", res.ok);
      if (r) return r;
      continue;
    }
    return counted({ response: res, bytes, retries, exhausted: false });
  }
}

/** An answer handed to the client as it is (not retried): read whole unless a stream. */
async function passOn(res: Response, retries: number, exhausted: boolean, bodyTimeoutMs: number, dog: Watchdog): Promise<Upstreamed> {
  if (isEventStream(res) && res.body !== null) {
    dog.pause();
    const [client, copy] = res.body.tee();
    return { response: res, stream: { client, scan: copy.getReader(), scanner: new SseUsageScanner(), dog }, retries, exhausted };
  }
  try {
    const bytes = await readWithin(res, bodyTimeoutMs, dog);
    if (bytes === TIMEOUT) return { response: undefined, retries, failure: "timeout", exhausted };
    return { response: res, bytes, retries, exhausted };
  } catch {
    return { response: undefined, retries, failure: "unreachable", exhausted };
  }
}

export interface Relayed {
  usage: Usage;
  /** Set when the stream ended without its final usage, saying why: the client or the
   *  upstream broke it, it went silent, or the upstream sent an error event after
   *  message_start. */
  ended?: StreamEnd;
  /** A message_start was read: the upstream started a (billed) message. */
  started: boolean;
}

export interface RelayOptions {
  /** The call's request id, carried by the SSE error event the relay may append. */
  requestId?: string;
  /** SSE_SCAN_LAG_MS: how long the scan branch may go unread. */
  lagMs: number;
  /** SSE_IDLE_TIMEOUT_MS: longest silence between chunks once the scan reads as it flows. */
  idleMs: number;
}

const STOP = Symbol("stop");
const QUIET = Symbol("quiet");
// After the client's pipe failed: how long a read of the scan branch may take and still
// count as "already buffered" (a read that waits longer means the upstream is still
// sending: the client left), and how long the reads of what the branch holds (the usage
// seen so far) may take in all before the upstream is cancelled.
const DRAIN_MS = 5;
const DRAIN_TOTAL_MS = 50;

/**
 * Relays an SSE body: the runtime pipes the client's branch natively (no chunk waits for
 * JavaScript) while the scan branch feeds the usage scanner. The scan branch is read
 * lazily, since each read of a tee'd branch costs a JavaScript turn: once the client's
 * pipe has ended, or from `lagMs` on, whichever comes first; from then on as it flows,
 * racing each read against the pipe's failure and against `idleMs` of silence.
 * - Upstream breaks: the client gets an SSE error event (`stream_interrupted`).
 * - Upstream silent for `idleMs` (measured from when the scan reads as it flows, so up to
 *   `lagMs` late): the upstream is cancelled and the client gets an error event
 *   (`stream_idle_timeout`).
 * - Client leaves: the chunks the scan branch already holds are read (the usage seen so
 *   far), then the upstream is cancelled, so the model stops generating for nobody
 *   (`client_closed`). tee() only cancels its source once both branches are cancelled;
 *   reading the scan branch to the end would keep the upstream going (issue 14.1).
 * `onDone` is called once, when the stream has ended or failed, before the client's
 * stream is closed.
 */
export function relayStream(split: SplitStream, opts: RelayOptions, onDone: (r: Relayed) => void): ReadableStream<Uint8Array> {
  const { scanner, scan } = split;
  const out = new IdentityTransformStream();
  void (async () => {
    let pipe = "running" as "running" | "ok" | "failed";
    let stop!: (why: typeof STOP) => void;
    const stopped = new Promise<typeof STOP>((r) => (stop = r));
    // Stopping the upstream = cancelling both branches of the tee: `halt` makes the pipe
    // cancel the client's branch (it is locked by the pipe), then the scan branch is
    // cancelled directly; tee() then cancels the fetch's body, closing the connection.
    const halt = new AbortController();
    const stopUpstream = () => {
      halt.abort();
      void scan.cancel().catch(() => {});
    };
    const piped = split.client.pipeTo(out.writable, { preventClose: true, preventAbort: true, signal: halt.signal }).then(
      () => void (pipe = "ok"),
      () => {
        pipe = "failed"; // either side failed; the scan branch tells which
        stop(STOP);
      },
    );
    const lag = scanLagMs(opts.lagMs, opts.idleMs);
    // On the attempt's timer (one set and clear fewer per call), from the first event.
    if (lag > 0) await Promise.race([piped, new Promise<void>((r) => split.dog.until(Date.now() + lag, r))]);
    split.dog.clear();
    let upstreamFailed = false;
    let idle = false;
    let clientGone = false;
    let last = Date.now();
    let idleTimer: ReturnType<typeof setTimeout> | undefined;
    const watch = (ms: number) => {
      idleTimer = setTimeout(() => {
        const quiet = Date.now() - last;
        if (quiet < opts.idleMs) return watch(opts.idleMs - quiet);
        idle = true;
        stopUpstream();
        stop(STOP);
      }, ms);
    };
    if (pipe === "running") watch(opts.idleMs);
    let pending: Promise<ReadableStreamReadResult<Uint8Array>> | undefined;
    try {
      // As it flows (or, once the pipe has ended well, what the branch kept).
      for (;;) {
        const r = pipe === "ok" ? await (pending ?? scan.read()) : await Promise.race([pending ?? (pending = scan.read()), stopped]);
        if (r === STOP) break;
        pending = undefined;
        if (r.done) break;
        last = Date.now();
        scanner.push(r.value);
      }
      if (pipe === "failed" && !idle) {
        // Read what the branch already holds; a read that has to wait means the upstream
        // is still sending while the client's side is gone.
        clientGone = true;
        const until = Date.now() + DRAIN_TOTAL_MS;
        while (Date.now() < until) {
          const r = await Promise.race([pending ?? (pending = scan.read()), new Promise<typeof QUIET>((ok) => setTimeout(ok, DRAIN_MS, QUIET))]);
          if (r === QUIET) break;
          pending = undefined;
          if (r.done) break;
          scanner.push(r.value);
        }
      }
    } catch {
      // The scan branch errored: the upstream broke (or was aborted for silence).
      if (!idle) {
        upstreamFailed = true;
        clientGone = false;
      }
    }
    if (idleTimer !== undefined) clearTimeout(idleTimer);
    if (clientGone || idle) stopUpstream();
    await piped;
    const w = out.writable.getWriter();
    if (upstreamFailed || idle) {
      // Close any half-sent event, then tell the client what happened.
      const tail = scanner.atBoundary ? "" : "\n\n";
      const msg = idle ? `upstream sent nothing for ${opts.idleMs} ms` : "upstream stream interrupted";
      await w.write(new TextEncoder().encode(tail + sseErrorEvent("api_error", msg, opts.requestId))).catch(() => (clientGone = true));
    }
    const cut: StreamEnd | undefined = idle ? "stream_idle_timeout" : upstreamFailed ? "stream_interrupted" : clientGone ? "client_closed" : undefined;
    if (cut !== undefined && scanner.usage.errorType === "") scanner.usage.errorType = cut;
    // A stream that started a message and then ended without a final usage the scanner
    // could read lacks its output count as much as a cut one: an error event instead of it
    // (a mid-stream overloaded_error, say) is upstream_error; a clean end without it, or a
    // message_delta over the scanner's event bound (a tenant's long stop sequence is echoed
    // in it), is stream_interrupted. Either way the call settles as cut (max_tokens).
    const unfinished = scanner.started && !scanner.final;
    const ended = cut ?? (unfinished ? (scanner.usage.errorType !== "" ? "upstream_error" : "stream_interrupted") : undefined);
    try {
      onDone({ usage: scanner.usage, started: scanner.started, ...(ended !== undefined ? { ended } : {}) });
    } finally {
      if (clientGone) await w.abort().catch(() => {});
      else await w.close().catch(() => {});
    }
  })();
  return out.readable;
}

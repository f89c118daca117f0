// Reads model and token usage from the bytes as they pass to the client: the JSON body
// of a non-streaming reply, or the message_start / message_delta / error events of an
// SSE stream. Observes copies of the chunks; it never holds the client up.

export interface Usage {
  model: string;
  inputTokens: number;
  outputTokens: number;
  cacheCreationTokens: number;
  /** Anthropic's `cache_creation` split of cacheCreationTokens by TTL (issue 16: 5-minute
   *  and 1-hour writes are priced differently). Zero when the upstream sent no split. */
  cacheWrite5mTokens: number;
  cacheWrite1hTokens: number;
  cacheReadTokens: number;
  /** Set when the body carried an error (an `error` event or an error envelope). */
  errorType: string;
  /** count_tokens answers: the tokens counted. Kept apart from inputTokens: counting is
   *  not a billed model call, and adding it to input tokens would inflate usage. */
  countedTokens: number;
}

export function emptyUsage(): Usage {
  return { model: "", inputTokens: 0, outputTokens: 0, cacheCreationTokens: 0, cacheWrite5mTokens: 0, cacheWrite1hTokens: 0, cacheReadTokens: 0, errorType: "", countedTokens: 0 };
}

const n = (v: unknown): number => (typeof v === "number" && Number.isFinite(v) ? v : 0);

function applyUsage(u: Usage, raw: unknown): void {
  if (typeof raw !== "object" || raw === null) return;
  const r = raw as Record<string, unknown>;
  // message_delta reports cumulative output tokens; take the latest value we see.
  if ("input_tokens" in r && n(r.input_tokens) > 0) u.inputTokens = n(r.input_tokens);
  if ("output_tokens" in r) u.outputTokens = n(r.output_tokens);
  if ("cache_creation_input_tokens" in r && n(r.cache_creation_input_tokens) > 0) u.cacheCreationTokens = n(r.cache_creation_input_tokens);
  if ("cache_read_input_tokens" in r && n(r.cache_read_input_tokens) > 0) u.cacheReadTokens = n(r.cache_read_input_tokens);
  const split = r.cache_creation;
  if (typeof split === "object" && split !== null) {
    const c = split as Record<string, unknown>;
    if (n(c.ephemeral_5m_input_tokens) > 0) u.cacheWrite5mTokens = n(c.ephemeral_5m_input_tokens);
    if (n(c.ephemeral_1h_input_tokens) > 0) u.cacheWrite1hTokens = n(c.ephemeral_1h_input_tokens);
  }
}

/** Parses one SSE event block ("event: x\ndata: {...}"). */
export function parseEvent(block: string): { event: string; data: string } {
  let event = "message";
  let data: string | undefined;
  // Line by line with indexOf, not split: no array of lines per event.
  for (let i = 0; i <= block.length; ) {
    let e = block.indexOf("\n", i);
    if (e < 0) e = block.length;
    if (block.startsWith("event:", i)) event = block.slice(i + 6, e).trim();
    else if (block.startsWith("data:", i)) {
      // One leading space is not part of the value.
      const d = block.slice(i + 5 < e && block.charCodeAt(i + 5) === 32 ? i + 6 : i + 5, e);
      data = data === undefined ? d : data + "\n" + d;
    }
    i = e + 1;
  }
  return { event, data: data ?? "" };
}

// Bytes the scanner looks for at the start of an event (its first HEAD bytes).
const HEAD = 32;
/** The most the scanner keeps of one event it wants to parse: message_start, message_delta
 *  and error events are a few hundred bytes; a bigger one is skipped, not held. */
export const MAX_EVENT_BYTES = 64 * 1024;
const MESSAGE_ = [109, 101, 115, 115, 97, 103, 101, 95]; // "message_"
const START = [115, 116, 97, 114, 116]; // "start"
const DELTA = [100, 101, 108, 116, 97]; // "delta"
const ERROR = [101, 114, 114, 111, 114]; // "error"

function at(b: Uint8Array, len: number, i: number, pat: number[]): boolean {
  if (i + pat.length > len) return false;
  for (let k = 0; k < pat.length; k++) if (b[i + k] !== pat[k]) return false;
  return true;
}

/** Whether an event's first bytes name message_start, message_delta or error. */
function interesting(b: Uint8Array, len: number): boolean {
  for (let i = 0; i < len; i++) {
    if (b[i] === 109 && at(b, len, i, MESSAGE_) && (at(b, len, i + 8, START) || at(b, len, i + 8, DELTA))) return true;
    if (b[i] === 101 && at(b, len, i, ERROR)) return true;
  }
  return false;
}

const blockDecoder = new TextDecoder();
function decodeBlock(b: Uint8Array): string {
  const text = blockDecoder.decode(b);
  return text.includes("\r") ? text.replace(/\r\n?/g, "\n") : text;
}

/**
 * Reads usage from SSE bytes as they pass, without decoding them: it finds event
 * boundaries (a blank line; LF, CRLF or CR line ends) in the bytes and decodes and parses
 * only the events whose first bytes name message_start, message_delta or error. An event
 * split across chunks keeps at most its first HEAD bytes, plus a copy of the rest only
 * when it is one of those. Chunks are only read, never kept.
 */
export class SseUsageScanner {
  readonly usage = emptyUsage();
  /** Whether the bytes seen so far end exactly at an event boundary. */
  atBoundary = true;
  /** Events completed so far (blank separator lines alone are not events). */
  events = 0;
  private lineStart = true;
  private lastCR = false;
  private readonly head = new Uint8Array(HEAD);
  private headLen = 0;
  /** 0: undecided (head not full), 1: parse at its end, 2: skip. */
  private decision = 0;
  private rest: Uint8Array[] = [];
  private restBytes = 0;
  /** Events skipped because they were bigger than MAX_EVENT_BYTES. */
  oversized = 0;
  /** A message_start was read: the upstream started a billed message. */
  started = false;
  /** A message_delta carrying usage was read: the stream's final output count came. */
  final = false;

  push(chunk: Uint8Array): void {
    const n = chunk.length;
    let start = 0;
    let lineStart = this.lineStart;
    let lastCR = this.lastCR;
    for (let i = 0; i < n; i++) {
      const b = chunk[i]!;
      if (b > 13 || (b !== 10 && b !== 13)) {
        lineStart = false;
        lastCR = false;
        continue;
      }
      if (b === 10 && lastCR) {
        // The LF of a CRLF: the line already ended at the CR.
        lastCR = false;
        if (start === i && this.headLen === 0) start = i + 1;
        continue;
      }
      lastCR = b === 13;
      if (lineStart) {
        // A blank line: the event ends here.
        this.take(chunk, start, i + 1, true);
        start = i + 1;
      }
      lineStart = true;
    }
    this.lineStart = lineStart;
    this.lastCR = lastCR;
    if (start < n) this.take(chunk, start, n, false);
    this.atBoundary = this.headLen === 0;
  }

  /** Bytes [s, e) of the current event; `ended`: they end it. */
  private take(chunk: Uint8Array, s: number, e: number, ended: boolean): void {
    let p = s;
    if (ended && (this.headLen > 0 || (chunk[s] !== 10 && chunk[s] !== 13))) this.events++;
    if (ended && this.headLen === 0) {
      // The whole event is in this chunk: no copies. The same bound as an event that
      // spans chunks, so what is read never depends on how the bytes were cut.
      const k = Math.min(HEAD, e - s);
      if (interesting(chunk.subarray(s, s + k), k)) {
        if (e - s - k > MAX_EVENT_BYTES) this.oversized++;
        else this.onEvent(decodeBlock(chunk.subarray(s, e)));
      }
      return;
    }
    if (this.decision === 0) {
      const k = Math.min(HEAD - this.headLen, e - p);
      for (let j = 0; j < k; j++) this.head[this.headLen + j] = chunk[p + j]!;
      this.headLen += k;
      p += k;
      if (this.headLen === HEAD || ended) this.decision = interesting(this.head, this.headLen) ? 1 : 2;
    }
    if (this.decision === 1 && p < e) {
      this.restBytes += e - p;
      if (this.restBytes > MAX_EVENT_BYTES) {
        // Never hold more than the bound: give this event up.
        this.decision = 2;
        this.oversized++;
        this.rest = [];
      } else this.rest.push(chunk.slice(p, e));
    }
    if (!ended) return;
    if (this.decision === 1) this.onEvent(this.decode());
    this.headLen = 0;
    this.decision = 0;
    this.restBytes = 0;
    if (this.rest.length > 0) this.rest = [];
  }

  private decode(): string {
    const parts = [this.head.subarray(0, this.headLen), ...this.rest];
    const all = new Uint8Array(parts.reduce((a, b) => a + b.byteLength, 0));
    let o = 0;
    for (const b of parts) {
      all.set(b, o);
      o += b.byteLength;
    }
    return decodeBlock(all);
  }

  private onEvent(block: string): void {
    const { event, data } = parseEvent(block);
    try {
      const d = JSON.parse(data) as Record<string, unknown>;
      if (event === "message_start") {
        const m = d.message as Record<string, unknown> | undefined;
        if (typeof m?.model === "string") this.usage.model = m.model;
        applyUsage(this.usage, m?.usage);
        this.started = true;
      } else if (event === "message_delta") {
        applyUsage(this.usage, d.usage);
        if (typeof d.usage === "object" && d.usage !== null) this.final = true;
      } else if (event === "error") {
        const e = d.error as { type?: unknown } | undefined;
        this.usage.errorType = typeof e?.type === "string" ? e.type : "error";
      }
    } catch {
      // Not JSON: nothing to count.
    }
  }
}

/** Usage of a complete JSON reply (a Message, a count_tokens result or an error envelope). */
export function usageFromJson(text: string): Usage {
  const u = emptyUsage();
  try {
    const d = JSON.parse(text) as Record<string, unknown>;
    if (typeof d.model === "string") u.model = d.model;
    if (d.type === "error") {
      const e = d.error as { type?: unknown } | undefined;
      u.errorType = typeof e?.type === "string" ? e.type : "error";
    }
    applyUsage(u, d.usage);
    // count_tokens answers {"input_tokens": N}: a count, not billed input.
    if (typeof d.input_tokens === "number" && d.type !== "message") u.countedTokens = d.input_tokens;
  } catch {
    // Not JSON: nothing to count.
  }
  return u;
}

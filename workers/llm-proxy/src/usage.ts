// Reads model and token usage from the bytes as they pass to the client: the JSON body
// of a non-streaming reply, or the message_start / message_delta / error events of an
// SSE stream. Observes copies of the chunks; it never holds the client up.

export interface Usage {
  model: string;
  inputTokens: number;
  outputTokens: number;
  cacheCreationTokens: number;
  cacheReadTokens: number;
  /** Set when the body carried an error (an `error` event or an error envelope). */
  errorType: string;
}

export function emptyUsage(): Usage {
  return { model: "", inputTokens: 0, outputTokens: 0, cacheCreationTokens: 0, cacheReadTokens: 0, errorType: "" };
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
}

/** Parses one SSE event block ("event: x\ndata: {...}"). */
export function parseEvent(block: string): { event: string; data: string } {
  let event = "message";
  const data: string[] = [];
  for (const line of block.split("\n")) {
    if (line.startsWith("event:")) event = line.slice(6).trim();
    else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
  }
  return { event, data: data.join("\n") };
}

export function isOverloadEvent(block: string): boolean {
  const { event, data } = parseEvent(block.replace(/\r\n?/g, "\n"));
  if (event !== "error") return false;
  try {
    return (JSON.parse(data) as { error?: { type?: string } }).error?.type === "overloaded_error";
  } catch {
    return false;
  }
}

export class SseUsageScanner {
  readonly usage = emptyUsage();
  private readonly decoder = new TextDecoder();
  private buf = "";
  /** Whether the bytes seen so far end exactly at an event boundary. */
  atBoundary = true;

  push(chunk: Uint8Array): void {
    this.buf += this.decoder.decode(chunk, { stream: true });
    if (this.buf.includes("\r")) this.buf = this.buf.replace(/\r\n?/g, "\n");
    let i: number;
    while ((i = this.buf.indexOf("\n\n")) >= 0) {
      this.onEvent(this.buf.slice(0, i));
      this.buf = this.buf.slice(i + 2);
    }
    this.atBoundary = this.buf === "";
  }

  private onEvent(block: string): void {
    // Only three event types carry what metrics need; skip parsing the deltas.
    const head = block.slice(0, 32);
    if (!head.includes("message_start") && !head.includes("message_delta") && !head.includes("error")) return;
    const { event, data } = parseEvent(block);
    try {
      const d = JSON.parse(data) as Record<string, unknown>;
      if (event === "message_start") {
        const m = d.message as Record<string, unknown> | undefined;
        if (typeof m?.model === "string") this.usage.model = m.model;
        applyUsage(this.usage, m?.usage);
      } else if (event === "message_delta") {
        applyUsage(this.usage, d.usage);
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
    // count_tokens answers {"input_tokens": N}
    if (typeof d.input_tokens === "number") u.inputTokens = d.input_tokens;
  } catch {
    // Not JSON: nothing to count.
  }
  return u;
}

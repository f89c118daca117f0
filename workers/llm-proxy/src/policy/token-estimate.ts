// The token reservation of a Messages call, made before it is forwarded (issue 14.8):
// output from `max_tokens`, input from the body's size, an upper bound, or from the
// upstream's count_tokens when the tenant is near its limit or the body holds content
// whose size says nothing about its tokens. Settling (index.ts) then gives back what the
// call did not use.
import { repeatedKey } from "./json-keys.ts";
import { MAX_TOKENS_PER_CALL } from "../../../shared/token-bound.ts";
import type { Tokens } from "./token-bucket.ts";

/**
 * Bytes per token, the bound: every token of the prompt text is at least one byte of it
 * (a BPE token is a non-empty byte sequence), and the JSON body holds that text at least
 * byte for byte (escapes only lengthen it; keys, quotes and brackets come on top). So the
 * body's byte length bounds the tokens of its text; typical English runs ~4 bytes a
 * token, so this over-reserves about 4x, which settling gives back.
 */
export const BYTES_PER_TOKEN_BOUND = 1;
/** Tokens Anthropic adds for tool use that are not in the body: its tool-use system
 *  prompt (a few hundred tokens per model, docs "Tool use" pricing table); 1,024 bounds it. */
export const TOOLS_OVERHEAD_TOKENS = 1024;
/** count_tokens is documented as an estimate ("may differ by a small amount"): reserve
 *  this much more than it says. */
export const COUNT_MARGIN = 1.05;
export const COUNT_SLACK_TOKENS = 16;

/** Fields of a Messages body that count_tokens accepts and that carry input tokens
 *  (MessageCountTokensParams, node_modules/@anthropic-ai/sdk/resources/messages/messages.d.ts). */
const COUNT_FIELDS = ["model", "messages", "system", "tools", "tool_choice", "thinking", "cache_control", "output_config", "output_format", "mcp_servers"] as const;

// Content block types whose tokens their bytes bound: text (and the text inside a tool
// result), tool calls, thinking. Anything else (image, document, search_result, a url or
// file source, container_upload, ...) can be a few bytes that cost thousands of tokens
// (a small PNG of a large picture), so the body's size bounds nothing: count instead.
const TEXT_BLOCKS = new Set(["text", "tool_use", "tool_result", "thinking", "redacted_thinking", "server_tool_use"]);

export interface Estimate {
  /** The input reservation (0 when `needsCount` and not yet counted). */
  input: number;
  output: number;
  /** The body's bytes cannot bound its input tokens: ask count_tokens. */
  needsCount: boolean;
  /** `input` came from count_tokens. */
  counted: boolean;
  /** The body parsed, for count_tokens. */
  parsed: Record<string, unknown> | undefined;
  /** The path of a key some object of the body names twice (json-keys.ts), if any. */
  repeated?: string | undefined;
}

function textOnly(content: unknown): boolean {
  if (typeof content === "string" || content === undefined || content === null) return true;
  if (!Array.isArray(content)) return false;
  for (const b of content) {
    if (typeof b !== "object" || b === null) return false;
    const block = b as Record<string, unknown>;
    if (typeof block.type !== "string" || !TEXT_BLOCKS.has(block.type)) return false;
    if (block.type === "tool_result" && !textOnly(block.content)) return false;
  }
  return true;
}

const decoder = new TextDecoder();

/** The reservation from the body alone. Not JSON (the upstream will refuse it): bytes. */
export function estimateFromBody(body: ArrayBuffer): Estimate {
  const bytes = body.byteLength;
  let parsed: Record<string, unknown> | undefined;
  let repeated: string | undefined;
  try {
    const text = decoder.decode(body);
    const v = JSON.parse(text) as unknown;
    if (typeof v === "object" && v !== null && !Array.isArray(v)) {
      parsed = v as Record<string, unknown>;
      repeated = repeatedKey(text);
    }
  } catch {
    parsed = undefined;
  }
  const mt = parsed?.max_tokens;
  // max_tokens is required by the Messages API; without a usable one the upstream
  // refuses the call, so nothing is reserved for output.
  const output = typeof mt === "number" && Number.isSafeInteger(mt) && mt > 0 ? mt : 0;
  let needsCount = false;
  if (parsed !== undefined) {
    const messages = Array.isArray(parsed.messages) ? parsed.messages : [];
    for (const m of messages) {
      if (typeof m !== "object" || m === null || !textOnly((m as Record<string, unknown>).content)) needsCount = true;
    }
    if (!textOnly(parsed.system)) needsCount = true;
    // MCP servers' tool lists are fetched by the upstream: not in the body (count_tokens
    // takes mcp_servers with the beta header that enables them, which is forwarded).
    if (parsed.mcp_servers !== undefined) needsCount = true;
    // Anthropic-defined tools (computer use, text editor, bash, ...: any `type` but
    // "custom") bring a system prompt and definitions of their own, hundreds of tokens
    // each beyond TOOLS_OVERHEAD_TOKENS: count.
    if (Array.isArray(parsed.tools) && parsed.tools.some((t) => typeof t === "object" && t !== null && typeof (t as { type?: unknown }).type === "string" && (t as { type: string }).type !== "custom")) needsCount = true;
  }
  const tools = parsed !== undefined && Array.isArray(parsed.tools) && parsed.tools.length > 0;
  const input = Math.ceil(bytes / BYTES_PER_TOKEN_BOUND) + (tools ? TOOLS_OVERHEAD_TOKENS : 0);
  return { input, output, needsCount, counted: false, parsed, ...(repeated !== undefined ? { repeated } : {}) };
}

/** The body sent to count_tokens: the counted fields of the call, nothing else (it
 *  refuses fields it does not know, such as max_tokens or stream). */
export function countTokensBody(parsed: Record<string, unknown>): string {
  const out: Record<string, unknown> = {};
  for (const f of COUNT_FIELDS) if (parsed[f] !== undefined) out[f] = parsed[f];
  return JSON.stringify(out);
}

/** The reservation from a count_tokens answer. */
export function fromCount(inputTokens: number): number {
  return Math.ceil(inputTokens * COUNT_MARGIN) + COUNT_SLACK_TOKENS;
}

/** What a settled call used, as the limits count it: uncached input plus cache writes
 *  (cache reads do not count toward ITPM: platform.claude.com/docs/en/api/rate-limits,
 *  checked 2026-11-27), and output. A stream cut short before its final usage keeps its
 *  output reservation: the upstream may have generated up to max_tokens, and a client
 *  must not escape the limit by hanging up before the last event. */
export function usedTokens(
  u: { inputTokens: number; outputTokens: number; cacheCreationTokens: number },
  reserved: Tokens,
  interrupted: boolean,
): Tokens {
  return {
    input: u.inputTokens + u.cacheCreationTokens,
    output: interrupted ? Math.max(u.outputTokens, reserved.output) : u.outputTokens,
  };
}

/** How long a count may take: count_tokens only tokenizes and answers well within a second.
 *  One that takes longer counts as failed, so a stalled count never holds a call. */
export const COUNT_TIMEOUT_MS = 5_000;

/** Tool types the client runs (custom tools, and Anthropic-defined tools whose calls come
 *  back as tool_use blocks: bash, text editor, computer use, memory, the browser and
 *  computer toolsets; @anthropic-ai/sdk messages.d.ts ToolUnion). A call that uses one
 *  ends at its tool_use: one sampling, over input count_tokens or the body's bytes bound.
 *  Any other tool runs on Anthropic's side inside the call (ServerToolUseBlock: web
 *  search, web fetch, code execution, tool search, and whatever comes next): each use
 *  brings its result back as input and samples again over the whole context, so the call
 *  is billed input no reservation made before it can bound. */
const CLIENT_TOOL = /^(custom|bash_\d+|text_editor_\d+|computer_\d+|memory_\d+|browser_toolset_\d+|computer_toolset_\d+)$/;

/** Nesting deeper than this is refused for a budgeted tenant rather than walked (the API
 *  nests blocks a few levels at most: a document's content, a tool result's). */
const MAX_CONTENT_DEPTH = 16;

/** The first block under `content` whose source is a URL, at any depth, as a path: a
 *  message's blocks, a tool result's `content`, a document whose `source` is content
 *  blocks (the SDK's ContentBlockSource), a web fetch result whose `content` is one block
 *  (an object, not a list: WebFetchToolResultBlockParam). Only `content` and
 *  `source.content` are followed, never a tool call's `input` (the tenant's own data).
 *  `deep`: nesting past MAX_CONTENT_DEPTH, refused rather than walked. */
function urlSource(content: unknown, path: string, depth = 0): { path: string; kind: "url" | "deep" } | undefined {
  if (typeof content !== "object" || content === null) return undefined;
  if (depth > MAX_CONTENT_DEPTH) return { path, kind: "deep" };
  const blocks = Array.isArray(content) ? content : [content];
  for (let i = 0; i < blocks.length; i++) {
    const b = blocks[i] as Record<string, unknown> | null;
    if (typeof b !== "object" || b === null) continue;
    const at = Array.isArray(content) ? `${path}[${i}]` : path;
    const src = b.source as Record<string, unknown> | null | undefined;
    if (typeof src === "object" && src !== null) {
      if (src.type === "url") return { path: at, kind: "url" };
      const inSource = urlSource(src.content, `${at}.source.content`, depth + 1);
      if (inSource !== undefined) return inSource;
    }
    const inner = urlSource(b.content, `${at}.content`, depth + 1);
    if (inner !== undefined) return inner;
  }
  return undefined;
}

/**
 * What a budgeted tenant's body asks for that its reservation cannot bound, or that is
 * billed beyond its tokens at prices the table does not model; undefined if nothing.
 * - Billed beyond tokens: fast mode (`speed: "fast"`, a premium per token), regional
 *   inference (`inference_geo` other than "global"), and the server tools billed per use
 *   (web search, $10 per 1,000 searches; code execution, per container hour):
 *   platform.claude.com pricing, and the request fields in @anthropic-ai/sdk messages.d.ts.
 * - Input the reservation cannot bound: any tool the client does not run (CLIENT_TOOL:
 *   web fetch's pages, tool search's loaded definitions, each a further sampling over the
 *   grown context), MCP servers (the connector calls their tools on Anthropic's side, the
 *   results come back as input), and an image or document fetched by URL (count_tokens
 *   fetches it to count it, and the call fetches it again: a server can answer the second
 *   fetch with a far larger file).
 */
export function unpriced(parsed: Record<string, unknown>): string | undefined {
  if (parsed.speed !== undefined && parsed.speed !== null && parsed.speed !== "standard") return `speed: ${JSON.stringify(parsed.speed)} is billed at a premium the spend budget's price table does not model`;
  if (parsed.inference_geo !== undefined && parsed.inference_geo !== null && parsed.inference_geo !== "global") return `inference_geo: ${JSON.stringify(parsed.inference_geo)} is billed at a premium the spend budget's price table does not model`;
  const tools = Array.isArray(parsed.tools) ? parsed.tools : [];
  for (const t of tools) {
    const type = typeof t === "object" && t !== null ? (t as { type?: unknown }).type : undefined;
    if (type === undefined || type === null) continue; // a custom tool
    const name = typeof type === "string" ? type : JSON.stringify(type);
    if (typeof type === "string" && /^(web_search|code_execution)_/.test(type)) return `tools: ${name} is billed per use, beyond tokens, which the spend budget cannot bound`;
    if (typeof type !== "string" || !CLIENT_TOOL.test(type)) return `tools: ${printableType(name)} runs on Anthropic's side inside the call, and what it brings back is billed as input tokens the spend budget cannot bound`;
  }
  // Beta fields (@anthropic-ai/sdk resources/beta/messages/messages.d.ts): a fallback
  // entry names its own model, max_tokens and speed, used when the first model declines
  // (a prompt can provoke that), beyond what this body's model and max_tokens reserve;
  // compaction (the `compaction` field, or a compact_* context-management edit) runs a
  // summarising request whose tokens "are not included in the top-level usage fields",
  // the only usage the proxy reads and settles to.
  if (present(parsed.fallbacks)) return "fallbacks: a fallback may call another model, with its own max_tokens and speed, beyond what the spend budget reserves for this body";
  if (present(parsed.compaction)) return "compaction: the summarising request's tokens are billed outside the usage the spend budget settles to";
  const edits = (parsed.context_management as { edits?: unknown } | null | undefined)?.edits;
  if (Array.isArray(edits) && edits.some((e) => typeof (e as { type?: unknown } | null)?.type !== "string" || /^compact/.test((e as { type: string }).type))) {
    return "context_management: a compact edit's summarising request is billed outside the usage the spend budget settles to";
  }
  if (parsed.mcp_servers !== undefined && parsed.mcp_servers !== null && !(Array.isArray(parsed.mcp_servers) && parsed.mcp_servers.length === 0)) {
    return "mcp_servers: the MCP connector calls their tools on Anthropic's side inside the call, and their results are billed as input tokens the spend budget cannot bound";
  }
  const messages = Array.isArray(parsed.messages) ? parsed.messages : [];
  for (let i = 0; i < messages.length; i++) {
    const m = messages[i] as Record<string, unknown> | null;
    const hit = typeof m === "object" && m !== null ? urlSource(m.content, `messages[${i}].content`) : undefined;
    if (hit?.kind === "deep") return `${hit.path}: content nested deeper than ${MAX_CONTENT_DEPTH} levels`;
    if (hit !== undefined) return `${hit.path}: a source fetched by URL is fetched again by the call after it was counted, so its size cannot be bounded beforehand; send it as base64 or as a Files API file_id`;
  }
  return undefined;
}

/** A field that asks for something: neither absent, null, nor an empty list. */
function present(v: unknown): boolean {
  return v !== undefined && v !== null && !(Array.isArray(v) && v.length === 0);
}

/** A tool type as an error message may quote it: printable ASCII, at most 64 characters. */
function printableType(t: string): string {
  return /^[\x20-\x7e]{1,64}$/.test(t) ? t : JSON.stringify(t.slice(0, 64)).replace(/[^\x20-\x7e]/g, "?");
}

/**
 * Why a Messages body cannot be sized for a tenant that reserves tokens or money, or
 * undefined. The upstream refuses such bodies too (max_tokens is required, an integer);
 * refusing here first means no call is let through with a reservation of nothing (a
 * max_tokens the proxy cannot read, say "64000" as a string, reserved 0 output) and no
 * price overflows. Messages as the Messages API words them.
 */
export function unsizable(parsed: Record<string, unknown> | undefined): string | undefined {
  if (parsed === undefined) return "the request body is not a JSON object";
  const mt = parsed.max_tokens;
  if (mt === undefined) return "max_tokens: Field required";
  if (typeof mt !== "number" || !Number.isSafeInteger(mt)) return "max_tokens: Input should be a valid integer";
  if (mt < 1) return "max_tokens: Input should be greater than or equal to 1";
  // The usage event's bound: far above any model's output limit.
  if (mt > MAX_TOKENS_PER_CALL) return `max_tokens: ${mt} is more than this proxy admits (${MAX_TOKENS_PER_CALL})`;
  return undefined;
}

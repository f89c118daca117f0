// What Anthropic's Messages API refuses in a request body, for every fake that speaks it:
// the proxy's fake upstream (workers/llm-proxy/test/fake-anthropic.ts) and the draft
// command's (test/fakes/anthropic-messages-api.ts). One rule set, so neither fake is more
// lenient than the other, and both word a refusal as the API does (its pydantic wording,
// "Field required").
//
// Sources: the request types in node_modules/@anthropic-ai/sdk/resources/messages/
// messages.d.ts (MessageCreateParams: `max_tokens`, `messages` and `model` are not
// optional, max_tokens an integer of at least 1; MessageCountTokensParams has no
// max_tokens, stream, temperature, top_p, top_k, stop_sequences or metadata); an empty
// messages list is refused with "at least one message is required" (reported by clients
// that sent one: github.com/devoxx/DevoxxGenieIDEAPlugin/issues/567).

/** Fields of a Messages call that count_tokens refuses ("Extra inputs are not permitted"). */
export const NOT_COUNTED_FIELDS = ["max_tokens", "stream", "temperature", "top_p", "top_k", "stop_sequences", "metadata"] as const;

function parseObject(raw: Uint8Array | string): Record<string, unknown> | string {
  let b: unknown;
  try {
    // TextDecoder drops a leading byte order mark, which RFC 8259 8.1 lets a parser ignore.
    b = JSON.parse(typeof raw === "string" ? raw : new TextDecoder().decode(raw));
  } catch {
    return "body is not JSON";
  }
  if (typeof b !== "object" || b === null || Array.isArray(b)) return "body: Input should be a valid dictionary";
  return b as Record<string, unknown>;
}

function modelProblem(o: Record<string, unknown>): string | undefined {
  if (o.model === undefined) return "model: Field required";
  if (typeof o.model !== "string" || o.model === "") return "model: Input should be a valid string";
  return undefined;
}

function messagesProblem(o: Record<string, unknown>): string | undefined {
  if (o.messages === undefined) return "messages: Field required";
  if (!Array.isArray(o.messages)) return "messages: Input should be a valid list";
  if (o.messages.length === 0) return "messages: at least one message is required";
  return undefined;
}

/** Why POST /v1/messages refuses this body (a 400 invalid_request_error), or undefined. */
export function messagesBodyProblem(raw: Uint8Array | string): string | undefined {
  const o = parseObject(raw);
  if (typeof o === "string") return o;
  return modelProblem(o) ?? maxTokensProblem(o) ?? messagesProblem(o);
}

function maxTokensProblem(o: Record<string, unknown>): string | undefined {
  if (o.max_tokens === undefined) return "max_tokens: Field required";
  if (typeof o.max_tokens !== "number" || !Number.isInteger(o.max_tokens)) return "max_tokens: Input should be a valid integer";
  if (o.max_tokens < 1) return "max_tokens: Input should be greater than or equal to 1";
  return undefined;
}

/** Why POST /v1/messages/count_tokens refuses this body, or undefined; the parsed body when valid. */
export function countTokensBodyProblem(raw: Uint8Array | string): { problem: string } | { body: Record<string, unknown> } {
  const o = parseObject(raw);
  if (typeof o === "string") return { problem: o };
  for (const f of NOT_COUNTED_FIELDS) if (f in o) return { problem: `${f}: Extra inputs are not permitted` };
  const p = modelProblem(o) ?? messagesProblem(o);
  return p !== undefined ? { problem: p } : { body: o };
}

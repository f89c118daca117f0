// Anthropic Messages API wire format for the fakes and tests (pure, no Node APIs): a
// Message, the SSE events of a streamed one, an overload event, SSE framing.

export interface SseEvent {
  event: string;
  data: unknown;
}

export const MODEL = "claude-sonnet-5-5";

// The usage shapes follow @anthropic-ai/sdk's typings (resources/messages/messages.d.ts):
// a Message's `Usage` carries service_tier and server_tool_use beside the counts, and a
// message_delta's `MessageDeltaUsage` repeats every count cumulatively (input, cache
// writes and reads, output; no TTL split), so a scanner that added them up would double
// the input. A stream with server tools sends several such deltas (serverToolEvents).
export function messageEvents(text: string[], usage = { input_tokens: 25, output_tokens: 9, cache_creation_input_tokens: 7, cache_read_input_tokens: 100 }): SseEvent[] {
  const { output_tokens, ...startUsage } = usage;
  const u = usage as { input_tokens: number; cache_creation_input_tokens?: number | null; cache_read_input_tokens?: number | null };
  const deltaUsage = { input_tokens: u.input_tokens, cache_creation_input_tokens: u.cache_creation_input_tokens ?? null, cache_read_input_tokens: u.cache_read_input_tokens ?? null, output_tokens, server_tool_use: null };
  return [
    { event: "message_start", data: { type: "message_start", message: { id: "msg_fake01", type: "message", role: "assistant", model: MODEL, content: [], stop_reason: null, stop_sequence: null, usage: { server_tool_use: null, service_tier: "standard", ...startUsage, output_tokens: 1 } } } },
    { event: "content_block_start", data: { type: "content_block_start", index: 0, content_block: { type: "text", text: "" } } },
    { event: "ping", data: { type: "ping" } },
    ...text.map((t) => ({ event: "content_block_delta", data: { type: "content_block_delta", index: 0, delta: { type: "text_delta", text: t } } })),
    { event: "content_block_stop", data: { type: "content_block_stop", index: 0 } },
    { event: "message_delta", data: { type: "message_delta", delta: { stop_reason: "end_turn", stop_sequence: null }, usage: deltaUsage } },
    { event: "message_stop", data: { type: "message_stop" } },
  ];
}

/**
 * A stream in which the model called a server tool (web search) between its turns: the
 * usage grows while it runs, and each message_delta repeats the running totals, input
 * included, with the tool's request count (`steps`: one delta's counts each).
 */
export function serverToolEvents(text: string, start: { input_tokens: number }, steps: { input_tokens: number; output_tokens: number; searches: number }[]): SseEvent[] {
  const [head, ...rest] = messageEvents([text], { input_tokens: start.input_tokens, output_tokens: 1, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 });
  const body = rest.filter((e) => e.event !== "message_delta" && e.event !== "message_stop");
  const deltas = steps.map((s) => ({
    event: "message_delta",
    data: { type: "message_delta", delta: { stop_reason: "end_turn", stop_sequence: null }, usage: { input_tokens: s.input_tokens, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: s.output_tokens, server_tool_use: { web_search_requests: s.searches, web_fetch_requests: 0 } } },
  }));
  return [head!, ...body, ...deltas, { event: "message_stop", data: { type: "message_stop" } }];
}

export function message(text: string, usage = { input_tokens: 12, output_tokens: 5, cache_creation_input_tokens: 3, cache_read_input_tokens: 40 }) {
  return { id: "msg_fake02", type: "message", role: "assistant", model: MODEL, content: [{ type: "text", text }], stop_reason: "end_turn", stop_sequence: null, usage: { server_tool_use: null, service_tier: "standard", ...usage } };
}

export const overloadedEvent: SseEvent = { event: "error", data: { type: "error", error: { type: "overloaded_error", message: "Overloaded" } } };

export function frame(e: SseEvent): string {
  return `event: ${e.event}\ndata: ${JSON.stringify(e.data)}\n\n`;
}


// Anthropic Messages API wire format for the fakes and tests (pure, no Node APIs): a
// Message, the SSE events of a streamed one, an overload event, SSE framing.

export interface SseEvent {
  event: string;
  data: unknown;
}

export const MODEL = "claude-sonnet-5-5";

export function messageEvents(text: string[], usage = { input_tokens: 25, output_tokens: 9, cache_creation_input_tokens: 7, cache_read_input_tokens: 100 }): SseEvent[] {
  const { output_tokens, ...startUsage } = usage;
  return [
    { event: "message_start", data: { type: "message_start", message: { id: "msg_fake01", type: "message", role: "assistant", model: MODEL, content: [], stop_reason: null, stop_sequence: null, usage: { ...startUsage, output_tokens: 1 } } } },
    { event: "content_block_start", data: { type: "content_block_start", index: 0, content_block: { type: "text", text: "" } } },
    { event: "ping", data: { type: "ping" } },
    ...text.map((t) => ({ event: "content_block_delta", data: { type: "content_block_delta", index: 0, delta: { type: "text_delta", text: t } } })),
    { event: "content_block_stop", data: { type: "content_block_stop", index: 0 } },
    { event: "message_delta", data: { type: "message_delta", delta: { stop_reason: "end_turn", stop_sequence: null }, usage: { output_tokens } } },
    { event: "message_stop", data: { type: "message_stop" } },
  ];
}

export function message(text: string, usage = { input_tokens: 12, output_tokens: 5, cache_creation_input_tokens: 3, cache_read_input_tokens: 40 }) {
  return { id: "msg_fake02", type: "message", role: "assistant", model: MODEL, content: [{ type: "text", text }], stop_reason: "end_turn", stop_sequence: null, usage };
}

export const overloadedEvent: SseEvent = { event: "error", data: { type: "error", error: { type: "overloaded_error", message: "Overloaded" } } };

export function frame(e: SseEvent): string {
  return `event: ${e.event}\ndata: ${JSON.stringify(e.data)}\n\n`;
}


// Asks Claude for inventory edits through the official SDK with one forced tool call.
// The request's stable prefix (tool, instructions, the current inventory) comes first
// and carries cache_control, so consecutive drafts hit the prompt cache; the operator's
// request is the only part that changes. A token count before the call enforces a budget.
import Anthropic from "@anthropic-ai/sdk";
import { z } from "zod";
import { TOOL_NAME, toolInputSchema } from "./edits.ts";

/** A current Sonnet (the SDK's own default in its examples); override with --model. */
export const DEFAULT_MODEL = "claude-sonnet-5-5";
export const DEFAULT_BUDGET = 150_000;
export const MAX_OUTPUT_TOKENS = 8192;
/**
 * The largest API response body read, in bytes. An answer of MAX_OUTPUT_TOKENS tokens is
 * tens of kilobytes of JSON; 1 MiB leaves room for any honest answer and stops a runaway
 * or hostile body before it is held in memory.
 */
export const MAX_ANSWER_BYTES = 1024 * 1024;

const INSTRUCTIONS = `You draft changes to an edgefleet inventory: the YAML files that declare the DNS posture of a fleet of Cloudflare zones.
An operator describes a change in plain words. Answer only by calling the ${TOOL_NAME} tool once, with the edits that implement exactly that change and a short rationale.
Rules:
- Name zones exactly as they appear in zones.yaml. Never invent zones, profiles or tags that the request does not ask for.
- Profiles are defined in profiles.yaml; a zone's posture records (MX, SPF, DMARC, DKIM, CAA, web placeholders) follow from its profile, so change a posture by setting the profile, not by adding records.
- Extra records and records to leave alone are per zone.
- When the request is ambiguous or cannot be done with these edits, return no edits and explain why in the rationale.
The edits are validated and shown to a person for review; nothing you return is executed.`;

export interface InventoryTexts {
  fleet: string;
  profiles: string;
  zones: string;
}

export interface DraftRequestParams {
  model: string;
  system: Anthropic.TextBlockParam[];
  tools: Anthropic.Tool[];
  tool_choice: Anthropic.ToolChoiceTool;
  messages: Anthropic.MessageParam[];
}

/**
 * The request body, its keys in a fixed order with `messages` last, so the bytes of
 * everything before the operator's request are identical from one draft to the next.
 */
export function buildRequest(model: string, inventory: InventoryTexts, request: string): DraftRequestParams & { max_tokens: number } {
  return {
    model,
    max_tokens: MAX_OUTPUT_TOKENS,
    tools: [
      {
        name: TOOL_NAME,
        description: "Propose edits to the edgefleet inventory (zones.yaml) that implement the operator's request.",
        input_schema: toolInputSchema() as Anthropic.Tool.InputSchema,
      },
    ],
    tool_choice: { type: "tool", name: TOOL_NAME },
    system: [
      { type: "text", text: INSTRUCTIONS },
      {
        type: "text",
        text: `<fleet.yaml>\n${inventory.fleet}</fleet.yaml>\n<profiles.yaml>\n${inventory.profiles}</profiles.yaml>\n<zones.yaml>\n${inventory.zones}</zones.yaml>`,
        cache_control: { type: "ephemeral" },
      },
    ],
    messages: [{ role: "user", content: request }],
  };
}

export class BudgetError extends Error {}
/** The answer cannot be used: no tool call, several, cut off, or too large. Exit 1. */
export class AnswerError extends Error {}
/** The API's answer is not a Messages API response (not JSON, truncated, wrong shape). Exit 4. */
export class ApiFailure extends Error {}

export interface ToolAnswer {
  input: unknown;
  usage: Anthropic.Usage;
  inputTokens: number;
}

// The parts of the responses edgefleet reads, checked before use: a 200 whose body is
// not a Messages API object is an API failure, not something to index into.
// Shapes: node_modules/@anthropic-ai/sdk resources/messages/messages.d.ts (Message,
// ContentBlock, StopReason, MessageTokensCount), @anthropic-ai/sdk 1.12.0.
const TokenCount = z.looseObject({ input_tokens: z.number().int().nonnegative() });
const MessageBody = z.looseObject({
  type: z.literal("message"),
  content: z.array(z.looseObject({ type: z.string() })),
  stop_reason: z.string().nullable(),
  usage: z.looseObject({ input_tokens: z.number(), output_tokens: z.number() }),
});
const ToolUse = z.looseObject({ type: z.literal("tool_use"), id: z.string(), name: z.string(), input: z.unknown() });

/** Counts the request's tokens, refuses it over budget, then asks for the tool call. */
export async function askClaude(client: Anthropic, params: ReturnType<typeof buildRequest>, budget: number): Promise<ToolAnswer> {
  const { max_tokens: _max, ...countable } = params;
  const counted = TokenCount.safeParse(await client.messages.countTokens(countable));
  if (!counted.success) throw new ApiFailure("count_tokens answered with something that is not a token count");
  const inputTokens = counted.data.input_tokens;
  if (inputTokens > budget) {
    throw new BudgetError(`the request is ${inputTokens} input tokens, over the budget of ${budget} (--budget)`);
  }
  const parsed = MessageBody.safeParse(await client.messages.create(params));
  if (!parsed.success) throw new ApiFailure("the Messages API answered with something that is not a message");
  const message = parsed.data;
  // A cut-off answer may hold a tool call whose input is incomplete: never use it.
  if (message.stop_reason === "max_tokens") {
    throw new AnswerError(`the answer was cut off at max_tokens (${MAX_OUTPUT_TOKENS} output tokens) and is not used; ask for a smaller change`);
  }
  const calls = message.content.filter((b) => b.type === "tool_use");
  if (calls.length === 0) throw new AnswerError(`the model answered without calling ${TOOL_NAME} (stop reason ${message.stop_reason})`);
  if (calls.length > 1) {
    // Never pick one and drop the others silently: show them all and refuse.
    const shown = calls.map((b, i) => `  call ${i + 1}: ${String(b.name)} ${JSON.stringify(b.input ?? null).slice(0, 300)}`).join("\n");
    throw new AnswerError(`the model made ${calls.length} tool calls where exactly one is expected; none is used:\n${shown}`);
  }
  const call = ToolUse.safeParse(calls[0]);
  if (!call.success) throw new ApiFailure("the Messages API answered with a malformed tool_use block");
  if (call.data.name !== TOOL_NAME) throw new AnswerError(`the model called '${call.data.name}', not ${TOOL_NAME}`);
  // With a forced tool choice the answer stops with tool_use; refusal, pause_turn and
  // model_context_window_exceeded (StopReason in the SDK's messages.d.ts) leave it unfinished.
  if (!["tool_use", "end_turn", "stop_sequence"].includes(message.stop_reason ?? "")) {
    throw new AnswerError(`the answer stopped with '${message.stop_reason}', not 'tool_use'; it is not used`);
  }
  return { input: call.data.input, usage: message.usage as unknown as Anthropic.Usage, inputTokens };
}

/** Raised inside a response body that grows past the cap; askClaude's caller refuses. */
export class AnswerTooLarge extends Error {}

/**
 * A fetch for the SDK that stops reading a response body past `cap` bytes: the body
 * stream errors with AnswerTooLarge (the SDK's JSON parse rejects with it), so an
 * oversized answer is refused without being held whole in memory or retried.
 */
export function cappedFetch(cap: number, inner: typeof fetch = fetch): typeof fetch {
  return async (input, init) => {
    const res = await inner(input, init);
    if (!res.body || res.status === 204 || res.status === 304) return res;
    const tooLarge = () => new AnswerTooLarge(`the API's answer is larger than ${cap} bytes; refused`);
    let seen = 0;
    const declared = Number(res.headers.get("content-length") ?? "0");
    const body = res.body.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        start(ctl) {
          if (declared > cap) ctl.error(tooLarge());
        },
        transform(chunk, ctl) {
          seen += chunk.byteLength;
          if (seen > cap) ctl.error(tooLarge());
          else ctl.enqueue(chunk);
        },
      }),
    );
    return new Response(body, { status: res.status, statusText: res.statusText, headers: res.headers });
  };
}

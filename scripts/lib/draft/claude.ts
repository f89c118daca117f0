// Asks Claude for inventory edits through the official SDK with one forced tool call.
// The request's stable prefix (tool, instructions, the current inventory) comes first
// and carries cache_control, so consecutive drafts hit the prompt cache; the operator's
// request is the only part that changes. A token count before the call enforces a budget.
import Anthropic from "@anthropic-ai/sdk";
import { TOOL_NAME, toolInputSchema } from "./edits.ts";

/** A current Sonnet (the SDK's own default in its examples); override with --model. */
export const DEFAULT_MODEL = "claude-sonnet-5-5";
export const DEFAULT_BUDGET = 150_000;
export const MAX_OUTPUT_TOKENS = 8192;

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

export interface ToolAnswer {
  input: unknown;
  usage: Anthropic.Usage;
  inputTokens: number;
}

/** Counts the request's tokens, refuses it over budget, then asks for the tool call. */
export async function askClaude(client: Anthropic, params: ReturnType<typeof buildRequest>, budget: number): Promise<ToolAnswer> {
  const { max_tokens: _max, ...countable } = params;
  const count = await client.messages.countTokens(countable);
  if (count.input_tokens > budget) {
    throw new BudgetError(`the request is ${count.input_tokens} input tokens, over the budget of ${budget} (--budget)`);
  }
  const message = await client.messages.create(params);
  const call = message.content.find((b): b is Anthropic.ToolUseBlock => b.type === "tool_use" && b.name === TOOL_NAME);
  if (!call) throw new AnswerError(`the model answered without calling ${TOOL_NAME} (stop reason ${message.stop_reason})`);
  return { input: call.input, usage: message.usage, inputTokens: count.input_tokens };
}

export class AnswerError extends Error {}

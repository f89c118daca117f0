// The schemas of the price table (fleet/metering.yaml `prices`, and its JSON form, the
// PRICES var made by meteringVars()), on top of cost.ts's pure pricing, which this
// module re-exports: `tokensOf`, `costMicros`, `lookupPrice`, `ceilingPrice`, ...
// Uses zod: Workers that must stay small (the LLM proxy) import cost.ts instead.
import { z } from "zod";
import { dollarsToMicros, MAX_PRICE_DOLLARS, MAX_PRICE_MICROS, UNNAMED_MODEL, type Price, type PriceTable } from "./cost.ts";

export * from "./cost.ts";

/**
 * A price in dollars per million tokens, written as text with at most 6 decimals
 * ("6.25", "0.30", "5"). It is parsed as text into integer micro-dollars per million
 * tokens, so no float ever enters a price. A YAML number is refused: it is read as a float
 * first (1.0000000000000001 becomes 1, 0x10 becomes 16, and under a `%YAML 1.1` header
 * 010 becomes 8). Zero is refused (every Claude token is billed: a placeholder row of
 * zeros would make its model's calls free and unflagged), and so is a price over
 * MAX_PRICE_DOLLARS.
 */
const Dollars = z
  // Any value reaches the transform, so each wrong kind is named (a union of string and
  // number answered .nan, .inf, ~, true or a missing price with only "Invalid input").
  .unknown()
  .transform((v, ctx) => {
    if (v === undefined || v === null) {
      ctx.addIssue({ code: "custom", message: `required: a price in dollars per million tokens, as text in quotes (e.g. "6.25")` });
      return z.NEVER;
    }
    if (typeof v === "number") {
      ctx.addIssue({ code: "custom", message: Number.isFinite(v) ? `write the price as text in quotes ("${v}"): a YAML number is read as a float first` : `${v} is not a price: write it as text in quotes (e.g. "6.25")` });
      return z.NEVER;
    }
    if (typeof v !== "string") {
      ctx.addIssue({ code: "custom", message: `a ${Array.isArray(v) ? "list" : typeof v} is not a price: write it as text in quotes (e.g. "6.25")` });
      return z.NEVER;
    }
    const s = v.trim();
    const micros = dollarsToMicros(s);
    if (micros === undefined) {
      ctx.addIssue({ code: "custom", message: `'${s}' is not a price in dollars per million tokens with at most 6 decimals (e.g. "6.25")` });
      return z.NEVER;
    }
    if (micros === 0) {
      ctx.addIssue({ code: "custom", message: "a price of 0 would make these tokens free (every Claude token is billed); leave an unpriced model out, and the unknown-model rule prices and flags it" });
      return z.NEVER;
    }
    if (micros > MAX_PRICE_DOLLARS * 1_000_000) {
      ctx.addIssue({ code: "custom", message: `at most ${MAX_PRICE_DOLLARS} dollars per million tokens (a call's cost must stay within what the ledger sums exactly)` });
      return z.NEVER;
    }
    return micros;
  });

export const ModelPriceSchema = z.strictObject({
  input: Dollars,
  cache_write_5m: Dollars,
  cache_write_1h: Dollars,
  cache_read: Dollars,
  output: Dollars,
});

export const PriceTableSchema = z.strictObject({
  currency: z.literal("USD", { error: "prices are in USD (Anthropic bills in USD)" }),
  /** The day the table was checked against the published prices. */
  as_of: z.string().regex(/^\d{4}-\d{2}-\d{2}$/, "YYYY-MM-DD"),
  source: z.string().min(1),
  models: z
    .record(z.string().regex(/^[a-z0-9][a-z0-9.-]{0,127}$/, "a model id: lowercase letters, digits, dots and dashes"), ModelPriceSchema)
    .refine((m) => Object.keys(m).length > 0, "at least one model must be priced")
    .refine((m) => !Object.hasOwn(m, UNNAMED_MODEL), {
      message: `'${UNNAMED_MODEL}' is what the proxy calls a call whose answer named no model: priced here, such calls would cost what this row says, unflagged; they are priced and flagged by the unknown-model rule`,
      path: [UNNAMED_MODEL],
    }),
});

export function toPriceTable(parsed: z.output<typeof PriceTableSchema>): PriceTable {
  const models: Record<string, Price> = {};
  for (const [id, p] of Object.entries(parsed.models)) {
    models[id] = { input: p.input, cacheWrite5m: p.cache_write_5m, cacheWrite1h: p.cache_write_1h, cacheRead: p.cache_read, output: p.output };
  }
  return { asOf: parsed.as_of, models };
}

const Micros = z.number().int().min(1).max(MAX_PRICE_MICROS);

/** A PriceTable as JSON (the usage-ledger's PRICES var, made by meteringVars()). */
export const PriceTableJsonSchema = z.strictObject({
  asOf: z.string().regex(/^\d{4}-\d{2}-\d{2}$/),
  models: z
    .record(z.string().min(1), z.strictObject({ input: Micros, cacheWrite5m: Micros, cacheWrite1h: Micros, cacheRead: Micros, output: Micros }))
    .refine((m) => Object.keys(m).length > 0, "at least one model must be priced")
    .refine((m) => !Object.hasOwn(m, UNNAMED_MODEL), `'${UNNAMED_MODEL}' is never a priced model`),
});

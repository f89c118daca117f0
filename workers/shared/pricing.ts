// Prices one Claude call in integer micro-dollars from the usage the Messages API
// reports, and the schema of the price table (fleet/metering.yaml `prices`). Pure: no
// Node or Workers imports, so the usage-ledger Worker, the proxy (budgets, later) and the
// operator scripts share one implementation.
//
// The usage shape is Anthropic's `Usage` (node_modules/@anthropic-ai/sdk 1.12.0,
// resources/messages/messages.d.ts, checked 2026-11-27): input_tokens, output_tokens,
// cache_creation_input_tokens (total), cache_creation: {ephemeral_5m_input_tokens,
// ephemeral_1h_input_tokens} (the split by TTL), cache_read_input_tokens. These are
// disjoint billing categories: a cached token is not also counted in input_tokens.
import { z } from "zod";

/** Micro-dollars in one dollar. */
export const MICROS = 1_000_000;
/** Tokens in the "million tokens" every price is quoted per. */
const MTOK = 1_000_000n;

/**
 * A price in dollars per million tokens, written as a decimal string or number with at
 * most 6 decimals ("6.25", "0.30", 5). It is parsed as text into integer micro-dollars
 * per million tokens, so no float ever enters a price.
 */
const Dollars = z
  .union([z.string(), z.number()])
  .transform((v, ctx) => {
    const s = String(v).trim();
    const m = /^(\d{1,6})(?:\.(\d{1,6}))?$/.exec(s);
    if (!m) {
      ctx.addIssue({ code: "custom", message: `'${s}' is not a price in dollars per million tokens with at most 6 decimals (e.g. "6.25")` });
      return z.NEVER;
    }
    return Number(m[1]) * MICROS + Number((m[2] ?? "").padEnd(6, "0"));
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
    .refine((m) => Object.keys(m).length > 0, "at least one model must be priced"),
});

/** Micro-dollars per million tokens, per billing category. */
export interface Price {
  input: number;
  cacheWrite5m: number;
  cacheWrite1h: number;
  cacheRead: number;
  output: number;
}

export interface PriceTable {
  asOf: string;
  models: Record<string, Price>;
}

export function toPriceTable(parsed: z.output<typeof PriceTableSchema>): PriceTable {
  const models: Record<string, Price> = {};
  for (const [id, p] of Object.entries(parsed.models)) {
    models[id] = { input: p.input, cacheWrite5m: p.cache_write_5m, cacheWrite1h: p.cache_write_1h, cacheRead: p.cache_read, output: p.output };
  }
  return { asOf: parsed.as_of, models };
}

/** What the ledger prices: Anthropic's Usage, the fields that are billed. */
export interface CallUsage {
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens?: number | null;
  cache_read_input_tokens?: number | null;
  cache_creation?: { ephemeral_5m_input_tokens: number; ephemeral_1h_input_tokens: number } | null;
}

/** Tokens per billing category. */
export interface Tokens {
  input: number;
  cacheWrite5m: number;
  cacheWrite1h: number;
  cacheRead: number;
  output: number;
}

/**
 * Splits a usage into billing categories. Cache writes are priced by TTL from
 * `cache_creation`; any part of `cache_creation_input_tokens` the split does not explain
 * (a response without the split, or an inconsistent one) is priced as a 1-hour write,
 * the dearer rate: the ledger may over-bill by that difference, never under-bill.
 */
export function tokensOf(u: CallUsage): Tokens {
  const w5 = u.cache_creation?.ephemeral_5m_input_tokens ?? 0;
  const w1 = u.cache_creation?.ephemeral_1h_input_tokens ?? 0;
  const rest = Math.max(0, (u.cache_creation_input_tokens ?? 0) - w5 - w1);
  return { input: u.input_tokens, cacheWrite5m: w5, cacheWrite1h: w1 + rest, cacheRead: u.cache_read_input_tokens ?? 0, output: u.output_tokens };
}

/**
 * The cost of one call in micro-dollars: the exact sum over categories of tokens x price
 * (computed in BigInt, so no product ever loses precision), rounded UP once per call to
 * a whole micro-dollar. Per call the rounding adds less than one micro-dollar; a rollup is
 * the sum of its calls' rounded costs, so reports and budgets agree with the call rows.
 */
export function costMicros(t: Tokens, p: Price): number {
  for (const [k, v] of Object.entries(t)) {
    if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`tokens.${k} must be a non-negative integer, got ${v}`);
  }
  const exact =
    BigInt(t.input) * BigInt(p.input) +
    BigInt(t.cacheWrite5m) * BigInt(p.cacheWrite5m) +
    BigInt(t.cacheWrite1h) * BigInt(p.cacheWrite1h) +
    BigInt(t.cacheRead) * BigInt(p.cacheRead) +
    BigInt(t.output) * BigInt(p.output);
  const micros = (exact + MTOK - 1n) / MTOK;
  if (micros > BigInt(Number.MAX_SAFE_INTEGER)) throw new RangeError("cost exceeds the safe integer range");
  return Number(micros);
}

/** The key a call's row carries when its model was not in the table. */
export const UNKNOWN_MODEL = "*unknown*";

export interface PriceLookup {
  price: Price;
  /** The table's model id that priced the call, or UNKNOWN_MODEL. */
  pricedAs: string;
  known: boolean;
}

/**
 * Finds a model's price: its exact id, else the id without a trailing snapshot date
 * (`claude-haiku-4-5-20251001` -> `claude-haiku-4-5`). THE UNKNOWN-MODEL RULE: a model
 * found neither way is priced, per category, at the highest rate of any model in the
 * table (an upper bound: an unknown model is never billed below any known one), and is
 * flagged (`known: false`, rows carry UNKNOWN_MODEL) so `npm run usage` reports it and the
 * operator adds its price.
 */
export function lookupPrice(table: PriceTable, model: string): PriceLookup {
  const exact = Object.hasOwn(table.models, model) ? table.models[model] : undefined;
  if (exact) return { price: exact, pricedAs: model, known: true };
  const undated = model.replace(/-\d{8}$/, "");
  const base = undated !== model && Object.hasOwn(table.models, undated) ? table.models[undated] : undefined;
  if (base) return { price: base, pricedAs: undated, known: true };
  return { price: ceilingPrice(table), pricedAs: UNKNOWN_MODEL, known: false };
}

/** The highest rate of each category across the table. */
export function ceilingPrice(table: PriceTable): Price {
  const all = Object.values(table.models);
  const max = (k: keyof Price) => Math.max(...all.map((p) => p[k]));
  return { input: max("input"), cacheWrite5m: max("cacheWrite5m"), cacheWrite1h: max("cacheWrite1h"), cacheRead: max("cacheRead"), output: max("output") };
}

const Micros = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);

/** A PriceTable as JSON (the usage-ledger's PRICES var, made by meteringVars()). */
export const PriceTableJsonSchema = z.strictObject({
  asOf: z.string().regex(/^\d{4}-\d{2}-\d{2}$/),
  models: z
    .record(z.string().min(1), z.strictObject({ input: Micros, cacheWrite5m: Micros, cacheWrite1h: Micros, cacheRead: Micros, output: Micros }))
    .refine((m) => Object.keys(m).length > 0, "at least one model must be priced"),
});

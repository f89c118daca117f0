// Prices one Claude call in integer micro-dollars from the usage the Messages API
// reports. Pure and dependency-free (no zod, no Node or Workers imports), so the LLM
// proxy's budgets (which must stay a small bundle), the usage-ledger Worker and the
// operator scripts share one implementation; pricing.ts adds the schemas of the price
// table and re-exports all of this.
//
// The usage shape is Anthropic's `Usage` (node_modules/@anthropic-ai/sdk 1.12.0,
// resources/messages/messages.d.ts, checked 2026-11-27): input_tokens, output_tokens,
// cache_creation_input_tokens (total), cache_creation: {ephemeral_5m_input_tokens,
// ephemeral_1h_input_tokens} (the split by TTL), cache_read_input_tokens. These are
// disjoint billing categories: a cached token is not also counted in input_tokens.

/** Micro-dollars in one dollar. */
export const MICROS = 1_000_000;
/** Tokens in the "million tokens" every price is quoted per. */
const MTOK = 1_000_000n;

/**
 * A dollar amount written as text ("6.25", "0.30", "12", at most 6 decimals and
 * `maxWholeDigits` digits before the point) as integer micro-dollars, parsed as text so no
 * float ever enters it; undefined when it is not such an amount. Prices (per million
 * tokens) and the proxy's budgets (`tenants limits --daily-budget 12.50`) are read with it.
 */
export function dollarsToMicros(text: string, maxWholeDigits = 6): number | undefined {
  const m = /^(\d+)(?:\.(\d{1,6}))?$/.exec(text.trim());
  if (!m || m[1]!.length > maxWholeDigits || maxWholeDigits > 9) return undefined;
  return Number(m[1]) * MICROS + Number((m[2] ?? "").padEnd(6, "0"));
}

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

/** The model the proxy files a call under when its answer named none it could store
 *  (workers/llm-proxy/src/metering.ts). Never a price table's id: a row for it would
 *  price those calls as the inventory says, unflagged, instead of by the unknown-model
 *  rule. */
export const UNNAMED_MODEL = "unknown";

/** The dearest price a table may hold, in dollars per million tokens: over ten times any
 *  Claude price yet, and low enough that a call's cost stays within MAX_BUDGET_MICROS
 *  ($10^6) even with every one of its five billing categories at MAX_TOKENS_PER_CALL
 *  tokens (5 x 10^8 tokens x $1,000 per 10^6 = $500,000): so no reservation (input plus
 *  output) or cost outgrows what the usage event and the ledger's day sums hold exactly,
 *  and the proxy's cap on budget_micros never applies. */
export const MAX_PRICE_DOLLARS = 1_000;
/** The same, in micro-dollars per million tokens (a Price's unit). */
export const MAX_PRICE_MICROS = MAX_PRICE_DOLLARS * 1_000_000;

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
  const exact = model !== UNNAMED_MODEL && Object.hasOwn(table.models, model) ? table.models[model] : undefined;
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

/** Micro-dollars as dollars, from the integer (no float): 1234567 -> "1.234567". */
export function dollars(micros: number): string {
  const m = BigInt(micros);
  const sign = m < 0n ? "-" : "";
  const a = m < 0n ? -m : m;
  return `${sign}${a / 1_000_000n}.${(a % 1_000_000n).toString().padStart(6, "0")}`;
}

const PRICE_KEYS = ["input", "cacheWrite5m", "cacheWrite1h", "cacheRead", "output"] as const;

/**
 * The PRICES var (a PriceTable as JSON, made by meteringVars()) checked without zod, for
 * the LLM proxy's budgets: the same shape pricing.ts's PriceTableJsonSchema checks (a
 * test keeps the two in agreement). Returns the table, or what is wrong with it.
 */
export function priceTableFromJson(text: string): PriceTable | string {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return "PRICES is not JSON";
  }
  const t = v as { asOf?: unknown; models?: unknown };
  if (typeof v !== "object" || v === null || Array.isArray(v)) return "PRICES is not an object";
  const extra = Object.keys(t).filter((k) => k !== "asOf" && k !== "models");
  if (extra.length > 0) return `PRICES: unknown key ${extra[0]}`;
  if (typeof t.asOf !== "string" || !/^\d{4}-\d{2}-\d{2}$/.test(t.asOf)) return "PRICES.asOf: not a YYYY-MM-DD date";
  if (typeof t.models !== "object" || t.models === null || Array.isArray(t.models)) return "PRICES.models: not an object";
  const models: Record<string, Price> = {};
  for (const [id, p] of Object.entries(t.models as Record<string, unknown>)) {
    if (id === "" || typeof p !== "object" || p === null || Array.isArray(p)) return `PRICES.models.${id}: not a price`;
    if (id === UNNAMED_MODEL) return `PRICES.models.${id}: the name of calls whose model is not known, never a priced model`;
    const keys = Object.keys(p);
    if (keys.length !== PRICE_KEYS.length || !PRICE_KEYS.every((k) => keys.includes(k))) return `PRICES.models.${id}: needs exactly ${PRICE_KEYS.join(", ")}`;
    for (const k of PRICE_KEYS) {
      const x = (p as Record<string, unknown>)[k];
      // The inventory's bounds again (pricing.ts Dollars): a var edited past them (in the
      // dashboard, say) would make the budget arithmetic throw on every call.
      if (typeof x !== "number" || !Number.isSafeInteger(x) || x < 1 || x > MAX_PRICE_MICROS) return `PRICES.models.${id}.${k}: not an integer from 1 to ${MAX_PRICE_MICROS} (micro-dollars per million tokens)`;
    }
    models[id] = { ...(p as Price) };
  }
  if (Object.keys(models).length === 0) return "PRICES.models: at least one model must be priced";
  return { asOf: t.asOf, models };
}

/**
 * An upper bound of a call's cost before it is made (the proxy's budget reservation):
 * at most `inputTokens` prompt tokens, every one of them billed at the dearest input
 * category the call can use, plus `outputTokens` at the output price; rounded up once,
 * like costMicros. Without `caching` (no `cache_control` anywhere in the body: nothing
 * can be written to or read from the cache) the dearest input category is plain input;
 * with it, any prompt token may be a cache write, and a write the upstream's usage does
 * not split by TTL is priced as a 1-hour write by tokensOf, so the bound is the dearest of
 * all input categories (in every table so far, the 1-hour write). A bound computed this
 * way is never below costMicros of the call's usage, whichever way the prompt splits.
 */
export function costBoundMicros(price: Price, inputTokens: number, outputTokens: number, caching: boolean): number {
  const rates: [keyof Tokens, number][] = caching
    ? [["input", price.input], ["cacheWrite5m", price.cacheWrite5m], ["cacheWrite1h", price.cacheWrite1h], ["cacheRead", price.cacheRead]]
    : [["input", price.input]];
  const [dearest] = rates.reduce((a, b) => (b[1] > a[1] ? b : a));
  const t: Tokens = { input: 0, cacheWrite5m: 0, cacheWrite1h: 0, cacheRead: 0, output: outputTokens };
  t[dearest] = inputTokens;
  return costMicros(t, price);
}

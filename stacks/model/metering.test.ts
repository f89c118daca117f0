// The price table (fleet/metering.yaml) and the pricing of a call: integer micro-dollars
// from the full usage shape, rounding, dated model ids, the unknown-model rule, and
// located errors for a bad table.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ceilingPrice, costMicros, lookupPrice, MAX_PRICE_DOLLARS, MAX_PRICE_MICROS, priceTableFromJson, PriceTableJsonSchema, tokensOf, UNKNOWN_MODEL, UNNAMED_MODEL, type Price } from "../../workers/shared/pricing.ts";
import { MAX_BUDGET_MICROS, MAX_TOKENS_PER_CALL } from "../../workers/shared/token-bound.ts";
import { formatProblem } from "./load.ts";
import { loadMeteringOrThrow, meteringVars, parseMetering } from "./metering.ts";

const fleet = loadMeteringOrThrow("fleet");
const sonnet = fleet.prices.models["claude-sonnet-4-5"]!;

const table = (models: string, retention = 30) => `prices:
  currency: USD
  as_of: "2026-11-27"
  source: test
  models:
${models}
ledger:
  call_retention_days: ${retention}
archive:
  retention_days: 30
`;

describe("the fleet's price table", () => {
  it("parses dollars as text into micro-dollars per million tokens", () => {
    expect(sonnet).toEqual({ input: 3_000_000, cacheWrite5m: 3_750_000, cacheWrite1h: 6_000_000, cacheRead: 300_000, output: 15_000_000 });
    expect(fleet.prices.models["claude-fable-5-1"]!.cacheRead).toBe(250_000);
    expect(fleet.callRetentionDays).toBe(90);
  });

  it("reaches the Worker as JSON the Worker's schema accepts, unchanged", () => {
    const vars = meteringVars(fleet);
    expect(PriceTableJsonSchema.parse(JSON.parse(vars.PRICES))).toEqual(fleet.prices);
    expect(vars.CALL_RETENTION_DAYS).toBe("90");
  });
});

describe("costMicros", () => {
  it("prices every billing category at its own rate", () => {
    // 1,000,000 tokens of each kind at Sonnet 4.5: $3 + $3.75 + $6 + $0.30 + $15 = $28.05
    const t = tokensOf({
      input_tokens: 1_000_000,
      output_tokens: 1_000_000,
      cache_read_input_tokens: 1_000_000,
      cache_creation_input_tokens: 2_000_000,
      cache_creation: { ephemeral_5m_input_tokens: 1_000_000, ephemeral_1h_input_tokens: 1_000_000 },
    });
    expect(costMicros(t, sonnet)).toBe(28_050_000);
  });

  it("a 1-hour write costs more than a 5-minute write of the same tokens", () => {
    const five = tokensOf({ input_tokens: 0, output_tokens: 0, cache_creation_input_tokens: 1000, cache_creation: { ephemeral_5m_input_tokens: 1000, ephemeral_1h_input_tokens: 0 } });
    const hour = tokensOf({ input_tokens: 0, output_tokens: 0, cache_creation_input_tokens: 1000, cache_creation: { ephemeral_5m_input_tokens: 0, ephemeral_1h_input_tokens: 1000 } });
    expect(costMicros(five, sonnet)).toBe(3750); // 1000 x $3.75/MTok = $0.00375
    expect(costMicros(hour, sonnet)).toBe(6000);
  });

  it("prices cache-write tokens without a TTL split at the 1-hour rate (never under-bills)", () => {
    const t = tokensOf({ input_tokens: 10, output_tokens: 0, cache_creation_input_tokens: 500, cache_creation: null });
    expect(t).toEqual({ input: 10, cacheWrite5m: 0, cacheWrite1h: 500, cacheRead: 0, output: 0 });
    const partial = tokensOf({ input_tokens: 0, output_tokens: 0, cache_creation_input_tokens: 500, cache_creation: { ephemeral_5m_input_tokens: 300, ephemeral_1h_input_tokens: 0 } });
    expect(partial).toMatchObject({ cacheWrite5m: 300, cacheWrite1h: 200 });
  });

  it("rounds up once per call, to a whole micro-dollar", () => {
    // 1 cache-read token at $0.30/MTok = 0.3 micro-dollars -> 1; 3 tokens = 0.9 -> 1; 4 = 1.2 -> 2
    const reads = (n: number) => costMicros(tokensOf({ input_tokens: 0, output_tokens: 0, cache_read_input_tokens: n }), sonnet);
    expect([reads(0), reads(1), reads(3), reads(4), reads(10)]).toEqual([0, 1, 1, 2, 3]);
    // The sum is exact before the one rounding: 1 input + 1 read = 3.3 -> 4, not 3 + 1 = 4 by luck: 2 reads + 1 input = 3.6 -> 4
    expect(costMicros({ input: 1, cacheWrite5m: 0, cacheWrite1h: 0, cacheRead: 2, output: 0 }, sonnet)).toBe(4);
  });

  it("stays exact for products beyond 2^53", () => {
    const dear: Price = { input: 999_999_000_000, cacheWrite5m: 0, cacheWrite1h: 0, cacheRead: 0, output: 0 };
    // 100M tokens x $999,999/MTok = $99,999,900 = 99_999_900_000_000 micros
    expect(costMicros({ input: 100_000_000, cacheWrite5m: 0, cacheWrite1h: 0, cacheRead: 0, output: 0 }, dear)).toBe(99_999_900_000_000);
  });

  it("refuses token counts that are not non-negative integers", () => {
    const t = { input: 0, cacheWrite5m: 0, cacheWrite1h: 0, cacheRead: 0, output: 0 };
    expect(() => costMicros({ ...t, output: -1 }, sonnet)).toThrow(/output/);
    expect(() => costMicros({ ...t, input: 1.5 }, sonnet)).toThrow(/input/);
    expect(() => costMicros({ ...t, cacheRead: Number.NaN }, sonnet)).toThrow(/cacheRead/);
  });
});

describe("lookupPrice", () => {
  it("finds a model by its id or by its id without the snapshot date", () => {
    expect(lookupPrice(fleet.prices, "claude-haiku-4-5")).toMatchObject({ pricedAs: "claude-haiku-4-5", known: true });
    expect(lookupPrice(fleet.prices, "claude-haiku-4-5-20251001")).toMatchObject({ pricedAs: "claude-haiku-4-5", known: true });
    expect(lookupPrice(fleet.prices, "claude-haiku-4-5-2025100")).toMatchObject({ known: false });
  });

  it("prices an unknown model at the highest rate of each category, flagged", () => {
    const hit = lookupPrice(fleet.prices, "claude-nonesuch-9");
    expect(hit.known).toBe(false);
    expect(hit.pricedAs).toBe(UNKNOWN_MODEL);
    // Fable 5.1 has the dearest input/output/writes; Fable 5 the dearest cache read ($1).
    expect(hit.price).toEqual({ input: 10_000_000, cacheWrite5m: 12_500_000, cacheWrite1h: 20_000_000, cacheRead: 1_000_000, output: 50_000_000 });
    for (const p of Object.values(fleet.prices.models)) {
      for (const k of Object.keys(p) as (keyof Price)[]) expect(hit.price[k]).toBeGreaterThanOrEqual(p[k]);
    }
    expect(ceilingPrice(fleet.prices)).toEqual(hit.price);
  });

  it("is not fooled by names of Object.prototype", () => {
    expect(lookupPrice(fleet.prices, "constructor").known).toBe(false);
    expect(lookupPrice(fleet.prices, "__proto__").known).toBe(false);
  });
});

describe("a bad metering file", () => {
  it("reports every problem with its line, column and field", () => {
    const text = table(
      `    claude-a: { input: "3", cache_write_5m: "3.75", cache_write_1h: "6", cache_read: "0.30", output: "15" }
    claude-b: { input: "1e-7", cache_write_5m: "1", cache_write_1h: "2", cache_read: "0.1", output: "5", batch: "1" }
    claude-c: { input: "-1", cache_write_5m: "1", cache_write_1h: "2", cache_read: "0.1234567", output: "5" }`,
      7,
    );
    const r = parseMetering("fleet/metering.yaml", text);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    const lines = text.split("\n");
    const col = (line: number, needle: string) => lines[line - 1]!.indexOf(needle) + 1;
    const got = r.problems.map((p) => `${p.line}:${p.column} ${p.path}`);
    expect(got).toEqual([
      `7:${col(7, '"1e-7"')} prices.models.claude-b.input`,
      `7:${col(7, "batch")} prices.models.claude-b.batch`,
      `8:${col(8, '"-1"')} prices.models.claude-c.input`,
      `8:${col(8, '"0.1234567"')} prices.models.claude-c.cache_read`,
      `10:${col(10, "7")} ledger.call_retention_days`,
    ]);
    expect(r.problems[0]!.message).toMatch(/'1e-7' is not a price/);
    expect(r.problems[1]!.message).toBe("unknown key 'batch'");
    expect(r.problems[4]!.message).toMatch(/at least 15/);
  });

  it("refuses prices written as YAML numbers, zero, and over the ceiling; accepts text up to it (found by a review: 1.0000000000000001 read as $1, 0x10 as $16, a row of zeros free and unflagged)", () => {
    // The ceiling keeps the dearest possible call within the usage event's bound.
    expect(costMicros({ input: MAX_TOKENS_PER_CALL, cacheWrite5m: MAX_TOKENS_PER_CALL, cacheWrite1h: MAX_TOKENS_PER_CALL, cacheRead: MAX_TOKENS_PER_CALL, output: MAX_TOKENS_PER_CALL }, { input: MAX_PRICE_DOLLARS * 1e6, cacheWrite5m: MAX_PRICE_DOLLARS * 1e6, cacheWrite1h: MAX_PRICE_DOLLARS * 1e6, cacheRead: MAX_PRICE_DOLLARS * 1e6, output: MAX_PRICE_DOLLARS * 1e6 })).toBeLessThanOrEqual(MAX_BUDGET_MICROS);
    const row = (input: string) => table(`    claude-a: { input: ${input}, cache_write_5m: "3.75", cache_write_1h: "6", cache_read: "0.30", output: "15" }`);
    const problem = (input: string) => {
      const r = parseMetering("m.yaml", row(input));
      return r.ok ? undefined : r.problems.map((p) => `${p.line}:${p.path}: ${p.message}`);
    };
    for (const n of ["3", "1.0000000000000001", "0x10", "1e3"]) expect(problem(n), n).toEqual([expect.stringMatching(/^6:prices\.models\.claude-a\.input: write the price as text in quotes/)]);
    expect(problem('"0"')).toEqual([expect.stringMatching(/^6:prices\.models\.claude-a\.input: a price of 0 would make these tokens free/)]);
    expect(problem('"0.000000"')).toEqual([expect.stringMatching(/a price of 0/)]);
    expect(problem('"1000.000001"')).toEqual(["6:prices.models.claude-a.input: at most 1000 dollars per million tokens (a call's cost must stay within what the ledger sums exactly)"]);
    expect(problem('"1000"')).toBeUndefined();
    expect(problem('"0.000001"')).toBeUndefined();
  });

  it("refuses a __proto__ model (zod's record would drop it without a word), located", () => {
    const r = parseMetering("m.yaml", table(`    claude-a: { input: "3", cache_write_5m: "3.75", cache_write_1h: "6", cache_read: "0.30", output: "15" }
    __proto__: { input: "3", cache_write_5m: "3.75", cache_write_1h: "6", cache_read: "0.30", output: "15" }`));
    expect(r.ok || r.problems).toEqual([expect.objectContaining({ line: 7, column: 5, path: "prices.models.__proto__", message: 'a key may not be "__proto__" (it would be dropped without a word)' })]);
  });

  it("names what is wrong with a price that is not text (.nan, .inf, ~, true, a list, missing) and with a model id, at the key", () => {
    const r = parseMetering("m.yaml", table(`    claude-a: { input: .nan, cache_write_5m: ~, cache_write_1h: .inf, cache_read: true }
    Claude-X: { input: "3", cache_write_5m: "3.75", cache_write_1h: "6", cache_read: "0.30", output: [1] }`));
    expect(r.ok || r.problems.map((p) => `${p.line}:${p.column} ${p.path}: ${p.message}`)).toEqual([
      '6:15 prices.models.claude-a.output: required: a price in dollars per million tokens, as text in quotes (e.g. "6.25")',
      '6:24 prices.models.claude-a.input: NaN is not a price: write it as text in quotes (e.g. "6.25")',
      '6:46 prices.models.claude-a.cache_write_5m: required: a price in dollars per million tokens, as text in quotes (e.g. "6.25")',
      '6:65 prices.models.claude-a.cache_write_1h: Infinity is not a price: write it as text in quotes (e.g. "6.25")',
      '6:83 prices.models.claude-a.cache_read: a boolean is not a price: write it as text in quotes (e.g. "6.25")',
      "7:5 prices.models.Claude-X: 'Claude-X': a model id: lowercase letters, digits, dots and dashes",
    ]);
  });

  it("refuses a price table row for 'unknown', the proxy's name for a call whose answer named no model (it would price those calls unflagged)", () => {
    const row = `{ input: "0.000001", cache_write_5m: "0.000001", cache_write_1h: "0.000001", cache_read: "0.000001", output: "0.000001" }`;
    const r = parseMetering("m.yaml", table(`    claude-a: { input: "3", cache_write_5m: "3.75", cache_write_1h: "6", cache_read: "0.30", output: "15" }
    unknown: ${row}`));
    expect(r.ok || r.problems).toEqual([expect.objectContaining({ line: 7, path: "prices.models.unknown", message: expect.stringMatching(/^'unknown' is what the proxy calls a call whose answer named no model/) })]);
    // Even from a table that has it (a var edited by hand), such a call is never "known".
    const t = { asOf: "2026-11-27", models: { unknown: { input: 1, cacheWrite5m: 1, cacheWrite1h: 1, cacheRead: 1, output: 1 }, "claude-a": { input: 3e6, cacheWrite5m: 3.75e6, cacheWrite1h: 6e6, cacheRead: 3e5, output: 15e6 } } };
    expect(lookupPrice(t, UNNAMED_MODEL)).toMatchObject({ known: false, pricedAs: UNKNOWN_MODEL, price: { input: 3e6, output: 15e6 } });
  });

  it("the proxy's PRICES check (no zod) and the ledger's schema accept and refuse the same vars, with the inventory's bounds", () => {
    const price = { input: 3e6, cacheWrite5m: 3.75e6, cacheWrite1h: 6e6, cacheRead: 3e5, output: 15e6 };
    const cases: [string, unknown, boolean][] = [
      ["a valid table", { asOf: "2026-11-27", models: { "claude-a": price } }, true],
      ["the dearest price allowed", { asOf: "2026-11-27", models: { "claude-a": { ...price, output: MAX_PRICE_MICROS } } }, true],
      ["a price over the inventory's bound (its arithmetic would throw on every call)", { asOf: "2026-11-27", models: { "claude-a": { ...price, output: MAX_PRICE_MICROS + 1 } } }, false],
      ["a price of 0", { asOf: "2026-11-27", models: { "claude-a": { ...price, input: 0 } } }, false],
      ["a negative price", { asOf: "2026-11-27", models: { "claude-a": { ...price, input: -1 } } }, false],
      ["a fraction", { asOf: "2026-11-27", models: { "claude-a": { ...price, input: 1.5 } } }, false],
      ["a row for 'unknown'", { asOf: "2026-11-27", models: { "claude-a": price, unknown: price } }, false],
      ["a missing category", { asOf: "2026-11-27", models: { "claude-a": { input: 1, cacheWrite5m: 1, cacheWrite1h: 1, cacheRead: 1 } } }, false],
      ["an extra key", { asOf: "2026-11-27", models: { "claude-a": price }, note: "x" }, false],
      ["no models", { asOf: "2026-11-27", models: {} }, false],
    ];
    for (const [what, v, ok] of cases) {
      expect({ what, proxy: typeof priceTableFromJson(JSON.stringify(v)) !== "string", ledger: PriceTableJsonSchema.safeParse(v).success }).toEqual({ what, proxy: ok, ledger: ok });
    }
  });

  it("refuses a model key written as an alias (it would silently replace the model it repeats) or a merge key, located", () => {
    const opus = `input: "5", cache_write_5m: "6.25", cache_write_1h: "10", cache_read: "0.50", output: "25"`;
    const cheap = `input: "0.000001", cache_write_5m: "0.000001", cache_write_1h: "0.000001", cache_read: "0.000001", output: "0.000001"`;
    const alias = parseMetering("m.yaml", table(`    &o claude-opus-4-5: { ${opus} }
    *o : { ${cheap} }`));
    expect(alias.ok || alias.problems).toEqual([expect.objectContaining({ line: 7, column: 5, path: "prices.models.*o", message: expect.stringMatching(/^a key may not be an alias/) })]);
    // Under a YAML 1.1 header `<<` merges; a model merged in and written again beside it.
    const merged = parseMetering("m.yaml", `%YAML 1.1\n---\n${table(`    <<: { claude-opus-4-5: { ${cheap} } }
    claude-opus-4-5: { ${opus} }`)}`);
    expect(merged.ok || merged.problems).toEqual([expect.objectContaining({ line: 8, path: "prices.models.<<", message: expect.stringMatching(/^a merge key \(<<\) is not allowed/) })]);
    // Under YAML 1.2 `<<` is a plain key: refused as well, never a model.
    const plain = parseMetering("m.yaml", table(`    <<: { claude-opus-4-5: { ${cheap} } }`));
    expect(plain.ok || plain.problems).toEqual([expect.objectContaining({ path: "prices.models.<<", message: expect.stringMatching(/^a merge key/) })]);
  });

  it("an alias bomb or an alias naming no anchor is a located problem, never a crash", () => {
    const bomb = `a: &a [x, x, x, x, x, x, x, x, x, x]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]
prices: *c
`;
    const r = parseMetering("m.yaml", bomb);
    expect(r.ok || r.problems).toEqual([expect.objectContaining({ file: "m.yaml", line: 2, message: expect.stringMatching(/^too many YAML alias expansions/) })]);
    // An alias before its anchor names nothing either (YAML: the anchor comes first).
    const forward = parseMetering("m.yaml", table(`    claude-b: *base
    base: &base { input: "3", cache_write_5m: "3.75", cache_write_1h: "6", cache_read: "0.30", output: "15" }`));
    expect(forward.ok || forward.problems).toEqual([expect.objectContaining({ line: 6, column: 15 })]);
    // A good alias first, then the typo: the problem is at the typo.
    const typo = parseMetering("m.yaml", table(`    base: &base { input: "3", cache_write_5m: "3.75", cache_write_1h: "6", cache_read: "0.30", output: "15" }
    claude-b: *base
    claude-a: *bse`));
    expect(typo.ok || typo.problems).toEqual([expect.objectContaining({ line: 8, column: 15, message: expect.stringMatching(/^cannot read the YAML: /) })]);
  });

  it("a key with control or bidirectional characters is quoted escaped in the problem line", () => {
    const r = parseMetering("m.yaml", table(`    "x\\e]0;pwned\\a\\e[2J\\u202e": { input: "3", cache_write_5m: "3.75", cache_write_1h: "6", cache_read: "0.30", output: "15" }`));
    expect(r.ok).toBe(false);
    if (r.ok) return;
    const line = formatProblem(r.problems[0]!);
    expect(line).not.toMatch(/[\u0000-\u001f\u202e]/);
    expect(line).toContain("\\u001b");
  });

  it("checks ledger.dead_letter_retention_days: 1 to 14 days (a Queue's most), 14 when absent, located", () => {
    const model = `    claude-a: { input: "3", cache_write_5m: "3.75", cache_write_1h: "6", cache_read: "0.30", output: "15" }`;
    const withDlq = (v: string) => table(model).replace("  call_retention_days: 30\n", `  call_retention_days: 30\n  dead_letter_retention_days: ${v}\n`);
    const ok = (t: string) => {
      const r = parseMetering("m.yaml", t);
      if (!r.ok) throw new Error(r.problems.map((p) => p.message).join("; "));
      return r.metering.deadLetterRetentionDays;
    };
    expect(ok(table(model))).toBe(14);
    expect(ok(withDlq("1"))).toBe(1);
    expect(ok(withDlq("14"))).toBe(14);
    expect(fleet.deadLetterRetentionDays).toBe(14);
    for (const [v, message] of [
      ["15", "at most 14: a Queue keeps a message 14 days at most"],
      ["0", "at least 1 day"],
      ["2.5", expect.stringMatching(/expected int/)],
      ['"7"', expect.stringMatching(/number/)],
    ] as const) {
      const text = withDlq(v);
      const r = parseMetering("fleet/metering.yaml", text);
      const line = text.split("\n").findIndex((l) => l.includes("dead_letter_retention_days")) + 1;
      expect(r.ok || r.problems, v).toEqual([{ file: "fleet/metering.yaml", line, column: 31, path: "ledger.dead_letter_retention_days", message }]);
    }
  });

  it("refuses a call retention an event replayed from the dead-letter queue can outlast (its days there + the usage Queue's 4), located at call_retention_days", () => {
    const model = `    claude-a: { input: "3", cache_write_5m: "3.75", cache_write_1h: "6", cache_read: "0.30", output: "15" }`;
    const text = (call: number, dlq?: number) => table(model, call).replace(`  call_retention_days: ${call}\n`, `  call_retention_days: ${call}\n${dlq !== undefined ? `  dead_letter_retention_days: ${dlq}\n` : ""}`);
    // 14 days in the DLQ (the default) + 4 in the usage Queue: 18; 19 is the least.
    expect(parseMetering("m.yaml", text(19)).ok).toBe(true);
    expect(parseMetering("m.yaml", text(15, 10)).ok).toBe(true);
    const r = parseMetering("fleet/metering.yaml", text(18));
    const line = text(18).split("\n").findIndex((l) => l.includes("call_retention_days")) + 1;
    expect(r.ok || r.problems).toEqual([
      {
        file: "fleet/metering.yaml",
        line,
        column: 24,
        path: "ledger.call_retention_days",
        message: "more than 18 days: an event replayed from the dead-letter queue can be 14 (dead_letter_retention_days) + 4 (the usage Queue's own retention) days old, and the ledger refuses one older than this (it could not be deduplicated); raise it, or lower dead_letter_retention_days",
      },
    ]);
    const r2 = parseMetering("m.yaml", text(15, 11));
    expect(r2.ok || r2.problems.map((p) => p.message)).toEqual([expect.stringMatching(/^more than 15 days: .* 11 \(dead_letter_retention_days\) \+ 4/)]);
  });

  it("refuses a table too large for the PRICES var (Cloudflare: 5 KB a var), located at the models", () => {
    const models = (n: number) => Array.from({ length: n }, (_, i) => `    claude-model-${i}: { input: "3", cache_write_5m: "3.75", cache_write_1h: "6", cache_read: "0.30", output: "15" }`).join("\n");
    expect(parseMetering("m.yaml", table(models(30))).ok).toBe(true);
    const big = parseMetering("m.yaml", table(models(60)));
    expect(big.ok || big.problems).toEqual([expect.objectContaining({ line: 5, path: "prices.models", message: expect.stringMatching(/^the table is \d+ bytes as the PRICES var; Cloudflare allows 5000 bytes per var/) })]);
  });

  it("refuses an empty table, another currency, and YAML errors", () => {
    const empty = parseMetering("m.yaml", table("    {}").replace("  models:\n    {}", "  models: {}"));
    expect(empty.ok || empty.problems.map((p) => p.message)).toEqual(["at least one model must be priced"]);
    const eur = parseMetering("m.yaml", table(`    a: { input: "1", cache_write_5m: "1", cache_write_1h: "1", cache_read: "1", output: "1" }`).replace("USD", "EUR"));
    expect(eur.ok || eur.problems[0]).toMatchObject({ line: 2, path: "prices.currency" });
    const dup = parseMetering("m.yaml", "prices: {}\nprices: {}\n");
    expect(dup.ok || dup.problems[0]!.message).toMatch(/^YAML: /);
  });
});

describe("the usage event and the SDK's Usage", () => {
  it("accepts Anthropic's Usage exactly as the SDK types it, nulls and extra fields included", async () => {
    const { UsageEventSchema } = await import("../../workers/shared/usage-event.ts");
    type Usage = import("@anthropic-ai/sdk").default.Messages.Usage;
    // Typed as the SDK's Usage: a change of its shape breaks the typecheck here.
    const full = {
      input_tokens: 12,
      output_tokens: 34,
      cache_creation_input_tokens: 56,
      cache_read_input_tokens: 78,
      cache_creation: { ephemeral_5m_input_tokens: 50, ephemeral_1h_input_tokens: 6 },
      inference_geo: null,
      output_tokens_details: null,
      server_tool_use: null,
      service_tier: "standard",
    } as unknown as Usage;
    const bare = { input_tokens: 1, output_tokens: 2, cache_creation: null, cache_creation_input_tokens: null, cache_read_input_tokens: null } as unknown as Usage;
    for (const usage of [full, bare]) {
      const r = UsageEventSchema.safeParse({ v: 1, request_id: "req_1", tenant: "t1", model: "claude-sonnet-4-5", ts: Date.UTC(2026, 10, 27), status: 200, usage });
      expect(r.success).toBe(true);
    }
    expect(tokensOf(full)).toEqual({ input: 12, cacheWrite5m: 50, cacheWrite1h: 6, cacheRead: 78, output: 34 });
  });
});

describe("costMicros, properties", () => {
  const tokens = fc.record({
    input: fc.nat(10_000_000),
    cacheWrite5m: fc.nat(10_000_000),
    cacheWrite1h: fc.nat(10_000_000),
    cacheRead: fc.nat(10_000_000),
    output: fc.nat(10_000_000),
  });
  const add = (a: Record<string, number>, b: Record<string, number>) => Object.fromEntries(Object.keys(a).map((k) => [k, a[k]! + b[k]!])) as typeof a;

  it("never charges less for more tokens, and splits cost at most one micro-dollar per call above the exact sum", () => {
    fc.assert(
      fc.property(tokens, tokens, (a, b) => {
        const whole = costMicros(add(a, b) as never, sonnet);
        const parts = costMicros(a as never, sonnet) + costMicros(b as never, sonnet);
        expect(whole).toBeGreaterThanOrEqual(costMicros(a as never, sonnet));
        // Rounding up per call: two calls cost the same as one with their sum, or up to 1 micro more.
        expect(parts - whole).toBeGreaterThanOrEqual(0);
        expect(parts - whole).toBeLessThanOrEqual(1);
      }),
    );
  });
});

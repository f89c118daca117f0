// Spend budgets per tenant in workerd (issue 16.2): reserved in the tenant's Durable
// Object in the same call as its request token, an upper bound priced from the inventory's
// price table (PRICES from fleet/metering.yaml), settled to the cost the usage ledger
// computes for the same usage. Exact under concurrency; an exhausted budget is a 402
// billing_error that names it and that the official SDK does not retry.
import Anthropic from "@anthropic-ai/sdk";
import { describe, expect, it } from "vitest";
import { costBoundMicros, costMicros, lookupPrice, priceTableFromJson, tokensOf, type PriceTable } from "../../shared/cost.ts";
import type { BudgetRows } from "../src/policy/budget.ts";
import { inventoryVars } from "../local/miniflare.ts";
import { COUNT_TIMEOUT_MS } from "../src/policy/token-estimate.ts";
import { UsageEventSchema } from "../../shared/usage-event.ts";
import { frame, message, messageEvents, overloadedEvent, type Behaviour, type SseEvent } from "./fake-anthropic.ts";
import { Harness, useHarness } from "./harness.ts";

const HAIKU = "claude-haiku-4-5";
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const prices = priceTableFromJson(inventoryVars().PRICES) as PriceTable;
const haiku = lookupPrice(prices, HAIKU).price;

const body = (maxTokens: number, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ model: HAIKU, max_tokens: maxTokens, messages: [{ role: "user", content: "Hello" }], ...extra });

type AnthropicUsage = { input_tokens: number; output_tokens: number; cache_creation_input_tokens: number; cache_read_input_tokens: number; cache_creation?: { ephemeral_5m_input_tokens: number; ephemeral_1h_input_tokens: number } };

const answer = (usage: AnthropicUsage, model = HAIKU) => ({
  kind: "json" as const,
  body: { id: "msg_b", type: "message", role: "assistant", model, content: [{ type: "text", text: "ok" }], stop_reason: "end_turn", stop_sequence: null, usage },
});

/** The ledger's price of a usage (workers/usage-ledger/src/ledger.ts does exactly this). */
const ledgerCost = (u: AnthropicUsage, model = HAIKU) => costMicros(tokensOf(u), lookupPrice(prices, model).price);

async function budgetState(h: Harness, tenantId: string): Promise<BudgetRows> {
  const ns = await h.mf.getDurableObjectNamespace("RATE_LIMITER", "llm-proxy");
  const stub = ns.get(ns.idFromName(tenantId)) as unknown as { budgetState(): Promise<BudgetRows> };
  return await stub.budgetState();
}

/** Waits until the tenant's Durable Object holds no reservation (every call settled). */
async function settledState(h: Harness, tenantId: string): Promise<BudgetRows> {
  let s = await budgetState(h, tenantId);
  for (let i = 0; i < 300 && Object.values(s).some((r) => r.reserved !== 0); i++) {
    await new Promise((r) => setTimeout(r, 20));
    s = await budgetState(h, tenantId);
  }
  return s;
}

describe("spend budgets per tenant", () => {
  let h: Harness;
  // MAX_RETRIES 5 (default 2): in a clean-clone CI run one of the 200 concurrent calls of
  // "with leases in play" got 502 "upstream unreachable" (three attempts, all network
  // errors; it passed alone and in the other runs). The likely cause is the fake's 1 s
  // keep-alive: after a pause, a burst can meet several stale pooled connections in a row,
  // and a POST on one fails. That is the proxy's retry's business, not these tests', which
  // check the money: each needs every scripted answer taken by exactly one call.
  useHarness({ METRICS_SAMPLE_RATE: "0", MAX_RETRIES: "5" }, (started) => {
    h = started;
  });

  it("100 concurrent calls against a daily budget for 10 admit exactly 10; spent never exceeds it and equals the ledger's cost", async () => {
    const b = body(1000);
    // Every admitted call uses all it reserved: as many input tokens as the body has bytes
    // (the byte bound), and all of max_tokens. Nothing comes back, so nothing more fits.
    const usage = { input_tokens: b.length, output_tokens: 1000, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 };
    const each = costBoundMicros(haiku, b.length, 1000, false);
    expect(each).toBe(ledgerCost(usage));
    expect(each).toBe(b.length * 1 + 1000 * 5); // haiku: $1 / $5 per million tokens
    // Room for 10 calls, and for less than one more call's max_tokens.
    const budget = 10 * each + 4999;
    const { key, id } = await h.tenant({ dailyBudgetMicros: budget });
    h.fake.reset();
    // Near the end of the budget calls are counted first; the count (the body's length)
    // never lowers the byte bound here, so every reservation stays `each`.
    h.fake.countTokens = () => b.length;
    h.fake.enqueue(...Array.from({ length: 100 }, () => answer(usage)));
    const results = await Promise.all(Array.from({ length: 100 }, () => h.call("/v1/messages", { key, body: b })));
    const ok = results.filter((r) => r.status === 200);
    // All at once: the 90 others find the budget held by the 10 in flight, not spent, and
    // are told to retry shortly (429, not "exhausted"); one refused after some of the 10
    // settled finds it spent (402).
    const held = results.filter((r) => r.status === 429);
    expect(ok).toHaveLength(10);
    expect(held.length + results.filter((r) => r.status === 402).length).toBe(90);
    expect(held.length).toBeGreaterThan(0);
    expect(h.fake.received.filter((r) => r.path === "/v1/messages")).toHaveLength(10);
    const state = await settledState(h, id);
    expect(state.daily).toMatchObject({ spent: 10 * each, reserved: 0 });
    expect(state.daily!.spent).toBeLessThanOrEqual(budget);
    // Every admitted answer says what it reserved and what was left after it.
    for (const r of ok) expect(r.headers.get("edgefleet-estimated-cost-micros")).toBe(String(each));
    const left = ok.map((r) => Number(r.headers.get("edgefleet-budget-daily-remaining-micros"))).sort((x, y) => x - y);
    expect(left[0]).toBe(4999);
    expect(ok[0]!.headers.get("edgefleet-budget-daily-limit-micros")).toBe(String(budget));
    expect(ok[0]!.headers.get("edgefleet-budget-remaining-micros")).toBe(ok[0]!.headers.get("edgefleet-budget-daily-remaining-micros"));
    expect(ok[0]!.headers.get("edgefleet-budget-monthly-limit-micros")).toBeNull();

    const h0 = held[0]!;
    expect(JSON.parse(h0.text).error).toMatchObject({ type: "rate_limit_error", details: { error_code: "edgefleet_budget_held" }, message: expect.stringMatching(/^this API key's daily budget \(\$[0-9.]+, resets [^)]+\) is held by the reservations of calls in flight/) });
    expect(h0.headers.get("retry-after")).toBe("2");
    expect(h0.headers.get("x-should-retry")).toBeNull();
    expect(h0.headers.get("edgefleet-budget-exceeded")).toBe("daily");
    // Once they settled the money is spent: the next call finds the budget exhausted.
    const r = await h.call("/v1/messages", { key, body: b });
    expect(r.status).toBe(402);
    expect(h.fake.received.filter((x) => x.path === "/v1/messages")).toHaveLength(10);
    const midnight = new Date(Date.UTC(new Date().getUTCFullYear(), new Date().getUTCMonth(), new Date().getUTCDate() + 1));
    const iso = midnight.toISOString().replace(".000Z", "Z");
    expect(JSON.parse(r.text)).toEqual({
      type: "error",
      error: {
        type: "billing_error",
        message: `this API key's daily budget ($${(budget / 1e6).toFixed(6)}, resets ${iso}) is exhausted`,
        details: { error_code: "edgefleet_budget_exhausted" },
      },
      request_id: r.headers.get("request-id"),
    });
    expect(r.headers.get("edgefleet-budget-exceeded")).toBe("daily");
    expect(r.headers.get("edgefleet-budget-daily-reset")).toBe(iso);
    expect(r.headers.get("x-should-retry")).toBe("false");
    const retryAfter = Number(r.headers.get("retry-after"));
    expect(Math.abs(retryAfter - (midnight.getTime() - Date.now()) / 1000)).toBeLessThan(120);
  });

  it("settles to the ledger's cost (JSON and SSE, cache writes split by TTL): the money not used comes back", async () => {
    const { key, id } = await h.tenant({ dailyBudgetMicros: 50_000_000, monthlyBudgetMicros: 900_000_000 });
    const json = { input_tokens: 30, output_tokens: 7, cache_creation_input_tokens: 1500, cache_read_input_tokens: 20_000, cache_creation: { ephemeral_5m_input_tokens: 500, ephemeral_1h_input_tokens: 1000 } };
    // An SSE stream: the final usage is split over message_start and message_delta.
    const sseUsage = { input_tokens: 11, output_tokens: 300, cache_creation_input_tokens: 40, cache_read_input_tokens: 0 };
    const events: SseEvent[] = messageEvents(["a", "b"], sseUsage).map((e) =>
      e.event === "message_start" ? { ...e, data: { ...(e.data as object), message: { ...(e.data as { message: object }).message, model: HAIKU } } } : e,
    );
    h.fake.reset();
    h.fake.enqueue(answer(json), { kind: "sse", events });
    const big = body(4000, { system: [{ type: "text", text: "cached prefix", cache_control: { type: "ephemeral", ttl: "1h" } }] });
    const r1 = await h.call("/v1/messages", { key, body: big });
    expect(r1.status).toBe(200);
    // cache_control in the body: every prompt token may be a (1-hour) write, the dearest.
    expect(r1.headers.get("edgefleet-estimated-cost-micros")).toBe(String(costBoundMicros(haiku, big.length, 4000, true)));
    expect(Number(r1.headers.get("edgefleet-estimated-cost-micros"))).toBe(big.length * 2 + 4000 * 5);
    const r2 = await h.call("/v1/messages", { key, body: body(500, { stream: true }) });
    expect(r2.status).toBe(200);
    expect(r2.text).toContain("message_stop");
    const state = await settledState(h, id);
    // The SSE usage as the ledger would receive it: message_start's input and cache fields,
    // message_delta's output, no TTL split (priced as 1-hour writes, like the ledger).
    const want = ledgerCost(json) + ledgerCost(sseUsage);
    expect(state.daily).toMatchObject({ spent: want, reserved: 0 });
    expect(state.monthly).toMatchObject({ spent: want, reserved: 0 });
    // Each call's usage event says what the budget charged: its cost, as the ledger prices it.
    expect(await h.eventFor(r1.headers.get("edgefleet-request-id")!)).toMatchObject({ budget_micros: ledgerCost(json) });
    expect(await h.eventFor(r2.headers.get("edgefleet-request-id")!)).toMatchObject({ budget_micros: ledgerCost(sseUsage) });
    const next = await h.call("/v1/messages", { key, body: body(10) });
    expect(Number(next.headers.get("edgefleet-budget-daily-remaining-micros"))).toBe(50_000_000 - want - Number(next.headers.get("edgefleet-estimated-cost-micros")));
    expect(Number(next.headers.get("edgefleet-budget-monthly-remaining-micros"))).toBe(900_000_000 - want - Number(next.headers.get("edgefleet-estimated-cost-micros")));
    expect(next.headers.get("edgefleet-budget-remaining-micros")).toBe(next.headers.get("edgefleet-budget-daily-remaining-micros"));
  });

  it("with leases in play (a large budget), 200 concurrent calls settle to the ledger's cost and leave nothing reserved", async () => {
    const { key, id } = await h.tenant({ dailyBudgetMicros: 1_000_000_000, monthlyBudgetMicros: 2_000_000_000 });
    h.fake.reset();
    const usages = Array.from({ length: 200 }, (_, i) => ({ input_tokens: 3 + (i % 7), output_tokens: 1 + (i % 13), cache_creation_input_tokens: i % 3, cache_read_input_tokens: 10 * (i % 5), cache_creation: { ephemeral_5m_input_tokens: i % 3, ephemeral_1h_input_tokens: 0 } }));
    h.fake.enqueue(...usages.map((u) => answer(u)));
    const results = await Promise.all(usages.map(() => h.call("/v1/messages", { key, body: body(50, { system: [{ type: "text", text: "s", cache_control: { type: "ephemeral" } }] }) })));
    expect(results.filter((r) => r.status !== 200).map((r) => `${r.status} ${r.text}`)).toEqual([]);
    // Leased money not spent goes back when the lease expires (a timer in waitUntil), and
    // every settle's refund too: in the end the object holds no reservation.
    const state = await settledState(h, id);
    const want = usages.reduce((a, u) => a + ledgerCost(u), 0);
    expect(state.daily).toMatchObject({ spent: want, reserved: 0 });
    expect(state.monthly).toMatchObject({ spent: want, reserved: 0 });
  });

  it("within 20% of the budget, asks count_tokens first; a call over the whole budget is refused for good", async () => {
    const b = body(100);
    const bound = costBoundMicros(haiku, b.length, 100, false);
    // After one call that spends 85% of the budget, the tenant is within 20% of it.
    const budget = 20 * bound;
    const { key } = await h.tenant({ dailyBudgetMicros: budget });
    h.fake.reset();
    // 85% of the budget in output tokens at $5 per million.
    const spendOut = Math.floor((0.85 * budget) / 5);
    h.fake.enqueue(answer({ input_tokens: 1, output_tokens: spendOut, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 }));
    const first = await h.call("/v1/messages", { key, body: body(spendOut) });
    expect(first.status).toBe(200);
    expect(h.fake.received.map((q) => q.path)).toEqual(["/v1/messages"]);
    await new Promise((r) => setTimeout(r, 1300)); // the settle reaches the object
    h.fake.reset();
    h.fake.enqueue({ kind: "json", body: { input_tokens: 5 } }, answer({ input_tokens: 5, output_tokens: 10, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 }));
    const near = await h.call("/v1/messages", { key, body: b });
    expect(near.status).toBe(200);
    expect(h.fake.received.map((q) => q.path)).toEqual(["/v1/messages/count_tokens", "/v1/messages"]);
    // Reserved from the count (+5% +16, count_tokens being an estimate), not the bytes.
    expect(near.headers.get("edgefleet-estimated-cost-micros")).toBe(String(costBoundMicros(haiku, Math.ceil(5 * 1.05) + 16, 100, false)));

    h.fake.reset();
    const never = await h.call("/v1/messages", { key, body: body(budget) }); // max_tokens alone costs 5x the budget
    expect(never.status).toBe(402);
    expect(JSON.parse(never.text).error.message).toMatch(/exceeds this API key's daily budget .*: it can never be admitted; lower max_tokens or the prompt/);
    expect(never.headers.get("x-should-retry")).toBe("false");
    expect(h.fake.received.filter((q) => q.path === "/v1/messages")).toHaveLength(0);
  });

  it("a monthly budget alone; count_tokens and model listings cost nothing and are never refused by a budget", async () => {
    const { key } = await h.tenant({ monthlyBudgetMicros: 1000 });
    h.fake.reset();
    const now = new Date();
    const monthEnd = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1)).toISOString().replace(".000Z", "Z");
    const r = await h.call("/v1/messages", { key, body: body(1000) }); // $0.005 of output > $0.001
    expect(r.status).toBe(402);
    expect(r.headers.get("edgefleet-budget-exceeded")).toBe("monthly");
    expect(r.headers.get("edgefleet-budget-monthly-reset")).toBe(monthEnd);
    expect(r.headers.get("edgefleet-budget-daily-limit-micros")).toBeNull();
    const count = await h.call("/v1/messages/count_tokens", { key, body: JSON.stringify({ model: HAIKU, messages: [{ role: "user", content: "x" }] }) });
    expect(count.status).toBe(200);
    expect(count.headers.get("edgefleet-estimated-cost-micros")).toBe("0");
    expect(count.headers.get("edgefleet-budget-monthly-remaining-micros")).toBe("1000");
    const models = await h.call("/v1/models", { key, method: "GET" });
    expect(models.status).toBe(200);
  });

  it("the official SDK raises PaymentRequiredError with the error code, and does not retry (its default maxRetries)", async () => {
    const { key } = await h.tenant({ dailyBudgetMicros: 1 });
    h.fake.reset();
    const sent = h.points.length;
    const client = new Anthropic({ apiKey: key, baseURL: h.url.origin });
    const e = await client.messages.create({ model: HAIKU, max_tokens: 10, messages: [{ role: "user", content: "hi" }] }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(Anthropic.PaymentRequiredError);
    const err = e as InstanceType<typeof Anthropic.PaymentRequiredError>;
    expect(err.status).toBe(402);
    expect(err.errorCode).toBe("edgefleet_budget_exhausted");
    expect(err.type).toBe("billing_error");
    h.transcript.push(String(e));
    // One call reached the proxy (its error data point), none the upstream.
    const pts = await h.pointsAtLeast(sent + 1);
    await new Promise((r) => setTimeout(r, 200));
    expect(pts.slice(sent).filter((p) => p.blobs[3] === "402")).toHaveLength(1);
    expect(h.fake.received).toHaveLength(0);
  });

  it("a body a budget cannot size is refused (400 invalid_request_error) before the upstream: max_tokens missing, a string, absurd; not JSON", async () => {
    const { key } = await h.tenant({ dailyBudgetMicros: 5_000_000 });
    h.fake.reset();
    const bodies: [string, RegExp][] = [
      [JSON.stringify({ model: HAIKU, messages: [{ role: "user", content: "hi" }] }), /^max_tokens: Field required$/],
      // Read as 0 output before: a reservation of nothing for up to 64,000 tokens.
      [body(0).replace('"max_tokens":0', '"max_tokens":"64000"'), /^max_tokens: Input should be a valid integer$/],
      [body(0), /^max_tokens: Input should be greater than or equal to 1$/],
      // Its price overflowed into a 500 (which the SDK retries) before.
      [body(1e15), /^max_tokens: 1000000000000000 is more than this proxy admits/],
      ["{not json", /^the request body is not a JSON object$/],
    ];
    for (const [b, message] of bodies) {
      const r = await h.call("/v1/messages", { key, body: b });
      expect(r.status).toBe(400);
      expect(JSON.parse(r.text).error).toMatchObject({ type: "invalid_request_error", message: expect.stringMatching(message) });
    }
    expect(h.fake.received).toHaveLength(0);
  });

  it("a body that names a key twice is refused for a budgeted tenant (400, before the upstream), and sent as is for one without a budget", async () => {
    const { key } = await h.tenant({ dailyBudgetMicros: 50_000_000 });
    const { key: free } = await h.tenant({ name: "unbudgeted-dup" });
    h.fake.reset();
    // JSON.parse reads the last max_tokens (1) and would reserve one output token; a parser
    // that keeps the first runs the call to 4,000.
    const twice = body(4000).replace(/}$/, ',"max_tokens":1}');
    const escaped = body(4000).replace(/}$/, ',"max\\u005ftokens":1}');
    const nested = body(10).replace('"role":"user"', '"role":"user","role":"assistant"');
    const cases: [string, string][] = [
      [twice, "max_tokens"],
      [escaped, "max_tokens"],
      [nested, "messages[0].role"],
    ];
    for (const [b, path] of cases) {
      const r = await h.call("/v1/messages", { key, body: b });
      expect(r.status).toBe(400);
      expect(JSON.parse(r.text).error).toMatchObject({ type: "invalid_request_error", message: `${path}: this key appears more than once in its object; a tenant with token limits or a spend budget must send each key once` });
    }
    expect(h.fake.received).toHaveLength(0);
    // Nothing was reserved or spent by the refusals: the budget is whole.
    const ok = await h.call("/v1/messages", { key, body: body(10) });
    expect(ok.status).toBe(200);
    // Without a budget the body goes through byte for byte, repeats and all.
    const free1 = await h.call("/v1/messages", { key: free, body: twice });
    expect(free1.status).toBe(200);
    expect(h.fake.received.at(-1)!.body.toString("utf8")).toBe(twice);
  });

  it("a call billed beyond tokens (fast mode, regional inference, web search) is refused for a budgeted tenant (403), allowed for one without a budget", async () => {
    const { key } = await h.tenant({ dailyBudgetMicros: 50_000_000 });
    const { key: free } = await h.tenant({ name: "unbudgeted" });
    h.fake.reset();
    for (const extra of [{ speed: "fast" }, { inference_geo: "us" }, { tools: [{ type: "web_search_20250305", name: "web_search", max_uses: 3 }] }]) {
      const r = await h.call("/v1/messages", { key, body: body(10, extra) });
      expect(r.status).toBe(403);
      expect(JSON.parse(r.text).error).toMatchObject({ type: "permission_error", message: expect.stringMatching(/^this API key has a spend budget; /) });
    }
    expect(h.fake.received).toHaveLength(0);
    const ok = await h.call("/v1/messages", { key: free, body: body(10, { speed: "fast" }) });
    expect(ok.status).toBe(200);
  });

  it("a call whose input its reservation cannot bound (web fetch, MCP servers, a document by URL) is refused for a budgeted tenant (403), allowed for one without a budget", async () => {
    // Before: a web_fetch call reserved ~600 micro-dollars of Haiku and could bring back
    // pages billed as millions of input tokens, far past the budget, from one call.
    const { key } = await h.tenant({ dailyBudgetMicros: 50_000_000 });
    const { key: free } = await h.tenant({ name: "unbudgeted" });
    const unbounded: [Record<string, unknown>, RegExp][] = [
      [{ tools: [{ type: "web_fetch_20260318", name: "web_fetch" }] }, /^this API key has a spend budget; tools: web_fetch_20260318 runs on Anthropic's side inside the call/],
      [{ mcp_servers: [{ type: "url", url: "https://mcp.example/sse", name: "x" }] }, /^this API key has a spend budget; mcp_servers: /],
      [{ messages: [{ role: "user", content: [{ type: "document", source: { type: "url", url: "https://example.com/big.pdf" } }] }] }, /^this API key has a spend budget; messages\[0\]\.content\[0\]: a source fetched by URL/],
    ];
    h.fake.reset();
    for (const [extra, message] of unbounded) {
      const r = await h.call("/v1/messages", { key, body: body(10, extra) });
      expect(r.status).toBe(403);
      expect(JSON.parse(r.text).error).toMatchObject({ type: "permission_error", message: expect.stringMatching(message) });
    }
    // Refused before any upstream call: not even count_tokens.
    expect(h.fake.received).toHaveLength(0);
    const ok = await h.call("/v1/messages", { key: free, body: body(10, unbounded[0]![0]) });
    expect(ok.status).toBe(200);
  });

  it("images: counted first; when count_tokens fails or stalls, 503 (the bytes bound nothing), never a call sized from 200 bytes", async () => {
    const { key } = await h.tenant({ dailyBudgetMicros: 50_000_000 });
    // A Files API image: a few bytes in the body, thousands of tokens.
    const image = body(10, { messages: [{ role: "user", content: [{ type: "image", source: { type: "file", file_id: "file_011CNha8iCJcU1wXNR6q4V8w" } }] }] });
    h.fake.reset();
    h.fake.enqueue({ kind: "json", body: { input_tokens: 1600 } });
    const counted = await h.call("/v1/messages", { key, body: image });
    expect(counted.status).toBe(200);
    expect(h.fake.received.map((q) => q.path)).toEqual(["/v1/messages/count_tokens", "/v1/messages"]);
    // count_tokens overloaded (its own organisation-wide rate limit): refused, not guessed.
    h.fake.reset();
    h.fake.enqueue({ kind: "error", status: 529, type: "overloaded_error", message: "Overloaded" });
    const failed = await h.call("/v1/messages", { key, body: image });
    expect(failed.status).toBe(503);
    expect(JSON.parse(failed.text).error.message).toMatch(/count_tokens did not answer/);
    expect(failed.headers.get("retry-after")).toBe("1");
    expect(h.fake.received.map((q) => q.path)).toEqual(["/v1/messages/count_tokens"]);
    // A count that never answers is given up after COUNT_TIMEOUT_MS, not waited on.
    h.fake.reset();
    h.fake.enqueue({ kind: "hang" });
    const t0 = Date.now();
    const stalled = await h.call("/v1/messages", { key, body: image });
    expect(stalled.status).toBe(503);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(COUNT_TIMEOUT_MS - 100);
    expect(Date.now() - t0).toBeLessThan(COUNT_TIMEOUT_MS + 3000);
  });

  it("a count that refuses the request (a bad file id, an unknown model) is answered as the upstream refused it, not as a 503 to retry", async () => {
    const { key } = await h.tenant({ dailyBudgetMicros: 50_000_000 });
    const image = body(10, { messages: [{ role: "user", content: [{ type: "image", source: { type: "file", file_id: "file_011CNha8iCJcU1wXNR6q4V8w" } }] }] });
    for (const [status, type, message] of [
      [400, "invalid_request_error", "messages.0.content.0.source: file not found"],
      [404, "not_found_error", "model: claude-nope"],
    ] as const) {
      h.fake.reset();
      h.fake.enqueue({ kind: "error", status, type, message });
      const r = await h.call("/v1/messages", { key, body: image });
      expect({ status: r.status, error: JSON.parse(r.text).error }).toEqual({ status, error: { type, message } });
      expect(r.headers.get("retry-after")).toBeNull();
      // The call was not made: the upstream would refuse it alike.
      expect(h.fake.received.map((q) => q.path)).toEqual(["/v1/messages/count_tokens"]);
    }
  });

  it("a tenant without a budget gets no budget headers", async () => {
    const { key } = await h.tenant();
    const r = await h.call("/v1/messages", { key, body: body(10) });
    expect(r.status).toBe(200);
    expect([...r.headers.keys()].filter((k) => k.includes("budget") || k.includes("estimated-cost"))).toEqual([]);
  });
});

describe("budgets when the upstream does not answer", () => {
  let h: Harness;
  // One attempt, headers given 300 ms: a 504 quickly.
  useHarness({ METRICS_SAMPLE_RATE: "0", MAX_RETRIES: "0", HEADERS_TIMEOUT_MS: "300" }, (started) => {
    h = started;
  });

  it("a timeout or a lost connection keeps the whole reservation (the upstream may bill the request); an error answer is charged nothing", async () => {
    const { key, id } = await h.tenant({ dailyBudgetMicros: 50_000_000 });
    h.fake.reset();
    h.fake.enqueue({ kind: "hang" });
    const b = body(1000);
    const timedOut = await h.call("/v1/messages", { key, body: b });
    expect(timedOut.status).toBe(504);
    const reserved = Number(timedOut.headers.get("edgefleet-estimated-cost-micros"));
    expect(reserved).toBe(costBoundMicros(haiku, b.length, 1000, false));
    let s = await settledState(h, id);
    expect(s.daily).toMatchObject({ spent: reserved, reserved: 0 });
    h.fake.enqueue({ kind: "reset" });
    const broken = await h.call("/v1/messages", { key, body: b });
    expect(broken.status).toBe(502);
    s = await settledState(h, id);
    expect(s.daily).toMatchObject({ spent: 2 * reserved, reserved: 0 });
    h.fake.enqueue({ kind: "error", status: 500, type: "api_error", message: "Internal server error" });
    const failed = await h.call("/v1/messages", { key, body: b });
    expect(failed.status).toBe(500);
    s = await settledState(h, id);
    expect(s.daily).toMatchObject({ spent: 2 * reserved, reserved: 0 });
  });
});

describe("budgets with retries on: an attempt the upstream may have billed is not retried", () => {
  let h: Harness;
  useHarness({ METRICS_SAMPLE_RATE: "0", MAX_RETRIES: "2", RETRY_BASE_MS: "1", HEADERS_TIMEOUT_MS: "300", FIRST_EVENT_TIMEOUT_MS: "300" }, (started) => {
    h = started;
  });
  const sent = () => h.fake.received.filter((q) => q.path === "/v1/messages").length;

  it("an attempt the upstream may have billed ends a budgeted call with its reservation kept; one that cannot have been billed is retried", async () => {
    const { key, id } = await h.tenant({ dailyBudgetMicros: 50_000_000 });
    const b = body(1000);
    const bound = costBoundMicros(haiku, b.length, 1000, false);
    let charged = 0;
    // Each: the upstream's behaviour, the status the client gets, the message's start, and
    // the usage event's `no_answer`. The reservation covers one billed attempt: a retry
    // could be billed again beyond it, so the call ends, retryable by the client (its retry
    // is a new call with its own reservation), and keeps its whole reservation.
    const billed: [string, Behaviour, number, RegExp, string][] = [
      // Headers never come: the upstream keeps the request and may bill it.
      ["headers that never come", { kind: "hang" }, 504, /^upstream did not answer in time; it may have been billed/, "timeout"],
      // A 200 answer cut on the way: generated whole, so billed.
      ["a 200 JSON answer cut on the way", { kind: "truncated", body: JSON.stringify(message("cut")), bytes: 20 }, 502, /^the upstream's answer broke off before it was whole; it may have been billed/, "broke_off"],
      // A stream that broke before its first event, or went silent before it.
      ["a 200 stream cut before its first event", { kind: "sse", events: messageEvents(["x"]), resetAfter: 0 }, 502, /^the upstream's answer broke off/, "broke_off"],
      ["a 200 stream silent before its first event", { kind: "sse", events: messageEvents(["x"]), before: () => sleep(1500) }, 504, /^upstream did not answer in time; it may have been billed/, "timeout"],
      // A 200 JSON answer that stalls after its first bytes.
      ["a 200 JSON answer that stalls", { kind: "stall", body: JSON.stringify(message("slow")), bytes: 20 }, 504, /^upstream did not answer in time; it may have been billed/, "timeout"],
      // The connection lost before any answer: a connect failure cannot be told from a
      // request cut while the model generated it, which Anthropic bills.
      ["a connection lost before any answer", { kind: "reset" }, 502, /^upstream unreachable; it may have been billed/, "unreachable"],
    ];
    for (const [what, behaviour, status, message_, noAnswer] of billed) {
      h.fake.reset();
      h.fake.enqueue(behaviour);
      const r = await h.call("/v1/messages", { key, body: b });
      expect(r.status, what).toBe(status);
      expect(JSON.parse(r.text).error.message, what).toMatch(message_);
      expect(r.headers.get("x-should-retry"), what).toBeNull();
      expect(sent(), what).toBe(1);
      charged += bound;
      expect((await settledState(h, id)).daily, what).toMatchObject({ spent: charged, reserved: 0 });
      // The ledger gets the call: no usage (unknown), the requested model, and the
      // reservation the budget kept, so its budget used matches the budget's.
      // (An error answer carries the id as `request-id`, Anthropic's header.)
      const e = await h.eventFor(r.headers.get("request-id")!);
      expect(UsageEventSchema.parse(e), what).toEqual(e);
      expect(e, what).toMatchObject({ tenant: id, status, model: HAIKU, no_answer: noAnswer, budget_micros: bound, usage: { input_tokens: 0, output_tokens: 0 } });
      expect(e, what).not.toHaveProperty("ended");
    }
    // Error answers cannot have been billed: retried within the call and its reservation,
    // and the answer that came settles it at the ledger's cost, priced by the model the
    // answer names. Each: what the upstream did first, and the attempts it took.
    const unbilled: [string, Behaviour[], number][] = [
      ["a 529, then a 500", [{ kind: "error", status: 529, type: "overloaded_error", message: "Overloaded" }, { kind: "error", status: 500, type: "api_error", message: "Internal server error" }], 3],
      // An error answer whose body broke off: retried like a network error.
      ["a 400 whose body broke off", [{ kind: "truncated", status: 400, body: '{"type":"error","error":{"type":"invalid_request_error","message":"messages: too long"}}', bytes: 10 }], 2],
    ];
    for (const [what, behaviours, attempts] of unbilled) {
      h.fake.reset();
      h.fake.enqueue(...behaviours);
      const r = await h.call("/v1/messages", { key, body: b });
      expect(r.status, what).toBe(200);
      expect(sent(), what).toBe(attempts);
      const answer = JSON.parse(r.text) as { model: string; usage: AnthropicUsage };
      charged += ledgerCost(answer.usage, answer.model);
      expect((await settledState(h, id)).daily, what).toMatchObject({ spent: charged, reserved: 0 });
    }
  });

  it("a stream whose first read holds message_start and then an overload is relayed, not retried, for a budgeted call", async () => {
    const { key, id } = await h.tenant({ dailyBudgetMicros: 50_000_000 });
    h.fake.reset();
    // Both events in one write: the proxy reads them together, before answering.
    const started = messageEvents(["x"]).slice(0, 1);
    h.fake.enqueue({ kind: "raw", headers: { "content-type": "text/event-stream; charset=utf-8" }, body: [...started, overloadedEvent].map(frame).join("") });
    const b = body(1000, { stream: true });
    const r = await h.call("/v1/messages", { key, body: b });
    expect(r.status).toBe(200);
    expect(r.text).toBe([...started, overloadedEvent].map(frame).join(""));
    expect(sent()).toBe(1);
    // Settled as cut: its input as reported, and the whole max_tokens of output.
    const s = await settledState(h, id);
    expect(s.daily!.reserved).toBe(0);
    expect(s.daily!.spent).toBeGreaterThanOrEqual(1000 * haiku.output / 1_000_000);
    // Its event is a cut stream whose budget charge (what the ledger keeps beyond the
    // priced usage) is exactly what the budget spent.
    const e = await h.eventFor(r.headers.get("edgefleet-request-id")!);
    expect(e).toMatchObject({ ended: "upstream_error", budget_micros: s.daily!.spent });
    expect(ledgerCost(e.usage as AnthropicUsage, HAIKU)).toBeLessThan(s.daily!.spent);
  });

  it("a tenant that reserves nothing: a stream started and then overloaded is retried, and its event says that attempt may have been billed", async () => {
    const { key } = await h.tenant();
    h.fake.reset();
    const started = messageEvents(["x"]).slice(0, 1);
    h.fake.enqueue({ kind: "raw", headers: { "content-type": "text/event-stream; charset=utf-8" }, body: [...started, overloadedEvent].map(frame).join("") });
    const r = await h.call("/v1/messages", { key, body: body(10, { stream: true }) });
    expect(r.status).toBe(200);
    expect(sent()).toBe(2);
    const e = await h.eventFor(r.headers.get("edgefleet-request-id")!);
    expect(e).toMatchObject({ maybe_billed_attempts: 1 });
    // An overload before any message_start was never billed: retried, and not counted.
    h.fake.reset();
    h.fake.enqueue({ kind: "raw", headers: { "content-type": "text/event-stream; charset=utf-8" }, body: frame(overloadedEvent) });
    const clean = await h.call("/v1/messages", { key, body: body(10, { stream: true }) });
    expect(clean.status).toBe(200);
    expect(sent()).toBe(2);
    expect(await h.eventFor(clean.headers.get("edgefleet-request-id")!)).not.toHaveProperty("maybe_billed_attempts");
  });

  it("a tenant that reserves nothing still has its timed-out attempt retried", async () => {
    const { key } = await h.tenant();
    h.fake.reset();
    h.fake.enqueue({ kind: "hang" });
    const r = await h.call("/v1/messages", { key, body: body(10) });
    expect(r.status).toBe(200);
    expect(sent()).toBe(2);
    // Its event is the answered attempt's, with no budget charge and no `no_answer`, and
    // says the attempt before it may have been billed (Anthropic reported no usage for it).
    const e = await h.eventFor(r.headers.get("edgefleet-request-id")!);
    expect(e).not.toHaveProperty("budget_micros");
    expect(e).not.toHaveProperty("no_answer");
    expect(e).toMatchObject({ maybe_billed_attempts: 1 });
  });

  it("a tenant that reserves nothing, every attempt's 200 answer broken off: 502 saying so, and the ledger has the call and its retried attempts", async () => {
    const { key, id } = await h.tenant();
    h.fake.reset();
    const cut: Behaviour = { kind: "truncated", body: JSON.stringify(message("cut")), bytes: 20 };
    h.fake.enqueue(cut, cut, cut);
    const r = await h.call("/v1/messages", { key, body: body(10) });
    expect(r.status).toBe(502);
    expect(JSON.parse(r.text).error.message).toMatch(/^the upstream's answer broke off before it was whole/);
    expect(sent()).toBe(3);
    const e = await h.eventFor(r.headers.get("request-id")!);
    expect(e).toMatchObject({ tenant: id, status: 502, model: HAIKU, no_answer: "broke_off", maybe_billed_attempts: 2 });
    expect(e).not.toHaveProperty("budget_micros");
  });

  it("a budgeted stream relayed with an overload as its first event (no message started), then broken, is charged nothing", async () => {
    const { key, id } = await h.tenant({ dailyBudgetMicros: 50_000_000 });
    h.fake.reset();
    // Retried while nothing reached the client; the third is relayed, then the upstream breaks.
    const overloaded: Behaviour = { kind: "sse", events: [overloadedEvent, overloadedEvent], resetAfter: 1 };
    h.fake.enqueue(overloaded, overloaded, overloaded);
    const r = await h.call("/v1/messages", { key, body: body(1000, { stream: true }) });
    expect(r.status).toBe(200);
    expect(r.text).toContain("overloaded_error");
    expect(sent()).toBe(3);
    // No message was started, so nothing was generated: not its max_tokens.
    expect((await settledState(h, id)).daily).toMatchObject({ spent: 0, reserved: 0 });
  });

  it("a tenant that reserves nothing, retried after a billable attempt into error answers, still has the attempt in the ledger", async () => {
    const { key, id } = await h.tenant();
    h.fake.reset();
    // Headers that never come (retried), then 500s until the retries run out: the client
    // gets the last 500, which reports no usage; the first attempt may have been billed.
    const e500 = { kind: "error" as const, status: 500, type: "api_error", message: "Internal server error" };
    h.fake.enqueue({ kind: "hang" }, e500, e500);
    const r = await h.call("/v1/messages", { key, body: body(10) });
    expect(r.status).toBe(500);
    expect(sent()).toBe(3);
    // (The upstream's own error answer keeps its request-id; the proxy's is edgefleet-request-id.)
    const e = await h.eventFor(r.headers.get("edgefleet-request-id")!);
    expect(UsageEventSchema.parse(e)).toEqual(e);
    expect(e).toMatchObject({ tenant: id, status: 500, model: HAIKU, maybe_billed_attempts: 1, usage: { input_tokens: 0, output_tokens: 0 } });
    expect(e).not.toHaveProperty("no_answer");
    // An error answer with nothing billable before it sends nothing.
    h.fake.enqueue(e500, e500, e500);
    const plain = await h.call("/v1/messages", { key, body: body(10) });
    expect(plain.status).toBe(500);
    const last = await h.call("/v1/messages", { key, body: body(10) });
    await h.eventFor(last.headers.get("edgefleet-request-id")!);
    expect(h.events.some((x) => x.request_id === plain.headers.get("edgefleet-request-id"))).toBe(false);
  });
});

/** The limiter fails for this tenant (harness.brokenTenant); with `budget`, it has one. */
const brokenTenant = (h: Harness, id: string, budget: boolean) => h.brokenTenant(id, budget ? { dailyBudgetMicros: 5_000_000 } : {});

describe("budgets when the Durable Object fails: BUDGET_FAIL_MODE closed (the default), apart from RATE_LIMIT_FAIL_MODE", () => {
  let h: Harness;
  useHarness({ RATE_LIMIT_FAIL_MODE: "open" }, (started) => {
    h = started;
  });

  it("refuses a budgeted tenant's call (503) while a tenant without a budget is let through", async () => {
    const withBudget = await brokenTenant(h, "t_00000000000000c1", true);
    const without = await brokenTenant(h, "t_00000000000000c2", false);
    h.fake.reset();
    const r = await h.call("/v1/messages", { key: withBudget, body: body(10) });
    expect(r.status).toBe(503);
    expect(JSON.parse(r.text).error).toEqual({ type: "api_error", message: "spend budget check unavailable; try again shortly" });
    expect(r.headers.get("retry-after")).toBe("1");
    expect(h.fake.received).toHaveLength(0);
    expect((await h.call("/v1/messages", { key: without, body: body(10) })).status).toBe(200);
  });
});

describe("budgets when the Durable Object fails: BUDGET_FAIL_MODE open", () => {
  let h: Harness;
  useHarness({ RATE_LIMIT_FAIL_MODE: "open", BUDGET_FAIL_MODE: "open" }, (started) => {
    h = started;
  });

  it("lets the call through unreserved, and logs it", async () => {
    const key = await brokenTenant(h, "t_00000000000000c3", true);
    h.fake.reset();
    const r = await h.call("/v1/messages", { key, body: body(10) });
    expect(r.status).toBe(200);
    expect(h.fake.received).toHaveLength(1);
    await h.pointsAtLeast(1);
    const line = h.logs.map((l) => (l.includes('"requestId"') ? (JSON.parse(l) as Record<string, unknown>) : undefined)).find((l) => l?.status === 200);
    expect(line).toMatchObject({ tenant: "t_00000000000000c3", rateLimiter: "failed_open", budget: "failed_open" });
  });
});

describe("budgets when the Durable Object fails: BUDGET_FAIL_MODE open but RATE_LIMIT_FAIL_MODE closed", () => {
  let h: Harness;
  useHarness({ BUDGET_FAIL_MODE: "open" }, (started) => {
    h = started;
  });

  it("refuses: a call goes through unchecked only when both modes say open", async () => {
    const key = await brokenTenant(h, "t_00000000000000c4", true);
    h.fake.reset();
    const r = await h.call("/v1/messages", { key, body: body(10) });
    expect(r.status).toBe(503);
    expect(JSON.parse(r.text).error.message).toBe("rate limiter unavailable; try again shortly");
    expect(h.fake.received).toHaveLength(0);
  });
});

describe("budgets without a price table (PRICES missing): the fail mode decides, tenants without budgets are untouched", () => {
  let h: Harness;
  useHarness({ PRICES: "" }, (started) => {
    h = started;
  });

  it("503 for a budgeted tenant (closed), 200 for one without a budget", async () => {
    const { key } = await h.tenant({ dailyBudgetMicros: 5_000_000 });
    const { key: plain } = await h.tenant();
    h.fake.reset();
    const r = await h.call("/v1/messages", { key, body: body(10) });
    expect(r.status).toBe(503);
    expect(h.fake.received).toHaveLength(0);
    expect((await h.call("/v1/messages", { key: plain, body: body(10) })).status).toBe(200);
    expect(h.logs.some((l) => l.includes('"budget_unavailable"') && l.includes("PRICES is not set"))).toBe(true);
  });
});

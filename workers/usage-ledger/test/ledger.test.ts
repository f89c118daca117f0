// The usage ledger in workerd: events through the real Queue land as call rows and daily
// rollups with their cost; redeliveries never count twice; what can never be recorded is
// dead-lettered at once; a write that keeps failing is retried and then dead-lettered by
// Queues, leaving nothing half-written; retention deletes old calls and keeps rollups.
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { loadMeteringOrThrow } from "../../../stacks/model/metering.ts";
import { NO_ANSWERS, STREAM_ENDS } from "../../shared/usage-event.ts";
import { MIGRATIONS_DIR } from "../local/miniflare.ts";
import { applyMigrations, splitStatements } from "../local/migrations.ts";
import { event, LedgerHarness } from "./harness.ts";
import { retryBaseSeconds, retryDelaySeconds, transientD1Error } from "../src/d1-retry.ts";
import { D1_MAX_BYTES, purgeCalls, SIZE_WARN_SHARE, sizeWarning } from "../src/retention.ts";
import { deadLetterBody, jsonSafe } from "../src/dead-letter.ts";

const DAY = 86_400_000;
const prices = loadMeteringOrThrow("fleet").prices;

describe("usage ledger", () => {
  let h: LedgerHarness;
  beforeAll(async () => {
    h = await LedgerHarness.start();
  });
  afterAll(() => h?.dispose());
  beforeEach(() => h.reset());

  it("records an event sent through the Queue: the call row, its cost and its day", async () => {
    const e = event({
      ts: Date.UTC(2026, 10, 27, 23, 59, 59, 999) > Date.now() ? Date.now() - 1000 : Date.UTC(2026, 10, 27, 23, 59, 59, 999),
      usage: {
        input_tokens: 1200,
        output_tokens: 800,
        cache_creation_input_tokens: 3000,
        cache_read_input_tokens: 50_000,
        cache_creation: { ephemeral_5m_input_tokens: 1000, ephemeral_1h_input_tokens: 2000 },
        server_tool_use: { web_search_requests: 0 },
        service_tier: "standard",
      },
    });
    await h.send([e]);
    const rows = await h.until(() => h.calls(), (r) => r.length === 1);
    // Sonnet 4.5: 1200 x 3 + 1000 x 3.75 + 2000 x 6 + 50000 x 0.30 + 800 x 15 = 46,350 micro-dollars
    expect(rows[0]).toMatchObject({
      request_id: e.request_id,
      tenant: "acme",
      model: "claude-sonnet-4-5",
      day: new Date(e.ts as number).toISOString().slice(0, 10),
      input_tokens: 1200,
      cache_write_5m_tokens: 1000,
      cache_write_1h_tokens: 2000,
      cache_read_tokens: 50_000,
      output_tokens: 800,
      cost_micros: 46_350,
      priced_as: "claude-sonnet-4-5",
      price_as_of: prices.asOf,
    });
    expect(await h.daily()).toEqual([
      {
        day: rows[0]!.day,
        tenant: "acme",
        model: "claude-sonnet-4-5",
        calls: 1,
        input_tokens: 1200,
        cache_write_5m_tokens: 1000,
        cache_write_1h_tokens: 2000,
        cache_read_tokens: 50_000,
        output_tokens: 800,
        cost_micros: 46_350,
        unknown_model_calls: 0,
        cut_calls: 0,
        no_answer_calls: 0,
        held_micros: 0,
        maybe_billed_attempts: 0,
      },
    ]);
    expect(h.deadLetters).toEqual([]);
  });

  it("rolls calls up per UTC day, tenant and model, equal to the sum of the call rows", async () => {
    const now = Date.now();
    const events = [];
    for (let i = 0; i < 60; i++) {
      events.push(
        event({
          tenant: ["acme", "globex", "initech"][i % 3],
          model: ["claude-sonnet-4-5", "claude-haiku-4-5-20251001", "claude-opus-4-8"][i % 4 === 0 ? 2 : i % 2],
          ts: now - (i % 3) * DAY - i,
          // Every reason the schema knows (i = 0, 7, ... 56 covers all four): the column's CHECK takes each.
          // No answer every 11th (i = 11 ... 55; NO_ANSWERS by i % 3), with zero usage.
          ...(i % 7 === 0 ? { ended: STREAM_ENDS[i % STREAM_ENDS.length] } : i % 11 === 0 && i > 0 ? { no_answer: NO_ANSWERS[i % 3] } : {}),
          // A budget's charge on every 5th: above, equal to or below the priced usage.
          ...(i % 5 === 0 ? { budget_micros: [0, 1_000, 1_000_000][i % 3] } : {}),
          ...(i % 4 === 1 ? { maybe_billed_attempts: 1 + (i % 3) } : {}),
          usage: i % 11 === 0 && i > 0 && i % 7 !== 0 ? { input_tokens: 0, output_tokens: 0 } : { input_tokens: 10 * i, output_tokens: i, cache_read_input_tokens: 7 * i, cache_creation_input_tokens: i, cache_creation: null },
        }),
      );
    }
    await h.send(events);
    const rows = await h.until(() => h.calls(), (r) => r.length === 60);
    expect(rows).toHaveLength(60);
    const sums = await h.db
      .prepare(
        `SELECT day, tenant, model, count(*) AS calls, sum(input_tokens) AS input_tokens, sum(cache_write_5m_tokens) AS cache_write_5m_tokens,
          sum(cache_write_1h_tokens) AS cache_write_1h_tokens, sum(cache_read_tokens) AS cache_read_tokens, sum(output_tokens) AS output_tokens,
          sum(cost_micros) AS cost_micros, sum(priced_as = '*unknown*' AND no_answer IS NULL) AS unknown_model_calls, sum(ended IS NOT NULL) AS cut_calls,
          sum(no_answer IS NOT NULL) AS no_answer_calls, sum(coalesce(budget_micros, cost_micros) - cost_micros) AS held_micros,
          sum(maybe_billed_attempts) AS maybe_billed_attempts
         FROM calls GROUP BY day, tenant, model ORDER BY day, tenant, model`,
      )
      .all();
    const daily = await h.daily();
    expect(daily).toEqual(sums.results);
    expect(new Set(daily.map((d) => d.day)).size).toBe(3);
    expect(daily.reduce((n, d) => n + Number(d.cut_calls), 0)).toBe(9);
    expect(daily.reduce((n, d) => n + Number(d.no_answer_calls), 0)).toBe(5);
    expect(new Set(rows.map((r) => r.no_answer).filter((x) => x !== null))).toEqual(new Set(NO_ANSWERS));
    // held is each charge minus the cost: the $1 charges (i = 5, 20, 35, 50) above it, the
    // charges of 0 and $0.001 below it; cost + held is what the budgets charged.
    const held = daily.reduce((n, d) => n + Number(d.held_micros), 0);
    const byHand = rows.reduce((n, r) => n + (r.budget_micros === null ? 0 : Number(r.budget_micros) - Number(r.cost_micros)), 0);
    expect(held).toBe(byHand);
    expect(held).toBeGreaterThan(3_000_000);
    expect(daily.some((d) => Number(d.held_micros) < 0)).toBe(true);
    const charged = rows.reduce((n, r) => n + Number(r.budget_micros ?? r.cost_micros), 0);
    expect(daily.reduce((n, d) => n + Number(d.cost_micros) + Number(d.held_micros), 0)).toBe(charged);
    // i = 1, 5, ..., 57: 15 calls with 1 + (i % 3) attempts each.
    expect(daily.reduce((n, d) => n + Number(d.maybe_billed_attempts), 0)).toBe(Array.from({ length: 15 }, (_, k) => 1 + ((4 * k + 1) % 3)).reduce((a, b) => a + b, 0));
    expect(new Set(rows.map((r) => r.ended).filter((x) => x !== null))).toEqual(new Set(STREAM_ENDS));
    // A dated model id is priced and rolled up under the id the upstream reported.
    expect(rows.filter((r) => r.model === "claude-haiku-4-5-20251001").every((r) => r.priced_as === "claude-haiku-4-5")).toBe(true);
    // No split: cache writes are priced as 1-hour writes.
    expect(rows.every((r) => r.cache_write_5m_tokens === 0 && r.cache_write_1h_tokens === Number(r.output_tokens))).toBe(true);
  });

  it("counts a redelivered event once, across deliveries and within one batch", async () => {
    const a = event();
    const b = event({ model: "claude-opus-4-8" });
    const first = await h.deliver([{ body: a, id: "x1" }, { body: b, id: "x2" }]);
    expect(first.outcome).toBe("ok");
    expect(first.explicitAcks.sort()).toEqual(["x1", "x2"]);
    const before = await h.daily();
    // The same messages again (Queues' at-least-once redelivery), then a batch holding the
    // same request twice, and one where the duplicate carries different numbers.
    const again = await h.deliver([{ body: a, id: "x1", attempts: 2 }, { body: b, id: "x2", attempts: 2 }]);
    expect(again.explicitAcks.sort()).toEqual(["x1", "x2"]);
    await h.deliver([{ body: a }, { body: a }, { body: { ...b, usage: { input_tokens: 999_999, output_tokens: 999_999 } } }]);
    expect(await h.daily()).toEqual(before);
    expect(before.reduce((n, d) => n + Number(d.calls), 0)).toBe(2);
    expect(await h.calls()).toHaveLength(2);
    // And through the real Queue.
    await h.send([a, b, a]);
    const c = event();
    await h.send([c]);
    await h.until(() => h.calls(), (r) => r.length === 3);
    const after = await h.daily();
    expect(after.reduce((n, d) => n + Number(d.calls), 0)).toBe(3);
  });

  it("keeps why a stream was cut short on its row and counts such calls in the day's rollup, once", async () => {
    const cut = event({ ended: "client_closed", usage: { input_tokens: 500, output_tokens: 1 } });
    const whole = event({ usage: { input_tokens: 500, output_tokens: 300 } });
    await h.deliver([{ body: cut, id: "c1" }, { body: whole, id: "w1" }]);
    // A redelivery of the cut call changes nothing.
    await h.deliver([{ body: cut, id: "c1", attempts: 2 }]);
    const rows = await h.calls();
    expect(rows.find((r) => r.request_id === cut.request_id)).toMatchObject({ ended: "client_closed", output_tokens: 1 });
    expect(rows.find((r) => r.request_id === whole.request_id)).toMatchObject({ ended: null });
    expect(await h.daily()).toEqual([expect.objectContaining({ calls: 2, cut_calls: 1, output_tokens: 301 })]);
    // A reason the schema does not know is refused, not recorded as a complete call.
    const odd = await h.deliver([{ body: { ...event(), ended: "cancelled" }, id: "o1" }]);
    expect(odd.explicitAcks).toEqual(["o1"]);
    await h.until(async () => h.deadLetters.length, (n) => n >= 1);
    expect(h.deadLetters).toEqual([expect.objectContaining({ ended: "cancelled" })]);
    expect(await h.calls()).toHaveLength(2);
  });

  it("dead-letters a body that is not JSON as it came: raw bytes as bytes; a v8 body JSON would change is left to Queues, which dead-letters the original", async () => {
    // Through the real Queue, from a producer that sends other content types: with the
    // ledger's compatibility date a send without one is `json`, and bytes arrived as {}.
    const bytes = [...new TextEncoder().encode(JSON.stringify(event()))];
    await h.sendTyped([{ bytes }, { map: [["request_id", "req_x"], ["v", 1]] }]);
    await h.until(async () => h.deadLetters.length, (n) => n >= 2);
    expect(h.deadLetters).toEqual(expect.arrayContaining([{ $bytes: bytes }, { $map: [["request_id", "req_x"], ["v", 1]] }]));
    expect(h.deadLetters).toHaveLength(2);
    expect(h.logs.some((l) => /cannot be re-sent as it is: left to Queues/.test(l))).toBe(true);
    expect(await h.calls()).toEqual([]);
    // What JSON carries unchanged, and what it does not.
    for (const ok of [null, "s", 0, true, [1, { a: [null] }], Object.create(null)]) expect(jsonSafe(ok)).toBe(true);
    const sparse = [1, , 3]; // eslint-disable-line no-sparse-arrays
    const keyed = Object.assign([1], { extra: 2 });
    for (const bad of [undefined, Number.NaN, Infinity, -0, 1n, new Date(0), new Map(), new Set(), { a: undefined }, [() => 1], { d: new Date(0) }, sparse, keyed]) expect(jsonSafe(bad)).toBe(false);
    let deep: unknown = 1;
    for (let i = 0; i < 70; i++) deep = [deep];
    expect(jsonSafe(deep)).toBe(false);
    // Shared references (what a `v8` body keeps): refused without walking the tree JSON
    // would write out (2^60 nodes here; the walk used to take the consumer's CPU limit).
    let shared: unknown = [1];
    for (let i = 0; i < 60; i++) shared = [shared, shared];
    expect(jsonSafe(shared)).toBe(false);
    const leaf = { a: 1 };
    expect(jsonSafe({ x: leaf, y: leaf })).toBe(false);
    const cycle: Record<string, unknown> = {};
    cycle.self = cycle;
    expect(jsonSafe(cycle)).toBe(false);
    // Equal values in distinct objects are a tree: fine.
    expect(jsonSafe({ x: { a: 1 }, y: { a: 1 }, z: ["s", "s"] })).toBe(true);
    expect(deadLetterBody(new Uint8Array([1]))).toEqual({ body: new Uint8Array([1]), contentType: "bytes" });
    expect(deadLetterBody(new Uint8Array([7, 8]).buffer)).toEqual({ body: new Uint8Array([7, 8]), contentType: "bytes" });
    expect(deadLetterBody({ a: 1 })).toEqual({ body: { a: 1 }, contentType: "json" });
    expect(deadLetterBody(new Map())).toBeUndefined();
  });

  it("records a call with no answer (no cost, not an unknown model) and what a budget charged beyond the usage, once", async () => {
    // The budget kept a timed-out call's whole reservation ($0.0613), and charged a cut
    // stream its max_tokens beyond the output it reported; a complete call was charged its cost.
    const lost = event({ status: 504, model: "unknown", no_answer: "timeout", budget_micros: 61_250, usage: { input_tokens: 0, output_tokens: 0 } });
    const cut = event({ ended: "client_closed", budget_micros: 30_000, usage: { input_tokens: 1000, output_tokens: 1 } });
    const whole = event({ budget_micros: 3_015, usage: { input_tokens: 1000, output_tokens: 1 } });
    const noBudget = event({ status: 502, model: "unknown", no_answer: "unreachable", maybe_billed_attempts: 2, usage: { input_tokens: 0, output_tokens: 0 } });
    await h.deliver([{ body: lost, id: "l" }, { body: cut, id: "c" }, { body: whole, id: "w" }, { body: noBudget, id: "n" }]);
    await h.deliver([{ body: lost, id: "l", attempts: 2 }, { body: cut, id: "c", attempts: 2 }]);
    const rows = await h.calls();
    expect(rows.find((r) => r.request_id === lost.request_id)).toMatchObject({ status: 504, no_answer: "timeout", budget_micros: 61_250, cost_micros: 0, ended: null, priced_as: "*unknown*" });
    expect(rows.find((r) => r.request_id === noBudget.request_id)).toMatchObject({ no_answer: "unreachable", budget_micros: null, cost_micros: 0, maybe_billed_attempts: 2 });
    expect(rows.find((r) => r.request_id === lost.request_id)).toMatchObject({ maybe_billed_attempts: 0 });
    // Sonnet 4.5: 1000 x 3 + 1 x 15 = 3,015 micro-dollars.
    expect(rows.find((r) => r.request_id === cut.request_id)).toMatchObject({ cost_micros: 3_015, budget_micros: 30_000, no_answer: null });
    const daily = await h.daily();
    expect(daily).toEqual([
      expect.objectContaining({ model: "claude-sonnet-4-5", calls: 2, cost_micros: 6_030, cut_calls: 1, no_answer_calls: 0, held_micros: 30_000 - 3_015 }),
      // No answer: counted, costs nothing by usage, and is not "priced by the unknown-model rule".
      expect.objectContaining({ model: "unknown", calls: 2, cost_micros: 0, unknown_model_calls: 0, no_answer_calls: 2, held_micros: 61_250, maybe_billed_attempts: 2 }),
    ]);
    // What the schema refuses is dead-lettered, not recorded as a call with usage.
    const odd = [
      { ...lost, request_id: "req_odd1", usage: { input_tokens: 5, output_tokens: 0 } },
      { ...lost, request_id: "req_odd2", no_answer: "lost" },
      { ...lost, request_id: "req_odd3", budget_micros: -1 },
      { ...lost, request_id: "req_odd4", maybe_billed_attempts: 0 },
      { ...lost, request_id: "req_odd5", maybe_billed_attempts: 1.5 },
    ];
    const r = await h.deliver(odd.map((body, i) => ({ body, id: `o${i}` })));
    expect(r.explicitAcks).toHaveLength(5);
    await h.until(async () => h.deadLetters.length, (n) => n >= 5);
    expect(await h.calls()).toHaveLength(4);
  });

  it("prices a model missing from the table at the table's ceiling and flags it", async () => {
    const e = event({ model: "claude-nonesuch-9", usage: { input_tokens: 1000, output_tokens: 1000 } });
    const r = await h.deliver([{ body: e }]);
    expect(r.explicitAcks).toHaveLength(1);
    const [row] = await h.calls();
    // Ceiling: $10 input + $50 output per MTok -> 1000 x 10 + 1000 x 50 = 60,000 micros.
    expect(row).toMatchObject({ priced_as: "*unknown*", cost_micros: 60_000 });
    expect((await h.daily())[0]).toMatchObject({ model: "claude-nonesuch-9", unknown_model_calls: 1 });
  });

  it("sends what it can never record to the dead-letter queue at once, acked, and records the rest", async () => {
    const good = event();
    const bad: unknown[] = [
      "not an object",
      null,
      { ...event(), v: 2 },
      { ...event(), request_id: "" },
      { ...event(), request_id: "x'); DROP TABLE calls; --" },
      { ...event(), tenant: "a\u001b[2Jb" },
      { ...event(), usage: { input_tokens: -5, output_tokens: 1 } },
      { ...event(), usage: { input_tokens: 1.5, output_tokens: 1 } },
      { ...event(), usage: { input_tokens: 1e12, output_tokens: 1 } },
      { ...event(), usage: { input_tokens: "100", output_tokens: 1 } },
      { ...event(), extra: "field" },
      { ...event(), ["\u001b[31m\u202e" + "k".repeat(5000)]: 1 },
      { ...event(), ts: Date.now() - 91 * DAY },
    ];
    // From the future (a producer's clock 2 h ahead, 1 h past the slack): not refused for
    // good but retried once this clock has passed it, not dead-lettered at once.
    const future = { ...event(), ts: Date.now() + 2 * 3_600_000 };
    const r = await h.deliver([{ body: good, id: "good" }, { body: future, id: "future" }, ...bad.map((body, i) => ({ body, id: `bad${i}` }))]);
    expect(r.outcome).toBe("ok");
    expect(r.retryMessages).toEqual([{ msgId: "future", delaySeconds: 3600 }]);
    expect(h.logs.some((l) => /message future event from the future .*: retried in 3600 s/.test(l))).toBe(true);
    expect(r.explicitAcks.sort()).toEqual(["good", ...bad.map((_, i) => `bad${i}`)].sort());
    await h.until(async () => h.deadLetters.length, (n) => n >= bad.length);
    expect(h.deadLetters).toEqual(bad);
    expect((await h.calls()).map((c) => c.request_id)).toEqual([good.request_id]);
    expect(h.logs.some((l) => /older than the 90-day retention/.test(l))).toBe(true);
    expect(h.logs.join("\n")).not.toContain("DROP TABLE");
    // A key the producer invented is quoted by the schema's reason: escaped and bounded.
    const keyLine = h.logs.find((l) => l.includes("Unrecognized key") && l.includes("kkk"))!;
    expect(keyLine).toContain("\\u001b[31m\\u202e");
    expect(keyLine).not.toMatch(/[\u001b\u202e]/);
    expect(keyLine.length).toBeLessThan(500);
  });

  it("retries an event D1 refuses without holding back the others, also three at the head of a batch", async () => {
    // A trigger makes D1 refuse one tenant's rows (a stand-in for any write error).
    await h.db.exec("CREATE TRIGGER poison BEFORE INSERT ON calls WHEN NEW.tenant = 'poison' BEGIN SELECT RAISE(ABORT, 'poisoned'); END;");
    try {
      const r = await h.deliver([{ body: event(), id: "a" }, { body: event({ tenant: "poison" }), id: "p" }, { body: event(), id: "b" }]);
      expect(r.explicitAcks.sort()).toEqual(["a", "b"]);
      expect(r.retryMessages.map((x) => x.msgId)).toEqual(["p"]);
      expect((await h.calls()).map((c) => c.tenant)).toEqual(["acme", "acme"]);
      expect((await h.daily())[0]).toMatchObject({ tenant: "acme", calls: 2 });
      // A bad event at the head of the batch is still one bad event once another is
      // written: a plain retry (retry_delay), not the growing delay for the whole batch.
      await h.reset();
      const head = await h.deliver([{ body: event({ tenant: "poison" }), id: "p0" }, { body: event({ tenant: "poison" }), id: "p1" }, { body: event(), id: "c" }]);
      expect(head.explicitAcks).toEqual(["c"]);
      expect(head.retryMessages.map((x) => [x.msgId, (x as { delaySeconds?: number }).delaySeconds])).toEqual([["p0", undefined], ["p1", undefined]]);
      // Three bad events at the head: the batch's last event is tried too, and once it is
      // written the good ones behind them are not sent back (nor, in the end, dead-lettered).
      await h.reset();
      const three = await h.deliver([
        ...["q0", "q1", "q2"].map((id) => ({ body: event({ tenant: "poison" }), id })),
        ...["g0", "g1", "g2", "g3"].map((id) => ({ body: event(), id })),
      ]);
      expect(three.explicitAcks.sort()).toEqual(["g0", "g1", "g2", "g3"]);
      expect(three.retryMessages.map((x) => [x.msgId, (x as { delaySeconds?: number }).delaySeconds])).toEqual([["q0", undefined], ["q1", undefined], ["q2", undefined]]);
      expect(await h.calls()).toHaveLength(4);
      expect((await h.daily())[0]).toMatchObject({ tenant: "acme", calls: 4 });
    } finally {
      await h.db.exec("DROP TRIGGER poison;");
    }
  });

  it("a busy D1 (overloaded, reset) sends the batch back after a growing delay, without writing one by one", async () => {
    // The error text D1 gives for a reset object (developers.cloudflare.com/d1/best-practices/retry-queries).
    await h.db.exec("CREATE TRIGGER busy BEFORE INSERT ON calls BEGIN SELECT RAISE(ABORT, 'D1_ERROR: Network connection lost.'); END;");
    try {
      const r = await h.deliver([{ body: event(), id: "a", attempts: 3 }, { body: event(), id: "b", attempts: 1 }]);
      expect(r.explicitAcks).toEqual([]);
      expect(r.retryMessages.map((x) => x.msgId).sort()).toEqual(["a", "b"]);
      // Attempt 3: 120 s with jitter (60-120 s), for both.
      const delays = r.retryMessages.map((x) => (x as { delaySeconds?: number }).delaySeconds);
      expect(delays[0]).toBeGreaterThanOrEqual(60);
      expect(delays[0]).toBeLessThanOrEqual(120);
      expect(delays[1]).toBe(delays[0]);
      expect(h.logs.some((l) => /one by one/.test(l))).toBe(false);
      expect(await h.calls()).toEqual([]);
    } finally {
      await h.db.exec("DROP TRIGGER busy;");
    }
  });

  it("every passing error of D1's error table is retried after a growing delay, never written one by one", async () => {
    // developers.cloudflare.com/d1/observability/debug-d1, "List of D1_ERRORs".
    const table = [
      "D1 DB reset because its code was updated.",
      "Internal error while starting up D1 DB storage caused object to be reset.",
      "Network connection lost.",
      "Internal error in D1 DB storage caused object to be reset.",
      "Cannot resolve D1 DB due to transient issue on remote node.",
      "Can't read from request stream because client disconnected.",
      "D1 DB storage operation exceeded timeout which caused object to be reset.",
      "D1 DB is overloaded. Requests queued for too long.",
      "D1 DB is overloaded. Too many requests queued.",
      "D1 DB's isolate exceeded its memory limit and was reset.",
      "D1 DB exceeded its CPU time limit and was reset.",
    ];
    for (const text of table) expect(transientD1Error(new Error(`D1_ERROR: ${text}`)), text).toBe(true);
    // One of the texts the list lacked before, through the real consumer: a delay, no
    // one-by-one pass. (SQLite's RAISE text: a quote doubled.)
    await h.db.exec("CREATE TRIGGER busy BEFORE INSERT ON calls BEGIN SELECT RAISE(ABORT, 'D1_ERROR: Cannot resolve D1 DB due to transient issue on remote node.'); END;");
    try {
      h.logs.length = 0;
      const r = await h.deliver([{ body: event(), id: "a", attempts: 3 }]);
      expect(r.retryMessages.map((x) => (x as { delaySeconds?: number }).delaySeconds)).toEqual([expect.toSatisfy((d: number) => d >= 60 && d <= 120)]);
      await h.until(async () => h.logs.some((l) => /D1 is busy/.test(l)), (x) => x);
      expect(h.logs.some((l) => /one by one/.test(l))).toBe(false);
    } finally {
      await h.db.exec("DROP TRIGGER busy;");
    }
  });

  it("when every write fails (a ledger ahead of its migration), it stops writing one by one after 3 and sends the rest back after a growing delay", async () => {
    await h.db.exec("CREATE TRIGGER broken BEFORE INSERT ON calls BEGIN SELECT RAISE(ABORT, 'D1_ERROR: no such column: x: SQLITE_ERROR'); END;");
    try {
      h.logs.length = 0;
      const ids = Array.from({ length: 20 }, (_, i) => `m${i}`);
      const r = await h.deliver(ids.map((id) => ({ body: event(), id, attempts: 1 })));
      expect(r.explicitAcks).toEqual([]);
      expect(r.retryMessages.map((x) => x.msgId).sort()).toEqual([...ids].sort());
      // Three tried one by one and the batch's last, the 16 others sent back untried; all
      // 20 with the growing delay (a fixed 30 s would spend the first three's retries in
      // ~5 minutes). (workerd's log lines arrive after the handler returns, in order.)
      await h.until(async () => h.logs.some((l) => /every write is failing/.test(l)), (x) => x);
      expect(h.logs.filter((l) => /write failed for/.test(l))).toHaveLength(4);
      const delays = r.retryMessages.map((x) => (x as { delaySeconds?: number }).delaySeconds);
      expect(delays.every((d) => d !== undefined && d >= 15 && d <= 30)).toBe(true);
      expect(h.logs.some((l) => /every write is failing: the first 3 event\(s\) and the batch's last failed one by one, the other 16 sent back untried/.test(l))).toBe(true);
      // A quiet queue's batches of one or two, every write failing: the growing delay too
      // (a fixed 30 s would dead-letter them in ~5 minutes); a batch of one is not written twice.
      h.logs.length = 0;
      const one = await h.deliver([{ body: event(), id: "solo", attempts: 2 }]);
      expect(one.retryMessages.map((x) => [x.msgId, (x as { delaySeconds?: number }).delaySeconds! >= 30])).toEqual([["solo", true]]);
      const two = await h.deliver([{ body: event(), id: "t1", attempts: 1 }, { body: event(), id: "t2", attempts: 1 }]);
      expect(two.retryMessages.map((x) => (x as { delaySeconds?: number }).delaySeconds !== undefined)).toEqual([true, true]);
      await h.until(async () => h.logs.some((l) => /every write failed: 2 event\(s\) one by one/.test(l)), (x) => x);
      expect(h.logs.filter((l) => /one by one/.test(l) && /writing 1 event/.test(l))).toEqual([]);
    } finally {
      await h.db.exec("DROP TRIGGER broken;");
    }
  });

  it("retry delays for a busy D1: 30 s doubling per attempt up to 10 min, 50-100% of it", () => {
    expect([1, 2, 3, 4, 5, 6, 10].map((a) => retryDelaySeconds(a, 1))).toEqual([30, 60, 120, 240, 480, 600, 600]);
    expect(retryDelaySeconds(1, 0)).toBe(15);
    // WRITE_RETRY_SECONDS: the first step, 0 to 600; anything else is the default 30.
    expect([undefined, "", "x", "-1", "601", "1e2", "0", "600", "45"].map(retryBaseSeconds)).toEqual([30, 30, 30, 30, 30, 30, 0, 600, 45]);
    expect([1, 2, 5].map((a) => retryDelaySeconds(a, 1, 45))).toEqual([45, 90, 600]);
    expect(retryDelaySeconds(4, 1, 0)).toBe(1);
    expect(transientD1Error(new Error("D1_ERROR: D1 DB is overloaded. Too many requests queued."))).toBe(true);
    expect(transientD1Error(new Error("D1_ERROR: no such table: usage_daily: SQLITE_ERROR"))).toBe(false);
  });

  it("retention deletes call rows older than CALL_RETENTION_DAYS and keeps the rollups", async () => {
    const now = Date.now();
    const old = event({ ts: now - 10 * DAY });
    const recent = event({ ts: now - 1 * DAY });
    await h.deliver([{ body: old }, { body: recent }]);
    const daily = await h.daily();
    // 85 days on, the cut-off (90 days back) is 5 days before now: `old` goes, `recent` stays.
    await h.scheduled(now + 85 * DAY);
    expect((await h.calls()).map((c) => c.request_id)).toEqual([recent.request_id]);
    expect(await h.daily()).toEqual(daily);
    // The run reports the database's size as D1 measured it (meta.size_after).
    const line = h.logs.find((l) => /retention deleted 1 call row/.test(l))!;
    expect(line).not.toContain("more are left");
    expect(Number(/database (\d+) bytes/.exec(line)?.[1])).toBeGreaterThan(0);
  });

  it("a purge is bounded per run and says when rows past the cut-off are left for the next", async () => {
    const now = Date.now();
    await h.deliver([0, 1, 2].map((i) => ({ body: event({ ts: now - (10 + i) * DAY }) })));
    // Chunks of 1 row, at most 2 a run: 2 go, 1 is left; the next run takes it.
    const first = await purgeCalls(h.db, now, 1, 2);
    expect(first).toMatchObject({ deleted: 2, more: true });
    expect(first.sizeAfter).toBeGreaterThan(0);
    expect(await purgeCalls(h.db, now, 1, 2)).toMatchObject({ deleted: 1, more: false });
    expect(await h.calls()).toEqual([]);
  });

  it("warns from 80% of D1's 10 GB, naming the retention to lower", () => {
    expect(sizeWarning(0)).toBeUndefined();
    expect(sizeWarning(D1_MAX_BYTES * SIZE_WARN_SHARE - 1)).toBeUndefined();
    const w = sizeWarning(8.5e9)!;
    expect(w).toContain("8.50 GB of D1's 10 GB");
    expect(w).toContain("call_retention_days");
    expect(sizeWarning(Number.NaN)).toBeUndefined();
  });
});

describe("usage ledger when D1 keeps failing (WRITE_RETRY_SECONDS 0: the growing delay's first step is 1 s)", () => {
  let h: LedgerHarness;
  beforeAll(async () => {
    h = await LedgerHarness.start({ vars: { WRITE_RETRY_SECONDS: "0" } });
  });
  afterAll(() => h?.dispose());

  it("leaves nothing half-written and, after max_retries, Queues dead-letters the events", async () => {
    // The rollup table is gone: every call insert succeeds, then its rollup fails, and the
    // transaction must take the call row back with it.
    await h.db.exec("DROP TABLE usage_daily;");
    const events = [event(), event({ tenant: "globex" })];
    await h.send(events);
    await h.until(async () => h.deadLetters.length, (n) => n >= 2);
    expect(h.deadLetters).toHaveLength(2);
    expect(new Set(h.deadLetters.map((d) => (d as { request_id: string }).request_id))).toEqual(new Set(events.map((e) => e.request_id)));
    expect(await h.calls()).toEqual([]);
    // Each write was tried 1 + max_retries (2) times, batched then one by one, and every
    // delivery sent both back with the growing delay (nothing was written).
    expect(h.logs.filter((l) => /write failed for/.test(l)).length).toBe(6);
    expect(h.logs.filter((l) => /every write failed: 2 event\(s\) one by one/.test(l)).length).toBe(3);
  });
});

describe("usage ledger without its inventory vars", () => {
  let h: LedgerHarness;
  beforeAll(async () => {
    h = await LedgerHarness.start({ vars: { PRICES: '{"asOf":"2026-11-27","models":{}}' } });
  });
  afterAll(() => h?.dispose());

  it("fails the whole batch (retried, never acked) rather than drop events it cannot price", async () => {
    const r = await h.deliver([{ body: event(), id: "a" }]);
    expect(r.retryBatch.retry).toBe(true);
    expect(r.explicitAcks).toEqual([]);
    expect(await h.calls()).toEqual([]);
    expect(h.logs.join("\n")).toMatch(/PRICES is not a price table/);
  });
});

describe("D1 migrations", () => {
  it("every migration file splits into plain statements", () => {
    for (const f of readdirSync(MIGRATIONS_DIR).filter((x) => x.endsWith(".sql"))) {
      const sql = readFileSync(join(MIGRATIONS_DIR, f), "utf8");
      const stmts = splitStatements(sql);
      expect(stmts.length).toBeGreaterThan(0);
      for (const s of stmts) expect(s).toMatch(/^(CREATE|ALTER|DROP|INSERT|UPDATE|DELETE) /);
      // No string literal holds a ';' or '--' that the splitter would cut.
      expect(splitStatements(sql).join("\n").match(/'[^']*'/g)?.filter((lit) => /;|--/.test(lit)) ?? []).toEqual([]);
    }
  });

  it("apply once, recorded in wrangler's d1_migrations table", async () => {
    const h = await LedgerHarness.start({ migrate: false });
    try {
      const files = readdirSync(MIGRATIONS_DIR).filter((f) => f.endsWith(".sql")).sort();
      expect(files.slice(0, 3)).toEqual(["0001_calls_and_daily_usage.sql", "0002_cut_streams.sql", "0003_no_answer_and_budget_charges.sql"]);
      expect(await applyMigrations(h.db, MIGRATIONS_DIR)).toEqual(files);
      expect(await applyMigrations(h.db, MIGRATIONS_DIR)).toEqual([]);
      const rows = (await h.db.prepare("SELECT name FROM d1_migrations ORDER BY id").all()).results;
      expect(rows).toEqual(files.map((name) => ({ name })));
    } finally {
      await h.dispose();
    }
  });

  it("0002 is additive: rows written before it keep their numbers, and a ledger of before it still writes after it", async () => {
    const h = await LedgerHarness.start({ migrate: false });
    const only1 = mkdtempSync(join(tmpdir(), "ledger-0001-"));
    try {
      copyFileSync(join(MIGRATIONS_DIR, "0001_calls_and_daily_usage.sql"), join(only1, "0001_calls_and_daily_usage.sql"));
      expect(await applyMigrations(h.db, only1)).toEqual(["0001_calls_and_daily_usage.sql"]);
      // The statements of the ledger before 0002 (no `ended`, no cut_calls).
      const oldInsert = (id: string) =>
        h.db
          .prepare(
            `INSERT INTO calls (request_id, ts, day, tenant, model, status, input_tokens, cache_write_5m_tokens, cache_write_1h_tokens, cache_read_tokens, output_tokens, cost_micros, priced_as, price_as_of, ingest_id, ingested_at)
             VALUES (?1, 0, '2026-11-27', 'acme', 'claude-sonnet-4-5', 200, 10, 0, 0, 0, 5, 105, 'claude-sonnet-4-5', '2026-11-27', ?1, 0)`,
          )
          .bind(id);
      const oldRollup = (id: string) =>
        h.db
          .prepare(
            `INSERT INTO usage_daily (day, tenant, model, calls, input_tokens, cache_write_5m_tokens, cache_write_1h_tokens, cache_read_tokens, output_tokens, cost_micros, unknown_model_calls)
             SELECT day, tenant, model, 1, input_tokens, 0, 0, 0, output_tokens, cost_micros, 0 FROM calls WHERE request_id = ?1
             ON CONFLICT (day, tenant, model) DO UPDATE SET calls = calls + 1, cost_micros = cost_micros + excluded.cost_micros`,
          )
          .bind(id);
      await h.db.batch([oldInsert("r1"), oldRollup("r1")]);
      copyFileSync(join(MIGRATIONS_DIR, "0002_cut_streams.sql"), join(only1, "0002_cut_streams.sql"));
      expect(await applyMigrations(h.db, only1)).toEqual(["0002_cut_streams.sql"]);
      await h.db.batch([oldInsert("r2"), oldRollup("r2")]);
      expect((await h.db.prepare("SELECT request_id, ended, cost_micros FROM calls ORDER BY request_id").all()).results).toEqual([
        { request_id: "r1", ended: null, cost_micros: 105 },
        { request_id: "r2", ended: null, cost_micros: 105 },
      ]);
      expect((await h.db.prepare("SELECT calls, cost_micros, cut_calls FROM usage_daily").all()).results).toEqual([{ calls: 2, cost_micros: 210, cut_calls: 0 }]);
      // The column refuses a reason the schema does not know.
      await expect(h.db.prepare("UPDATE calls SET ended = 'cancelled' WHERE request_id = 'r1'").run()).rejects.toThrow(/CHECK constraint failed/);
    } finally {
      rmSync(only1, { recursive: true, force: true });
      await h.dispose();
    }
  });

  it("0003 is additive: rows written before it keep their numbers, and a ledger of before it still writes after it", async () => {
    const h = await LedgerHarness.start({ migrate: false });
    const upTo2 = mkdtempSync(join(tmpdir(), "ledger-0002-"));
    try {
      for (const f of ["0001_calls_and_daily_usage.sql", "0002_cut_streams.sql"]) copyFileSync(join(MIGRATIONS_DIR, f), join(upTo2, f));
      expect(await applyMigrations(h.db, upTo2)).toEqual(["0001_calls_and_daily_usage.sql", "0002_cut_streams.sql"]);
      // The statements of the ledger before 0003 (with `ended`, without no_answer and budget_micros).
      const oldInsert = (id: string) =>
        h.db
          .prepare(
            `INSERT INTO calls (request_id, ts, day, tenant, model, status, input_tokens, cache_write_5m_tokens, cache_write_1h_tokens, cache_read_tokens, output_tokens, cost_micros, priced_as, price_as_of, ingest_id, ingested_at, ended)
             VALUES (?1, 0, '2026-11-27', 'acme', 'claude-sonnet-4-5', 200, 10, 0, 0, 0, 5, 105, 'claude-sonnet-4-5', '2026-11-27', ?1, 0, 'client_closed')`,
          )
          .bind(id);
      const oldRollup = (id: string) =>
        h.db
          .prepare(
            `INSERT INTO usage_daily (day, tenant, model, calls, input_tokens, cache_write_5m_tokens, cache_write_1h_tokens, cache_read_tokens, output_tokens, cost_micros, unknown_model_calls, cut_calls)
             SELECT day, tenant, model, 1, input_tokens, 0, 0, 0, output_tokens, cost_micros, 0, ended IS NOT NULL FROM calls WHERE request_id = ?1
             ON CONFLICT (day, tenant, model) DO UPDATE SET calls = calls + 1, cost_micros = cost_micros + excluded.cost_micros, cut_calls = cut_calls + excluded.cut_calls`,
          )
          .bind(id);
      await h.db.batch([oldInsert("r1"), oldRollup("r1")]);
      expect(await applyMigrations(h.db, MIGRATIONS_DIR)).toEqual(["0003_no_answer_and_budget_charges.sql"]);
      await h.db.batch([oldInsert("r2"), oldRollup("r2")]);
      expect((await h.db.prepare("SELECT request_id, ended, no_answer, budget_micros, cost_micros FROM calls ORDER BY request_id").all()).results).toEqual([
        { request_id: "r1", ended: "client_closed", no_answer: null, budget_micros: null, cost_micros: 105 },
        { request_id: "r2", ended: "client_closed", no_answer: null, budget_micros: null, cost_micros: 105 },
      ]);
      expect((await h.db.prepare("SELECT calls, cost_micros, cut_calls, no_answer_calls, held_micros, maybe_billed_attempts FROM usage_daily").all()).results).toEqual([
        { calls: 2, cost_micros: 210, cut_calls: 2, no_answer_calls: 0, held_micros: 0, maybe_billed_attempts: 0 },
      ]);
      // The columns refuse what the schema does not take.
      await expect(h.db.prepare("UPDATE calls SET no_answer = 'lost' WHERE request_id = 'r1'").run()).rejects.toThrow(/CHECK constraint failed/);
      await expect(h.db.prepare("UPDATE calls SET budget_micros = -1 WHERE request_id = 'r1'").run()).rejects.toThrow(/CHECK constraint failed/);
      await expect(h.db.prepare("UPDATE calls SET maybe_billed_attempts = -1 WHERE request_id = 'r1'").run()).rejects.toThrow(/CHECK constraint failed/);
      expect((await h.db.prepare("SELECT maybe_billed_attempts FROM calls").all()).results).toEqual([{ maybe_billed_attempts: 0 }, { maybe_billed_attempts: 0 }]);
    } finally {
      rmSync(upTo2, { recursive: true, force: true });
      await h.dispose();
    }
  });
});

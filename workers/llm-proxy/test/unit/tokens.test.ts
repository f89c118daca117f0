// Unit tests (Node) of the token limits' pure parts: the Durable Object's admission
// arithmetic, isolates' leases and settles under concurrency (exactness, and how few
// Durable Object calls they need), the reservation estimate, client addresses, the LRU.
import { describe, expect, it } from "vitest";
import { clientAddress } from "../../src/policy/auth.ts";
import { LocalLimits, rateLimit, settleTokens } from "../../src/policy/rate-limit.ts";
import { admit, giveBack, type Bucket, type TakeResult, type TokenAsk, type TokenBuckets, type TokenLimits, type Tokens } from "../../src/policy/token-bucket.ts";
import { countTokensBody, estimateFromBody, fromCount, TOOLS_OVERHEAD_TOKENS, unpriced, usedTokens } from "../../src/policy/token-estimate.ts";
import { Lru } from "../../src/tenant-cache.ts";

const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v)).buffer as ArrayBuffer;

/** The Durable Object: admit()/giveBack() on one state, one call at a time, on a test clock. */
function durableObject(rate: number, burst: number, clock: { now: number }) {
  let requests: Bucket | undefined;
  let tokens: TokenBuckets = {};
  let calls = 0;
  let settles = 0;
  const take = async (leaseCap: number, ask?: TokenAsk): Promise<TakeResult> => {
    calls++;
    await new Promise((r) => setImmediate(r));
    const r = admit({ requests, tokens }, clock.now, rate, burst, leaseCap, ask ?? { limits: { inputPerMinute: 0, outputPerMinute: 0 }, want: { input: 0, output: 0 }, give: { requests: 0, input: 0, output: 0 } });
    requests = r.requests;
    tokens = { ...tokens, ...r.tokens };
    return r.result;
  };
  const settle = async (limits: TokenLimits, give: Tokens) => {
    settles++;
    await new Promise((r) => setImmediate(r));
    tokens = giveBack(tokens, clock.now, limits, give);
  };
  return { take, settle, calls: () => calls, settles: () => settles, level: () => tokens };
}

describe("admission with token limits (the Durable Object's arithmetic)", () => {
  const limits = { inputPerMinute: 1000, outputPerMinute: 500 };
  const none = { requests: 0, input: 0, output: 0 };

  it("takes a request and the reservation all or nothing, and says which limit refused", () => {
    let s = admit({ tokens: {} }, 0, 6000, 100, 0, { limits, want: { input: 600, output: 100 }, give: none });
    expect(s.result).toMatchObject({ allowed: true, granted: 1 });
    expect(s.result.tokens).toMatchObject({ granted: { input: 600, output: 100 }, remaining: { input: 400, output: 400 }, limit: { input: 1000, output: 500 } });
    s = admit({ requests: s.requests, tokens: s.tokens }, 0, 6000, 100, 0, { limits, want: { input: 600, output: 100 }, give: none });
    expect(s.result).toMatchObject({ allowed: false, limited: ["input_tokens"], granted: 0 });
    // Nothing was taken by the refused call: requests and output are as before.
    expect(s.requests.tokens).toBe(99);
    expect(s.tokens.output!.tokens).toBe(400);
    // 200 input tokens short at 1000/min: 12 s.
    expect(s.result.retryAfterMs).toBe(12_000);
    // A reservation above the limit can never be admitted.
    const big = admit({ tokens: {} }, 0, 6000, 100, 0, { limits, want: { input: 10, output: 501 }, give: none });
    expect(big.result).toMatchObject({ allowed: false, limited: ["output_tokens"], impossible: true });
  });

  it("gives back first (refunds, unspent leases), never above the limit; a charge can go below zero", () => {
    const s = admit({ tokens: { input: { tokens: 0, updatedMs: 0 } } }, 0, 6000, 100, 0, { limits, want: { input: 300, output: 0 }, give: { requests: 0, input: 5000, output: 0 } });
    expect(s.result.allowed).toBe(true);
    expect(s.tokens.input!.tokens).toBe(700);
    const charged = giveBack(s.tokens, 0, limits, { input: -1500, output: 0 });
    expect(charged.input!.tokens).toBe(-800);
    // Refills from below zero at the rate: 48 s later 0 again.
    expect(giveBack(charged, 48_000, limits, { input: 0, output: 0 }).input!.tokens).toBeCloseTo(0);
  });

  it("a lease brings whole extra reservations, at most 1/16 of each token bucket", () => {
    const s = admit({ tokens: {} }, 0, 6_000_000, 1_000_000, 32, { limits: { inputPerMinute: 1_000_000, outputPerMinute: 0 }, want: { input: 1000, output: 0 }, give: none });
    // (1e6 - 1000) / 16 / 1000 = 62 reservations fit; the request lease caps it at 32.
    expect(s.result.granted).toBe(33);
    expect(s.result.tokens!.granted.input).toBe(33_000);
    const small = admit({ tokens: {} }, 0, 6_000_000, 1_000_000, 32, { limits: { inputPerMinute: 20_000, outputPerMinute: 0 }, want: { input: 1000, output: 0 }, give: none });
    expect(small.result.granted).toBe(2); // floor(19000 / 16 / 1000) = 1 more
  });
});

describe("token limits across isolates: exact under concurrency, few Durable Object calls", () => {
  it("never admits more output than the limit, with leases, top-ups and several isolates (frozen clock)", async () => {
    for (const isolates of [1, 3]) {
      const clock = { now: 1_000 };
      const dobj = durableObject(6_000_000, 1_000_000, clock);
      const limits = { inputPerMinute: 0, outputPerMinute: 100_000 };
      const locals = Array.from({ length: isolates }, () => new LocalLimits());
      const bg: Promise<unknown>[] = [];
      const verdicts = await Promise.all(
        Array.from({ length: 2000 }, (_, i) =>
          rateLimit("t", dobj.take, locals[i % isolates]!, () => clock.now, false, 1000, (p) => void bg.push(p), { limits, want: { input: 0, output: 100 } }),
        ),
      );
      await Promise.all(bg);
      const admitted = verdicts.filter((v) => v.ok).length;
      // 100,000 / 100 = 1000 calls fit; unspent leases may refuse a few early, never admit late.
      expect(admitted).toBeLessThanOrEqual(1000);
      if (isolates === 1) expect(admitted).toBe(1000);
      expect(verdicts.filter((v) => !v.ok).every((v) => !v.ok && v.status === 429 && v.limited.includes("output_tokens"))).toBe(true);
    }
  });

  it("a busy tenant's calls ride on leases: one Durable Object call per many requests, settles off the path", async () => {
    const clock = { now: 0 };
    const dobj = durableObject(6_000_000, 1_000_000, clock);
    const limits = { inputPerMinute: 10_000_000, outputPerMinute: 10_000_000 };
    const local = new LocalLimits();
    const want = { input: 2000, output: 1000 };
    let admitted = 0;
    for (let i = 0; i < 500; i++) {
      const bg: Promise<unknown>[] = [];
      const v = await rateLimit("t", dobj.take, local, () => clock.now, false, 1000, (p) => void bg.push(p), { limits, want });
      if (v.ok) {
        admitted++;
        // Used 300 of 2000 input and 50 of 1000 output: the difference returns to the lease.
        settleTokens("t", local, clock.now, v.reserved, { input: 300, output: 50 }, (g) => dobj.settle(limits, g), (p) => void bg.push(p));
      }
      await Promise.all(bg);
      clock.now += 1;
    }
    expect(admitted).toBe(500);
    // No settle reached the Durable Object while a lease was alive, and admissions needed
    // far fewer calls than requests (a call per request would be 500).
    expect(dobj.settles()).toBe(0);
    expect(dobj.calls()).toBeLessThan(60);
  });

  it("a settle with no live lease is sent in the background; what was given back can be spent again", async () => {
    const clock = { now: 0 };
    const dobj = durableObject(60, 10, clock); // slow: no request leases
    const limits = { inputPerMinute: 0, outputPerMinute: 1000 };
    const local = new LocalLimits();
    const v = await rateLimit("t", dobj.take, local, () => clock.now, false, 1000, undefined, { limits, want: { input: 0, output: 900 } });
    expect(v.ok).toBe(true);
    const refused = await rateLimit("t", dobj.take, local, () => clock.now, false, 1000, undefined, { limits, want: { input: 0, output: 900 } });
    expect(refused).toMatchObject({ ok: false, limited: ["output_tokens"] });
    const bg: Promise<unknown>[] = [];
    settleTokens("t", local, clock.now, v.ok ? v.reserved : { input: 0, output: 0 }, { input: 0, output: 20 }, (g) => dobj.settle(limits, g), (p) => void bg.push(p));
    expect(bg).toHaveLength(1);
    await Promise.all(bg);
    expect(dobj.level().output!.tokens).toBe(980);
    expect((await rateLimit("t", dobj.take, local, () => clock.now, false, 1000, undefined, { limits, want: { input: 0, output: 900 } })).ok).toBe(true);
  });
});

describe("the reservation estimate", () => {
  it("input: body bytes (1 byte a token bounds text), plus the tool-use overhead; output: max_tokens", () => {
    const b = { model: "m", max_tokens: 256, messages: [{ role: "user", content: "héllo wörld" }] };
    const e = estimateFromBody(enc(b));
    expect(e).toMatchObject({ input: enc(b).byteLength, output: 256, needsCount: false });
    // UTF-8 bytes, not characters: a multi-byte character is still at most one token a byte.
    expect(e.input).toBeGreaterThan(JSON.stringify(b).length);
    const t = estimateFromBody(enc({ ...b, tools: [{ name: "x", input_schema: { type: "object" } }] }));
    expect(t.input).toBe(enc({ ...b, tools: [{ name: "x", input_schema: { type: "object" } }] }).byteLength + TOOLS_OVERHEAD_TOKENS);
    expect(estimateFromBody(new TextEncoder().encode("not json").buffer as ArrayBuffer)).toMatchObject({ input: 8, output: 0 });
    expect(estimateFromBody(enc({ ...b, max_tokens: "many" })).output).toBe(0);
  });

  it("content whose bytes bound nothing must be counted: images, documents, url/file sources, MCP servers", () => {
    const msg = (content: unknown) => enc({ model: "m", max_tokens: 5, messages: [{ role: "user", content }] });
    expect(estimateFromBody(msg([{ type: "text", text: "x" }])).needsCount).toBe(false);
    expect(estimateFromBody(msg([{ type: "image", source: { type: "url", url: "https://x/y.png" } }])).needsCount).toBe(true);
    expect(estimateFromBody(msg([{ type: "document", source: { type: "file", file_id: "f" } }])).needsCount).toBe(true);
    expect(estimateFromBody(msg([{ type: "tool_result", tool_use_id: "t", content: [{ type: "image", source: {} }] }])).needsCount).toBe(true);
    expect(estimateFromBody(enc({ model: "m", max_tokens: 5, messages: [], mcp_servers: [{}] })).needsCount).toBe(true);
    // Anthropic-defined tools bring prompts of their own; custom ones are in the body.
    const tools = (t: unknown[]) => enc({ model: "m", max_tokens: 5, messages: [], tools: t });
    expect(estimateFromBody(tools([{ name: "f", input_schema: {} }, { type: "custom", name: "g", input_schema: {} }])).needsCount).toBe(false);
    expect(estimateFromBody(tools([{ type: "computer_20250124", name: "computer", display_width_px: 1024, display_height_px: 768 }])).needsCount).toBe(true);
    expect(estimateFromBody(tools([{ type: "text_editor_20250728", name: "str_replace_based_edit_tool" }])).needsCount).toBe(true);
    // count_tokens gets the MCP servers too (their tools are what it counts).
    expect(JSON.parse(countTokensBody({ model: "m", messages: [], mcp_servers: [{ type: "url", url: "https://mcp.example", name: "x" }] }))).toHaveProperty("mcp_servers");
  });

  it("what a budget cannot price: fast mode, regional inference, tools billed per use", () => {
    expect(unpriced({ model: "m", max_tokens: 5, messages: [] })).toBeUndefined();
    // Tools the client runs: one sampling over counted input.
    const clientTools = [{ name: "f" }, { type: "custom", name: "g" }, { type: "bash_20250124", name: "bash" }, { type: "text_editor_20250728", name: "str_replace_based_edit_tool" }, { type: "computer_20250124", name: "computer" }, { type: "memory_20250818", name: "memory" }, { type: "browser_toolset_20260801" }, { type: "computer_toolset_20260801" }];
    expect(unpriced({ speed: "standard", inference_geo: "global", tools: clientTools, mcp_servers: [] })).toBeUndefined();
    // Inline sources are counted as they are sent: base64, a Files API file, text.
    const inline = [{ type: "image", source: { type: "base64", media_type: "image/png", data: "iVBORw0KGgo=" } }, { type: "document", source: { type: "file", file_id: "file_1" } }, { type: "document", source: { type: "text", media_type: "text/plain", data: "x" } }];
    expect(unpriced({ messages: [{ role: "user", content: inline }] })).toBeUndefined();
    expect(unpriced({ speed: null, inference_geo: null })).toBeUndefined();
    expect(unpriced({ speed: "fast" })).toMatch(/^speed: "fast" is billed at a premium/);
    expect(unpriced({ inference_geo: "us" })).toMatch(/^inference_geo: "us" is billed at a premium/);
    expect(unpriced({ tools: [{ type: "web_search_20250305", name: "web_search", max_uses: 5 }] })).toMatch(/^tools: web_search_20250305 is billed per use/);
    expect(unpriced({ tools: [{ type: "code_execution_20250825", name: "code_execution" }] })).toMatch(/^tools: code_execution_20250825/);
  });

  it("beta fields a budget cannot reserve for or settle: fallbacks (another model, its own max_tokens), compaction (billed outside the top-level usage)", () => {
    expect(unpriced({ fallbacks: [{ model: "claude-fable-5-1", max_tokens: 128000, speed: "fast" }] })).toMatch(/^fallbacks: a fallback may call another model/);
    expect(unpriced({ fallbacks: "default" })).toMatch(/^fallbacks:/);
    expect(unpriced({ compaction: { trigger: { type: "input_tokens", value: 150000 } } })).toMatch(/^compaction: the summarising request's tokens/);
    expect(unpriced({ context_management: { edits: [{ type: "clear_tool_uses_20250919" }, { type: "compact_20260112" }] } })).toMatch(/^context_management: a compact edit/);
    // What asks for nothing, or only clears context, passes.
    expect(unpriced({ fallbacks: null, compaction: null, context_management: { edits: [{ type: "clear_tool_uses_20250919" }, { type: "clear_thinking_20251015" }] } })).toBeUndefined();
    expect(unpriced({ fallbacks: [] })).toBeUndefined();
    // count_tokens is sent output_format too (a 50 KB schema is input the near-budget count must see).
    expect(JSON.parse(countTokensBody({ model: "m", messages: [], output_format: { type: "json_schema", schema: { type: "object" } } }))).toHaveProperty("output_format");
  });

  it("what a reservation cannot bound: server-run tools (web fetch, tool search, any unknown type), MCP servers, sources fetched by URL", () => {
    for (const type of ["web_fetch_20250910", "web_fetch_20260318", "tool_search_tool_regex_20251119", "tool_search_tool_bm25", "some_future_tool_20270101"]) {
      expect(unpriced({ tools: [{ name: "f" }, { type, name: "x" }] }), type).toBe(`tools: ${type} runs on Anthropic's side inside the call, and what it brings back is billed as input tokens the spend budget cannot bound`);
    }
    // A type that is not a string, or not printable, is refused and never echoed raw.
    expect(unpriced({ tools: [{ type: 5 }] })).toMatch(/^tools: 5 runs on Anthropic's side/);
    expect(unpriced({ tools: [{ type: "x\u001b[31m\u202e" }] })).not.toMatch(/[\u0000-\u001f\u202e]/);
    expect(unpriced({ mcp_servers: [{ type: "url", url: "https://mcp.example", name: "x" }] })).toMatch(/^mcp_servers: the MCP connector calls their tools on Anthropic's side/);
    const byUrl = (block: object) => unpriced({ messages: [{ role: "user", content: "hi" }, { role: "user", content: [{ type: "text", text: "see" }, block] }] });
    expect(byUrl({ type: "image", source: { type: "url", url: "https://example.com/a.png" } })).toBe(
      "messages[1].content[1]: a source fetched by URL is fetched again by the call after it was counted, so its size cannot be bounded beforehand; send it as base64 or as a Files API file_id",
    );
    expect(byUrl({ type: "document", source: { type: "url", url: "https://example.com/a.pdf" } })).toMatch(/^messages\[1\]\.content\[1\]: a source fetched by URL/);
    // Inside a tool result too, and in a document whose source is content blocks (the
    // SDK's ContentBlockSource), at the top level or in a tool result.
    expect(byUrl({ type: "tool_result", tool_use_id: "t1", content: [{ type: "text", text: "ok" }, { type: "image", source: { type: "url", url: "https://example.com/b.png" } }] })).toMatch(/^messages\[1\]\.content\[1\]\.content\[1\]: a source fetched by URL/);
    const doc = { type: "document", source: { type: "content", content: [{ type: "text", text: "page" }, { type: "image", source: { type: "url", url: "https://example.com/c.png" } }] } };
    expect(byUrl(doc)).toMatch(/^messages\[1\]\.content\[1\]\.source\.content\[1\]: a source fetched by URL/);
    expect(byUrl({ type: "tool_result", tool_use_id: "t2", content: [doc] })).toMatch(/^messages\[1\]\.content\[1\]\.content\[0\]\.source\.content\[1\]: a source fetched by URL/);
    // A web fetch result from an earlier turn: its content is one block (an object), and
    // that document's source a URL.
    expect(byUrl({ type: "web_fetch_tool_result", tool_use_id: "srvtoolu_1", content: { type: "web_fetch_result", url: "https://example.com/d.pdf", content: { type: "document", source: { type: "url", url: "https://example.com/d.pdf" } } } })).toMatch(
      /^messages\[1\]\.content\[1\]\.content\.content: a source fetched by URL/,
    );
    // A tool call's input is the tenant's own data, never followed.
    expect(byUrl({ type: "tool_use", id: "t", name: "f", input: { content: [{ source: { type: "url", url: "https://example.com/e" } }] } })).toBeUndefined();
    // The same document with an inline image passes.
    expect(byUrl({ type: "document", source: { type: "content", content: [{ type: "image", source: { type: "base64", media_type: "image/png", data: "iVBORw0KGgo=" } }] } })).toBeUndefined();
    // Nesting past any real body's is refused, not walked without end.
    let deep: object = { type: "text", text: "x" };
    for (let i = 0; i < 40; i++) deep = { type: "tool_result", tool_use_id: "t", content: [deep] };
    expect(byUrl(deep)).toMatch(/content nested deeper than 16 levels$/);
  });

  it("count_tokens gets the counted fields only, and its answer gets a margin", () => {
    const body = { model: "m", max_tokens: 5, stream: true, temperature: 1, system: "s", messages: [], tools: [], metadata: {} };
    expect(Object.keys(JSON.parse(countTokensBody(body))).sort()).toEqual(["messages", "model", "system", "tools"]);
    expect(fromCount(1000)).toBe(1066);
  });

  it("settles input as uncached + cache writes (cache reads are free); a cut stream keeps its output reservation", () => {
    const u = { inputTokens: 10, outputTokens: 7, cacheCreationTokens: 30, cacheReadTokens: 100_000 };
    expect(usedTokens(u, { input: 500, output: 900 }, false)).toEqual({ input: 40, output: 7 });
    expect(usedTokens(u, { input: 500, output: 900 }, true)).toEqual({ input: 40, output: 900 });
  });
});

describe("auth helpers", () => {
  it("counts IPv4 by address, IPv6 by /64, and no address as 'unknown'", () => {
    const a = (ip?: string) => clientAddress(new Headers(ip === undefined ? {} : { "cf-connecting-ip": ip }));
    expect(a("203.0.113.9")).toBe("203.0.113.9");
    expect(a("2001:db8:1:2::1")).toBe("2001:db8:1:2::/64");
    expect(a("2001:0db8:0001:0002:ffff:ffff:ffff:ffff")).toBe("2001:db8:1:2::/64");
    expect(a("2001:db8::1")).toBe("2001:db8:0:0::/64");
    expect(a("::ffff:198.51.100.4")).toBe("198.51.100.4");
    expect(a()).toBe("unknown");
  });

  it("the tenant cache is an LRU with expiry", () => {
    const c = new Lru<number>(2);
    c.set("a", 1, 1000, 0);
    c.set("b", 2, 1000, 0);
    expect(c.get("a", 1)).toBe(1); // a is now the most recent
    c.set("c", 3, 1000, 1);
    expect([c.get("a", 2), c.get("b", 2), c.get("c", 2)]).toEqual([1, undefined, 3]);
    expect(c.get("a", 1001)).toBeUndefined();
    expect(c.size).toBe(1);
  });
});

// The deadline on the tenant's Durable Object, in workerd (the unit tests run it in Node,
// where nothing cancels a promise): a call whose object answers past LIMITER_DEADLINE_MS
// gets its fail mode; the object call is kept alive in ctx.waitUntil, so its late grant
// becomes the isolate's lease instead of being lost (workerd cancels a subrequest its
// request no longer awaits: the object had then set the grant aside for nothing, and every
// later call of the tenant in the isolate had waited on a call that never settled).
import { buildSync } from "esbuild";
import { Miniflare } from "miniflare";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { LIMITER_DEADLINE_MS } from "../src/policy/rate-limit.ts";

let mf: Miniflare;
let url: URL;

beforeAll(async () => {
  const out = buildSync({ entryPoints: [join(import.meta.dirname, "fixtures/slow-limiter.ts")], bundle: true, format: "esm", write: false, external: ["cloudflare:workers"], platform: "neutral" });
  mf = new Miniflare({
    modules: true,
    script: out.outputFiles[0]!.text,
    compatibilityDate: "2025-04-01",
    durableObjects: { SLOW: "Slow" },
    // Answered 1.5 s past the deadline.
    bindings: { FIRST_TAKE_MS: String(LIMITER_DEADLINE_MS + 1500) },
  });
  url = await mf.ready;
});
afterAll(() => mf.dispose());

it("a call past the deadline gets its fail mode; the object's late grant is kept, and the next calls are served from it", async () => {
  const first = (await (await mf.dispatchFetch(url)).json()) as { ok: boolean; status: number };
  expect(first).toEqual({ ok: false, status: 503 });
  const count = async () => (await (await mf.dispatchFetch(new URL("/count", url))).json()) as { takes: number; answered: boolean };
  // Until the object has answered the first call, and its answer has crossed back.
  for (let i = 0; i < 200 && !(await count()).answered; i++) await new Promise((r) => setTimeout(r, 100));
  await new Promise((r) => setTimeout(r, 500));
  expect(await count()).toEqual({ takes: 1, answered: true });
  for (let i = 0; i < 3; i++) expect(await (await mf.dispatchFetch(url)).json()).toEqual({ ok: true, status: 200 });
  // Served from the late grant's lease: the object was not asked again.
  expect((await count()).takes).toBe(1);
});

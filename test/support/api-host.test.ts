// The one-host router that puts several API fakes behind one base URL: it must not make a
// fake more lenient than it is alone (a header it refuses dropped on the way in, a header
// the client obeys dropped on the way out).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FakeR2ObjectsApi } from "../fakes/cloudflare-r2-objects-api.ts";
import { oneApiHost } from "./api-host.ts";

const TOKEN = "cf-token-router";
const r2 = new FakeR2ObjectsApi({ token: TOKEN, accountId: "acct1" });
const api = oneApiHost([{ when: (p) => p.includes("/r2/"), origin: () => r2.baseURL.replace(/\/client\/v4$/, "") }]);
const list = `/client/v4/accounts/acct1/r2/buckets/b/objects?per_page=10`;

beforeAll(async () => {
  await r2.start();
  await api.start();
  r2.put("b", "k", "body");
});
afterAll(async () => {
  await api.stop();
  await r2.stop();
});

describe("oneApiHost", () => {
  it("passes the request's headers: a global API key is refused through the router as it is by the fake", async () => {
    const ok = await fetch(api.url + list, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(ok.status).toBe(200);
    const global = await fetch(api.url + list, { headers: { authorization: `Bearer ${TOKEN}`, "x-auth-key": "k", "x-auth-email": "e@example.com" } });
    expect(global.status).toBe(403);
    expect(((await global.json()) as { errors: { code: number }[] }).errors[0]!.code).toBe(10000);
  });

  it("passes the answer's headers: a 429's retry-after reaches the client", async () => {
    for (let i = 0; i < 1200; i++) r2.account.arrive(Date.now());
    const limited = await fetch(api.url + list, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(limited.status).toBe(429);
    expect(Number(limited.headers.get("retry-after"))).toBeGreaterThan(200);
  });

  it("answers a path no fake serves as Cloudflare does: 400, code 7000", async () => {
    const r = await fetch(api.url + "/client/v4/zones", { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(r.status).toBe(400);
    expect(((await r.json()) as { errors: { code: number }[] }).errors[0]!.code).toBe(7000);
  });
});

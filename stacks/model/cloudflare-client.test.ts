// cloudflareClient's guards around the SDK's own behaviour, against a loopback server
// that answers as the API does when it limits or fails: the v4 envelope, and for a 429
// the account limit's code and message (RATE_LIMITED, test/support/account-rate-limit.ts,
// which cites them).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { APIError } from "cloudflare";
import { RATE_LIMITED } from "../../test/support/account-rate-limit.ts";
import { LoopbackServer } from "../../test/support/loopback.ts";
import { describeError } from "../../scripts/lib/cloudflare-error.ts";
import { cloudflareClient, MAX_RETRY_AFTER_MS } from "./cloudflare-client.ts";

const TOKEN = "cf-token-0123456789-secret";
let answer: { status: number; headers?: Record<string, string>; message?: (auth: string) => string } = { status: 200 };
let requests = 0;
const server = new LoopbackServer((req, _body, res) => {
  requests++;
  const auth = String(req.headers.authorization ?? "");
  if (answer.status === 200) {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ success: true, errors: [], messages: [], result: { id: "z1", name: "a.example" } }));
    return;
  }
  res.writeHead(answer.status, { "content-type": "application/json", ...answer.headers });
  const error = answer.status === 429 ? { ...RATE_LIMITED } : { code: 10000, message: answer.message?.(auth) ?? "error" };
  res.end(JSON.stringify({ success: false, errors: [error], messages: [], result: null }));
});
beforeAll(() => server.start());
afterAll(() => server.stop());

const call = async (maxRetries = 2, maxRetryAfterMs: number | undefined = MAX_RETRY_AFTER_MS) => {
  requests = 0;
  const cf = cloudflareClient({ apiToken: TOKEN, baseURL: `${server.url}/client/v4`, maxRetries, ...(maxRetryAfterMs !== undefined ? { maxRetryAfterMs } : {}) });
  const started = Date.now();
  try {
    await cf.zones.get({ zone_id: "z1" });
    return { error: undefined, ms: Date.now() - started };
  } catch (e) {
    return { error: e, ms: Date.now() - started };
  }
};

describe("cloudflareClient", () => {
  it("fails at once on a 429 that asks for longer than MAX_RETRY_AFTER_MS, saying how long (the SDK would sleep it out, uncapped)", async () => {
    answer = { status: 429, headers: { "retry-after": String(MAX_RETRY_AFTER_MS / 1000 + 240) } };
    const r = await call();
    expect(requests).toBe(1);
    expect(r.ms).toBeLessThan(MAX_RETRY_AFTER_MS);
    expect(r.error).toBeInstanceOf(APIError);
    expect(describeError(r.error)).toBe(`the Cloudflare API answered 429: 971 ${RATE_LIMITED.message} (it asked to wait 300 s before trying again: the account's API rate limit)`);
  });

  it("still retries a 429 or 5xx that asks for a short wait, as the SDK does; without the cap (batch commands) a long one too", async () => {
    answer = { status: 503, headers: { "retry-after": "0" } };
    await call(2);
    expect(requests).toBe(3);
    // retry-after-ms 0 is not a wait: the SDK then sleeps the retry-after, and so is it judged.
    answer = { status: 429, headers: { "retry-after-ms": "0", "retry-after": "300" } };
    await call(2);
    expect(requests).toBe(1);
    // No cap: the SDK waits what it is told (here 1 s, once).
    answer = { status: 429, headers: { "retry-after": "1" } };
    const r = await call(1, undefined);
    expect(requests).toBe(2);
    expect(r.ms).toBeGreaterThanOrEqual(900);
  });

  it("never lets the token out through an error answer that echoes the Authorization header, nor control characters into the message", async () => {
    answer = { status: 403, message: (auth) => `Authentication error for ${auth} \u001b[2J\u202e` };
    const r = await call();
    const said = describeError(r.error);
    expect(said).not.toContain(TOKEN);
    expect(said).toBe("the Cloudflare API answered 403: 10000 Authentication error for Bearer *** \\u001b[2J\\u202e");
  });

  it("answers a success untouched", async () => {
    answer = { status: 200 };
    const r = await call();
    expect(r.error).toBeUndefined();
  });
});

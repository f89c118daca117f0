// Every Cloudflare API client of edgefleet's tools sends the API token it was given and
// nothing from the environment: the SDK's own constructor would add CLOUDFLARE_API_KEY /
// CLOUDFLARE_EMAIL / CLOUDFLARE_API_USER_SERVICE_KEY beside the token and go to
// CLOUDFLARE_BASE_URL (stacks/model/cloudflare-client.ts).
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { CLOUDFLARE_API_BASE, cloudflareClient } from "../stacks/model/cloudflare-client.ts";
import { openRemoteSource } from "../scripts/lib/usage/remote.ts";
import { openQueues } from "../scripts/lib/dead-letters/queues.ts";
import { FakeD1Api } from "./fakes/cloudflare-d1-api.ts";

describe("Cloudflare API clients take only their token", () => {
  const fake = new FakeD1Api({ token: "tok", accountId: "acct" });
  beforeAll(async () => {
    await fake.start();
    fake.addDatabase("db").exec("CREATE TABLE t (n INTEGER)");
  });
  afterAll(() => fake.stop());
  afterEach(() => vi.unstubAllEnvs());

  const hostileEnv = () => {
    vi.stubEnv("CLOUDFLARE_API_KEY", "global-key-from-the-shell");
    vi.stubEnv("CLOUDFLARE_EMAIL", "ops@example.com");
    vi.stubEnv("CLOUDFLARE_API_USER_SERVICE_KEY", "v1.0-service-key");
    vi.stubEnv("CLOUDFLARE_BASE_URL", "http://127.0.0.1:9/elsewhere");
  };

  it("a global key, email and service key in the environment are never sent", async () => {
    hostileEnv();
    const usage = openRemoteSource({ apiToken: "tok", accountId: "acct", databaseId: "db", baseURL: fake.baseURL });
    await expect(usage.query("SELECT count(*) AS n FROM t", [])).resolves.toEqual([{ n: 0 }]);
    const c = cloudflareClient({ apiToken: "tok", baseURL: fake.baseURL });
    expect([c.apiKey, c.apiEmail, c.userServiceKey, c.apiToken]).toEqual([null, null, null, "tok"]);
  });

  it("CLOUDFLARE_BASE_URL does not redirect a tool: without its own base URL it talks to the real API", () => {
    hostileEnv();
    expect(cloudflareClient({ apiToken: "tok" }).baseURL).toBe(CLOUDFLARE_API_BASE);
    expect(cloudflareClient({ apiToken: "tok", baseURL: undefined }).baseURL).toBe(CLOUDFLARE_API_BASE);
    // The dead-letters tool builds its client the same way.
    expect(() => openQueues({ apiToken: "tok", accountId: "acct" })).not.toThrow();
  });
});

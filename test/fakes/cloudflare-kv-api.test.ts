// The KV fake refuses what Workers KV refuses and shows what KV's caches show (its opening
// comment cites each rule). Through the real `cloudflare` SDK where the publisher uses it.
import Cloudflare from "cloudflare";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { BULK_MAX_BYTES, FakeKvApi, KvError, MAX_VALUE_BYTES } from "./cloudflare-kv-api.ts";

let fake: FakeKvApi;
let client: Cloudflare;
let clock: number;
beforeEach(async () => {
  fake = new FakeKvApi();
  clock = 1_800_000_000_000;
  fake.now = () => clock;
  client = new Cloudflare({ apiToken: fake.token, baseURL: await fake.start(), maxRetries: 0 });
});
afterEach(() => fake.stop());

const put = (body: Cloudflare.KV.Namespaces.NamespaceBulkUpdateParams.Body[]) =>
  client.kv.namespaces.bulkUpdate(fake.namespaceId, { account_id: fake.accountId, body });
const refusal = async (p: Promise<unknown>) => {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(Cloudflare.APIError);
  return e as InstanceType<typeof Cloudflare.APIError>;
};

describe("the fake KV API refuses what KV refuses", () => {
  it("more than 10,000 pairs in one bulk write", async () => {
    const body = Array.from({ length: 10_001 }, (_, i) => ({ key: `k${i}`, value: "v" }));
    expect((await refusal(put(body))).status).toBe(400);
    expect(fake.store.size).toBe(0);
  });

  it("a request body over 100 MB", async () => {
    const res = await fetch(`${client.baseURL}/accounts/${fake.accountId}/storage/kv/namespaces/${fake.namespaceId}/bulk`, {
      method: "PUT",
      headers: { authorization: `Bearer ${fake.token}`, "content-type": "application/json" },
      body: Buffer.alloc(BULK_MAX_BYTES + 1, 0x20),
    });
    expect(res.status).toBe(413);
  });

  it("a key over 512 bytes, and the names '.' and '..'", async () => {
    expect((await refusal(put([{ key: "k".repeat(513), value: "v" }]))).status).toBe(414);
    expect((await refusal(put([{ key: "..", value: "v" }]))).status).toBe(400);
    await put([{ key: "k".repeat(512), value: "v" }]);
    expect(fake.store.size).toBe(1);
  });

  it("a value over 25 MiB", async () => {
    const big = Buffer.alloc(MAX_VALUE_BYTES + 1).toString("base64");
    expect((await refusal(put([{ key: "big", value: big, base64: true }]))).status).toBe(413);
    expect(fake.store.size).toBe(0);
  });

  it("metadata over 1024 bytes", async () => {
    expect((await refusal(put([{ key: "m", value: "v", metadata: { x: "y".repeat(1020) } }]))).status).toBe(413);
    await put([{ key: "m", value: "v", metadata: { x: "y".repeat(1000) } }]);
  });

  it("a second write to one key within a second, with retry-after", async () => {
    await put([{ key: "k", value: "1" }]);
    const e = await refusal(put([{ key: "k", value: "2" }]));
    expect(e.status).toBe(429);
    expect(e.headers?.get("retry-after")).toBe("1");
    clock += 999;
    expect((await refusal(put([{ key: "k", value: "2" }]))).status).toBe(429);
    clock += 1;
    await put([{ key: "k", value: "2" }]);
    expect(fake.store.get("k")!.value.toString()).toBe("2");
  });

  it("more than 100 keys in a bulk get", async () => {
    const keys = Array.from({ length: 101 }, (_, i) => `k${i}`);
    expect((await refusal(client.kv.namespaces.bulkGet(fake.namespaceId, { account_id: fake.accountId, keys }))).status).toBe(400);
  });

  it("a cacheTtl under 60 s on a binding read", () => {
    expect(() => fake.location("x").get("k", 30)).toThrow(KvError);
    expect(fake.location("x").get("k", 60)).toBeNull();
  });

  it("sends its own clock in Date, whatever this machine's clock says", async () => {
    const res = await fetch(`${client.baseURL}/accounts/${fake.accountId}/storage/kv/namespaces/${fake.namespaceId}/keys`, {
      headers: { authorization: `Bearer ${fake.token}` },
    });
    expect(Date.parse(res.headers.get("date")!)).toBe(Math.floor(clock / 1000) * 1000);
  });
});

describe("the fake's locations, as KV's caches behave", () => {
  it("a location sees a write only after its lag", () => {
    fake.seed("k", { value: Buffer.from("v1") });
    const far = fake.location("far", 30_000);
    expect(far.get("k")).toBeNull();
    clock += 30_000;
    // Still the cached miss: negative lookups are cached for the read's cacheTtl too.
    expect(far.get("k")).toBeNull();
    clock += 30_000;
    expect(far.get("k")?.value.toString()).toBe("v1");
  });

  it("keeps a cached miss for a long cacheTtl; a read with the minimum re-checks it after 60 s", () => {
    const loc = fake.location("l", 0);
    expect(loc.get("k", 86400)).toBeNull();
    fake.seed("k", { value: Buffer.from("v") });
    clock += 59_000;
    expect(loc.get("k", 86400)).toBeNull();
    expect(loc.get("k", 60)).toBeNull();
    clock += 1000;
    expect(loc.get("k", 86400)).toBeNull(); // a day-long cacheTtl keeps the miss
    expect(loc.get("k", 60)?.value.toString()).toBe("v");
    expect(loc.get("k", 86400)?.value.toString()).toBe("v");
  });

  it("keeps an old value for the cacheTtl after a change, and a deleted key's value too", () => {
    fake.seed("k", { value: Buffer.from("v1") });
    const loc = fake.location("l", 0);
    expect(loc.get("k")?.value.toString()).toBe("v1");
    fake.seed("k", { value: Buffer.from("v2") });
    clock += 59_999;
    expect(loc.get("k")?.value.toString()).toBe("v1");
    clock += 1;
    expect(loc.get("k")?.value.toString()).toBe("v2");
    fake.seed("k", undefined);
    expect(loc.get("k")?.value.toString()).toBe("v2");
    clock += 60_000;
    expect(loc.get("k")).toBeNull();
  });
});

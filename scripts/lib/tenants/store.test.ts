// The tenant store against a KV whose listing lags its writes, as Cloudflare's does ("Changes
// may take up to 60 seconds to be visible when listing keys"): a command that writes builds
// its write from each key's record read by key, never from the listing's stale metadata, so
// it cannot undo the command before it; and it writes every key's full setting.
import { describe, expect, it } from "vitest";
import { createTenant, setArchive, setLimits, type TenantKv } from "./store.ts";

/** A KV whose list() returns each key's metadata as it was before its last put. */
function laggingKv(): TenantKv & { value: (key: string) => Record<string, unknown> } {
  const values = new Map<string, string>();
  const listed = new Map<string, unknown>();
  const previous = new Map<string, unknown>();
  return {
    async get(key) {
      return values.get(key) ?? null;
    },
    async put(key, value, metadata) {
      if (listed.has(key)) previous.set(key, listed.get(key));
      values.set(key, value);
      listed.set(key, metadata);
    },
    async list(prefix) {
      return [...listed.keys()].filter((k) => k.startsWith(prefix)).map((name) => ({ name, metadata: previous.has(name) ? previous.get(name) : listed.get(name) }));
    },
    value: (key) => JSON.parse(values.get(key)!) as Record<string, unknown>,
  };
}

describe("tenant writes through a lagging KV listing", () => {
  it("an archive opt-out right after an opt-in is written (the listing still showed it off)", async () => {
    const kv = laggingKv();
    const { record } = await createTenant(kv, { name: "Acme" });
    await setArchive(kv, record.id, true, false);
    await setArchive(kv, record.id, false, false);
    const key = (await kv.list("key:"))[0]!.name;
    expect(kv.value(key)).not.toHaveProperty("archive");
  });

  it("a budget just set survives the next command (a stale record written back erased it)", async () => {
    const kv = laggingKv();
    const { record } = await createTenant(kv, { name: "Acme" });
    await setLimits(kv, record.id, { dailyBudgetMicros: 10_000_000 }, false);
    await setArchive(kv, record.id, true, false);
    const key = (await kv.list("key:"))[0]!.name;
    expect(kv.value(key)).toMatchObject({ dailyBudgetMicros: 10_000_000, archive: true });
    // And an opt-out, then a limits change: the opt-out stays.
    await setArchive(kv, record.id, false, false);
    await setLimits(kv, record.id, { ratePerMinute: 30 }, false);
    expect(kv.value(key)).toMatchObject({ dailyBudgetMicros: 10_000_000, ratePerMinute: 30 });
    expect(kv.value(key)).not.toHaveProperty("archive");
  });

  it("a new key of a tenant copies its current setting, not the listing's", async () => {
    const kv = laggingKv();
    const { record } = await createTenant(kv, { name: "Acme" });
    await setArchive(kv, record.id, true, false);
    await setArchive(kv, record.id, false, false);
    const second = await createTenant(kv, { id: record.id });
    expect(second.record).not.toHaveProperty("archive");
  });
});

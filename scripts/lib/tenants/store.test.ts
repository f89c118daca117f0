// The tenant store against a KV whose listing lags its writes, as Cloudflare's does ("Changes
// may take up to 60 seconds to be visible when listing keys"): a command that writes builds
// its write from each key's record read by key, never from the listing's stale metadata, so
// it cannot undo the command before it; and it writes every key's full setting.
import { describe, expect, it } from "vitest";
import { createTenant, disableTenant, listTenants, setArchive, setLimits, PartialWriteError, TenantError, validateNewTenant, type TenantKv } from "./store.ts";

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

/** A KV whose listing is current, and which records what the store warns about. */
function plainKv(): TenantKv & { values: Map<string, { value: string; metadata: unknown }>; warnings: string[] } {
  const values = new Map<string, { value: string; metadata: unknown }>();
  const warnings: string[] = [];
  return {
    values,
    warnings,
    async get(key) {
      return values.get(key)?.value ?? null;
    },
    async put(key, value, metadata) {
      values.set(key, { value, metadata });
    },
    async list(prefix) {
      return [...values].filter(([k]) => k.startsWith(prefix)).map(([name, v]) => ({ name, metadata: v.metadata }));
    },
    warn: (m) => warnings.push(m),
  };
}

describe("a value that is not a tenant record", () => {
  it("is skipped and named, and every command still works for the other tenants (one bad value stopped them all)", async () => {
    const kv = plainKv();
    const { record } = await createTenant(kv, { name: "Acme" });
    // Written by hand or by a broken tool: no metadata, so the store reads each value.
    kv.values.set("key:zzz", { value: "not json", metadata: undefined });
    kv.values.set("key:yyy", { value: '{"id":1}', metadata: undefined });
    expect((await listTenants(kv)).map((r) => r.id)).toEqual([record.id]);
    expect(kv.warnings).toEqual(["key:zzz skipped: its value is not JSON, so not a tenant record", "key:yyy skipped: its value is not a valid tenant record"]);
    await setLimits(kv, record.id, { ratePerMinute: 30 }, false);
    await setArchive(kv, record.id, true, false);
    expect((await createTenant(kv, { id: record.id })).record).toMatchObject({ id: record.id, ratePerMinute: 30, archive: true });
    // The emergency stop above all.
    expect((await disableTenant(kv, record.id, false)).changed).toHaveLength(2);
    expect(kv.values.get("key:zzz")!.value).toBe("not json");
  });

  it("is never rebuilt from the listing's metadata: written back, it would bring a key the Worker refuses back to life", async () => {
    const kv = plainKv();
    const { record } = await createTenant(kv, { name: "Acme" });
    kv.values.set("key:xxx", { value: "{broken", metadata: { ...record, keyHash: "xxx" } });
    const r = await setLimits(kv, record.id, { ratePerMinute: 30 }, false);
    expect(r.keys).toBe(1);
    expect(kv.values.get("key:xxx")!.value).toBe("{broken");
    expect(kv.warnings).toEqual(["key:xxx skipped: its value is not JSON, so not a tenant record"]);
  });
});

describe("a new tenant's name", () => {
  it("may not hold control or bidirectional characters (tenants list and usage print it)", async () => {
    for (const name of ["evil\u001b[2J", "\u202eemca", "a\u0085b", "line\u2028break", "tab\there", "x\u2066y"]) {
      expect(validateNewTenant({ name }), JSON.stringify(name)).toContain("--name: must not contain control or bidirectional characters");
      const kv = plainKv();
      await expect(createTenant(kv, { name })).rejects.toThrow(TenantError);
      expect(kv.values.size).toBe(0);
    }
    expect(validateNewTenant({ name: "  Ünïcødé 株式会社 (prod)  " })).toEqual([]);
  });
});

describe("a write that fails part-way through a tenant's keys", () => {
  it("says how many keys were written, and running the command again finishes the job", async () => {
    const kv = plainKv();
    const { record } = await createTenant(kv, { name: "Acme", ratePerMinute: 60 });
    for (let i = 0; i < 2; i++) await createTenant(kv, { id: record.id });
    // The store fails on the second write of the next command.
    const put = kv.put.bind(kv);
    let puts = 0;
    kv.put = async (key, value, metadata) => {
      if (++puts === 2) throw new Error("KV unavailable");
      return put(key, value, metadata);
    };
    const e = await setLimits(kv, record.id, { ratePerMinute: 600 }, false).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(PartialWriteError);
    expect((e as PartialWriteError).message).toBe("wrote 1 of the tenant's 3 key(s) before the store failed; the other 2 keep their old setting: run the command again (it writes every key's full setting)");
    expect(((e as PartialWriteError).cause as Error).message).toBe("KV unavailable");
    const rates = async () => (await listTenants(kv)).map((r) => r.ratePerMinute).sort();
    expect(await rates()).toEqual([60, 60, 600]);
    await setLimits(kv, record.id, { ratePerMinute: 600 }, false);
    expect(await rates()).toEqual([600, 600, 600]);
  });
});

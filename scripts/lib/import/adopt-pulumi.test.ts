// Adopting creates nothing new: the inventory `npm run import` writes is run through
// the real Pulumi program (stacks/program.ts) under Pulumi's mocks, and the URNs it
// registers for the DNS posture are exactly the URNs `pulumi import --file` creates
// from the import file (type, parent, name). So after the import, `pulumi up` finds
// every posture resource in the state already. The Cloudflare API is the loopback fake.
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { deriveDesiredState } from "../../../stacks/model/desired.ts";
import { loadInventoryOrThrow } from "../../../stacks/model/load.ts";
import { TYPES } from "../../../stacks/model/names.ts";
import { startFakeCloudflare, type FakeCloudflare } from "../../../test/fakes/cloudflare-dns-api.ts";
import { FakeWorkersScriptsApi } from "../../../test/fakes/cloudflare-workers-scripts-api.ts";
import { runUnderMocks } from "../../../test/support/pulumi-mocks.ts";
import { IMPORT_EXIT, runImport } from "./cli.ts";
import type { PulumiImportFile } from "./adopt.ts";
import { ACCOUNT, seed, TOKEN } from "../../../test/fakes/cloudflare-dns-account.ts";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
const PROJECT = "edgefleet";
const POSTURE_TYPES = new Set<string>([TYPES.zonePosture, TYPES.dnsRecord, TYPES.zone]);

let fake: FakeCloudflare;
// The program reads the Durable Object Workers' live migration tags (docs/deploys.md).
const scriptsApi = new FakeWorkersScriptsApi(ACCOUNT);
const work = mkdtempSync(join(tmpdir(), "edgefleet-adopt-"));
/** The example fleet's fleet.yaml and profiles.yaml, split into two DNS shards. */
const shardedFleet = join(work, "fleet-sharded");

async function importInto(out: string, inventory: string): Promise<void> {
  let err = "";
  const code = await runImport(["--api-url", fake.baseURL, "--account", ACCOUNT, "--inventory", inventory, "--out", out, "--json"], {
    out: () => {},
    err: (s) => (err += s),
    root: ROOT,
    env: { CLOUDFLARE_API_TOKEN: TOKEN },
  });
  expect(err).toBe("");
  expect(code).toBe(IMPORT_EXIT.ok);
}

/** The URNs `pulumi import` gives the file's resources (a parent in the same file is a component of this stack). */
function importUrns(file: PulumiImportFile, stack: string): string[] {
  const byName = new Map(file.resources.map((r) => [r.name, r]));
  return file.resources.map((r) => {
    const parentType = r.parent ? byName.get(r.parent)?.type : undefined;
    if (r.parent && !parentType) throw new Error(`${r.name}: parent ${r.parent} is not in the import file`);
    return `urn:pulumi:${stack}::${PROJECT}::${parentType ? `${parentType}$` : ""}${r.type}::${r.name}`;
  });
}

const readImport = (path: string) => JSON.parse(readFileSync(path, "utf8")) as PulumiImportFile;

/** Runs the program as stack `stack` (fresh mocks) for one inventory (and shard); returns the posture URNs it registered. */
async function programUrns(stack: string, inventory: string, shard?: string): Promise<string[]> {
  // The fleet's Workers read their secrets from Pulumi config; test values stand in.
  const workers = ((parse(readFileSync(join(inventory, "fleet.yaml"), "utf8")) ?? {}) as { workers?: { secrets?: Record<string, string> }[] }).workers ?? [];
  const secrets = Object.fromEntries(workers.flatMap((w) => Object.values(w.secrets ?? {})).map((k) => [`edgefleet:${k}`, `test-${k}`]));
  const config = { ...secrets, "edgefleet:accountId": ACCOUNT, "edgefleet:inventory": inventory, ...(shard ? { "edgefleet:shard": shard } : {}), "cloudflare:apiToken": scriptsApi.token, "cloudflare:baseUrl": scriptsApi.url };
  const run = await runUnderMocks({ project: PROJECT, stack, config, secrets: [...Object.keys(secrets), "cloudflare:apiToken"] }, async () => (await import("../../../stacks/program.ts")).main());
  return run.urns.filter((urn) => POSTURE_TYPES.has(urn.split("::")[2]!.split("$").pop()!));
}

beforeAll(async () => {
  const s = seed(deriveDesiredState(loadInventoryOrThrow(join(ROOT, "fleet")), { accountId: ACCOUNT }));
  fake = await startFakeCloudflare({ token: TOKEN }, s.zones, s.records);
  await scriptsApi.start();
  cpSync(join(ROOT, "fleet"), shardedFleet, { recursive: true });
  writeFileSync(join(shardedFleet, "fleet.yaml"), `${readFileSync(join(shardedFleet, "fleet.yaml"), "utf8")}\nstacks:\n  shards: [dns-a, dns-b]\n`);
}, 60_000);
afterAll(async () => {
  await fake?.close();
  await scriptsApi.stop();
});

describe("adopting an account under the real Pulumi program", () => {
  it("registers exactly the posture resources the import file names: pulumi up after the import creates nothing", async () => {
    const out = join(work, "imported");
    await importInto(out, join(ROOT, "fleet"));
    const file = readImport(join(out, "pulumi-import.json"));
    const want = importUrns(file, "adopt").sort();
    const got = (await programUrns("adopt", out)).sort();
    expect(got.length).toBeGreaterThan(300);
    expect(got).toEqual(want);
    // Adopted zones have ids: the program creates no cloudflare.Zone for them.
    expect(got.filter((u) => u.endsWith(`${TYPES.zone}::`) || u.includes(`$${TYPES.zone}::`))).toEqual([]);
    // Every record in the file is imported by its Cloudflare id, <zone_id>/<record_id>.
    for (const r of file.resources.filter((x) => x.type === TYPES.dnsRecord)) expect(r.id, r.name).toMatch(/^[0-9a-f]{32}\/[0-9a-f]{32}$/);
  }, 120_000);

  it("on a sharded fleet, writes one import file per shard's stack, each naming exactly what that stack registers", async () => {
    const out = join(work, "imported-sharded");
    await importInto(out, shardedFleet);
    const a = readImport(join(out, "pulumi-import.dns-a.json"));
    const b = readImport(join(out, "pulumi-import.dns-b.json"));
    const whole = readImport(join(work, "imported", "pulumi-import.json"));
    // The shards partition the adoption: nothing twice, nothing lost.
    expect([...a.resources, ...b.resources].map((r) => r.name).sort()).toEqual(whole.resources.map((r) => r.name).sort());
    expect(a.resources.length).toBeGreaterThan(50);
    expect(b.resources.length).toBeGreaterThan(50);
    expect((await programUrns("dns-a", out, "dns-a")).sort()).toEqual(importUrns(a, "dns-a").sort());
    expect((await programUrns("dns-b", out, "dns-b")).sort()).toEqual(importUrns(b, "dns-b").sort());
  }, 120_000);
});

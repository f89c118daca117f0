// A sharded fleet under Pulumi's mocks: a stack with edgefleet:shard registers
// exactly its shard's part of the desired state, and nothing of the other shards.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { canonical } from "../stacks/model/diff.ts";
import { bundleWorker } from "../stacks/model/bundle.ts";
import { deriveDesiredState, isBundleRef, isRef, mapRefs, type InputValue } from "../stacks/model/desired.ts";
import { readWorkerConfigOrThrow } from "../stacks/model/wrangler.ts";
import { loadInventoryOrThrow } from "../stacks/model/load.ts";
import { selectShard } from "../stacks/model/shards.ts";
import { FakeWorkersScriptsApi } from "./fakes/cloudflare-workers-scripts-api.ts";
import { FLEET, PROFILES, withZone } from "./support/inventory.ts";
import { mockId, runUnderMocks } from "./support/pulumi-mocks.ts";

const dir = mkdtempSync(join(tmpdir(), "edgefleet-shards-"));
writeFileSync(join(dir, "fleet.yaml"), `${FLEET}stacks:\n  shards: [dns-a, dns-b]\n`);
writeFileSync(join(dir, "profiles.yaml"), PROFILES);
writeFileSync(join(dir, "zones.yaml"), withZone("  - name: new-a.example\n    profile: web\n    shard: dns-a\n  - name: b.example\n    id: b0000000000000000000000000000009\n    profile: parked\n    shard: dns-b\n"));

const bundleOf = (source: string) => bundleWorker(readWorkerConfigOrThrow(source)).content;
let registered: { type: string; name: string; inputs: unknown }[] = [];
const resolve = (v: InputValue): unknown => mapRefs(v, (ref) => (isRef(ref) ? mockId(ref.$ref) : isBundleRef(ref) ? bundleOf(ref.$bundle) : ref));

// The first shard's stack holds the scripts: the program reads their live migration tags.
const api = new FakeWorkersScriptsApi("acct");
afterAll(() => api.stop());

beforeAll(async () => {
  await api.start();
  const config = { "edgefleet:accountId": "acct", "edgefleet:inventory": dir, "edgefleet:shard": "dns-a", "cloudflare:apiToken": api.token, "cloudflare:baseUrl": api.url };
  const run = await runUnderMocks({ stack: "dns-a", config, secrets: ["cloudflare:apiToken"] }, async () => (await import("../stacks/program.ts")).main());
  registered = run.registrations.map(({ type, name, inputs }) => ({ type, name, inputs }));
});

describe("a shard's stack", () => {
  it("registers exactly its shard's desired resources", () => {
    const inv = loadInventoryOrThrow(dir);
    const want = selectShard(inv, deriveDesiredState(inv, { accountId: "acct" }), "dns-a")
      .resources.map((r) => canonical({ type: r.type, name: r.name, inputs: resolve(r.inputs) }))
      .sort();
    const got = registered.filter((r) => r.type !== "pulumi:pulumi:Stack").map((r) => canonical(r)).sort();
    expect(got).toEqual(want);
    expect(got.some((g) => g.includes("new-a.example"))).toBe(true);
    expect(got.some((g) => g.includes('"b.example'))).toBe(false);
  });
});

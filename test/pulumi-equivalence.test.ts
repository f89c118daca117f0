// Runs the real Pulumi program (stacks/program.ts) under Pulumi's mocks and proves
// it registers exactly the desired state: the same types, names and inputs, with
// nothing missing and nothing extra. The mock monitor stands in for the engine; no
// resource code is mocked away.
import * as pulumi from "@pulumi/pulumi";
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { canonical } from "../stacks/model/diff.ts";
import { deriveDesiredState, isRef, type InputValue } from "../stacks/model/desired.ts";
import { loadInventoryOrThrow } from "../stacks/model/load.ts";
import { TYPES } from "../stacks/model/names.ts";
import { FLEET, PROFILES, ZONES } from "./support/inventory.ts";

const ACCOUNT = "0123456789abcdef0123456789abcdef";
const INVENTORY = "fleet";

interface Registered {
  type: string;
  name: string;
  inputs: Record<string, unknown>;
  custom: boolean;
}

const registered: Registered[] = [];
let outputs: { zoneCount: number; recordCount: number };
let urns: string[] = [];

// The id the mock engine gives each resource; desired-state references resolve to it.
const mockId = (name: string) => `mock-id:${name}`;

beforeAll(async () => {
  // Pulumi captures a stack trace for every promise and every registration (for leak
  // reports and source positions in the CLI); at thousands of resources that is most
  // of the run (see FINDINGS.md). Neither plays a part in what is registered.
  const stackTraceLimit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  (pulumi.Resource as unknown as { callsites: () => unknown[] }).callsites = () => [];
  await pulumi.runtime.setMocks(
    {
      newResource(args) {
        registered.push({ type: args.type, name: args.name, inputs: args.inputs, custom: args.custom ?? false });
        return { id: args.custom ? mockId(args.name) : undefined, state: args.inputs };
      },
      call(args) {
        throw new Error(`the program must not call provider functions (it called ${args.token})`);
      },
    },
    "edgefleet",
    "test",
    false,
  );
  pulumi.runtime.setAllConfig({ "edgefleet:accountId": ACCOUNT, "edgefleet:inventory": INVENTORY });
  const { main } = await import("../stacks/program.ts");
  outputs = main();
  // Registrations finish asynchronously: drain them before reading.
  const runtime = pulumi.runtime as unknown as {
    waitForRPCs(): Promise<void>;
    getMonitor(): { getRegisteredResources(): Map<string, unknown> };
  };
  await runtime.waitForRPCs();
  Error.stackTraceLimit = stackTraceLimit;
  urns = [...runtime.getMonitor().getRegisteredResources().keys()];
});

function resolveRefs(v: InputValue): unknown {
  if (isRef(v)) return mockId(v.$ref);
  if (Array.isArray(v)) return v.map(resolveRefs);
  if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, resolveRefs(x)]));
  return v;
}

describe("the Pulumi program under mocks", () => {
  const desired = deriveDesiredState(loadInventoryOrThrow(INVENTORY), { accountId: ACCOUNT });

  it("covers a fleet of at least 50 zones", () => {
    expect(desired.zones.length).toBeGreaterThanOrEqual(50);
    expect(outputs.zoneCount).toBe(desired.zones.length);
  });

  it("registers exactly the desired resources: same types, names and inputs", () => {
    const want = desired.resources.map((r) => canonical({ type: r.type, name: r.name, inputs: resolveRefs(r.inputs) })).sort();
    const got = registered
      .filter((r) => r.type !== "pulumi:pulumi:Stack" && r.type !== "pulumi:providers:cloudflare")
      .map((r) => canonical({ type: r.type, name: r.name, inputs: r.inputs }))
      .sort();
    expect(got.length).toBe(want.length);
    // Compare as sets first for a readable failure, then exactly.
    const missing = want.filter((w) => !got.includes(w)).slice(0, 5);
    const extra = got.filter((g) => !want.includes(g)).slice(0, 5);
    expect({ missing, extra }).toEqual({ missing: [], extra: [] });
    expect(got).toEqual(want);
  });

  it("parents every zone's resources under its ZonePosture component", () => {
    const children = urns.filter((u) => u.includes(`$${TYPES.dnsRecord}::`) || u.includes(`$${TYPES.zone}::`));
    expect(children.length).toBe(desired.resources.filter((r) => r.parent).length);
    for (const urn of children) expect(urn).toContain(`::${TYPES.zonePosture}$`);
  });

  it("registers no two resources under one URN", () => {
    expect(new Set(urns).size).toBe(urns.length);
    expect(urns.length).toBeGreaterThanOrEqual(desired.resources.length);
  });
});

describe("the program's entry point", () => {
  it("runs under plain Node (type stripping, ESM), as Pulumi.yaml has the CLI run it", () => {
    // Outside the CLI there is no engine: the SDK drops registrations, but the program
    // still reads the config and the inventory and declares every resource.
    const dir = mkdtempSync(join(tmpdir(), "edgefleet-inv-"));
    writeFileSync(join(dir, "fleet.yaml"), FLEET);
    writeFileSync(join(dir, "profiles.yaml"), PROFILES);
    writeFileSync(join(dir, "zones.yaml"), ZONES);
    const r = spawnSync(process.execPath, ["stacks/index.ts"], {
      encoding: "utf8",
      env: { ...process.env, PULUMI_CONFIG: JSON.stringify({ "edgefleet:accountId": ACCOUNT, "edgefleet:inventory": dir }) },
    });
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
  });

  it("stops on an invalid inventory with its located problems (a RunError, which the CLI prints without a stack)", () => {
    const r = spawnSync(process.execPath, ["stacks/index.ts"], {
      encoding: "utf8",
      env: { ...process.env, PULUMI_CONFIG: JSON.stringify({ "edgefleet:accountId": ACCOUNT, "edgefleet:inventory": "test/no-such-inventory" }) },
    });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain("RunError: the inventory has 1 problem(s):\ntest/no-such-inventory/fleet.yaml:1:1: cannot read the file (ENOENT)");
  });
});

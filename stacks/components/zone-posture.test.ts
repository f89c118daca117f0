// ZonePosture under Pulumi's mocks: a created zone is retained on delete and its id
// flows into the records; an existing zone's id is used as given.
import * as pulumi from "@pulumi/pulumi";
import { beforeAll, describe, expect, it } from "vitest";
import { inventory, withZone } from "../../test/support/inventory.ts";
import { deriveDesiredState } from "../model/desired.ts";
import { TYPES } from "../model/names.ts";
import { mockId, runUnderMocks } from "../../test/support/pulumi-mocks.ts";

const registered = new Map<string, Record<string, unknown>>();
const options = new Map<string, pulumi.ResourceOptions>();

beforeAll(async () => {
  const run = await runUnderMocks({ stack: "test" }, async () => {
    const { ZonePosture } = await import("./zone-posture.ts");
    const state = deriveDesiredState(inventory({ zones: withZone("  - name: new.example\n    profile: parked\n") }), { accountId: "acct" });
    for (const zone of ["new.example", "site.example"]) {
      const resources = state.resources.filter((r) => r.parent === zone);
      // Legacy transformations run in the SDK and see every child's options.
      new ZonePosture(zone, { resources }, { transformations: [(a) => (options.set(`${a.type}::${a.name}`, a.opts), undefined)] });
    }
  });
  for (const r of run.registrations) registered.set(`${r.type}::${r.name}`, r.inputs);
});

describe("ZonePosture", () => {
  it("creates a zone without an id, retained on delete, and points its records at it", () => {
    expect(registered.get(`${TYPES.zone}::new.example/zone`)).toEqual({ account: { id: "acct" }, name: "new.example", type: "full" });
    expect(options.get(`${TYPES.zone}::new.example/zone`)?.retainOnDelete).toBe(true);
    expect(registered.get(`${TYPES.dnsRecord}::new.example/MX/@/null`)?.zoneId).toBe(mockId("new.example/zone"));
    expect(options.get(`${TYPES.dnsRecord}::new.example/MX/@/null`)?.retainOnDelete).toBeFalsy();
  });

  it("uses an existing zone's id as given and creates no zone", () => {
    expect(registered.has(`${TYPES.zone}::site.example/zone`)).toBe(false);
    expect(registered.get(`${TYPES.dnsRecord}::site.example/TXT/_dmarc/dmarc`)?.zoneId).toBe("a0000000000000000000000000000003");
  });
});

// Stable logical names: re-ordering the inventory, or adding or removing one zone,
// leaves every other resource's name and inputs unchanged (property tests).
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { deriveDesiredState, type DesiredState } from "./desired.ts";
import { canonical } from "./diff.ts";
import { loadInventoryOrThrow } from "./load.ts";
import { recordResourceName } from "./names.ts";
import type { Inventory, ZoneSpec } from "./schema.ts";

const example = loadInventoryOrThrow("fleet");
const derive = (inv: Inventory) => deriveDesiredState(inv, { accountId: "acct" });
const byName = (s: DesiredState) => new Map(s.resources.map((r) => [`${r.type}::${r.name}`, canonical({ parent: r.parent, inputs: r.inputs })]));
const baseline = byName(derive(example));

// A smaller slice keeps each property run quick while keeping every profile.
const slice: Inventory = { ...example, zones: example.zones.filter((_, i) => i < 12 || i % 9 === 0) };
const sliceBaseline = byName(derive(slice));

const newZone = fc.record({
  label: fc.stringMatching(/^[a-z][a-z0-9]{2,12}$/),
  profile: fc.constantFrom("parked", "web", "mail-fastmail"),
  withId: fc.boolean(),
});

describe("stable logical names", () => {
  it("names say what a thing is, never where it sits", () => {
    expect(recordResourceName({ zone: "a.example", type: "TXT", name: "_dmarc", key: "dmarc" })).toBe("a.example/TXT/_dmarc/dmarc");
    expect(recordResourceName({ zone: "a.example", type: "CNAME", name: "www", key: undefined })).toBe("a.example/CNAME/www");
    for (const k of baseline.keys()) expect(k).not.toMatch(/::.*::.*::/);
  });

  it("re-ordering zones, records and ignore rules changes nothing", () => {
    fc.assert(
      fc.property(fc.integer(), (seed) => {
        const shuffled: Inventory = {
          ...example,
          zones: shuffle(example.zones, seed).map((z) => ({ ...z, records: shuffle(z.records, seed + 1), ignore: shuffle(z.ignore, seed + 2) })),
        };
        expect(byName(derive(shuffled))).toEqual(baseline);
      }),
      { numRuns: 15 },
    );
  });

  it("removing one zone removes only that zone's resources and its report authorisation", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: slice.zones.length - 1 }), (i) => {
        const gone = slice.zones[i]!;
        if (gone.name === "ops-mail.example") return; // the mailbox zone owns others' authorisations
        // A zone that workers: routes a proxy to cannot go without editing workers: too.
        if (slice.fleet.workers.some((w) => [...w.routes, ...w.domains].some((h) => h.split("/")[0]!.endsWith(`.${gone.name}`)))) return;
        const after = byName(derive({ ...slice, zones: slice.zones.filter((_, j) => j !== i) }));
        for (const [name, value] of after) expect(sliceBaseline.get(name), name).toBe(value);
        const removed = [...sliceBaseline.keys()].filter((k) => !after.has(k));
        for (const k of removed) {
          const ok = k.includes(`::${gone.name}`) || k.endsWith(`::ops-mail.example/TXT/${gone.name}._report._dmarc/report`) || k.endsWith(`::route/${gone.name}/*`) || k.endsWith(`::route/www.${gone.name}/*`) || k.endsWith(`::domain/mta-sts.${gone.name}`);
          expect(ok, k).toBe(true);
        }
      }),
      { numRuns: 40 },
    );
  });

  it("adding one zone anywhere adds only that zone's resources and its report authorisation", () => {
    fc.assert(
      fc.property(newZone, fc.nat(), ({ label, profile, withId }, at) => {
        const name = `${label}.new.example`;
        const zone: ZoneSpec = {
          name,
          id: withId ? "f".repeat(32) : undefined,
          profile,
          tags: [],
          vars: {},
          overrides: {},
          records: [],
          ignore: [],
        };
        const zones = [...slice.zones];
        zones.splice(at % (zones.length + 1), 0, zone);
        const after = byName(derive({ ...slice, zones }));
        for (const [k, v] of sliceBaseline) expect(after.get(k), k).toBe(v);
        for (const k of after.keys()) {
          if (sliceBaseline.has(k)) continue;
          // The zone's own resources, its report authorisation, and the router's routes to it
          // (or its MTA-STS policy host, a custom domain, when it receives mail).
          const ok = k.includes(`::${name}`) || k.endsWith(`::ops-mail.example/TXT/${name}._report._dmarc/report`) || k.endsWith(`::route/${name}/*`) || k.endsWith(`::route/www.${name}/*`) || k.endsWith(`::domain/mta-sts.${name}`);
          expect(ok, k).toBe(true);
        }
      }),
      { numRuns: 40 },
    );
  });
});

/** A deterministic Fisher-Yates shuffle driven by a seed. */
function shuffle<T>(items: readonly T[], seed: number): T[] {
  const out = [...items];
  let s = seed >>> 0 || 1;
  for (let i = out.length - 1; i > 0; i--) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

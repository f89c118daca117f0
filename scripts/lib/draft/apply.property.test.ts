// Property (issue 15 item 9): random valid edit lists never change a zone they do not
// name. Edits are drawn from the real names and from arbitrary strings (quotes,
// brackets, newlines, '#', ': '), kept only when the Edit schema accepts them, applied to
// a zones.yaml with comments, flow and block lists, and every zone no edit names must
// come back from an independent YAML parse exactly as it was.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { FLEET, parseTexts, PROFILES } from "../../../test/support/inventory.ts";
import { applyEdits, changedZones } from "./apply.ts";
import { Edit } from "./edits.ts";

const ZONES = `# zones for the property test
zones:
  - name: ops.example
    profile: mail-fastmail
    tags: [ops]   # the mailbox zone
  - name: shop-one.example
    profile: web
    tags: [shop, legacy]
    records:
      - { type: A, name: api, content: 192.0.2.10, proxied: true }
      - { type: TXT, name: "@", content: "verify=1" }

  # parked
  - name: parked-a.example
    profile: parked
  - name: parked-b.example
    profile: parked
    tags:
      - legacy
    ignore:
      - { type: TXT, name: _acme-challenge }
  - name: "quoted.example"
    profile: 'web'
    records: []
`;

const loaded = parseTexts({ fleet: FLEET, profiles: PROFILES, zones: ZONES });
if (!loaded.ok) throw new Error(`fixture: ${loaded.problems.map((p) => p.message).join("; ")}`);
const inventory = loaded.inventory;
const names = inventory.zones.map((z) => z.name);
const before = zonesByName(ZONES);

function zonesByName(text: string): Map<string, unknown> {
  const doc = parse(text) as { zones: { name: string }[] };
  return new Map(doc.zones.map((z) => [z.name, z]));
}

/** The zones an edit names. */
function named(e: Edit): string[] {
  if ("zones" in e) return e.zones;
  if ("zone" in e) return [e.zone];
  return [e.name];
}

const hostile = fc.string({ maxLength: 16, unit: fc.constantFrom("a", "b", "-", ".", " ", "]", "[", ",", "#", ":", "\n", '"', "'", "{", "}", "*", "@", "_", "0", "x") });
const zone = fc.oneof(fc.constantFrom(...names), fc.constantFrom("new-a.example", "new-b.example"), hostile);
const tag = fc.oneof(fc.constantFrom("shop", "legacy", "eu", "ops", "x-1"), hostile);
const profile = fc.oneof(fc.constantFrom("parked", "web", "mail-fastmail", "mail-google"), hostile);
const owner = fc.oneof(fc.constantFrom("@", "www", "api", "_verify", "*.x"), hostile);
const content = fc.oneof(fc.constantFrom("192.0.2.10", "verify=1", "v=spf1 -all"), fc.string({ maxLength: 40 }), hostile);
const record = fc.oneof(
  fc.record({ type: fc.constant("TXT"), name: owner, content }),
  fc.record({ type: fc.constant("A"), name: owner, content }),
  fc.record({ type: fc.constant("CNAME"), name: owner, content: fc.oneof(fc.constantFrom("target.example"), hostile) }),
);
const edit = fc.oneof(
  fc.record({ op: fc.constant("add_zone"), name: zone, profile, tags: fc.option(fc.array(tag, { maxLength: 3 }), { nil: undefined }) }),
  fc.record({ op: fc.constant("remove_zone"), zones: fc.array(zone, { minLength: 1, maxLength: 2 }) }),
  fc.record({ op: fc.constant("set_profile"), zones: fc.array(zone, { minLength: 1, maxLength: 3 }), profile }),
  fc.record({ op: fc.constantFrom("add_tags", "remove_tags"), zones: fc.array(zone, { minLength: 1, maxLength: 3 }), tags: fc.array(tag, { minLength: 1, maxLength: 3 }) }),
  fc.record({ op: fc.constant("add_record"), zone, record }),
  fc.record({ op: fc.constant("remove_record"), zone, type: fc.constantFrom("A", "TXT"), name: owner, content: fc.option(content, { nil: undefined }) }),
  fc.record({ op: fc.constant("ignore_record"), zone, rule: fc.record({ type: fc.constantFrom("TXT", "*", "A"), name: owner }) }),
).map((e) => Object.fromEntries(Object.entries(e).filter(([, v]) => v !== undefined)));
/** Only edit lists the schema accepts: the property is about valid edits. */
const validEdits = fc
  .array(edit, { minLength: 1, maxLength: 6 })
  .map((list) => list.flatMap((e) => {
    const r = Edit.safeParse(e);
    return r.success ? [r.data] : [];
  }))
  .filter((list) => list.length > 0);

describe("applyEdits (property)", () => {
  it("never changes a zone that no edit names", () => {
    let applied = 0;
    fc.assert(
      fc.property(validEdits, (edits) => {
        const r = applyEdits(ZONES, inventory, edits);
        if (!r.ok) return; // refused: nothing changes
        applied++;
        const after = zonesByName(r.text);
        const mentioned = new Set(edits.flatMap(named));
        for (const [name, z] of before) if (!mentioned.has(name)) expect(after.get(name), name).toEqual(z);
        for (const name of after.keys()) if (!before.has(name)) expect(mentioned.has(name), name).toBe(true);
        // The comments outside the zones' own lines survive.
        expect(r.text).toContain("# zones for the property test");
      }),
      { numRuns: 400 },
    );
    // The property is not vacuous: many random lists really were applied.
    expect(applied).toBeGreaterThan(40);
  });

  it("the re-parse check refuses a text that changes a zone no edit names, or adds one", () => {
    const sneaky = ZONES.replace("  - name: parked-a.example\n    profile: parked\n", "  - name: parked-a.example\n    profile: web\n");
    expect(changedZones(ZONES, sneaky, ["ops.example"])).toEqual([
      "the edits would change zone(s) no edit names: parked-a.example; refused",
      "the edits name zone(s) they leave unchanged (already so?): ops.example",
    ]);
    const smuggled = `${ZONES}  - name: evil.example\n    profile: web\n`;
    expect(changedZones(ZONES, smuggled, [])).toEqual(["the edits would change zone(s) no edit names: evil.example; refused"]);
    expect(changedZones(ZONES, `${ZONES}  - name: ops.example\n    profile: web\n`, ["ops.example"])).toContain("the drafted zones.yaml lists ops.example more than once");
    expect(changedZones(ZONES, ZONES.replace("zones:", "extra: 1\nzones:"), [])).toContain("the edits changed zones.yaml outside its 'zones' list");
  });

  it.each(["a]\n  - name: evil.example\n    profile: web\n    tags: [b", "a\n  - name: evil.example"])(
    "never splices raw text even for a value that got past the schema (%j): quoted or refused, no zone smuggled in",
    (tagText) => {
      // Defence in depth behind the schema: the YAML library quotes the value on one line
      // (the zone gains a strange tag, never a sibling zone), or the draft is refused.
      const forged = [{ op: "add_tags", zones: ["ops.example"], tags: [tagText] }] as unknown as Edit[];
      const r = applyEdits(ZONES, inventory, forged);
      if (!r.ok) {
        expect(r.problems).toEqual([expect.stringMatching(/^a drafted value would span lines: .*; refused$/)]);
        return;
      }
      const after = zonesByName(r.text);
      expect([...after.keys()]).toEqual([...before.keys()]);
      expect((after.get("ops.example") as { tags: string[] }).tags).toEqual(["ops", tagText]);
    },
  );
});

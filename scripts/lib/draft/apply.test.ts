// Edits applied as text splices: each changes only its own lines, and the result
// parses back to exactly the intended inventory.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parseInventory, readSources } from "../../../stacks/model/load.ts";
import { applyEdits } from "./apply.ts";
import type { Edit } from "./edits.ts";

const sources = readSources("fleet");
const current = parseInventory("fleet", sources);
if (!current.ok) throw new Error("the example fleet must be valid");
const inventory = current.inventory;
const original = readFileSync("fleet/zones.yaml", "utf8");

function apply(edits: Edit[]) {
  const r = applyEdits(original, inventory, edits);
  if (!r.ok) throw new Error(r.problems.join("\n"));
  const next = parseInventory("fleet", { ...sources, zones: { path: "zones.yaml", text: r.text } });
  if (!next.ok) throw new Error(next.problems.map((p) => `${p.line}: ${p.message}`).join("\n"));
  return { text: r.text, zones: next.inventory.zones, touched: r.touched };
}

/** Lines removed from and added to the original, as a multiset diff. */
function lineDiff(text: string): { removed: string[]; added: string[] } {
  const count = (s: string) => s.split("\n").reduce((m, l) => m.set(l, (m.get(l) ?? 0) + 1), new Map<string, number>());
  const a = count(original);
  const b = count(text);
  const removed: string[] = [];
  const added: string[] = [];
  for (const [l, n] of a) for (let i = 0; i < n - (b.get(l) ?? 0); i++) removed.push(l);
  for (const [l, n] of b) for (let i = 0; i < n - (a.get(l) ?? 0); i++) added.push(l);
  return { removed, added };
}

describe("applyEdits", () => {
  it("changes nothing for no edits", () => {
    expect(apply([]).text).toBe(original);
  });

  it("sets a profile in place", () => {
    const r = apply([{ op: "set_profile", zones: ["tailspin-travel.example"], profile: "parked" }]);
    expect(lineDiff(r.text)).toEqual({ removed: ["    profile: mail-fastmail"], added: ["    profile: parked"] });
    expect(r.zones.find((z) => z.name === "tailspin-travel.example")!.profile).toBe("parked");
    expect(r.text.split("\n").length).toBe(original.split("\n").length);
  });

  it("removes a zone's lines and nothing else, keeping the comments around it", () => {
    const r = apply([{ op: "remove_zone", zones: ["contoso-legal.example"] }]);
    expect(r.zones.some((z) => z.name === "contoso-legal.example")).toBe(false);
    expect(r.zones).toHaveLength(inventory.zones.length - 1);
    const { removed, added } = lineDiff(r.text);
    expect(added).toEqual([]);
    expect(removed.some((l) => l.includes("contoso-legal.example"))).toBe(true);
    expect(removed.every((l) => !l.trim().startsWith("#"))).toBe(true);
  });

  it("adds tags to a zone without tags on a new line after its profile", () => {
    const zone = inventory.zones.find((z) => z.tags.length === 0)!;
    const r = apply([{ op: "add_tags", zones: [zone.name], tags: ["reviewed", "eu"] }]);
    expect(r.zones.find((z) => z.name === zone.name)!.tags).toEqual(["reviewed", "eu"]);
    expect(lineDiff(r.text)).toEqual({ removed: [], added: ["    tags: [reviewed, eu]"] });
  });

  it("removes a tag, keeping the others in order", () => {
    const r = apply([{ op: "remove_tags", zones: ["northwind-traders.example"], tags: ["shop"] }]);
    expect(r.zones.find((z) => z.name === "northwind-traders.example")!.tags).toEqual(["brand", "eu"]);
    expect(lineDiff(r.text)).toEqual({ removed: ["    tags: [brand, shop, eu]"], added: ["    tags: [brand, eu]"] });
  });

  it("adds and removes records in the list's own style; removing the last one removes the key", () => {
    const r = apply([
      { op: "add_record", zone: "contoso-legal.example", record: { type: "TXT", name: "_verify", content: "token=1" } },
      { op: "remove_record", zone: "glacier-motors.example", type: "TXT", name: "@" },
    ]);
    const contoso = r.zones.find((z) => z.name === "contoso-legal.example")!;
    expect(contoso.records.map((x) => `${x.type} ${x.name}`)).toEqual(["CNAME autodiscover", "TXT @", "TXT _verify"]);
    expect(r.zones.find((z) => z.name === "glacier-motors.example")!.records).toEqual([]);
    const { removed, added } = lineDiff(r.text);
    expect(added).toEqual(["      - { type: TXT, name: _verify, content: token=1 }"]);
    expect(removed).toEqual(["    records:", '      - { type: TXT, name: "@", content: "google-site-verification=345c188a63308a8f1fbde9def4a5401c" }']);
  });

  it("adds a zone at the end with its records and ignore rules", () => {
    const r = apply([
      { op: "add_zone", name: "new-brand.example", profile: "web", tags: ["brand"] },
      { op: "add_record", zone: "new-brand.example", record: { type: "A", name: "shop", content: "192.0.2.44", proxied: true } },
      { op: "ignore_record", zone: "new-brand.example", rule: { type: "TXT", name: "_acme-challenge" } },
    ]);
    const z = r.zones.at(-1)!;
    expect(z).toMatchObject({ name: "new-brand.example", profile: "web", tags: ["brand"] });
    expect(z.id).toBeUndefined();
    expect(z.records).toHaveLength(1);
    expect(z.ignore).toEqual([{ type: "TXT", name: "_acme-challenge" }]);
    expect(r.text.startsWith(original.trimEnd())).toBe(true);
  });

  it("refuses unknown zones, unknown or ambiguous records, and contradictions, with reasons", () => {
    const r = applyEdits(original, inventory, [
      { op: "set_profile", zones: ["ghost.example"], profile: "parked" },
      { op: "remove_record", zone: "contoso-legal.example", type: "A", name: "nope" },
      { op: "remove_record", zone: "ops-mail.example", type: "SRV", name: "_imaps._tcp", content: "nope.example" },
      { op: "add_zone", name: "ops-mail.example", profile: "parked" },
      { op: "remove_zone", zones: ["tailspin-travel.example"] },
      { op: "add_tags", zones: ["tailspin-travel.example"], tags: ["x"] },
    ]);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.problems).toEqual([
      "edit 1 (set_profile): unknown zone 'ghost.example'",
      "edit 2 (remove_record): zone 'contoso-legal.example' has no extra record A nope (posture records change through its profile)",
      "edit 3 (remove_record): zone 'ops-mail.example' has no extra record SRV _imaps._tcp 'nope.example' (posture records change through its profile)",
      "edit 4 (add_zone): zone 'ops-mail.example' already exists",
      "zone 'tailspin-travel.example' is both removed and edited by this draft",
    ]);
  });
});

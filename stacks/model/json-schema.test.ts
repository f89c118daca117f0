// The editors' JSON Schemas are generated from the zod schemas; the committed copies
// must be exactly what the generator writes (run `npm run schema` after a change).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { inventoryJsonSchemas } from "./json-schema.ts";

describe("inventory JSON Schemas", () => {
  const schemas = inventoryJsonSchemas();

  it.each([...schemas.keys()])("fleet/schema/%s is up to date", (name) => {
    expect(readFileSync(join("fleet", "schema", name), "utf8")).toBe(schemas.get(name));
  });

  it("rejects unknown keys and describes the fields", () => {
    const zones = JSON.parse(schemas.get("zones.schema.json")!);
    const zone = zones.properties.zones.items;
    expect(zone.additionalProperties).toBe(false);
    expect(zone.required).toEqual(["name", "profile"]);
    expect(zone.properties.id.description).toMatch(/edgefleet creates the zone/);
  });

  it("is referenced by each inventory file's editor modeline", () => {
    for (const file of ["fleet", "profiles", "zones"]) {
      expect(readFileSync(join("fleet", `${file}.yaml`), "utf8")).toMatch(new RegExp(`^# yaml-language-server: \\$schema=./schema/${file}.schema.json`));
    }
  });
});

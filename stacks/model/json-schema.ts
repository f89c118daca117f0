// JSON Schemas of the inventory files, generated from the zod schemas (the single
// source of truth) for editors: the YAML files point at them with a modeline.
import { z } from "zod";
import { INVENTORY_FILES } from "./schema.ts";

export function inventoryJsonSchemas(): Map<string, string> {
  const out = new Map<string, string>();
  for (const { file, schema } of Object.values(INVENTORY_FILES)) {
    const json = z.toJSONSchema(schema, { io: "input", unrepresentable: "any" });
    const name = file.replace(/\.yaml$/, ".schema.json");
    out.set(name, `${JSON.stringify({ ...json, title: `edgefleet ${file}` }, null, 2)}\n`);
  }
  return out;
}

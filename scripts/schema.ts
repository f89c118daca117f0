// `npm run schema`: writes fleet/schema/*.schema.json from the zod schemas.
// `--check` exits 1 when the committed files differ (the tests run the same check).
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { inventoryJsonSchemas } from "../stacks/model/json-schema.ts";

const dir = join(resolve(dirname(fileURLToPath(import.meta.url)), ".."), "fleet", "schema");
const check = process.argv.includes("--check");
let stale = 0;
mkdirSync(dir, { recursive: true });
for (const [name, text] of inventoryJsonSchemas()) {
  const path = join(dir, name);
  const same = existsSync(path) && readFileSync(path, "utf8") === text;
  if (check) {
    if (!same) {
      stale++;
      console.error(`schema: ${path} is out of date; run npm run schema`);
    }
  } else if (!same) {
    writeFileSync(path, text);
    console.log(`schema: wrote ${path}`);
  }
}
process.exitCode = stale > 0 ? 1 : 0;

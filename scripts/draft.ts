// Entry point of `npm run draft -- "REQUEST"`; the logic is scripts/lib/draft/.
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { runDraft } from "./lib/draft/draft.ts";

process.exitCode = await runDraft(process.argv.slice(2), {
  out: (s) => process.stdout.write(s),
  err: (s) => process.stderr.write(s),
  root: resolve(dirname(fileURLToPath(import.meta.url)), ".."),
  env: process.env,
});

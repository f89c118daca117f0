// Entry point of `npm run archive`; the command line is scripts/lib/archive/cli.ts.
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { runArchive } from "./lib/archive/cli.ts";

process.exitCode = await runArchive(process.argv.slice(2), {
  out: (s) => process.stdout.write(s),
  outBytes: (b) => process.stdout.write(b),
  outIsTTY: process.stdout.isTTY === true,
  err: (s) => process.stderr.write(s),
  env: process.env,
  root: resolve(dirname(fileURLToPath(import.meta.url)), ".."),
});

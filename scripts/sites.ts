// Entry point of `npm run sites` (build / publish the router's content map); the
// command itself is scripts/lib/sites/cli.ts.
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { runSites } from "./lib/sites/cli.ts";

process.stdout.on("error", (e: NodeJS.ErrnoException) => {
  if (e.code === "EPIPE") process.exit(process.exitCode ?? 0);
  throw e;
});

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
process.exitCode = await runSites(process.argv.slice(2), {
  out: (s) => process.stdout.write(s),
  err: (s) => process.stderr.write(s),
  root,
  env: process.env,
  progress: process.stderr.isTTY,
});

// Entry point of `npm run tenants`; the command line is scripts/lib/tenants/cli.ts.
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { runTenants } from "./lib/tenants/cli.ts";

process.exitCode = await runTenants(process.argv.slice(2), {
  out: (s) => process.stdout.write(s),
  err: (s) => process.stderr.write(s),
  env: process.env,
  root: resolve(dirname(fileURLToPath(import.meta.url)), ".."),
});

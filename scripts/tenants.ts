// Entry point of `npm run tenants`; the command line is scripts/lib/tenants/cli.ts.
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { runTenants, TENANT_EXIT } from "./lib/tenants/cli.ts";

const argv = process.argv.slice(2);

// `npm run tenants -- list | head -1` closes the pipe early: that is not an error. The
// command still runs to its end, as process.exit here would not: it closes the local
// store, whose workerd process.exit left running.
let closed = false;
process.stdout.on("error", (e: NodeJS.ErrnoException) => {
  if (e.code !== "EPIPE") throw e;
  closed = true;
});

const code = await runTenants(argv, {
  out: (s) => {
    if (!closed) process.stdout.write(s);
  },
  err: (s) => process.stderr.write(s),
  env: process.env,
  root: resolve(dirname(fileURLToPath(import.meta.url)), ".."),
});

// `create` prints the new key once, last: a closed pipe may have lost it.
const keyLost = closed && code === TENANT_EXIT.ok && argv[0] === "create" && !argv.includes("--help") && !argv.includes("-h");
if (keyLost) process.stderr.write("tenants: standard output was closed early: the new key (shown only once) may not have been printed; `tenants list` shows the tenant, `tenants create --id <tenant id>` gives it another key\n");
process.exitCode = keyLost ? TENANT_EXIT.failed : code;

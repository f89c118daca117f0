// Entry point of `npm run dev:proxy`; the logic is scripts/lib/tenants/dev-proxy.ts.
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { runDevProxy } from "./lib/tenants/dev-proxy.ts";

const { code, stop } = await runDevProxy(process.argv.slice(2), {
  out: (s) => process.stdout.write(s),
  err: (s) => process.stderr.write(s),
  env: process.env,
  root: resolve(dirname(fileURLToPath(import.meta.url)), ".."),
});
if (stop === undefined) process.exit(code);
// SIGHUP too (a closed terminal): unhandled, it ended node and left workerd serving.
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.once(sig, () => {
    void stop().finally(() => process.exit(0));
  });
}

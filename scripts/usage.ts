// Entry point of `npm run usage`; the command line is scripts/lib/usage/cli.ts.
import { runUsage } from "./lib/usage/cli.ts";

process.exitCode = await runUsage(process.argv.slice(2), {
  out: (s) => process.stdout.write(s),
  err: (s) => process.stderr.write(s),
  env: process.env,
});

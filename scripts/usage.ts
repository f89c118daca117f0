// Entry point of `npm run usage`; the command line is scripts/lib/usage/cli.ts.
import { runUsage } from "./lib/usage/cli.ts";

// `npm run usage -- --csv | head -1` closes the pipe early: that is not an error.
process.stdout.on("error", (e: NodeJS.ErrnoException) => {
  if (e.code === "EPIPE") process.exit(process.exitCode ?? 0);
  throw e;
});

process.exitCode = await runUsage(process.argv.slice(2), {
  out: (s) => process.stdout.write(s),
  err: (s) => process.stderr.write(s),
  env: process.env,
});

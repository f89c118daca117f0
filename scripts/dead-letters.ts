// Entry point of `npm run dead-letters` (list / replay the usage ledger's dead-letter
// queue); the command itself is scripts/lib/dead-letters/cli.ts.
import { runDeadLetters } from "./lib/dead-letters/cli.ts";

process.stdout.on("error", (e: NodeJS.ErrnoException) => {
  if (e.code === "EPIPE") process.exit(process.exitCode ?? 0);
  throw e;
});

process.exitCode = await runDeadLetters(process.argv.slice(2), {
  out: (s) => process.stdout.write(s),
  err: (s) => process.stderr.write(s),
  env: process.env,
  progress: process.stderr.isTTY,
});

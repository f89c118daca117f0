// Entry point of `npm run plan`; the plan itself is scripts/lib/plan.ts.
import { enableCompileCache } from "node:module";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

// Cache V8's compiled code of the dependencies (zod alone takes ~150 ms to compile).
enableCompileCache();
const { runPlan } = await import("./lib/plan.ts");

// `npm run plan | head` closes the pipe early: that is not an error.
process.stdout.on("error", (e: NodeJS.ErrnoException) => {
  if (e.code === "EPIPE") process.exit(process.exitCode ?? 0);
  throw e;
});

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
process.exitCode = await runPlan(process.argv.slice(2), {
  out: (s) => process.stdout.write(s),
  err: (s) => process.stderr.write(s),
  root,
  color: process.stdout.isTTY && !process.env.NO_COLOR,
});

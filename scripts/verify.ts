// Entry point of `npm run verify`; the verifier is scripts/lib/verify/.
import { enableCompileCache } from "node:module";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

enableCompileCache();
const { runVerify } = await import("./lib/verify/cli.ts");

process.stdout.on("error", (e: NodeJS.ErrnoException) => {
  if (e.code === "EPIPE") process.exit(process.exitCode ?? 0);
  throw e;
});

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
process.exitCode = await runVerify(process.argv.slice(2), {
  out: (s) => process.stdout.write(s),
  err: (s) => process.stderr.write(s),
  root,
  color: process.stdout.isTTY && !process.env.NO_COLOR,
  progress: process.stderr.isTTY,
});

// Entry point of `npm run import`; the importer is scripts/lib/import/.
import { enableCompileCache } from "node:module";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

enableCompileCache();
const { runImport } = await import("./lib/import/cli.ts");

process.stdout.on("error", (e: NodeJS.ErrnoException) => {
  if (e.code === "EPIPE") process.exit(process.exitCode ?? 0);
  throw e;
});

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
process.exitCode = await runImport(process.argv.slice(2), {
  out: (s) => process.stdout.write(s),
  err: (s) => process.stderr.write(s),
  root,
  env: process.env,
  color: process.stdout.isTTY && !process.env.NO_COLOR,
  progress: process.stderr.isTTY,
});

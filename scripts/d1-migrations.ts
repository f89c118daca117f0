// Entry point of `npm run d1-migrations`; the command line is scripts/lib/d1-migrations.ts.
import { runD1Migrations, spawnExec } from "./lib/d1-migrations.ts";

process.exitCode = await runD1Migrations(process.argv.slice(2), {
  out: (s) => process.stdout.write(s),
  err: (s) => process.stderr.write(s),
  root: process.cwd(),
  env: process.env,
  exec: spawnExec,
});

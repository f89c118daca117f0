// Entry point of `npm run rotate`; the command is scripts/lib/rotate/cli.ts, the
// rotation itself scripts/lib/rotate/engine.ts, the design docs/rotation.md.
import { enableCompileCache } from "node:module";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

enableCompileCache();
const { runRotate, ROTATE_EXIT } = await import("./lib/rotate/cli.ts");

process.stdout.on("error", (e: NodeJS.ErrnoException) => {
  if (e.code === "EPIPE") return;
  throw e;
});

// Ctrl-C once: stop launching steps, let those in flight finish and be journaled, exit 4.
// Ctrl-C twice: leave at once (the journal still holds every completed step).
const controller = new AbortController();
let interrupts = 0;
const onSignal = (sig: string) => {
  interrupts++;
  if (interrupts === 1) {
    process.stderr.write(`\nrotate: ${sig}: stopping after the steps in flight (again to quit now)\n`);
    controller.abort();
  } else process.exit(ROTATE_EXIT.resume);
};
process.on("SIGINT", () => onSignal("SIGINT"));
process.on("SIGTERM", () => onSignal("SIGTERM"));

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
process.exitCode = await runRotate(process.argv.slice(2), {
  out: (s) => process.stdout.write(s),
  err: (s) => process.stderr.write(s),
  root,
  env: process.env,
  readStdin: async () => {
    const chunks: Buffer[] = [];
    for await (const c of process.stdin) chunks.push(c as Buffer);
    return Buffer.concat(chunks).toString("utf8");
  },
  stdinIsTTY: process.stdin.isTTY === true,
  tty: process.stderr.isTTY === true,
  signal: controller.signal,
});

// A FAKE `pulumi` executable for tests and the benchmark (the real CLI cannot be
// installed here). It records its arguments and the SHA-256 of stdin (never the value)
// as one JSON line in $FAKE_PULUMI_LOG, and fails with exit 1 when $FAKE_PULUMI_FAIL is
// set. `installFakePulumi` writes a shell wrapper named `fake-pulumi` that runs it.
import { createHash } from "node:crypto";
import { appendFileSync, chmodSync, readFileSync, writeFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export interface FakePulumiCall {
  args: string[];
  stdinSha256: string;
  cwd: string;
}

export function installFakePulumi(dir: string): { bin: string; log: string; calls: () => FakePulumiCall[] } {
  const bin = join(dir, "fake-pulumi");
  const log = join(dir, "fake-pulumi.log");
  const self = fileURLToPath(import.meta.url);
  writeFileSync(bin, `#!/bin/sh\nFAKE_PULUMI_LOG='${log}' exec '${process.execPath}' '${self}' "$@"\n`);
  chmodSync(bin, 0o755);
  return { bin, log, calls: () => (existsSync(log) ? readFileSync(log, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l) as FakePulumiCall) : []) };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  const stdin = Buffer.concat(chunks);
  const call: FakePulumiCall = { args: process.argv.slice(2), stdinSha256: createHash("sha256").update(stdin).digest("hex"), cwd: process.cwd() };
  if (process.env.FAKE_PULUMI_LOG) appendFileSync(process.env.FAKE_PULUMI_LOG, JSON.stringify(call) + "\n");
  if (process.env.FAKE_PULUMI_FAIL) {
    process.stderr.write("error: fake-pulumi: failing as asked (FAKE_PULUMI_FAIL)\n");
    process.exit(1);
  }
  process.stdout.write("");
}

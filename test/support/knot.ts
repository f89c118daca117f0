// Starts knotd (Knot DNS from Debian's packages) on 127.0.0.1 serving zone files,
// for tests that need a real DNS server. Semantic checks are on, so a zone file a
// standard server would refuse is not served and the test sees it.
import { spawn, type ChildProcess } from "node:child_process";
import { createSocket } from "node:dgram";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { Resolver } from "node:dns/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const KNOTD = ["/usr/sbin/knotd", "/usr/bin/knotd"].find((p) => existsSync(p));

export interface Knot {
  port: number;
  resolver: Resolver;
  log: () => string;
  stop: () => Promise<void>;
}

async function freeUdpPort(): Promise<number> {
  const sock = createSocket("udp4");
  await new Promise<void>((r) => sock.bind(0, "127.0.0.1", r));
  const { port } = sock.address();
  await new Promise<void>((r) => sock.close(() => r()));
  return port;
}

/**
 * Starts knotd on a free port. The port is found free for UDP; its TCP twin can be taken
 * by another process on a shared machine (CI runs test files in parallel), and knotd then
 * exits at once with "address already in use": it is tried again on another port.
 */
export async function startKnot(zoneDir: string, zones: string[]): Promise<Knot> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startKnotOnce(zoneDir, zones);
    } catch (e) {
      if (attempt >= 5 || !/address already in use/.test(String(e))) throw e;
    }
  }
}

async function startKnotOnce(zoneDir: string, zones: string[]): Promise<Knot> {
  if (!KNOTD) throw new Error("knotd is not installed (apt-get install knot); .ci/run installs it");
  const run = mkdtempSync(join(tmpdir(), "edgefleet-knot-"));
  const port = await freeUdpPort();
  const conf = [
    "server:",
    `    rundir: "${run}"`,
    `    listen: 127.0.0.1@${port}`,
    "database:",
    `    storage: "${run}"`,
    "log:",
    "  - target: stderr",
    "    any: info",
    "template:",
    "  - id: default",
    `    storage: "${zoneDir}"`,
    '    file: "%s.zone"',
    "    semantic-checks: on",
    "    journal-content: none",
    "    zonefile-sync: -1",
    "zone:",
    ...zones.map((z) => `  - domain: ${z}`),
    "",
  ].join("\n");
  writeFileSync(join(run, "knot.conf"), conf);
  let log = "";
  const proc: ChildProcess = spawn(KNOTD, ["-c", join(run, "knot.conf")], { stdio: ["ignore", "ignore", "pipe"] });
  proc.stderr!.on("data", (d) => (log += String(d)));
  const resolver = new Resolver({ timeout: 500, tries: 1 });
  resolver.setServers([`127.0.0.1:${port}`]);
  const deadline = Date.now() + 60_000; // generous: CI machines may be loaded
  // Ready when every zone answers its SOA; a zone knot refused to load never does.
  let pending = [...zones];
  while (pending.length > 0) {
    if (proc.exitCode !== null) throw new Error(`knotd exited (${proc.exitCode}):\n${log}`);
    const answered = new Set<string>();
    for (let i = 0; i < pending.length; i += 64) {
      await Promise.all(
        pending.slice(i, i + 64).map((z) =>
          resolver.resolveSoa(z).then(
            () => answered.add(z),
            () => undefined,
          ),
        ),
      );
    }
    pending = pending.filter((z) => !answered.has(z));
    if (pending.length === 0) break;
    if (Date.now() > deadline) {
      proc.kill("SIGKILL");
      throw new Error(`knotd did not serve ${pending.length} zone(s) (${pending.slice(0, 3).join(", ")}):\n${log.slice(-4000)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    port,
    resolver,
    log: () => log,
    stop: async () => {
      if (proc.exitCode !== null) return;
      const exited = new Promise((r) => proc.once("exit", r));
      proc.kill("SIGTERM");
      await exited;
    },
  };
}

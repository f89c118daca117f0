// `npm run rotate` end to end against the loopback fakes: in process (dry run, JSON
// events, keys from stdin, usage errors, exit codes, no key anywhere in the output or
// the journal) and as a child process interrupted with SIGINT, then resumed.
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { ROTATE_EXIT, runRotate, type RotateIO } from "./cli.ts";
import { ACCOUNT, Rig, SECRET } from "../../../test/support/rotation-rig.ts";
import { fingerprint } from "./workers.ts";
import { hintOf } from "../../../test/fakes/anthropic-admin-api.ts";

const ROOT = resolve(import.meta.dirname, "../../..");
let rig: Rig | undefined;
afterEach(async () => {
  await rig?.stop();
  rig = undefined;
});

function env(r: Rig, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    CLOUDFLARE_API_TOKEN: r.cfToken,
    CLOUDFLARE_ACCOUNT_ID: ACCOUNT,
    EDGEFLEET_OPERATOR_TOKEN: r.operatorToken,
    ANTHROPIC_ADMIN_KEY: r.adminKey,
    EDGEFLEET_NEW_KEY: r.newKey,
    EDGEFLEET_OLD_KEY: r.oldKey,
    ...extra,
  };
}

function args(r: Rig, ...more: string[]): string[] {
  const file = join(r.dir, "workers.json");
  writeFileSync(file, JSON.stringify(r.workers));
  return [
    ...more,
    "--workers", file,
    "--stack", "test",
    "--journal-dir", r.journalDir,
    "--pulumi-bin", r.pulumi.bin,
    "--cloudflare-base-url", r.cf.url,
    "--anthropic-base-url", r.anthropic.url,
    "--status-via", r.fleet.url,
    "--poll-interval", "0.005",
    "--confirm-timeout", "5",
    "--settle", "0",
  ];
}

async function run(argv: string[], e: NodeJS.ProcessEnv, stdin = "") {
  let out = "";
  let err = "";
  const io: RotateIO = { out: (s) => (out += s), err: (s) => (err += s), root: ROOT, env: e, readStdin: async () => stdin, stdinIsTTY: stdin === "", tty: false };
  const code = await runRotate(argv, io);
  return { code, out, err };
}

function journals(r: Rig): string {
  return existsSync(r.journalDir) ? readdirSync(r.journalDir).map((f) => readFileSync(join(r.journalDir, f), "utf8")).join("\n") : "";
}

function expectNoSecrets(r: Rig, ...texts: string[]) {
  for (const t of [...texts, journals(r)]) {
    for (const s of r.secretValues) expect(t.includes(s), "a secret leaked").toBe(false);
    // Nor the Admin API's partial_key_hint of either key: fingerprints only.
    for (const k of [r.oldKey, r.newKey]) expect(t.includes(hintOf(k)), "a key hint leaked").toBe(false);
    expect(t).not.toContain("partial_key_hint");
    expect(t).not.toMatch(/"hint"/);
  }
}

describe("npm run rotate", () => {
  it("--dry-run prints the plan, canary first, and changes nothing", async () => {
    rig = await new Rig({ workers: 4, canaries: 1 }).start();
    const { code, out } = await run(args(rig, SECRET, "--dry-run"), env(rig));
    expect(code).toBe(ROTATE_EXIT.ok);
    expect(out).toMatch(/DRY RUN: nothing will be changed/);
    expect(out).toMatch(/1\. llm-proxy-000 {2}\(canary\) {2}https:\/\/api-0\.llm\.example\/_edgefleet\/status\n\s+2\. llm-proxy-001 /);
    expect(out).toMatch(/persist: edgefleet:anthropicApiKey via .*fake-pulumi config set --secret --stack test edgefleet:<config>/);
    expect(rig.cf.requests).toEqual([]);
    expect(rig.anthropic.requests).toEqual([]);
    expect(rig.fleet.reads).toBe(0);
    expect(rig.pulumi.calls()).toEqual([]);
    expect(existsSync(rig.journalDir)).toBe(false);
  });

  it("--dry-run reads the Workers from the desired state of the stack's inventory", async () => {
    const { code, out } = await run([SECRET, "--dry-run", "--json"], { PATH: process.env.PATH });
    expect(code).toBe(0);
    const plan = JSON.parse(out) as { order: { script: string; canary: boolean }[]; source: string };
    expect(plan.source).toBe("fleet");
    expect(plan.order.length).toBeGreaterThan(0);
    expect(plan.order[0]!.canary).toBe(true);
    const firstOther = plan.order.findIndex((w) => !w.canary);
    expect(plan.order.slice(firstOther).every((w) => !w.canary)).toBe(true);
    const others = plan.order.slice(firstOther).map((w) => w.script);
    expect(others).toEqual([...others].sort());
  });

  it("--dry-run --json is one JSON document of the plan", async () => {
    rig = await new Rig({ workers: 3, canaries: 1 }).start();
    const { code, out } = await run(args(rig, SECRET, "--dry-run", "--json"), env(rig));
    expect(code).toBe(0);
    const ev = JSON.parse(out.trim()) as { event: string; order: { script: string; canary: boolean }[] };
    expect(ev.event).toBe("dry-run");
    expect(ev.order[0]).toEqual({ script: "llm-proxy-000", canary: true, statusUrl: "https://api-0.llm.example/_edgefleet/status" });
  });

  it("rotates with --json: one event per line, exit 0, no key in any output or journal", async () => {
    rig = await new Rig({ workers: 5, canaries: 1, fleet: { propagationMs: () => 10 } }).start();
    const { code, out, err } = await run(args(rig, SECRET, "--json"), env(rig));
    expect(err).toBe("");
    expect(code).toBe(ROTATE_EXIT.ok);
    const events = out.trim().split("\n").map((l) => JSON.parse(l) as { event: string; rotation?: string; ts: string });
    expect(events[0]!.event).toBe("plan");
    expect(events.at(-1)).toMatchObject({ event: "outcome", result: "done" });
    expect(events.every((e) => typeof e.ts === "string" && e.rotation === events[0]!.rotation)).toBe(true);
    expect(rig.keyStatus(rig.oldKey)).toBe("inactive");
    expectNoSecrets(rig, out, err);
  });

  it("human output, keys from stdin (line 1 new, line 2 old)", async () => {
    rig = await new Rig({ workers: 3, canaries: 1 }).start();
    const e = env(rig);
    delete e.EDGEFLEET_NEW_KEY;
    delete e.EDGEFLEET_OLD_KEY;
    const { code, out, err } = await run(args(rig, SECRET), e, `${rig.newKey}\n${rig.oldKey}\n`);
    expect(err).toBe("");
    expect(code).toBe(0);
    expect(out).toMatch(/canary first: llm-proxy-000/);
    expect(out).toMatch(/ok {2}the new key works \(sha256:/);
    expect(out).toMatch(/ok {2}disabled the old key apikey_\w+ \(sha256:[0-9a-f]{12}\)/);
    expect(out).toMatch(/ok {2}the old key is apikey_\w+ \(prod-2026-01, sha256:[0-9a-f]{12}\) at Anthropic/);
    expect(out).toMatch(/^done: rotated ANTHROPIC_API_KEY on 3 Worker\(s\); the old key is disabled$/m);
    expectNoSecrets(rig, out, err);
  });

  it("a lagging Worker: exit 3, rolled back, the Worker named, nothing revoked", async () => {
    rig = await new Rig({ workers: 4, lagging: ["llm-proxy-003"] }).start();
    const argv = args(rig, SECRET);
    argv[argv.indexOf("--confirm-timeout") + 1] = "0.3";
    const { code, err, out } = await run(argv, env(rig));
    expect(code).toBe(ROTATE_EXIT.rolledBack);
    expect(err).toMatch(/llm-proxy-003: last reported sha256:/);
    expect(err).toMatch(/rolled back: .*Workers that failed to confirm: llm-proxy-003/);
    expect(rig.anthropic.revoked).toEqual([]);
    expectNoSecrets(rig, out, err);
  });

  it("a wrong old key: preflight refuses (exit 1) and changes nothing", async () => {
    rig = await new Rig({ workers: 2 }).start();
    const { code, err, out } = await run(args(rig, SECRET), env(rig, { EDGEFLEET_OLD_KEY: "sk-ant-api03-not-the-old-key-AA" }));
    expect(code).toBe(ROTATE_EXIT.failed);
    expect(err).toMatch(/preflight refused \(nothing was changed\)/);
    expect(err).toMatch(/neither the old key/);
    expect(`${out}${err}`).not.toContain("sk-ant-api03-not-the-old-key-AA");
    expect(rig.cf.requests).toEqual([]);
  });

  it("a refused Cloudflare call stops resumably (exit 4) and leaks nothing", async () => {
    rig = await new Rig({ workers: 2 }).start();
    // The Cloudflare token is wrong (and contains the new key): 403, message on stderr.
    const { code, out, err } = await run(args(rig, SECRET, "--json"), env(rig, { CLOUDFLARE_API_TOKEN: `bad-${rig.newKey}` }));
    expect(code).toBe(ROTATE_EXIT.resume);
    expect(err).toMatch(/Cloudflare refused the secret update of llm-proxy-000: HTTP 403/);
    expectNoSecrets(rig, out, err);
  });

  it("refuses an API base that would carry the Cloudflare token, the Admin API key or the operator token in the clear (exit 2), before any request", async () => {
    rig = await new Rig({ workers: 2, canaries: 0 }).start();
    for (const flag of ["--anthropic-base-url", "--cloudflare-base-url", "--status-via"]) {
      const argv = args(rig, SECRET);
      argv[argv.indexOf(flag) + 1] = "http://192.0.2.9/v1";
      const { code, err } = await run(argv, env(rig));
      expect(code).toBe(ROTATE_EXIT.usage);
      expect(err).toContain(`${flag}: http:// is refused: https:// only`);
    }
    expect(rig.cf.requests).toEqual([]);
    expect(rig.fleet.reads).toBe(0);
  });

  it("refuses to start while another run holds the secret's lock (exit 2), and changes nothing", async () => {
    rig = await new Rig({ workers: 2, canaries: 0 }).start();
    // Another live process (this one's parent) is rotating ANTHROPIC_API_KEY. (This
    // process's own pid with a nonce it does not hold is a lock from before a restart:
    // stale, journal.test.ts.)
    mkdirSync(rig.journalDir, { recursive: true });
    writeFileSync(join(rig.journalDir, "secret-anthropic_api_key.lock"), String(process.ppid));
    const { code, err } = await run(args(rig, SECRET), env(rig));
    expect(code).toBe(ROTATE_EXIT.usage);
    expect(err).toMatch(/secret-anthropic_api_key is being run by process \d+/);
    expect(rig.cf.requests).toEqual([]);
    expect(rig.fleet.reads).toBe(0);
  });

  it("usage errors exit 2 with a reason", async () => {
    rig = await new Rig({ workers: 2 }).start();
    const noKey = env(rig);
    delete noKey.EDGEFLEET_NEW_KEY;
    expect(await run(args(rig, SECRET), noKey)).toMatchObject({ code: 2, err: expect.stringMatching(/no new key: set EDGEFLEET_NEW_KEY or pipe it on stdin/) });
    expect(await run(args(rig, "OPENAI_API_KEY"), env(rig))).toMatchObject({ code: 2, err: expect.stringMatching(/no provider for secret OPENAI_API_KEY/) });
    expect(await run(args(rig), env(rig))).toMatchObject({ code: 2, err: expect.stringMatching(/which secret\?/) });
    const noAdmin = env(rig);
    delete noAdmin.ANTHROPIC_ADMIN_KEY;
    expect(await run(args(rig, SECRET), noAdmin)).toMatchObject({ code: 2, err: expect.stringMatching(/ANTHROPIC_ADMIN_KEY is not set .* or pass --keep-old/) });
    expect(await run(args(rig, "--resume"), env(rig))).toMatchObject({ code: 2, err: expect.stringMatching(/no interrupted rotation to resume/) });
    expect(await run([SECRET, "--confirmations", "0"], env(rig))).toMatchObject({ code: 2 });
    expect(await run(["--rollback"], env(rig))).toMatchObject({ code: 2, err: expect.stringMatching(/--rollback goes with --resume/) });
    expect((await run(["--help"], env(rig))).code).toBe(0);
    expect(rig.cf.requests).toEqual([]);
  });

  it("a stopped rotation blocks a new one of the same secret until resumed", async () => {
    rig = await new Rig({ workers: 3 }).start();
    rig.cf.startGradual("llm-proxy-002");
    const first = await run(args(rig, SECRET), env(rig));
    expect(first.code).toBe(ROTATE_EXIT.resume);
    expect(first.err).toMatch(/llm-proxy-002 cannot take a secret now: a gradual deployment is in progress/);
    expect(first.err).toMatch(/--resume/);
    const second = await run(args(rig, SECRET), env(rig));
    expect(second).toMatchObject({ code: 2, err: expect.stringMatching(/is still open \(stage: .*gradual deployment/) });
    const dry = await run(args(rig, "--resume", "--dry-run"), env(rig));
    expect(dry.out).toMatch(/would resume at stage/);
    rig.deployLatestEverywhere();
    const resumed = await run(args(rig, "--resume"), env(rig));
    expect(resumed.code).toBe(0);
    expect(resumed.out).toMatch(/resuming rotation .* at stage/);
    expectNoSecrets(rig, first.out, first.err, resumed.out, resumed.err);
  });

  it("resume is refused while a Worker that joined the fleet since the start binds the secret", async () => {
    rig = await new Rig({ workers: 2 }).start();
    rig.cf.startGradual("llm-proxy-001");
    expect((await run(args(rig, SECRET), env(rig))).code).toBe(ROTATE_EXIT.resume);
    rig.deployLatestEverywhere();
    // The desired state now has a third Worker binding the key (deployed with the old one).
    const grown = [...rig.workers, { ...rig.workers[0]!, script: "llm-proxy-new", canary: false, statusUrl: "https://api-new.llm.example/_edgefleet/status", hostnames: ["api-new.llm.example"] }];
    const argv = args(rig, "--resume");
    writeFileSync(join(rig.dir, "workers.json"), JSON.stringify(grown));
    const r = await run(argv, env(rig));
    expect(r.code).toBe(ROTATE_EXIT.usage);
    expect(r.err).toMatch(/1 Worker\(s\) bind ANTHROPIC_API_KEY but are not part of rotation .*: llm-proxy-new\. Undo it with --resume --rollback/);
    expect(rig.anthropic.revoked).toEqual([]);
    // Rolling back stays possible.
    expect((await run([...argv, "--rollback"], env(rig))).code).toBe(ROTATE_EXIT.rolledBack);
  });

  it("resume with a different key is refused (exit 2)", async () => {
    rig = await new Rig({ workers: 2 }).start();
    rig.cf.startGradual("llm-proxy-001");
    await run(args(rig, SECRET), env(rig));
    const r = await run(args(rig, "--resume"), env(rig, { EDGEFLEET_NEW_KEY: "sk-ant-api03-some-other-new-key-AA" }));
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/the new key given has fingerprint/);
  });

  it("SIGINT in a child process: stops after the steps in flight (exit 4); --resume completes, each Worker written once", async () => {
    rig = await new Rig({ workers: 14, canaries: 1, latencyMs: () => 60 }).start();
    const r = rig;
    const spawnRotate = (argv: string[]) => {
      const child = spawn(process.execPath, [join(ROOT, "scripts/rotate.ts"), ...argv], { env: env(r), stdio: ["ignore", "pipe", "pipe"] });
      let out = "";
      let err = "";
      child.stdout.on("data", (c: Buffer) => (out += c.toString()));
      child.stderr.on("data", (c: Buffer) => (err += c.toString()));
      const done = new Promise<number | null>((res) => child.on("close", (code) => res(code)));
      return { child, done, out: () => out, err: () => err };
    };
    const first = spawnRotate(args(r, SECRET, "--json", "--concurrency", "2"));
    // Interrupt once the non-canary staging is under way.
    await new Promise<void>((res, rej) => {
      const timer = setInterval(() => {
        if (/"event":"stage\.done","worker":"llm-proxy-00[2-9]"/.test(first.out())) {
          clearInterval(timer);
          first.child.kill("SIGINT");
          res();
        }
      }, 5);
      setTimeout(() => {
        clearInterval(timer);
        rej(new Error(`never reached stage: ${first.out()} ${first.err()}`));
      }, 30_000);
    });
    expect(await first.done).toBe(ROTATE_EXIT.resume);
    expect(first.err()).toMatch(/SIGINT: stopping after the steps in flight/);
    const events = first.out().trim().split("\n").map((l) => JSON.parse(l) as { event: string; result?: string });
    expect(events.at(-1)).toMatchObject({ event: "outcome", result: "interrupted" });
    const stagedBefore = rig.cf.puts.length;
    expect(stagedBefore).toBeLessThan(14);
    expect(rig.anthropic.revoked).toEqual([]);

    const second = spawnRotate(args(r, "--resume", "--json"));
    expect(await second.done).toBe(ROTATE_EXIT.ok);
    const fpNew = fingerprint(rig.newKey);
    for (const w of rig.workers) expect(rig.cf.puts.filter((p) => p.script === w.script && p.fingerprint === fpNew).length, w.script).toBe(1);
    expect(Object.values(rig.served())).toEqual(rig.workers.map(() => "new"));
    expect(rig.anthropic.revoked.length).toBe(1);
    expectNoSecrets(rig, first.out(), first.err(), second.out(), second.err());
  });
});

// Small pieces of the rotation: the redactor, the rate limiter under a virtual clock,
// retry-after parsing, the Admin API key-hint match, ordering and fingerprints.
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { matchesHint } from "./anthropic.ts";
import { RateLimiter } from "./rate-limit.ts";
import { createReporter, redactor } from "./report.ts";
import { fingerprint, workersBindingSecret, type DesiredWorker } from "./workers.ts";

describe("redaction", () => {
  it("replaces every occurrence of a secret in anything the reporter writes", () => {
    const key = "sk-ant-api03-abcdefghijklmnopqrstuvwxyz-AA";
    const r = redactor(() => [key]);
    let out = "";
    let err = "";
    const rep = createReporter({ out: (s) => (out += r(s)), err: (s) => (err += r(s)), json: true, tty: false });
    rep.event({ event: "retry", detail: `upstream said ${key}` });
    rep.error(`boom ${key} boom ${key}`);
    expect(out + err).not.toContain(key);
    expect(err).toBe("rotate: boom [redacted] boom [redacted]\n");
    expect(JSON.parse(out.split("\n")[0]!).detail).toBe("upstream said [redacted]");
  });
  it("replaces anything shaped like an Admin API key hint", () => {
    expect(redactor(() => [])("key sk-ant-api03-R2D...igAA is active")).toBe("key [key hint] is active");
  });
});

describe("RateLimiter", () => {
  it("never lets more than `limit` requests into any window, counting in-flight ones", async () => {
    let now = 0;
    const sleeps: number[] = [];
    const lim = new RateLimiter({ limit: 3, windowMs: 1000, now: () => now, sleep: async (ms) => { sleeps.push(ms); now += ms; } });
    const starts: number[] = [];
    for (let i = 0; i < 7; i++) await lim.run(async () => { starts.push(now); now += 100; });
    // A slot is held from its start until one window after its end.
    expect(starts).toEqual([0, 100, 200, 1100, 1200, 1300, 2200]);
    for (const s of starts) expect(starts.filter((x) => x >= s && x < s + 1000).length).toBeLessThanOrEqual(3);
  });
  it("pause() holds every caller", async () => {
    let now = 0;
    const lim = new RateLimiter({ limit: 100, windowMs: 1000, now: () => now, sleep: async (ms) => { now += ms; } });
    lim.pause(5000);
    await lim.run(async () => {});
    expect(now).toBe(5000);
  });
});

describe("key hints", () => {
  it("match the prefix and the suffix the Admin API shows", () => {
    const key = "sk-ant-api03-R2D" + "x".repeat(70) + "igAA";
    expect(matchesHint(key, "sk-ant-api03-R2D...igAA")).toBe(true);
    expect(matchesHint(key, "sk-ant-api03-R2E...igAA")).toBe(false);
    expect(matchesHint(key, "sk-ant-api03-R2D...igAB")).toBe(false);
    expect(matchesHint("sk-igAA", "sk-ant-api03-R2D...igAA")).toBe(false);
    expect(matchesHint(key, "no-ellipsis")).toBe(false);
  });
});

describe("workers and fingerprints", () => {
  const w = (script: string, canary: boolean, binding = "ANTHROPIC_API_KEY"): DesiredWorker => ({ script, source: "llm-proxy", canary, secrets: [{ binding, config: "k" }], hostnames: [], statusUrl: null });
  it("orders canaries first, then by script; skips Workers without the binding", () => {
    const got = workersBindingSecret([w("b", false), w("z", true), w("a", false), w("c", false, "OTHER"), w("y", true)], "ANTHROPIC_API_KEY");
    expect(got.map((x) => x.script)).toEqual(["y", "z", "a", "b"]);
  });
  it("fingerprints like the Worker's status endpoint (sha256, 12 hex digits)", () => {
    // SHA-256("abc") = ba7816bf8f01cfea414140de5dae2223...
    expect(fingerprint("abc")).toBe("sha256:ba7816bf8f01");
  });
});

describe("operator code never imports test code", () => {
  // The rotation's part of the rule (scripts/rotate.ts and scripts/lib/rotate/): its fakes
  // moved to test/fakes/ and test/support/rotation-rig.ts. The repository-wide check is
  // test/ territory (the other areas' helpers are moved by their owners).
  it("no non-test rotation file imports from test/ or a fakes folder", () => {
    const root = resolve(import.meta.dirname, "../../..");
    const files = [join(root, "scripts/rotate.ts"), ...(readdirSync(import.meta.dirname, { recursive: true }) as string[])
      .filter((f) => f.endsWith(".ts") && !f.endsWith(".test.ts"))
      .map((f) => join(import.meta.dirname, f))];
    expect(files.length).toBeGreaterThan(10);
    const offenders: string[] = [];
    for (const f of files) {
      for (const m of readFileSync(f, "utf8").matchAll(/(?:from|import)\s*\(?\s*["']([^"']+)["']/g)) {
        const spec = m[1]!;
        if (!spec.startsWith(".")) continue;
        const target = relative(root, resolve(dirname(f), spec));
        if (target.startsWith("test/") || /(^|\/)(fakes|test)\//.test(target)) offenders.push(`${relative(root, f)} -> ${spec}`);
      }
    }
    expect(offenders).toEqual([]);
  });
});

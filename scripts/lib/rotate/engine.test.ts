// The rotation engine against stateful loopback fakes (Cloudflare secrets API, a fleet
// of status endpoints, the Anthropic API, a fake pulumi): order, confirmation, roll
// back, gradual deployments, retries, the rate limit, persist and revoke.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import { resumeRotation, startRotation } from "./engine.ts";
import { Rig, SECRET } from "../../../test/support/rotation-rig.ts";
import { fingerprint } from "./workers.ts";

let rig: Rig | undefined;
afterEach(async () => {
  await rig?.stop();
  rig = undefined;
});
const sha = (s: string) => createHash("sha256").update(s).digest("hex");

describe("rotation engine", () => {
  it("rotates: canary staged and confirmed before any other Worker, then persist, then revoke", async () => {
    rig = await new Rig({ workers: 12, canaries: 1, fleet: { propagationMs: () => 30 } }).start();
    const out = await startRotation(rig.request(), rig.keys, rig.deps());
    expect(out.result).toBe("done");
    expect(Object.values(rig.served())).toEqual(Array(12).fill("new"));
    // Canary first: its PUT is the first, and it was confirmed before the second PUT.
    const puts = rig.cf.puts;
    expect(puts.length).toBe(12);
    expect(puts[0]!.script).toBe("llm-proxy-000");
    const order = rig.events.map((e) => `${e.event}:${(e.worker as string | undefined) ?? ""}`);
    expect(order.indexOf("confirm.done:llm-proxy-000")).toBeLessThan(order.indexOf("stage.done:llm-proxy-001"));
    expect(new Set(puts.map((p) => p.fingerprint))).toEqual(new Set([fingerprint(rig.newKey)]));
    // Persist through the CLI with the value on stdin, never in argv.
    const calls = rig.pulumi.calls();
    expect(calls).toEqual([{ args: ["config", "set", "--secret", "--stack", "test", "edgefleet:anthropicApiKey"], stdinSha256: sha(rig.newKey), cwd: rig.dir }]);
    // Revoke: exactly the old key, after persist; the new one stays active.
    expect(rig.keyStatus(rig.oldKey)).toBe("inactive");
    expect(rig.keyStatus(rig.newKey)).toBe("active");
    expect(rig.anthropic.revoked.length).toBe(1);
    expect(order.indexOf("persist.done:")).toBeLessThan(order.indexOf("revoke.done:"));
    // The documented header, not the SDK's Bearer default.
    expect(new Set(rig.anthropic.requests.map((r) => r.auth))).toEqual(new Set(["x-api-key"]));
    // Each step exactly once, in the journal.
    const steps = out.journal!.steps.map((s) => s.step);
    expect(new Set(steps).size).toBe(steps.length);
    expect(steps.filter((s) => s.startsWith("stage:")).length).toBe(12);
    expect(steps.filter((s) => s.startsWith("confirm:")).length).toBe(12);
    expect(steps.at(-1)).toBe("enter:done");
    const text = readFileSync(rig.store().path("rot-1"), "utf8");
    for (const s of rig.secretValues) expect(text).not.toContain(s);
    expect(JSON.stringify(rig.events)).not.toContain(rig.newKey);
  });

  it("persists every distinct config key once", async () => {
    rig = await new Rig({ workers: 4, twoConfigs: true }).start();
    expect((await startRotation(rig.request(), rig.keys, rig.deps())).result).toBe("done");
    expect(rig.pulumi.calls().map((c) => c.args.at(-1)).sort()).toEqual(["edgefleet:anthropicApiKey", "edgefleet:anthropicApiKeyEu"]);
  });

  it("a lagging Worker leads to roll back, not revoke, and is named", async () => {
    rig = await new Rig({ workers: 6, lagging: ["llm-proxy-004"], fleet: { propagationMs: () => 10 } }).start();
    const out = await startRotation(rig.request(), rig.keys, rig.deps({ timing: { confirmTimeoutMs: 400 } }));
    expect(out.result).toBe("rolled-back");
    expect(out.workers).toEqual(["llm-proxy-004"]);
    expect(rig.anthropic.revoked).toEqual([]);
    expect(rig.keyStatus(rig.oldKey)).toBe("active");
    expect(rig.pulumi.calls()).toEqual([]);
    // Every Worker that had been changed serves (or will serve) the old key again.
    for (const w of rig.workers) expect(rig.fleet.latest(w.script, SECRET)).toBe(rig.oldKey);
    const restored = rig.cf.puts.filter((p) => p.fingerprint === fingerprint(rig!.oldKey)).map((p) => p.script).sort();
    expect(restored).toEqual(rig.workers.map((w) => w.script));
  });

  it("a canary that does not confirm stops before any other Worker is touched", async () => {
    rig = await new Rig({ workers: 5, lagging: ["llm-proxy-000"] }).start();
    const out = await startRotation(rig.request(), rig.keys, rig.deps({ timing: { confirmTimeoutMs: 200 } }));
    expect(out.result).toBe("rolled-back");
    expect(rig.cf.puts.map((p) => p.script)).toEqual(["llm-proxy-000", "llm-proxy-000"]);
    expect(rig.anthropic.revoked).toEqual([]);
  });

  it("needs K reports in a row: a Worker that flips back to the old key starts counting again", async () => {
    // Reads of llm-proxy-001 after its write: new, new, new, OLD, new, new, new, new.
    rig = await new Rig({ workers: 2, canaries: 0, fleet: { readPattern: (s, n) => (s === "llm-proxy-001" && n === 4 ? "previous" : undefined) } }).start();
    let readsAtConfirm = -1;
    const deps = rig.deps();
    const emit = deps.emit;
    deps.emit = (e) => {
      if (e.event === "confirm.done" && e.worker === "llm-proxy-001") readsAtConfirm = rig!.fleet.readsSinceWrite.get("llm-proxy-001")!;
      emit(e);
    };
    const out = await startRotation(rig.request("r", { confirmations: 4 }), rig.keys, deps);
    expect(out.result).toBe("done");
    // Counting new reads without the reset would have confirmed at read 5.
    expect(readsAtConfirm).toBe(8);
  });

  it("a gradual deployment stops the rollout with a clear message; resume completes it", async () => {
    rig = await new Rig({ workers: 6 }).start();
    rig.cf.startGradual("llm-proxy-003");
    const out = await startRotation(rig.request("r", { concurrency: 1 }), rig.keys, rig.deps());
    expect(out.result).toBe("stopped");
    expect(out.message).toMatch(/llm-proxy-003 cannot take a secret now: a gradual deployment is in progress .*error 10215/);
    expect(rig.anthropic.revoked).toEqual([]);
    expect(rig.cf.puts.map((p) => p.script)).toEqual(["llm-proxy-000", "llm-proxy-001", "llm-proxy-002"]);
    rig.deployLatestEverywhere();
    const j = rig.store().load("r");
    expect(j.stopped).toMatch(/gradual deployment/);
    const again = await resumeRotation(j, rig.keys, rig.deps());
    expect(again.result).toBe("done");
    expect(rig.cf.puts.map((p) => p.script)).toEqual(rig.workers.map((w) => w.script));
    expect(rig.keyStatus(rig.oldKey)).toBe("inactive");
  });

  it("retries 5xx and honours retry-after on 429, pausing every caller", async () => {
    rig = await new Rig({ workers: 10, canaries: 0, cloudflare: { retryAfterS: 1 }, latencyMs: () => 20 }).start();
    rig.cf.failNext.set("llm-proxy-001", 2);
    rig.cf.throttleNext.set("llm-proxy-002", 1);
    const out = await startRotation(rig.request("r", { concurrency: 2 }), rig.keys, rig.deps());
    expect(out.result).toBe("done");
    const throttled = rig.cf.requests.find((r) => r.status === 429)!;
    // Nothing reached Cloudflare during the second it asked for, from any caller, except
    // at most the other lane's request already in flight at that moment (concurrency 2).
    const during = rig.cf.requests.filter((r) => r.at > throttled.at && r.at < throttled.at + 990);
    expect(during.length).toBeLessThanOrEqual(1);
    const putsOf = (script: string) => rig!.cf.requests.filter((r) => r.script === script && r.method === "PUT").map((r) => r.status);
    expect(putsOf("llm-proxy-002")).toEqual([429, 200]);
    expect(rig.cf.requests.filter((r) => r.at >= throttled.at + 990).length).toBeGreaterThan(3);
    expect(putsOf("llm-proxy-001")).toEqual([500, 500, 200]);
  });

  it("gives up after bounded retries and stops resumably", async () => {
    rig = await new Rig({ workers: 3, canaries: 0 }).start();
    rig.cf.failNext.set("llm-proxy-001", 99);
    const out = await startRotation(rig.request(), rig.keys, rig.deps());
    expect(out.result).toBe("stopped");
    expect(out.message).toMatch(/llm-proxy-001 failed after 5 attempts: HTTP 500/);
    expect(rig.cf.requests.filter((r) => r.script === "llm-proxy-001" && r.method === "PUT").length).toBe(5);
  });

  it("stays inside the rate limit (counted by the fake, per window)", async () => {
    rig = await new Rig({ workers: 30, canaries: 0, cloudflare: { limit: 8, windowMs: 400, blockMs: 5000 }, latencyMs: () => 5 }).start();
    const out = await startRotation(rig.request("r", { concurrency: 16 }), rig.keys, rig.deps({ rateLimit: { limit: 8, windowMs: 400 } }));
    expect(out.result).toBe("done");
    expect(rig.cf.limitHits).toBe(0);
    expect(rig.cf.maxInWindow).toBeLessThanOrEqual(8);
    // Three calls a Worker: the secret PUT, the deployments read after it, the one in the final sweep.
    expect(rig.cf.requests.length).toBe(90);
  });

  it("without the client-side limiter the same run trips the fake's limit (the test can fail)", async () => {
    rig = await new Rig({ workers: 30, canaries: 0, cloudflare: { limit: 8, windowMs: 400, blockMs: 300 }, latencyMs: () => 5 }).start();
    await startRotation(rig.request("r", { concurrency: 16 }), rig.keys, rig.deps({ rateLimit: { limit: 1000, windowMs: 400 } }));
    expect(rig.cf.limitHits).toBeGreaterThan(0);
  });

  it("--keep-old: rotates and persists but never calls the Admin API", async () => {
    rig = await new Rig({ workers: 3 }).start();
    const out = await startRotation(rig.request("r", { keepOld: true }), rig.keys, rig.deps());
    expect(out.result).toBe("done");
    expect(rig.anthropic.requests.filter((r) => r.path.startsWith("/v1/organizations"))).toEqual([]);
    expect(rig.keyStatus(rig.oldKey)).toBe("active");
  });

  describe("preflight refuses, and changes nothing", () => {
    it("when the new key is the old key", async () => {
      rig = await new Rig({ workers: 2 }).start();
      const out = await startRotation(rig.request(), { newKey: rig.oldKey, oldKey: rig.oldKey }, rig.deps());
      expect(out.result).toBe("refused");
      expect(out.problems).toContain("the new key is the old key");
      expect(rig.cf.requests).toEqual([]);
    });
    it("when the provider rejects the new key", async () => {
      rig = await new Rig({ workers: 2 }).start();
      rig.anthropic.keys.find((k) => k.value === rig!.newKey)!.status = "inactive";
      const out = await startRotation(rig.request(), rig.keys, rig.deps());
      expect(out.result).toBe("refused");
      expect(out.problems?.join("\n")).toMatch(/new key does not work: Anthropic rejected the key \(HTTP 401\)/);
      expect(rig.cf.requests).toEqual([]);
    });
    it("when a Worker runs neither key (the old key given is wrong)", async () => {
      rig = await new Rig({ workers: 3 }).start();
      rig.fleet.write("llm-proxy-002", SECRET, "sk-ant-api03-something-else-entirely-AA");
      const out = await startRotation(rig.request(), rig.keys, rig.deps());
      expect(out.result).toBe("refused");
      expect(out.problems?.join("\n")).toMatch(/llm-proxy-002 reports sha256:[0-9a-f]{12} for ANTHROPIC_API_KEY, neither the old key/);
      expect(rig.cf.requests).toEqual([]);
    });
    it("when the old key is not an active key of the organization", async () => {
      rig = await new Rig({ workers: 2 }).start();
      rig.anthropic.keys.find((k) => k.value === rig!.oldKey)!.status = "inactive";
      const out = await startRotation(rig.request(), rig.keys, rig.deps());
      expect(out.result).toBe("refused");
      expect(out.problems?.join("\n")).toMatch(/no active key of the organization matches the old key/);
    });
    it("when a Worker has no status endpoint", async () => {
      rig = await new Rig({ workers: 2 }).start();
      const req = rig.request();
      req.workers = [{ ...req.workers[0]!, statusUrl: null }, req.workers[1]!];
      const out = await startRotation(req, rig.keys, rig.deps());
      expect(out.problems?.join("\n")).toMatch(/llm-proxy-000 has no status endpoint/);
      expect(rig.cf.requests).toEqual([]);
    });
  });

  describe("persist", () => {
    it("without the Pulumi CLI: stops before revoke with the command to run; --persisted-by-hand completes", async () => {
      rig = await new Rig({ workers: 2 }).start();
      const out = await startRotation(rig.request(), rig.keys, rig.deps({ pulumiBin: `${rig.dir}/no-such-pulumi` }));
      expect(out.result).toBe("stopped");
      expect(out.message).toMatch(/Pulumi CLI .* was not found .* old one is NOT revoked.*config set --secret --stack test edgefleet:anthropicApiKey/);
      expect(rig.anthropic.revoked).toEqual([]);
      const again = await resumeRotation(rig.store().load("rot-1"), rig.keys, rig.deps(), { persistedByHand: true });
      expect(again.result).toBe("done");
      expect(again.journal!.persist).toEqual([{ config: "anthropicApiKey", state: "by-hand" }]);
      expect(rig.keyStatus(rig.oldKey)).toBe("inactive");
    });
    it("a failing CLI stops the rotation; resume retries persist and completes", async () => {
      rig = await new Rig({ workers: 2 }).start();
      process.env.FAKE_PULUMI_FAIL = "1";
      let out;
      try {
        out = await startRotation(rig.request(), rig.keys, rig.deps());
      } finally {
        delete process.env.FAKE_PULUMI_FAIL;
      }
      expect(out.result).toBe("stopped");
      expect(out.message).toMatch(/failed \(exit 1\): error: fake-pulumi: failing as asked/);
      const again = await resumeRotation(rig.store().load("rot-1"), rig.keys, rig.deps());
      expect(again.result).toBe("done");
      expect(rig.pulumi.calls().length).toBe(2);
    });
  });

  it("the final sweep refuses to revoke when a Worker went back to the old key after confirming", async () => {
    rig = await new Rig({ workers: 3 }).start();
    let sabotaged = false;
    const deps = rig.deps({
      afterStep: (_n, step) => {
        // A concurrent `pulumi up` with the old config puts the old key back.
        if (step.startsWith("persist:") && !sabotaged) {
          sabotaged = true;
          rig!.fleet.write("llm-proxy-002", SECRET, rig!.oldKey);
        }
      },
    });
    const out = await startRotation(rig.request(), rig.keys, deps);
    expect(out.result).toBe("stopped");
    expect(out.workers).toEqual(["llm-proxy-002"]);
    expect(out.message).toMatch(/old key was NOT revoked/);
    expect(rig.anthropic.revoked).toEqual([]);
  });

  it("a roll back that does not confirm is not final: --resume retries it (writes the old key again) and completes", async () => {
    // llm-proxy-002 never serves the new key; while `stuck`, it serves no new deployment at all.
    let stuck = true;
    rig = await new Rig({ workers: 3, lagging: ["llm-proxy-002"], fleet: { propagationMs: (s) => (s === "llm-proxy-002" && stuck ? 3_600_000 : 5) } }).start();
    const timing = { confirmTimeoutMs: 1500 };
    const first = await startRotation(rig.request(), rig.keys, rig.deps({ timing }));
    expect(first.result).toBe("rollback-failed");
    expect(first.workers).toEqual(["llm-proxy-002"]);
    expect(first.message).toMatch(/--resume retries the roll back/);
    const j = rig.store().load("rot-1");
    expect(j.phase).toBe("rollback-failed");
    // Still open: a new rotation of the secret is refused, resume is not.
    expect(rig.store().open().map((x) => x.id)).toEqual(["rot-1"]);
    stuck = false;
    const restoresBefore = rig.cf.puts.filter((p) => p.script === "llm-proxy-002" && p.fingerprint === fingerprint(rig!.oldKey)).length;
    const again = await resumeRotation(j, rig.keys, rig.deps({ timing }));
    expect(again.result).toBe("rolled-back");
    expect(rig.cf.puts.filter((p) => p.script === "llm-proxy-002" && p.fingerprint === fingerprint(rig!.oldKey)).length).toBe(restoresBefore + 1);
    for (const w of rig.workers) expect(rig.fleet.served(w.script, SECRET)).toBe(rig.oldKey);
    expect(rig.anthropic.revoked).toEqual([]);
    const steps = again.journal!.steps.map((s) => s.step);
    expect(new Set(steps).size).toBe(steps.length);
    expect(steps).toContain("restore#2:llm-proxy-002");
    expect(steps.at(-1)).toBe("enter#2:rolled-back");
  });

  it("resume refuses keys that do not match the journal's fingerprints", async () => {
    rig = await new Rig({ workers: 2 }).start();
    rig.cf.startGradual("llm-proxy-001");
    await startRotation(rig.request(), rig.keys, rig.deps());
    const out = await resumeRotation(rig.store().load("rot-1"), { newKey: rig.oldKey, oldKey: rig.newKey }, rig.deps());
    expect(out.result).toBe("refused");
    expect(out.problems?.[0]).toMatch(/new key given has fingerprint .* the journal's is/);
  });

  it("--rollback on resume restores the old key where it was staged, and leaves alone the Worker whose write was refused", async () => {
    rig = await new Rig({ workers: 4 }).start();
    rig.cf.startGradual("llm-proxy-002");
    await startRotation(rig.request("r", { concurrency: 1 }), rig.keys, rig.deps());
    // 10215 means nothing was written to llm-proxy-002: the journal says so (pending), and
    // the roll back does not need it, even while its gradual deployment goes on.
    expect(rig.store().load("r").workers.find((w) => w.script === "llm-proxy-002")!.state).toBe("pending");
    const out = await resumeRotation(rig.store().load("r"), rig.keys, rig.deps(), { rollback: true });
    expect(out.result).toBe("rolled-back");
    for (const w of rig.workers) expect(rig.fleet.latest(w.script, SECRET)).toBe(rig.oldKey);
    // Only the Workers that had taken the new key were written again.
    expect(rig.cf.puts.map((p) => p.script)).toEqual(["llm-proxy-000", "llm-proxy-001", "llm-proxy-000", "llm-proxy-001"]);
  });
});

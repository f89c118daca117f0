// Property: over random propagation delays, lagging Workers, Cloudflare failures (5xx,
// dropped connections, 429 with retry-after, gradual deployments) and failing status
// reads, the old key is NEVER revoked while any Worker may still serve it, and every
// rotation ends (after resumes) either rotated everywhere or rolled back everywhere.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { resumeRotation, startRotation, type Outcome } from "./engine.ts";
import { Rig, SECRET } from "../../../test/support/rotation-rig.ts";

describe("property: never revoke while a Worker still serves the old key", () => {
  it("holds over random delays and failures", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          workers: fc.integer({ min: 2, max: 6 }),
          canaries: fc.integer({ min: 0, max: 2 }),
          delays: fc.array(fc.integer({ min: 0, max: 60 }), { minLength: 6, maxLength: 6 }),
          lagging: fc.option(fc.integer({ min: 0, max: 5 }), { nil: undefined }),
          failRate: fc.double({ min: 0, max: 0.3, noNaN: true }),
          dropRate: fc.double({ min: 0, max: 0.1, noNaN: true }),
          lostAnswerRate: fc.double({ min: 0, max: 0.1, noNaN: true }),
          throttleRate: fc.double({ min: 0, max: 0.15, noNaN: true }),
          statusFailRate: fc.double({ min: 0, max: 0.3, noNaN: true }),
          gradual: fc.option(fc.integer({ min: 0, max: 5 }), { nil: undefined }),
          concurrency: fc.integer({ min: 1, max: 4 }),
          seed: fc.integer({ min: 1, max: 1_000_000 }),
        }),
        async (c) => {
          const lagging = c.lagging !== undefined && c.lagging < c.workers ? `llm-proxy-${String(c.lagging).padStart(3, "0")}` : undefined;
          const rig = await new Rig({
            workers: c.workers,
            canaries: Math.min(c.canaries, c.workers),
            lagging: lagging ? [lagging] : [],
            fleet: { propagationMs: (s) => c.delays[Number(s.slice(-3)) % 6]!, failRate: c.statusFailRate, seed: c.seed },
            cloudflare: { failRate: c.failRate, dropRate: c.dropRate, lostAnswerRate: c.lostAnswerRate, throttleRate: c.throttleRate, retryAfterS: 0, seed: c.seed + 1 },
          }).start();
          const violations: string[] = [];
          rig.anthropic.onUpdate = (k, status) => {
            if (status !== "inactive" || k.value !== rig.oldKey) return;
            for (const w of rig.workers) if (rig.fleet.mayStillServe(w.script, SECRET, rig.oldKey)) violations.push(w.script);
          };
          if (c.gradual !== undefined && c.gradual < c.workers) rig.cf.startGradual(`llm-proxy-${String(c.gradual).padStart(3, "0")}`);
          try {
            const timing = { confirmTimeoutMs: 1500 };
            let out: Outcome = await startRotation(rig.request("p", { concurrency: c.concurrency }), rig.keys, rig.deps({ timing, backoffMs: 1 }));
            if (out.result === "refused") {
              // Preflight may refuse (e.g. status reads keep failing); then nothing changed.
              expect(rig.cf.puts).toEqual([]);
              expect(rig.anthropic.revoked).toEqual([]);
              expect(violations).toEqual([]);
              return;
            }
            for (let i = 0; i < 6 && (out.result === "stopped" || out.result === "interrupted"); i++) {
              // The operator finishes the gradual deployment, then resumes.
              rig.deployLatestEverywhere();
              out = await resumeRotation(rig.store().load("p"), rig.keys, rig.deps({ timing, backoffMs: 1 }));
            }
            expect(violations).toEqual([]);
            expect(["done", "rolled-back"]).toContain(out.result);
            if (out.result === "done") {
              expect(lagging).toBeUndefined();
              expect(Object.values(rig.served())).toEqual(rig.workers.map(() => "new"));
              expect(rig.keyStatus(rig.oldKey)).toBe("inactive");
            } else {
              for (const w of rig.workers) expect(rig.fleet.latest(w.script, SECRET)).toBe(rig.oldKey);
              expect(rig.keyStatus(rig.oldKey)).toBe("active");
              expect(rig.anthropic.revoked).toEqual([]);
            }
            const steps = out.journal!.steps.map((s) => s.step);
            expect(new Set(steps).size).toBe(steps.length);
          } finally {
            await rig.stop();
          }
        },
      ),
      { numRuns: 25 },
    );
  }, 900_000);
});

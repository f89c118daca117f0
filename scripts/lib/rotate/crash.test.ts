// An interruption injected at EVERY journal write of a rotation (the process "dies"
// right after write n: the hook throws and the store refuses any later write), then a
// resume from what is on disk: the rotation always ends correctly, no completed step is
// done again and none is skipped. Effects in flight at the crash (intent recorded,
// completion not) are re-issued once; the test checks it is exactly those.
import { describe, expect, it } from "vitest";
import { resumeRotation, startRotation, type Outcome } from "./engine.ts";
import { CrashedError, FINISHED, type Journal } from "./journal.ts";
import { Rig, SECRET } from "../../../test/support/rotation-rig.ts";
import { fingerprint } from "./workers.ts";

class Crash extends Error {}

interface Scenario {
  name: string;
  rig: () => Rig;
  timing: { confirmTimeoutMs: number };
  expected: "done" | "rolled-back";
}

const scenarios: Scenario[] = [
  { name: "a rotation that completes", rig: () => new Rig({ workers: 5, canaries: 1, twoConfigs: true, fleet: { propagationMs: () => 5 } }), timing: { confirmTimeoutMs: 5000 }, expected: "done" },
  {
    name: "a rotation that rolls back (one Worker lags)",
    rig: () => new Rig({ workers: 4, canaries: 1, lagging: ["llm-proxy-002"], fleet: { propagationMs: () => 5 } }),
    // Room for the roll back's own confirmation on a loaded machine (it waits for the restored version).
    timing: { confirmTimeoutMs: 1500 },
    expected: "rolled-back",
  },
];

async function runOnce(s: Scenario, crashAt?: number): Promise<{ rig: Rig; outcome?: Outcome; atCrash?: Journal; writes: number }> {
  const rig = await s.rig().start();
  const deps = rig.deps({
    timing: s.timing,
    afterStep: (n) => {
      if (n === crashAt) throw new Crash(`crash after write ${n}`);
    },
  });
  try {
    const outcome = await startRotation(rig.request("r", { concurrency: 2 }), rig.keys, deps);
    return { rig, outcome, writes: deps.store.writes };
  } catch (e) {
    if (!(e instanceof Crash) && !(e instanceof CrashedError)) throw e;
    return { rig, atCrash: rig.store().load("r"), writes: deps.store.writes };
  }
}

describe("interrupted at every step, then resumed", () => {
  for (const s of scenarios) {
    it(`${s.name}: ends ${s.expected}, no step repeated or skipped`, async () => {
      const base = await runOnce(s);
      expect(base.outcome?.result).toBe(s.expected);
      const baseSteps = base.outcome!.journal!.steps.map((x) => x.step);
      const total = base.writes;
      await base.rig.stop();
      expect(total).toBeGreaterThan(15);

      for (let n = 1; n <= total; n++) {
        const { rig, atCrash, outcome } = await runOnce(s, n);
        try {
          expect(outcome, `write ${n} should have crashed the run`).toBeUndefined();
          const before = atCrash!;
          const fpNew = fingerprint(rig.newKey);
          const newPuts = (script: string) => rig.cf.puts.filter((p) => p.script === script && p.fingerprint === fpNew).length;
          const putsAtCrash = new Map(before.workers.map((w) => [w.script, newPuts(w.script)]));
          const callsAtCrash = rig.pulumi.calls().length;
          let final: Journal;
          if (FINISHED.includes(before.phase)) {
            // The crash came after the last write: nothing is left to do, and resume says so.
            expect(before.phase).toBe(s.expected);
            expect((await resumeRotation(before, rig.keys, rig.deps({ timing: s.timing }))).problems?.[0]).toMatch(/is finished/);
            final = before;
          } else {
            const resumed = await resumeRotation(rig.store().load("r"), rig.keys, rig.deps({ timing: s.timing }));
            expect(resumed.result, `crash after write ${n}`).toBe(s.expected);
            final = resumed.journal!;
          }
          const steps = final.steps.map((x) => x.step);
          // None repeated, none skipped: the same steps as an uninterrupted run.
          expect(new Set(steps).size, `crash after write ${n}: a step was repeated`).toBe(steps.length);
          expect([...steps].sort(), `crash after write ${n}`).toEqual([...baseSteps].sort());
          // What was done before the crash is a prefix of the final record.
          expect(steps.slice(0, before.steps.length)).toEqual(before.steps.map((x) => x.step));

          // Effects: a write recorded as done is never sent again; one recorded as intended
          // (pending, or staging: in flight at the crash, outcome unknown) is sent once more.
          for (const w of before.workers) {
            const resent = newPuts(w.script) - putsAtCrash.get(w.script)!;
            const open = w.state === "pending" || w.state === "staging";
            if (s.expected === "done") expect(resent, `${w.script} (${w.state}) after write ${n}`).toBe(open ? 1 : 0);
            else expect(resent, `${w.script} (${w.state}) after write ${n}`).toBeLessThanOrEqual(open ? 1 : 0);
            // At most one send before the crash and one re-send after it.
            expect(newPuts(w.script)).toBeLessThanOrEqual(2);
          }
          if (s.expected !== "done") {
            // Rolling back restores the old key on every Worker that ever got the new one.
            const fpOld = fingerprint(rig.oldKey);
            for (const w of rig.workers) {
              if (newPuts(w.script) === 0) continue;
              const last = rig.cf.puts.filter((p) => p.script === w.script).at(-1)!;
              expect(last.fingerprint, `${w.script} restored after write ${n}`).toBe(fpOld);
            }
          }
          if (s.expected === "done") {
            expect(Object.values(rig.served())).toEqual(rig.workers.map(() => "new"));
            expect(rig.anthropic.revoked).toEqual([rig.anthropic.keys.find((k) => k.value === rig.oldKey)!.id]);
            const open = before.persist.filter((p) => p.state === "running" || p.state === "pending").length;
            expect(rig.pulumi.calls().length, `persist calls after write ${n}`).toBe(callsAtCrash + open);
            expect(new Set(rig.pulumi.calls().map((c) => c.args.at(-1))).size).toBe(2);
          } else {
            for (const w of rig.workers) expect(rig.fleet.latest(w.script, SECRET), `${w.script} after write ${n}`).toBe(rig.oldKey);
            expect(rig.anthropic.revoked).toEqual([]);
            expect(rig.pulumi.calls()).toEqual([]);
          }
        } finally {
          await rig.stop();
        }
      }
    }, 900_000);
  }
});

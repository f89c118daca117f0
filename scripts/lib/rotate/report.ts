// How `npm run rotate` talks: human lines (with a progress bar on a TTY, quiet
// otherwise) or, with --json, one JSON event per line on stdout. Everything it writes
// passes through the redactor, which replaces any key or token value by [redacted]:
// the engine never puts one in an event, and this makes sure an error text cannot either.
import cliProgress from "cli-progress";
import type { Outcome, RotationEvent } from "./engine.ts";
import type { Journal } from "./journal.ts";

/**
 * Replaces every secret value in `s` by [redacted], and anything shaped like an Anthropic
 * key hint ("sk-ant-api03-R2D...igAA", the Admin API's partial_key_hint) by [key hint]:
 * the rotation never prints one, and this keeps an error text from doing so either.
 */
export function redactor(secrets: () => readonly string[]): (s: string) => string {
  return (s) => {
    let r = s;
    for (const v of secrets()) if (v.length >= 4) r = r.split(v).join("[redacted]");
    return r.replace(/sk-ant-[A-Za-z0-9_-]*\.{3}[A-Za-z0-9_-]+/g, "[key hint]");
  };
}

export interface ReporterOptions {
  out: (s: string) => void;
  err: (s: string) => void;
  json: boolean;
  tty: boolean;
  now?: () => Date;
}

export interface PlanView {
  secret: string;
  workers: number;
  order: { script: string; canary: boolean; statusUrl: string | null }[];
  missingStatus: string[];
  persist: string[];
  revoke: boolean;
  confirmations: number;
  concurrency: number;
  source: string;
  stack: string;
  persistCommand: string;
}

export function createReporter(o: ReporterOptions) {
  let bar: cliProgress.SingleBar | undefined;
  let rotation: string | undefined;
  const stopBar = () => {
    bar?.stop();
    bar = undefined;
  };
  const startBar = (label: string, total: number, value: number) => {
    if (!o.tty) return;
    stopBar();
    bar = new cliProgress.SingleBar(
      { format: `${label.padEnd(16)} [{bar}] {value}/{total} Workers  {duration_formatted}`, stream: process.stderr, hideCursor: true, clearOnComplete: false },
      cliProgress.Presets.shades_classic,
    );
    bar.start(total, value);
  };
  const line = (s: string) => {
    if (o.json) return;
    if (bar) bar.stop();
    o.out(`${s}\n`);
    if (bar) bar = undefined;
  };
  const json = (e: RotationEvent) => {
    if (!o.json) return;
    o.out(`${JSON.stringify({ ts: (o.now?.() ?? new Date()).toISOString(), ...(rotation ? { rotation } : {}), ...e })}\n`);
  };

  return {
    event(e: RotationEvent) {
      if (e.event === "plan" && typeof e.rotation === "string") rotation = e.rotation;
      if (e.event === "resume" && typeof e.rotation === "string") rotation = e.rotation;
      json(e);
      if (o.json) return;
      switch (e.event) {
        case "plan": {
          const order = e.order as { script: string; canary: boolean }[];
          const canaries = order.filter((w) => w.canary).map((w) => w.script);
          line(`rotation ${e.rotation}: ${e.secret} on ${order.length} Worker(s)${canaries.length ? `, canary first: ${canaries.join(", ")}` : ""}`);
          break;
        }
        case "preflight.key-works":
          line(`  ok  the new key works (${e.fingerprint})`);
          break;
        case "preflight.old-key-found":
          line(`  ok  the old key is ${e.id} (${e.name}, ${e.fingerprint}) at Anthropic`);
          break;
        case "preflight.fleet-on-old-key":
          line(`  ok  all ${e.workers} Worker(s) run the old key (${e.fingerprint})`);
          break;
        case "preflight.refused":
          o.err(`rotate: preflight refused (nothing was changed):\n${(e.problems as string[]).map((p) => `  - ${p}`).join("\n")}\n`);
          break;
        case "preflight.ok":
          line(`journal: ${e.journal}`);
          break;
        case "resume":
          line(`resuming rotation ${e.rotation} at ${e.phase} (${e.steps} step(s) done${e.stopped ? `; it stopped: ${e.stopped}` : ""})`);
          break;
        case "stage.start":
          if ((e.workers as number) > 0) line(`staging the new key on ${e.workers} Worker(s)${e.canary ? " (canary)" : ""}`);
          startBar(e.canary ? "stage (canary)" : "stage", e.of as number, (e.of as number) - (e.workers as number));
          break;
        case "stage.done":
          bar?.increment();
          if (e.canary && !o.tty) line(`  staged ${e.worker}`);
          break;
        case "confirm.start":
        case "restore-confirm.start":
          stopBar();
          line(`${e.event === "confirm.start" ? "confirming" : "confirming the old key on"} ${e.workers} Worker(s): ${e.fingerprint} ${e.confirmations} time(s) in a row`);
          startBar(e.event === "confirm.start" ? "confirm" : "confirm old key", e.of as number, (e.of as number) - (e.workers as number));
          break;
        case "confirm.progress":
        case "restore-confirm.progress":
          bar?.update(e.confirmed as number);
          break;
        case "confirm.failed":
          stopBar();
          o.err(`rotate: ${(e.workers as string[]).length} Worker(s) did not confirm the new key:\n${Object.entries(e.lastSeen as Record<string, string | null>).map(([w, s]) => `  - ${w}: last reported ${s ?? "nothing"}`).join("\n")}\n`);
          break;
        case "rollback.retry":
          line(`retrying the roll back (attempt ${e.attempt}): the old key is written again where it was not confirmed`);
          break;
        case "rollback.start":
          stopBar();
          line(`ROLLING BACK (${e.reason}): restoring the old key on ${(e.workers as string[]).length} Worker(s)`);
          break;
        case "retry":
          line(`  retry ${e.script} in ${Math.round((e.waitMs as number) / 100) / 10} s (${e.status === undefined ? "no response" : `HTTP ${e.status}`}, attempt ${e.attempt})`);
          break;
        case "persist.done":
          stopBar();
          line(`  ok  persisted edgefleet:${e.config} (${e.command})`);
          break;
        case "persist.by-hand":
          line(`  ok  edgefleet:${e.config} persisted by hand (--persisted-by-hand)`);
          break;
        case "revoke.settle":
          stopBar();
          line(`waiting ${Math.round((e.ms as number) / 100) / 10} s for the new version to reach every Cloudflare location (--settle)`);
          break;
        case "revoke.sweep-ok":
          stopBar();
          line(`  ok  final sweep: all ${e.workers} Worker(s) report the new key`);
          break;
        case "revoke.done":
          line(`  ok  disabled the old key ${e.id} (${e.fingerprint})`);
          break;
        case "revoke.skipped":
          line("  --  the old key is kept (--keep-old); disable it in the Console when you are ready");
          break;
        case "phase":
          stopBar();
          break;
      }
    },
    plan(p: PlanView) {
      if (o.json) {
        json({ event: "dry-run", ...p });
        return;
      }
      const canaries = p.order.filter((w) => w.canary);
      o.out(`DRY RUN: nothing will be changed.\n`);
      o.out(`rotate ${p.secret} on ${p.workers} Worker(s) (from ${p.source}, stack ${p.stack}):\n`);
      o.out(`  1. preflight: the new key works (GET /v1/models), differs from the old one, every Worker reports the old key${p.revoke ? ", the old key is found in the Admin API" : ""}\n`);
      o.out(`  2. stage: canary first (${canaries.length ? canaries.map((w) => w.script).join(", ") : "no canary in the desired state"}), confirm it, then the other ${p.workers - canaries.length} with ${p.concurrency} in flight\n`);
      o.out(`  3. confirm: each Worker reports the new fingerprint ${p.confirmations} time(s) in a row; otherwise roll back\n`);
      o.out(`  4. persist: ${p.persist.map((c) => `edgefleet:${c}`).join(", ") || "(nothing)"} via ${p.persistCommand}\n`);
      o.out(`  5. revoke: ${p.revoke ? "disable the old key with the Admin API, after a final sweep" : "skipped (--keep-old)"}\n`);
      o.out(`order:\n`);
      p.order.forEach((w, i) => o.out(`  ${String(i + 1).padStart(4)}. ${w.script}${w.canary ? "  (canary)" : ""}  ${w.statusUrl ?? "(no status endpoint)"}\n`));
      if (p.missingStatus.length) o.err(`rotate: ${p.missingStatus.length} Worker(s) have no status endpoint; the rotation would refuse: ${p.missingStatus.join(", ")}\n`);
    },
    resumePlan(j: Journal) {
      const counts: Record<string, number> = {};
      for (const w of j.workers) counts[w.state] = (counts[w.state] ?? 0) + 1;
      if (o.json) {
        json({ event: "dry-run", rotation: j.id, phase: j.phase, stopped: j.stopped, workers: counts, persist: j.persist, revoke: j.revoke });
        return;
      }
      o.out(`DRY RUN: nothing will be changed.\nrotation ${j.id} (${j.secret}, stack ${j.stack}) would resume at ${j.phase}${j.stopped ? `; it stopped: ${j.stopped}` : ""}\n`);
      o.out(`  Workers: ${Object.entries(counts).map(([s, n]) => `${n} ${s}`).join(", ")}\n  persist: ${j.persist.map((p) => `${p.config} ${p.state}`).join(", ")}\n  revoke: ${j.revoke}\n  steps done: ${j.steps.length}\n`);
    },
    outcome(r: Outcome, journalPath: string | undefined) {
      stopBar();
      json({ event: "outcome", result: r.result, message: r.message, workers: r.workers ?? [], problems: r.problems ?? [], journal: journalPath });
      const resume = "resume with `npm run rotate -- --resume` (or undo with `--resume --rollback` before persist)";
      switch (r.result) {
        case "done":
          if (!o.json) o.out(`done: ${r.message}\n`);
          break;
        case "rolled-back":
          o.err(`rotate: ${r.message}\n`);
          break;
        case "stopped":
        case "interrupted":
          o.err(`rotate: stopped (${r.message}). The journal ${journalPath} records every step; ${resume}.\n`);
          break;
        case "refused":
          if (r.problems?.length && r.journal) o.err(`rotate: ${r.message}:\n${r.problems.map((p) => `  - ${p}`).join("\n")}\n`);
          break;
        case "rollback-failed":
          o.err(`rotate: ${r.message} The journal ${journalPath} records every step; retry with \`npm run rotate -- --resume\`.\n`);
          break;
      }
    },
    error(msg: string) {
      stopBar();
      json({ event: "error", message: msg });
      o.err(`rotate: ${msg}\n`);
    },
    close() {
      stopBar();
    },
  };
}

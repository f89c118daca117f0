// `npm run dead-letters`: the way back for usage events the ledger could not record.
// `list` shows what the ledger's dead-letter queue holds (peek: nothing changes, no
// delivery attempt is spent) and whether a replay would send each event; `replay` pulls
// it, pushes the events the ledger would record to the usage queue and, only after that
// push succeeded, acks them; `replay --dry-run` peeks and says what a replay would do.
// Through the Cloudflare API (the DLQ's HTTP pull consumer, stacks/model/dead-letters.ts);
// the queues' names come from the ledger's wrangler.jsonc, the retention that decides
// "too old" from metering.yaml, the check itself from the ledger's code.
import { SingleBar } from "cli-progress";
import Table from "cli-table3";
import { Command, CommanderError, InvalidArgumentError } from "commander";
import { DEAD_LETTER_PULL } from "../../../stacks/model/dead-letters.ts";
import { formatProblem } from "../../../stacks/model/load.ts";
import { loadMetering } from "../../../stacks/model/metering.ts";
import { readWorkerConfig, WORKERS_DIR } from "../../../stacks/model/wrangler.ts";
import { escapeControls, safeJson } from "../../../workers/shared/printable.ts";
import { cloudflareCredentials, intAtLeast, UsageError, cloudflareApiBase } from "../cli.ts";
import type { DeadLetter } from "./events.ts";
import { describeError } from "../cloudflare-error.ts";
import { openQueues, type QueueInfo, type QueuesClient } from "./queues.ts";
import { look, replay, type Look, type ReplayReport } from "./replay.ts";

export const DEAD_LETTERS_EXIT = {
  ok: 0,
  /** An API call failed (unreachable, refused, a push or an ack): see the message. */
  failed: 1,
  /** Bad command line or set-up: an unknown option, missing credentials, an invalid
   *  metering.yaml, a queue that does not exist, a DLQ without its HTTP pull consumer. */
  usage: 2,
  /** Done, but events were left in the DLQ (invalid, too old, not JSON: listed; or in
   *  flight, leased by another run: run again after the visibility timeout). With
   *  --dry-run: some would be left. */
  left: 3,
  /** check: the DLQ holds more than --max-backlog dead letters (calls the ledger has not
   *  recorded): what a scheduled job alerts on. */
  alert: 4,
} as const;

/** Cloudflare's retention of a queue that does not set message_retention_period: 4 days
 *  (developers.cloudflare.com/queues/platform/limits). */
const DEFAULT_RETENTION_SECONDS = 4 * 86_400;
/** check calls a DLQ urgent when Cloudflare deletes its oldest dead letter within this. */
const URGENT_MS = 2 * 86_400_000;

export interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
  env: NodeJS.ProcessEnv;
  /** Show a progress bar (stderr is a terminal). */
  progress?: boolean;
  /** The clock the checks use (tests move it). */
  now?: () => number;
  /** The SDK's retries (default 2); tests set 0 to see a fault at once. */
  maxRetries?: number;
  /** How long replay waits before reading the DLQ's backlog again when it looks like
   *  messages are left in flight (the metric is best-effort; default 3 s). */
  backlogSettleMs?: number;
  /** Where the Workers' folders are (the ledger's wrangler.jsonc); default workers/. */
  workersDir?: string;
}

/** The ledger's folder under workers/: its wrangler.jsonc names both queues. */
const LEDGER_SOURCE = "usage-ledger";
const MAX_VISIBILITY_SECONDS = 12 * 3600;


interface CommonOpts {
  accountId?: string;
  apiBase?: string;
  inventory: string;
  json?: boolean;
}
interface ListOpts extends CommonOpts {
  limit: number;
}
interface CheckOpts extends CommonOpts {
  maxBacklog: number;
}
interface ReplayOpts extends CommonOpts {
  dryRun?: boolean;
  limit?: number;
  batchSize: number;
  visibilityTimeout: number;
  dropInvalid?: boolean;
}

interface Setup {
  api: QueuesClient;
  dlq: QueueInfo;
  /** The usage queue (replay only: list needs just the DLQ). */
  target?: QueueInfo;
  retentionDays: number;
  accountId: string;
}

/** Credentials, the retention, the queues' names and ids: everything checked before any message is touched. */
async function setup(o: CommonOpts, io: Io, needPull: boolean, permission = "Queues Read and Edit"): Promise<Setup> {
  const { apiToken, accountId } = cloudflareCredentials(o, io.env, { prefix: "needs", permission });
  const metering = loadMetering(o.inventory);
  if (!metering.ok) throw new UsageError(`the ledger's retention comes from ${o.inventory}/metering.yaml, which has ${metering.problems.length} problem(s):\n${metering.problems.map(formatProblem).join("\n")}`);
  const ledger = readWorkerConfig(LEDGER_SOURCE, io.workersDir ?? WORKERS_DIR);
  if (!ledger.ok) throw new UsageError(ledger.problems.map(formatProblem).join("\n"));
  const consumer = ledger.config.queueConsumers.find((c) => c.deadLetterQueue);
  if (!consumer?.deadLetterQueue) throw new UsageError(`${ledger.config.file} has no consumer with a dead_letter_queue`);
  const baseURL = cloudflareApiBase(o.apiBase, io.env);
  const api = openQueues({ apiToken: apiToken!, accountId: accountId!, ...(baseURL ? { baseURL } : {}), ...(io.maxRetries !== undefined ? { maxRetries: io.maxRetries } : {}) });
  const dlq = await api.find(consumer.deadLetterQueue);
  if (!dlq) throw new UsageError(`queue '${consumer.deadLetterQueue}' does not exist in account ${accountId} (pulumi up creates it with the ledger)`);
  const target = needPull ? await api.find(consumer.queue) : undefined;
  if (needPull && !target) throw new UsageError(`queue '${consumer.queue}' does not exist in account ${accountId} (pulumi up creates it with the ledger)`);
  if (needPull && !dlq.pull) {
    throw new UsageError(
      `queue '${dlq.name}' has no HTTP pull consumer, so it cannot be pulled: pulumi up declares it (${`queue/${dlq.name}/pull-consumer`}, max_retries ${DEAD_LETTER_PULL.maxRetries}); by hand: wrangler queues consumer http add ${dlq.name} --message-retries ${DEAD_LETTER_PULL.maxRetries}` +
        (dlq.workers.length > 0 ? ` (it has a Worker consumer, ${dlq.workers.join(", ")}: the DLQ edgefleet declares has only the pull consumer)` : ""),
    );
  }
  return { api, dlq, ...(target ? { target } : {}), retentionDays: metering.metering.callRetentionDays, accountId: accountId! };
}

// ------------------------------------------------------------------------ output

/** A string from a body that is safe to print (printable ASCII), or "-". */
const printable = (v: unknown) => (typeof v === "string" && /^[\x20-\x7e]{1,128}$/.test(v) ? v : "-");

function fields(m: DeadLetter): { requestId: string; tenant: string; model: string; ts?: number } {
  if (m.event) return { requestId: m.event.request_id, tenant: m.event.tenant, model: m.event.model, ts: m.event.ts };
  const b = typeof m.body === "object" && m.body !== null ? (m.body as Record<string, unknown>) : {};
  return { requestId: printable(b.request_id), tenant: printable(b.tenant), model: printable(b.model), ...(typeof b.ts === "number" && Number.isFinite(b.ts) ? { ts: b.ts } : {}) };
}

export function age(ms: number): string {
  if (!Number.isFinite(ms)) return "-";
  if (ms < 0) return `in ${age(-ms)}`;
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86_400)}d ${Math.floor((s % 86_400) / 3600)}h`;
}

/** One message as --json prints it. */
function messageJson(m: DeadLetter, now: number, maxRetries: number | undefined) {
  const f = fields(m);
  return {
    id: m.id,
    action: m.action,
    ...(m.reason ? { reason: m.reason } : {}),
    requestId: f.requestId === "-" ? null : f.requestId,
    tenant: f.tenant === "-" ? null : f.tenant,
    model: f.model === "-" ? null : f.model,
    eventTs: f.ts ?? null,
    eventAgeSeconds: f.ts !== undefined ? Math.floor((now - f.ts) / 1000) : null,
    enqueuedAt: m.enqueuedAt ? new Date(m.enqueuedAt).toISOString() : null,
    attempts: m.attempts,
    ...(maxRetries !== undefined ? { attemptsLeft: Math.max(0, maxRetries - m.attempts) } : {}),
    contentType: m.contentType,
    body: m.body,
  };
}

function queueJson(q: QueueInfo, backlog?: number) {
  return {
    name: q.name,
    id: q.id,
    ...(backlog !== undefined ? { backlog } : {}),
    retentionDays: q.retentionSeconds !== undefined ? q.retentionSeconds / 86_400 : null,
    pullConsumer: q.pull ? { maxRetries: q.pull.maxRetries ?? null, visibilityTimeoutMs: q.pull.visibilityTimeoutMs ?? null } : null,
  };
}

function table(messages: DeadLetter[], now: number, maxRetries: number | undefined): string {
  const t = new Table({ head: ["message", "request id", "tenant", "model", "event age", "attempts", "replay"], style: { head: [], border: [] } });
  for (const m of messages) {
    const f = fields(m);
    const attempts = maxRetries !== undefined ? `${m.attempts} of ${maxRetries}` : String(m.attempts);
    t.push([escapeControls(m.id.slice(0, 12)), f.requestId, f.tenant, f.model, f.ts !== undefined ? age(now - f.ts) : "-", attempts, m.action === "replay" ? "yes" : `no: ${escapeControls(m.reason ?? "?")}`]);
  }
  return t.toString();
}

/** Messages near the end of their attempts: Cloudflare deletes one when they reach max_retries. */
function lastChances(messages: DeadLetter[], maxRetries: number | undefined): string {
  if (maxRetries === undefined) return "";
  const near = messages.filter((m) => m.action === "leave" && maxRetries - m.attempts <= 5);
  if (near.length === 0) return "";
  return near
    .map((m) => `WARNING: message ${escapeControls(m.id)} has used ${m.attempts} of its ${maxRetries} attempts; Cloudflare deletes it when they are spent (each pull is one). Its body: ${safeJson(m.body)}\n`)
    .join("");
}

function lookText(l: Look, now: number, dryRun: boolean): string {
  const replayable = l.messages.filter((m) => m.action === "replay").length;
  const leave = l.messages.length - replayable;
  const kept = l.dlq.retentionSeconds !== undefined ? `; messages kept ${l.dlq.retentionSeconds / 86_400} days` : "";
  const consumer = l.dlq.pull ? `; HTTP pull consumer, max_retries ${l.dlq.pull.maxRetries ?? "3 (default)"}` : "; no HTTP pull consumer (replay needs it: pulumi up declares it)";
  const head = `${l.dlq.name}: ${l.backlog ?? "?"} message(s)${kept}${consumer}\n`;
  if (l.messages.length === 0) return `${head}nothing to replay${l.backlog ? " (the messages are in flight: leased by a pull, visible again after its visibility timeout)" : ""}\n`;
  const shown = l.backlog !== undefined && l.backlog > l.messages.length ? `the oldest ${l.messages.length} not in flight (peek shows at most 100, and none that a pull has leased)` : `${l.messages.length}`;
  const verdict = dryRun
    ? `dry run: a replay would send ${replayable} of these ${l.messages.length} to the usage queue and leave ${leave}; nothing was pulled, pushed or acked\n`
    : `${replayable} would be replayed, ${leave} left\n`;
  return `${head}showing ${shown}\n${table(l.messages, now, l.dlq.pull?.maxRetries)}\n${verdict}${lastChances(l.messages, l.dlq.pull?.maxRetries)}`;
}

const SAFETY =
  "A replay acks a dead letter only after the push that carried its event to the usage queue succeeded.\n" +
  "Interrupted at any point, a rerun is safe: an event pushed but not acked comes back after the\n" +
  "visibility timeout and is pushed again, and the ledger records a request_id once (docs/metering.md,\n" +
  "\"Why a redelivery never counts twice\"), so it counts once.\n";

// ------------------------------------------------------------------------ commands

export async function runDeadLetters(argv: string[], io: Io): Promise<number> {
  let code: number = DEAD_LETTERS_EXIT.ok;
  const now = io.now ?? Date.now;
  const program = new Command("dead-letters")
    .description("The usage ledger's dead-letter queue: list what it holds, replay it to the usage queue, alert when it is not empty.")
    .helpOption("-h, --help", "show this help")
    .exitOverride()
    .configureOutput({ writeOut: io.out, writeErr: io.err })
    .addHelpText(
      "after",
      `\n${SAFETY}\nThe token is read from CLOUDFLARE_API_TOKEN only (Queues Read and Edit: acking writes to the queue; check needs Queues Read).\n` +
        "Exit codes: 0 done; 1 an API call failed; 2 bad command line or set-up (credentials, metering.yaml,\n" +
        "a missing queue, a DLQ without its HTTP pull consumer); 3 done, but events were left in the DLQ (or in flight);\n" +
        "4 (check) the DLQ holds more dead letters than --max-backlog.\n",
    );
  const common = (c: Command) =>
    c
      .helpOption("-h, --help", "show this help")
      .allowExcessArguments(false)
      .option("--account-id <id>", "Cloudflare account (default: CLOUDFLARE_ACCOUNT_ID)")
      .option("--api-base <url>", "Cloudflare API base URL (default: CLOUDFLARE_API_BASE_URL, else the real API)")
      .option("--inventory <dir>", "the inventory whose metering.yaml gives the ledger's call retention (too old to replay)", "fleet")
      .option("--json", "machine-readable output");

  common(program.command("list"))
    .description("show the dead letters (peek: no lease, no delivery attempt spent) and whether a replay would send each")
    .option("--limit <n>", "show at most n (peek returns at most 100, the oldest not in flight)", intBetween("--limit", 1, 100), 100)
    .action(async (o: ListOpts) => {
      const s = await setup(o, io, false);
      const l = await look(s.api, s.dlq, { limit: o.limit, retentionDays: s.retentionDays, now });
      const t = now();
      if (o.json) {
        const replayable = l.messages.filter((m) => m.action === "replay").length;
        io.out(safeJson({ dlq: queueJson(l.dlq, l.backlog), retentionDays: s.retentionDays, shown: l.messages.length, wouldReplay: replayable, wouldLeave: l.messages.length - replayable, messages: l.messages.map((m) => messageJson(m, t, l.dlq.pull?.maxRetries)) }, 2) + "\n");
      } else {
        io.out(lookText(l, t, false));
      }
    });

  common(program.command("check"))
    .description("alert when the DLQ holds dead letters (exit 4): for a scheduled job; reads the queue's metrics only, changes nothing")
    .option("--max-backlog <n>", "dead letters tolerated before the alert", intAtLeast("--max-backlog", 0), 0)
    .addHelpText(
      "after",
      "\nEach dead letter is a call the ledger has not recorded (so nobody is billed for it) until a replay.\n" +
        "Cloudflare deletes a message once the queue's retention passes: check says when that happens to the\n" +
        "oldest, and calls it urgent within 48 hours. The metrics are best-effort (Cloudflare: \"values may be\n" +
        "approximate\"); run it on a schedule (.github/workflows/dead-letters.yml: hourly), not once.\n" +
        "The token needs Queues Read only.\n",
    )
    .action(async (o: CheckOpts) => {
      const s = await setup(o, io, false, "Queues Read");
      const m = await s.api.metrics(s.dlq.id);
      const t = now();
      const retentionSeconds = s.dlq.retentionSeconds ?? DEFAULT_RETENTION_SECONDS;
      const deletesAt = m.oldestMs !== undefined ? m.oldestMs + retentionSeconds * 1000 : undefined;
      const alert = m.backlogCount > o.maxBacklog;
      // Without the oldest's time, the deadline is unknown: urgent, not "fine".
      const urgent = alert && (deletesAt === undefined || deletesAt - t <= URGENT_MS);
      code = alert ? DEAD_LETTERS_EXIT.alert : DEAD_LETTERS_EXIT.ok;
      if (o.json) {
        io.out(
          safeJson(
            {
              dlq: queueJson(s.dlq),
              backlog: m.backlogCount,
              backlogBytes: m.backlogBytes,
              maxBacklog: o.maxBacklog,
              alert,
              urgent,
              oldestSentAt: m.oldestMs !== undefined ? new Date(m.oldestMs).toISOString() : null,
              oldestAgeSeconds: m.oldestMs !== undefined ? Math.max(0, Math.floor((t - m.oldestMs) / 1000)) : null,
              retentionSeconds,
              retentionFromDefault: s.dlq.retentionSeconds === undefined,
              oldestDeletedAt: deletesAt !== undefined ? new Date(deletesAt).toISOString() : null,
              oldestDeletedInSeconds: deletesAt !== undefined ? Math.floor((deletesAt - t) / 1000) : null,
            },
            2,
          ) + "\n",
        );
        return;
      }
      const kept = `retention ${retentionSeconds / 86_400} days${s.dlq.retentionSeconds === undefined ? " (Cloudflare's default: the queue sets none)" : ""}`;
      const oldest = m.oldestMs !== undefined ? `, the oldest sent ${age(t - m.oldestMs)} ago` : ", the oldest's time unknown";
      const head = `${s.dlq.name}: ${m.backlogCount} dead letter(s), ${m.backlogBytes} bytes${m.backlogCount > 0 ? oldest : ""}; ${kept}\n`;
      if (!alert) {
        io.out(head + (m.backlogCount > 0 ? `within --max-backlog ${o.maxBacklog}\n` : "nothing to replay\n"));
        return;
      }
      const deadline =
        deletesAt === undefined
          ? "when Cloudflare deletes the oldest is unknown (the metrics do not give its time): treat it as urgent"
          : deletesAt <= t
            ? `the oldest is due for deletion now (sent ${age(t - m.oldestMs!)} ago, ${kept})`
            : `Cloudflare deletes the oldest at ${new Date(deletesAt).toISOString()}, in ${age(deletesAt - t)}`;
      io.out(head);
      io.err(
        `dead-letters: ${urgent ? "URGENT: " : ""}ALERT: ${m.backlogCount} usage event(s) in ${s.dlq.name} (more than --max-backlog ${o.maxBacklog}): calls the ledger has not recorded; ${deadline}.\n` +
          "dead-letters: see why with `npm run dead-letters -- list`; once the ledger can record them (its deploy or migration fixed): `npm run dead-letters -- replay`\n",
      );
    });

  common(program.command("replay"))
    .description("pull the dead letters, push the events the ledger would record to the usage queue, then ack them; leave the rest")
    .option("--dry-run", "pull nothing: peek and say what a replay would do")
    .option("--limit <n>", "pull at most n messages in all (default: until the DLQ is empty)", intAtLeast("--limit", 1))
    .option("--batch-size <n>", "messages per pull (1-100)", intBetween("--batch-size", 1, 100), 100)
    .option("--visibility-timeout <seconds>", `how long a pulled message stays leased (1-${MAX_VISIBILITY_SECONDS})`, intBetween("--visibility-timeout", 1, MAX_VISIBILITY_SECONDS), DEAD_LETTER_PULL.visibilityTimeoutMs / 1000)
    .option("--drop-invalid", "ack (delete) the dead letters no replay can ever send (not an event, invalid, older than the call retention, too big), after printing each whole to stderr; an event from the future, or one the ledger sent back during this run, is left")
    .addHelpText("after", `\n${SAFETY}What it cannot replay (invalid, older than the ledger's call retention, not JSON) it leaves in the DLQ,\nunless --drop-invalid. Each pull spends one of a message's attempts; Cloudflare deletes a message\nwhose attempts reach the pull consumer's max_retries (100).\n`)
    .action(async (o: ReplayOpts) => {
      if (o.dryRun && o.dropInvalid) throw new UsageError("--dry-run drops nothing: leave out --drop-invalid");
      const s = await setup(o, io, true);
      const target = s.target!;
      if (o.dryRun) {
        const l = await look(s.api, s.dlq, { limit: Math.min(o.limit ?? 100, 100), retentionDays: s.retentionDays, now });
        const t = now();
        const replayable = l.messages.filter((m) => m.action === "replay").length;
        if (o.json) {
          io.out(safeJson({ dryRun: true, dlq: queueJson(l.dlq, l.backlog), target: queueJson(target), retentionDays: s.retentionDays, shown: l.messages.length, wouldReplay: replayable, wouldLeave: l.messages.length - replayable, messages: l.messages.map((m) => messageJson(m, t, l.dlq.pull?.maxRetries)) }, 2) + "\n");
        } else {
          io.out(lookText(l, t, true));
        }
        code = l.messages.length > replayable ? DEAD_LETTERS_EXIT.left : DEAD_LETTERS_EXIT.ok;
        return;
      }
      const backlog = await s.api.backlog(s.dlq.id).catch(() => undefined);
      const total = o.limit !== undefined ? Math.min(o.limit, backlog ?? o.limit) : backlog;
      const bar = io.progress && !o.json && total ? new SingleBar({ stream: process.stderr, format: "replay [{bar}] {value}/{total} dead letters | {eta_formatted} left", hideCursor: true }) : undefined;
      bar?.start(total!, 0);
      let r: ReplayReport;
      try {
        r = await replay(
          s.api,
          s.dlq,
          target,
          { ...(o.limit !== undefined ? { limit: o.limit } : {}), batchSize: o.batchSize, visibilityTimeoutMs: o.visibilityTimeout * 1000, retentionDays: s.retentionDays, dropInvalid: o.dropInvalid === true, ...(s.dlq.pull?.maxRetries !== undefined ? { maxRetries: s.dlq.pull.maxRetries } : {}), now },
          {
            progress: (handled) => {
              if (!bar) return;
              if (handled > bar.getTotal()) bar.setTotal(handled);
              bar.update(handled);
            },
            onDrop: (ms) => {
              for (const m of ms) io.err(`dead-letters: dropping message ${escapeControls(m.id)} (${escapeControls(m.reason ?? "?")}): ${safeJson(m.body)}\n`);
            },
          },
        );
      } finally {
        bar?.stop();
      }
      const t = now();
      const maxRetries = s.dlq.pull?.maxRetries;
      // Messages still in the DLQ that this run did not see: leased by an interrupted run
      // or another puller, or newly arrived. Events not yet recorded: not a clean run.
      // (At --limit the rest was not pulled because the operator said so: not in flight.)
      // The backlog is a best-effort metric that may still count what was just acked: a
      // count above what was left is read again after a moment before it is believed.
      // (What Cloudflare deleted on its last attempt is in `left` but no longer in the DLQ.)
      const stillThere = r.left.filter((m) => !r.spent.includes(m));
      let inFlight = r.stoppedBy === "limit" ? 0 : Math.max(0, (r.remaining ?? 0) - stillThere.length);
      if (inFlight > 0 && !r.error) {
        await new Promise((ok) => setTimeout(ok, io.backlogSettleMs ?? 3000));
        const again = await s.api.backlog(s.dlq.id).catch(() => undefined);
        if (again !== undefined) {
          r.remaining = again;
          inFlight = Math.max(0, again - stillThere.length);
        }
      }
      if (o.json) {
        io.out(
          safeJson(
            {
              dryRun: false,
              dlq: queueJson(s.dlq),
              target: queueJson(target),
              retentionDays: s.retentionDays,
              pulled: r.pulled,
              replayed: r.replayed,
              pushedNotAcked: r.pushedNotAcked,
              dropped: r.dropped.map((m) => messageJson(m, t, maxRetries)),
              left: r.left.map((m) => messageJson(m, t, maxRetries)),
              deletedByCloudflare: r.spent.map((m) => m.id),
              stoppedBy: r.stoppedBy,
              ...(r.releaseFailed ? { releaseFailed: true } : {}),
              ...(r.remaining !== undefined ? { remaining: r.remaining } : {}),
              inFlight,
              ...(r.error ? { error: r.error } : {}),
            },
            2,
          ) + "\n",
        );
      } else {
        io.out(`replayed ${r.replayed} event(s) from ${s.dlq.name} to ${target.name} (pulled ${r.pulled}${r.dropped.length ? `, dropped ${r.dropped.length}` : ""})\n`);
        if (stillThere.length > 0) io.out(`left ${stillThere.length} in ${s.dlq.name} (not acked: still there, ${r.releaseFailed ? `visible again after the ${o.visibilityTimeout}s visibility timeout: releasing their leases failed` : "visible again now"}):\n${table(stillThere, t, maxRetries)}\n${lastChances(stillThere, maxRetries)}`);
        // Pulled on their last attempt: Cloudflare deletes them as their leases end. Each
        // body is printed whole, so what is gone is not gone unseen.
        for (const m of r.spent) io.err(`dead-letters: message ${escapeControls(m.id)} was pulled on its last attempt (${m.attempts} of ${maxRetries}) and Cloudflare deletes it now (${escapeControls(m.reason ?? "?")}). Its body: ${safeJson(m.body)}\n`);
        if (r.stoppedBy === "seen") io.out(`stopped: the messages pulled last had been left earlier in this run (their ${o.visibilityTimeout}s visibility timeout passed)\n`);
        if (r.stoppedBy === "limit") io.out(`stopped at --limit ${o.limit}: run again for the rest\n`);
        if (inFlight > 0 && !r.error) io.out(`${inFlight} more message(s) are in ${s.dlq.name} but in flight (leased by an interrupted run or another puller, or newly arrived): run again after the visibility timeout\n`);
        if (r.ackWarnings > 0) io.out(`${r.ackWarnings} ack(s) named a lease Cloudflare no longer had (another puller acked the message first)\n`);
      }
      if (r.error) {
        io.err(`dead-letters: ${r.error}\n`);
        io.err(`dead-letters: safe to run again once the cause is fixed; what this run leased is pulled again after its visibility timeout (${o.visibilityTimeout} s), and an event pushed twice counts once\n`);
        code = DEAD_LETTERS_EXIT.failed;
      } else if (r.left.length > 0 || inFlight > 0) {
        code = DEAD_LETTERS_EXIT.left;
      }
    });

  try {
    await program.parseAsync(argv, { from: "user" });
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? DEAD_LETTERS_EXIT.ok : DEAD_LETTERS_EXIT.usage;
    if (e instanceof UsageError) {
      io.err(`dead-letters: ${e.message}\n`);
      return DEAD_LETTERS_EXIT.usage;
    }
    // An API failure before any message was touched (finding the queues, peeking).
    io.err(`dead-letters: ${describeError(e)}\n`);
    return DEAD_LETTERS_EXIT.failed;
  }
  return code;
}

function intBetween(name: string, min: number, max: number): (v: string) => number {
  return (v: string) => {
    if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max) throw new InvalidArgumentError(`${name} must be an integer from ${min} to ${max}`);
    return Number(v);
  };
}

// Reads fleet/metering.yaml (the price table, the ledger's retentions and the archive's)
// into plain data, or into every problem at once, each located by file, line, column and
// field, like the rest of the inventory (load.ts). Used by the inventory loader (the
// desired state gives its vars to the Workers that need them, and the archive's
// retention to its bucket's lifecycle rule, the dead-letter retention to the ledger's
// DLQ), the usage-ledger's local runner, `npm run usage` and `npm run dead-letters`.
import { readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { LineCounter, parseDocument } from "yaml";
import { z } from "zod";
import { PriceTableSchema, toPriceTable, type PriceTable } from "../../workers/shared/pricing.ts";
import { formatPath, formatProblem, locateInDoc, yamlData, type PathSegment, type Problem } from "./load.ts";

export const METERING_FILE = "metering.yaml";

/** A Queue keeps a message at most 14 days (Cloudflare Queues limits, checked 2026-11-27). */
export const MIN_RETENTION_DAYS = 15;

/** A Worker's plain-text var is at most 5 KB (Workers limits, "Environment variable
 * size", https://developers.cloudflare.com/workers/platform/limits/, read 2026-11-27),
 * read as 5,000 bytes: the page does not say 1,000 or 1,024, and the smaller fails here
 * rather than at deploy. */
export const MAX_VAR_BYTES = 5_000;

/** A Queue keeps a message at most 14 days (message_retention_period 60 to 1,209,600 s;
 * Cloudflare Queues limits, https://developers.cloudflare.com/queues/platform/limits/,
 * and wrangler 4.153's MAX_MESSAGE_RETENTION_PERIOD_SECS, read 2026-11-27): the most a
 * dead-letter queue can be told to keep one. (On Workers Free the most is 1 day, which
 * the API would refuse above; the ledger needs Workers Paid anyway: D1's 1,000 queries
 * per invocation, docs/metering.md "Limits".) */
export const MAX_QUEUE_RETENTION_DAYS = 14;

/** How long the usage Queue itself keeps a message: Queues' default message_retention_period,
 *  4 days, which the fleet does not change (Queues changelog 2025-02-14, "Customize queue
 *  message retention periods": "Previously, it was fixed to the default of 4 days"). An
 *  event can wait that long there, then dead_letter_retention_days in the DLQ, before a
 *  replay brings it to the ledger. */
export const USAGE_QUEUE_RETENTION_DAYS = 4;

const MeteringSchema = z.strictObject({
  prices: PriceTableSchema,
  ledger: z.strictObject({
    call_retention_days: z
      .number()
      .int()
      .min(MIN_RETENTION_DAYS, `at least ${MIN_RETENTION_DAYS}: a Queue may redeliver a message up to 14 days old, and an older redelivery could not be deduplicated`)
      .max(3650),
    // Days the ledger's dead-letter queue (edgefleet-usage-dlq) keeps an event before
    // Cloudflare deletes it unread: the window `npm run dead-letters -- replay` has.
    // Queues' own default is 4 days; 14, the most a Queue allows, by default here. With
    // the days the usage Queue keeps it first, below call_retention_days (checked below),
    // so an event replayed within it is never too old for the ledger to deduplicate.
    dead_letter_retention_days: z
      .number()
      .int()
      .min(1, "at least 1 day")
      .max(MAX_QUEUE_RETENTION_DAYS, `at most ${MAX_QUEUE_RETENTION_DAYS}: a Queue keeps a message 14 days at most`)
      .default(MAX_QUEUE_RETENTION_DAYS),
  }).superRefine((l, ctx) => {
    const oldest = l.dead_letter_retention_days + USAGE_QUEUE_RETENTION_DAYS;
    if (l.call_retention_days >= MIN_RETENTION_DAYS && l.call_retention_days <= oldest) {
      ctx.addIssue({
        code: "custom",
        path: ["call_retention_days"],
        message: `more than ${oldest} days: an event replayed from the dead-letter queue can be ${l.dead_letter_retention_days} (dead_letter_retention_days) + ${USAGE_QUEUE_RETENTION_DAYS} (the usage Queue's own retention) days old, and the ledger refuses one older than this (it could not be deduplicated); raise it, or lower dead_letter_retention_days`,
      });
    }
  }),
  archive: z.strictObject({
    // The archive bucket's lifecycle rule deletes a body this many days after it was written.
    retention_days: z.number().int().min(1, "at least 1 day").max(3650),
  }),
});

export interface Metering {
  prices: PriceTable;
  callRetentionDays: number;
  /** Days the ledger's dead-letter queue keeps an event (its message_retention_period). */
  deadLetterRetentionDays: number;
  /** Days an archived body is kept in R2 (the archive bucket's lifecycle rule). */
  archiveRetentionDays: number;
}

export type MeteringResult = { ok: true; metering: Metering } | { ok: false; problems: Problem[] };

/** Parses and validates the text of metering.yaml; `file` is how problems name it. */
export function parseMetering(file: string, text: string): MeteringResult {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    return {
      ok: false,
      problems: doc.errors.map((e) => ({ file, line: e.linePos?.[0].line ?? 1, column: e.linePos?.[0].col ?? 1, path: "", message: `YAML: ${e.message.split("\n")[0]}` })),
    };
  }
  const js = yamlData(file, doc, lines);
  if ("problem" in js) return { ok: false, problems: [js.problem] };
  const result = MeteringSchema.safeParse(js.data);
  if (!result.success) {
    const problems: Problem[] = [];
    for (const issue of result.error.issues) {
      const path = issue.path as PathSegment[];
      if (issue.code === "unrecognized_keys") {
        for (const key of issue.keys) problems.push({ file, ...locateInDoc(doc, lines, [...path, key], true), path: formatPath([...path, key]), message: `unknown key '${key}'` });
      } else if (issue.code === "invalid_key") {
        // A model id the id rule refuses: its own message ("lowercase letters, ..."), at the key.
        problems.push({ file, ...locateInDoc(doc, lines, path, true), path: formatPath(path), message: `'${String(path[path.length - 1])}': ${issue.issues[0]?.message ?? issue.message}` });
      } else {
        problems.push({ file, ...locateInDoc(doc, lines, path), path: formatPath(path), message: issue.message });
      }
    }
    problems.sort((a, b) => a.line - b.line || a.column - b.column);
    return { ok: false, problems };
  }
  const metering = {
    prices: toPriceTable(result.data.prices),
    callRetentionDays: result.data.ledger.call_retention_days,
    deadLetterRetentionDays: result.data.ledger.dead_letter_retention_days,
    archiveRetentionDays: result.data.archive.retention_days,
  };
  // PRICES reaches the Workers as one plain-text var, which Cloudflare caps at 5 KB.
  const bytes = Buffer.byteLength(meteringVars(metering).PRICES, "utf8");
  if (bytes > MAX_VAR_BYTES) {
    return { ok: false, problems: [{ file, ...locateInDoc(doc, lines, ["prices", "models"], true), path: "prices.models", message: `the table is ${bytes} bytes as the PRICES var; Cloudflare allows ${MAX_VAR_BYTES} bytes per var (remove models nobody calls)` }] };
  }
  return { ok: true, metering };
}

/** Reads <dir>/metering.yaml; an unreadable file is a located problem too. */
export function loadMetering(dir: string, base = process.cwd()): MeteringResult {
  const path = join(dir, METERING_FILE);
  const file = relative(base, path) || path;
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    return { ok: false, problems: [{ file, line: 1, column: 1, path: "", message: `cannot read the file (${(e as NodeJS.ErrnoException).code})` }] };
  }
  return parseMetering(file, text);
}

export function loadMeteringOrThrow(dir: string): Metering {
  const r = loadMetering(dir);
  if (!r.ok) throw new Error(`${r.problems.length} problem(s) in the metering file:\n${r.problems.map(formatProblem).join("\n")}`);
  return r.metering;
}

export type MeteringVars = { PRICES: string; CALL_RETENTION_DAYS: string };

/**
 * The Workers' vars that come from the inventory: the price table as JSON and the
 * ledger's retention. The one place the local runners and the deploy take them from.
 */
export function meteringVars(m: Metering): MeteringVars {
  return { PRICES: JSON.stringify(m.prices), CALL_RETENTION_DAYS: String(m.callRetentionDays) };
}

/**
 * Which of meteringVars() each Worker's code reads, by its folder under workers/ (the
 * vars are typed in its src/env.ts, not declared in wrangler.jsonc: they are the
 * inventory's, not the Worker's). The proxy prices budgets; the ledger prices calls and
 * prunes its rows. A deployment of one of these needs metering.yaml in its inventory.
 */
export const METERING_VARS: Readonly<Record<string, readonly (keyof MeteringVars)[]>> = {
  "llm-proxy": ["PRICES"],
  "usage-ledger": ["PRICES", "CALL_RETENTION_DAYS"],
};

/** The metering vars a Worker of `source` receives (none for other Workers). */
export function meteringVarsFor(source: string, m: Metering): Partial<MeteringVars> {
  const all = meteringVars(m);
  return Object.fromEntries((METERING_VARS[source] ?? []).map((k) => [k, all[k]]));
}

/**
 * Workers (by folder under workers/) whose Queue consumers' dead-letter queues the
 * metering inventory keeps: each such DLQ is kept `ledger.dead_letter_retention_days`
 * and gets the HTTP pull consumer `npm run dead-letters` replays it through
 * (stacks/model/dead-letters.ts). The ledger's: its DLQ holds usage nobody was billed for.
 */
export const DEAD_LETTER_SOURCES: readonly string[] = ["usage-ledger"];

// ----------------------------------------------------------------------- archive

/** A binding that says "archive": ARCHIVE, or any NAME_ARCHIVE. */
const ARCHIVE_BINDING = /^(?:[A-Z0-9_]*_)?ARCHIVES?$/;
/** A bucket name with "archive" as one of its dash-separated words (edgefleet-archive, archive-eu). */
const ARCHIVE_BUCKET = /(?:^|-)archives?(?:-|$)/;

/**
 * Whether an R2 bucket holds archives (request and response bodies kept for a time), so
 * that it must have a lifecycle rule that deletes them: it is bound under a binding
 * named ARCHIVE or *_ARCHIVE, or its name has the word "archive". The model gives such a
 * bucket the inventory's retention; the policy `r2-archive-lifecycle` checks it is there.
 * Either sign alone is enough, so renaming one of them cannot slip a bucket past the rule.
 */
export function holdsArchives(bucket: string, binding?: string): boolean {
  return ARCHIVE_BUCKET.test(bucket) || (binding !== undefined && ARCHIVE_BINDING.test(binding));
}

/** The lifecycle rule id edgefleet writes (a rule with another id is not edgefleet's). */
export const ARCHIVE_RULE_ID = "edgefleet-retention";
/** R2's own default rule for a new bucket aborts multipart uploads after 7 days
 * (https://developers.cloudflare.com/r2/buckets/object-lifecycles/, read 2026-11-27);
 * a lifecycle configuration replaces every rule, so edgefleet's keeps that one too. */
export const ABORT_MULTIPART_AFTER_DAYS = 7;
export const DAY_SECONDS = 86_400;

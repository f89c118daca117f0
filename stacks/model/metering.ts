// Reads fleet/metering.yaml (the price table and the ledger's retention) into plain
// data, or into every problem at once, each located by file, line, column and field,
// like the rest of the inventory (load.ts). Used by the usage-ledger's local runner,
// `npm run usage` and (later) the Pulumi component that deploys the ledger.
import { readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { LineCounter, parseDocument } from "yaml";
import { z } from "zod";
import { PriceTableSchema, toPriceTable, type PriceTable } from "../../workers/shared/pricing.ts";
import { formatPath, formatProblem, locateInDoc, type PathSegment, type Problem } from "./load.ts";

export const METERING_FILE = "metering.yaml";

/** A Queue keeps a message at most 14 days (Cloudflare Queues limits, checked 2026-11-27). */
export const MIN_RETENTION_DAYS = 15;

const MeteringSchema = z.strictObject({
  prices: PriceTableSchema,
  ledger: z.strictObject({
    call_retention_days: z
      .number()
      .int()
      .min(MIN_RETENTION_DAYS, `at least ${MIN_RETENTION_DAYS}: a Queue may redeliver a message up to 14 days old, and an older redelivery could not be deduplicated`)
      .max(3650),
  }),
});

export interface Metering {
  prices: PriceTable;
  callRetentionDays: number;
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
  const result = MeteringSchema.safeParse(doc.toJS() ?? {});
  if (!result.success) {
    const problems: Problem[] = [];
    for (const issue of result.error.issues) {
      const path = issue.path as PathSegment[];
      if (issue.code === "unrecognized_keys") {
        for (const key of issue.keys) problems.push({ file, ...locateInDoc(doc, lines, [...path, key], true), path: formatPath([...path, key]), message: `unknown key '${key}'` });
      } else {
        problems.push({ file, ...locateInDoc(doc, lines, path), path: formatPath(path), message: issue.message });
      }
    }
    problems.sort((a, b) => a.line - b.line || a.column - b.column);
    return { ok: false, problems };
  }
  return { ok: true, metering: { prices: toPriceTable(result.data.prices), callRetentionDays: result.data.ledger.call_retention_days } };
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

/**
 * The usage-ledger Worker's vars that come from the inventory: the price table as JSON
 * and the retention. The one place both the local runner and the deploy take them from.
 */
export function meteringVars(m: Metering): { PRICES: string; CALL_RETENTION_DAYS: string } {
  return { PRICES: JSON.stringify(m.prices), CALL_RETENTION_DAYS: String(m.callRetentionDays) };
}

// The usage report: per UTC day, tenant and model, the calls, tokens by kind, cache hit
// rate and cost, read from the ledger's daily rollups (usage_daily) through a UsageSource
// (local Miniflare D1 or the Cloudflare D1 API). Pure apart from the source.
import { z } from "zod";

/** Runs one read-only SQL statement with string parameters; returns its rows. */
export interface UsageSource {
  query(sql: string, params: string[]): Promise<unknown[]>;
  /** Where the rows come from, for messages. */
  where: string;
  close(): Promise<void>;
}

export interface UsageFilter {
  from: string;
  to: string;
  tenant?: string;
  model?: string;
}

const Int = z.number().int().nonnegative();
const RollupRow = z.object({
  day: z.string(),
  tenant: z.string(),
  model: z.string(),
  calls: Int,
  input_tokens: Int,
  cache_write_5m_tokens: Int,
  cache_write_1h_tokens: Int,
  cache_read_tokens: Int,
  output_tokens: Int,
  cost_micros: Int,
  unknown_model_calls: Int,
});

export interface UsageLine {
  day: string;
  tenant: string;
  model: string;
  calls: number;
  inputTokens: number;
  cacheWrite5mTokens: number;
  cacheWrite1hTokens: number;
  cacheReadTokens: number;
  outputTokens: number;
  /** cache reads / all prompt tokens (input + writes + reads); null with no prompt tokens. */
  cacheHitRate: number | null;
  costMicros: number;
  /** Calls priced by the unknown-model rule (the table's ceiling): add the model's price. */
  unknownModelCalls: number;
}

export interface UsageReport {
  filter: UsageFilter;
  source: string;
  lines: UsageLine[];
  total: Omit<UsageLine, "day" | "tenant" | "model">;
}

export function buildQuery(f: UsageFilter): { sql: string; params: string[] } {
  const where = ["day >= ?", "day <= ?"];
  const params = [f.from, f.to];
  if (f.tenant !== undefined) {
    where.push("tenant = ?");
    params.push(f.tenant);
  }
  if (f.model !== undefined) {
    where.push("model = ?");
    params.push(f.model);
  }
  return {
    sql: `SELECT day, tenant, model, calls, input_tokens, cache_write_5m_tokens, cache_write_1h_tokens, cache_read_tokens, output_tokens, cost_micros, unknown_model_calls FROM usage_daily WHERE ${where.join(" AND ")} ORDER BY day, tenant, model`,
    params,
  };
}

function hitRate(input: number, w5: number, w1: number, read: number): number | null {
  const prompt = input + w5 + w1 + read;
  return prompt === 0 ? null : read / prompt;
}

export async function usageReport(source: UsageSource, filter: UsageFilter): Promise<UsageReport> {
  const { sql, params } = buildQuery(filter);
  const rows = await source.query(sql, params);
  const lines: UsageLine[] = rows.map((raw, i) => {
    const r = RollupRow.safeParse(raw);
    if (!r.success) throw new Error(`row ${i + 1} from ${source.where} is not a usage rollup: ${r.error.issues[0]!.path.join(".")}: ${r.error.issues[0]!.message}`);
    const d = r.data;
    return {
      day: d.day,
      tenant: d.tenant,
      model: d.model,
      calls: d.calls,
      inputTokens: d.input_tokens,
      cacheWrite5mTokens: d.cache_write_5m_tokens,
      cacheWrite1hTokens: d.cache_write_1h_tokens,
      cacheReadTokens: d.cache_read_tokens,
      outputTokens: d.output_tokens,
      cacheHitRate: hitRate(d.input_tokens, d.cache_write_5m_tokens, d.cache_write_1h_tokens, d.cache_read_tokens),
      costMicros: d.cost_micros,
      unknownModelCalls: d.unknown_model_calls,
    };
  });
  const sum = (k: keyof UsageLine) => lines.reduce((n, l) => n + (l[k] as number), 0);
  const total = {
    calls: sum("calls"),
    inputTokens: sum("inputTokens"),
    cacheWrite5mTokens: sum("cacheWrite5mTokens"),
    cacheWrite1hTokens: sum("cacheWrite1hTokens"),
    cacheReadTokens: sum("cacheReadTokens"),
    outputTokens: sum("outputTokens"),
    cacheHitRate: null as number | null,
    costMicros: sum("costMicros"),
    unknownModelCalls: sum("unknownModelCalls"),
  };
  total.cacheHitRate = hitRate(total.inputTokens, total.cacheWrite5mTokens, total.cacheWrite1hTokens, total.cacheReadTokens);
  return { filter, source: source.where, lines, total };
}

// Micro-dollars as dollars, from the integer (shared with the proxy's budget messages).
export { dollars } from "../../../workers/shared/cost.ts";

// The rate-limit step of a call, with the tenant's token limits (issue 14.8): builds the
// call's token reservation (policy/token-estimate.ts), takes it together with the
// request token in one Durable Object call (or from the isolate's lease: no extra round
// trip), asks count_tokens once when the byte bound is too coarse near the limit, and
// returns the settle that gives back what the call did not use (in ctx.waitUntil).
import type { Config } from "./config.ts";
import type { Env } from "./env.ts";
import { rateLimit, settleTokens, type LocalLimits, type RateVerdict } from "./policy/rate-limit.ts";
import { LEASE_MS, type TakeResult, type TokenAsk, type TokenLimits, type Tokens } from "./policy/token-bucket.ts";
import { countTokensBody, estimateFromBody, fromCount, usedTokens, type Estimate } from "./policy/token-estimate.ts";
import type { TenantRecord } from "./tenant-record.ts";
import type { Usage } from "./usage.ts";

export interface Reservation {
  verdict: RateVerdict;
  /** Settles the call: to `usage` (what the answer reported), or to nothing. Idempotent. */
  settle: (usage?: Usage, interrupted?: boolean) => void;
}

const NOTHING = () => {};

/** count_tokens on the upstream for the call's counted fields; undefined if it fails. */
async function countTokens(cfg: Config, env: Env, headers: Headers, parsed: Record<string, unknown>): Promise<number | undefined> {
  const key = env.ANTHROPIC_API_KEY;
  if (key === undefined || key === "") return undefined;
  const h = new Headers({ "content-type": "application/json", "x-api-key": key });
  for (const name of ["anthropic-version", "anthropic-beta"]) {
    const v = headers.get(name);
    if (v !== null) h.set(name, v);
  }
  try {
    const res = await fetch(cfg.upstream + "/v1/messages/count_tokens", { method: "POST", headers: h, body: countTokensBody(parsed) });
    if (!res.ok) {
      await res.body?.cancel();
      return undefined;
    }
    const j = (await res.json()) as { input_tokens?: unknown };
    return typeof j.input_tokens === "number" && Number.isFinite(j.input_tokens) && j.input_tokens >= 0 ? j.input_tokens : undefined;
  } catch {
    return undefined;
  }
}

export async function reserveTokens(
  env: Env,
  cfg: Config,
  ctx: ExecutionContext,
  local: LocalLimits,
  tenant: TenantRecord,
  route: string,
  headers: Headers,
  /** The body, read already when the tenant has token limits. */
  body: ArrayBuffer | undefined,
): Promise<Reservation> {
  const stub = () => env.RATE_LIMITER.get(env.RATE_LIMITER.idFromName(tenant.id));
  const call = (leaseCap: number, ask?: TokenAsk): Promise<TakeResult> => stub().take(tenant.ratePerMinute, tenant.burst, leaseCap, ask);
  // A lease top-up or a settle runs after this request may have answered: keep it alive.
  const background = (p: Promise<unknown>) => ctx.waitUntil(p);
  const limits: TokenLimits = { inputPerMinute: tenant.inputTokensPerMinute ?? 0, outputPerMinute: tenant.outputTokensPerMinute ?? 0 };
  if ((limits.inputPerMinute === 0 && limits.outputPerMinute === 0) || body === undefined) {
    return { verdict: await rateLimit(tenant.id, call, local, Date.now, cfg.failOpen, LEASE_MS, background), settle: NOTHING };
  }

  // count_tokens calls count as requests and use no tokens upstream.
  const est: Estimate =
    route === "/v1/messages" ? estimateFromBody(body) : { input: 0, output: 0, needsCount: false, counted: false, parsed: undefined };
  // Content whose bytes bound nothing (images, documents, ...) is counted first, unless
  // the tenant is refused anyway (no upstream call for a call that cannot go).
  if (est.needsCount && est.parsed !== undefined && local.deniedFor(tenant.id, Date.now()) === undefined) {
    const n = await countTokens(cfg, env, headers, est.parsed);
    if (n !== undefined) {
      est.input = fromCount(n);
      est.counted = true;
    }
  }
  const sized = (input: number): Tokens => ({ input: limits.inputPerMinute > 0 ? input : 0, output: limits.outputPerMinute > 0 ? est.output : 0 });
  let want = sized(est.input);
  let verdict = await rateLimit(tenant.id, call, local, Date.now, cfg.failOpen, LEASE_MS, background, { limits, want });
  if (
    !verdict.ok &&
    verdict.status === 429 &&
    verdict.limited.length === 1 &&
    verdict.limited[0] === "input_tokens" &&
    !est.counted &&
    est.parsed !== undefined
  ) {
    // Near the input limit the byte bound (~4x the real count) refuses calls that fit:
    // count exactly and ask once more.
    const n = await countTokens(cfg, env, headers, est.parsed);
    if (n !== undefined && fromCount(n) < want.input) {
      want = sized(fromCount(n));
      verdict = await rateLimit(tenant.id, call, local, Date.now, cfg.failOpen, LEASE_MS, background, { limits, want });
    }
  }
  if (!verdict.ok || verdict.failedOpen) return { verdict, settle: NOTHING };
  const reserved = verdict.reserved;
  let settled = false;
  const settle = (usage?: Usage, interrupted = false) => {
    if (settled) return;
    settled = true;
    const used = usage === undefined ? { input: 0, output: 0 } : usedTokens(usage, reserved, interrupted);
    if (limits.inputPerMinute === 0) used.input = 0;
    if (limits.outputPerMinute === 0) used.output = 0;
    settleTokens(tenant.id, local, Date.now(), reserved, used, (give) => stub().settle(limits, give), background);
  };
  return { verdict, settle };
}

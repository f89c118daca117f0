// Writes a Worker secret through Cloudflare's Workers secrets API with the official
// `cloudflare` SDK: PUT /accounts/{a}/workers/scripts/{s}/secrets creates and deploys a
// new version at once. The SDK's own retries are off (maxRetries 0: two quick retries
// do not outlast a 5-minute block); this module retries 429, 5xx and lost connections a
// bounded number of times, honouring retry-after, through the rotation's shared limiter.
import Cloudflare from "cloudflare";
import type { RateLimiter } from "./rate-limit.ts";

/** Cloudflare's error code while a gradual deployment of the script is in progress. */
export const GRADUAL_DEPLOYMENT_CODE = 10215;

export class GradualDeploymentError extends Error {
  readonly script: string;
  constructor(script: string, detail: string) {
    super(
      `Worker ${script} is in the middle of a gradual deployment (Cloudflare error ${GRADUAL_DEPLOYMENT_CODE}: ${detail}); ` +
        "a secret cannot be changed until it finishes. Complete it (or roll it back) with `wrangler versions deploy`, then resume.",
    );
    this.name = "GradualDeploymentError";
    this.script = script;
  }
}

export class CloudflareApiError extends Error {
  readonly status: number | undefined;
  constructor(message: string, status: number | undefined) {
    super(message);
    this.name = "CloudflareApiError";
    this.status = status;
  }
}

export interface SecretsApi {
  /** Sets secret_text `binding` of `script` to `value` (and deploys it). */
  put(script: string, binding: string, value: string): Promise<void>;
}

export interface CloudflareSecretsOptions {
  apiToken: string;
  accountId: string;
  baseURL?: string;
  limiter: RateLimiter;
  /** Attempts per call, the first included (default 5). */
  attempts?: number;
  /** First backoff for 5xx and lost connections (doubles each time; default 1 s). */
  backoffMs?: number;
  /** Longest retry-after honoured before giving up (default 6 minutes: a 5-minute block). */
  maxRetryAfterMs?: number;
  /** Per-request timeout (default 30 s). */
  timeoutMs?: number;
  sleep?: (ms: number) => Promise<void>;
  /** Told about each retry (for the event log). */
  onRetry?: (info: { script: string; attempt: number; status: number | undefined; waitMs: number }) => void;
}

/** Parses retry-after (seconds or an HTTP date) into ms; undefined when absent or unreadable. */
export function retryAfterMs(value: string | null | undefined, now = Date.now()): number | undefined {
  if (!value) return undefined;
  const s = Number(value);
  if (Number.isFinite(s) && s >= 0) return Math.ceil(s * 1000);
  const t = Date.parse(value);
  return Number.isNaN(t) ? undefined : Math.max(0, t - now);
}

export function cloudflareSecrets(o: CloudflareSecretsOptions): SecretsApi {
  const cf = new Cloudflare({ apiToken: o.apiToken, maxRetries: 0, timeout: o.timeoutMs ?? 30_000, ...(o.baseURL ? { baseURL: o.baseURL } : {}) });
  const attempts = o.attempts ?? 5;
  const backoff = o.backoffMs ?? 1000;
  const maxRetryAfter = o.maxRetryAfterMs ?? 360_000;
  const sleep = o.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  return {
    async put(script, binding, value) {
      for (let attempt = 1; ; attempt++) {
        let status: number | undefined;
        let wait: number;
        try {
          await o.limiter.run(() => cf.workers.scripts.secrets.update(script, { account_id: o.accountId, name: binding, text: value, type: "secret_text" }));
          return;
        } catch (e) {
          if (!(e instanceof Cloudflare.APIError)) throw e;
          status = e.status;
          const codes = (e.errors ?? []).map((x) => x.code);
          if (codes.includes(GRADUAL_DEPLOYMENT_CODE)) {
            const msg = e.errors.find((x) => x.code === GRADUAL_DEPLOYMENT_CODE)?.message ?? "gradual deployment in progress";
            throw new GradualDeploymentError(script, msg);
          }
          const what = describe(e);
          const retryable = status === undefined || status === 429 || status >= 500;
          if (!retryable) throw new CloudflareApiError(`Cloudflare refused the secret update of ${script}: ${what}`, status);
          if (attempt >= attempts) throw new CloudflareApiError(`Cloudflare secret update of ${script} failed after ${attempts} attempts: ${what}`, status);
          if (status === 429) {
            const ra = retryAfterMs(e.headers?.get("retry-after"));
            wait = ra ?? 60_000;
            if (wait > maxRetryAfter) throw new CloudflareApiError(`Cloudflare rate limit: retry-after ${Math.round(wait / 1000)} s is longer than the ${Math.round(maxRetryAfter / 1000)} s this run waits`, status);
            // The limit is account-wide: every caller waits, not only this one.
            o.limiter.pause(wait);
          } else {
            wait = backoff * 2 ** (attempt - 1);
          }
        }
        o.onRetry?.({ script, attempt, status, waitMs: wait });
        await sleep(wait);
      }
    },
  };
}

function describe(e: InstanceType<typeof Cloudflare.APIError>): string {
  if (e.status === undefined) return `no response (${e.message})`;
  const errs = (e.errors ?? []).map((x) => `${x.code}: ${x.message}`).join("; ");
  return `HTTP ${e.status}${errs ? ` (${errs})` : ""}`;
}

// Writes a Worker secret through Cloudflare's Workers secrets API with the official
// `cloudflare` SDK, and reads which version that write deployed:
// - PUT /accounts/{a}/workers/scripts/{s}/secrets creates a new version (the latest
//   version with the secret set) and deploys it at 100% at once (node_modules/cloudflare
//   7.3 resources/workers/scripts/secrets.js; FINDINGS.md);
// - GET /accounts/{a}/workers/scripts/{s}/deployments answers `result.deployments`, newest
//   (serving) first, each with `versions: [{version_id, percentage}]` (deployments.d.ts;
//   wrangler 4.153 cli.js fetchLatestDeployment reads `deployments.at(0)`). It is read
//   raw: the SDK's `deployments.list()` pages over `result.items`, which this endpoint
//   does not have, so iterating it yields nothing (checked in core/pagination.js).
// The SDK's own retries are off (maxRetries 0: two quick retries do not outlast a
// 5-minute block); this module retries 429, 5xx and lost connections a bounded number of
// times, honouring retry-after, through the rotation's shared limiter.
import { cloudflareClient } from "../../../stacks/model/cloudflare-client.ts";
import { retryAfterMs } from "../../../workers/shared/retry-after.ts";
import Cloudflare from "cloudflare";
import { z } from "zod";
import type { RateLimiter } from "./rate-limit.ts";

/**
 * Cloudflare refuses a secret write with 10215 while the latest version of the Worker is
 * not the one deployed (alone, at 100%): during a gradual deployment, after `wrangler
 * versions upload` without a deploy, and after a rollback; 10214 is the same for version
 * settings (wrangler 4.153 cli.js VERSION_NOT_DEPLOYED_ERR_CODES; workers-sdk #6763, #10585).
 */
export const NOT_DEPLOYED_CODES = [10215, 10214] as const;

/** What the deployments and versions APIs say about a Worker whose latest version is not deployed. */
export interface DeploymentState {
  /** The serving deployment's versions, as the API lists them. */
  serving: { version_id: string; percentage: number }[];
  /** The newest version, deployed or not (null when the versions API could not be read). */
  latest: string | null;
  /** The latest version was deployed once and is no longer (a rollback). */
  rolledBack: boolean;
}

/**
 * The latest version of a Worker is not deployed, so its secrets cannot be written.
 * The message names the case and gives only remedies after which `--resume` succeeds:
 * each ends with the latest version deployed alone at 100%. Rolling the deployment back
 * to an older version is never among them: it leaves the latest version undeployed, and
 * the write fails again.
 */
export class VersionNotDeployedError extends Error {
  readonly script: string;
  readonly state: DeploymentState | undefined;
  constructor(script: string, binding: string, detail: string, state: DeploymentState | undefined) {
    super(notDeployedMessage(script, binding, detail, state));
    this.name = "VersionNotDeployedError";
    this.script = script;
    this.state = state;
  }
}

export function notDeployedMessage(script: string, binding: string, detail: string, state: DeploymentState | undefined): string {
  const serving = state?.serving.map((v) => `${v.version_id} at ${v.percentage}%`).join(" and ") ?? "unknown (the deployments API could not be read)";
  const latest = state?.latest ?? "<latest version id from `wrangler versions list`>";
  let why: string;
  if (!state) why = "its latest version is not the one deployed";
  else if (state.serving.length > 1) why = `a gradual deployment is in progress (serving ${serving})`;
  else if (state.latest && state.serving.every((v) => v.version_id !== state.latest)) {
    why = state.rolledBack
      ? `it was rolled back: ${serving} serves, the latest version ${state.latest} is no longer deployed`
      : `version ${state.latest} was uploaded (\`wrangler versions upload\`) and never deployed; ${serving} serves`;
  } else why = `its latest version is not the one deployed alone (serving ${serving})`;
  return (
    `Worker ${script} cannot take a secret now: ${why} (Cloudflare: ${detail}). ` +
    `Cloudflare writes a secret only while the latest version is deployed alone at 100%. Fix it one of two ways, then run \`npm run rotate -- --resume\`: ` +
    `(1) if ${latest} is the code ${script} should run, deploy it at 100%: \`npx wrangler versions deploy ${latest}@100% --name ${script} --yes\`; ` +
    `(2) otherwise put the intended code back as the latest version and deploy it (\`pulumi up\` uploads and deploys it), ` +
    `or, to ship ${latest} with the new key straight away, write the key into a new version with the versions API and deploy that: ` +
    `\`npx wrangler versions secret put ${binding} --name ${script}\` (the new key on stdin; it copies ${latest}) then \`npx wrangler versions deploy <the version it created>@100% --name ${script} --yes\`. ` +
    `Do not roll back to the version now serving or deploy an older one: that leaves the latest version undeployed and the write fails again.`
  );
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
  /** Sets secret_text `binding` of `script` to `value` (a new version, deployed at 100%). */
  put(script: string, binding: string, value: string): Promise<void>;
  /**
   * The id of the version the script's serving deployment runs at 100%. Throws
   * VersionNotDeployedError when the deployment splits traffic (a gradual deployment
   * started since the write): no single version can then be confirmed.
   */
  deployedVersion(script: string, binding: string): Promise<string>;
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

const Deployments = z.object({
  result: z.object({
    deployments: z.array(z.object({ id: z.string(), versions: z.array(z.object({ version_id: z.string(), percentage: z.number() })) })),
  }),
});
const Versions = z.object({ result: z.object({ items: z.array(z.object({ id: z.string() })) }) });

export function cloudflareSecrets(o: CloudflareSecretsOptions): SecretsApi {
  const cf = cloudflareClient({ apiToken: o.apiToken, maxRetries: 0, timeout: o.timeoutMs ?? 30_000, baseURL: o.baseURL });
  const attempts = o.attempts ?? 5;
  const backoff = o.backoffMs ?? 1000;
  const maxRetryAfter = o.maxRetryAfterMs ?? 360_000;
  const sleep = o.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const base = `/accounts/${encodeURIComponent(o.accountId)}/workers/scripts`;

  /** One API call with the bounded retries; `what` names it in errors. Throws Cloudflare.APIError for codes the caller handles. */
  async function call<T>(script: string, what: string, fn: () => Promise<T>, passThrough: (codes: number[]) => boolean = () => false): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      let status: number | undefined;
      let wait: number;
      try {
        return await o.limiter.run(fn);
      } catch (e) {
        if (!(e instanceof Cloudflare.APIError)) throw e;
        status = e.status;
        if (passThrough((e.errors ?? []).flatMap((x) => (x.code === undefined ? [] : [x.code])))) throw e;
        const detail = describe(e);
        const retryable = status === undefined || status === 429 || status >= 500;
        if (!retryable) throw new CloudflareApiError(`Cloudflare refused ${what} of ${script}: ${detail}`, status);
        if (attempt >= attempts) throw new CloudflareApiError(`Cloudflare: ${what} of ${script} failed after ${attempts} attempts: ${detail}`, status);
        if (status === 429) {
          const ra = retryAfterMs(e.headers, Date.now());
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
  }

  const deployments = async (script: string) => {
    const body = await call(script, "the deployments read", () => cf.get(`${base}/${encodeURIComponent(script)}/deployments`));
    const r = Deployments.safeParse(body);
    if (!r.success) throw new CloudflareApiError(`Cloudflare's deployments of ${script}: unexpected answer (${r.error.issues[0]?.message ?? "?"})`, 200);
    return r.data.result.deployments;
  };

  /** Which case of "latest version not deployed" this is (best effort: undefined if it cannot be read). */
  const state = async (script: string): Promise<DeploymentState | undefined> => {
    try {
      const ds = await deployments(script);
      const v = Versions.safeParse(await call(script, "the versions read", () => cf.get(`${base}/${encodeURIComponent(script)}/versions`, { query: { page: 1, per_page: 10 } })));
      const latest = v.success ? (v.data.result.items[0]?.id ?? null) : null;
      const serving = ds[0]?.versions ?? [];
      const rolledBack = latest !== null && !serving.some((x) => x.version_id === latest) && ds.slice(1).some((d) => d.versions.some((x) => x.version_id === latest));
      return { serving, latest, rolledBack };
    } catch (e) {
      if (e instanceof CloudflareApiError) return undefined;
      throw e;
    }
  };

  return {
    async put(script, binding, value) {
      try {
        await call(
          script,
          "the secret update",
          () => cf.workers.scripts.secrets.update(script, { account_id: o.accountId, name: binding, text: value, type: "secret_text" }),
          (codes) => codes.some((c) => (NOT_DEPLOYED_CODES as readonly number[]).includes(c)),
        );
      } catch (e) {
        if (!(e instanceof Cloudflare.APIError)) throw e;
        const err = e.errors.find((x) => x.code !== undefined && (NOT_DEPLOYED_CODES as readonly number[]).includes(x.code));
        throw new VersionNotDeployedError(script, binding, `error ${err?.code}: ${err?.message ?? "latest version not deployed"}`, await state(script));
      }
    },
    async deployedVersion(script, binding) {
      const ds = await deployments(script);
      const serving = ds[0];
      if (!serving) throw new CloudflareApiError(`Cloudflare lists no deployment of ${script}`, 200);
      const only = serving.versions.length === 1 && serving.versions[0]!.percentage === 100 ? serving.versions[0]!.version_id : undefined;
      if (only) return only;
      throw new VersionNotDeployedError(script, binding, `deployment ${serving.id} splits traffic since the secret was written`, await state(script));
    },
  };
}

function describe(e: InstanceType<typeof Cloudflare.APIError>): string {
  if (e.status === undefined) return `no response (${e.message})`;
  const errs = (e.errors ?? []).map((x) => `${x.code}: ${x.message}`).join("; ");
  return `HTTP ${e.status}${errs ? ` (${errs})` : ""}`;
}

// Reads a Worker's operator status endpoint (workers/llm-proxy/src/status.ts):
// GET <statusUrl> with the operator token answers the running version and a short
// fingerprint of each provider secret. Rotation uses it to see which key is live.
import { z } from "zod";

const StatusBody = z.object({
  worker: z.string().optional(),
  version: z.object({ id: z.string().nullable().optional() }).partial().nullable().optional(),
  secrets: z.record(z.string(), z.string().nullable()),
});

export interface WorkerStatus {
  /** The fingerprint reported for the binding, or null when the secret is unset. */
  fingerprint: string | null;
  versionId: string | null;
}

export interface StatusReader {
  read(statusUrl: string, binding: string): Promise<WorkerStatus>;
}

export interface StatusOptions {
  operatorToken: string;
  /**
   * Send every status request to `<via>/<host><path>` instead of the Worker's own
   * address (the loopback fake fleet in tests and the benchmark; a staging proxy).
   */
  via?: string;
  timeoutMs?: number;
}

export class StatusError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "StatusError";
  }
}

export function statusReader(o: StatusOptions): StatusReader {
  const timeout = o.timeoutMs ?? 10_000;
  return {
    async read(statusUrl, binding) {
      const target = o.via ? rewrite(statusUrl, o.via) : statusUrl;
      let res: Response;
      try {
        res = await fetch(target, { headers: { authorization: `Bearer ${o.operatorToken}`, accept: "application/json" }, signal: AbortSignal.timeout(timeout) });
      } catch (e) {
        throw new StatusError(`${statusUrl}: no answer (${(e as Error).message})`);
      }
      const text = await res.text();
      if (res.status === 401 || res.status === 403) throw new StatusError(`${statusUrl}: HTTP ${res.status}: the operator token is not accepted (EDGEFLEET_OPERATOR_TOKEN)`);
      if (!res.ok) throw new StatusError(`${statusUrl}: HTTP ${res.status}`);
      let body: z.infer<typeof StatusBody>;
      try {
        body = StatusBody.parse(JSON.parse(text));
      } catch {
        throw new StatusError(`${statusUrl}: not a status document`);
      }
      if (!(binding in body.secrets)) throw new StatusError(`${statusUrl}: the Worker reports no secret named ${binding}`);
      return { fingerprint: body.secrets[binding] ?? null, versionId: body.version?.id ?? null };
    },
  };
}

function rewrite(statusUrl: string, via: string): string {
  const u = new URL(statusUrl);
  return `${via.replace(/\/+$/, "")}/${u.host}${u.pathname}${u.search}`;
}

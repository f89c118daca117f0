// The Workers a rotation touches and the order it touches them in. The engine takes a
// plain list of DesiredWorker (the CLI derives it from the inventory; tests and the
// benchmark build their own), so nothing here reads the inventory.
import { createHash } from "node:crypto";
import type { DesiredWorker as ModelWorker } from "../../../stacks/model/workers.ts";

/**
 * What rotation needs of a Worker of the desired state (stacks/model/workers.ts): the
 * fields that say which secrets it binds, whether it is a canary and where its status
 * endpoint is. Tests and the benchmark build these directly.
 */
export type DesiredWorker = Pick<ModelWorker, "script" | "source" | "canary" | "secrets" | "hostnames" | "statusUrl">;

/** The Workers that bind a secret: canaries first, then by script name (the model's order). */
export { workersBindingSecret } from "../../../stacks/model/workers.ts";

/**
 * The fingerprint the Worker's status endpoint reports for a secret
 * (workers/llm-proxy/src/status.ts): "sha256:" + the first 12 hex digits of SHA-256.
 * Enough to tell keys apart; it reveals nothing usable about the key.
 */
export function fingerprint(secret: string): string {
  return "sha256:" + createHash("sha256").update(secret, "utf8").digest("hex").slice(0, 12);
}

/** The Pulumi config key (namespace edgefleet) a Worker reads `binding` from. */
export function configKeyOf(worker: DesiredWorker, binding: string): string {
  const s = worker.secrets.find((x) => x.binding === binding);
  if (!s) throw new Error(`worker ${worker.script} does not bind ${binding}`);
  return s.config;
}

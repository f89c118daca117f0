// The model's per-resource inputs, typed against @pulumi/cloudflare's own Args types, so
// a misspelt or misshaped input fails `npm run typecheck` (and so `npm test`) rather than
// `pulumi up`. Type-only imports of the provider: erased at run time, the model stays
// free of Pulumi. To model a new resource type (an R2 bucket's CORS, a D1 database, a
// Queue consumer's settings...), add its TYPES entry and its Args here; `modelInputs`
// then checks every literal written for it.
import type * as cloudflare from "@pulumi/cloudflare";
import type { OutputInstance } from "@pulumi/pulumi";
import type { InputRef, Inputs } from "./desired.ts";
import { TYPES } from "./names.ts";

/** The provider's Args of each resource type the model declares. */
export interface ProviderArgs {
  [TYPES.zone]: cloudflare.ZoneArgs;
  [TYPES.dnsRecord]: cloudflare.DnsRecordArgs;
  [TYPES.workersScript]: cloudflare.WorkersScriptArgs;
  [TYPES.workersKvNamespace]: cloudflare.WorkersKvNamespaceArgs;
  [TYPES.r2Bucket]: cloudflare.R2BucketArgs;
  [TYPES.r2BucketLifecycle]: cloudflare.R2BucketLifecycleArgs;
  [TYPES.d1Database]: cloudflare.D1DatabaseArgs;
  [TYPES.queue]: cloudflare.QueueArgs;
  [TYPES.queueConsumer]: cloudflare.QueueConsumerArgs;
  [TYPES.workersCronTrigger]: cloudflare.WorkersCronTriggerArgs;
  [TYPES.workersRoute]: cloudflare.WorkersRouteArgs;
  [TYPES.workersCustomDomain]: cloudflare.WorkersCustomDomainArgs;
}

export type ProviderType = keyof ProviderArgs;

/** pulumi.Input<T> (T, a Promise or an Output of T) as the plain T the model holds. */
type Plain<T> = T extends Promise<infer U> ? Plain<U> : T extends OutputInstance<infer U> ? Plain<U> : T;

/**
 * A provider Args type as the model writes it: plain data, where any scalar may instead
 * be a reference the program resolves (another resource's output, a secret, the bundle).
 */
export type Modelled<T> =
  Plain<T> extends infer P
    ? P extends string | number | boolean
      ? P | InputRef
      : P extends readonly (infer E)[]
        ? Modelled<E>[]
        : P extends object
          ? { [K in keyof P]: Modelled<P[K]> }
          : P
    : never;

/** The inputs of a resource of type K, as the model writes them. */
export type ModelInputs<K extends ProviderType> = Modelled<ProviderArgs[K]>;

/** One element of an array input, e.g. ModelElement<"…WorkersScript", "bindings"> is a binding. */
export type ModelElement<K extends ProviderType, P extends keyof ModelInputs<K>> = NonNullable<ModelInputs<K>[P]> extends readonly (infer E)[] ? E : never;

/** A checked literal of K's inputs as the desired state's plain Inputs (undefined fields dropped). */
export function modelInputs<K extends ProviderType>(_type: K, inputs: ModelInputs<K>): Inputs {
  // The one conversion: `inputs` was checked against the provider's Args above, and
  // undefined optional fields are dropped (Pulumi treats absent and undefined alike).
  return Object.fromEntries(Object.entries(inputs as object).filter(([, v]) => v !== undefined)) as Inputs;
}

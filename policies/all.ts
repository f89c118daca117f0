// Every edgefleet policy, as plain objects: the pack (index.ts) and `npm run plan`
// run this one list, so the plan finds what `pulumi preview --policy-pack` would.
import type { ResourceValidationPolicy, StackValidationPolicy } from "@pulumi/policy";
import { caaAllowsCloudflare } from "./dns/caa-allows-cloudflare.ts";
import { dmarcSubdomainNotWeaker } from "./dns/dmarc-subdomain-not-weaker.ts";
import { noMailPosture } from "./dns/no-mail-posture.ts";
import { nullMxAlone } from "./dns/null-mx-alone.ts";
import { oneSpfPerName } from "./dns/one-spf-per-name.ts";
import { spfAsciiAll } from "./dns/spf-ascii-all.ts";
import { spfGrammar } from "./dns/spf-grammar.ts";
import { spfLookupLimit } from "./dns/spf-lookup-limit.ts";
import { durableObjectMigrations } from "./workers/durable-object-migrations.ts";
import { maxZonesPerWorker } from "./workers/max-zones-per-worker.ts";
import { noCountersOnKv } from "./workers/no-counters-on-kv.ts";
import { nodejsCompatDate } from "./workers/nodejs-compat-date.ts";
import { noSecretsInPlainText } from "./workers/no-secrets-in-plain-text.ts";
import { queueConsumerDlq } from "./workers/queue-consumer-dlq.ts";
import { r2ArchiveLifecycle } from "./workers/r2-archive-lifecycle.ts";

export const policies: (ResourceValidationPolicy | StackValidationPolicy)[] = [
  noSecretsInPlainText,
  noMailPosture,
  nullMxAlone,
  oneSpfPerName,
  spfLookupLimit,
  spfAsciiAll,
  spfGrammar,
  dmarcSubdomainNotWeaker,
  caaAllowsCloudflare,
  nodejsCompatDate,
  durableObjectMigrations,
  maxZonesPerWorker,
  noCountersOnKv,
  queueConsumerDlq,
  r2ArchiveLifecycle,
];

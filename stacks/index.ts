// The edgefleet Pulumi program (Pulumi.yaml: main). Thin on purpose: see program.ts.
import { main } from "./program.ts";

const outputs = main();

export const zoneCount = outputs.zoneCount;
export const recordCount = outputs.recordCount;
export const workers = outputs.workers;
/** For `npm run sites -- publish --namespace-id "$(pulumi stack output sitesNamespaceId)"`. */
export const sitesNamespaceId = outputs.sitesNamespaceId;
/** For `npm run tenants -- --remote --namespace-id "$(pulumi stack output tenantsNamespaceId)"`. */
export const tenantsNamespaceId = outputs.tenantsNamespaceId;
/** D1 database name -> id, for `npm run d1-migrations` (wrangler applies the migrations by id). */
export const d1DatabaseIds = outputs.d1DatabaseIds;

// nodejs_compat before 2024-09-23 gives the old, partial polyfills (v1); the current
// Node.js compatibility needs that compatibility date or later.
import type { ResourceValidationPolicy } from "@pulumi/policy";
import { TYPE } from "../lib/resources.ts";

export const MIN_NODEJS_COMPAT_DATE = "2024-09-23";

export const nodejsCompatDate: ResourceValidationPolicy = {
  name: "nodejs-compat-date",
  description: `A Worker using nodejs_compat has a compatibility date of ${MIN_NODEJS_COMPAT_DATE} or later. See https://developers.cloudflare.com/workers/runtime-apis/nodejs/`,
  enforcementLevel: "mandatory",
  validateResource: (args, report) => {
    if (args.type !== TYPE.workersScript) return;
    const flags = Array.isArray(args.props.compatibilityFlags) ? (args.props.compatibilityFlags as string[]) : [];
    if (!flags.includes("nodejs_compat")) return;
    const date = String(args.props.compatibilityDate ?? "");
    if (!/^\d{4}-\d{2}-\d{2}$/.test(date) || date < MIN_NODEJS_COMPAT_DATE) {
      report(`${args.name}: nodejs_compat needs a compatibility date of ${MIN_NODEJS_COMPAT_DATE} or later (it is '${date || "unset"}')`);
    }
  },
};

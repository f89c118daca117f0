// The form of the ids a usage event carries (usage-event.ts): plain printable tokens, since
// they end up in SQL parameters, CSV and terminals. Type-free and zod-free: the LLM proxy
// checks a tenant record's id (tenant-record.ts) and an event's model (metering.ts) with
// it, so that every call it serves can be metered; the ledger's schema checks events with
// it, and the operator commands the ids they take (scripts/lib/cli.ts ID).

/** Letters, digits, '.', '_', ':' or '-', starting with a letter or digit, at most `max`. */
export function idPattern(max: number): RegExp {
  return new RegExp(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,${max - 1}}$`);
}

export function idRule(max: number): string {
  return `1 to ${max} letters, digits, '.', '_', ':' or '-'`;
}

/** The longest tenant id (a usage event's `tenant`). */
export const TENANT_ID_MAX = 64;

/** The longest request id or model (a usage event's `request_id` and `model`), and the
 *  longest id an operator command takes. */
export const ID_MAX = 128;

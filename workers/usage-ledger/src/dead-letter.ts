// What the ledger sends to its dead-letter queue for a message it can never record: the
// body as it came. A producer binding's default content type is `json` from compatibility
// date 2024-03-18 on (Queues changelog, "Default content type now set to JSON"): sent
// without one, raw bytes arrived as `{}`, and a `v8` Date as a string.

/** Whether JSON carries `v` unchanged: null, booleans, finite numbers, strings, and
 *  arrays and plain objects of them (at most 64 deep). Not: undefined, NaN, a Date, a
 *  Map, a BigInt, a class instance (a `v8` body can hold any of these). */
export function jsonSafe(v: unknown, depth = 0): boolean {
  if (v === null || typeof v === "string" || typeof v === "boolean") return true;
  if (typeof v === "number") return Number.isFinite(v);
  if (typeof v !== "object" || depth >= 64) return false;
  if (Array.isArray(v)) return v.every((x) => jsonSafe(x, depth + 1));
  const proto = Object.getPrototypeOf(v);
  if (proto !== Object.prototype && proto !== null) return false;
  return Object.values(v).every((x) => jsonSafe(x, depth + 1));
}

/**
 * How a body goes to the dead-letter queue unchanged: raw bytes as `bytes` (a consumer
 * receives them as an ArrayBuffer; workerd's send takes them only as an ArrayBufferView:
 * 'Content Type "bytes" requires a value of type ArrayBufferView'), what JSON carries as
 * `json`. Anything else (a `v8` body JSON would change: a Date, a Map, a BigInt) cannot be
 * sent as it is: undefined, and the caller leaves the message to Queues.
 */
export function deadLetterBody(body: unknown): { body: unknown; contentType: "bytes" | "json" } | undefined {
  if (body instanceof ArrayBuffer) return { body: new Uint8Array(body), contentType: "bytes" };
  if (ArrayBuffer.isView(body)) return { body, contentType: "bytes" };
  return jsonSafe(body) ? { body, contentType: "json" } : undefined;
}

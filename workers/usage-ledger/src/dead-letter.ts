// What the ledger sends to its dead-letter queue for a message it can never record: the
// body as it came. A producer binding's default content type is `json` from compatibility
// date 2024-03-18 on (Queues changelog, "Default content type now set to JSON"): sent
// without one, raw bytes arrived as `{}`, and a `v8` Date as a string.

/** Whether JSON carries `v` unchanged: null, booleans, finite numbers but -0, strings,
 *  and dense arrays and plain objects of them (at most 64 deep), each object reached
 *  once. Not: undefined, NaN, a Date, a Map, a BigInt, a class instance (a `v8` body can
 *  hold any of these). A `text` body (a string) goes as `json`: the string is kept, its
 *  content type is not.
 *
 *  An object reached twice is refused: a `v8` body keeps shared references (a few hundred
 *  bytes can hold `x = [x, x]` sixty times over), which JSON would write out as a tree of
 *  2^60 nodes, and walking that tree would spend the consumer's CPU limit (a review found
 *  26 levels in 191 bytes took 11 s); a cycle is refused alike. */
export function jsonSafe(v: unknown): boolean {
  return safe(v, 0, new Set());
}

function safe(v: unknown, depth: number, seen: Set<object>): boolean {
  if (v === null || typeof v === "string" || typeof v === "boolean") return true;
  if (typeof v === "number") return Number.isFinite(v) && !Object.is(v, -0);
  if (typeof v !== "object" || depth >= 64 || seen.has(v)) return false;
  seen.add(v);
  // A sparse array, or one with keys of its own, comes back otherwise.
  if (Array.isArray(v)) return Object.keys(v).length === v.length && v.every((x) => safe(x, depth + 1, seen));
  const proto = Object.getPrototypeOf(v);
  if (proto !== Object.prototype && proto !== null) return false;
  return Object.values(v).every((x) => safe(x, depth + 1, seen));
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

// Splitting items into requests an API accepts: at most `maxItems` items and `maxBytes`
// (by `size`) each, in order. An item bigger than `maxBytes` goes alone. Used by the
// sites publisher (KV bulk writes) and the dead-letter replay (Queues bulk pushes).
export function batches<T>(items: readonly T[], size: (x: T) => number, maxItems: number, maxBytes: number): T[][] {
  const out: T[][] = [];
  let cur: T[] = [];
  let bytes = 0;
  for (const item of items) {
    const n = size(item);
    if (cur.length > 0 && (cur.length >= maxItems || bytes + n > maxBytes)) {
      out.push(cur);
      cur = [];
      bytes = 0;
    }
    cur.push(item);
    bytes += n;
  }
  if (cur.length > 0) out.push(cur);
  return out;
}

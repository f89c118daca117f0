// Bounded concurrency for the rotation: runs `fn` over `items`, at most `n` at a time,
// stops launching new work when `stop()` turns true or one call fails, waits for the
// calls in flight, then rethrows the first failure.
export async function pool<T>(items: readonly T[], n: number, fn: (item: T) => Promise<void>, stop: () => boolean = () => false): Promise<void> {
  let next = 0;
  let failed = false;
  let first: unknown;
  const lane = async () => {
    while (!failed && !stop() && next < items.length) {
      const item = items[next++]!;
      try {
        await fn(item);
      } catch (e) {
        if (!failed) {
          failed = true;
          first = e;
        }
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(n, items.length)) }, lane));
  if (failed) throw first;
}

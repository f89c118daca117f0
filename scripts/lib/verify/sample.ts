// Seeded sampling of zones for `npm run verify`: the same --seed and fleet give the
// same sample, so a drift seen once can be re-checked on exactly the same zones.

/** mulberry32: a small, well-known 32-bit PRNG; enough for sampling, not for secrets. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** n names chosen without replacement (partial Fisher-Yates), returned in fleet order. */
export function sample(names: readonly string[], n: number, seed: number): string[] {
  if (n >= names.length) return [...names];
  const rand = prng(seed);
  const idx = names.map((_, i) => i);
  for (let i = 0; i < n; i++) {
    const j = i + Math.floor(rand() * (idx.length - i));
    [idx[i], idx[j]] = [idx[j]!, idx[i]!];
  }
  return idx
    .slice(0, n)
    .sort((a, b) => a - b)
    .map((i) => names[i]!);
}

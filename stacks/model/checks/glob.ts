// Ignore-rule content globs ('*' matches any run of characters, nothing else is special),
// matched without regular expressions. The old RegExp translation backtracked: the glob
// '*e*e*e*e*e*Q' against a 3,000-byte TXT took exponential time and hung CI. This
// matcher is greedy and leftmost: every literal segment is found once with indexOf,
// from where the previous one ended, so the work is bounded by text x pattern length.

/** Whether `text` matches the glob `pattern` as a whole. */
export function globMatch(pattern: string, text: string): boolean {
  const parts = pattern.split("*");
  if (parts.length === 1) return pattern === text;
  const first = parts[0]!;
  const last = parts[parts.length - 1]!;
  if (first.length + last.length > text.length) return false;
  if (!text.startsWith(first) || !text.endsWith(last)) return false;
  // Middle segments, leftmost-first, inside text[first.length, text.length - last.length).
  // Taking the leftmost occurrence of each is always safe: it leaves the most room for the rest.
  let at = first.length;
  const end = text.length - last.length;
  for (let i = 1; i < parts.length - 1; i++) {
    const seg = parts[i]!;
    if (seg === "") continue;
    const found = text.indexOf(seg, at);
    if (found < 0 || found + seg.length > end) return false;
    at = found + seg.length;
  }
  return true;
}

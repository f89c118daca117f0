// A JSON object that names a key twice is valid JSON (RFC 8259 4: names "SHOULD be
// unique"; what a parser then does is up to it). JSON.parse keeps the last value; a parser
// that keeps the first, or refuses, reads another request from the same bytes. A tenant
// whose call reserves tokens or money is sized from what JSON.parse read (token-estimate.ts):
// `{"max_tokens": 64000, ..., "max_tokens": 1}` would reserve one output token for a call
// the upstream may run to 64,000, and a repeated `model` or block `type` would price or
// size another call than the one sent. Such a body is refused for those tenants (tokens.ts);
// every other tenant's body goes through as sent (byte identity, docs/llm-proxy.md).

interface Frame {
  /** The keys read so far (an object), or undefined (an array). */
  keys: Set<string> | undefined;
  /** An object: the next string is a key. */
  expectKey: boolean;
  lastKey: string;
  /** An array: the index of the current element. */
  index: number;
  parent: Frame | undefined;
  /** This container's key or index in its parent. */
  at: string | number | undefined;
}

/** The path of the first key an object of `text` names twice (`messages[0].content[1].type`),
 *  or undefined. `text` must be valid JSON (JSON.parse accepted it). Keys are compared as
 *  JSON.parse reads them (`"max\u005ftokens"` is `max_tokens`). String contents are
 *  skipped with indexOf, so the cost follows the body's structure, not its text. */
export function repeatedKey(text: string): string | undefined {
  let top: Frame | undefined;
  const n = text.length;
  let i = 0;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      // A string: its end is the first quote not escaped (preceded by an even number of
      // backslashes).
      let end = text.indexOf('"', i + 1);
      for (;;) {
        let b = end - 1;
        while (text.charCodeAt(b) === 0x5c) b--;
        if ((end - 1 - b) % 2 === 0) break;
        end = text.indexOf('"', end + 1);
      }
      if (end < 0) return undefined; // not JSON after all: JSON.parse refused it first
      if (top !== undefined && top.keys !== undefined && top.expectKey) {
        const raw = text.slice(i + 1, end);
        const key = raw.includes("\\") ? (JSON.parse(text.slice(i, end + 1)) as string) : raw;
        if (top.keys.has(key)) return pathOf(top, key);
        top.keys.add(key);
        top.lastKey = key;
        top.expectKey = false;
      }
      i = end + 1;
      continue;
    }
    if (c === 0x7b || c === 0x5b) {
      // { or [
      const at = top === undefined ? undefined : top.keys !== undefined ? top.lastKey : top.index;
      top = { keys: c === 0x7b ? new Set() : undefined, expectKey: c === 0x7b, lastKey: "", index: 0, parent: top, at };
    } else if (c === 0x7d || c === 0x5d) {
      top = top?.parent;
    } else if (c === 0x2c && top !== undefined) {
      if (top.keys !== undefined) top.expectKey = true;
      else top.index++;
    }
    i++;
  }
  return undefined;
}

/** The longest path an error message quotes: a deeper one keeps its start and its end. */
export const MAX_PATH_CHARS = 200;

/** `key` of the object `f`, as a path from the body's root (at most MAX_PATH_CHARS). */
function pathOf(f: Frame, key: string): string {
  const parts: string[] = [name(key)];
  for (let g: Frame | undefined = f; g !== undefined && g.at !== undefined; g = g.parent) {
    parts.push(typeof g.at === "number" ? `[${g.at}]` : name(g.at));
  }
  const path = parts
    .reverse()
    .map((p, k) => (k === 0 || p.startsWith("[") ? p : "." + p))
    .join("");
  return path.length <= MAX_PATH_CHARS ? path : `${path.slice(0, 60)}...${path.slice(-(MAX_PATH_CHARS - 63))}`;
}

/** A key as an error message may quote it: as it is when it is a plain name, else JSON
 *  of its first 32 characters, printable ASCII (at most ~200 characters). */
function name(key: string): string {
  return /^[A-Za-z_][A-Za-z0-9_]{0,63}$/.test(key) ? key : JSON.stringify(key.slice(0, 32)).replace(/[^\x20-\x7e]/g, "?");
}

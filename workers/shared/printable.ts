// Text that came from a message body (a schema reason can quote a key the sender made
// up), made safe for a log line or a terminal: control characters (C0, C1) and the
// bidirectional marks and overrides that can reorder what a reader sees become \uXXXX
// escapes. Pure and dependency-free, so the usage-ledger Worker's log and the
// `npm run dead-letters` output escape the same characters.

const escape = (c: string) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`;

/** C1 controls, the Arabic letter mark, LRM/RLM, U+2028/9, the embeddings and overrides
 *  (U+202A-E) and the isolates (U+2066-9): what JSON.stringify leaves raw. */
const RAW_IN_JSON = "\\u007f-\\u009f\\u061c\\u200e\\u200f\\u2028-\\u202e\\u2066-\\u2069";
const BEYOND_JSON = new RegExp(`[${RAW_IN_JSON}]`, "g");
/** The same with the C0 controls. */
const ALL = new RegExp(`[\\u0000-\\u001f${RAW_IN_JSON}]`, "g");

/** `s` with every control and bidirectional character escaped. */
export function escapeControls(s: string): string {
  return s.replace(ALL, escape);
}

/** JSON.stringify with the characters it leaves raw escaped too: still the same JSON. */
export function safeJson(v: unknown, indent?: number): string {
  return JSON.stringify(v, null, indent).replace(BEYOND_JSON, escape);
}

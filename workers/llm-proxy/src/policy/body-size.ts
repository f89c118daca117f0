// Policy step: refuse oversized bodies and decide how a body travels. A declared
// content-length over MAX_BODY_BYTES is refused before anything is read. A body up to
// BUFFER_BODY_BYTES is read into memory (so it can be re-sent on a retry); a bigger one
// with a declared length is streamed to the upstream as it arrives, never held, and so
// is sent once (issue 14.6). A body without a declared length is read up to
// BUFFER_BODY_BYTES; past that it is refused with 411: streaming it would mean learning
// that it is too large only after the call was admitted (and a rate-limit token spent),
// and holding it would put up to MAX_BODY_BYTES per call in the isolate's 128 MB. The
// bytes are never changed (prompt caching needs byte identity).

export type SizeVerdict = { ok: true } | { ok: false; message: string };

export function checkDeclaredLength(headers: Headers, max: number): SizeVerdict {
  const cl = headers.get("content-length");
  if (cl !== null && /^\d+$/.test(cl) && Number(cl) > max) {
    return { ok: false, message: `request body exceeds the ${max}-byte limit` };
  }
  return { ok: true };
}

export type Body =
  /** Held in memory: can be sent again on a retry. */
  | { kind: "bytes"; bytes: ArrayBuffer }
  /** A declared length over the buffer limit: streamed through, sent once. */
  | { kind: "stream"; stream: ReadableStream<Uint8Array> }
  /** No declared length and more than the buffer limit (411), or more than the maximum (413). */
  | { kind: "refused"; status: 411 | 413; message: string };

/** Reads or hands on the body per the rules above. `declared` was checked against `max`. */
export async function takeBody(request: Request, bufferMax: number, max: number): Promise<Body> {
  if (request.body === null) return { kind: "bytes", bytes: new ArrayBuffer(0) };
  const cl = request.headers.get("content-length");
  if (cl !== null && /^\d+$/.test(cl)) {
    // The runtime enforces the declared length on the stream itself.
    if (Number(cl) > bufferMax) return { kind: "stream", stream: request.body };
    return { kind: "bytes", bytes: await request.arrayBuffer() };
  }
  const limit = Math.min(bufferMax, max);
  const reader = request.body.getReader();
  const parts: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > limit) {
      await reader.cancel().catch(() => {});
      return limit === max
        ? { kind: "refused", status: 413, message: `request body exceeds the ${max}-byte limit` }
        : { kind: "refused", status: 411, message: `a request body over ${bufferMax} bytes needs a content-length header` };
    }
    parts.push(value);
  }
  const out = new Uint8Array(total);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.byteLength;
  }
  return { kind: "bytes", bytes: out.buffer };
}

// Policy step: refuse oversized bodies. A declared content-length over the limit is
// refused before anything is read; a body without one is read up to the limit and no
// further. The bytes are returned untouched (prompt caching needs byte identity).

export type SizeVerdict = { ok: true } | { ok: false; message: string };

export function checkDeclaredLength(headers: Headers, max: number): SizeVerdict {
  const cl = headers.get("content-length");
  if (cl !== null && /^\d+$/.test(cl) && Number(cl) > max) {
    return { ok: false, message: `request body exceeds the ${max}-byte limit` };
  }
  return { ok: true };
}

/** Reads the body as bytes, or returns undefined once it grows past `max`. */
export async function readLimited(request: Request, max: number): Promise<ArrayBuffer | undefined> {
  if (request.body === null) return new ArrayBuffer(0);
  if (request.headers.get("content-length") !== null) {
    // Declared and within the limit (checked before): the runtime enforces the length.
    const buf = await request.arrayBuffer();
    return buf.byteLength > max ? undefined : buf;
  }
  const reader = request.body.getReader();
  const parts: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > max) {
      await reader.cancel();
      return undefined;
    }
    parts.push(value);
  }
  const out = new Uint8Array(total);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.byteLength;
  }
  return out.buffer;
}

// The archive (issue 16.4, docs/metering.md "The archive"): the request and response
// bodies of an opted-in tenant's calls, in the R2 bucket ARCHIVE, under
// `<tenant>/<YYYY-MM-DD>/<request id>/request` and `.../response` (the UTC day the call
// started). Used by metering.ts for tenants whose record says `archive: true`.
//
// The hot path only stages bytes: a body already in memory is kept by reference, a
// streamed one is copied as it passes, up to ARCHIVE_MAX_BYTES per body (the rest passes
// uncopied, and the object says `truncated`). Every R2 write runs in waitUntil; nothing
// before the response waits on R2, and a failed write is logged, never the call's failure.
import { archiveKey, type Part } from "../../shared/archive-key.ts";
import { afterThisTurn } from "./later.ts";

export { archiveKey, type Part };

/**
 * What the streamed copies of all the calls an isolate serves may hold at once. A copy
 * holds about three times what it keeps while it streams (its parts, what `tee` buffers
 * for the slower branch while the copy reads ahead, the parts joined for the put), and an
 * isolate has 128 MB: four archived 24 MiB uploads at once grew it by 148-214 MiB with
 * each copy allowed the 16 MiB maximum (test/memory.test.ts). Past this budget a copy
 * stops early, and its object says `truncated`, like one cut by ARCHIVE_MAX_BYTES.
 */
export const ISOLATE_STAGING_BYTES = 16 * 1024 * 1024;

/** How long a copy's grant may stand before the pool takes it back unasked: a put whose
 *  request context ended before it settled (waitUntil is cut 30 s after the response)
 *  never gives its bytes back, and the pool must not shrink for good. A copy still
 *  streaming after this long (a very long answer) is then simply no longer counted. */
export const STAGING_GRANT_MS = 10 * 60 * 1000;

/** Bytes granted to copies, taken as they are kept and given back once their put settled. */
export class StagingPool {
  private used = 0;
  private readonly capacity: number;
  private readonly now: () => number;
  /** Each copy holding bytes, and when it first took some. */
  private readonly holders = new Map<Staged, number>();
  constructor(capacity: number, now: () => number = Date.now) {
    this.capacity = capacity;
    this.now = now;
  }
  /** Up to `n` bytes for `who`, as many as are left. */
  take(who: Staged, n: number): number {
    const t = this.now();
    // Not the caller's own: a copy still adding is alive (reclaimed, it would take again
    // and its later release() would give nothing back: a review).
    for (const [h, since] of this.holders) if (h !== who && t - since > STAGING_GRANT_MS) h.release();
    const got = Math.max(0, Math.min(n, this.capacity - this.used));
    if (got > 0 && !this.holders.has(who)) this.holders.set(who, t);
    this.used += got;
    return got;
  }
  give(who: Staged, n: number): void {
    this.holders.delete(who);
    this.used = Math.max(0, this.used - n);
  }
  get inUse(): number {
    return this.used;
  }
}

/** The isolate's pool (module state: one per isolate). */
export const stagingPool = new StagingPool(ISOLATE_STAGING_BYTES);

/** Up to `max` bytes of a body that passes in chunks (fewer when `pool` runs out); counts
 *  what passed beyond. */
export class Staged {
  private readonly parts: Uint8Array[] = [];
  kept = 0;
  /** Every byte that passed, kept or not. */
  seen = 0;
  private readonly max: number;
  private readonly pool: StagingPool | undefined;
  /** The pool gave less than asked: nothing more is kept. */
  private starved = false;
  constructor(max: number, pool?: StagingPool) {
    this.max = max;
    this.pool = pool;
  }

  get truncated(): boolean {
    return this.seen > this.kept;
  }

  /** Nothing more will be kept: the bound is reached, or the pool ran out. */
  get full(): boolean {
    return this.starved || this.kept >= this.max;
  }

  /** Copies what still fits (the chunk itself goes on to its reader, which may detach it). */
  add(chunk: Uint8Array): void {
    this.seen += chunk.byteLength;
    if (this.starved) return;
    let room = Math.min(this.max - this.kept, chunk.byteLength);
    if (room <= 0) return;
    if (this.pool !== undefined) {
      const got = this.pool.take(this, room);
      if (got < room) this.starved = true;
      room = got;
      if (room === 0) return;
    }
    const part = chunk.byteLength <= room ? chunk.slice() : chunk.slice(0, room);
    this.parts.push(part);
    this.kept += part.byteLength;
  }

  /** Gives what it kept back to its pool (once the put settled); keeps nothing more. */
  release(): void {
    if (this.released) return;
    this.released = true;
    this.starved = true;
    this.pool?.give(this, this.kept);
  }
  private released = false;

  bytes(): Uint8Array {
    if (this.parts.length === 1) return this.parts[0]!;
    const all = new Uint8Array(this.kept);
    let o = 0;
    for (const p of this.parts) {
      all.set(p, o);
      o += p.byteLength;
    }
    return all;
  }
}

export interface ArchivedCall {
  bucket: R2Bucket;
  tenant: string;
  requestId: string;
  startedMs: number;
  maxBytes: number;
  waitUntil: (p: Promise<unknown>) => void;
  /** Logs a failed write (ids only). */
  onError: (part: Part, e: unknown) => void;
}

/** What an object's custom metadata says about its body (all strings, as R2 stores them). */
export interface PartInfo {
  /** Bytes of the body that passed (the object holds min(bytes, ARCHIVE_MAX_BYTES)). */
  bytes: number;
  truncated: boolean;
  /** As it came (the request's from the client, the answer's from the upstream); stored
   *  only when it is a plain media type (storedContentType). */
  contentType: string | null;
  /** Response only: the status the client received. */
  status?: number;
  /** Response only: "false" when the stream ended early (the client left, the upstream
   *  broke or went silent); `ended` says why. */
  complete?: boolean;
  ended?: string;
}

/** The longest Content-Type kept as it came. R2 keeps at most 8,192 bytes of metadata per
 *  object, httpMetadata included (developers.cloudflare.com/r2/platform/limits), and the
 *  request's Content-Type is the tenant's own header: one over the limit would fail the
 *  put (10012), keeping the call out of the tenant's own audit trail. */
export const CONTENT_TYPE_MAX = 256;
/** A plain media type: `type/subtype` (RFC 9110 tokens), then optional `;` parameters in
 *  printable ASCII. */
const MEDIA_TYPE = /^[\w!#$%&'*+.^`|~-]+\/[\w!#$%&'*+.^`|~-]+(?: *;[\x20-\x7e]*)?$/;
/** What is stored instead of a Content-Type that is not one, or is too long. */
export const FALLBACK_CONTENT_TYPE = "application/octet-stream";

/** The Content-Type to store for `ct`: itself when it is a plain media type of at most
 *  CONTENT_TYPE_MAX characters, else FALLBACK_CONTENT_TYPE, with the original's length in
 *  the custom metadata (`content_type_length`). */
function storedContentType(ct: string | null, customMetadata: Record<string, string>): string | undefined {
  if (!ct) return undefined;
  if (ct.length <= CONTENT_TYPE_MAX && MEDIA_TYPE.test(ct)) return ct;
  customMetadata.content_type_length = String(ct.length);
  return FALLBACK_CONTENT_TYPE;
}

function put(a: ArchivedCall, part: Part, body: Uint8Array | ArrayBuffer, info: PartInfo, settled?: () => void): void {
  const customMetadata: Record<string, string> = { request_id: a.requestId, tenant: a.tenant, bytes: String(info.bytes), truncated: String(info.truncated) };
  if (info.status !== undefined) customMetadata.status = String(info.status);
  if (info.complete !== undefined) customMetadata.complete = String(info.complete);
  if (info.ended) customMetadata.ended = info.ended;
  const contentType = storedContentType(info.contentType, customMetadata);
  // Issued on a later turn, after the handler returned (the call's buffers are not
  // detached by fetch or Response, so they are still whole then).
  const write = afterThisTurn(() =>
    a.bucket.put(archiveKey(a.tenant, a.startedMs, a.requestId, part), body, {
      customMetadata,
      ...(contentType !== undefined ? { httpMetadata: { contentType } } : {}),
    }),
  );
  a.waitUntil(write.catch((e: unknown) => a.onError(part, e)).finally(() => settled?.()));
}

/** A body held in memory (request bytes, a JSON answer): the first ARCHIVE_MAX_BYTES of it. */
export function archiveBytes(a: ArchivedCall, part: Part, bytes: ArrayBuffer, info: Omit<PartInfo, "bytes" | "truncated">): void {
  const truncated = bytes.byteLength > a.maxBytes;
  // Kept by reference until the write (a cut body is a copy of its first bytes).
  put(a, part, truncated ? bytes.slice(0, a.maxBytes) : bytes, { ...info, bytes: bytes.byteLength, truncated });
}

/**
 * A request body streamed to the upstream (above BUFFER_BODY_BYTES): tee'd, the copy read
 * in waitUntil up to ARCHIVE_MAX_BYTES and then cancelled, so the upstream's branch goes
 * on alone. Returns the branch to send upstream (tee keeps its declared length).
 */
export function archiveRequestStream(a: ArchivedCall, stream: ReadableStream<Uint8Array>, declared: number | undefined, contentType: string | null): ReadableStream<Uint8Array> {
  const [upstream, copy] = stream.tee();
  const staged = new Staged(a.maxBytes, stagingPool);
  const reader = copy.getReader();
  a.waitUntil(
    (async () => {
      try {
        while (!staged.full) {
          const r = await reader.read();
          if (r.done) break;
          staged.add(r.value);
        }
      } catch {
        // The client's body broke: archive what came.
      }
      const cut = declared !== undefined ? declared > staged.kept : staged.truncated;
      await reader.cancel().catch(() => {});
      put(a, "request", staged.bytes(), { bytes: declared ?? staged.seen, truncated: cut, contentType }, () => staged.release());
    })(),
  );
  return upstream;
}

/**
 * A streamed answer: what the client receives passes through a copy stage (a JavaScript
 * transform, so only archived tenants' streams pay a turn per chunk). The object is
 * written once the stream has ended and `ended` (the relay's outcome) has resolved: as far
 * as it went when the client left.
 */
export function archiveResponseStream(
  a: ArchivedCall,
  stream: ReadableStream<Uint8Array>,
  status: number,
  contentType: string | null,
  ended: Promise<{ complete: boolean; why: string }>,
): ReadableStream<Uint8Array> {
  const staged = new Staged(a.maxBytes, stagingPool);
  const tap = new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, c) {
      staged.add(chunk);
      c.enqueue(chunk);
    },
  });
  // Settles when the relay closed the stream, or either side broke it (a client that
  // leaves cancels the tap's readable, which cancels the relay's stream: the relay sees it
  // as before).
  const piped = stream.pipeTo(tap.writable).catch(() => {});
  a.waitUntil(
    Promise.all([piped, ended]).then(([, e]) =>
      put(a, "response", staged.bytes(), { bytes: staged.seen, truncated: staged.truncated, contentType, status, complete: e.complete, ended: e.why }, () => staged.release()),
    ),
  );
  return tap.readable;
}

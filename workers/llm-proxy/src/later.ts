// Work that must not run before the handler has returned its Response (metering.ts,
// archive.ts): even the synchronous part of a Queue send or an R2 put (serialising,
// dispatching) would otherwise come before a JSON answer leaves.

/** Runs `fn` on a later turn of the event loop (after the handler has returned). */
export function afterThisTurn<T>(fn: () => Promise<T>): Promise<T> {
  return new Promise<void>((r) => setTimeout(r, 0)).then(fn);
}

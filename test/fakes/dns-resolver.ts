// A FAKE resolver on 127.0.0.1 (UDP) for the verifier's tests: it answers every query
// with one response code (SERVFAIL, REFUSED, ...) after an optional delay, and counts
// how many queries it holds at once. It stands in for a broken upstream; real answers
// come from knot (knot-fleet.ts). Contract: RFC 1035 section 4.1.1 (header: ID, QR,
// opcode, RD/RA, RCODE; the question echoed), the RCODE values of RFC 1035 and RFC 6895.
import { createSocket, type Socket } from "node:dgram";

export const RCODE = { SERVFAIL: 2, NXDOMAIN: 3, REFUSED: 5 } as const;

export interface FakeResolver {
  port: number;
  /** Queries received. */
  received: number;
  /** Most queries received and not yet answered at one time. */
  peakOutstanding: number;
  close: () => Promise<void>;
}

/** The response to `query`: same id, opcode, RD and question; QR and RA set; no records. */
export function errorResponse(query: Buffer, rcode: number): Buffer | undefined {
  if (query.length < 12 || query.readUInt16BE(4) !== 1) return undefined;
  let i = 12;
  while (i < query.length && query[i] !== 0) i += query[i]! + 1; // QNAME labels (no compression in a query)
  const end = i + 1 + 4; // the root label, QTYPE, QCLASS
  if (end > query.length) return undefined;
  const out = Buffer.alloc(end);
  query.copy(out, 0, 0, end);
  const flags = query.readUInt16BE(2);
  out.writeUInt16BE(0x8000 | (flags & 0x7900) | 0x0080 | (rcode & 0xf), 2); // QR, opcode+RD, RA, RCODE
  out.writeUInt16BE(1, 4);
  out.writeUInt32BE(0, 6); // ANCOUNT, NSCOUNT
  out.writeUInt16BE(0, 10); // ARCOUNT
  return out;
}

export async function startFakeResolver(opts: { rcode: number; delayMs?: number }): Promise<FakeResolver> {
  const sock: Socket = createSocket("udp4");
  let outstanding = 0;
  const state: FakeResolver = {
    port: 0,
    received: 0,
    peakOutstanding: 0,
    close: () => new Promise((r) => sock.close(() => r())),
  };
  sock.on("message", (msg, rinfo) => {
    state.received++;
    outstanding++;
    state.peakOutstanding = Math.max(state.peakOutstanding, outstanding);
    const reply = () => {
      outstanding--;
      const res = errorResponse(msg, opts.rcode);
      if (res) sock.send(res, rinfo.port, rinfo.address);
    };
    if (opts.delayMs) setTimeout(reply, opts.delayMs);
    else reply();
  });
  await new Promise<void>((r) => sock.bind(0, "127.0.0.1", r));
  state.port = sock.address().port;
  return state;
}

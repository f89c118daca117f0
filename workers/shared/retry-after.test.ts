// The one reading of retry-after that the proxy, key rotation and import share.
import { describe, expect, it } from "vitest";
import { retryAfterMs } from "./retry-after.ts";

const h = (o: Record<string, string>) => new Headers(o);

describe("retryAfterMs", () => {
  it("reads delay-seconds, rounding a fraction up to the next ms", () => {
    expect(retryAfterMs(h({ "retry-after": "3" }), 0)).toBe(3000);
    expect(retryAfterMs(h({ "retry-after": "0" }), 0)).toBe(0);
    expect(retryAfterMs(h({ "retry-after": " 1.0005 " }), 0)).toBe(1001);
  });

  it("reads an HTTP-date against the given clock, a past one as 0", () => {
    const now = Date.parse("2026-01-01T00:00:00Z");
    expect(retryAfterMs(h({ "retry-after": "Thu, 01 Jan 2026 00:00:03 GMT" }), now)).toBe(3000);
    expect(retryAfterMs(h({ "retry-after": "Wed, 31 Dec 2025 23:59:00 GMT" }), now)).toBe(0);
  });

  it("prefers retry-after-ms (0 included) and falls back to retry-after when it is not a number", () => {
    expect(retryAfterMs(h({ "retry-after-ms": "1234", "retry-after": "9" }), 0)).toBe(1234);
    expect(retryAfterMs(h({ "retry-after-ms": "0", "retry-after": "9" }), 0)).toBe(0);
    expect(retryAfterMs(h({ "retry-after-ms": "soon", "retry-after": "9" }), 0)).toBe(9000);
    expect(retryAfterMs(h({ "retry-after-ms": "", "retry-after": "9" }), 0)).toBe(9000);
    expect(retryAfterMs(h({ "retry-after-ms": "-5", "retry-after": "9" }), 0)).toBe(9000);
  });

  it("is undefined with no header, an unreadable one, a negative number, or no headers at all", () => {
    expect(retryAfterMs(h({}), 0)).toBeUndefined();
    expect(retryAfterMs(h({ "retry-after": "soon" }), 0)).toBeUndefined();
    expect(retryAfterMs(h({ "retry-after": "-3" }), 0)).toBeUndefined();
    expect(retryAfterMs(undefined, 0)).toBeUndefined();
  });
});

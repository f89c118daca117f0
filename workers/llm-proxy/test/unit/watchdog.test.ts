// Unit tests (Node, fake timers) of forward.ts's Watchdog: one timer per attempt, which a
// stream's relay then reuses for its lag (SplitStream.dog). What is counted is what a
// call pays for: setTimeout and clearTimeout calls.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { scanLagMs, Watchdog } from "../../src/forward.ts";

describe("Watchdog", () => {
  let sets: ReturnType<typeof vi.spyOn>;
  let clears: ReturnType<typeof vi.spyOn>;
  beforeEach(() => {
    vi.useFakeTimers({ now: 1_000_000 });
    sets = vi.spyOn(globalThis, "setTimeout");
    clears = vi.spyOn(globalThis, "clearTimeout");
  });
  afterEach(() => {
    vi.restoreAllMocks();
    vi.useRealTimers();
  });

  it("a streamed call's waits (headers, first event, the relay's lag) share one timer: one set, one clear", () => {
    const dog = new Watchdog(Math.min(600_000, 60_000, 1000));
    const headers = vi.fn();
    dog.watch(600_000, headers);
    vi.advanceTimersByTime(5);
    const first = vi.fn();
    dog.watch(60_000, first);
    vi.advanceTimersByTime(5);
    dog.pause();
    const lag = vi.fn();
    dog.until(Date.now() + 1000, lag);
    // The stream ended before its lag: the relay clears the timer.
    vi.advanceTimersByTime(100);
    dog.clear();
    expect(sets).toHaveBeenCalledTimes(1);
    expect(clears).toHaveBeenCalledTimes(1);
    vi.advanceTimersByTime(10_000_000);
    expect([headers, first, lag].map((f) => f.mock.calls.length)).toEqual([0, 0, 0]);
  });

  it("the relay's lag fires on the attempt's timer, the lag after the first event: re-armed once, for the rest", () => {
    const dog = new Watchdog(1000);
    dog.watch(60_000, () => {
      throw new Error("the first event's bound is not due");
    });
    vi.advanceTimersByTime(20);
    dog.pause();
    const lag = vi.fn();
    dog.until(Date.now() + 1000, lag);
    vi.advanceTimersByTime(999);
    expect(lag).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(lag).toHaveBeenCalledTimes(1);
    expect(sets).toHaveBeenCalledTimes(2);
    expect(clears).not.toHaveBeenCalled();
  });

  it("a paused timer that fires does nothing and is not re-armed", () => {
    const dog = new Watchdog(1000);
    const first = vi.fn();
    dog.watch(60_000, first);
    dog.pause();
    vi.advanceTimersByTime(120_000);
    expect(first).not.toHaveBeenCalled();
    expect(sets).toHaveBeenCalledTimes(1);
  });

  it("an attempt slower than the lag re-arms once for each longer wait, and each wait still fires when due", () => {
    const dog = new Watchdog(1000);
    const headers = vi.fn();
    dog.watch(600_000, headers);
    vi.advanceTimersByTime(1000);
    expect(sets).toHaveBeenCalledTimes(2); // fired at the lag's bound, re-armed for the headers'
    vi.advanceTimersByTime(598_999);
    expect(headers).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(headers).toHaveBeenCalledTimes(1);
  });

  it("a wait due before the pending timer replaces it; a lag already past fires at once", () => {
    const dog = new Watchdog(60_000);
    const soon = vi.fn();
    dog.watch(10, soon);
    vi.advanceTimersByTime(10);
    expect(soon).toHaveBeenCalledTimes(1);
    const late = new Watchdog(60_000);
    const lag = vi.fn();
    late.until(Date.now() - 5, lag);
    vi.advanceTimersByTime(0);
    expect(lag).toHaveBeenCalledTimes(1);
  });

  it("the lag is at most half the idle timeout", () => {
    expect(scanLagMs(1000, 120_000)).toBe(1000);
    expect(scanLagMs(1000, 1000)).toBe(500);
    expect(scanLagMs(0, 120_000)).toBe(0);
  });
});

// The comparison Workers of the proxy benchmarks (run.ts).

// A minimal pass-through: what a Worker costs that only forwards.
export const PASS_THROUGH = `
export default {
  fetch(request, env) {
    const u = new URL(request.url);
    return fetch(env.UPSTREAM + u.pathname + u.search, request);
  },
};`;

// The least a Worker can do per JSON call and still do what the issues ask of every
// one: the request body read whole (a retry re-sends it), the answer read whole before it
// is sent (its usage settles the tenant's token limits and budget, and goes into the data
// point and the usage event), then those bytes answered. No auth, rate limit, timers,
// parsing or metrics. What it costs beyond the pass-through bounds what any
// implementation of the proxy can reach against issue 14's JSON target.
export const JSON_FLOOR = `
export default {
  async fetch(request, env) {
    const u = new URL(request.url);
    const body = await request.arrayBuffer();
    const res = await fetch(env.UPSTREAM + u.pathname + u.search, { method: request.method, headers: request.headers, body });
    const bytes = await res.arrayBuffer();
    return new Response(bytes, res);
  },
};`;

// The least a Worker can do per streamed call and still do what issue 3 asks of it: read
// the first event before answering (an overloaded first event is retried), keep a copy of
// the stream for the usage scan (tee, read lazily, as the proxy does), and relay through
// a stage that can still append an SSE error event if the upstream breaks. No auth, rate
// limit, retries, parsing or metrics.
export const STREAM_FLOOR = `
export default {
  async fetch(request, env, ctx) {
    const u = new URL(request.url);
    const res = await fetch(env.UPSTREAM + u.pathname + u.search, request);
    if (res.body === null || !(res.headers.get("content-type") ?? "").startsWith("text/event-stream")) return res;
    const [client, copy] = res.body.tee();
    const reader = copy.getReader();
    const dec = new TextDecoder();
    let text = "";
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      text += dec.decode(value, { stream: true });
      if (text.includes("\\n\\n")) break;
    }
    const out = new IdentityTransformStream();
    ctx.waitUntil((async () => {
      await client.pipeTo(out.writable, { preventClose: true }).catch(() => {});
      for (;;) if ((await reader.read()).done) break;
      await out.writable.close();
    })());
    return new Response(out.readable, res);
  },
};`;

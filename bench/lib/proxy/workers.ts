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

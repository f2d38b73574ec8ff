// Throughput of GET /api.xro/2.0/Contacts: the edge (the whole platform
// behind it) against the bare koa + mongodb reference, on the same FerretDB,
// in the same run, in pairs whose order alternates (edge→bare, bare→edge, …)
// so slow drift of a shared machine hits both sides alike.
import autocannon from 'autocannon';
import { median } from './stats.mjs';

/** One closed-loop autocannon run; requests/s counts 2xx responses only. */
export async function measure({ url, headers, connections, durationS, warmupS }) {
  const result = await autocannon({
    url,
    method: 'GET',
    headers,
    connections,
    pipelining: 1,
    duration: durationS,
    timeout: 10,
    // Its own thread: the load generator does not share an event loop with
    // the bench process, which also reads the platform processes' output.
    workers: 1,
    ...(warmupS > 0 ? { warmup: { connections, duration: warmupS } } : {}),
  });
  const ok = result['2xx'];
  const completed = result.requests.total; // completed responses, any status
  return {
    durationS: result.duration,
    requests: completed,
    ok,
    rps: ok / result.duration,
    // Latencies (ms) of 2xx responses, as autocannon records them.
    p50: result.latency.p50,
    p99: result.latency.p99,
    max: result.latency.max,
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    bytesPerResponse: completed > 0 ? result.throughput.total / completed : 0,
    statusCodes: Object.fromEntries(Object.entries(result.statusCodeStats ?? {}).map(([code, s]) => [code, s.count])),
  };
}

/**
 * `pairs` pairs of runs, edge and bare, alternating which goes first. Each
 * pair gives one ratio (edge rps / bare rps); the headline is their median.
 */
export async function compare({ targets, pairs, connections, durationS, warmupS, log }) {
  const runs = [];
  const ratios = [];
  for (let pair = 1; pair <= pairs; pair++) {
    const order = pair % 2 === 1 ? ['edge', 'bare'] : ['bare', 'edge'];
    const got = {};
    for (const name of order) {
      const started = new Date();
      const m = await measure({ ...targets[name], connections, durationS, warmupS });
      got[name] = m;
      runs.push({ pair, target: name, startedAt: started.toISOString(), ...m });
      const bad = m.non2xx + m.errors + m.timeouts;
      log(
        `  pair ${pair}/${pairs} ${name.padEnd(4)}: ${m.rps.toFixed(0).padStart(6)} req/s, p50 ${m.p50} ms, p99 ${m.p99} ms` +
          (bad > 0 ? `, ${m.non2xx} non-2xx, ${m.errors} errors, ${m.timeouts} timeouts` : ''),
      );
    }
    for (const name of order) {
      if (got[name].ok === 0) log(`  warning: no 2xx response from ${name} within ${durationS} s; the run says nothing (lengthen BENCH_DURATION?)`);
    }
    const ratio = got.bare.rps > 0 && got.edge.rps > 0 ? got.edge.rps / got.bare.rps : NaN;
    ratios.push(ratio);
    log(`  pair ${pair}/${pairs} ratio edge/bare: ${ratio.toFixed(3)}`);
  }
  const of = (name, key) => median(runs.filter((r) => r.target === name).map((r) => r[key]));
  return {
    runs,
    ratios,
    medianRatio: median(ratios),
    medians: Object.fromEntries(['edge', 'bare'].map((n) => [n, { rps: of(n, 'rps'), p50: of(n, 'p50'), p99: of(n, 'p99'), bytesPerResponse: of(n, 'bytesPerResponse') }])),
  };
}

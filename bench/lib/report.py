"""bench/lib/report.py: Markdown tables and hand-written SVG charts from a bench/run results JSON."""
import math
import os

COLORS = {"parley-json": "#1f77b4", "parley-msgpack": "#17becf", "socketio": "#d62728", "ws": "#ff7f0e",
          "sqlite": "#1f77b4", "mongo": "#2ca02c", "postgres": "#9467bd"}
LABELS = {"parley-json": "Parley (JSON)", "parley-msgpack": "Parley (msgpack)", "socketio": "Socket.IO 4",
          "ws": "ws 8"}


def banned_words(n):
    """n distinct lowercase words that no loadgen body contains"""
    out, a = [], "bcdfghjklmnpqrstvwxz"
    for i in range(n):
        w, k = "qu", i
        for _ in range(3):
            w += a[k % len(a)] + "aeiou"[k % 5]
            k //= len(a)
        out.append(w)
    return out


def fmt_rate(v):
    if v is None:
        return "–"
    if v >= 1e6:
        return f"{v / 1e6:.2f}M"
    if v >= 1e4:
        return f"{v / 1e3:.0f}k"
    if v >= 1e3:
        return f"{v / 1e3:.1f}k"
    return f"{v:.0f}"


def fmt_ms(us):
    if us is None:
        return "–"
    ms = us / 1000
    if ms >= 100:
        return f"{ms:.0f}"
    if ms >= 10:
        return f"{ms:.1f}"
    return f"{ms:.2f}"



def step_table(md, head, steps, ok_key, lead, cells, text_first=True):
    """A table of a bench tool's steps (F, W): the step's own columns (lead), then its figures (cells) when
    the run produced ok_key, else the error; numbers right-aligned (the first column too unless text_first)."""
    md.append("| " + " | ".join(head) + " |")
    md.append("|" + "|".join(["---" if text_first else "---:"] + ["---:"] * (len(head) - 1)) + "|")
    for s in steps:
        m, first = s["median"], [str(x) for x in lead(s)]
        rest = cells(m) if ok_key in m else [m.get("error", "no result")] + [""] * (len(head) - len(first) - 1)
        md.append("| " + " | ".join(first + rest) + " |")
    md.append("")

def flags(m):
    f = []
    reps = m.get("reps", 0)
    if m.get("client_bound"):
        f.append(f"client-bound {m['client_bound']}/{reps}")
    if m.get("noisy"):
        f.append(f"noisy {m['noisy']}/{reps}")
    if m.get("steal_pct", 0) >= 2:  # the hypervisor took the vCPUs away this share of a core's time
        f.append(f"steal {m['steal_pct']:.0f}%")
    if m.get("server_busy_at_start"):
        f.append("server busy at start")
    if m.get("closed"):
        f.append(f"{m['closed']:.0f} closed (code {m.get('close_code')})")
    if m.get("send_errors"):
        f.append(f"{m['send_errors']:.0f} send errors")
    if m.get("order_errors"):
        f.append(f"{m['order_errors']:.0f} order errors")
    if m.get("gen_lag"):
        f.append(f"gen lag {m['gen_lag']:.0f}")
    if m.get("server_died"):
        f.append("SERVER DIED")
    errs = [e for e in m.get("errors", []) if e]
    if errs and not m.get("closed") and not m.get("send_errors"):
        f.append("err: " + errs[0][:60].replace("|", "/"))
    return ", ".join(f)


OFFERED_SENT = 0.995  # a step counts at its offered rate when the generator sent at least this share of it


def capacity(steps, server, p99_ms, key="deliveries_per_s"):
    """The highest step with >= 99.9% delivered and p99 within the target. It counts at the step's offered
    rate when the generator really offered it (sent >= 99.5% of it: the pacer's 1 ms ticks and a busy
    generator leave a few sends out of the window); otherwise at what was delivered."""
    best = None
    for s in steps:
        if s.get("server") != server:
            continue
        m = s["median"]
        if m.get("delivery_ratio", 0) >= 0.999 and m.get("p99_us", 1e18) <= p99_ms * 1000 and not m.get("closed"):
            v = m.get(key, 0)
            offered = s.get("offered")
            if key == "deliveries_per_s" and offered and m.get("delivery_ratio") and \
                    v / m["delivery_ratio"] >= OFFERED_SENT * offered:
                v = offered
            if best is None or v > best:
                best = v
    return best


# ------------------------------------------------------------------------------------------------------
# SVG


def _esc(s):
    return str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def svg_lines(title, series, xlabel, ylabel, target=None):
    """series: [(name, color, [(x, y_ms, hollow)])]; x linear from 0, y log10"""
    W, H, L, R, T, B = 720, 420, 70, 170, 40, 50
    pw, ph = W - L - R, H - T - B
    xs = [p[0] for _, _, pts in series for p in pts] or [1]
    ys = [max(p[1], 0.01) for _, _, pts in series for p in pts] or [1]
    if target:
        ys.append(target)
    xmax = max(xs) * 1.08 or 1
    step = 10 ** math.floor(math.log10(xmax / 5)) if xmax > 0 else 1
    for mult in (1, 2, 2.5, 5, 10):
        if xmax / (step * mult) <= 6:
            step *= mult
            break
    xmax = math.ceil(xmax / step) * step
    ylo = 10 ** math.floor(math.log10(min(ys)))
    yhi = 10 ** math.ceil(math.log10(max(ys) * 1.01))
    if yhi <= ylo:
        yhi = ylo * 10

    def X(x):
        return L + pw * x / xmax

    def Y(y):
        y = max(y, ylo)
        return T + ph * (1 - (math.log10(y) - math.log10(ylo)) / (math.log10(yhi) - math.log10(ylo)))

    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
         'font-family="sans-serif" font-size="12">',
         f'<rect width="{W}" height="{H}" fill="white"/>',
         f'<text x="{L}" y="22" font-size="15" font-weight="bold">{_esc(title)}</text>']
    # grid
    x = 0.0
    while x <= xmax + 1e-9:
        o.append(f'<line x1="{X(x):.1f}" y1="{T}" x2="{X(x):.1f}" y2="{T + ph}" stroke="#e5e5e5"/>')
        o.append(f'<text x="{X(x):.1f}" y="{T + ph + 16}" text-anchor="middle">{fmt_rate(x)}</text>')
        x += step
    y = ylo
    while y <= yhi * 1.0001:
        o.append(f'<line x1="{L}" y1="{Y(y):.1f}" x2="{L + pw}" y2="{Y(y):.1f}" stroke="#e5e5e5"/>')
        lab = f"{y:g}"
        o.append(f'<text x="{L - 6}" y="{Y(y) + 4:.1f}" text-anchor="end">{lab}</text>')
        y *= 10
    o.append(f'<rect x="{L}" y="{T}" width="{pw}" height="{ph}" fill="none" stroke="#888"/>')
    o.append(f'<text x="{L + pw / 2}" y="{H - 10}" text-anchor="middle">{_esc(xlabel)}</text>')
    o.append(f'<text transform="translate(16,{T + ph / 2}) rotate(-90)" text-anchor="middle">{_esc(ylabel)}</text>')
    if target:
        o.append(f'<line x1="{L}" y1="{Y(target):.1f}" x2="{L + pw}" y2="{Y(target):.1f}" stroke="#999" '
                 'stroke-dasharray="5,4"/>')
        o.append(f'<text x="{L + pw - 4}" y="{Y(target) - 4:.1f}" text-anchor="end" fill="#777">p99 target '
                 f'{target:g} ms</text>')
    for i, (name, color, pts) in enumerate(series):
        pts = sorted(pts)
        if len(pts) > 1:
            o.append('<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>' % (
                color, " ".join(f"{X(px):.1f},{Y(py):.1f}" for px, py, _ in pts)))
        for px, py, hollow in pts:
            fill = "white" if hollow else color
            o.append(f'<circle cx="{X(px):.1f}" cy="{Y(py):.1f}" r="4" fill="{fill}" stroke="{color}" '
                     'stroke-width="2"/>')
        ly = T + 10 + 20 * i
        o.append(f'<line x1="{L + pw + 14}" y1="{ly}" x2="{L + pw + 36}" y2="{ly}" stroke="{color}" '
                 'stroke-width="2"/>')
        o.append(f'<text x="{L + pw + 42}" y="{ly + 4}">{_esc(name)}</text>')
    ly = T + 10 + 20 * len(series) + 10
    o.append(f'<circle cx="{L + pw + 25}" cy="{ly}" r="4" fill="white" stroke="#555" stroke-width="2"/>')
    o.append(f'<text x="{L + pw + 42}" y="{ly + 4}">client-bound or</text>')
    o.append(f'<text x="{L + pw + 42}" y="{ly + 18}">&lt; 99.9% delivered</text>')
    o.append("</svg>")
    return "\n".join(o) + "\n"


def svg_bars(title, bars, unit):
    W, H, L, T, B = 560, 60 + 34 * len(bars), 150, 40, 20
    pw = W - L - 90
    vmax = max([v for _, v, _ in bars] + [1])
    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
         'font-family="sans-serif" font-size="12">', f'<rect width="{W}" height="{H}" fill="white"/>',
         f'<text x="10" y="22" font-size="15" font-weight="bold">{_esc(title)}</text>']
    for i, (name, v, color) in enumerate(bars):
        y = T + 10 + 34 * i
        o.append(f'<text x="{L - 8}" y="{y + 16}" text-anchor="end">{_esc(name)}</text>')
        o.append(f'<rect x="{L}" y="{y}" width="{pw * v / vmax:.1f}" height="22" fill="{color}"/>')
        o.append(f'<text x="{L + pw * v / vmax + 6:.1f}" y="{y + 16}">{v:.1f} {unit}</text>')
    o.append("</svg>")
    return "\n".join(o) + "\n"


# ------------------------------------------------------------------------------------------------------


def write_all(data, base, outdir):
    stem = os.path.basename(base)
    md = []
    mach = data.get("machine", {})
    nruns = sum(len(s.get("runs", [])) for w in data["workloads"] for s in w["steps"])
    noisy = sum(1 for w in data["workloads"] for s in w["steps"] for r in s.get("runs", []) if r.get("noisy"))
    cb = sum(1 for w in data["workloads"] for s in w["steps"] for r in s.get("runs", []) if r.get("client_bound"))
    md.append(f"# Benchmark results {data['date']} ({data['mode']})\n")
    md.append(f"- commit `{data.get('git')}`; {mach.get('cpu', '?')}, {mach.get('cpus')} cores, "
              f"{mach.get('mem_gb', '?')} GB, Linux {mach.get('kernel', '?')}, Node {mach.get('node', '?')}")
    md.append(f"- server pinned to core {data['server_cpu']}, generator (`bench/loadgen`) to core "
              f"{data['generator_cpu']}; each step {data['reps']} runs, the median of each figure is shown; "
              f"warmup {data['warmup_s']} s, window {data['duration_s']} s; 64-byte bodies")
    md.append(f"- {nruns} runs in {data.get('elapsed_s', 0) / 60:.1f} min; **{noisy} runs noisy** (other processes "
              f"used > 15% CPU during the window), {cb} runs client-bound (generator > 85% CPU)")
    if data.get("server_set"):
        md.append("- parleyd configured with " + ", ".join(f"`{kv}`" for kv in data["server_set"]))
    for mf in data.get("merged_from", []):
        md.append(f"- merged with the run of {mf['date']} (`{mf['git']}`, {mf['mode']}, {mf['elapsed_s'] / 60:.1f} min), "
                  "which replaced the workloads it ran")
    if data.get("skipped"):
        md.append(f"- skipped (time budget or setup): {'; '.join(data['skipped'])}")
    if data.get("interrupted"):
        md.append("- the run was interrupted: partial results")
    md.append("- Flags count the runs of a step that had them (e.g. `noisy 2/3`). Parley runs use ephemeral "
              "rooms (`rooms.*.history = off`, the peers store nothing either) unless the workload says "
              "persistence; rate limits and connection caps are off.\n")

    # summary
    summ = []
    for w in data["workloads"]:
        if w["kind"] != "ladder":
            continue
        for srv in w["servers"]:
            c = capacity(w["steps"], srv, w["p99_target_ms"])
            if any(s["server"] == srv for s in w["steps"]):
                summ.append((w["id"], srv, c, w["p99_target_ms"]))
    if summ:
        md.append("## Capacity summary\n")
        md.append("Highest measured deliveries/s with ≥ 99.9% delivered and p99 within the target (the ladder "
                  "is coarse: the true knee lies between this step and the next).\n")
        md.append("| workload | server | capacity (deliveries/s) | p99 target |")
        md.append("|---|---|---:|---:|")
        for wid, srv, c, t in summ:
            md.append(f"| {wid} | {LABELS.get(srv, srv)} | {fmt_rate(c) if c else 'below the lowest step'} | {t} ms |")
        md.append("")

    md += targets(data)
    for w in data["workloads"]:
        md.append(f"## {w['title']}\n")
        if not w["steps"]:
            md.append("(no results)\n")
            continue
        if w["kind"] == "idle":
            md.append("| server | connected | connect + hello + join (s) | conn/s | connect p99 (ms) | "
                      "server RSS per conn (KB) | server RSS (MB) | flags |")
            md.append("|---|---:|---:|---:|---:|---:|---:|---|")
            bars = []
            for s in w["steps"]:
                m = s["median"]
                md.append(f"| {LABELS.get(s['server'], s['server'])} | {m.get('connected', 0):.0f} | "
                          f"{m.get('connect_s', 0):.2f} | {fmt_rate(m.get('connect_rate'))} | "
                          f"{m.get('connect_p99_ms', 0):.0f} | {m.get('server_rss_per_conn_kb', 0):.2f} | "
                          f"{m.get('server_rss_kb', 0) / 1024:.0f} | {flags(m)} |")
                bars.append((LABELS.get(s["server"], s["server"]), m.get("server_rss_per_conn_kb", 0),
                             COLORS.get(s["server"], "#555")))
            with open(f"{base}-{w['id']}.svg", "w") as f:
                f.write(svg_bars("M: server RSS per idle joined connection", bars, "KB"))
            md.append(f"\n![{w['id']}]({stem}-{w['id']}.svg)\n")
        elif w["kind"] == "ladder":
            parley_only = all(s.startswith("parley") for s in w["servers"])
            hdr = ("| server | sent msg/s | offered deliveries/s | delivered/s | delivered | p50 ms | p99 ms | "
                   "p99.9 ms | max ms |" + (" ack p99 ms |" if parley_only else "") + " server CPU | gen CPU | flags |")
            md.append(hdr)
            md.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|" + ("---:|" if parley_only else "") +
                      "---:|---:|---|")
            series = {}
            for s in w["steps"]:
                m = s["median"]
                ack = f" {fmt_ms(m.get('ack_p99_us'))} |" if parley_only else ""
                md.append(f"| {LABELS.get(s['server'], s['server'])} | {fmt_rate(s['rate'])} | {fmt_rate(s['offered'])} | "
                          f"{fmt_rate(m.get('deliveries_per_s'))} | {100 * m.get('delivery_ratio', 0):.2f}% | "
                          f"{fmt_ms(m.get('p50_us'))} | {fmt_ms(m.get('p99_us'))} | {fmt_ms(m.get('p999_us'))} | "
                          f"{fmt_ms(m.get('max_us'))} |{ack} {m.get('server_cpu_pct', 0):.0f}% | "
                          f"{m.get('gen_cpu_pct', 0):.0f}% | {flags(m)} |")
                if "deliveries_per_s" in m:
                    hollow = bool(m.get("client_bound")) or m.get("delivery_ratio", 0) < 0.999
                    series.setdefault(s["server"], []).append(
                        (m["deliveries_per_s"], m.get("p99_us", 0) / 1000, hollow))
            ser = [(LABELS.get(k, k), COLORS.get(k, "#555"), v) for k, v in series.items()]
            with open(f"{base}-{w['id']}.svg", "w") as f:
                f.write(svg_lines(w["title"], ser, "delivered messages/s (median of runs)",
                                  "p99 end-to-end latency, ms (log)", w.get("p99_target_ms")))
            md.append(f"\n![{w['id']}]({stem}-{w['id']}.svg)\n")
        elif w["kind"] == "floor":
            md.append("What one core's kernel lets any server do: a writer pinned to the server's core sends 64-byte "
                      "frames round-robin to N connections held by a reader on the generator's core, as fast as it "
                      "can. No WebSocket, no parsing, no fan-out logic: the cost of `send()` alone. The last column "
                      "is the kernel's price of the reader's N serial `connect()`s and the writer's `accept()`s "
                      "(on loopback the connecting side also runs the listener's half of the handshake).\n")
            step_table(md, ["connections", "frames per write", "writes/s", "frames/s", "system µs per write",
                            "writer CPU", "reader CPU",
                            "connect: CPU µs per connection, connecting / accepting side"], w["steps"],
                       "writes_per_s", lambda s: [s["conns"], s["per_write"]],
                       lambda m: [fmt_rate(m["writes_per_s"]), fmt_rate(m["frames_per_s"]),
                                  f"{m['sys_us_per_write']:.1f}", f"{m['writer_cpu_pct']:.0f}%",
                                  f"{m['reader_cpu_pct']:.0f}%",
                                  f"{m['connect_cpu_us_per_conn']:.0f} / {m['accept_cpu_us_per_conn']:.0f}"
                                  if "connect_cpu_us_per_conn" in m else ""], text_first=False)
        elif w["kind"] == "durable":
            if "duration_s" in w:
                md.append(f"Window {w['duration_s']} s, {w['reps']} runs a step (the median shown).\n")
            md.append("| backend | offered sends/s | acked sends/s | ack p50 ms | ack p90 ms | ack p99 ms | "
                      "ack p99.9 ms | ack max ms | delivered | server CPU | gen CPU | flags |")
            md.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
            series = {}
            for s in w["steps"]:
                m = s["median"]
                md.append(f"| {s['backend']} | {fmt_rate(s['rate'])} | {fmt_rate(m.get('acked_per_s'))} | "
                          f"{fmt_ms(m.get('ack_p50_us'))} | {fmt_ms(m.get('ack_p90_us'))} | "
                          f"{fmt_ms(m.get('ack_p99_us'))} | {fmt_ms(m.get('ack_p999_us'))} | "
                          f"{fmt_ms(m.get('ack_max_us'))} | {100 * m.get('delivery_ratio', 0):.2f}% | "
                          f"{m.get('server_cpu_pct', 0):.0f}% | {m.get('gen_cpu_pct', 0):.0f}% | {flags(m)} |")
                if "acked_per_s" in m:
                    series.setdefault(s["backend"], []).append(
                        (m["acked_per_s"], m.get("ack_p99_us", 0) / 1000, bool(m.get("client_bound"))))
            ser = [(k, COLORS.get(k, "#555"), v) for k, v in series.items()]
            with open(f"{base}-{w['id']}.svg", "w") as f:
                f.write(svg_lines("D: durable sends, send -> ack", ser, "acked sends/s (median of runs)",
                                  "p99 send -> ack latency, ms (log)", 10))
            md.append(f"\n![{w['id']}]({stem}-{w['id']}.svg)\n")
        elif w["kind"] == "store":
            step_table(md, ["store", "batch", "CPU µs per message", "messages per CPU second",
                            "write calls per message", "WAL frames per message", "merge slices: avg ms", "max ms"],
                       w["steps"], "cpu_us_per_msg", lambda s: [s["label"], s["batch"]],
                       lambda m: [f"{m['cpu_us_per_msg']:.2f}", fmt_rate(m["msgs_per_cpu_s"]),
                                  f"{m['write_calls_per_msg']:.2f}", f"{m['wal_frames_per_msg']:.2f}",
                                  f"{m['slice_avg_ms']:.1f}", f"{m['slice_max_ms']:.1f}"])
    with open(base + ".md", "w") as f:
        f.write("\n".join(md) + "\n")


def targets(data):
    """the issue's targets, checked against this run's medians"""
    W = {w["id"]: w for w in data["workloads"]}
    rows = []

    def cap(wid, srv):
        w = W.get(wid)
        return capacity(w["steps"], srv, w["p99_target_ms"]) if w else None

    def step(wid, srv, rate, key="server"):
        w = W.get(wid)
        for s in (w or {}).get("steps", []):
            if s.get(key) == srv and s.get("rate") == rate:
                return s["median"]
        return None

    def yn(ok):
        return "**met**" if ok else "**not met**"

    for wid in ("A", "B"):
        if wid in W:
            p, sio = cap(wid, "parley-json"), cap(wid, "socketio")
            pm = cap(wid, "parley-msgpack")
            best = max([x for x in (p, pm) if x] or [0])
            ratio = f"{best / sio:.1f}× Socket.IO" if sio and best else "vs Socket.IO: n/a"
            rows.append((f"{wid}: ≥ 400k deliveries/s, ≥ 99.9%, p99 ≤ 50 ms, ≥ 8× Socket.IO",
                         f"JSON {fmt_rate(p)}, msgpack {fmt_rate(pm)}; Socket.IO {fmt_rate(sio)}, ws "
                         f"{fmt_rate(cap(wid, 'ws'))} ({ratio})",
                         yn(best >= 400000 and sio and best >= 8 * sio)))
    for s in (W.get("F") or {}).get("steps", []):
        m = s["median"]
        if s["per_write"] == 1 and s["conns"] in (10000, 5000) and m.get("writes_per_s"):
            wid, per_conn, p99 = ("B", 40, 50) if s["conns"] == 10000 else ("C", 80, 100)
            k = 400000 / m["writes_per_s"]
            rows.append((f"{wid} needs (kernel floor F, {s['conns'] // 1000}k connections)",
                         f"one core writes at most {fmt_rate(m['writes_per_s'])} single frames/s; 400k deliveries/s "
                         f"need ≥ {k:.1f} frames per write with the core doing nothing else: at {per_conn} messages/s "
                         f"per connection, a flush every ≥ {1000 * k / per_conn:.0f} ms (p99 target {p99} ms)",
                         "(bound)"))
    if "C" in W:
        p = cap("C", "parley-json")
        rows.append(("C: ≥ 400k deliveries/s, p99 ≤ 100 ms", f"{fmt_rate(p)}", yn((p or 0) >= 400000)))
    m = step("S", "parley-json", 2000)
    if m:
        rows.append(("p99 ≤ 2 ms at 20k deliveries/s in A with SQLite persistence",
                     f"p99 {fmt_ms(m.get('p99_us'))} ms", yn(m.get("p99_us", 1e9) <= 2000)))
    if "M" in W:
        for s in W["M"]["steps"]:
            if s["server"] == "parley-json":
                mm = s["median"]
                rows.append(("≤ 4 KB RSS per idle joined connection", f"{mm.get('server_rss_per_conn_kb', 0):.2f} KB",
                             yn(mm.get("server_rss_per_conn_kb", 99) <= 4)))
                rows.append(("10k connect + hello + join ≤ 1 s", f"{mm.get('connect_s', 0):.2f} s",
                             yn(mm.get("connect_s", 99) <= 1)))
        for s in (W.get("F") or {}).get("steps", []):
            m = s["median"]
            if s["conns"] == 10000 and s["per_write"] == 1 and m.get("connect_cpu_us_per_conn"):
                rows.append(("M needs (kernel floor F, 10k connections)",
                             f"a loopback connect costs the connecting side {m['connect_cpu_us_per_conn']:.0f} µs of "
                             f"CPU, i.e. {m['connect_cpu_us_per_conn'] * 10000 / 1e6:.2f} s of the generator's core "
                             "for 10k before it sends anything (then 3 requests and 3 replies per connection)",
                             "(bound)"))
    base = cap("A", "parley-json")
    for wid, what in (("S", "SQLite persistence"), ("H", "word-filter hook"), ("T", "typing storm"),
                      ("K", "join/leave churn")):
        if wid in W and base:
            c = cap(wid, "parley-json") or 0
            rows.append((f"{what} costs ≤ 10% of capacity (A)" if wid in "SH" else f"{what}: capacity vs A",
                         f"{fmt_rate(c)} vs {fmt_rate(base)} ({100 * (1 - c / base):.0f}% less)",
                         yn(c >= 0.9 * base) if wid in "SH" else "(no target)"))
    def sustained(m, rate):
        """durable sends kept up with: a backlog that grows over the short window shows as a p99 of hundreds
        of ms (50k/s on both cores: p99 334 ms in 1.5 s, and 7k acked/s of 50k in a 10 s run), so the bar is
        ≥ 95% acked with an ack p99 ≤ 100 ms"""
        return m.get("acked_per_s", 0) >= 0.95 * rate and m.get("ack_p99_us", 1e18) <= 100000

    if "D" in W:
        best = 0
        for s in W["D"]["steps"]:
            mm = s["median"]
            if s.get("backend") == "sqlite" and sustained(mm, s["rate"]):
                best = max(best, mm.get("acked_per_s", 0))
        rows.append(("issue 3: ≥ 50k durable sends/s with SQLite (sustained: ≥ 95% acked, ack p99 ≤ 100 ms)",
                     f"{fmt_rate(best)}", yn(best >= 50000)))
        m = step("D", "sqlite", 25000, key="backend")
        if m:
            rows.append(("issue 3: ack p99 ≤ 10 ms at 25k durable sends/s (SQLite)",
                         f"p99 {fmt_ms(m.get('ack_p99_us'))} ms", yn(m.get("ack_p99_us", 1e9) <= 10000)))
        both = "sqlite, server on both cores"
        for rate in (25000, 50000):
            m = step("D", both, rate, key="backend")
            if m and "acked_per_s" in m:
                rows.append((f"issue 3, server on both cores: {fmt_rate(rate)} durable sends/s (SQLite)",
                             f"{fmt_rate(m['acked_per_s'])} acked, p99 {fmt_ms(m.get('ack_p99_us'))} ms, server "
                             f"{m.get('server_cpu_pct', 0):.0f}% + generator {m.get('gen_cpu_pct', 0):.0f}% of one core",
                             yn(sustained(m, rate) and (rate != 25000 or m.get("ack_p99_us", 1e9) <= 10000))))
        m = step("D", "no store (history off)", 50000, key="backend")
        if m and "acked_per_s" in m:
            rows.append(("issue 3 bound: 50k sends/s with no store (the loop's and the generator's share)",
                         f"{fmt_rate(m['acked_per_s'])} acked: server {m.get('server_cpu_pct', 0):.0f}% + generator "
                         f"{m.get('gen_cpu_pct', 0):.0f}% of one core", "(bound)"))
    if "W" in W:
        parts = []
        for s in W["W"]["steps"]:
            m = s["median"]
            if "cpu_us_per_msg" in m:
                parts.append(f"{s['label']}, batches of {s['batch']}: {m['cpu_us_per_msg']:.1f} µs = "
                             f"{m['cpu_us_per_msg'] * 5:.0f}% of a core")
        if parts:
            rows.append(("issue 3 bound: the SQLite store writer alone at 50k messages/s (W)", "; ".join(parts),
                         "(bound)"))
    if not rows:
        return []
    out = ["## Targets (issue 9, issue 3) in this run\n", "| target | measured | |", "|---|---|---|"]
    out += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return out + [""]

#!/usr/bin/env python3
"""Turns the raw material of scripts/bench.sh into bench/results/results.md and cycles.png.

Input (--raw DIR): machine.tsv, runs.tsv (one line per pgbench run: N, clients, impl, log
prefix, load average, seconds, wall seconds, round, WAL LSN before and after), load.tsv,
monitoring.tsv, waldump.tsv (+ the pg_waldump --stats=record outputs it names), snapshot.tsv
(slow case (i): impl, N, clients, log prefix, epoch the old snapshot was taken, seconds held),
logs/<prefix>.<pid>[.<thread>] (pgbench --log: client, transaction number, latency us,
script, end epoch s, end us) and explain_*.txt.

Each pgbench transaction is one step of a cycle; a client's transaction t is step (t-1) mod 3
(0 assign, 1 operator reply, 2 user reply). A run is measured over the window from its first
transaction's start plus --warmup seconds to its last transaction's end: cycles/s = user
replies (step 2, the end of a cycle) completed in the window / window length; assign p50/p99
= nearest-rank percentiles of the step-0 latencies completed in the window. WAL bytes per
cycle = the run's LSN difference / every cycle the run completed (warm-up included).
"""
import argparse
import glob
import math
import os
import re
import sys

IMPL_NAMES = {
    "a": "(a) chat_assign",
    "a0": "(a0) chat_assign, events off",
    "d": "(d) PL/pgSQL peer",
    "b": "(b) earlier PL/pgSQL design",
    "e": "(e) write floor",
    "c": "(c) floor",
}
IMPL_ORDER = ["a", "a0", "d", "b", "e", "c"]
TARGET_CLIENTS = 16


def percentile(sorted_values, q):
    if not sorted_values:
        return float("nan")
    rank = max(1, math.ceil(q / 100.0 * len(sorted_values)))
    return sorted_values[rank - 1]


def read_tsv(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [line.rstrip("\n").split("\t") for line in f if line.strip()]


def lsn_bytes(lsn):
    hi, lo = lsn.split("/")
    return (int(hi, 16) << 32) + int(lo, 16)


def read_events(prefix):
    files = [p for p in glob.glob(prefix + ".*") if re.search(r"\.\d+(\.\d+)?$", p)]
    events = []  # (end time s, latency us, step)
    for path in files:
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) < 6:
                    continue
                t = int(parts[1])
                lat = float(parts[2])
                end = int(parts[4]) + int(parts[5]) / 1e6
                events.append((end, lat, (t - 1) % 3))
    return events


def analyse_run(prefix, warmup, seconds):
    events = read_events(prefix)
    if not events:
        return None
    start = min(e - lat / 1e6 for e, lat, _ in events)
    # pgbench stops starting transactions after -T seconds but lets those in flight finish:
    # a slow step still running then ends after the nominal end, and no cycle is completed
    # after it, so cycles are counted up to the nominal end only.
    w_end = start + seconds
    w_start = start + warmup if seconds > 2 * warmup else start
    window = max(w_end - w_start, 1e-9)
    cycles = sum(1 for ev in events if ev[2] == 2 and w_start <= ev[0] <= w_end)
    # Every assign that finished after the warm-up counts, the late ones included.
    assigns = [ev[1] / 1000.0 for ev in events if ev[2] == 0 and ev[0] >= w_start]
    all_cycles = sum(1 for ev in events if ev[2] == 2)
    return {"cycles": cycles, "seconds": window, "assigns": assigns, "all_cycles": all_cycles}


def pool(runs):
    """One (N, clients, implementation): its rounds pooled (cycles over total time,
    latencies over every assign of every round)."""
    cycles = sum(r["cycles"] for r in runs)
    seconds = sum(r["seconds"] for r in runs)
    assigns = sorted(a for r in runs for a in r["assigns"])
    wal = sum(r.get("wal", 0) for r in runs)
    wal_cycles = sum(r.get("all_cycles", 0) for r in runs)
    return {
        "cycles": cycles,
        "seconds": seconds,
        "cps": cycles / seconds if seconds > 0 else 0.0,
        "rounds": [r["cycles"] / r["seconds"] if r["seconds"] > 0 else 0.0 for r in runs],
        "assign_n": len(assigns),
        "p50": percentile(assigns, 50),
        "p99": percentile(assigns, 99),
        "p_max": assigns[-1] if assigns else float("nan"),
        "load1": " / ".join(r["load1"] for r in runs),
        "wal": wal,
        "wal_cycles": wal_cycles,
        "wal_per_cycle": wal / wal_cycles if wal_cycles else float("nan"),
    }


def fmt_num(x, digits=0):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if digits == 0:
        return f"{x:,.0f}"
    return f"{x:,.{digits}f}"


def fmt_ratio(x):
    if x is None or math.isnan(x) or math.isinf(x):
        return "n/a"
    if x >= 100:
        return f"{x:,.0f}×"
    if x >= 10:
        return f"{x:.1f}×"
    return f"{x:.2f}×"


def fmt_n(n):
    n = int(n)
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1000 and n % 1000 == 0:
        return f"{n // 1000}k"
    return str(n)


WALDUMP_LINE = re.compile(r"^(\S+)\s+(\d+)\s+\(\s*[\d.]+\)\s+(\d+)\s+\(\s*[\d.]+\)\s+(\d+)"
                          r"\s+\(\s*[\d.]+\)\s+(\d+)\s+\(\s*[\d.]+\)")


def wal_records(raw, runs):
    """Per-record-type WAL of the runs pg_waldump was run on, per cycle of that run:
    {(impl, n, c): (cycles, [(type, records, record_bytes, fpi_bytes, combined_bytes)])}.
    Kept in wal_records.tsv for re-rendering without the logs."""
    path = os.path.join(raw, "wal_records.tsv")
    out = {}
    if runs:
        for impl, n, c, rnd, name in read_tsv(os.path.join(raw, "waldump.tsv")):
            n, c, rnd = int(n), int(c), int(rnd)
            rs = [r for r in runs.get((n, c, impl), []) if r.get("round") == rnd]
            cycles = rs[0]["all_cycles"] if rs else 0
            rows = []
            try:
                with open(os.path.join(raw, name)) as f:
                    for line in f:
                        m = WALDUMP_LINE.match(line)
                        if m and m.group(1) != "Total":
                            rows.append((m.group(1),) + tuple(int(m.group(i)) for i in range(2, 6)))
            except OSError:
                continue
            out[(impl, n, c)] = (cycles, rows)
        with open(path, "w") as f:
            f.write("impl\tn\tclients\tcycles\ttype\trecords\trecord_bytes\tfpi_bytes\tcombined_bytes\n")
            for (impl, n, c), (cycles, rows) in sorted(out.items()):
                for row in rows:
                    f.write(f"{impl}\t{n}\t{c}\t{cycles}\t" + "\t".join(str(x) for x in row) + "\n")
    else:
        for row in read_tsv(path)[1:]:
            key = (row[0], int(row[1]), int(row[2]))
            out.setdefault(key, (int(row[3]), []))[1].append((row[4],) + tuple(int(x) for x in row[5:9]))
    return out


def snapshot_windows(seconds):
    wins = []
    for a, b in ((0, 5), (15, 20), (seconds - 5, seconds)):
        if a >= 0 and b <= seconds and (a, b) not in wins:
            wins.append((a, b))
    return wins


def snapshot_case(raw, warmup, have_logs):
    """Slow case (i): assign p50 in windows after an old snapshot was taken, against the
    window before it. {(impl, n, c): [(label, assigns, p50, ratio)]}, kept in
    snapshot_summary.tsv for re-rendering without the logs."""
    path = os.path.join(raw, "snapshot_summary.tsv")
    out = {}
    if have_logs:
        for impl, n, c, prefix, t_open, secs in read_tsv(os.path.join(raw, "snapshot.tsv")):
            events = read_events(prefix)
            if not events or not t_open:
                continue
            t_open, secs = float(t_open), int(secs)
            start = min(e - lat / 1e6 for e, lat, _ in events)
            assigns = [(e, lat / 1000.0) for e, lat, step in events if step == 0]
            base = sorted(lat for e, lat in assigns if start + warmup <= e < t_open)
            p_base = percentile(base, 50)
            rows = [(f"before the snapshot [{warmup:g}-{t_open - start:.0f} s of the run]", len(base), p_base, 1.0)]
            for a, b in snapshot_windows(secs):
                w = sorted(lat for e, lat in assigns if t_open + a <= e < t_open + b)
                p = percentile(w, 50)
                rows.append((f"snapshot open [{a}-{b} s]", len(w), p, p / p_base if p_base > 0 else float("nan")))
            out[(impl, int(n), int(c))] = rows
        with open(path, "w") as f:
            f.write("impl\tn\tclients\twindow\tassigns\tassign_p50_ms\tratio\n")
            for (impl, n, c), rows in sorted(out.items()):
                for label, cnt, p, x in rows:
                    f.write(f"{impl}\t{n}\t{c}\t{label}\t{cnt}\t{p}\t{x}\n")
    else:
        for row in read_tsv(path)[1:]:
            out.setdefault((row[0], int(row[1]), int(row[2])), []).append(
                (row[3], int(row[4]), float(row[5]), float(row[6])))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--raw", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--warmup", type=float, default=1.0)
    args = ap.parse_args()

    machine = {}
    checks = []
    notes = []
    for row in read_tsv(os.path.join(args.raw, "machine.tsv")):
        if row[0] == "check":
            checks.append(row[1])
        elif row[0] == "note":
            notes.append(row[1])
        else:
            machine[row[0]] = row[1] if len(row) > 1 else ""

    runs = {}  # (n, c, impl) -> [one dict per round]
    pooled_path = os.path.join(args.raw, "pooled.tsv")
    have_logs = bool(glob.glob(os.path.join(args.raw, "logs", "*_r*.[0-9]*")))
    if not have_logs and os.path.exists(pooled_path):
        # The per-transaction logs were deleted after the run: re-render from the figures
        # the first rendering kept.
        results = {}
        for row in read_tsv(pooled_path)[1:]:
            results[(int(row[0]), int(row[1]), row[2])] = {
                "cycles": int(row[3]), "seconds": float(row[4]), "cps": float(row[5]),
                "rounds": [float(x) for x in row[6].split(",")], "assign_n": int(row[7]),
                "p50": float(row[8]), "p99": float(row[9]), "p_max": float(row[10]),
                "load1": row[11], "wal": int(row[12]) if len(row) > 12 else 0,
                "wal_cycles": int(row[13]) if len(row) > 13 else 0}
            r = results[(int(row[0]), int(row[1]), row[2])]
            r["wal_per_cycle"] = r["wal"] / r["wal_cycles"] if r["wal_cycles"] else float("nan")
    else:
        results = None
    for row in ([] if results is not None else read_tsv(os.path.join(args.raw, "runs.tsv"))):
        n, c, impl, prefix, load1 = int(row[0]), int(row[1]), row[2], row[3], row[4]
        seconds = float(row[5])
        r = analyse_run(prefix, args.warmup, seconds)
        if r is None:
            r = {"cycles": 0, "seconds": seconds, "assigns": [], "all_cycles": 0}
        r["load1"] = load1
        r["wal"] = lsn_bytes(row[9]) - lsn_bytes(row[8]) if len(row) > 9 else 0
        r["round"] = int(row[7]) if len(row) > 7 else 0
        runs.setdefault((n, c, impl), []).append(r)
    if results is None:
        results = {key: pool(rs) for key, rs in runs.items()}
        with open(pooled_path, "w") as f:
            f.write("n\tclients\timpl\tcycles\tseconds\tcycles_per_s\trounds\tassigns"
                    "\tassign_p50_ms\tassign_p99_ms\tassign_max_ms\tload1\twal_bytes\twal_cycles\n")
            for (n, c, impl), r in sorted(results.items()):
                f.write(f"{n}\t{c}\t{impl}\t{r['cycles']}\t{r['seconds']}\t{r['cps']}\t"
                        f"{','.join(str(x) for x in r['rounds'])}\t{r['assign_n']}\t{r['p50']}\t"
                        f"{r['p99']}\t{r['p_max']}\t{r['load1']}\t{r['wal']}\t{r['wal_cycles']}\n")
    # Per-run figures, kept when the per-transaction logs are deleted (they are large).
    with open(os.path.join(args.raw, "runs_summary.tsv") if runs else os.devnull, "w") as f:
        f.write("n\tclients\timpl\tround\tcycles\tseconds\tcycles_per_s\tassigns"
                "\tassign_p50_ms\tassign_p99_ms\tload1\twal_bytes\tall_cycles\twal_bytes_per_cycle\n")
        for (n, c, impl), rs in sorted(runs.items()):
            for i, r in enumerate(rs, 1):
                a = sorted(r["assigns"])
                f.write(f"{n}\t{c}\t{impl}\t{i}\t{r['cycles']}\t{r['seconds']:.2f}\t"
                        f"{r['cycles'] / r['seconds'] if r['seconds'] > 0 else 0:.1f}\t{len(a)}\t"
                        f"{percentile(a, 50):.3f}\t{percentile(a, 99):.3f}\t{r['load1']}\t{r['wal']}\t"
                        f"{r['all_cycles']}\t{r['wal'] / r['all_cycles'] if r['all_cycles'] else float('nan'):.0f}\n")

    sizes = sorted({k[0] for k in results})
    clients = sorted({k[1] for k in results})
    impls = [i for i in IMPL_ORDER if any(k[2] == i for k in results)]

    def get(n, c, impl):
        return results.get((n, c, impl))

    def ratio(n, c, impl, base):
        r, b = get(n, c, impl), get(n, c, base)
        if not r or not b or b["cps"] <= 0:
            return float("nan")
        return r["cps"] / b["cps"]

    md = []
    md.append("# chat_assign benchmark")
    md.append("")
    md.append(f"Run {machine.get('date', '?')}, `bash scripts/bench.sh` ({machine.get('run', '')}), "
              f"wall time {machine.get('wall', '?')}.")
    md.append("")
    if machine.get("warning"):
        md.append(f"**WARNING: {machine['warning']}**")
        md.append("")
    for note in notes:
        md.append(f"**Note: {note}**")
        md.append("")
    md.append("## Machine and server")
    md.append("")
    md.append(f"- CPU: {machine.get('cpu', '?')}; memory {machine.get('memory', '?')}; {machine.get('kernel', '?')}")
    md.append(f"- load average (1, 5, 15 min) at start: {machine.get('load_start', '?')}; at end: "
              f"{machine.get('load_end', '?')} (other processes share these cores: figures are noisy "
              f"when it is above ~1)")
    md.append(f"- {machine.get('server', '?')}, {machine.get('pgbench', '?')}; {machine.get('extension', '?')}; "
              f"work tree {machine.get('tree', '?')}")
    md.append(f"- settings: {machine.get('settings', '?')}")
    md.append("- a throw-away cluster started by the script; every implementation runs in it "
              "under the same settings, one database each (" + ", ".join(f"bench_{i}" for i in impls) + ").")
    if "fsync=off" in machine.get("settings", ""):
        md.append("- **fsync is off** (commits do not wait for the disk): the run measures CPU "
                  "and locking cost, not this VM's flush latency. The default (`BENCH_FSYNC=on`) "
                  "is durable.")
    else:
        md.append("- durable: fsync, synchronous_commit and full_page_writes on (each of a cycle's "
                  "three commits waits for the WAL flush). Each run starts right after a CHECKPOINT, "
                  "so its WAL includes the full-page images of the first change to each page.")
    md.append("- pgbench runs on the same 2 cores as the server (`-j 2` threads above one client), "
              "so at 16 and 64 clients the clients compete with the server for CPU.")
    md.append("")
    md.append("## What is measured")
    md.append("")
    md.append("- Data: N chats waiting (`waiting_assignment`), K operators, one message per chat, "
              "identical ids and timestamps in every database, loaded with "
              "`INSERT ... SELECT generate_series`, then `VACUUM ANALYZE`.")
    md.append("- Cycle: pgbench client *i* is operator *i*: (1) `assign_chat_to_operator`, (2) "
              "`operator_send_message` on that chat, (3) `real_user_send_message` (the user answers, "
              "the chat goes back to the queue, so the queue stays at N). Three transactions, "
              "prepared statements (`-M prepared`). (e) writes the same rows into chat_assign's "
              "tables with three plain SQL statements (bench/write_floor: no function, no lock or "
              "validation statement, no capacity check), the ceiling of any implementation that "
              "writes them through those indexes. (c) does three single-row `UPDATE ... WHERE "
              "pk =` commits instead, each client on its own rows.")
    md.append("- One pgbench transaction = one step (a per-client step variable walks the cycle), so "
              "pgbench's per-transaction log holds every step's latency: **assign p50/p99** are "
              "taken over every assign of the same run whose cycles/s is reported (client-side "
              "latency: includes the round trip and, at 16/64 clients on 2 cores, waiting for CPU).")
    md.append(f"- **cycles/s** = cycles completed (user replies) per second between {args.warmup:g} s "
              f"after a run's start and its nominal end, pooled over the rounds (each round runs "
              f"every implementation one after the other, in alternating order; *each round* shows "
              f"them apart, as a measure of the noise). Every (N, clients) group starts from a fresh "
              f"load of every database, every run from a reset, vacuumed queue and a checkpoint. "
              f"*load avg*: the machine's 1-minute load average as each round began.")
    md.append("- **WAL B/cycle**: `pg_current_wal_lsn()` after the pgbench run minus before, divided "
              "by every cycle the run completed (pooled over the rounds); it includes whatever "
              "autovacuum wrote during the run.")
    md.append("- vs (d), vs (c): this row's cycles/s divided by the PL/pgSQL peer's (d) / the "
              "floor's (c) at the same N and clients; for (a) these are (a)/(d) (target >= 1.5×) "
              "and (a)/(c).")
    md.append("")
    md.append("## Cycles")
    md.append("")
    md.append("| waiting N | clients | implementation | cycles/s | each round | cycles | WAL B/cycle "
              "| assign p50 ms | assign p99 ms | vs (d) | vs (c) | load avg |")
    md.append("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in sizes:
        for c in clients:
            for impl in impls:
                r = get(n, c, impl)
                if not r:
                    continue
                md.append(
                    f"| {fmt_n(n)} | {c} | {IMPL_NAMES[impl]} | {fmt_num(r['cps'])} "
                    f"| {' / '.join(fmt_num(x) if x >= 10 else fmt_num(x, 1) for x in r['rounds'])} "
                    f"| {r['cycles']:,} | {fmt_num(r.get('wal_per_cycle'))} "
                    f"| {fmt_num(r['p50'], 2)} | {fmt_num(r['p99'], 2)} "
                    f"| {fmt_ratio(ratio(n, c, impl, 'd'))} | {fmt_ratio(ratio(n, c, impl, 'c'))} "
                    f"| {r['load1']} |")
    few = [(n, c, i) for (n, c, i), r in results.items() if r["cycles"] < 50]
    if few:
        md.append("")
        md.append("Runs with fewer than 50 cycles in the window (their cycles/s is coarse): "
                  + ", ".join(f"N={fmt_n(n)} C={c} {i}" for n, c, i in sorted(few)) + ".")

    # ------------------------------------------------------------ targets
    lines = []

    def verdict(ok):
        return "PASS" if ok else "FALL SHORT"

    def na(what):
        lines.append(f"n/a         {what} (not part of this run)")

    C = TARGET_CLIENTS
    # (a) >= 1.5x the PL/pgSQL peer (d), every size and client count
    any_d = False
    for n in sizes:
        for c in clients:
            # (e), the cycle's rows alone, says how far 1.5x is from what writing them costs.
            for impl in ("a", "a0", "e"):
                if get(n, c, impl) and get(n, c, "d"):
                    any_d = True
                    x = ratio(n, c, impl, "d")
                    lines.append(f"{verdict(x >= 1.5) if impl == 'a' else '(info)':<11} {c} client(s), "
                                 f"{fmt_n(n)} waiting: ({impl}) = {fmt_ratio(x)} (d) (target >= 1.5×; "
                                 f"{fmt_num(get(n, c, impl)['cps'])} vs {fmt_num(get(n, c, 'd')['cps'])} cycles/s; "
                                 f"WAL {fmt_num(get(n, c, impl)['wal_per_cycle'])} vs "
                                 f"{fmt_num(get(n, c, 'd')['wal_per_cycle'])} B/cycle)")
    if not any_d:
        na("(a) >= 1.5× the PL/pgSQL peer (d)")
    # WAL per cycle, events included, at 16 clients; (e) writes the same rows and nothing else.
    any_wal = False
    for n in sizes:
        r = get(n, C, "a")
        if r:
            any_wal = True
            e = get(n, C, "e")
            lines.append(f"{verdict(r['wal_per_cycle'] <= 2500):<11} {C} clients, {fmt_n(n)} waiting: (a) WAL "
                         f"{fmt_num(r['wal_per_cycle'])} B/cycle (target <= 2,500, full-page images included"
                         + (f"; the rows alone (e): {fmt_num(e['wal_per_cycle'])}" if e else "") + ")")
    if not any_wal:
        na(f"{C} clients: (a) WAL <= 2,500 B/cycle")
    # 1.5x (b) at 1k
    if get(1000, C, "a") and get(1000, C, "b"):
        x = ratio(1000, C, "a", "b")
        lines.append(f"{verdict(x >= 1.5):<11} {C} clients, 1k waiting: (a) = {fmt_ratio(x)} (b) "
                     f"(target >= 1.5×; {fmt_num(get(1000, C, 'a')['cps'])} vs "
                     f"{fmt_num(get(1000, C, 'b')['cps'])} cycles/s)")
    else:
        na(f"{C} clients, 1k waiting: (a) >= 1.5× (b)")
    for n in (100_000, 1_000_000):
        if get(n, C, "a") and get(n, C, "b"):
            x = ratio(n, C, "a", "b")
            lines.append(f"{verdict(x >= 20):<11} {C} clients, {fmt_n(n)} waiting: (a) = {fmt_ratio(x)} (b) "
                         f"(target >= 20×; {fmt_num(get(n, C, 'a')['cps'])} vs "
                         f"{fmt_num(get(n, C, 'b')['cps'], 1)} cycles/s)")
        else:
            na(f"{C} clients, {fmt_n(n)} waiting: (a) >= 20× (b)")
    # flat
    lo, hi = (1000, 1_000_000)
    if get(lo, C, "a") and get(hi, C, "a") and get(lo, C, "a")["cps"] > 0:
        x = get(hi, C, "a")["cps"] / get(lo, C, "a")["cps"]
        lines.append(f"{verdict(x >= 0.8):<11} flat: (a) at 1M waiting = {x:.2f}× (a) at 1k, {C} clients "
                     f"(target >= 0.8; {fmt_num(get(hi, C, 'a')['cps'])} vs {fmt_num(get(lo, C, 'a')['cps'])} cycles/s)")
        for c in clients:
            if c != C and get(lo, c, "a") and get(hi, c, "a") and get(lo, c, "a")["cps"] > 0:
                y = get(hi, c, "a")["cps"] / get(lo, c, "a")["cps"]
                lines.append(f"{'(info)':<11} flat at {c} client(s): (a) at 1M = {y:.2f}× (a) at 1k")
    else:
        na("flat: (a) at 1M >= 0.8× (a) at 1k")
    # floor
    any_floor = False
    for n in sizes:
        if get(n, C, "a") and get(n, C, "c"):
            any_floor = True
            x = ratio(n, C, "a", "c")
            lines.append(f"{verdict(x >= 0.5):<11} {C} clients, {fmt_n(n)} waiting: (a) = {x * 100:.0f}% of the floor (c) "
                         f"(target >= 50%; {fmt_num(get(n, C, 'a')['cps'])} vs {fmt_num(get(n, C, 'c')['cps'])} cycles/s)")
    if not any_floor:
        na(f"{C} clients: (a) >= 50% of the floor (c)")
    any_p99 = False
    for n in sizes:
        r = get(n, C, "a")
        if r:
            any_p99 = True
            lines.append(f"{verdict(r['p99'] < 5.0):<11} {C} clients, {fmt_n(n)} waiting: assign p99 = "
                         f"{r['p99']:.2f} ms (target < 5 ms; p50 {r['p50']:.2f} ms, max {r['p_max']:.1f} ms, "
                         f"{r['assign_n']:,} assigns)")
    if not any_p99:
        na(f"{C} clients: assign p99 < 5 ms")

    snap = snapshot_case(args.raw, args.warmup, have_logs)
    for (impl, n, c), rows in sorted(snap.items()):
        for label, cnt, p, x in rows[1:]:
            lines.append(f"{verdict(x <= 1.5) if impl == 'a' else '(info)':<11} slow case (i) ({impl}), "
                         f"{fmt_n(n)} waiting, {c} clients, {label}: assign p50 {fmt_num(p, 2)} ms = "
                         f"{fmt_ratio(x)} the p50 before it ({fmt_num(rows[0][2], 2)} ms) (target <= 1.5×)")
    mon = read_tsv(os.path.join(args.raw, "monitoring.tsv"))
    mon_a = [m for m in mon if m[0] in ("a", "d")]
    for impl, phase, call, med, mn, mx, rows in mon_a:
        med = float(med)
        if call.startswith("assign_chat_to_operator"):
            tgt = "avoid_same_operator=on" in call
            lines.append(f"{(verdict(med < 1.0) if impl == 'a' and tgt else '(info)'):<11} slow case (ii) ({impl}), "
                         f"{phase}: {call} {med:,.2f} ms median of 5 (max {float(mx):,.2f} ms)"
                         + (" (target < 1 ms)" if tgt else ""))
        elif impl != "a":
            continue
        elif call.startswith("release_idle_assignments"):
            lines.append(f"{verdict(med < 1000):<11} {phase}: {call} released {int(rows):,} chats in "
                         f"{med:,.1f} ms (target < 1 s)")
        else:
            lines.append(f"{verdict(med < 50):<11} {phase}: {call} {med:,.1f} ms median of 5 "
                         f"(max {float(mx):,.1f} ms, {int(rows):,} rows) (target < 50 ms)")
    if not mon_a:
        na("monitoring at the largest N")
    for chk in checks:
        lines.append(f"{'(check)':<11} {chk}")

    md.append("")
    md.append("## Targets (figures, not assertions)")
    md.append("")
    md.append("```")
    md.extend(lines)
    md.append("```")

    if mon:
        md.append("")
        md.append("## Monitoring and other timed calls")
        md.append("")
        md.append("Server-side wall time of the call fetched to its last row (`bench.time_query`: one "
                  "warm-up, then median/min/max of 5; the idle release once). (b) runs the earlier PL/pgSQL design's "
                  "016 versions (bench/plpgsql/016_*.sql) on the same data, for reference.")
        md.append("")
        md.append("| implementation | when | call | median ms | min ms | max ms | rows |")
        md.append("|---|---|---|---:|---:|---:|---:|")
        for impl, phase, call, med, mn, mx, rows in mon:
            md.append(f"| {IMPL_NAMES.get(impl, impl)} | {phase} | `{call}` | {float(med):,.1f} "
                      f"| {float(mn):,.1f} | {float(mx):,.1f} | {int(rows):,} |")

    if snap:
        md.append("")
        md.append("## Slow case (i): an old snapshot held open")
        md.append("")
        md.append("16 clients run the cycle continuously at the largest N; 5 s after the start another "
                  "session runs `BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 1 FROM chats LIMIT 1;` "
                  "and keeps the transaction open (`BENCH_SNAPSHOT_SECONDS`), so vacuum can remove "
                  "nothing the cycles leave behind. Assign p50 per window (by completion time, "
                  "counted from the moment the snapshot was taken) against the window before it.")
        md.append("")
        md.append("| implementation | N | clients | window | assigns | assign p50 ms | vs before |")
        md.append("|---|---:|---:|---|---:|---:|---:|")
        for (impl, n, c), rows in sorted(snap.items(), key=lambda kv: IMPL_ORDER.index(kv[0][0])):
            for label, cnt, p, x in rows:
                md.append(f"| {IMPL_NAMES.get(impl, impl)} | {fmt_n(n)} | {c} | {label} | {cnt:,} "
                          f"| {fmt_num(p, 2)} | {fmt_ratio(x)} |")

    walrec = wal_records(args.raw, runs)
    if walrec:
        md.append("")
        md.append("## WAL by record type")
        md.append("")
        md.append("`pg_waldump --stats=record` over one run per implementation (raw/waldump_*.txt), "
                  "divided by the cycles that run completed; the ten record types with the most "
                  "bytes (record + full-page images).")
        for (impl, n, c), (cycles, rows) in sorted(walrec.items(), key=lambda kv: IMPL_ORDER.index(kv[0][0])):
            if not cycles:
                continue
            tot_rec = sum(r[1] for r in rows)
            tot_b = sum(r[4] for r in rows)
            md.append("")
            md.append(f"**{IMPL_NAMES.get(impl, impl)}**, N={fmt_n(n)}, {c} clients, {cycles:,} cycles: "
                      f"{tot_rec / cycles:.1f} records, {tot_b / cycles:,.0f} bytes per cycle")
            md.append("")
            md.append("| record type | records/cycle | bytes/cycle | of which FPI |")
            md.append("|---|---:|---:|---:|")
            for typ, nrec, rb, fb, cb in sorted(rows, key=lambda r: -r[4])[:10]:
                md.append(f"| {typ} | {nrec / cycles:.2f} | {cb / cycles:,.0f} | {fb / cycles:,.0f} |")

    load_rows = read_tsv(os.path.join(args.raw, "load.tsv"))
    if load_rows:
        loads = {}
        for n, impl, secs in load_rows:
            loads.setdefault((int(n), impl), []).append(float(secs))
        md.append("")
        md.append("## Loading (create schema, INSERT ... SELECT, VACUUM ANALYZE)")
        md.append("")
        md.append("| N | implementation | seconds (each load) |")
        md.append("|---:|---|---:|")
        for (n, impl), secs in sorted(loads.items()):
            md.append(f"| {fmt_n(n)} | {IMPL_NAMES.get(impl, impl)} | {' / '.join(f'{x:.1f}' for x in secs)} |")

    md.append("")
    md.append("Raw material: `bench/results/raw/` (per-run figures in `runs_summary.tsv`, pgbench "
              "outputs in `logs/*.out`, the per-transaction logs only with `BENCH_KEEP_LOGS=1`, "
              "monitoring TSV, pg_waldump statistics in `waldump_*.txt`, auto_explain plans of the "
              "claim statements at the largest N in `explain_{a,b,d}.txt`); not committed to git.")

    # ------------------------------------------------------------ plot
    os.makedirs(args.out, exist_ok=True)
    png = os.path.join(args.out, "cycles.png")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, len(clients), figsize=(5 * len(clients), 4.6), squeeze=False,
                                 sharey=True)
        styles = {"a": ("tab:blue", "o", "-"), "a0": ("tab:cyan", "o", ":"), "d": ("tab:green", "D", "-"),
                  "b": ("tab:red", "s", "-"), "e": ("tab:purple", "v", "--"), "c": ("tab:gray", "^", "--")}
        for ax, c in zip(axes[0], clients):
            for impl in impls:
                xs = [n for n in sizes if get(n, c, impl)]
                ys = [max(get(n, c, impl)["cps"], 0.1) for n in xs]
                color, marker, ls = styles[impl]
                ax.plot(xs, ys, marker=marker, linestyle=ls, color=color, label=IMPL_NAMES[impl])
                for x, y in zip(xs, ys):
                    ax.annotate(f"{y:,.0f}" if y >= 10 else f"{y:.1f}", (x, y), textcoords="offset points",
                                xytext=(0, {"a0": -12, "b": -12, "d": 12}.get(impl, 4)), ha="center",
                                fontsize=7, color=color)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xticks(sizes)
            ax.set_xticklabels([fmt_n(n) for n in sizes])
            ax.set_xlabel("waiting chats (queue size)")
            ax.set_title(f"{c} client{'s' if c > 1 else ''}")
            ax.grid(True, which="both", alpha=0.3)
        lo, hi = axes[0][0].get_ylim()
        axes[0][0].set_ylim(lo, hi * 2)  # room for the labels above the top line
        axes[0][0].set_ylabel("cycles/s (assign + operator reply + user reply)")
        axes[0][0].legend(loc="lower left", fontsize=8)
        fig.suptitle("chat_assign (a), events off (a0) vs a PL/pgSQL peer (d), the earlier\n"
                     "PL/pgSQL design (b), the cycle's rows alone (e) and three bare UPDATE commits (c)",
                     fontsize=10)
        fig.tight_layout()
        fig.savefig(png, dpi=120)
        md.append("")
        md.append("Plot: `bench/results/cycles.png` (cycles/s against queue size, log-log, one panel per "
                  "client count).")
    except Exception as exc:  # the table is the result; the plot is a convenience
        print(f"plot not written: {exc}", file=sys.stderr)

    text = "\n".join(md) + "\n"
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()

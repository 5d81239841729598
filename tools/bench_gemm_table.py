#!/usr/bin/env python3
"""Markdown tables for bench/RESULTS.md from bench_gemm's JSON lines.

    build/bin/bench_gemm ... > gemm.jsonl
    python3 tools/bench_gemm_table.py gemm.jsonl

One row per product (op, dtype, M, K in, N out), one column group per thread
count: mpt's GFLOP/s and fraction of the local peak (measured right before and
after the product), then each reference's fraction and mpt's speed over it. Then
the means the issue's targets are stated in, against the local peak and against
the highest peak of the run.
"""
import collections
import json
import sys


LINEAR = ["fwd", "dgrad", "wgrad", "wgrad_bias"]
ATTENTION = ["attn_qk", "attn_pv", "attn_dkept", "attn_dv", "attn_dq"]


def table(products, ops, title):
    threads = sorted({r["threads"] for r in products})
    impls = [i for i in ("openblas", "onednn", "mpt-2pass") if any(r["impl"] == i and r["op"] in ops for r in products)]
    by_key = {(r["op"], r["dtype"], r["M"], r["N"], r["K"], r["threads"], r["impl"]): r for r in products}
    keys = []
    for r in products:
        k = (r["op"], r["dtype"], r["M"], r["N"], r["K"])
        if r["impl"] == "mpt" and r["op"] in ops and k not in keys:
            keys.append(k)
    if not keys:
        return
    keys.sort(key=lambda k: (k[1], k[2], k[4], k[3], ops.index(k[0])))
    print(f"### {title}\n")
    head = ["product", "dtype", "M", "K" if ops is LINEAR else "N", "N" if ops is LINEAR else "K"]
    for t in threads:
        head += [f"{t} thr mpt GFLOP/s", f"{t} thr mpt % peak"]
        head += [f"{t} thr {i} % peak (mpt speed-up)" for i in impls]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    means = collections.defaultdict(list)
    for op, dtype, m, n, k in keys:
        # Linear rows are labelled as the layer (K in, N out); attention rows as the GEMM (M, N, K).
        cells = [op, dtype, str(m)] + ([str(k), str(n)] if ops is LINEAR else [str(n), str(k)])
        for t in threads:
            mine = by_key.get((op, dtype, m, n, k, t, "mpt"))
            if mine is None:
                cells += ["–", "–"] + ["–"] * len(impls)
                continue
            cells += [f"{mine['gflops']:.0f}", f"{100 * mine['fraction']:.1f}%"]
            means[("mpt", dtype, t)].append(mine["fraction"])
            means[("run-max mpt", dtype, t)].append(mine["run_fraction"])
            for i in impls:
                ref = by_key.get((op, dtype, m, n, k, t, i))
                if ref is None:
                    cells.append("–")
                    continue
                cells.append(f"{100 * ref['fraction']:.1f}% ({mine['gflops'] / ref['gflops']:.2f}x)")
                means[(i, dtype, t)].append(ref["fraction"])
                means[("run-max " + i, dtype, t)].append(ref["run_fraction"])
                means[("ratio " + i, dtype, t)].append(mine["gflops"] / ref["gflops"])
        print("| " + " | ".join(cells) + " |")
    print()
    passes = max(r.get("passes", 1) for r in products)
    if passes > 1:
        print(f"Each product: the fastest of {passes} passes over the whole sweep, over the highest local peak of its passes.\n")
    for (impl, dtype, t), v in sorted(means.items()):
        if impl.startswith("ratio"):
            print(f"- mpt / {impl[6:]} {dtype}, {t} thread(s): {sum(v) / len(v):.2f}x mean speed ratio over {len(v)} products")
        elif impl.startswith("run-max"):
            print(f"- {impl[8:]} {dtype}, {t} thread(s): {100 * sum(v) / len(v):.1f}% of the highest peak of the run, mean over {len(v)} products")
        else:
            print(f"- {impl} {dtype}, {t} thread(s): {100 * sum(v) / len(v):.1f}% of the local peak, mean over {len(v)} products")
    print()


def main(path):
    rows = [json.loads(line) for line in open(path) if line.startswith("{")]
    products = [r for r in rows if "gflops" in r]
    table(products, LINEAR, "Linear-layer products")
    table(products, ATTENTION, "Attention's batched products (8 x 12 heads, head size 64)")


if __name__ == "__main__":
    main(sys.argv[1])

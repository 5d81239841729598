#!/usr/bin/python3
"""mpt against PyTorch in one invocation: runs bench_train and bench/torch_reference.py on the
same configurations and thread count, one after the other, then prints the ratios.

    bench/compare_torch.py BUILD/bin/bench_train [--configs tiny,mini,small] [--steps N] [--threads T]

Rows: mpt fp32 vs torch fp32; mpt bf16_mixed (each weight policy) vs torch autocast bf16
and vs torch pure bf16; full training steps (zero_grad, forward, backward, clipping, AdamW)
in tokens/s, and peak RSS. Needs python3-torch (scripts/install-deps.sh --torch).
Nothing else may run meanwhile: 2 cores shared with a compile halve both figures.
"""
import argparse
import json
import os
import subprocess
import sys


def json_lines(text):
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bench_train")
    parser.add_argument("--configs", default="tiny,mini,small")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()
    common = ["--configs", args.configs, "--steps", str(args.steps), "--threads", str(args.threads)]
    mpt_run = subprocess.run([args.bench_train] + common, capture_output=True, text=True)
    if mpt_run.returncode != 0:
        sys.exit(f"compare_torch.py: bench_train failed: {mpt_run.stderr.strip()}")
    here = os.path.dirname(os.path.abspath(__file__))
    torch_run = subprocess.run([sys.executable, os.path.join(here, "torch_reference.py")] + common, capture_output=True, text=True)
    if torch_run.returncode != 0:
        sys.exit(f"compare_torch.py: torch_reference.py failed: {torch_run.stderr.strip()}")
    print(mpt_run.stdout.split("\n\n")[0])
    print(torch_run.stdout.split("\n\n")[0])
    mine = [r for r in json_lines(mpt_run.stdout) if r.get("bench") == "train_step"]
    theirs = {(r["config"], r["mode"]): r for r in json_lines(torch_run.stdout) if "tokens_per_s" in r}
    print(f"\n{'config':8} {'mpt':32} {'torch':14} {'mpt tok/s':>10} {'torch tok/s':>11} {'ratio':>7} {'RSS mpt/torch GiB':>18}")
    for r in mine:
        references = ["fp32"] if r["precision"] == "fp32" else ["autocast_bf16", "pure_bf16"]
        for mode in references:
            t = theirs.get((r["config"], mode))
            if t is None:
                continue
            print(f"{r['config']:8} {r['precision'] + ' ' + r['weights']:32} {mode:14} {r['tokens_per_s']:10.0f} {t['tokens_per_s']:11.0f} "
                  f"{r['tokens_per_s'] / t['tokens_per_s']:6.2f}x {r['peak_rss_bytes'] / 2**30:8.2f} / {t['peak_rss_bytes'] / 2**30:.2f}")


if __name__ == "__main__":
    main()

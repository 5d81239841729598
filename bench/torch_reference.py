#!/usr/bin/python3
"""PyTorch's training step on bench_train's configurations, the baseline mpt is measured against.

Needs Debian's python3-torch (scripts/install-deps.sh --torch); never part of the tests.
The model is transformers' BertForQuestionAnswering written in plain torch (the one
tools/gen_bert_fixtures.py checks mpt against: transformers is not packaged by Debian).
A step is what transformers' Trainer does: zero_grad, forward (under autocast in the
autocast mode), backward, clip_grad_norm_(1.0), AdamW step (torch.optim.AdamW, foreach).

    bench/torch_reference.py [--configs tiny,mini,small,base,base_32] [--modes fp32,autocast_bf16,pure_bf16]
                             [--steps N] [--threads T]
        every (config x mode) in its own child process (so that its peak RSS is its own),
        one JSON line each, then a table
    bench/torch_reference.py --one CONFIG MODE [--steps N] [--threads T]

Tuned as a careful user would (the parent sets this up for its children):
torch.set_num_threads(T) and OMP_NUM_THREADS=T; OMP_WAIT_POLICY=PASSIVE for fp32 (its
oneDNN/OpenBLAS threads otherwise spin between ops); jemalloc preloaded when Debian's
libjemalloc2 is installed, with decay off (MALLOC_CONF as the issue gives it);
OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unset.
JSON fields: config, mode, batch, seq, threads, step_s (median), step_best_s, fwd_bwd_s (median of
forward + backward alone), tokens_per_s (median full step), fwd_bwd_tokens_per_s, peak_rss_bytes.
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

SHAPES = {  # name: (layers, hidden, heads, batch, seq) -- bench_train's
    "tiny": (2, 128, 2, 32, 128),
    "mini": (4, 256, 4, 32, 128),
    "small": (4, 512, 8, 32, 128),
    "base": (12, 768, 12, 12, 384),
    "base_32": (12, 768, 12, 32, 128),
}
MODES = ("fp32", "autocast_bf16", "pure_bf16")
JEMALLOC = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"
MALLOC_CONF = "oversize_threshold:1,background_thread:true,metadata_thp:auto,dirty_decay_ms:-1,muzzy_decay_ms:-1"


def run_one(config, mode, steps, threads):
    import torch
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
    from gen_bert_fixtures import BertForQuestionAnswering

    torch.set_num_threads(threads)
    torch.manual_seed(1)
    layers, hidden, heads, batch, seq = SHAPES[config]
    c = {"vocab_size": 30522, "hidden_size": hidden, "num_hidden_layers": layers, "num_attention_heads": heads,
         "intermediate_size": 4 * hidden, "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
         "max_position_embeddings": 512, "type_vocab_size": 2, "layer_norm_eps": 1e-12, "pad_token_id": 0}
    model = BertForQuestionAnswering(c)
    if mode == "pure_bf16":
        model = model.to(torch.bfloat16)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-5, weight_decay=0.01)
    k = torch.arange(batch * seq)
    input_ids = (1000 + (k * 7919) % 20000).reshape(batch, seq)
    attention_mask = torch.ones(batch, seq, dtype=torch.int64)
    token_type_ids = ((k % seq) > seq // 4).to(torch.int64).reshape(batch, seq)
    start = 5 + torch.arange(batch) % 20
    inputs = (input_ids, attention_mask, token_type_ids, start, start + 3)

    full, fwd_bwd = [], []
    for step in range(steps + 1):  # step 0 warms up
        t0 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=mode == "autocast_bf16"):
            loss = model(*inputs)[0]
        loss.backward()
        t1 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        t2 = time.perf_counter()
        if step > 0:
            full.append(t2 - t0)
            fwd_bwd.append(t1 - t0)
    tokens = batch * seq
    median = statistics.median(full)
    record = {"bench": "torch_train_step", "torch": torch.__version__, "config": config, "mode": mode, "batch": batch, "seq": seq,
              "threads": threads, "steps": steps, "step_s": round(median, 5), "step_best_s": round(min(full), 5),
              "fwd_bwd_s": round(statistics.median(fwd_bwd), 5), "tokens_per_s": round(tokens / median, 1),
              "fwd_bwd_tokens_per_s": round(tokens / statistics.median(fwd_bwd), 1),
              "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}
    print(json.dumps(record), flush=True)


def child_environment(mode, threads):
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = str(threads)
    for name in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        env.pop(name, None)
    if mode == "fp32":
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    else:
        env.pop("OMP_WAIT_POLICY", None)
    if os.path.exists(JEMALLOC):
        env["LD_PRELOAD"] = JEMALLOC
        env["MALLOC_CONF"] = MALLOC_CONF
    return env


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--one", nargs=2, metavar=("CONFIG", "MODE"))
    parser.add_argument("--configs", default=",".join(SHAPES))
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()
    if args.one:
        config, mode = args.one
        if config not in SHAPES or mode not in MODES:
            sys.exit(f"torch_reference.py: unknown config {config!r} or mode {mode!r} (configs {', '.join(SHAPES)}; modes {', '.join(MODES)})")
        run_one(config, mode, max(1, args.steps), args.threads)
        return
    configs, modes = args.configs.split(","), args.modes.split(",")
    for c in configs:
        if c not in SHAPES:
            sys.exit(f"torch_reference.py: unknown config {c!r} (known: {', '.join(SHAPES)})")
    for m in modes:
        if m not in MODES:
            sys.exit(f"torch_reference.py: unknown mode {m!r} (known: {', '.join(MODES)})")
    print(f"# jemalloc: {'preloaded' if os.path.exists(JEMALLOC) else 'not installed (libjemalloc2)'}; threads {args.threads}", flush=True)
    rows = []
    for c in configs:
        for m in modes:
            out = subprocess.run([sys.executable, os.path.abspath(__file__), "--one", c, m, "--steps", str(args.steps), "--threads",
                                  str(args.threads)], env=child_environment(m, args.threads), capture_output=True, text=True)
            if out.returncode != 0:
                print(json.dumps({"bench": "torch_train_step", "config": c, "mode": m, "error": out.stderr.strip().splitlines()[-1:]}), flush=True)
                continue
            line = out.stdout.strip().splitlines()[-1]
            print(line, flush=True)
            rows.append(json.loads(line))
    print(f"\n{'config':8} {'mode':14} {'step ms':>10} {'tokens/s':>10} {'fwd+bwd tok/s':>14} {'RSS GiB':>8}")
    for r in rows:
        print(f"{r['config']:8} {r['mode']:14} {1e3 * r['step_s']:10.1f} {r['tokens_per_s']:10.0f} {r['fwd_bwd_tokens_per_s']:14.0f} "
              f"{r['peak_rss_bytes'] / 2**30:8.2f}")


if __name__ == "__main__":
    main()

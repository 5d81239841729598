#!/usr/bin/python3
"""Generates tests/fixtures/optim/*.json: reference optimizer trajectories and
learning-rate schedules from PyTorch (Debian's python3-torch 1.13).

Run by hand from the repository root:  /usr/bin/python3 tools/gen_optim_fixtures.py

- adamw_trajectory.json: torch.optim.AdamW over two parameter groups built the
  way transformers' Trainer builds them (no weight decay for biases and
  LayerNorm weights), gradients clipped by torch.nn.utils.clip_grad_norm_, a
  linear warmup schedule through LambdaLR; parameters after every step.
- sgd_trajectory.json: torch.optim.SGD with momentum, Nesterov and weight decay;
  sgd_momentum_trajectory.json: plain momentum with dampening.
- schedules.json: LambdaLR learning rates at every step for transformers'
  schedule formulas (restated below from src/transformers/optimization.py)
  for several warmup/total combinations.
"""
import json
import math
import os

import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "optim")

# (name, numel): odd sizes so vector tails are exercised; names as the model gives them.
PARAMS = [
    ("bert.encoder.layer.0.attention.self.query.weight", 7 * 13),
    ("bert.encoder.layer.0.attention.self.query.bias", 13),
    ("bert.encoder.layer.0.attention.output.LayerNorm.weight", 13),
    ("bert.encoder.layer.0.attention.output.LayerNorm.bias", 13),
    ("qa_outputs.weight", 2 * 29),
]
NO_DECAY = lambda name: "bias" in name or "LayerNorm" in name


def floats(t):
    return [float(x) for x in t.detach().reshape(-1).tolist()]


def linear_warmup(warmup, total):
    def f(step):
        if step < warmup:
            return float(step) / float(max(1, warmup))
        return max(0.0, float(total - step) / float(max(1, total - warmup)))
    return f


def trajectory(kind, steps, seed, nesterov=True, dampening=0.0):
    g = torch.Generator().manual_seed(seed)
    params = [torch.randn(n, generator=g, dtype=torch.float32) * 0.5 for _, n in PARAMS]
    initial = [floats(p) for p in params]
    params = [torch.nn.Parameter(p.clone()) for p in params]
    decay = [p for (name, _), p in zip(PARAMS, params) if not NO_DECAY(name)]
    no_decay = [p for (name, _), p in zip(PARAMS, params) if NO_DECAY(name)]
    if kind == "adamw":
        cfg = dict(lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1, max_grad_norm=1.0, warmup=3)
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg["weight_decay"]},
                                 {"params": no_decay, "weight_decay": 0.0}],
                                lr=cfg["lr"], betas=cfg["betas"], eps=cfg["eps"])
    else:
        cfg = dict(lr=5e-2, momentum=0.9, dampening=dampening, nesterov=nesterov, weight_decay=0.01, max_grad_norm=1.0,
                   warmup=3)
        opt = torch.optim.SGD([{"params": decay, "weight_decay": cfg["weight_decay"]},
                               {"params": no_decay, "weight_decay": 0.0}],
                              lr=cfg["lr"], momentum=cfg["momentum"], dampening=cfg["dampening"],
                              nesterov=cfg["nesterov"])
    sched = torch.optim.lr_scheduler.LambdaLR(opt, linear_warmup(cfg["warmup"], steps))
    out = {"config": cfg, "steps": steps, "seed": seed,
           "params": [{"name": n, "numel": k} for n, k in PARAMS],
           "initial": sum(initial, []), "grads": [], "lr": [], "grad_norm": [], "after": []}
    for step in range(steps):
        # Gradient magnitudes vary so that some steps clip and some do not.
        scale = 0.02 if step % 3 == 0 else 0.3
        grads = [torch.randn(n, generator=g, dtype=torch.float32) * scale for _, n in PARAMS]
        for p, gr in zip(params, grads):
            p.grad = gr.clone()
        out["grads"].append(sum([floats(gr) for gr in grads], []))
        out["lr"].append(opt.param_groups[0]["lr"])
        norm = torch.nn.utils.clip_grad_norm_(params, cfg["max_grad_norm"])
        out["grad_norm"].append(float(norm))
        opt.step()
        sched.step()
        out["after"].append(sum([floats(p) for p in params], []))
    return out


# transformers' lr_lambda formulas (src/transformers/optimization.py), restated.
def lam(kind, step, warmup, total, num_cycles=None, lr_init=None, lr_end=1e-7, power=1.0):
    if kind == "constant":
        return 1.0
    if step < warmup:
        return float(step) / float(max(1.0 if kind == "constant_with_warmup" else 1, warmup))
    if kind == "constant_with_warmup":
        return 1.0
    if kind == "linear":
        return max(0.0, float(total - step) / float(max(1, total - warmup)))
    progress = float(step - warmup) / float(max(1, total - warmup))
    if kind == "cosine":
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * float(num_cycles) * 2.0 * progress)))
    if kind == "cosine_with_restarts":
        if progress >= 1.0:
            return 0.0
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * ((float(num_cycles) * progress) % 1.0))))
    if kind == "polynomial":
        if step > total:
            return lr_end / lr_init
        decay_steps = total - warmup
        pct_remaining = 1 - (step - warmup) / decay_steps
        return ((lr_init - lr_end) * pct_remaining ** power + lr_end) / lr_init
    raise ValueError(kind)


def schedules():
    cases = []
    lr = 3e-5
    combos = [(0, 10), (3, 10), (10, 10), (1, 1), (7, 50), (0, 1)]
    ratio_combos = [(0.1, 37), (0.06, 100), (0.25, 9)]
    for warmup_ratio, total in ratio_combos:
        combos.append((math.ceil(warmup_ratio * total), total))
    for kind, extra in [("constant", {}), ("constant_with_warmup", {}), ("linear", {}),
                        ("cosine", {"num_cycles": 0.5}), ("cosine", {"num_cycles": 1.25}),
                        ("cosine_with_restarts", {"num_cycles": 1}), ("cosine_with_restarts", {"num_cycles": 3}),
                        ("polynomial", {"power": 1.0, "lr_end": 1e-7}), ("polynomial", {"power": 2.0, "lr_end": 1e-6})]:
        for warmup, total in combos:
            if kind == "polynomial" and total == warmup:
                continue  # transformers divides by zero there
            p = torch.nn.Parameter(torch.zeros(1))
            opt = torch.optim.SGD([p], lr=lr)
            f = lambda s, kind=kind, warmup=warmup, total=total: lam(kind, s, warmup, total, lr_init=lr, **extra)
            sched = torch.optim.lr_scheduler.LambdaLR(opt, f)
            lrs = []
            for _ in range(total + 3):  # a few steps past the end too
                lrs.append(opt.param_groups[0]["lr"])
                opt.step()
                sched.step()
            cases.append({"kind": kind, "warmup_steps": warmup, "total_steps": total, "lr": lr,
                          "num_cycles": extra.get("num_cycles", 0.5), "power": extra.get("power", 1.0),
                          "lr_end": extra.get("lr_end", 1e-7), "lrs": lrs})
    return {"cases": cases, "warmup_ratio_cases": [{"ratio": r, "total": t, "warmup_steps": math.ceil(r * t)}
                                                   for r, t in ratio_combos]}


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, obj in [("adamw_trajectory.json", trajectory("adamw", 10, 20261128)),
                      ("sgd_trajectory.json", trajectory("sgd", 10, 7)),
                      ("sgd_momentum_trajectory.json", trajectory("sgd", 10, 8, nesterov=False, dampening=0.1)),
                      ("schedules.json", schedules())]:
        with open(os.path.join(OUT, name), "w") as f:
            json.dump(obj, f, separators=(",", ":"))
        print("wrote", name)


if __name__ == "__main__":
    main()

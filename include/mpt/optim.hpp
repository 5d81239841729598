#pragma once
// mpt/optim: optimizers over master weights (AdamW, SGD), master-weight
// policies, loss scaling, gradient clipping and accumulation, learning-rate
// schedules, optimizer state.
//
// A training step, as transformers' Trainer does it:
//
//   optim::ParameterTable table;                       // the model fills it, in buffer order
//   table.add("bert.embeddings.word_embeddings.weight", 30522 * 768);          // decays
//   table.add("bert.embeddings.LayerNorm.weight", 768, /*decay=*/false);      // exempt, as HF
//   optim::AdamW<precision::bf16_mixed> opt(params, table, {.weight_decay = 0.01});
//   optim::DynamicLossScaler scaler;                   // or NoLossScaling (bf16 default)
//   auto schedule = optim::LrSchedule::for_trainer("linear", 3e-5, warmup_steps, total_steps);
//   ... backward of every micro-batch adds into `grads` (loss x scaler.scale() / micro-batches)
//   auto report = optim::clip_and_step(opt, scaler, grads, schedule.lr(opt.steps()), 1.0);
//   // report.grad_norm, report.applied, report.loss_scale, report.skipped_steps
//
// Checkpoints: save_optimizer_state(dir, opt.state_dict(), scaler.state(), schedule.state())
// and load_optimizer_state(dir) (optim/checkpoint.hpp).
#include <mpt/core/fp16_convert.hpp>
#include <mpt/kernels/global_norm.hpp>
#include <mpt/optim/adamw.hpp>
#include <mpt/optim/flat_optimizer.hpp>
#include <mpt/optim/checkpoint.hpp>
#include <mpt/optim/loss_scaler.hpp>
#include <mpt/optim/optimizer_step.hpp>
#include <mpt/optim/parameter_table.hpp>
#include <mpt/optim/schedule.hpp>
#include <mpt/optim/sgd.hpp>
#include <mpt/optim/state_dict.hpp>
#include <mpt/optim/weights.hpp>

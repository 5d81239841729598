#pragma once
// mpt/optim: optimizers over master weights (AdamW, SGD), master-weight
// policies, loss scaling, gradient clipping and accumulation, learning-rate
// schedules, optimizer state.
#include <mpt/core/fp16_convert.hpp>
#include <mpt/kernels/global_norm.hpp>
#include <mpt/optim/adamw.hpp>
#include <mpt/optim/fp16_policy.hpp>
#include <mpt/optim/loss_scaler.hpp>
#include <mpt/optim/optimizer_step.hpp>
#include <mpt/optim/parameter_table.hpp>
#include <mpt/optim/schedule.hpp>
#include <mpt/optim/sgd.hpp>
#include <mpt/optim/state_dict.hpp>
#include <mpt/optim/weights.hpp>

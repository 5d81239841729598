#pragma once
// mpt/train: transformers' Trainer as a template — the training loop, its
// arguments, callbacks, progress and logging, checkpoints that resume bit for
// bit — and the optimizer composed over a model's parameters.
#include <mpt/train/model_optimizer.hpp>

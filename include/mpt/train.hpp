#pragma once
// mpt/train: transformers' Trainer as a template — the training loop, its
// arguments, callbacks, progress and logging, checkpoints that resume bit for
// bit — and the optimizer composed over a model's parameters.
#include <mpt/train/model_optimizer.hpp>
#include <mpt/train/callbacks.hpp>
#include <mpt/train/checkpoint_folder.hpp>
#include <mpt/train/progress.hpp>
#include <mpt/train/sampler.hpp>
#include <mpt/train/signals.hpp>
#include <mpt/train/trainer.hpp>
#include <mpt/train/trainer_state.hpp>
#include <mpt/train/training_arguments.hpp>
#include <mpt/train/question_answering.hpp>

#pragma once
// mpt/nn: layers with forward/backward and their parameters; the BERT model.
// The layer contract (every layer here follows it):
//   - construction declares the parameters in a Parameters<P> under their
//     Hugging Face names;
//   - forward(ctx, inputs..., out) writes `out` and saves what backward needs
//     (views of inputs the caller keeps alive, and tensors in ctx.activations);
//   - backward(ctx, dout..., din...) writes the input gradients and
//     ACCUMULATES (+=) parameter gradients; only the trainer zeroes them;
//   - temporaries go to ctx.workspace, which the enclosing block resets.
#include <mpt/nn/attention.hpp>
#include <mpt/nn/bert.hpp>
#include <mpt/nn/bert_config.hpp>
#include <mpt/nn/bert_layer.hpp>
#include <mpt/nn/context.hpp>
#include <mpt/nn/embeddings.hpp>
#include <mpt/nn/init.hpp>
#include <mpt/nn/layer_norm.hpp>
#include <mpt/nn/linear.hpp>
#include <mpt/nn/parameters.hpp>
#include <mpt/nn/pretrained.hpp>
#include <mpt/nn/residual_norm.hpp>

#pragma once
// mpt/nn: layers with forward/backward and their parameters; the BERT model.
// The layer contract (every layer here follows it):
//   - construction declares the parameters in a Parameters<P> under their
//     Hugging Face names;
//   - forward(ctx, inputs..., out) writes `out` and saves what backward needs
//     (views of inputs the caller keeps alive, and tensors in ctx.activations);
//   - backward(ctx, dout..., din...) ACCUMULATES (+=) parameter gradients (only
//     the trainer zeroes them) and WRITES (=) its input gradients, except where an
//     input feeds two paths: then the second path's backward adds (+=) into what the
//     first wrote, and says so. In a BERT layer: DenseResidualNorm writes dx (the
//     residual path), BertSelfAttention then adds its Q/K/V gradients into it; an
//     intermediate Linear adds into dh the same way (Linear's accumulate_dx);
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

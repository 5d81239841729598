#!/usr/bin/python3
"""Generates tests/fixtures/bert_tiny/: a tiny random BERT-QA model folder and PyTorch's
outputs and gradients for one batch, in fp32 and under CPU bf16 autocast.

Run by hand with the interpreter that has torch (1.13.1 here):
    /usr/bin/python3 tools/gen_bert_fixtures.py [out_dir]
    /usr/bin/python3 tools/gen_bert_fixtures.py --check <model_dir>
The second form checks a model folder written by mpt's save_pretrained as
from_pretrained would take it: the safetensors rules of the reference reader, then
load_state_dict(strict=True) into this BertForQuestionAnswering built from its
config.json; when the folder holds bert_tiny's weights it also reruns the batch and
compares the logits and loss with expected_fp32.safetensors.

transformers is not installed, so BertForQuestionAnswering is written below in plain
torch, mirroring transformers' modeling_bert.py operation for operation (same module
order, same extended attention mask, same erf GELU, same loss with clamping). The
safetensors files are written by hand (struct + json) following the format exactly.
"""
import json
import math
import os
import struct
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

SEED = 20261128
OUT = sys.argv[1] if len(sys.argv) == 2 else os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "bert_tiny")

CONFIG = {
    "architectures": ["BertForQuestionAnswering"],
    "attention_probs_dropout_prob": 0.0,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.0,
    "hidden_size": 32,
    "initializer_range": 0.02,
    "intermediate_size": 64,
    "layer_norm_eps": 1e-12,
    "max_position_embeddings": 64,
    "model_type": "bert",
    "num_attention_heads": 4,
    "num_hidden_layers": 2,
    "pad_token_id": 0,
    "type_vocab_size": 2,
    "vocab_size": 100,
}


# ---- the model: transformers' BertForQuestionAnswering in plain torch -------------------
class BertEmbeddings(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.word_embeddings = nn.Embedding(c["vocab_size"], c["hidden_size"], padding_idx=c["pad_token_id"])
        self.position_embeddings = nn.Embedding(c["max_position_embeddings"], c["hidden_size"])
        self.token_type_embeddings = nn.Embedding(c["type_vocab_size"], c["hidden_size"])
        self.LayerNorm = nn.LayerNorm(c["hidden_size"], eps=c["layer_norm_eps"])
        self.dropout = nn.Dropout(c["hidden_dropout_prob"])

    def forward(self, input_ids, token_type_ids):
        position_ids = torch.arange(input_ids.shape[1]).unsqueeze(0)
        x = self.word_embeddings(input_ids) + self.token_type_embeddings(token_type_ids)
        x = x + self.position_embeddings(position_ids)  # absolute position embeddings
        return self.dropout(self.LayerNorm(x))


class BertSelfAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.heads = c["num_attention_heads"]
        self.head_dim = c["hidden_size"] // self.heads
        self.query = nn.Linear(c["hidden_size"], c["hidden_size"])
        self.key = nn.Linear(c["hidden_size"], c["hidden_size"])
        self.value = nn.Linear(c["hidden_size"], c["hidden_size"])
        self.dropout = nn.Dropout(c["attention_probs_dropout_prob"])

    def split(self, x):  # [B, S, H] -> [B, heads, S, head_dim]
        return x.view(x.size(0), x.size(1), self.heads, self.head_dim).permute(0, 2, 1, 3)

    def forward(self, x, extended_mask):
        q, k, v = self.split(self.query(x)), self.split(self.key(x)), self.split(self.value(x))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_dim)
        scores = scores + extended_mask
        probs = self.dropout(nn.functional.softmax(scores, dim=-1))
        context = torch.matmul(probs, v).permute(0, 2, 1, 3).contiguous()
        return context.view(context.size(0), context.size(1), -1)


class BertSelfOutput(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense = nn.Linear(c["hidden_size"], c["hidden_size"])
        self.LayerNorm = nn.LayerNorm(c["hidden_size"], eps=c["layer_norm_eps"])
        self.dropout = nn.Dropout(c["hidden_dropout_prob"])

    def forward(self, h, residual):
        return self.LayerNorm(self.dropout(self.dense(h)) + residual)


class BertAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.self = BertSelfAttention(c)
        self.output = BertSelfOutput(c)

    def forward(self, x, extended_mask):
        return self.output(self.self(x, extended_mask), x)


class BertIntermediate(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense = nn.Linear(c["hidden_size"], c["intermediate_size"])

    def forward(self, x):
        return F.gelu(self.dense(x))  # "gelu" = exact erf form


class BertOutput(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense = nn.Linear(c["intermediate_size"], c["hidden_size"])
        self.LayerNorm = nn.LayerNorm(c["hidden_size"], eps=c["layer_norm_eps"])
        self.dropout = nn.Dropout(c["hidden_dropout_prob"])

    def forward(self, h, residual):
        return self.LayerNorm(self.dropout(self.dense(h)) + residual)


class BertLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.attention = BertAttention(c)
        self.intermediate = BertIntermediate(c)
        self.output = BertOutput(c)

    def forward(self, x, extended_mask):
        a = self.attention(x, extended_mask)
        return self.output(self.intermediate(a), a)


class BertEncoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.layer = nn.ModuleList([BertLayer(c) for _ in range(c["num_hidden_layers"])])


class BertModel(nn.Module):  # add_pooling_layer=False, as in BertForQuestionAnswering
    def __init__(self, c):
        super().__init__()
        self.embeddings = BertEmbeddings(c)
        self.encoder = BertEncoder(c)

    def forward(self, input_ids, attention_mask, token_type_ids):
        # get_extended_attention_mask: [B, S] -> [B, 1, 1, S], 0 to keep, finfo(model dtype).min to drop.
        dtype = self.embeddings.word_embeddings.weight.dtype  # the model's dtype (fp32 also under autocast), as self.dtype
        extended = (1.0 - attention_mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min
        x = self.embeddings(input_ids, token_type_ids)
        hidden_states = [x]
        for layer in self.encoder.layer:
            x = layer(x, extended)
            hidden_states.append(x)
        return x, hidden_states


class BertForQuestionAnswering(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.bert = BertModel(c)
        self.qa_outputs = nn.Linear(c["hidden_size"], 2)

    def forward(self, input_ids, attention_mask, token_type_ids, start_positions, end_positions):
        sequence_output, hidden_states = self.bert(input_ids, attention_mask, token_type_ids)
        logits = self.qa_outputs(sequence_output)
        start_logits, end_logits = logits.split(1, dim=-1)
        start_logits = start_logits.squeeze(-1).contiguous()
        end_logits = end_logits.squeeze(-1).contiguous()
        ignored_index = start_logits.size(1)
        start_positions = start_positions.clamp(0, ignored_index)
        end_positions = end_positions.clamp(0, ignored_index)
        loss_fct = nn.CrossEntropyLoss(ignore_index=ignored_index)
        loss = (loss_fct(start_logits, start_positions) + loss_fct(end_logits, end_positions)) / 2
        return loss, start_logits, end_logits, hidden_states


# ---- safetensors, written by hand --------------------------------------------------------
DTYPE_NAMES = {torch.float32: "F32", torch.bfloat16: "BF16", torch.float16: "F16", torch.int64: "I64"}


def tensor_bytes(t):
    t = t.detach().contiguous().cpu()
    if t.dtype == torch.bfloat16:  # numpy has no bf16: take the raw 16-bit patterns
        return t.view(torch.int16).numpy().tobytes()
    return t.numpy().tobytes()  # little-endian on x86


def write_safetensors(path, tensors, metadata=None):
    """tensors: list of (name, torch tensor) written in this order."""
    header = {}
    if metadata:
        header["__metadata__"] = metadata
    blobs, offset = [], 0
    for name, t in tensors:
        b = tensor_bytes(t)
        header[name] = {"dtype": DTYPE_NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - (8 + len(text)) % 8) % 8)  # data buffer starts 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    """A strict reader with the reference implementation's checks; returns (tensors, metadata)."""
    data = open(path, "rb").read()
    assert len(data) >= 8, "shorter than the header length"
    (n,) = struct.unpack("<Q", data[:8])
    assert n <= 100_000_000 and 8 + n <= len(data), "bad header length"
    text = data[8:8 + n].decode("utf-8")
    assert text.startswith("{"), "header must start with {"
    pairs = json.loads(text, object_pairs_hook=lambda kv: kv)
    names = [k for k, _ in pairs]
    assert len(names) == len(set(names)), "duplicate names"
    header = dict(pairs)
    metadata = dict(header.pop("__metadata__", []))
    buffer = data[8 + n:]
    dtypes = {"F32": (torch.float32, 4), "BF16": (torch.bfloat16, 2), "F16": (torch.float16, 2), "I64": (torch.int64, 8)}
    tensors, end = {}, 0
    for name, info in sorted(header.items(), key=lambda kv: dict(kv[1])["data_offsets"]):
        info = dict(info)
        dtype, size = dtypes[info["dtype"]]
        begin, stop = info["data_offsets"]
        assert begin == end, f"{name}: offsets not contiguous"
        assert stop - begin == size * math.prod(info["shape"]), f"{name}: size mismatch"
        raw = bytearray(buffer[begin:stop])
        if dtype == torch.bfloat16:
            t = torch.frombuffer(raw, dtype=torch.int16).view(torch.bfloat16) if raw else torch.empty(0, dtype=dtype)
        else:
            t = torch.frombuffer(raw, dtype=dtype) if raw else torch.empty(0, dtype=dtype)
        tensors[name] = t.reshape(info["shape"]).clone()
        end = stop
    assert end == len(buffer), "tensors do not cover the data buffer"
    return tensors, metadata


def check_folder(folder):
    tensors, metadata = read_safetensors(os.path.join(folder, "model.safetensors"))
    assert metadata.get("format") == "pt", f"__metadata__ format is {metadata.get('format')!r}, transformers wants 'pt'"
    config = json.load(open(os.path.join(folder, "config.json")))
    assert config["model_type"] == "bert" and config["architectures"] == ["BertForQuestionAnswering"]
    model = BertForQuestionAnswering(config)
    model.load_state_dict({k: v.float() for k, v in tensors.items()}, strict=True)
    print(f"{folder}: {len(tensors)} tensors ({sorted({str(v.dtype) for v in tensors.values()})}) load strictly into BertForQuestionAnswering")
    reference = os.path.join(OUT, "expected_fp32.safetensors")
    if config["hidden_size"] == CONFIG["hidden_size"] and config["vocab_size"] == CONFIG["vocab_size"] and os.path.exists(reference):
        expected, _ = read_safetensors(reference)
        batch, _ = read_safetensors(os.path.join(OUT, "batch.safetensors"))
        names = ["input_ids", "attention_mask", "token_type_ids", "start_positions", "end_positions"]
        with torch.no_grad():
            loss, start, end, _ = model(*[batch[n] for n in names])
        for name, got in (("loss", loss), ("start_logits", start), ("end_logits", end)):
            print(f"  {name}: max |mpt-saved - expected_fp32| = {(got - expected[name]).abs().max().item():.3e}")


# ---- the fixture -------------------------------------------------------------------------
def make_vocab(n):
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokens += list("abcdefghijklmnopqrstuvwxyz0123456789.,?!'-")
    words = ["the", "of", "and", "in", "to", "was", "is", "for", "on", "as", "by", "with", "he", "at", "from", "his",
             "an", "were", "are", "which", "this", "also", "be", "or", "has", "had", "first", "one", "their", "its",
             "new", "after", "who", "they", "two", "her", "she", "been", "other", "when", "there", "all", "during",
             "into", "school", "time", "may", "years", "more", "most"]
    subwords = ["##s", "##ing", "##ed", "##er", "##ly", "##ion"]
    tokens += subwords + words
    return tokens[:n]


def randomize(model, gen):
    """Random but BERT-like parameters, larger than initializer_range so that every
    operation (attention peaks, GELU curvature, LayerNorm affine) visibly matters."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm.weight" in name:
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=gen))
            elif name.endswith("bias") or "LayerNorm.bias" in name:
                p.copy_(0.05 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
        model.bert.embeddings.word_embeddings.weight[CONFIG["pad_token_id"]].zero_()


def make_batch(gen):
    batch, seq = 3, 16
    lengths = [16, 12, 9]      # rows 1 and 2 are padded
    first_segment = [7, 5, 4]  # tokens of segment A including [CLS] and its [SEP]
    input_ids = torch.zeros(batch, seq, dtype=torch.int64)
    token_type_ids = torch.zeros(batch, seq, dtype=torch.int64)
    attention_mask = torch.zeros(batch, seq, dtype=torch.int64)
    for b in range(batch):
        n = lengths[b]
        ids = torch.randint(5, CONFIG["vocab_size"], (n,), generator=gen)
        ids[0], ids[first_segment[b] - 1], ids[n - 1] = 2, 3, 3  # [CLS] A [SEP] B [SEP]
        input_ids[b, :n] = ids
        token_type_ids[b, first_segment[b]:n] = 1
        attention_mask[b, :n] = 1
    # Row 1's end lies beyond the sequence: clamped to 16 = ignore_index, left out of the mean.
    # Row 2's start is negative: clamped to 0 ([CLS], "no answer"), counted.
    start_positions = torch.tensor([8, 6, -3], dtype=torch.int64)
    end_positions = torch.tensor([10, 20, 6], dtype=torch.int64)
    return input_ids, attention_mask, token_type_ids, start_positions, end_positions


def run(model, batch, autocast):
    model.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        loss, start, end, hidden = model(*batch)
    loss.backward()
    out = {"start_logits": start.float(), "end_logits": end.float(), "loss": loss.float()}
    for i, h in enumerate(hidden):
        out[f"hidden_states.{i}"] = h.float()
    for name, p in model.named_parameters():
        out[f"grad.{name}"] = p.grad.float()
    return {k: v.detach().clone() for k, v in out.items()}


def spread(a, b):
    """max |a-b| and max |a-b| / max|a| over one tensor (a is the fp32 reference)."""
    d = (a - b).abs().max().item()
    scale = a.abs().max().item()
    return d, (d / scale if scale > 0 else 0.0)


def main():
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED)
    os.makedirs(OUT, exist_ok=True)
    model = BertForQuestionAnswering(CONFIG)
    randomize(model, gen)
    model.train()  # dropout is 0: train and eval agree; gradients need train anyway

    params = [(n, p.detach().clone()) for n, p in model.named_parameters()]
    write_safetensors(os.path.join(OUT, "model.safetensors"), params, {"format": "pt"})
    with open(os.path.join(OUT, "config.json"), "w") as f:
        json.dump(CONFIG, f, indent=2)
        f.write("\n")
    vocab = make_vocab(CONFIG["vocab_size"])
    assert len(vocab) == CONFIG["vocab_size"]
    with open(os.path.join(OUT, "vocab.txt"), "w") as f:
        f.write("\n".join(vocab) + "\n")

    # The same weights as the Hub ships bert-base-uncased: legacy LayerNorm names,
    # pre-training heads and a pooler, no qa_outputs.
    legacy_dir = os.path.join(OUT, "legacy_hub")
    os.makedirs(legacy_dir, exist_ok=True)
    H, V = CONFIG["hidden_size"], CONFIG["vocab_size"]
    legacy = []
    for n, p in params:
        if n.startswith("qa_outputs."):
            continue
        n = n.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta")
        legacy.append((n, p))
    extra = [("bert.pooler.dense.weight", (H, H)), ("bert.pooler.dense.bias", (H,)),
             ("cls.predictions.bias", (V,)),
             ("cls.predictions.transform.dense.weight", (H, H)), ("cls.predictions.transform.dense.bias", (H,)),
             ("cls.predictions.transform.LayerNorm.gamma", (H,)), ("cls.predictions.transform.LayerNorm.beta", (H,)),
             ("cls.seq_relationship.weight", (2, H)), ("cls.seq_relationship.bias", (2,))]
    legacy += [(n, 0.1 * torch.randn(s, generator=gen)) for n, s in extra]
    # Checkpoints saved before transformers made it non-persistent carry this I64 buffer.
    legacy.append(("bert.embeddings.position_ids", torch.arange(CONFIG["max_position_embeddings"]).unsqueeze(0)))
    legacy.sort(key=lambda item: item[0])  # the Hub file is in name order
    write_safetensors(os.path.join(legacy_dir, "model.safetensors"), legacy, {"format": "pt"})
    legacy_config = dict(CONFIG, architectures=["BertForMaskedLM"], gradient_checkpointing=False,
                         position_embedding_type="absolute", transformers_version="4.6.0.dev0", use_cache=True)
    with open(os.path.join(legacy_dir, "config.json"), "w") as f:
        json.dump(legacy_config, f, indent=2, sort_keys=True)
        f.write("\n")

    batch = make_batch(gen)
    names = ["input_ids", "attention_mask", "token_type_ids", "start_positions", "end_positions"]
    write_safetensors(os.path.join(OUT, "batch.safetensors"), list(zip(names, batch)))

    fp32 = run(model, batch, autocast=False)
    bf16 = run(model, batch, autocast=True)
    write_safetensors(os.path.join(OUT, "expected_fp32.safetensors"), list(fp32.items()))
    write_safetensors(os.path.join(OUT, "expected_bf16_autocast.safetensors"), list(bf16.items()))

    rows = {k: spread(fp32[k], bf16[k]) for k in fp32}
    # Some gradients are zero in exact arithmetic (attention key biases: softmax ignores a
    # per-row shift; qa_outputs.bias and the last LayerNorm bias: the cross-entropy gradient
    # sums to zero over positions). fp32 leaves ~1e-10 of rounding noise there, so a ratio
    # to it means nothing: they are listed apart and judged by max_abs alone.
    zero = sorted(k for k in fp32 if k.startswith("grad.") and fp32[k].abs().max().item() < 1e-6)
    grads = [k for k in rows if k.startswith("grad.") and k not in zero]
    summary = {
        "seed": SEED,
        "torch_version": torch.__version__,
        "config": CONFIG,
        "batch": {n: list(t.shape) for n, t in zip(names, batch)},
        "files": {
            "model.safetensors": "parameters, F32, Hugging Face names",
            "legacy_hub/model.safetensors": "same parameters, legacy LayerNorm.gamma/beta names, cls.* and bert.pooler.*, I64 bert.embeddings.position_ids, no qa_outputs",
            "batch.safetensors": "I64 inputs: input_ids, attention_mask, token_type_ids [3,16]; start/end_positions [3]",
            "expected_fp32.safetensors": "fp32 forward/backward: start_logits, end_logits [3,16], loss [], hidden_states.{0..2} [3,16,32], grad.<parameter>",
            "expected_bf16_autocast.safetensors": "the same under torch.autocast('cpu', dtype=torch.bfloat16), stored as F32",
        },
        "autocast_vs_fp32": {k: {"max_abs": a, "max_rel": r} for k, (a, r) in rows.items()},
        "autocast_vs_fp32_max": {
            "logits": {"max_abs": max(rows[k][0] for k in ("start_logits", "end_logits")),
                       "max_rel": max(rows[k][1] for k in ("start_logits", "end_logits"))},
            "loss": {"max_abs": rows["loss"][0], "max_rel": rows["loss"][1]},
            "grads": {"max_abs": max(rows[k][0] for k in rows if k.startswith("grad.")),
                      "max_rel": max(rows[k][1] for k in grads)},
            "hidden_states": {"max_abs": max(rows[k][0] for k in rows if k.startswith("hidden_states.")),
                              "max_rel": max(rows[k][1] for k in rows if k.startswith("hidden_states."))},
        },
        "grads_zero_in_exact_arithmetic": {k: {"fp32_max_abs": fp32[k].abs().max().item(), "autocast_max_abs": bf16[k].abs().max().item()}
                                           for k in zero},
    }
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(summary, f, indent=2)
        f.write("\n")
    m = summary["autocast_vs_fp32_max"]
    print(f"loss fp32 {fp32['loss'].item():.6f} autocast {bf16['loss'].item():.6f}")
    for k, v in m.items():
        print(f"{k}: max_abs {v['max_abs']:.3e} max_rel {v['max_rel']:.3e}")
    print("zero in exact arithmetic:", zero)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--check":
        OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "bert_tiny")
        check_folder(sys.argv[2])
    else:
        main()

#!/usr/bin/env python3
"""Golden data for deepshock's 4-bit floating-point formats (include/deepshock/core/numeric.hpp
fp4_e2m1 / fp8_e8m0, include/deepshock/quant/fp4.hpp and fp4_import.hpp).

Each value below is produced by the package that defines or ships the format; the script only calls
those packages and writes down what they produced:

  file                   what                                       package (version used)
  fp4_scalars.txt        every E2M1 and E8M0 encoding as fp32, and  ml_dtypes 0.7.0 (float4_e2m1fn,
                         float -> E2M1 casts of ties, saturation,     float8_e8m0fnu)
                         subnormal-range inputs
  fp4_mxfp4_ct.txt       MXFP4 quantization (compressed-tensors'    compressed-tensors 0.20.1:
                         scale rule): codes, E8M0 scales, and the     calculate_qparams (MXFP4A16 preset),
                         package's dequantized weight                 MXFP4PackedCompressor.compress /
                                                                      .decompress
  fp4_mxfp4_ocp.txt      MXFP4 by the OCP MX v1.0 rule              numpy + ml_dtypes (the rule
                         (floor(log2 amax) - 2, codes cast to E2M1)   written out: OCP's own code is not
                                                                      on PyPI)
  fp4_gpt_oss.txt        gpt-oss `.blocks` / `.scales` with random  transformers 5.25.0:
                         bytes (extreme scales included) and their    integrations.mxfp4.
                         bf16 dequantization                          convert_moe_packed_tensors
  gpt_oss_mlp.txt        one gpt-oss MoE block (router + experts) on  transformers 5.25.0:
                         random MXFP4 tensors in the checkpoint's     models.gpt_oss GptOssMLP (fp32),
                         layout (gate/up rows interleaved), bf16      its router's top-4 ids and weights
                         biases and tokens; its output y              and its output
  fp8_block.txt          every E4M3 encoding as fp32; the FP8       ml_dtypes 0.7.0 (float8_e4m3fn,
                         128 x 128 block recipe (s = amax / 448,      its cast after a clamp to ±448:
                         codes e4m3(w / s)) and the bf16 dequant      it does not saturate), torch's
                         x.float() * s of DeepSeek's reference        bf16 cast for the dequant
  fp4_nvfp4_ct.txt       NVFP4 quantization: global scale, E4M3     compressed-tensors 0.20.1:
                         block scales (an all-zero block included),   generate_gparam, calculate_qparams
                         packed codes, the bf16 dequantization        (NVFP4A16 preset), NVFP4Packed-
                                                                      Compressor.compress / .decompress

How to rerun (from the repository root; no GPU needed), with the venv of tools/quant_golden.py:
  /tmp/qenv/bin/pip install ml_dtypes==0.7.0
  /tmp/qenv/bin/python tools/fp4_golden.py [--out DIR]     (default tests/quant/golden)
The run is deterministic (fixed seeds, CPU only).

File format: as tools/quant_golden.py ('meta', 'tensor <name> <dtype> <d0> <d1>', 'end'), with the
dtypes  u8 (2 hex digits per value), f32 (8 hex digits: the IEEE binary32 bits), bf16 (4 hex digits).
Orientation: the package's own ([n][k/2] packed bytes, [n][k/group] scales, [n][k] weights) unless
the tensor's comment line says otherwise.
"""

import argparse
import os

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import ml_dtypes
import numpy as np
import torch
import compressed_tensors
import transformers
from compressed_tensors.compressors.mxfp4.base import MXFP4PackedCompressor
from compressed_tensors.compressors.nvfp4.base import NVFP4PackedCompressor
from compressed_tensors.quantization import QuantizationScheme
from compressed_tensors.quantization.quant_scheme import MXFP4A16, NVFP4A16
from compressed_tensors.quantization.utils.helpers import calculate_qparams, generate_gparam
from transformers.integrations.mxfp4 import convert_moe_packed_tensors

VERSIONS = (f"ml_dtypes {ml_dtypes.__version__}, compressed-tensors {compressed_tensors.__version__}, "
            f"transformers {transformers.__version__}, torch {torch.__version__}, numpy {np.__version__}")

PARSER = argparse.ArgumentParser()
PARSER.add_argument("--out", default=os.path.join("tests", "quant", "golden"))
ARGS = PARSER.parse_args()


def fmt(name, a, dtype):
    a = np.ascontiguousarray(a)
    assert a.ndim == 2, name
    d0, d1 = a.shape
    lines = [f"tensor {name} {dtype} {d0} {d1}"]
    if dtype == "u8":
        assert a.dtype == np.uint8, (name, a.dtype)
        vals = [f"{v:02x}" for v in a.reshape(-1).tolist()]
    elif dtype == "f32":
        assert a.dtype == np.float32, (name, a.dtype)
        vals = [f"{v:08x}" for v in a.view(np.uint32).reshape(-1).tolist()]
    elif dtype == "bf16":
        assert a.dtype == np.uint16, (name, a.dtype)
        vals = [f"{v:04x}" for v in a.reshape(-1).tolist()]
    else:
        raise ValueError(dtype)
    for i in range(0, len(vals), 16):
        lines.append(" ".join(vals[i:i + 16]))
    return lines


def bf16_bits(t):
    assert t.dtype == torch.bfloat16
    return (t.contiguous().view(torch.int16).to(torch.int32) & 0xFFFF).numpy().astype(np.uint16)


def write(fname, description, meta, tensors):
    header = [f"# {fname} -- written by tools/fp4_golden.py ({VERSIONS}); do not edit.",
              *[f"# {line}" for line in description],
              "# Format: 'meta <key> <value>'; 'tensor <name> <dtype> <d0> <d1>' then d0*d1 values, row-major:",
              "#   u8 two hex digits; f32 / bf16 the raw bits in hex. 'end' closes the file."]
    body = [f"meta {k} {v}" for k, v in meta.items()]
    for name, a, dtype in tensors:
        body += fmt(name, a, dtype)
    body.append("end")
    path = os.path.join(ARGS.out, fname)
    with open(path, "w", newline="\n") as f:
        f.write("\n".join(header + body) + "\n")
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


def test_weight(seed, n, k):
    """Rows of very different magnitudes (scales across many binades) and a few special blocks."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(n, k, generator=g)
    w *= torch.pow(2.0, torch.arange(n, dtype=torch.float32).reshape(n, 1) * 3.0 - 12.0)
    w[0, :32] = 0.0                              # an all-zero block (32 covers an NVFP4 pair too)
    w[1, 5] = 6.0 * 2.0 ** -4                    # exact block maxima at a power of two times 6,
    w[1, 40] = 7.0 * 2.0 ** -2                   # 7 and 7.5 (the rules differ there)
    w[2, 70] = -7.5 * 2.0 ** 3
    return w


# ---- scalars ----------------------------------------------------------------------------------
def scalars():
    e2m1 = np.arange(16, dtype=np.uint8).view(ml_dtypes.float4_e2m1fn).astype(np.float32).reshape(1, 16)
    e8m0 = np.arange(255, dtype=np.uint8).view(ml_dtypes.float8_e8m0fnu).astype(np.float32).reshape(1, 255)
    inputs = [0.0, -0.0, 0.25, 0.2500001, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, 5.0001, 6.0, 7.0, 1e30, -1e30, np.inf,
              -np.inf, -0.25, -0.7499999, -2.4999, 4.999, 1e-30, 3.0, -3.0, 0.5, 1.5, 0.74, 2.6, 4.2, 5.9, -5.1, 1.2]
    x = np.array(inputs, dtype=np.float32).reshape(1, -1)
    cast = x.astype(ml_dtypes.float4_e2m1fn).view(np.uint8)
    write("fp4_scalars.txt",
          ["ml_dtypes' own conversions: e2m1 / e8m0 every encoding -> fp32 (e8m0 0..254; 255 is NaN),",
           "and fp32 inputs -> e2m1 codes (round to nearest even, saturating)."],
          {"source": "ml_dtypes"},
          [("e2m1_values", e2m1, "f32"), ("e8m0_values", e8m0, "f32"), ("cast_inputs", x, "f32"), ("cast_codes", cast, "u8")])


# ---- MXFP4, compressed-tensors -----------------------------------------------------------------
def mxfp4_ct():
    n, k = 8, 96
    w = test_weight(11, n, k)
    args = QuantizationScheme(targets=["Linear"], **MXFP4A16).weights
    gw = w.reshape(n, k // 32, 32)
    amax = gw.abs().amax(dim=2)
    scale, zp = calculate_qparams(-amax, amax, args)            # float scales 2^e, [n, k/32]
    sd = MXFP4PackedCompressor.compress({"weight": w, "weight_scale": scale, "weight_zero_point": zp},
                                        QuantizationScheme(targets=["Linear"], **MXFP4A16))
    packed = sd["weight_packed"].numpy()
    scale_bits = sd["weight_scale"].numpy().astype(np.uint8)
    back = MXFP4PackedCompressor.decompress({"weight_packed": sd["weight_packed"], "weight_scale": sd["weight_scale"]},
                                            QuantizationScheme(targets=["Linear"], **MXFP4A16))
    deq = back["weight"]
    write("fp4_mxfp4_ct.txt",
          ["compressed-tensors MXFP4A16: calculate_qparams on the block amax, MXFP4PackedCompressor.compress",
           "(weight_packed [n][k/2], weight_scale E8M0 [n][k/32]) and .decompress (weight, bf16 [n][k]).",
           "weight: the fp32 input [n][k]."],
          {"source": "compressed-tensors", "n": n, "k": k, "rule": "round_up"},
          [("weight", w.numpy(), "f32"), ("packed", packed, "u8"), ("scale", scale_bits, "u8"), ("dequant", bf16_bits(deq), "bf16")])


# ---- MXFP4, the OCP rule written out with numpy + ml_dtypes --------------------------------------
def mxfp4_ocp():
    n, k = 8, 96
    w = test_weight(12, n, k).numpy()
    blocks = w.reshape(n, k // 32, 32)
    amax = np.abs(blocks).max(axis=2)
    with np.errstate(divide="ignore"):
        e = np.where(amax > 0, np.floor(np.log2(amax.astype(np.float64))) - 2, -127).astype(np.int64)
    e = np.clip(e, -127, 127)
    scale_bits = (e + 127).astype(np.uint8)
    x = blocks / np.ldexp(np.float32(1), e)[:, :, None].astype(np.float32)
    codes = x.astype(np.float32).astype(ml_dtypes.float4_e2m1fn).view(np.uint8).reshape(n, k)
    packed = (codes[:, 0::2] | (codes[:, 1::2] << 4)).astype(np.uint8)
    write("fp4_mxfp4_ocp.txt",
          ["The OCP MX v1.0 scale rule, s = floor(log2 amax) - 2 (2^-127 for a zero block), codes =",
           "ml_dtypes float4_e2m1fn(w / 2^s); packed as gpt-oss and compressed-tensors do (value 2j low nibble)."],
          {"source": "ml_dtypes", "n": n, "k": k, "rule": "ocp"},
          [("weight", w, "f32"), ("packed", packed, "u8"), ("scale", scale_bits, "u8")])


# ---- gpt-oss -------------------------------------------------------------------------------------
def gpt_oss():
    e, n, k = 2, 8, 64
    g = torch.Generator().manual_seed(13)
    blocks = torch.randint(0, 256, (e, n, k // 32, 16), generator=g, dtype=torch.int32).to(torch.uint8)
    scales = torch.randint(100, 150, (e, n, k // 32), generator=g, dtype=torch.int32).to(torch.uint8)
    # Extreme exponents: the smallest scales (bf16 subnormal results), the largest that stay finite.
    scales[0, 0, 0], scales[0, 0, 1], scales[0, 1, 0], scales[0, 1, 1] = 0, 1, 254, 252
    scales[1, 2, 0], scales[1, 2, 1], scales[1, 3, 0] = 2, 6, 253
    out = convert_moe_packed_tensors(blocks, scales, dtype=torch.bfloat16)   # [e, k, n]
    deq = out.transpose(1, 2).contiguous().reshape(e * n, k)
    write("fp4_gpt_oss.txt",
          ["gpt-oss MXFP4 tensors with random bytes: blocks [e][n][k/32][16] written as [e*n][k/2], scales",
           "[e][n][k/32] as [e*n][k/32]; dequant: transformers' convert_moe_packed_tensors (bf16), transposed",
           "back from its [e][k][n] to [e*n][k]."],
          {"source": "transformers", "experts": e, "n": n, "k": k},
          [("blocks", blocks.reshape(e * n, k // 2).numpy(), "u8"), ("scales", scales.reshape(e * n, k // 32).numpy(), "u8"),
           ("dequant", bf16_bits(deq), "bf16")])


def gpt_oss_mlp():
    """A whole gpt-oss MoE block as transformers runs it: the checkpoint tensors, and the output."""
    from transformers import GptOssConfig
    from transformers.models.gpt_oss.modeling_gpt_oss import GptOssMLP
    e, h, i, k, t = 8, 64, 32, 4, 6
    cfg = GptOssConfig(hidden_size=h, intermediate_size=i, num_local_experts=e, num_experts_per_tok=k)
    g = torch.Generator().manual_seed(17)

    def mx(rows, cols):
        blocks = torch.randint(0, 256, (e, rows, cols // 32, 16), generator=g, dtype=torch.int32).to(torch.uint8)
        scales = torch.randint(122, 127, (e, rows, cols // 32), generator=g, dtype=torch.int32).to(torch.uint8)
        return blocks, scales

    def bf16_uniform(shape, a):
        return ((torch.rand(shape, generator=g) * 2 - 1) * a).to(torch.bfloat16)

    gu_blocks, gu_scales = mx(2 * i, h)
    dn_blocks, dn_scales = mx(h, i)
    gu_bias = bf16_uniform((e, 2 * i), 3.0)           # gate / up beyond +-7 for some tokens: the clamps act
    dn_bias = bf16_uniform((e, h), 1.0)
    router_w = bf16_uniform((e, h), 0.5)
    router_b = bf16_uniform((e,), 0.5)
    x = bf16_uniform((t, h), 1.0)
    mlp = GptOssMLP(cfg).float().eval()
    with torch.no_grad():
        mlp.router.weight.copy_(router_w.float())
        mlp.router.bias.copy_(router_b.float())
        mlp.experts.gate_up_proj.copy_(convert_moe_packed_tensors(gu_blocks, gu_scales, dtype=torch.float32))  # [e, h, 2i]
        mlp.experts.gate_up_proj_bias.copy_(gu_bias.float())
        mlp.experts.down_proj.copy_(convert_moe_packed_tensors(dn_blocks, dn_scales, dtype=torch.float32))     # [e, i, h]
        mlp.experts.down_proj_bias.copy_(dn_bias.float())
        _, scores, ids = mlp.router(x.float())
        y, _ = mlp(x.float().reshape(1, t, h))
    write("gpt_oss_mlp.txt",
          ["One gpt-oss MoE block (GptOssMLP, fp32) on random checkpoint tensors: MXFP4 blocks [e][rows][cols/32][16]",
           "written as [e*rows][cols/2], scales [e][rows][cols/32] as [e*rows][cols/32], gate_up rows interleaved",
           "(gate 2j, up 2j + 1); bf16 biases, router weight [e][h] and bias, tokens x [t][h]; the router's top-k ids",
           "(u8) and softmax weights [t][k] in rank order, and the block's output y [t][h]."],
          {"source": "transformers", "experts": e, "hidden": h, "intermediate": i, "topk": k, "tokens": t},
          [("gate_up_blocks", gu_blocks.reshape(e * 2 * i, h // 2).numpy(), "u8"),
           ("gate_up_scales", gu_scales.reshape(e * 2 * i, h // 32).numpy(), "u8"),
           ("gate_up_bias", bf16_bits(gu_bias), "bf16"),
           ("down_blocks", dn_blocks.reshape(e * h, i // 2).numpy(), "u8"),
           ("down_scales", dn_scales.reshape(e * h, i // 32).numpy(), "u8"),
           ("down_bias", bf16_bits(dn_bias), "bf16"),
           ("router_weight", bf16_bits(router_w), "bf16"), ("router_bias", bf16_bits(router_b.reshape(1, e)), "bf16"),
           ("x", bf16_bits(x), "bf16"), ("ids", ids.numpy().astype(np.uint8), "u8"),
           ("weights", scores.float().numpy(), "f32"), ("y", y.reshape(t, h).float().numpy(), "f32")])


# ---- NVFP4, compressed-tensors -------------------------------------------------------------------
def nvfp4_ct():
    n, k = 8, 96
    w = test_weight(14, n, k) * 1e-3
    scheme = QuantizationScheme(targets=["Linear"], **NVFP4A16)
    args = scheme.weights
    amax_t = w.abs().amax()
    gs = generate_gparam(-amax_t.reshape(1), amax_t.reshape(1))
    gw = w.reshape(n, k // 16, 16)
    amax = gw.abs().amax(dim=2)
    scale, zp = calculate_qparams(-amax, amax, args, global_scale=gs)
    sd = NVFP4PackedCompressor.compress({"weight": w, "weight_scale": scale, "weight_global_scale": gs,
                                         "weight_zero_point": zp}, scheme)
    packed = sd["weight_packed"].numpy()
    scale_bits = sd["weight_scale"].view(torch.uint8).numpy()
    back = NVFP4PackedCompressor.decompress({"weight_packed": sd["weight_packed"], "weight_scale": sd["weight_scale"],
                                             "weight_global_scale": gs}, scheme)
    write("fp4_nvfp4_ct.txt",
          ["compressed-tensors NVFP4A16: generate_gparam (weight_global_scale = 2688 / amax), calculate_qparams",
           "with it (weight_scale E4M3 [n][k/16]), NVFP4PackedCompressor.compress (weight_packed [n][k/2]) and",
           ".decompress (weight, bf16 [n][k]). Row 0 starts with all-zero blocks."],
          {"source": "compressed-tensors", "n": n, "k": k},
          [("weight", w.numpy(), "f32"), ("global_scale", gs.numpy().reshape(1, 1).astype(np.float32), "f32"),
           ("packed", packed, "u8"), ("scale", scale_bits, "u8"), ("dequant", bf16_bits(back["weight"]), "bf16")])


# ---- FP8 E4M3 with 128 x 128 block scales (DeepSeek-V3 recipe) ---------------------------------
def fp8_block():
    e4m3 = np.arange(256, dtype=np.uint8).view(ml_dtypes.float8_e4m3fn).astype(np.float32).reshape(1, 256)
    n, k = 129, 130                                   # partial last blocks in both directions
    gen = torch.Generator().manual_seed(15)
    w = torch.randn(n, k, generator=gen) * torch.pow(2.0, (torch.arange(n, dtype=torch.float32) % 8).reshape(n, 1) * 2.0 - 10.0)
    w = w.to(torch.bfloat16)                          # bf16 inputs: a smaller file
    w = w.to(torch.float32).numpy()
    w[128:, 128:] = 0.0                               # an all-zero (partial) block
    nb, kb = -(-n // 128), -(-k // 128)
    scale = np.zeros((nb, kb), dtype=np.float32)
    codes = np.zeros((n, k), dtype=np.uint8)
    for i in range(nb):
        for j in range(kb):
            blk = w[128 * i:128 * i + 128, 128 * j:128 * j + 128]
            s = np.float32(np.abs(blk).max()) / np.float32(448.0)
            scale[i, j] = s
            if s > 0:
                x = np.clip(blk / s, -448.0, 448.0).astype(np.float32)   # ml_dtypes' cast does not saturate
                codes[128 * i:128 * i + 128, 128 * j:128 * j + 128] = x.astype(ml_dtypes.float8_e4m3fn).view(np.uint8)
    q = torch.from_numpy(codes.view(ml_dtypes.float8_e4m3fn).astype(np.float32))
    s_full = torch.from_numpy(np.repeat(np.repeat(scale, 128, axis=0), 128, axis=1)[:n, :k])
    deq = (q * s_full).to(torch.bfloat16)             # DeepSeek's weight_dequant: x.float() * s, stored in bf16
    write("fp8_block.txt",
          ["FP8 E4M3 (float8_e4m3fn): every encoding -> fp32 (ml_dtypes); a [n][k] fp32 weight quantized by the",
           "DeepSeek-V3 recipe (per 128 x 128 block s = amax / 448 in fp32, codes = e4m3(clamp(w / s, +-448)), RNE),",
           "its scales [ceil(n/128)][ceil(k/128)] (weight_scale_inv) and the bf16 dequantization q.float() * s."],
          {"source": "ml_dtypes", "n": n, "k": k},
          [("e4m3_values", e4m3, "f32"), ("weight", bf16_bits(torch.from_numpy(w).to(torch.bfloat16)), "bf16"), ("codes", codes, "u8"),
           ("scale", scale, "f32"),
           ("dequant", bf16_bits(deq), "bf16")])


os.makedirs(ARGS.out, exist_ok=True)
torch.manual_seed(0)
scalars()
mxfp4_ct()
mxfp4_ocp()
gpt_oss()
gpt_oss_mlp()
nvfp4_ct()
fp8_block()

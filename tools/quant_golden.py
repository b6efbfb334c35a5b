#!/usr/bin/env python3
"""Golden data for deepshock's 4-bit checkpoint importers (include/deepshock/quant/import.hpp).

Each case quantizes a small random weight matrix with the code of the package that defines the
checkpoint format, packs it with that package's own packing code, and dequantizes the packed
tensors with that package's own dequantization code. Nothing here re-implements a format: the
script only calls the packages and writes down what they produced.

  format                           package (version the committed files were written with)
  GPTQ v1 / v2 (qweight, qzeros,   gptqmodel 7.7.0 (sdist, imported from its source tree):
    scales, g_idx)                   quantization/quantizer.py Quantizer.find_params + quantize,
                                     nn_modules/qlinear/__init__.py PackableQuantLinear.pack_original
                                     and .pack_block (both run, must agree), .dequantize_weight,
                                     utils/model.py convert_gptq_v2_to_v1_format_module (v1 qzeros)
                                     and convert_gptq_v1_to_v2_format_module (round trip check)
  AWQ GEMM (qweight, qzeros,       gptqmodel 7.7.0: looper/awq_processor.py
    scales)                          AWQProcessor.pseudo_quantize_tensor, nn_modules/qlinear/
                                     torch_awq.py AwqTorchLinear.pack and gemm_awq.py
                                     AwqGEMMLinear.pack (both run, must agree), quantization/awq/utils/
                                     packing_utils.py unpack_awq + reverse_awq_order + dequantize_gemm
  compressed-tensors               compressed-tensors 0.20.1: quantization/utils/helpers.py
    pack-quantized                   calculate_qparams, compressors/pack_quantized/base.py
                                     PackedQuantizationCompressor.compress / .decompress,
                                     compressors/pack_quantized/helpers.py unpack_from_int32
  run with torch 2.15.0, transformers 5.25.0, numpy 2.4.6, Python 3.11.

How to rerun (from the repository root; the packages need no GPU):
  python3 -m venv /tmp/qenv
  /tmp/qenv/bin/pip install torch==2.15.0 transformers compressed-tensors==0.20.1 \
      pypcre logbar threadpoolctl device-smi accelerate defuser tokenicer pillow requests
  pip download --no-deps --no-binary :all: gptqmodel==7.7.0 && tar xzf gptqmodel-7.7.0.tar.gz
  /tmp/qenv/bin/python tools/quant_golden.py --gptqmodel-src ./gptqmodel-7.7.0 [--out DIR]
The output goes to tests/quant/golden/ unless --out says otherwise. The run is deterministic
(fixed seeds, CPU only): rerunning with the same versions rewrites the same bytes.

File format (plain text, read by tests/quant/test_quant_import.cpp):
  # ...                            comment line (the header)
  meta <key> <value>               one fact about the case (source, n, k, group, scale_dtype, sym)
  tensor <name> <dtype> <d0> <d1>  followed by d0*d1 values, row-major, whitespace-separated:
      i32   decimal int32 (as the package stored it, so negative when bit 31 is set)
      f16   IEEE binary16, 4 hex digits of the raw bits
      bf16  bfloat16, 4 hex digits of the raw bits
      u4    unsigned 4-bit values, one hex digit each, written as one run of d1 digits per row
  end                              last line
Shapes use the package's own orientation for packed tensors; every file also holds, in
deepshock's orientation ([n][k] for codes and weights, [k/group][n] for zeros):
  codes    u4 [n][k]       the stored 4-bit values as the package's own unpacking reads them
  zeros    u4 [k/group][n] the zero points (GPTQ: in the v2 sense) as the package reads them;
                           symmetric compressed-tensors has none and the file has none
  dequant  f16/bf16 [n][k] the package's own dequantized weight
"""

import argparse
import os
import sys
import types

os.environ.setdefault("GPTQMODEL_DISABLE_PACK_EXT", "1")  # the pure-Python packing path, no JIT build
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
K = 256  # input features of every case


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--gptqmodel-src", default="/tmp/wheels/gptqmodel-7.7.0",
                   help="folder holding the extracted gptqmodel 7.7.0 sdist (its gptqmodel/ package)")
    p.add_argument("--out", default=os.path.join(REPO, "tests", "quant", "golden"))
    return p.parse_args()


ARGS = parse_args()
sys.path.insert(0, ARGS.gptqmodel_src)

import torch  # noqa: E402

import compressed_tensors  # noqa: E402
import gptqmodel  # noqa: E402
from compressed_tensors.compressors.pack_quantized.base import PackedQuantizationCompressor  # noqa: E402
from compressed_tensors.compressors.pack_quantized.helpers import unpack_from_int32  # noqa: E402
from compressed_tensors.quantization import QuantizationArgs, QuantizationScheme  # noqa: E402
from compressed_tensors.quantization.utils import calculate_qparams  # noqa: E402
from gptqmodel.looper.awq_processor import AWQProcessor  # noqa: E402
from gptqmodel.nn_modules.qlinear import PackableQuantLinear  # noqa: E402
from gptqmodel.nn_modules.qlinear.gemm_awq import AwqGEMMLinear  # noqa: E402
from gptqmodel.nn_modules.qlinear.torch import TorchLinear  # noqa: E402
from gptqmodel.nn_modules.qlinear.torch_awq import AwqTorchLinear  # noqa: E402
from gptqmodel.quantization.awq.utils.packing_utils import (  # noqa: E402
    dequantize_gemm,
    reverse_awq_order,
    unpack_awq,
)
from gptqmodel.quantization.config import QuantizeConfig  # noqa: E402
from gptqmodel.quantization.quantizer import Quantizer  # noqa: E402
from gptqmodel.quantization.quantizer import quantize as gptq_quantize  # noqa: E402
from gptqmodel.utils.model import (  # noqa: E402
    convert_gptq_v1_to_v2_format_module,
    convert_gptq_v2_to_v1_format_module,
)

VERSIONS = (f"torch {torch.__version__}, gptqmodel {gptqmodel.__version__}, "
            f"compressed-tensors {compressed_tensors.__version__}")
DTYPE_NAME = {torch.float16: "f16", torch.bfloat16: "bf16"}


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------

def fmt_tensor(name, t, dtype):
    t = t.detach().cpu().contiguous()
    assert t.dim() == 2, name
    d0, d1 = t.shape
    lines = [f"tensor {name} {dtype} {d0} {d1}"]
    if dtype == "i32":
        assert t.dtype == torch.int32, (name, t.dtype)
        rows = t.tolist()
        for r in rows:
            for i in range(0, d1, 16):
                lines.append(" ".join(str(v) for v in r[i:i + 16]))
    elif dtype in ("f16", "bf16"):
        assert DTYPE_NAME[t.dtype] == dtype, (name, t.dtype)
        bits = (t.view(torch.int16).to(torch.int32) & 0xFFFF).tolist()
        for r in bits:
            for i in range(0, d1, 16):
                lines.append(" ".join(f"{v:04x}" for v in r[i:i + 16]))
    elif dtype == "u4":
        assert int(t.min()) >= 0 and int(t.max()) <= 15, name
        for r in t.tolist():
            lines.append("".join(f"{v:x}" for v in r))
    else:
        raise ValueError(dtype)
    return lines


def write_case(fname, description, meta, tensors):
    header = [
        f"# {fname} -- written by tools/quant_golden.py ({VERSIONS}); do not edit.",
        *[f"# {line}" for line in description],
        "# Format: 'meta <key> <value>'; 'tensor <name> <dtype> <d0> <d1>' then d0*d1 values, row-major:",
        "#   i32 decimal; f16/bf16 raw bits as 4 hex digits; u4 one hex digit per value, one run per row.",
        "# codes u4 [n][k] and zeros u4 [k/group][n]: the package's own unpacking of the stored values;",
        "# dequant [n][k]: the package's own dequantized weight. 'end' closes the file.",
    ]
    body = [f"meta {k} {v}" for k, v in meta.items()]
    for name, t, dtype in tensors:
        body += fmt_tensor(name, t, dtype)
    body.append("end")
    path = os.path.join(ARGS.out, fname)
    with open(path, "w", newline="\n") as f:
        f.write("\n".join(header + body) + "\n")
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


def random_weight(seed, n, dtype, special_rows=False):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(n, K, generator=g) * 0.05
    if special_rows:
        # Zero points at both ends: row 0 is all positive (zero 0 in every group), row 1 all
        # negative (zero 15), rows 2..3 all positive again so that a zero-0 nibble sits below
        # other nibbles of the same packed word (GPTQ v1's whole-word '- 0x11111111' borrows).
        w[0] = w[0].abs() + 0.01
        w[1] = -w[1].abs() - 0.01
        w[2:4] = w[2:4].abs() + 0.01
    return w.to(dtype)


# ---------------------------------------------------------------------------------------------
# GPTQ (gptqmodel)
# ---------------------------------------------------------------------------------------------

def gptq_codes_and_zeros(module, n, groups):
    """The stored values as gptqmodel's own dequantization reads them: dequantize once with unit
    scales and zero qzeros (gives the codes), once with zero qweight (gives -zeros)."""
    saved = (module.qweight.clone(), module.qzeros.clone(), module.scales.clone())
    module.scales = torch.ones_like(saved[2])
    module.qzeros = torch.zeros_like(saved[1])
    codes = PackableQuantLinear.dequantize_weight(module)  # [k][n]
    module.qweight = torch.zeros_like(saved[0])
    module.qzeros = saved[1].clone()
    neg_zero = PackableQuantLinear.dequantize_weight(module)  # [k][n] = -zero[g_idx[k]][n]
    module.qweight, module.qzeros, module.scales = saved
    zeros = (-neg_zero.float()).to(torch.int32)[::module.group_size]  # one row per group
    assert zeros.shape == (groups, n)
    return codes.float().to(torch.int32).t().contiguous(), zeros.contiguous()


def gptq_case(fname, seed, n, group, sym, special_rows):
    dtype = torch.float16
    w = random_weight(seed, n, dtype, special_rows)
    groups = K // group
    qcfg = QuantizeConfig(bits=4, group_size=group, sym=sym, desc_act=False)

    # Scales and zeros per group with gptqmodel's quantizer (min/max, no MSE search), and the
    # weight replaced by its quantized value, as the GPTQ loop leaves the layer before packing.
    quantizer = Quantizer(qcfg)
    quantizer.configure(perchannel=True)
    scales, zeros, wq = [], [], torch.empty(n, K, dtype=torch.float32)
    for gi in range(groups):
        cols = slice(gi * group, (gi + 1) * group)
        quantizer.find_params(w[:, cols].float(), weight=True)
        s, z = quantizer.scale.reshape(n, 1), quantizer.zero.reshape(n, 1)
        wq[:, cols] = gptq_quantize(w[:, cols].float(), s, z, quantizer.maxq, False)
        scales.append(s)
        zeros.append(z)
    scales = torch.cat(scales, dim=1)  # [n][groups], as the GPTQ loop hands them to pack()
    zeros = torch.cat(zeros, dim=1)
    linear = torch.nn.Linear(K, n, bias=False, dtype=dtype)
    linear.weight.data = wq.to(dtype)
    g_idx = torch.tensor([k // group for k in range(K)], dtype=torch.int32)

    def new_module():
        return TorchLinear(bits=4, group_size=group, sym=sym, desc_act=False, in_features=K,
                           out_features=n, bias=False, pack_dtype=torch.int32, register_buffers=True)

    module = new_module()
    module.pack_original(linear, scales.clone(), zeros.clone(), g_idx.clone())
    if n % 32 == 0:  # pack_block needs out_features % 32 == 0; it must write the same words
        other = new_module()
        other.pack_block(linear, scales.clone(), zeros.clone(), g_idx.clone())
        assert torch.equal(other.qweight, module.qweight) and torch.equal(other.qzeros, module.qzeros)

    # Freshly packed words hold the zeros as they are: the v2 convention.
    qzeros_v2 = module.qzeros.clone()
    deq = PackableQuantLinear.dequantize_weight(module)  # [k][n] in the scales' dtype
    deq_torch = TorchLinear.dequantize_weight(module)  # the TorchLinear path (not compiled here)
    assert torch.equal(deq.view(torch.int16), deq_torch.view(torch.int16))
    codes, zeros_read = gptq_codes_and_zeros(module, n, groups)

    # What gptqmodel writes for format "gptq" (v1), and back.
    convert_gptq_v2_to_v1_format_module(module, quantize_config=QuantizeConfig(bits=4))
    qzeros_v1 = module.qzeros.clone()
    convert_gptq_v1_to_v2_format_module(module, bits=4, pack_dtype=torch.int32)
    assert torch.equal(module.qzeros, qzeros_v2)

    assert module.scales.dtype == torch.float16 and deq.dtype == torch.float16
    if sym:
        assert bool((zeros_read == 8).all())
    else:
        assert int(zeros_read.min()) == 0 and int(zeros_read.max()) == 15  # both ends covered
    kind = "symmetric" if sym else "asymmetric"
    write_case(
        fname,
        [f"GPTQ {kind} int4, group {group}, fp16 scales (gptqmodel packs scales as fp16 only).",
         "qweight int32 [k/8][n], g_idx int32 [1][k], scales [k/group][n], qzeros int32 [k/group][n/8]",
         "twice: qzeros_v2 as packed (format gptq_v2), qzeros_v1 after gptqmodel's v2->v1 conversion",
         "(format gptq, what a v1 checkpoint holds). dequant: PackableQuantLinear.dequantize_weight,",
         "transposed from [k][n] to [n][k]; codes and zeros: the same function run with unit scales",
         "and zero qzeros (codes), and with zero qweight (minus the zeros)."],
        {"source": "gptq", "n": n, "k": K, "group": group, "scale_dtype": "f16", "sym": int(sym)},
        [("qweight", module.qweight, "i32"), ("qzeros_v1", qzeros_v1, "i32"),
         ("qzeros_v2", qzeros_v2, "i32"), ("scales", module.scales, "f16"),
         ("g_idx", module.g_idx.to(torch.int32).reshape(1, K), "i32"),
         ("codes", codes, "u4"), ("zeros", zeros_read, "u4"),
         ("dequant", deq.t(), "f16")])


# ---------------------------------------------------------------------------------------------
# AWQ GEMM (gptqmodel)
# ---------------------------------------------------------------------------------------------

def awq_case(fname, seed, n, group, dtype, special_rows):
    w = random_weight(seed, n, dtype, special_rows)
    qcfg = QuantizeConfig(bits=4, group_size=group, sym=False, desc_act=False)
    # AWQProcessor.pseudo_quantize_tensor only reads self.qcfg.
    wq, scales, zeros = AWQProcessor.pseudo_quantize_tensor(types.SimpleNamespace(qcfg=qcfg), w)
    assert scales.dtype == dtype
    linear = torch.nn.Linear(K, n, bias=False, dtype=dtype)
    linear.weight.data = wq  # the AWQ flow packs the pseudo-quantized weight
    # AwqTorchLinear is the CPU-capable class of the GEMM format (AwqGEMMLinear refuses to be built
    # without CUDA); its pack() goes through packing_utils.pack_awq. AwqGEMMLinear.pack, run on the
    # same object, must write the same words.
    module = AwqTorchLinear(bits=4, group_size=group, sym=False, desc_act=False, in_features=K,
                            out_features=n, bias=False, pack_dtype=torch.int32)
    module.pack(linear, scales, zeros)
    qweight, qzeros = module.qweight.clone(), module.qzeros.clone()
    AwqGEMMLinear.pack(module, linear, scales, zeros)
    assert torch.equal(qweight, module.qweight) and torch.equal(qzeros, module.qzeros)
    assert module.scales.dtype == dtype
    deq = dequantize_gemm(module.qweight, module.qzeros, module.scales, 4, group)  # [k][n]
    assert deq.dtype == dtype
    iw, iz = unpack_awq(module.qweight, module.qzeros, 4)
    iw, iz = reverse_awq_order(iw, iz, 4)
    codes = iw.t().contiguous().to(torch.int32)
    zeros_read = iz.to(torch.int32)
    # The pack does no clamping: check that every code was in range (else packing corrupts).
    assert torch.equal(zeros_read, zeros.t().to(torch.int32))
    ref = ((wq.t() + (zeros.t() * scales.t()).repeat_interleave(group, 0)) /
           scales.t().repeat_interleave(group, 0)).round()
    assert torch.equal(codes.t().float(), ref.float()), "AWQ code out of range"
    if special_rows:
        assert int(zeros_read.min()) == 0 and int(zeros_read.max()) == 15
    write_case(
        fname,
        [f"AWQ GEMM int4 (zero point), group {group}, {DTYPE_NAME[dtype]} scales.",
         "qweight int32 [k][n/8], qzeros int32 [k/group][n/8] (nibble order 0,2,4,6,1,3,5,7),",
         "scales [k/group][n]. dequant: packing_utils.dequantize_gemm, transposed to [n][k]."],
        {"source": "awq", "n": n, "k": K, "group": group, "scale_dtype": DTYPE_NAME[dtype], "sym": 0},
        [("qweight", module.qweight, "i32"), ("qzeros", module.qzeros, "i32"),
         ("scales", module.scales, DTYPE_NAME[dtype]),
         ("codes", codes, "u4"), ("zeros", zeros_read, "u4"),
         ("dequant", deq.t(), DTYPE_NAME[dtype])])


# ---------------------------------------------------------------------------------------------
# compressed-tensors pack-quantized
# ---------------------------------------------------------------------------------------------

def ct_case(fname, seed, n, group, dtype, sym, special_rows):
    w = random_weight(seed, n, dtype, special_rows)
    args = QuantizationArgs(num_bits=4, type="int", symmetric=sym, strategy="group", group_size=group)
    scheme = QuantizationScheme(targets=["Linear"], weights=args)
    wg = w.reshape(n, K // group, group)
    scale, zp = calculate_qparams(wg.amin(dim=-1), wg.amax(dim=-1), args)
    state = {"weight": w, "weight_scale": scale.to(dtype)}
    if not sym:
        state["weight_zero_point"] = zp
    packed = PackedQuantizationCompressor.compress(state, scheme)
    assert set(packed) == ({"weight_packed", "weight_scale", "weight_shape"} |
                           (set() if sym else {"weight_zero_point"})), set(packed)
    deq = PackedQuantizationCompressor.decompress(packed, scheme)["weight"]  # [n][k]
    assert deq.dtype == dtype and packed["weight_scale"].dtype == dtype
    codes = unpack_from_int32(packed["weight_packed"], 4, torch.Size((n, K))).to(torch.int32) + 8
    tensors = [("weight_packed", packed["weight_packed"], "i32"),
               ("weight_scale", packed["weight_scale"], DTYPE_NAME[dtype])]
    if not sym:
        zpk = packed["weight_zero_point"]
        zsigned = unpack_from_int32(zpk, 4, torch.Size((n, K // group)), packed_dim=0)
        zeros_read = zsigned.to(torch.int32).t().contiguous() + 8  # [k/group][n]
        if special_rows:
            assert int(zeros_read.min()) == 0 and int(zeros_read.max()) == 15
        tensors += [("weight_zero_point", zpk, "i32"), ("codes", codes, "u4"), ("zeros", zeros_read, "u4")]
    else:
        tensors += [("codes", codes, "u4")]
    tensors.append(("dequant", deq, DTYPE_NAME[dtype]))
    kind = "symmetric" if sym else "asymmetric (weight_zero_point)"
    write_case(
        fname,
        [f"compressed-tensors pack-quantized int4 {kind}, group {group}, {DTYPE_NAME[dtype]} scales.",
         "weight_packed int32 [n][k/8], weight_scale [n][k/group]"
         + ("." if sym else ", weight_zero_point int32 [n/8][k/group] (packed along n)."),
         "codes/zeros here are unsigned: the package's signed values plus 8.",
         "dequant: PackedQuantizationCompressor.decompress."],
        {"source": "compressed_tensors", "n": n, "k": K, "group": group,
         "scale_dtype": DTYPE_NAME[dtype], "sym": int(sym)},
        tensors)


def main():
    os.makedirs(ARGS.out, exist_ok=True)
    torch.set_num_threads(1)
    gptq_case("gptq_asym_g32.txt", seed=101, n=32, group=32, sym=False, special_rows=True)
    gptq_case("gptq_asym_g64.txt", seed=102, n=24, group=64, sym=False, special_rows=True)
    gptq_case("gptq_sym_g128.txt", seed=103, n=16, group=128, sym=True, special_rows=False)
    awq_case("awq_g128_f16.txt", seed=201, n=16, group=128, dtype=torch.float16, special_rows=True)
    awq_case("awq_g32_bf16.txt", seed=202, n=16, group=32, dtype=torch.bfloat16, special_rows=True)
    ct_case("ct_sym_g128_f16.txt", seed=301, n=16, group=128, dtype=torch.float16, sym=True, special_rows=False)
    ct_case("ct_sym_g64_bf16.txt", seed=302, n=16, group=64, dtype=torch.bfloat16, sym=True, special_rows=False)
    ct_case("ct_asym_g32_bf16.txt", seed=303, n=24, group=32, dtype=torch.bfloat16, sym=False, special_rows=True)
    ct_case("ct_asym_g128_f16.txt", seed=304, n=16, group=128, dtype=torch.float16, sym=False, special_rows=True)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Golden data for deepshock's PEFT LoRA importer (include/deepshock/lora/peft_import.hpp).

Each case builds a tiny SwiGLU MoE block in torch (CPU, fixed seeds), wraps it with PEFT's own
LoraConfig + get_peft_model, gives every lora_B random non-zero values (PEFT initialises B to 0,
which would make the adapter an identity and the test blind), saves the adapter with PEFT's own
save_pretrained, and runs the PEFT-wrapped block's forward on a fixed routing. Nothing here
re-implements LoRA: the expected outputs are what PEFT computes.

  case          experts as                           config
  linear/       per-expert nn.Linear modules          r=4, lora_alpha=8, rank_pattern {w2: 2,
                (Mixtral naming experts.{e}.w1/w3/w2)  shared down_proj: 8}, alpha_pattern
                plus a shared expert (gate_proj,       {up_proj: 16}: three ranks, two scalings
                up_proj, down_proj Linears)
  fused/        3-D parameters as transformers v5      r=4, lora_alpha=8, use_rslora, reached via
                stores them: gate_up_proj [E, 2I, H],  target_parameters (PEFT's ParamWrapper);
                down_proj [E, H, I]; shared expert     the shared expert's Linears via
                as in linear/                          target_modules

Each case folder holds PEFT's adapter_config.json and adapter_model.safetensors (float32, as
save_pretrained wrote them) and io.safetensors (written with the safetensors package):
  x         F32 [T, H]      the block's input (T = 5 tokens, H = 32)
  topk_ids  I32 [T, 2]      the fixed routing (E = 4 experts, k = 2)
  topk_w    F32 [T, 2]      its weights
  w1, w3    F32 [E, I, H]   the base experts' gate and up weights (I = 16)
  w2        F32 [E, H, I]   the base experts' down weights
  shared_w1, shared_w3 F32 [Is, H], shared_w2 F32 [H, Is]   the shared expert (Is = 24)
  y         F64 [T, H]      PEFT's output: sum_j w[t,j] expert_{id[t,j]}(x_t) + shared(x_t)
  y_base    F64 [T, H]      the same with the adapter disabled (model.disable_adapter())
The forward runs in float64 on the float32 weights (every float32 is a float64), so y is PEFT's
result without float32 rounding and the C++ test can compare at 1e-5 relative or tighter.

Written with: Python 3.11.7, torch 2.15.0, peft 0.21.2, safetensors 0.8.0 (transformers 5.25.0
and accelerate 1.16.0 installed as peft's dependencies; neither is used directly).

How to rerun (from the repository root; no GPU needed):
  python3 -m venv /tmp/peftenv
  /tmp/peftenv/bin/pip install torch==2.15.0 --index-url https://download.pytorch.org/whl/cpu
  /tmp/peftenv/bin/pip install peft==0.21.2 safetensors==0.8.0
  /tmp/peftenv/bin/python tools/peft_lora_golden.py [--out DIR]
The output goes to tests/lora/golden/ unless --out says otherwise. The run is deterministic (fixed
seeds, CPU only): rerunning with the same versions rewrites the same bytes.
"""

import argparse
import os
import sys

# PEFT keeps target_modules as a set and the safetensors metadata is a dict serialised in hash
# order: both depend on string hashing, so the run pins Python's hash seed (re-executing itself)
# to write the same bytes every time.
if os.environ.get("PYTHONHASHSEED") != "0":
    os.environ["PYTHONHASHSEED"] = "0"
    os.execv(sys.executable, [sys.executable] + sys.argv)
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from peft import LoraConfig, get_peft_model  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
E, H, I, IS, T, K = 4, 32, 16, 24, 5, 2


class Expert(torch.nn.Module):
    """One SwiGLU expert, Mixtral's naming: w2(silu(w1 x) * w3 x)."""

    def __init__(self, hidden, inter, names=("w1", "w3", "w2")):
        super().__init__()
        self.names = names
        setattr(self, names[0], torch.nn.Linear(hidden, inter, bias=False))
        setattr(self, names[1], torch.nn.Linear(hidden, inter, bias=False))
        setattr(self, names[2], torch.nn.Linear(inter, hidden, bias=False))

    def forward(self, x):
        g, u, d = (getattr(self, n) for n in self.names)
        return d(F.silu(g(x)) * u(x))


class LinearExperts(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.experts = torch.nn.ModuleList([Expert(H, I) for _ in range(E)])
        self.shared_expert = Expert(H, IS, ("gate_proj", "up_proj", "down_proj"))

    def forward(self, x, ids, w):
        y = self.shared_expert(x)
        for t in range(x.shape[0]):
            for j in range(ids.shape[1]):
                y[t] = y[t] + w[t, j] * self.experts[int(ids[t, j])](x[t : t + 1])[0]
        return y

    def base_weights(self):
        stack = lambda n: torch.stack([getattr(self.experts[e], n).get_base_layer().weight for e in range(E)])
        s = self.shared_expert
        return {"w1": stack("w1"), "w3": stack("w3"), "w2": stack("w2"), "shared_w1": s.gate_proj.get_base_layer().weight,
                "shared_w3": s.up_proj.get_base_layer().weight, "shared_w2": s.down_proj.get_base_layer().weight}


class FusedExperts(torch.nn.Module):
    """Experts as transformers v5 stores them: gate_up_proj [E, 2I, H] (gate rows first), down_proj
    [E, H, I]. PEFT's ParamWrapper adds its delta to the parameter itself, so the forward must read
    the parameters (not copies made earlier)."""

    def __init__(self):
        super().__init__()
        self.gate_up_proj = torch.nn.Parameter(torch.empty(E, 2 * I, H))
        self.down_proj = torch.nn.Parameter(torch.empty(E, H, I))
        torch.nn.init.normal_(self.gate_up_proj, std=H**-0.5)
        torch.nn.init.normal_(self.down_proj, std=I**-0.5)

    def forward(self, x, ids, w):
        y = torch.zeros_like(x)
        gate_up, down = self.gate_up_proj, self.down_proj
        for t in range(x.shape[0]):
            for j in range(ids.shape[1]):
                e = int(ids[t, j])
                gate, up = F.linear(x[t], gate_up[e]).chunk(2, dim=-1)
                y[t] = y[t] + w[t, j] * F.linear(F.silu(gate) * up, down[e])
        return y


class FusedBlock(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.experts = FusedExperts()
        self.shared_expert = Expert(H, IS, ("gate_proj", "up_proj", "down_proj"))

    def forward(self, x, ids, w):
        return self.shared_expert(x) + self.experts(x, ids, w)

    def base_weights(self):
        ex = self.experts.get_base_layer() if hasattr(self.experts, "get_base_layer") else self.experts
        gate_up, down = ex.gate_up_proj.detach(), ex.down_proj.detach()
        s = self.shared_expert
        return {"w1": gate_up[:, :I], "w3": gate_up[:, I:], "w2": down, "shared_w1": s.gate_proj.get_base_layer().weight,
                "shared_w3": s.up_proj.get_base_layer().weight, "shared_w2": s.down_proj.get_base_layer().weight}


class Model(torch.nn.Module):
    def __init__(self, block):
        super().__init__()
        self.moe = block

    def forward(self, x, ids, w):
        return self.moe(x, ids, w)


def randomise_lora_b(model, gen):
    # PEFT's default init leaves B = 0 (the adapter starts as the identity): give every B values.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)


def write_case(name, block, config, out_root, seed):
    torch.manual_seed(seed)
    model = Model(block())
    peft_model = get_peft_model(model, config)
    gen = torch.Generator().manual_seed(seed + 1)
    randomise_lora_b(peft_model, gen)
    out = os.path.join(out_root, name)
    os.makedirs(out, exist_ok=True)
    peft_model.save_pretrained(out, safe_serialization=True)
    # The README save_pretrained writes is a model card template, not golden data.
    readme = os.path.join(out, "README.md")
    if os.path.exists(readme):
        os.remove(readme)

    x = torch.randn(T, H, generator=gen)
    ids = torch.stack([torch.randperm(E, generator=gen)[:K] for _ in range(T)]).to(torch.int32)
    w = torch.softmax(torch.randn(T, K, generator=gen), dim=-1)
    base = {k: v.detach().clone().contiguous().float() for k, v in model.moe.base_weights().items()}

    peft_model.double()
    with torch.no_grad():
        y = peft_model(x.double(), ids, w.double())
        with peft_model.disable_adapter():
            y_base = peft_model(x.double(), ids, w.double())
    tensors = {"x": x, "topk_ids": ids, "topk_w": w, "y": y.contiguous(), "y_base": y_base.contiguous(), **base}
    # One metadata key: the writer serialises several in a random (hash) order.
    save_file(tensors, os.path.join(out, "io.safetensors"), metadata={"sizes": f"E={E} H={H} I={I} Is={IS}"})
    print(f"{name}: |y - y_base| max {float((y - y_base).abs().max()):.4f}, |y| max {float(y.abs().max()):.4f}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=os.path.join(REPO, "tests", "lora", "golden"))
    args = p.parse_args()
    torch.use_deterministic_algorithms(True)

    linear = LoraConfig(r=4, lora_alpha=8, target_modules=["w1", "w3", "w2", "gate_proj", "up_proj", "down_proj"],
                        rank_pattern={"w2": 2, "shared_expert.down_proj": 8}, alpha_pattern={"up_proj": 16})
    write_case("linear", LinearExperts, linear, args.out, seed=1234)

    fused = LoraConfig(r=4, lora_alpha=8, use_rslora=True, target_modules=["gate_proj", "up_proj", "down_proj"],
                       target_parameters=["experts.gate_up_proj", "experts.down_proj"])
    write_case("fused", FusedBlock, fused, args.out, seed=4321)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""The bytes an expert-parallel MoE step moves per rank, and the time they take at a given link
bandwidth: the model behind the README's "Expert parallelism" table (a model, not a measurement).

Uniform routing over experts spread evenly over R ranks: a token's k experts fall on
D = R (1 - (1 - 1/R)^k) distinct ranks on average, D_remote = (R - 1)(1 - (1 - 1/R)^k) of them
other ranks. Dispatch sends the token's row once per remote destination rank (deduplicated), with
k ids and k weights (8 k bytes); the bitwise return path sends one fp32 row per remote assignment
(k (R - 1) / R of them); a per-rank bf16 partial sum (DeepEP's combine; not bitwise) would send
D_remote bf16 rows. Two-node runs: of the R - 1 peers, R/2 are on the other node, and those bytes
cross InfiniBand, which bounds the time.

Usage: tools/ep_bytes_model.py   (prints the table in Markdown)
"""

H, K = 7168, 8  # DeepSeek-V3: hidden, routed experts per token
BF16_ROW = 2 * H
FP8_ROW = H + 4 * (H // 128)  # E4M3 codes and one fp32 scale per 128 values
META = 8 * K  # k local expert ids and k weights per row
FP32_ROW = 4 * H

SETUPS = [  # (ranks, what, bandwidth per GPU and direction in GB/s, share of remote bytes on that link)
    (8, "8 H200, one node (NVLink, 450 GB/s)", 450.0, 1.0),
    (16, "16 H200, two nodes (InfiniBand NDR, 50 GB/s per GPU)", 50.0, 8.0 / 15.0),
]
PHASES = [("decode", 128), ("prefill", 4096)]  # tokens per rank and step


def per_token(R):
    hit = 1.0 - (1.0 - 1.0 / R) ** K
    remote = (R - 1) * hit
    return {
        "dispatch bf16": remote * (BF16_ROW + META),
        "dispatch fp8": remote * (FP8_ROW + META),
        "return fp32 (bitwise)": K * (R - 1) / R * FP32_ROW,
        "return bf16 partial sums": remote * BF16_ROW,
    }, remote


def main():
    print("| setup | tokens / rank | path | kB / token | MB / rank | time at link rate |")
    print("|---|---|---|---|---|---|")
    for R, what, gbs, share in SETUPS:
        rows, remote = per_token(R)
        for phase, T in PHASES:
            for name, b in rows.items():
                mb = T * b * share / 1e6
                us = mb / gbs * 1e3  # MB / (GB/s) = ms; x 1e3 = us
                t = f"{us:.0f} us" if us < 1000 else f"{us / 1e3:.2f} ms"
                print(f"| {what} | {phase} {T} | {name} | {b / 1e3:.1f} | {mb:.1f} | {t} |")
    for R, _, _, _ in SETUPS:
        print(f"R = {R}: {per_token(R)[1]:.3f} remote destination ranks per token on average")


if __name__ == "__main__":
    main()

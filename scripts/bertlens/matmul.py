"""Which library runs a model's float32 linear layers on the CPU: torch's default or oneDNN.

PyTorch's CPU build sends float32 ``nn.Linear`` products to MKL, and MKL takes its fastest code
only on Intel CPUs: on an AMD EPYC with AVX-512, oneDNN, which ships inside the same torch build,
ran BERT's products about 2x as fast (``benchmarks/RESULTS.md``). On an Intel Xeon MKL runs at
the core's peak (oneDNN's linear fused with GELU was 3-10% slower there). So the choice is
measured, not assumed: :func:`pick_linear_kernel` times both on a product of the shape of the
model's widest linear layer and takes oneDNN only when it is at least ``MARGIN`` times faster;
:func:`linear_kernel` then routes the model's linear layers through it while the model encodes.
Both compute the same float32 products in another order of additions: the sentence vectors
differ by a few 1e-6 (the padding stage's ``onednn`` row measures it on your model).
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Iterator

import torch

from .stage import UserError

KERNELS = ("torch", "onednn")
MARGIN = 1.2  # oneDNN must be this much faster to be taken: a clear gain, not noise


def onednn_available() -> bool:
    """Whether this torch build has oneDNN's linear operator (every x86 and ARM CPU wheel does)."""
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def onednn_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None):
    """``F.linear(x, weight, bias)`` by oneDNN (the operator torch.compile emits for it), in
    float32, for inference only: it has no backward."""
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")


def float32_linears(model) -> list[torch.nn.Linear]:
    """The model's plain ``nn.Linear`` layers with float32 weights (a subclass may have a forward
    of its own; a half-precision layer stays with torch)."""
    return [
        m
        for m in model.modules()
        if isinstance(m, torch.nn.Linear)
        and type(m).forward is torch.nn.Linear.forward
        and m.weight.dtype == torch.float32
    ]


NO_FLOAT32 = "no float32 linear layer"
NO_ONEDNN = "this torch build has no oneDNN"


def onednn_unusable(model) -> str | None:
    """Why oneDNN cannot run ``model``'s linear layers here (``NO_FLOAT32``, ``NO_ONEDNN``), or
    None when it can."""
    if not float32_linears(model):
        return NO_FLOAT32
    if not onednn_available():
        return NO_ONEDNN
    return None


def linear_rates(
    in_features: int, out_features: int, threads: int, rows: int = 512, repeats: int = 5
):
    """GFLOP/s of a (rows x in_features) by (in_features x out_features) float32 product plus
    bias on each kernel, on ``threads`` torch threads (put back after); the kernels alternate
    after one warm-up call each, and each keeps its best repeat, so a slow spell of a shared
    machine hits both alike."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(rows, in_features, generator=gen)
    weight = torch.randn(out_features, in_features, generator=gen) / in_features**0.5
    bias = torch.zeros(out_features)
    runs = {
        "torch": lambda: torch.nn.functional.linear(x, weight, bias),
        "onednn": lambda: onednn_linear(x, weight, bias),
    }
    best = dict.fromkeys(runs, float("inf"))
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for fn in runs.values():
            fn()
        for _ in range(repeats):
            for name, fn in runs.items():
                started = time.perf_counter()
                fn()
                best[name] = min(best[name], time.perf_counter() - started)
    finally:
        torch.set_num_threads(before)
    flops = 2 * rows * in_features * out_features
    return {name: round(flops / seconds / 1e9, 1) for name, seconds in best.items()}


def choose_kernel(rates: dict[str, float], margin: float = MARGIN) -> str:
    """``onednn`` when it ran at least ``margin`` times torch's rate, else ``torch``."""
    return "onednn" if rates["onednn"] >= margin * rates["torch"] else "torch"


def pick_linear_kernel(choice: str, model, device: str, bf16: bool, threads: int) -> dict:
    """The library for ``model``'s linear layers and why: {kernel, choice, reason}, plus the
    rates (GFLOP/s), the shape and the threads when measured. ``torch`` on a GPU, under bf16
    (autocast picks its own CPU kernels) and for a model without float32 linear layers; else the
    one ``choice`` names, or with ``auto`` oneDNN when it ran ``MARGIN`` times torch's rate on
    ``threads`` threads (the threads each batch gets) and on the shape of the widest layer."""
    if choice not in ("auto", *KERNELS):
        raise ValueError(f"unknown cpu_matmul {choice!r}; known: auto, {', '.join(KERNELS)}")
    if device != "cpu" or bf16:
        why = "bf16 autocast" if bf16 else f"device {device}"
        return {"kernel": "torch", "choice": choice, "reason": f"{why}: torch's own choice"}
    unusable = onednn_unusable(model)
    if unusable:
        if choice == "onednn" and unusable == NO_ONEDNN:
            raise UserError(
                "embeddings.cpu_matmul is onednn but this torch build has no oneDNN; "
                "set it to auto or torch"
            )
        return {"kernel": "torch", "choice": choice, "reason": f"{unusable}: torch's own choice"}
    if choice != "auto":
        return {"kernel": choice, "choice": choice, "reason": "set in the config"}
    widest = max(float32_linears(model), key=lambda m: m.in_features * m.out_features)
    shape = [widest.in_features, widest.out_features]
    try:
        rates = linear_rates(*shape, threads=threads)
    except RuntimeError as err:  # oneDNN refused this CPU or shape: stay with torch
        return {"kernel": "torch", "choice": choice, "reason": f"oneDNN failed: {err}"}
    return {
        "kernel": choose_kernel(rates),
        "choice": choice,
        "reason": f"measured on this CPU (oneDNN from {MARGIN}x torch's rate)",
        "gflops": rates,
        "shape": shape,
        "threads": threads,
    }


@contextlib.contextmanager
def linear_kernel(model, kernel: str) -> Iterator[None]:
    """Meanwhile ``model``'s float32 linear layers (``float32_linears``) run on ``kernel``
    (``torch`` leaves them as they are); each layer's own ``forward`` is put back after, also on
    error. For inference only (oneDNN's operator has no backward)."""
    saved = []
    try:
        for m in float32_linears(model) if kernel == "onednn" else ():
            saved.append((m, vars(m).get("forward")))
            bias = None if m.bias is None else m.bias.detach()
            m.forward = functools.partial(onednn_linear, weight=m.weight.detach(), bias=bias)
        yield
    finally:
        for m, forward in saved:
            if forward is None:
                del m.forward
            else:
                m.forward = forward

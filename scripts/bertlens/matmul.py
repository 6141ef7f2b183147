"""Which library runs a model's float32 linear layers on the CPU: torch's default or oneDNN.

PyTorch's CPU build sends float32 ``nn.Linear`` products to MKL, and MKL takes its fastest code
only on Intel CPUs: on an AMD EPYC with AVX-512 it ran at 93-99 GFLOP/s per core where oneDNN,
which ships inside the same torch build, ran the same products at 198-220 (BERT's shapes, one
thread). On an Intel Xeon it is the other way round: MKL was 3-10% faster. So the choice is
measured, not assumed: :func:`pick_linear_kernel` times both on the model's own widest layer and
takes oneDNN only when it is at least ``MARGIN`` times faster; :func:`linear_kernel` then routes
the model's linear layers through it while the model encodes. Both compute the same float32
products in another order of additions: the sentence vectors differ by a few 1e-6 (the padding
stage's ``onednn`` row measures it on your model).
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Iterator
from typing import Any

import torch

from .stage import UserError

KERNELS = ("torch", "onednn")
MARGIN = 1.2  # oneDNN must be this much faster: the two are within 10% of each other on Intel


def onednn_available() -> bool:
    """Whether this torch build has oneDNN's linear operator (every x86 and ARM CPU wheel does)."""
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def onednn_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None):
    """``F.linear(x, weight, bias)`` by oneDNN (the operator torch.compile emits for it), for
    inference: it records nothing for autograd."""
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")


def linear_rates(in_features: int, out_features: int, rows: int = 512, repeats: int = 5):
    """GFLOP/s of a (rows x in_features) by (in_features x out_features) float32 product plus
    bias on each kernel, with this thread's torch threads; the kernels alternate, and each keeps
    its best repeat, so a slow spell of a shared machine hits both alike."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(rows, in_features, generator=gen)
    weight = torch.randn(out_features, in_features, generator=gen) / in_features**0.5
    bias = torch.zeros(out_features)
    runs = {
        "torch": lambda: torch.nn.functional.linear(x, weight, bias),
        "onednn": lambda: onednn_linear(x, weight, bias),
    }
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(repeats + 1):  # the first round warms both up
        for name, fn in runs.items():
            started = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - started)
    flops = 2 * rows * in_features * out_features
    return {name: round(flops / seconds / 1e9, 1) for name, seconds in best.items()}


def choose_kernel(rates: dict[str, float], margin: float = MARGIN) -> str:
    """``onednn`` when it ran at least ``margin`` times torch's rate, else ``torch``."""
    return "onednn" if rates["onednn"] >= margin * rates["torch"] else "torch"


def widest_linear(model) -> tuple[int, int]:
    """(in_features, out_features) of the model's largest float32 linear layer (BERT's
    feed-forward), the shape that dominates its time."""
    shapes = [
        (m.in_features, m.out_features)
        for m in model.modules()
        if isinstance(m, torch.nn.Linear) and m.weight.dtype == torch.float32
    ]
    return max(shapes, key=lambda s: s[0] * s[1], default=(0, 0))


def pick_linear_kernel(choice: str, model, device: str, bf16: bool) -> dict[str, Any]:
    """The kernel for ``model``'s linear layers and why: ``torch`` on a GPU and under bf16
    (autocast already runs those products in oneDNN on a CPU), the one ``choice`` names, or with
    ``auto`` the one measured faster on this CPU (``choose_kernel``). Returns {kernel, choice,
    reason} and, when measured, the rates (GFLOP/s) and the shape."""
    if choice not in ("auto", *KERNELS):
        raise ValueError(f"unknown cpu_matmul {choice!r}; known: auto, {', '.join(KERNELS)}")
    if device != "cpu" or bf16:
        why = "bf16 autocast" if device == "cpu" else f"device {device}"
        return {"kernel": "torch", "choice": choice, "reason": f"{why}: torch's own kernels"}
    if not onednn_available():
        if choice == "onednn":
            raise UserError(
                "embeddings.cpu_matmul is onednn but this torch build has no oneDNN; "
                "set it to auto or torch"
            )
        return {"kernel": "torch", "choice": choice, "reason": "this torch build has no oneDNN"}
    if choice != "auto":
        return {"kernel": choice, "choice": choice, "reason": "set in the config"}
    shape = widest_linear(model)
    if not shape[0]:
        return {"kernel": "torch", "choice": choice, "reason": "no float32 linear layer"}
    rates = linear_rates(*shape)
    kernel = choose_kernel(rates)
    return {
        "kernel": kernel,
        "choice": choice,
        "reason": f"measured on this CPU (oneDNN taken from {MARGIN}x torch's rate)",
        "gflops": rates,
        "shape": list(shape),
    }


@contextlib.contextmanager
def linear_kernel(model, kernel: str) -> Iterator[None]:
    """Meanwhile ``model``'s float32 linear layers run on ``kernel`` (``torch`` leaves them as
    they are); put back after, also on error. For inference only (no autograd through oneDNN)."""
    patched = []
    try:
        for m in model.modules() if kernel == "onednn" else ():
            if isinstance(m, torch.nn.Linear) and m.weight.dtype == torch.float32:
                bias = None if m.bias is None else m.bias.detach()
                m.forward = functools.partial(onednn_linear, weight=m.weight.detach(), bias=bias)
                patched.append(m)
        yield
    finally:
        for m in patched:
            del m.forward

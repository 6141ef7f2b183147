"""The CPU library of the linear layers: oneDNN in place of torch's own gives the same vectors to
rounding, is put back after, and ``auto`` takes what it measured faster."""

from __future__ import annotations

import functools

import pytest
import torch

from bertlens.embeddings import encode, pad_batch
from bertlens.matmul import (
    MARGIN,
    choose_kernel,
    float32_linears,
    linear_kernel,
    linear_rates,
    onednn_linear,
    pick_linear_kernel,
)
from bertlens.stage import UserError
from bertlens.tokenstats import tokenize_texts
from tests.helpers.checks import needs_onednn

pytestmark = needs_onednn


def _linears(model):
    return [m for m in model.modules() if isinstance(m, torch.nn.Linear)]


def test_choose_kernel_takes_onednn_only_from_the_margin():
    assert choose_kernel({"torch": 100.0, "onednn": 100.0 * MARGIN}) == "onednn"
    assert choose_kernel({"torch": 100.0, "onednn": 100.0 * MARGIN - 1}) == "torch"
    assert choose_kernel({"torch": 200.0, "onednn": 100.0}) == "torch"


def test_onednn_linear_equals_torch_linear():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 17, 384, generator=gen)  # (batch, tokens, hidden), as BERT feeds it
    w = torch.randn(1536, 384, generator=gen) / 384**0.5
    b = torch.randn(1536, generator=gen)
    got = onednn_linear(x, w, b)
    want = torch.nn.functional.linear(x, w, b)
    assert got.shape == want.shape
    assert 0 < (got - want).abs().max().item() < 1e-5  # another library, the same product
    no_bias = onednn_linear(x, w, None)
    assert (no_bias - torch.nn.functional.linear(x, w)).abs().max().item() < 1e-5


def test_linear_kernel_routes_every_layer_and_puts_them_back(minilm, english):
    model, tokenizer = minilm
    ids = list(tokenize_texts(tokenizer, english[:16], max_length=64)["input_ids"])
    input_ids, mask = pad_batch(ids, tokenizer.pad_token_id)
    with torch.inference_mode():
        want = encode(model, input_ids, mask, ["cls", "mean", "pooler"])
        with linear_kernel(model, "onednn"):
            assert all("forward" in vars(m) for m in _linears(model))
            got = encode(model, input_ids, mask, ["cls", "mean", "pooler"])
    assert not any("forward" in vars(m) for m in _linears(model))
    for how in want:
        assert got[how].shape == want[how].shape
        assert (got[how] - want[how]).abs().max().item() < 1e-5


def test_linear_kernel_is_put_back_after_an_error(minilm):
    model, _ = minilm
    with pytest.raises(RuntimeError, match="boom"), linear_kernel(model, "onednn"):
        raise RuntimeError("boom")
    assert not any("forward" in vars(m) for m in _linears(model))


def test_linear_kernel_keeps_a_forward_the_layer_already_had(minilm):
    model, _ = minilm
    layer = _linears(model)[0]
    own = functools.partial(torch.nn.Linear.forward, layer)  # e.g. a hook library's wrapper
    layer.forward = own
    try:
        with linear_kernel(model, "onednn"):
            assert layer.forward is not own
        assert layer.forward is own
    finally:
        del layer.forward


def test_half_precision_and_subclassed_layers_stay_with_torch():
    class Logged(torch.nn.Linear):  # a forward of its own
        def forward(self, x):
            return super().forward(x)

    model = torch.nn.Sequential(torch.nn.Linear(4, 8), Logged(8, 8), torch.nn.Linear(8, 2).half())
    assert float32_linears(model) == [model[0]]
    only_half = torch.nn.Sequential(torch.nn.Linear(4, 8).bfloat16())
    picked = pick_linear_kernel("onednn", only_half, "cpu", bf16=False, threads=1)
    assert picked["kernel"] == "torch"  # nothing would run on oneDNN, so the facts say torch
    assert "no float32 linear layer" in picked["reason"]


def test_auto_measures_the_widest_layer_on_the_threads_each_batch_gets(minilm):
    model, _ = minilm
    threads = torch.get_num_threads()
    auto = pick_linear_kernel("auto", model, "cpu", bf16=False, threads=1)
    assert auto["shape"] == [384, 1536]  # MiniLM's feed-forward
    assert auto["threads"] == 1 and torch.get_num_threads() == threads
    assert auto["gflops"]["torch"] > 0 and auto["gflops"]["onednn"] > 0
    assert auto["kernel"] in ("torch", "onednn") and "measured" in auto["reason"]


def test_gpu_bf16_and_an_explicit_choice_are_not_measured(minilm):
    model, _ = minilm
    assert pick_linear_kernel("onednn", model, "cpu", False, 1)["kernel"] == "onednn"
    assert pick_linear_kernel("torch", model, "cpu", False, 1)["kernel"] == "torch"
    for device, bf16 in (("cuda", False), ("cpu", True)):
        picked = pick_linear_kernel("onednn", model, device, bf16, 1)
        assert picked["kernel"] == "torch" and "gflops" not in picked
    with pytest.raises(ValueError, match="cpu_matmul"):
        pick_linear_kernel("mkl", model, "cpu", False, 1)


def test_linear_rates_time_both_kernels_and_give_the_threads_back():
    threads = torch.get_num_threads()
    rates = linear_rates(64, 128, threads=1, rows=32, repeats=2)
    assert set(rates) == {"torch", "onednn"}
    assert all(r > 0 for r in rates.values())
    assert torch.get_num_threads() == threads


def test_onednn_asked_for_without_onednn_is_one_clear_line(minilm, monkeypatch):
    """A torch build without oneDNN cannot be installed beside this one: its check is patched."""
    model, _ = minilm
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: False)
    with pytest.raises(UserError, match="cpu_matmul is onednn.*set it to auto or torch"):
        pick_linear_kernel("onednn", model, "cpu", False, 1)
    assert pick_linear_kernel("auto", model, "cpu", False, 1)["kernel"] == "torch"

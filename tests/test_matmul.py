"""The CPU library of the linear layers: oneDNN in place of torch's own gives the same vectors to
rounding, is put back after, and ``auto`` takes what it measured faster."""

from __future__ import annotations

import pytest
import torch

from bertlens.embeddings import encode, pad_batch
from bertlens.matmul import (
    MARGIN,
    choose_kernel,
    linear_kernel,
    linear_rates,
    onednn_available,
    onednn_linear,
    pick_linear_kernel,
    widest_linear,
)
from bertlens.stage import UserError
from bertlens.tokenstats import tokenize_texts

pytestmark = pytest.mark.skipif(not onednn_available(), reason="this torch build has no oneDNN")


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
    assert (got - want).abs().max().item() < 1e-5
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


def test_pick_measures_on_the_cpu_and_leaves_gpu_and_bf16_alone(minilm):
    model, _ = minilm
    assert widest_linear(model) == (384, 1536)  # MiniLM's feed-forward
    auto = pick_linear_kernel("auto", model, "cpu", bf16=False)
    assert auto["shape"] == [384, 1536]
    assert auto["gflops"]["torch"] > 0 and auto["gflops"]["onednn"] > 0
    assert auto["kernel"] == choose_kernel(auto["gflops"])
    assert pick_linear_kernel("onednn", model, "cpu", bf16=False)["kernel"] == "onednn"
    assert pick_linear_kernel("onednn", model, "cuda", bf16=False)["kernel"] == "torch"
    assert pick_linear_kernel("auto", model, "cpu", bf16=True)["kernel"] == "torch"
    with pytest.raises(ValueError, match="cpu_matmul"):
        pick_linear_kernel("mkl", model, "cpu", bf16=False)


def test_linear_rates_time_both_kernels():
    rates = linear_rates(64, 128, rows=32, repeats=2)
    assert set(rates) == {"torch", "onednn"}
    assert all(r > 0 for r in rates.values())


def test_onednn_asked_for_without_onednn_is_one_clear_line(minilm, monkeypatch):
    model, _ = minilm
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: False)
    with pytest.raises(UserError, match="cpu_matmul is onednn.*set it to auto or torch"):
        pick_linear_kernel("onednn", model, "cpu", bf16=False)
    assert pick_linear_kernel("auto", model, "cpu", bf16=False)["kernel"] == "torch"

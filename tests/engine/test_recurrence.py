"""The fused time loop (framegru.engine.recurrence) and the engine's plans: same function, same gradients."""

from __future__ import annotations

import itertools

import pytest
import torch

from framegru.engine.convgru import FASTEST, ConvGRU, ConvGRUCell, ExecutionPlan
from framegru.engine.recurrence import FusedLayer, run_layer
from framegru.runtime.timing import cpu_peak_bytes

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
REFERENCE = ExecutionPlan(fused=False, channels_last=False)  # plain autograd, one ConvGRUCell.recur per step


def reference_layer(cell: ConvGRUCell, x: torch.Tensor, h0, reverse: bool) -> torch.Tensor:
    """The layer as a loop of the cell: time-major in and out."""
    outs, h = [None] * x.shape[0], h0
    for i in reversed(range(x.shape[0])) if reverse else range(x.shape[0]):
        h = cell(x[i], h)
        outs[i] = h
    return torch.stack(outs)


def weights(cell: ConvGRUCell) -> tuple:
    return cell.input_conv.weight, cell.input_conv.bias, cell.hidden_zr.weight, cell.hidden_n.weight


def grads(out: torch.Tensor, upstream: torch.Tensor, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
    return list(torch.autograd.grad(out, inputs, upstream))


@pytest.mark.parametrize(
    "reverse,checkpoint,channels_last,with_h0,kernel,batch_inputs",
    [c for c in itertools.product([False, True], [False, True], [False, True], [False, True], [3, (1, 5)], [True])]
    + [(False, False, False, True, 3, False), (True, True, True, False, 3, False)],
)
def test_fused_layer_matches_the_cell_loop_in_float64(reverse, checkpoint, channels_last, with_h0, kernel, batch_inputs):
    torch.manual_seed(0)
    cell = ConvGRUCell(3, 4, kernel).double()
    torch.nn.init.uniform_(cell.input_conv.bias, -0.5, 0.5)  # non-zero biases, so that they are tested
    x = torch.randn(7, 2, 3, 5, 6, dtype=torch.double, requires_grad=True)
    h0 = torch.randn(2, 4, 5, 6, dtype=torch.double, requires_grad=True) if with_h0 else None
    upstream = torch.randn(7, 2, 4, 5, 6, dtype=torch.double)
    inputs = [x, *([h0] if with_h0 else []), *weights(cell)]

    expected = reference_layer(cell, x, h0, reverse)
    got = run_layer(x, h0, *weights(cell), reverse=reverse, checkpoint=checkpoint, chunk=3,
                    channels_last=channels_last, batch_inputs=batch_inputs)

    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)
    for g, e in zip(grads(got, upstream, inputs), grads(expected, upstream, inputs)):
        torch.testing.assert_close(g, e, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("keep", [True, False])
@pytest.mark.parametrize("input_kernel", [3, 1])
def test_fused_layer_passes_gradcheck(keep, input_kernel):
    torch.manual_seed(1)
    x = torch.randn(3, 1, 2, 3, 3, dtype=torch.double, requires_grad=True)
    h0 = torch.randn(1, 2, 3, 3, dtype=torch.double, requires_grad=True)
    w_in = torch.randn(6, 2, input_kernel, input_kernel, dtype=torch.double, requires_grad=True)
    b_in = torch.randn(6, dtype=torch.double, requires_grad=True)
    w_zr = torch.randn(4, 2, 3, 3, dtype=torch.double, requires_grad=True)
    w_n = torch.randn(2, 2, 3, 3, dtype=torch.double, requires_grad=True)

    def layer(x, h0, w_in, b_in, w_zr, w_n):
        # gradcheck calls the function again for every perturbation: fresh buffers each time.
        return FusedLayer.apply(x, h0, w_in, b_in, w_zr, w_n, False, 2, 3, False, keep)

    assert torch.autograd.gradcheck(layer, (x, h0, w_in, b_in, w_zr, w_n), eps=1e-6, atol=1e-5)


def _pair(plan: ExecutionPlan, **options) -> tuple[ConvGRU, ConvGRU]:
    torch.manual_seed(0)
    reference = ConvGRU(3, [5, 4], [3, (1, 3)], num_layers=2, plan=REFERENCE, **options)
    model = ConvGRU(3, [5, 4], [3, (1, 3)], num_layers=2, plan=plan, **options)
    model.load_state_dict(reference.state_dict())
    return reference, model


PLANS = {
    "fused channels_last": ExecutionPlan(channels_last=True),
    "fused nchw": ExecutionPlan(channels_last=False),
    "fused per-step inputs": ExecutionPlan(batch_inputs=False),
    "autograd channels_last": ExecutionPlan(fused=False, channels_last=True),
    "autograd per-step inputs": ExecutionPlan(fused=False, batch_inputs=False),
}


@pytest.mark.parametrize("name", list(PLANS))
@pytest.mark.parametrize("bidirectional,checkpoint_time,input_kernel",
                         [(False, False, None), (True, False, None), (False, True, None), (True, True, None),
                          (False, False, 1), (False, True, 1)])
def test_every_plan_agrees_with_the_reference_in_fp32(name, bidirectional, checkpoint_time, input_kernel):
    reference, model = _pair(PLANS[name], bidirectional=bidirectional, checkpoint_time=checkpoint_time,
                             input_kernel_size=input_kernel)
    x = torch.randn(2, 6, 3, 5, 4, requires_grad=True)
    d = 2 if bidirectional else 1
    h0 = [torch.randn(2, 5 * d, 5, 4), torch.randn(2, 4 * d, 5, 4)]
    for state in (None, h0):
        out_r, states_r = reference(x, state)
        out_m, states_m = model(x, state)
        torch.testing.assert_close(out_m, out_r, rtol=1e-5, atol=1e-6)
        for s_m, s_r in zip(states_m, states_r):
            torch.testing.assert_close(s_m, s_r, rtol=1e-5, atol=1e-6)
        loss_r = out_r.square().mean() + sum(s.sum() for s in states_r)
        loss_m = out_m.square().mean() + sum(s.sum() for s in states_m)
        g_r = torch.autograd.grad(loss_r, [x, *reference.parameters()])
        g_m = torch.autograd.grad(loss_m, [x, *model.parameters()])
        for a, b in zip(g_m, g_r):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_checkpoint_time_needs_less_memory_and_gives_the_same_gradients():
    torch.manual_seed(0)
    plain = ConvGRU(4, [8, 8], 3, num_layers=2)
    checkpointed = ConvGRU(4, [8, 8], 3, num_layers=2, checkpoint_time=True)
    checkpointed.load_state_dict(plain.state_dict())
    x = torch.randn(2, 9, 4, 6, 6)

    def peak_and_grads(model: ConvGRU):
        found = []

        def step():
            found.extend(torch.autograd.grad(model(x)[0].square().mean(), list(model.parameters())))

        return cpu_peak_bytes(step), found

    peak_plain, grads_plain = peak_and_grads(plain)
    peak_ckpt, grads_ckpt = peak_and_grads(checkpointed)
    sequence = x.numel() // 4 * 8 * 4  # bytes of one layer's output sequence (8 channels, fp32)
    # Kept for the backward pass: per layer its outputs and three gate maps; checkpointed, the outputs only.
    assert peak_plain >= 2 * 4 * sequence
    assert peak_ckpt < peak_plain - 2 * 2 * sequence
    for a, b in zip(grads_ckpt, grads_plain):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_a_second_backward_through_the_same_graph_recomputes_and_agrees():
    torch.manual_seed(0)
    model = ConvGRU(2, 3, 3, plan=ExecutionPlan())
    x = torch.randn(1, 4, 2, 5, 5, requires_grad=True)
    loss = model(x)[0].square().sum()
    first = torch.autograd.grad(loss, [x, *model.parameters()], retain_graph=True)
    second = torch.autograd.grad(loss, [x, *model.parameters()])
    for a, b in zip(first, second):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_double_backward_needs_the_autograd_plan():
    x = torch.randn(1, 3, 2, 4, 4, requires_grad=True)
    (g,) = torch.autograd.grad(ConvGRU(2, 3, 3, plan=ExecutionPlan())(x)[0].sum(), x, create_graph=True)
    with pytest.raises(RuntimeError):  # the fused backward is once_differentiable
        g.sum().backward()
    (g,) = torch.autograd.grad(ConvGRU(2, 3, 3, plan=REFERENCE)(x)[0].sum(), x, create_graph=True)
    g.square().sum().backward()
    assert x.grad is not None


def test_even_kernels_fall_back_to_autograd_and_keep_the_size():
    torch.manual_seed(0)
    reference = ConvGRU(2, 3, 2, plan=REFERENCE)
    model = ConvGRU(2, 3, 2)
    model.load_state_dict(reference.state_dict())
    x = torch.randn(1, 4, 2, 5, 5)
    torch.testing.assert_close(model(x)[0], reference(x)[0])
    assert model(x)[0].shape == (1, 4, 3, 5, 5)


def test_step_by_step_equals_forward_under_the_fastest_plan():
    torch.manual_seed(0)
    model = ConvGRU(3, [4, 5], 3, num_layers=2).eval()
    x = torch.randn(2, 5, 3, 6, 6)
    out, states = model(x)
    state, ys = None, []
    for t in range(x.shape[1]):
        y, state = model.step(x[:, t], state)
        ys.append(y)
    torch.testing.assert_close(torch.stack(ys, 1), out, rtol=1e-5, atol=1e-6)
    for a, b in zip(state, states):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_state_dict_names_are_the_checkpoint_format():
    names = set(ConvGRU(3, 4, 3, num_layers=2, plan=ExecutionPlan(channels_last=True)).state_dict())
    assert names == {f"layers.{i}.{p}" for i in range(2)
                     for p in ("input_conv.weight", "input_conv.bias", "hidden_zr.weight", "hidden_n.weight")}


def test_bf16_autocast_on_cpu_agrees_loosely():
    reference, model = _pair(ExecutionPlan(channels_last=True))
    x = torch.rand(2, 5, 3, 6, 6, requires_grad=True)
    expected, _ = reference(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got, _ = model(x)
    assert got.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), expected, rtol=0, atol=5e-2)
    got.float().sum().backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 and p.grad.isfinite().all() for p in model.parameters())


def test_fastest_has_a_plan_for_cpu_and_cuda():
    assert set(FASTEST) >= {"cpu", "cuda"}


@pytest.mark.slow
def test_compiled_step_agrees_with_the_reference_in_fp32():
    pytest.importorskip("torch._inductor")
    reference, model = _pair(ExecutionPlan(fused=False, compile_step=True))
    x = torch.randn(2, 4, 3, 5, 4, requires_grad=True)
    torch.testing.assert_close(model(x)[0], reference(x)[0], rtol=1e-5, atol=1e-6)


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("dtype,atol", [(torch.float32, 1e-4), (torch.bfloat16, 5e-2)])
@pytest.mark.parametrize("checkpoint_time", [False, True])
def test_cuda_matches_the_cpu_reference(dtype, atol, checkpoint_time):
    reference, model = _pair(FASTEST["cuda"], checkpoint_time=checkpoint_time)
    model = model.cuda()
    x = torch.rand(2, 6, 3, 8, 8)
    expected, _ = reference(x)
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=dtype != torch.float32):
        got, _ = model(x.cuda())
    torch.testing.assert_close(got.float().cpu(), expected, rtol=0, atol=atol)
    got.float().square().mean().backward()
    assert all(p.grad.isfinite().all() for p in model.parameters())

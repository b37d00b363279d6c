"""The ConvGRU engine against a plain per-step reference written here, from the documented math."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from framegru import ConvGRU, ConvGRUCell, rows_to_still, still_to_rows


def same_conv(x, w, b=None):
    kh, kw = w.shape[-2:]
    # "same" padding, the extra row/column (even kernels) on the bottom/right as PyTorch does.
    x = F.pad(x, ((kw - 1) // 2, kw // 2, (kh - 1) // 2, kh // 2))
    return F.conv2d(x, w, b)


def reference_cell(cell: ConvGRUCell, x, h):
    """z, r, n, h' exactly as the docstring writes them, with six separate convolutions."""
    c = cell.hidden_channels
    wz, wr, wn = cell.input_conv.weight.split(c)
    bz, br, bn = cell.input_conv.bias.split(c) if cell.input_conv.bias is not None else (None,) * 3
    uz, ur = cell.hidden_zr.weight.split(c)
    un = cell.hidden_n.weight
    z = torch.sigmoid(same_conv(x, wz, bz) + same_conv(h, uz))
    r = torch.sigmoid(same_conv(x, wr, br) + same_conv(h, ur))
    n = torch.tanh(same_conv(x, wn, bn) + same_conv(r * h, un))
    return (1 - z) * h + z * n


def reference(model: ConvGRU, x, h0=None):
    b, t, _, hgt, wid = x.shape
    states = []
    for i, cell in enumerate(model.layers):
        h = x.new_zeros(b, cell.hidden_channels, hgt, wid) if h0 is None else h0[i]
        outs = []
        for step in range(t):
            h = reference_cell(cell, x[:, step], h)
            outs.append(h)
        x = torch.stack(outs, 1)
        states.append(h)
    return x, states


def randomize(model):
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.3)
    return model


def assert_matches_reference(model: ConvGRU, x, start=None):
    """``model`` from ``start`` equals :func:`reference` in float64: outputs, last states and gradients."""
    out, states = model(x, start)
    ref_out, ref_states = reference(model, x, start)
    assert out.shape == ref_out.shape
    torch.testing.assert_close(out, ref_out, rtol=1e-10, atol=1e-10)
    for s, r in zip(states, ref_states):
        torch.testing.assert_close(s, r, rtol=1e-10, atol=1e-10)
    weights = torch.randn_like(out)
    grads = torch.autograd.grad((out * weights).sum(), [x, *model.parameters()])
    ref_grads = torch.autograd.grad((ref_out * weights).sum(), [x, *model.parameters()])
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r, rtol=1e-9, atol=1e-9)
    return out


@pytest.mark.parametrize("kernel", [3, 2, (1, 5), (3, 4)])
@pytest.mark.parametrize("bias", [True, False])
def test_forward_matches_reference_values_and_gradients(kernel, bias):
    torch.manual_seed(0)
    model = randomize(ConvGRU(3, [5, 4], kernel, num_layers=2, bias=bias)).double()
    x = torch.randn(2, 4, 3, 6, 7, dtype=torch.float64, requires_grad=True)
    h0 = [torch.randn(2, 5, 6, 7, dtype=torch.float64), torch.randn(2, 4, 6, 7, dtype=torch.float64)]
    for start in (None, h0):
        assert assert_matches_reference(model, x, start).shape == (2, 4, 4, 6, 7)


@pytest.mark.parametrize("input_kernel", [1, 5])
def test_an_input_kernel_of_its_own_matches_the_reference(input_kernel):
    torch.manual_seed(0)
    model = randomize(ConvGRU(3, [5, 4], 3, input_kernel_size=input_kernel)).double()
    for cell in model.layers:
        assert cell.input_conv.weight.shape[-2:] == (input_kernel, input_kernel)
        assert cell.hidden_zr.weight.shape[-2:] == (3, 3) and cell.kernel_size == (3, 3)
    x = torch.randn(2, 4, 3, 6, 7, dtype=torch.float64, requires_grad=True)
    out = assert_matches_reference(model, x)
    steps, state = [], None
    for t in range(x.shape[1]):
        y, state = model.step(x[:, t], state)
        steps.append(y)
    torch.testing.assert_close(torch.stack(steps, 1), out, rtol=1e-10, atol=1e-10)


@pytest.mark.integration
def test_even_kernels_print_no_pytorch_warning():
    # In a fresh interpreter, as a user runs it: an even kernel is a supported choice, not worth a warning.
    code = ("import torch; from framegru import ConvGRU; "
            "ConvGRU(2, 4, 4)(torch.rand(1, 3, 2, 8, 8))[0].sum().backward(); print('ran')")
    done = subprocess.run([sys.executable, "-W", "default", "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ran", done.stderr
    assert "Warning" not in done.stderr, done.stderr


def test_fp32_close_to_float64_reference():
    model = randomize(ConvGRU(4, 8, 3, num_layers=2))
    x = torch.randn(2, 5, 4, 8, 8)
    out, _ = model(x)
    ref, _ = reference(model.double(), x.double())
    torch.testing.assert_close(out.double(), ref, rtol=1e-5, atol=1e-5)


def test_step_loop_equals_forward():
    model = randomize(ConvGRU(3, [6, 5], 3, num_layers=2)).eval()
    x = torch.randn(2, 7, 3, 5, 5)
    out, states = model(x)
    state = None
    for t in range(7):
        y, state = model.step(x[:, t], state)
        torch.testing.assert_close(y, out[:, t], rtol=1e-5, atol=1e-6)
    for s, r in zip(state, states):
        torch.testing.assert_close(s, r, rtol=1e-5, atol=1e-6)


def test_forward_continues_from_states():
    model = randomize(ConvGRU(2, 4, 3))
    x = torch.randn(1, 6, 2, 4, 4)
    whole, _ = model(x)
    first, states = model(x[:, :3])
    second, _ = model(x[:, 3:], states)
    torch.testing.assert_close(torch.cat([first, second], 1), whole, rtol=1e-5, atol=1e-6)


def test_batch_first_false_is_transposed():
    model = randomize(ConvGRU(2, 3, 3))
    x = torch.randn(2, 4, 2, 5, 5)
    out, _ = model(x)
    model.batch_first = False
    out_t, _ = model(x.transpose(0, 1))
    torch.testing.assert_close(out_t.transpose(0, 1), out)


def test_cell_equals_reference_and_zero_state():
    cell = randomize(ConvGRUCell(3, 4, (3, 5)))
    x, h = torch.randn(2, 3, 6, 6), torch.randn(2, 4, 6, 6)
    torch.testing.assert_close(cell(x, h), reference_cell(cell, x, h), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(cell(x, None), reference_cell(cell, x, torch.zeros_like(h)), rtol=1e-5, atol=1e-6)


def test_rows_roundtrip_and_bidirectional_rows():
    image = torch.randn(2, 3, 6, 9)
    rows = still_to_rows(image)
    assert rows.shape == (2, 6, 3, 1, 9)
    assert torch.equal(rows[:, 4, :, 0], image[:, :, 4])  # step 4 is image row 4
    assert torch.equal(rows_to_still(rows), image)
    model = randomize(ConvGRU(3, 4, (1, 5), bidirectional=True))
    out, states = model(rows)
    assert out.shape == (2, 6, 8, 1, 9)
    forward_only, _ = reference(model, rows)
    torch.testing.assert_close(out[:, :, :4], forward_only, rtol=1e-5, atol=1e-6)
    # The backward direction is the same recurrence over the reversed rows.
    backward = ConvGRU(3, 4, (1, 5))
    backward.layers[0].load_state_dict(model.backward_layers[0].state_dict())
    rev, _ = backward(rows.flip(1))
    torch.testing.assert_close(out[:, :, 4:], rev.flip(1), rtol=1e-5, atol=1e-6)
    assert states[0].shape == (2, 8, 1, 9)


def test_checkpoint_time_same_values_and_grads():
    model = randomize(ConvGRU(2, 4, 3, num_layers=2))
    x = torch.randn(2, 5, 2, 6, 6, requires_grad=True)
    out, _ = model(x)
    g = torch.autograd.grad(out.square().sum(), [x, *model.parameters()])
    model.checkpoint_time = True
    out_ck, _ = model(x)
    g_ck = torch.autograd.grad(out_ck.square().sum(), [x, *model.parameters()])
    torch.testing.assert_close(out_ck, out)
    for a, b in zip(g, g_ck):  # recomputation reorders fp32 sums: round-off only
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("bad", [
    dict(num_layers=0), dict(dropout=1.0), dict(hidden_channels=[4, 4], num_layers=1), dict(kernel_size=0),
])
def test_bad_arguments_raise_value_error(bad):
    args = dict(in_channels=2, hidden_channels=4, kernel_size=3)
    args.update(bad)
    with pytest.raises(ValueError):
        ConvGRU(**args)


def test_wrong_input_rank_is_a_clear_error():
    with pytest.raises(ValueError, match="5-D"):
        ConvGRU(2, 4, 3)(torch.randn(2, 2, 4, 4))
    with pytest.raises(RuntimeError, match="bidirectional"):
        ConvGRU(2, 4, 3, bidirectional=True).step(torch.randn(1, 2, 4, 4))


@pytest.mark.gpu
def test_cuda_matches_cpu_fp32_and_bf16():
    model = randomize(ConvGRU(4, [8, 8], 3, num_layers=2))
    x = torch.randn(2, 6, 4, 16, 16)
    ref, _ = model(x)
    gpu = model.cuda()
    # cuDNN runs fp32 convolutions in TF32 by default (PyTorch's choice, kept for users): 2.7e-3 off here
    # on an H200. The fp32 path itself is checked with TF32 off.
    tf32 = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        out, _ = gpu(x.cuda())
    finally:
        torch.backends.cudnn.allow_tf32 = tf32
    torch.testing.assert_close(out.cpu(), ref, rtol=1e-4, atol=1e-4)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out_bf16, _ = gpu(x.cuda())
    torch.testing.assert_close(out_bf16.float().cpu(), ref, rtol=5e-2, atol=5e-2)


def test_readme_engine_snippet_runs_as_written():
    """The README's engine example, executed as written (shapes as its comments say)."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    start = text.index("```python\nimport torch\nfrom framegru import ConvGRU") + len("```python\n")
    scope: dict = {}
    exec(text[start : text.index("```", start)], scope)
    assert scope["out"].shape == (2, 10, 64, 32, 32) and len(scope["states"]) == 2
    assert scope["y"].shape == (2, 64, 32, 32) and len(scope["model"].layers) == 2


def test_num_layers_follows_the_hidden_list():
    from framegru import ConvGRU

    assert len(ConvGRU(4, [8, 8, 8], 3).layers) == 3 and len(ConvGRU(4, 8, 3).layers) == 1
    assert len(ConvGRU(4, 8, 3, num_layers=2).layers) == 2
    with pytest.raises(ValueError, match="hidden_channels has 2 entries for 3 layers"):
        ConvGRU(4, [8, 8], 3, num_layers=3)


@pytest.mark.parametrize("still,want", [(False, (3, 3)), (True, (1, 3))])
def test_the_configs_input_kernel_follows_the_kernels_rule_for_stills(still, want):
    from framegru.config.config import validate
    from framegru.model.frame_model import engine_from_config

    spec = {"engine": {"hidden": [4, 4], "kernel": 5, "input_kernel": 3}, "head": {"name": "next_frame"}}
    config = validate({"data": {"reader": {"name": "video", "frames": 4, "context": 2}}, "model": spec}, "test")
    engine = engine_from_config(config, 2, still=still)
    assert [cell.input_kernel_size for cell in engine.layers] == [want, want]
    assert [cell.kernel_size for cell in engine.layers] == [(1, 5) if still else (5, 5)] * 2

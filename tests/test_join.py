"""concatenate/concat, stack, split, chunk and pad: values against numpy (float64),
gradients against central finite differences, and the documented errors."""

import numpy as np
import pytest

import lamina as lm
from helpers import check_grad

RNG = np.random.default_rng(0)


def rand(*shape):
    return RNG.standard_normal(shape)


def t64(a):
    return lm.tensor(a, dtype="float64")


# ---------------------------------------------------------------- concatenate

@pytest.mark.parametrize("shapes,axis", [
    ([(2, 3), (4, 3)], 0),
    ([(2, 3), (2, 1), (2, 5)], 1),
    ([(2, 3), (2, 1), (2, 5)], -1),
    ([(2, 3, 4), (2, 1, 4)], -2),
    ([(3,)], 0),
    ([(0, 3), (2, 3)], 0),
    ([(2, 0), (2, 0)], 1),
    ([(0, 3), (0, 3)], 1),
])
def test_concatenate_values(shapes, axis):
    arrays = [rand(*s) for s in shapes]
    out = lm.concatenate([t64(a) for a in arrays], axis=axis)
    want = np.concatenate(arrays, axis=axis)
    assert out.shape == want.shape and out.dtype == "float64"
    np.testing.assert_array_equal(out.numpy(), want)
    np.testing.assert_array_equal(lm.concat([t64(a) for a in arrays], axis).numpy(), want)


def test_concatenate_noncontiguous():
    a, b = rand(4, 3), rand(6, 4)
    ta, tb = t64(a).T, t64(b)[::2]  # transposed and strided views
    assert not ta.is_contiguous() and not tb.is_contiguous()
    np.testing.assert_array_equal(lm.concatenate([ta, tb]).numpy(), np.concatenate([a.T, b[::2]]))
    check_grad("join", lambda x, y: lm.concatenate([x.T, y[::2]], axis=0), [a, b])


# Lamina's promotion rule (cpp/core/dtype.cpp): numpy's within a kind, and a float
# dtype wins over integers without widening (int32 + float32 -> float32, as in PyTorch).
@pytest.mark.parametrize("dtypes,want", [
    (("int32", "float32"), "float32"), (("int64", "float32"), "float32"), (("bool", "int32"), "int32"),
    (("uint8", "int32"), "int32"), (("float32", "float64"), "float64"), (("float16", "float32"), "float32"),
    (("int32", "int64"), "int64"), (("float16", "bfloat16"), "float32"), (("int64", "float16", "bool"), "float16"),
])
def test_concatenate_promotes(dtypes, want):
    arrays = [np.arange(6).reshape(2, 3) for _ in dtypes]
    tensors = [lm.tensor(a).astype(d) for a, d in zip(arrays, dtypes)]
    out = lm.concatenate(tensors, axis=1)
    assert out.dtype == want
    ref = [a.astype(bool) if d == "bool" else a for a, d in zip(arrays, dtypes)]
    np.testing.assert_array_equal(out.astype("float64").numpy(), np.concatenate(ref, axis=1).astype(np.float64))
    assert lm.stack(tensors).dtype == want


def test_concatenate_python_lists():
    out = lm.concatenate([[[1.0, 2.0]], np.array([[3.0, 4.0]])])
    np.testing.assert_array_equal(out.numpy(), [[1, 2], [3, 4]])


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concatenate_grad(axis):
    arrays = [rand(2, 3), rand(2, 3), rand(2, 3)]
    check_grad("join", lambda *xs: lm.concatenate(list(xs), axis=axis), arrays)


def test_concatenate_grad_partial_and_dtype():
    x = lm.tensor(rand(2, 3), dtype="float32", requires_grad=True)
    y = lm.tensor(rand(1, 3), dtype="float64")  # no grad
    z = lm.tensor(rand(3, 3), dtype="float64", requires_grad=True)
    out = lm.concatenate([x, y, z])
    assert out.dtype == "float64"
    lm.sum(out * t64(np.arange(18.0).reshape(6, 3))).backward()
    assert x.grad.dtype == "float32" and y.grad is None
    np.testing.assert_allclose(x.grad.numpy(), np.arange(6.0).reshape(2, 3))
    np.testing.assert_allclose(z.grad.numpy(), np.arange(9.0, 18.0).reshape(3, 3))


def test_concatenate_empty_grad():
    check_grad("join", lambda x, y: lm.concatenate([x, y], axis=0), [rand(0, 3), rand(2, 3)])


def test_concatenate_second_order():
    x = lm.tensor(rand(3), dtype="float64", requires_grad=True)
    y = lm.concatenate([x * x, x])
    (g,) = lm.grad([lm.sum(y * y)], [x], create_graph=True)
    lm.sum(g).backward()
    xv = x.detach().numpy()
    # d/dx sum(4x^3 + 2x) = 12x^2 + 2
    np.testing.assert_allclose(x.grad.numpy(), 12 * xv ** 2 + 2)


# ---------------------------------------------------------------- stack

@pytest.mark.parametrize("shape,axis", [((2, 3), 0), ((2, 3), 1), ((2, 3), 2), ((2, 3), -1), ((2, 3), -3),
                                        ((), 0), ((0, 2), 1)])
def test_stack_values(shape, axis):
    arrays = [rand(*shape) for _ in range(3)]
    out = lm.stack([t64(a) for a in arrays], axis=axis)
    want = np.stack(arrays, axis=axis)
    assert out.shape == want.shape
    np.testing.assert_array_equal(out.numpy(), want)


def test_stack_promotes_and_noncontiguous():
    a = np.arange(6, dtype=np.int32).reshape(3, 2)
    b = rand(2, 3).astype(np.float32)
    out = lm.stack([lm.tensor(a).T, lm.tensor(b)], axis=1)
    want = np.stack([a.T, b], axis=1)
    assert out.dtype == "float32"
    np.testing.assert_array_equal(out.numpy(), want)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_stack_grad(axis):
    check_grad("join", lambda x, y: lm.stack([x, y.T], axis=axis), [rand(2, 3), rand(3, 2)])


# ---------------------------------------------------------------- split

@pytest.mark.parametrize("shape,ios,axis", [
    ((6, 2), 3, 0), ((2, 6), 2, -1), ((4, 3), 1, 0), ((0, 3), 2, 0),
    ((7, 2), [2, 5], 0), ((7, 2), [0, 7], 0), ((7, 2), [3, 10], 0), ((7, 2), [5, 2], 0),
    ((7, 2), [-2], 0), ((2, 7), [1, 1, 4], 1), ((7,), [], 0),
])
def test_split_values(shape, ios, axis):
    a = rand(*shape)
    parts = lm.split(t64(a), ios, axis=axis)
    want = np.split(a, ios, axis=axis)
    assert isinstance(parts, list) and len(parts) == len(want)
    for p, w in zip(parts, want):
        assert p.shape == w.shape
        np.testing.assert_array_equal(p.numpy(), w)


def test_split_returns_views():
    x = t64(np.zeros((4, 3)))
    parts = lm.split(x, 2)
    x[2, 1] = 7.0
    assert parts[1].numpy()[0, 1] == 7.0
    assert x.split(2)[0].shape == (2, 3)  # method form


def test_split_noncontiguous():
    a = rand(3, 6)
    parts = lm.split(t64(a).T, [1, 4])
    for p, w in zip(parts, np.split(a.T, [1, 4])):
        np.testing.assert_array_equal(p.numpy(), w)


@pytest.mark.parametrize("ios,axis", [(3, 0), ([1, 4], 0), ([2], -1), (1, 1)])
def test_split_grad(ios, axis):
    check_grad("join", lambda x: lm.split(x, ios, axis=axis), [rand(6, 4)])


def test_split_grad_partial_use():
    x = lm.tensor(rand(6, 2), dtype="float64", requires_grad=True)
    a, _, c = lm.split(x, 3)
    lm.sum(a * 2.0 + c).backward()
    want = np.zeros((6, 2))
    want[:2] = 2.0
    want[4:] = 1.0
    np.testing.assert_array_equal(x.grad.numpy(), want)


# ---------------------------------------------------------------- chunk

@pytest.mark.parametrize("n,chunks,sizes", [
    (5, 3, [2, 2, 1]), (6, 3, [2, 2, 2]), (6, 4, [2, 2, 2]), (2, 5, [1, 1]), (7, 1, [7]), (1, 1, [1]),
    (0, 3, [0, 0, 0]),
])
def test_chunk_sizes(n, chunks, sizes):
    a = rand(2, n)
    parts = lm.chunk(t64(a), chunks, axis=-1)
    assert [p.shape[1] for p in parts] == sizes
    np.testing.assert_array_equal(np.concatenate([p.numpy() for p in parts], axis=1), a)


def test_chunk_method_and_grad():
    a = rand(5, 3)
    assert [p.shape for p in t64(a).chunk(2)] == [(3, 3), (2, 3)]
    check_grad("join", lambda x: lm.chunk(x.T, 2, axis=1), [a])


# ---------------------------------------------------------------- pad

@pytest.mark.parametrize("shape,pw", [
    ((2, 3), 1), ((2, 3), (1, 2)), ((2, 3), ((1, 0), (0, 2))), ((2, 3), ((1,), (2,))), ((2, 3), [[0, 0], [3, 1]]),
    ((4,), (2, 3)), ((2, 3, 2), ((0, 1), (1, 1), (2, 0))), ((0, 2), 1), ((), 2), ((2, 3), 0), ((2, 3), (2,)),
])
def test_pad_constant_values(shape, pw):
    a = rand(*shape)
    out = lm.pad(t64(a), pw)
    want = np.pad(a, pw)
    assert out.shape == want.shape
    np.testing.assert_array_equal(out.numpy(), want)


def test_pad_constant_value_and_dtype():
    a = np.arange(6, dtype=np.int32).reshape(2, 3)
    out = lm.pad(lm.tensor(a), ((1, 1), (0, 2)), value=-5)
    assert out.dtype == "int32"
    np.testing.assert_array_equal(out.numpy(), np.pad(a, ((1, 1), (0, 2)), constant_values=-5))
    f = rand(3)
    np.testing.assert_array_equal(lm.pad(t64(f), 2, "constant", 1.5).numpy(), np.pad(f, 2, constant_values=1.5))


@pytest.mark.parametrize("mode", ["edge", "reflect", "wrap"])
@pytest.mark.parametrize("pw", [((1, 2), (2, 1)), ((0, 0), (3, 0)), 1, ((2, 2), (0, 1))])
def test_pad_modes_values(mode, pw):
    a = rand(4, 5)
    np.testing.assert_array_equal(lm.pad(t64(a), pw, mode=mode).numpy(), np.pad(a, pw, mode=mode))


def test_pad_reflect_size_one_axis():
    a = rand(1, 4)
    np.testing.assert_array_equal(lm.pad(t64(a), ((0, 0), (1, 1)), mode="reflect").numpy(),
                                  np.pad(a, ((0, 0), (1, 1)), mode="reflect"))


def test_pad_noncontiguous():
    a = rand(4, 6)
    np.testing.assert_array_equal(lm.pad(t64(a)[:, ::2], (1, 2)).numpy(), np.pad(a[:, ::2], (1, 2)))
    np.testing.assert_array_equal(lm.pad(t64(a).T, 1, mode="reflect").numpy(), np.pad(a.T, 1, mode="reflect"))


def test_pad_returns_new_memory():
    x = t64(np.zeros(3))
    out = lm.pad(x, 0, mode="edge")
    out[0] = 1.0
    assert x.numpy()[0] == 0.0


@pytest.mark.parametrize("mode", ["constant", "edge", "reflect", "wrap"])
def test_pad_grad(mode):
    check_grad("join", lambda x: lm.pad(x.T, ((1, 2), (2, 1)), mode=mode), [rand(3, 4)])


# ---------------------------------------------------------------- errors

def test_errors_concatenate():
    a, b = t64(rand(2, 3)), t64(rand(2, 4))
    with pytest.raises(ValueError, match=r"concatenate.*\(2, 3\).*\(2, 4\)"):
        lm.concatenate([a, b], axis=0)
    with pytest.raises(ValueError, match=r"concatenate.*same number of dimensions.*\(3,\)"):
        lm.concatenate([a, t64(rand(3))])
    with pytest.raises(ValueError, match="concatenate"):
        lm.concatenate([])
    with pytest.raises(ValueError, match="zero-dimensional"):
        lm.concatenate([t64(1.0), t64(2.0)])
    with pytest.raises(IndexError, match="concatenate"):
        lm.concatenate([a, a], axis=2)
    with pytest.raises(IndexError, match="concatenate"):
        lm.concatenate([a, a], axis=-3)
    with pytest.raises(TypeError):
        lm.concatenate(a)


def test_errors_stack():
    with pytest.raises(ValueError, match=r"stack.*\(2, 3\).*\(3, 2\)"):
        lm.stack([t64(rand(2, 3)), t64(rand(3, 2))])
    with pytest.raises(ValueError, match="stack"):
        lm.stack([])
    with pytest.raises(IndexError, match="stack"):
        lm.stack([t64(rand(2)), t64(rand(2))], axis=2)
    with pytest.raises(IndexError, match="stack"):
        lm.stack([t64(rand(2)), t64(rand(2))], axis=-3)


def test_errors_split_chunk():
    x = t64(rand(5, 2))
    with pytest.raises(ValueError, match=r"split.*\(5, 2\).*3 equal"):
        lm.split(x, 3)
    with pytest.raises(ValueError, match="split"):
        lm.split(x, 0)
    with pytest.raises(IndexError, match="split"):
        lm.split(x, 1, axis=2)
    with pytest.raises(IndexError, match="split"):
        lm.split(t64(1.0), 1)
    with pytest.raises(ValueError, match="chunk"):
        lm.chunk(x, 0)
    with pytest.raises(IndexError, match="chunk"):
        lm.chunk(x, 2, axis=-3)


def test_errors_pad():
    x = t64(rand(2, 3))
    with pytest.raises(ValueError, match="pad"):
        lm.pad(x, -1)
    with pytest.raises(ValueError, match="pad"):
        lm.pad(x, ((1, 1), (1, 1), (1, 1)))
    with pytest.raises(ValueError, match="pad"):
        lm.pad(x, (1, 2, 3))
    with pytest.raises(ValueError, match="mode 'median'"):
        lm.pad(x, 1, mode="median")
    with pytest.raises(ValueError, match="reflect"):
        lm.pad(x, ((2, 0), (0, 0)), mode="reflect")
    with pytest.raises(ValueError, match="wrap"):
        lm.pad(x, ((0, 3), (0, 0)), mode="wrap")
    with pytest.raises(ValueError, match="empty axis"):
        lm.pad(t64(rand(0, 2)), 1, mode="edge")

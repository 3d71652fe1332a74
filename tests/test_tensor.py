"""The tensor: creation, views sharing storage, indexing (with gradients), numpy/DLPack interop,
Python conversions, random draws and matmul."""

import numpy as np
import pytest

import lamina as lm
from helpers import check_errors, check_grad, check_op, make_input, to_lamina

try:
    import torch
except ImportError:  # pragma: no cover
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch not installed")


def same(t, expected, dtype=None):
    """t has exactly the values (and dtype, if given) of `expected`."""
    expected = np.asarray(expected)
    assert tuple(t.shape) == expected.shape, (t.shape, expected.shape)
    np.testing.assert_array_equal(t.numpy(), expected)
    if dtype is not None:
        assert t.dtype == dtype


def shares_memory(a, b):
    return np.shares_memory(a.numpy(), b.numpy())


# ----------------------------------------------------------------------------- creation
@pytest.mark.parametrize("data,dtype,expected", [
    ([1.0, 2.0], None, "float32"), ([1, 2], None, "int64"), ([True, False], None, "bool"), (3.5, None, "float32"),
    (7, None, "int64"), (True, None, "bool"), ([[1, 2], [3, 4.5]], None, "float32"), ([1, 2], "float64", "float64"),
    (np.arange(3, dtype=np.int32), None, "int32"), (np.ones(2, np.float64), None, "float64"),
    (np.ones(2, np.uint8), None, "uint8"), (np.float32(2.0), None, "float32"), ([], None, "float32"),
    ([1.5, 2.5], "int32", "int32"), (np.ones(2, np.float16), None, "float16"),
])
def test_tensor_from_data(data, dtype, expected):
    t = lm.tensor(data, dtype=dtype)
    assert t.dtype == expected
    np.testing.assert_array_equal(t.numpy(), np.asarray(data).astype(expected))


def test_tensor_copies_but_asarray_shares():
    a = np.arange(6.0)
    t, v = lm.tensor(a), lm.asarray(a)
    a[0] = 42.0
    assert t[0].item() == 0.0 and v[0].item() == 42.0


def test_tensor_requires_grad_and_from_tensor():
    t = lm.tensor([1.0, 2.0], requires_grad=True)
    assert t.requires_grad and t.is_leaf and t.grad is None
    c = lm.tensor(t)
    assert not c.requires_grad and not shares_memory(c, t)


@pytest.mark.parametrize("fn,args,expected", [
    (lm.zeros, ((2, 3),), np.zeros((2, 3))), (lm.ones, (4,), np.ones(4)), (lm.zeros, ((),), np.zeros(())),
    (lm.full, ((2, 2), 7.5), np.full((2, 2), 7.5)), (lm.zeros, ((0, 3),), np.zeros((0, 3))),
    (lm.arange, (5,), np.arange(5)), (lm.arange, (2, 11, 3), np.arange(2, 11, 3)),
    (lm.arange, (0, 1, 0.25), np.arange(0, 1, 0.25)), (lm.arange, (5, 0, -2), np.arange(5, 0, -2)),
    (lm.arange, (3, 3), np.arange(3, 3)), (lm.linspace, (0, 1, 5), np.linspace(0, 1, 5)),
    (lm.linspace, (-1, 1, 4, False), np.linspace(-1, 1, 4, endpoint=False)), (lm.linspace, (2, 3, 1), [2.0]),
    (lm.linspace, (0, 1, 0), np.zeros(0)), (lm.eye, (3,), np.eye(3)), (lm.eye, (2, 4, 1), np.eye(2, 4, 1)),
    (lm.eye, (3, 3, -1), np.eye(3, k=-1)),
])
def test_creation_functions(fn, args, expected):
    t = fn(*args)
    np.testing.assert_allclose(t.numpy(), np.asarray(expected, dtype=np.float64), rtol=1e-6, atol=1e-7)
    assert tuple(t.shape) == np.shape(expected)


def test_creation_dtypes():
    assert lm.zeros(2).dtype == "float32" and lm.zeros(2, dtype="int32").dtype == "int32"
    assert lm.arange(5).dtype == "int64" and lm.arange(0.0, 1.0, 0.5).dtype == "float32"
    assert lm.full((2,), 7).dtype == "float32" and lm.eye(2, dtype="float64").dtype == "float64"
    assert lm.ones(3, dtype=np.float64).dtype == "float64" and lm.ones(3, dtype=float).dtype == "float32"
    assert lm.empty((2, 3)).shape == (2, 3) and lm.empty(4, dtype="int64").dtype == "int64"
    assert lm.ones(3, requires_grad=True).requires_grad


@pytest.mark.parametrize("fn,value", [(lm.zeros_like, 0), (lm.ones_like, 1), (lambda t, **k: lm.full_like(t, 3, **k), 3)])
def test_like_functions(fn, value):
    base = lm.tensor(np.arange(6).reshape(2, 3).astype(np.float64)).T  # non-contiguous source
    same(fn(base), np.full((3, 2), value, np.float64), "float64")
    same(fn(base, dtype="int32"), np.full((3, 2), value, np.int32), "int32")
    assert lm.empty_like(base).shape == (3, 2) and lm.empty_like(base).dtype == "float64"


def test_creation_errors():
    check_errors(lm.zeros, [(((2, -1),), ValueError, "-1"), (("a",), TypeError, "zeros: shape"),
                            (((2, 1.5),), TypeError, "zeros: shape entries must be integers")])
    check_errors(lm.tensor, [(([[1, 2], [3]],), TypeError, "tensor"), (("abc",), TypeError, "tensor"),
                             ((object(),), TypeError, "tensor"), (([1.0], "float128"), (TypeError, ValueError), "float128")])
    check_errors(lm.arange, [((0, 5, 0), ValueError, "arange")])
    check_errors(lm.linspace, [((0, 1, -1), ValueError, "linspace")])
    check_errors(lm.eye, [((-1,), ValueError, "eye")])


# ----------------------------------------------------------------------------- views
VIEWS = [
    ("reshape", lambda t: t.reshape(4, 3), lambda a: a.reshape(4, 3)),
    ("reshape_infer", lambda t: lm.reshape(t, (2, -1)), lambda a: a.reshape(2, -1)),
    ("view", lambda t: t.view(12), lambda a: a.reshape(12)),
    ("flatten", lambda t: lm.flatten(t), lambda a: a.reshape(-1)),
    ("transpose", lambda t: t.transpose(0, 1), lambda a: a.T),
    ("T", lambda t: t.T, lambda a: a.T),
    ("permute", lambda t: t.reshape(2, 2, 3).permute(2, 0, 1), lambda a: a.reshape(2, 2, 3).transpose(2, 0, 1)),
    ("unsqueeze", lambda t: lm.unsqueeze(t, 1), lambda a: a[:, None]),
    ("squeeze", lambda t: lm.squeeze(t.reshape(1, 3, 1, 4)), lambda a: a),
    ("squeeze_axis", lambda t: lm.squeeze(t.reshape(1, 3, 1, 4), 2), lambda a: a.reshape(1, 3, 4)),
    ("expand", lambda t: t[:, :1].expand(3, 5), lambda a: np.broadcast_to(a[:, :1], (3, 5))),
    ("broadcast_to", lambda t: lm.broadcast_to(t, (2, 3, 4)), lambda a: np.broadcast_to(a, (2, 3, 4))),
    ("slice_steps", lambda t: t[::2, 1::2], lambda a: a[::2, 1::2]),
    ("slice_negative", lambda t: t[-2:, ::-2], lambda a: a[-2:, ::-2]),
    ("int_index", lambda t: t[-1], lambda a: a[-1]),
    ("ellipsis_newaxis", lambda t: t[..., None, 1], lambda a: a[..., None, 1]),
    ("swapaxes", lambda t: lm.swapaxes(t, 0, 1), lambda a: a.swapaxes(0, 1)),
    ("mT", lambda t: t.reshape(1, 3, 4).mT, lambda a: a.reshape(1, 3, 4).transpose(0, 2, 1)),
]


@pytest.mark.parametrize("name,fn,ref", VIEWS, ids=[v[0] for v in VIEWS])
def test_views_share_storage_and_have_gradients(name, fn, ref):
    base = np.arange(12.0).reshape(3, 4)
    t = lm.tensor(base)
    v = fn(t)
    same(v, ref(base))
    assert shares_memory(v, t), f"{name} should be a view"
    if name not in ("expand", "broadcast_to"):  # broadcast views are read-only in spirit
        v.numpy()[...] = -1.0 if v.size else 0
        assert (t.numpy() == -1.0).sum() == v.size, f"{name}: writes through the view reach the base"
    check_op(name, fn, ref, [make_input((3, 4))], dtypes=("float32",))  # values and gradient


def test_reshape_copies_when_it_must_and_view_refuses():
    t = lm.tensor(np.arange(12.0).reshape(3, 4)).T
    r = t.reshape(12)
    same(r, np.arange(12.0).reshape(3, 4).T.reshape(12))
    assert not shares_memory(r, t)
    check_errors(t.view, [((12,), ValueError, "view")])


def test_contiguous():
    t = lm.tensor(np.arange(12.0).reshape(3, 4))
    assert t.is_contiguous() and shares_memory(t.contiguous(), t)
    s = t[:, ::2]
    assert not s.is_contiguous()
    c = s.contiguous()
    assert c.is_contiguous() and not shares_memory(c, t) and c.strides == (2, 1)
    same(c, np.arange(12.0).reshape(3, 4)[:, ::2])


def test_view_errors():
    t = lm.ones((2, 3))
    check_errors(t.reshape, [((4, 2), ValueError, "(2, 3)"), ((-1, -1), ValueError, "reshape")])
    check_errors(lambda *a: t.permute(*a), [((0,), ValueError, "permute"), ((0, 0), ValueError, "permute"),
                                            ((0, 5), (ValueError, IndexError), "permute")])
    check_errors(lambda s: lm.broadcast_to(t, s), [(((3, 3),), ValueError, "(2, 3)")])
    check_errors(lambda a: lm.squeeze(t, a), [(0, ValueError, "squeeze")])
    check_errors(lambda a: lm.unsqueeze(t, a), [(5, (ValueError, IndexError), "unsqueeze")])
    check_errors(t.transpose, [((0, 2), (ValueError, IndexError), "transpose")])


# ----------------------------------------------------------------------------- indexing
GETITEM = [
    ("int_list", [0, 2, 2], None), ("int_array_neg", np.array([-1, 0]), None),
    ("bool_mask_rows", np.array([True, False, True]), None), ("tuple_slice_array", (slice(None), [3, 0]), None),
    ("int_tensor_2d", lm.tensor([[0, 1], [2, 2]]), np.array([[0, 1], [2, 2]])),
    ("bool_mask_full", "mask", None), ("scalar_int", 1, None), ("negative_slice", (slice(None, None, -1), 2), None),
]


@pytest.mark.parametrize("name,key,npkey", GETITEM, ids=[g[0] for g in GETITEM])
def test_getitem_values_and_gradients(name, key, npkey):
    x = make_input((3, 4))
    if isinstance(key, str):
        key = npkey = x > 0
        check_op(name, lambda t: t[lm.tensor(key)], lambda a: a[key], [x])
        return
    npkey = key if npkey is None else npkey
    check_op(name, lambda t: t[key], lambda a: a[npkey], [x])  # gradients scatter back (repeats add up)


def test_gather_with_repeated_indices_accumulates_gradient():
    x = lm.tensor([1.0, 2.0, 3.0], requires_grad=True)
    lm.sum(x[[0, 0, 2, 0]]).backward()
    assert x.grad.tolist() == [3.0, 0.0, 1.0]


def test_indexing_errors():
    t = lm.ones((2, 3))
    check_errors(t.__getitem__, [(5, IndexError, "5"), (((0, 0, 0),), IndexError, "too many indices"),
                                 ([[0, 7]], IndexError, "7"), (1.5, IndexError, "1.5"), ("a", IndexError, "'a'"),
                                 (((Ellipsis, Ellipsis),), IndexError, "single ellipsis"),
                                 (lm.tensor([0.5]), IndexError, "integer or boolean"),
                                 (np.array([True, False, True]), IndexError, "boolean index of shape (3,)"),
                                 (slice(None, None, 0), ValueError, "slice step cannot be zero")])


def test_setitem_basic_and_masks():
    a = np.arange(12.0).reshape(3, 4)
    t = lm.tensor(a)
    v0 = t._version
    t[0] = 5.0
    a[0] = 5.0
    t[1:, ::2] = lm.tensor([[-1.0, -2.0]])  # broadcast value into a strided region
    a[1:, ::2] = [[-1.0, -2.0]]
    t[t > 8] = 0.0
    a[a > 8] = 0.0
    t[[0, 2]] = lm.tensor([7.0, 7.0, 7.0, 7.0])
    a[[0, 2]] = 7.0
    t[..., -1] = np.float64(3.0)
    a[..., -1] = 3.0
    same(t, a)
    assert t._version > v0


def test_setitem_gradients():
    def fn(x, v):
        y = x * 1.0  # not a leaf: may be modified in place
        y[1:, ::2] = v
        return y * y

    check_grad("setitem_slice", fn, [make_input((3, 4)), make_input((1, 2), rng=np.random.default_rng(1))])

    def masked(x, v):
        y = x + 0.0
        y[lm.tensor(np.array([True, False, True]))] = v
        return y * x

    check_grad("setitem_mask", masked, [make_input((3, 2)), make_input((2,), rng=np.random.default_rng(2))])

    def put_rows(x, v):
        y = x * 2.0
        y[[2, 0]] = v
        return y * x

    check_grad("setitem_int_array", put_rows, [make_input((3, 2)), make_input((2, 2), rng=np.random.default_rng(3))])


def test_setitem_mask_numpy_semantics():
    a = np.arange(8.0).reshape(4, 2)
    t = lm.tensor(a)
    rows = np.array([True, False, True, False])
    t[lm.tensor(rows)] = lm.tensor([[10.0, 11.0], [12.0, 13.0]])  # one value per selected row
    a[rows] = [[10.0, 11.0], [12.0, 13.0]]
    t[lm.tensor(a > 11)] = lm.tensor([-1.0, -2.0])  # full mask: values in row-major order
    a[a > 11] = [-1.0, -2.0]
    t[lm.tensor(rows[::-1].copy())] = lm.tensor([5.0, 6.0])  # broadcast over the row
    a[rows[::-1]] = [5.0, 6.0]
    same(t, a)
    check_errors(t.__setitem__, [((lm.tensor([True, False]), 1.0), IndexError, "(2,)"),
                                 ((lm.tensor(rows), lm.ones(3)), ValueError, "(3,)")])


def test_setitem_errors():
    leaf = lm.ones(3, requires_grad=True)
    check_errors(lambda: leaf.__setitem__(0, 2.0), [((), RuntimeError, "leaf")])
    t = lm.ones((2, 3))
    check_errors(t.__setitem__, [((0, lm.ones(4)), ValueError, "(4,)"), ((5, 1.0), IndexError, "5"),
                                 (((slice(None), [0, 1]), 1.0), IndexError, "setitem")])


# ----------------------------------------------------------------------------- interop
def test_numpy_is_zero_copy_when_contiguous():
    t = lm.zeros((2, 3))
    n = t.numpy()
    n[1, 2] = 9.0
    assert t[1, 2].item() == 9.0
    t[0, 0] = 4.0  # and the other way round
    assert n[0, 0] == 4.0
    assert np.asarray(t).shape == (2, 3) and np.shares_memory(np.asarray(t), n)
    assert np.asarray(t, dtype=np.float64).dtype == np.float64


def test_numpy_of_views_and_dtypes():
    t = lm.tensor(np.arange(12.0).reshape(3, 4))[:, 1::2]
    same(t, np.arange(12.0).reshape(3, 4)[:, 1::2])
    for dtype in ("float16", "float64", "int32", "int64", "uint8", "bool"):
        assert t.astype(dtype).numpy().dtype == np.dtype(dtype)
    assert lm.ones(2, dtype="bfloat16").numpy().dtype == np.float32  # numpy has no bfloat16


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "int32", "int64", "uint8", "bool"])
def test_dlpack_numpy_round_trip(dtype):
    a = np.arange(6).reshape(2, 3).astype(dtype)
    t = lm.from_dlpack(a)
    assert t.dtype == dtype
    same(t, a)
    assert np.shares_memory(np.from_dlpack(t), a)
    assert lm.from_dlpack(a.T).strides == (1, 3)
    same(lm.from_dlpack(np.from_dlpack(t[:, ::2])), a[:, ::2])
    assert t.__dlpack_device__() == (1, 0)


@needs_torch
@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16", "int64", "int32", "uint8", "bool"])
def test_dlpack_torch_round_trip(dtype):
    t = lm.arange(6).reshape(2, 3).astype(dtype)
    pt = torch.from_dlpack(t)
    assert str(pt.dtype) == "torch." + dtype
    np.testing.assert_array_equal(pt.float().numpy(), t.astype("float32").numpy())
    if dtype == "float32":
        pt[0, 1] = 42  # zero copy
        assert t[0, 1].item() == 42
        assert torch.from_dlpack(t.T).stride() == (1, 3)
    back = lm.from_dlpack(torch.arange(6).reshape(2, 3).to(getattr(torch, dtype)))
    assert back.dtype == dtype
    np.testing.assert_array_equal(back.astype("float32").numpy(), np.arange(6.0).reshape(2, 3).astype(bool).astype(
        np.float32) if dtype == "bool" else np.arange(6.0).reshape(2, 3))


def test_item_tolist_conversions():
    assert lm.tensor(2.5).item() == 2.5 and isinstance(lm.tensor(2.5).item(), float)
    assert lm.tensor([7]).item() == 7 and isinstance(lm.tensor(7).item(), int)
    assert lm.tensor(True).item() is True
    assert lm.tensor([[1, 2], [3, 4]]).tolist() == [[1, 2], [3, 4]]
    assert lm.tensor(np.arange(6.0).reshape(2, 3)).T.tolist() == [[0.0, 3.0], [1.0, 4.0], [2.0, 5.0]]
    assert float(lm.tensor([1.5])) == 1.5 and int(lm.tensor(3)) == 3 and bool(lm.tensor([0.0])) is False
    assert [10, 20, 30][lm.tensor(1)] == 20 and len(lm.ones((4, 2))) == 4
    assert lm.ones(3, dtype="bfloat16").tolist() == [1.0, 1.0, 1.0]
    check_errors(lambda t: t.item(), [(lm.ones(2), ValueError, "shape (2,)")])
    check_errors(bool, [(lm.ones(2), ValueError, "ambiguous")])
    check_errors(len, [(lm.tensor(1.0), TypeError, "0-d")])
    check_errors(lambda t: [1][t], [(lm.tensor(0.0), TypeError, "integer")])


def test_repr():
    assert repr(lm.tensor([1.0, 2.0])) == "tensor([1., 2.])"
    assert repr(lm.tensor([1, 2])) == "tensor([1, 2])"
    assert repr(lm.tensor([1.0], dtype="float64")) == "tensor([1.], dtype=float64)"
    assert repr(lm.tensor([1.0], requires_grad=True)) == "tensor([1.], requires_grad=True)"
    assert repr(lm.tensor([1.0], requires_grad=True) * 2) == "tensor([2.], grad_fn=<mul>)"
    assert repr(lm.zeros((0, 3))) == "tensor([], shape=(0, 3))"
    assert repr(lm.tensor(3.5)) == "tensor(3.5)"
    assert "..." in repr(lm.zeros(5000)) and repr(lm.ones(2, dtype="bfloat16")).endswith("dtype=bfloat16)")


def test_properties():
    t = lm.ones((2, 3, 4), dtype="float64")
    assert (t.shape, t.ndim, t.size, t.numel(), t.itemsize, t.nbytes) == ((2, 3, 4), 3, 24, 24, 8, 192)
    assert t.strides == (12, 4, 1) and t.device == "cpu" and isinstance(t.shape, tuple)


# ----------------------------------------------------------------------------- random
@pytest.mark.parametrize("draw", [lambda: lm.rand(3, 4), lambda: lm.randn((1000,)), lambda: lm.randint(0, 10, (50,)),
                                  lambda: lm.uniform(-2, 3, (20,)), lambda: lm.normal(1, 2, (20,)),
                                  lambda: lm.randperm(30)])
def test_random_seed_reproducibility(draw):
    lm.random.seed(123)
    a = draw().numpy().copy()
    b = draw().numpy().copy()
    lm.random.seed(123)
    np.testing.assert_array_equal(draw().numpy(), a)
    assert not np.array_equal(a, b), "consecutive draws must differ"
    state = lm.random.get_state()
    c = draw().numpy().copy()
    lm.random.set_state(state)
    np.testing.assert_array_equal(draw().numpy(), c)
    lm.random.seed(124)
    assert not np.array_equal(draw().numpy(), a), "another seed gives other numbers"


def test_random_distributions():
    u = lm.rand(100_000).numpy()
    assert u.min() >= 0.0 and u.max() < 1.0 and abs(u.mean() - 0.5) < 0.01 and abs(u.std() - 12**-0.5) < 0.01
    n = lm.randn(100_000).numpy()
    assert abs(n.mean()) < 0.02 and abs(n.std() - 1.0) < 0.02
    assert abs((np.abs(n) < 1).mean() - 0.6827) < 0.01  # shape, not just moments
    n64 = lm.randn(100_000, dtype="float64")
    assert n64.dtype == "float64" and abs(n64.numpy().std() - 1) < 0.02
    r = lm.randint(-3, 5, (100_000,)).numpy()
    assert r.min() == -3 and r.max() == 4 and r.dtype == np.int64
    assert np.all(np.abs(np.bincount(r + 3) / 100_000 - 1 / 8) < 0.01)
    assert sorted(lm.randperm(50).tolist()) == list(range(50))
    g = lm.normal(5.0, 0.5, (100_000,)).numpy()
    assert abs(g.mean() - 5) < 0.01 and abs(g.std() - 0.5) < 0.01
    w = lm.uniform(-2.0, 3.0, (100_000,)).numpy()
    assert w.min() >= -2 and w.max() < 3 and abs(w.mean() - 0.5) < 0.05


def test_random_errors():
    check_errors(lm.randint, [((5, 5, (3,)), ValueError, "randint"), ((5, 2, (3,)), ValueError, "randint")])
    check_errors(lm.random.seed, [(-1, ValueError, "seed"), (1.5, ValueError, "seed")])
    check_errors(lm.rand, [(-2, ValueError, "-2")])


# ----------------------------------------------------------------------------- matmul
MATMUL_SHAPES = [((3, 4), (4, 5)), ((4,), (4, 5)), ((3, 4), (4,)), ((4,), (4,)), ((2, 3, 4), (4, 5)),
                 ((3, 4), (2, 4, 5)), ((2, 1, 3, 4), (5, 4, 2)), ((1, 3, 4), (6, 4, 2)), ((0, 4), (4, 3)),
                 ((3, 0), (0, 2)), ((4,), (3, 4, 2)), ((2, 3, 4), (4,)), ((1, 1), (1, 1))]


@pytest.mark.parametrize("sa,sb", MATMUL_SHAPES, ids=str)
def test_matmul(sa, sb):
    a, b = make_input(sa, rng=np.random.default_rng(1)), make_input(sb, rng=np.random.default_rng(2))
    check_op("matmul", lm.matmul, np.matmul, [a, b], kind="matmul", torch_fn=torch and torch.matmul)


@pytest.mark.parametrize("ka,kb", [("transposed", "sliced"), ("broadcast", "transposed"), ("sliced", "contiguous")])
def test_matmul_layouts(ka, kb):
    a, b = make_input((5, 6), ka, rng=np.random.default_rng(3)), make_input((6, 7), kb, rng=np.random.default_rng(4))
    check_op("matmul", lambda x, y: x @ y, np.matmul, [a, b], kind="matmul")


def test_matmul_large_and_int():
    a, b = make_input((67, 129), rng=np.random.default_rng(5)), make_input((129, 33), rng=np.random.default_rng(6))
    check_op("matmul_big", lm.matmul, np.matmul, [a, b], kind="matmul", grad=False)
    check_errors(lm.matmul, [((lm.ones((2, 2), dtype="int64"), lm.ones((2, 2), dtype="int64")), TypeError,
                              "matmul: expected floating-point tensors")])  # float-only by design
    assert (np.ones((2, 3)) @ lm.ones((3, 2))).shape == (2, 2)  # reflected with a numpy left operand


def test_matmul_errors():
    check_errors(lm.matmul, [((lm.ones((2, 3)), lm.ones((4, 2))), ValueError, "(2, 3)"),
                             ((lm.ones(()), lm.ones(3)), ValueError, "matmul"),
                             ((lm.ones((2, 2, 3)), lm.ones((3, 3, 2))), ValueError, "matmul")])


def test_scatter_add_and_gather_on_0d():
    # used to read past the end of the (empty) shape and crash
    same(lm.scatter_add(lm.tensor(1.0), 0, lm.tensor(0), lm.tensor(2.0)), np.array(3.0))
    x = lm.tensor(3.0, requires_grad=True)
    lm.gather(x, 0, lm.tensor(0)).backward()
    assert x.grad.item() == 1.0
    check_errors(lm.scatter_add, [((lm.tensor(0.0), 0, lm.tensor(3, dtype="int32"), lm.tensor(0.0)), IndexError,
                                   "scatter_add: index 3 is out of bounds")])


def test_bad_argument_types_are_type_errors():
    check_errors(lm.gelu, [((lm.ones(2), 3), TypeError, "gelu: approximate must be")])
    check_errors(lm.arange, [((0, "5"), TypeError, "arange: stop must be a number")])
    check_errors(lm.zeros, [(((2**62,), "float16"), MemoryError, "shape (4611686018427387904,)")])


@pytest.mark.parametrize("n,m,k", [(3, 3, 0), (3, 5, 2), (5, 3, -2), (3, 3, 5), (3, 3, -5), (3, 3, 2**62),
                                   (3, 3, -2**63), (0, 4, 0), (7, 2, 1)])
def test_eye_any_diagonal(n, m, k):
    np.testing.assert_array_equal(lm.eye(n, m, k).numpy(), np.eye(n, m, max(min(k, 100), -100), dtype=np.float32))

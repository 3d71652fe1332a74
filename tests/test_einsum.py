"""einsum: values against numpy.einsum (float64), gradients against central finite
differences, implicit outputs, '...', diagonals, and the documented errors."""

import numpy as np
import pytest

import lamina as lm
from helpers import check_grad

RNG = np.random.default_rng(0)


def rand(*shape):
    return RNG.standard_normal(shape)


def t64(a):
    return lm.tensor(a, dtype="float64")


CASES = [
    ("ij,jk->ik", [(2, 3), (3, 4)]),
    ("bij,bjk->bik", [(2, 2, 3), (2, 3, 4)]),
    ("bhqd,bhkd->bhqk", [(2, 2, 3, 4), (2, 2, 5, 4)]),
    ("i,i->", [(5,), (5,)]),
    ("ij->ji", [(2, 3)]),
    ("ii->i", [(3, 3)]),
    ("ii->", [(3, 3)]),
    ("iij->j", [(2, 2, 3)]),
    ("ij->", [(2, 3)]),
    ("ij->j", [(2, 3)]),
    ("bi,bj->bij", [(2, 3), (2, 4)]),
    ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 2)]),
    ("i,j->ij", [(3,), (4,)]),
    ("ij,ij->ij", [(2, 3), (2, 3)]),
    ("ij,ij->", [(2, 3), (2, 3)]),
    ("ij,j->i", [(2, 3), (3,)]),
    ("ijk,ik->j", [(2, 3, 4), (2, 4)]),
    ("abc,cd,bd->ad", [(2, 3, 4), (4, 2), (3, 2)]),
    ("ij,kl->ijkl", [(2, 1), (1, 3)]),
    ("i,i,i->i", [(4,), (4,), (4,)]),
    (",ij->ij", [(), (2, 3)]),
    ("ij,jk", [(2, 3), (3, 4)]),          # implicit output
    ("ji,jk", [(3, 2), (3, 4)]),
    ("ba", [(2, 3)]),                      # implicit output sorts labels: a transpose
    ("ii", [(3, 3)]),                      # implicit trace
    ("Ba,aC", [(2, 3), (3, 4)]),           # upper case sorts first, like numpy
    ("ij,ij", [(2, 3), (2, 3)]),
    ("...ij,...jk->...ik", [(2, 1, 3, 4), (5, 4, 2)]),
    ("...i,...i", [(2, 3), (3,)]),
    ("i...->...", [(3, 2, 2)]),
    ("...ii->...i", [(2, 3, 3)]),
    ("b i j , b j k -> b i k", [(2, 2, 3), (2, 3, 2)]),
    ("ij,jk->ik", [(2, 0), (0, 3)]),       # empty contraction: zeros
    ("ij,jk->ik", [(0, 2), (2, 3)]),
]


@pytest.mark.parametrize("subscripts,shapes", CASES)
def test_einsum_values(subscripts, shapes):
    arrays = [rand(*s) for s in shapes]
    out = lm.einsum(subscripts, *[t64(a) for a in arrays])
    want = np.einsum(subscripts, *arrays)
    assert out.shape == want.shape and out.dtype == "float64"
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("subscripts,shapes", [c for c in CASES if all(0 not in s for s in c[1])])
def test_einsum_grad(subscripts, shapes):
    check_grad("einsum", lambda *xs: lm.einsum(subscripts, *xs), [rand(*s) for s in shapes])


def test_einsum_noncontiguous():
    a, b = rand(3, 2), rand(3, 8)
    out = lm.einsum("ij,jk->ik", t64(a).T, t64(b)[:, ::2])
    np.testing.assert_allclose(out.numpy(), np.einsum("ij,jk->ik", a.T, b[:, ::2]), rtol=1e-12)
    q, k = rand(2, 4, 3, 2), rand(2, 3, 4, 2)
    out = lm.einsum("bhqd,bhkd->bhqk", t64(q).permute(0, 2, 1, 3), t64(k))
    np.testing.assert_allclose(out.numpy(), np.einsum("bhqd,bhkd->bhqk", q.transpose(0, 2, 1, 3), k), rtol=1e-12)
    check_grad("einsum", lambda x, y: lm.einsum("ij,jk->ik", x.T, y[:, ::2]), [a, b])


def test_einsum_matches_matmul_float32():
    a, b = rand(3, 5).astype(np.float32), rand(5, 2).astype(np.float32)
    out = lm.einsum("ij,jk->ik", lm.tensor(a), lm.tensor(b))
    assert out.dtype == "float32"
    np.testing.assert_allclose(out.numpy(), a @ b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("subscripts,shapes", [("ij,jk->ik", [(2, 3), (3, 4)]), ("i,i->", [(4,), (4,)]),
                                               ("ij->ji", [(2, 3)]), ("bi,bj->bij", [(2, 3), (2, 2)])])
def test_einsum_integers(subscripts, shapes):
    arrays = [RNG.integers(-5, 5, size=s) for s in shapes]
    out = lm.einsum(subscripts, *[lm.tensor(a) for a in arrays])
    want = np.einsum(subscripts, *arrays)
    assert out.dtype == "int64"
    np.testing.assert_array_equal(out.numpy(), want)


def test_einsum_promotes():
    a, b = rand(2, 3).astype(np.float32), rand(3, 2)
    out = lm.einsum("ij,jk->ik", lm.tensor(a), t64(b))
    assert out.dtype == "float64"
    np.testing.assert_allclose(out.numpy(), a.astype(np.float64) @ b, rtol=1e-12)


def test_einsum_second_order():
    x = lm.tensor(rand(3), dtype="float64", requires_grad=True)
    y = lm.einsum("i,i->", x, x)  # |x|^2, gradient 2x
    (g,) = lm.grad([y], [x], create_graph=True)
    np.testing.assert_allclose(g.numpy(), 2 * x.detach().numpy())
    lm.sum(g).backward()
    np.testing.assert_allclose(x.grad.numpy(), np.full(3, 2.0))


@pytest.mark.parametrize("subscripts,shapes,match", [
    ("ij,jk->ik", [(2, 3)], "name 2 operands but 1"),
    ("ij->ik", [(2, 3)], "output label 'k'"),
    ("ij->ii", [(2, 3)], "more than once"),
    ("ij,jk->ik", [(2, 3), (4, 5)], r"label 'j' has size 3 .*\(2, 3\).* 4 .*\(4, 5\)"),
    ("ijk->i", [(2, 3)], r"operand 0 has shape \(2, 3\)"),
    ("i->i", [(2, 3)], r"operand 0 has shape \(2, 3\)"),
    ("i1->i", [(2, 3)], "invalid character '1'"),
    ("i->i->i", [(2,)], "more than one '->'"),
    ("..i->i", [(2,)], "'...'"),
    ("...i...->i", [(2, 2)], "'...'"),
    ("ij>ij", [(2, 3)], "invalid character '>'"),
    ("ii->i", [(2, 3)], "label 'i' has size"),
    ("...i,...i", [(2, 3), (4, 3)], r"label '\.\.\.' has size"),
    ("ij->i,j", [(2, 3)], "cannot contain ','"),
])
def test_einsum_errors(subscripts, shapes, match):
    with pytest.raises(ValueError, match=match):
        lm.einsum(subscripts, *[t64(rand(*s)) for s in shapes])


def test_einsum_no_operands():
    with pytest.raises(ValueError, match="at least one operand"):
        lm.einsum("")

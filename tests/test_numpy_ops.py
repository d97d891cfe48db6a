"""NumpyOps op by op against plain per-element loops (the definitions in engine/ops.py, written
the slow, obvious way), including the parts a whole-model comparison exercises weakly: GQA head
mapping, both rope pairings with freq factors, sliding windows, soft-capping, seq_ids, the
matmul row window, programs replayed with new step values, sample/advance."""
import math

import numpy as np
import pytest
from gguf import GGMLQuantizationType as T

from engine.backends.numpy_ops import NumpyOps
from engine.sampling import sample_token

rng = np.random.default_rng(0)


def f32(*shape):
    return rng.standard_normal(shape).astype(np.float32)


def tensor_with(ops, values, dtype="f32"):
    t = ops.tensor(values.shape[0], values.shape[1], dtype)
    ops.write(t, values)
    return t


def weight_f32(ops, w):        # w: [rows, width] -> GGUF shape (width, rows)
    return ops.weight("w", T.F32, (w.shape[1], w.shape[0]) if w.shape[0] > 1 else (w.shape[1],), w)


def test_matmul_row_window_and_bias():
    ops = NumpyOps()
    W, x, b = f32(10, 6), f32(4, 6), f32(1, 10)
    w, bias = weight_f32(ops, W), weight_f32(ops, b)
    out = ops.tensor(4, 8)
    ops.set_step(3, 0)                       # only 3 of the 4 rows are real
    ops.matmul(out, w, tensor_with(ops, x), bias=bias, w_row0=5, out_col0=2, n_out=4)
    got = ops.read(out)
    for t in range(3):
        for j in range(4):
            want = sum(W[5 + j, k] * x[t, k] for k in range(6)) + b[0, 5 + j]
            assert got[t, 2 + j] == pytest.approx(want, abs=1e-4)
    assert not got[3].any() and not got[:, :2].any() and not got[:, 6:].any()


@pytest.mark.parametrize("neox", [False, True])
def test_rope_pairs_and_freq_factors(neox):
    ops = NumpyOps()
    n_head, hd, n_rot, base, pos = 2, 8, 6, 500.0, 7
    x0 = f32(3, n_head * hd)
    factors = np.array([[1.0, 2.0, 4.0]], np.float32)
    x = tensor_with(ops, x0)
    ops.set_step(3, pos)
    ops.rope(x, n_head, hd, n_rot, base, neox, freq_scale=0.5, freq_factors=weight_f32(ops, factors))
    got = ops.read(x)
    want = x0.copy()
    for t in range(3):
        for h in range(n_head):
            for i in range(n_rot // 2):
                theta = (pos + t) * 0.5 * base ** (-2 * i / n_rot) / factors[0, i]
                a, b = (i, i + n_rot // 2) if neox else (2 * i, 2 * i + 1)
                xa, xb = x0[t, h * hd + a], x0[t, h * hd + b]
                want[t, h * hd + a] = xa * math.cos(theta) - xb * math.sin(theta)
                want[t, h * hd + b] = xa * math.sin(theta) + xb * math.cos(theta)
    np.testing.assert_allclose(got, want, atol=1e-5)


def naive_attention(q, k, v, n_head, n_kv, hd, scale, pos, n, causal, window, softcap, seq=None):
    out = np.zeros((n, n_head * hd))
    n_keys = pos + n if causal else n
    for t in range(n):
        p = pos + t
        for h in range(n_head):
            kvh = h // (n_head // n_kv)
            scores = []
            for j in range(n_keys):
                seen = (j <= p and (window == 0 or p - j < window)) if causal else (seq is None or seq[j] == seq[t])
                if not seen:
                    continue
                s = scale * float(q[t, h * hd:(h + 1) * hd] @ k[j, kvh * hd:(kvh + 1) * hd])
                if softcap:
                    s = softcap * math.tanh(s / softcap)
                scores.append((j, s))
            m = max(s for _, s in scores)
            z = sum(math.exp(s - m) for _, s in scores)
            for j, s in scores:
                out[t, h * hd:(h + 1) * hd] += math.exp(s - m) / z * v[j, kvh * hd:(kvh + 1) * hd]
    return out


@pytest.mark.parametrize("n", [3, 1])       # 1: a decoding row, which needs no mask unless windowed
@pytest.mark.parametrize("window,softcap", [(0, 0.0), (3, 0.0), (9, 0.0), (0, 5.0)])
def test_attention_gqa_causal(window, softcap, n):
    ops = NumpyOps()
    n_head, n_kv, hd, pos, n_ctx = 4, 2, 4, 5, 12
    kc, vc = f32(n_ctx, n_kv * hd), f32(n_ctx, n_kv * hd)
    q = f32(n, n_head * hd)
    out = ops.tensor(n, n_head * hd)
    ops.set_step(n, pos)
    ops.attention(out, tensor_with(ops, q), tensor_with(ops, kc), tensor_with(ops, vc), n_head, n_kv, hd,
                  scale=0.3, window=window, softcap=softcap)
    want = naive_attention(q, kc, vc, n_head, n_kv, hd, 0.3, pos, n, True, window, softcap)
    np.testing.assert_allclose(ops.read(out), want, atol=1e-5)


def test_attention_non_causal_seq_ids():
    ops = NumpyOps()
    n_head, hd, n = 2, 4, 5
    q, k, v = f32(n, n_head * hd), f32(n, n_head * hd), f32(n, n_head * hd)
    seq = np.array([0, 0, 1, 1, 1])
    out = ops.tensor(n, n_head * hd)
    ops.set_step(n, 0)
    ops.attention(out, tensor_with(ops, q), tensor_with(ops, k), tensor_with(ops, v), n_head, n_head, hd,
                  scale=0.5, causal=False, seq_ids=tensor_with(ops, seq.reshape(-1, 1).astype(np.int32), "i32"))
    want = naive_attention(q, k, v, n_head, n_head, hd, 0.5, 0, n, False, 0, 0.0, seq)
    np.testing.assert_allclose(ops.read(out), want, atol=1e-5)



def masked_attention(q, k, v, n_head, n_kv, hd, scale, seq):
    """Non-causal attention over the whole pass with a same-sequence mask, float64: what NumpyOps did
    before it attended each packed sequence on its own."""
    n, group = len(seq), n_head // n_kv
    qh = q.reshape(n, n_head, hd).transpose(1, 0, 2).astype(np.float64)                  # [H, n, d]
    kh = np.repeat(k.reshape(n, n_kv, hd).transpose(1, 0, 2), group, axis=0)             # [H, n, d]
    vh = np.repeat(v.reshape(n, n_kv, hd).transpose(1, 0, 2), group, axis=0)
    scores = np.where(seq[:, None] == seq[None, :], scale * qh @ kh.transpose(0, 2, 1), -np.inf)
    probs = np.exp(scores - scores.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    return (probs @ vh).transpose(1, 0, 2).reshape(n, n_head * hd)


@pytest.mark.parametrize("n_head,n_kv", [(3, 3), (4, 2)])
def test_attention_packed_sequences_match_the_masked_pass(n_head, n_kv):
    """Several packed sequences of different lengths (1 row included), in a buffer with spare rows:
    the per-sequence path gives the full masked pass's result and the per-element definition's."""
    ops = NumpyOps()
    hd, lens = 8, [1, 5, 3, 9, 2, 5, 1]
    seq = np.repeat(np.arange(len(lens)), lens) + 10                    # ids need not start at 0
    n, cap = len(seq), len(seq) + 4
    q, k, v = f32(cap, n_head * hd), f32(cap, n_kv * hd), f32(cap, n_kv * hd)
    sid = np.zeros((cap, 1), np.int32)
    sid[:n, 0] = seq
    out = ops.tensor(cap, n_head * hd)
    ops.set_step(n, 0)
    ops.attention(out, tensor_with(ops, q), tensor_with(ops, k), tensor_with(ops, v), n_head, n_kv, hd,
                  scale=0.4, causal=False, seq_ids=tensor_with(ops, sid, "i32"))
    got = ops.read(out)[:n]
    np.testing.assert_allclose(got, masked_attention(q[:n], k[:n], v[:n], n_head, n_kv, hd, 0.4, seq), atol=1e-5)
    np.testing.assert_allclose(got, naive_attention(q, k, v, n_head, n_kv, hd, 0.4, 0, n, False, 0, 0.0, seq),
                               atol=1e-5)


def test_attention_rejects_a_sequence_split_in_two():
    ops = NumpyOps()
    q = f32(4, 8)
    ops.set_step(4, 0)
    with pytest.raises(AssertionError, match="contiguous"):
        ops.attention(ops.tensor(4, 8), tensor_with(ops, q), tensor_with(ops, q), tensor_with(ops, q), 2, 2, 4,
                      scale=0.5, causal=False,
                      seq_ids=tensor_with(ops, np.array([[0], [1], [1], [0]], np.int32), "i32"))

def test_norms_glu_gelu_and_program_replay():
    ops = NumpyOps()
    x0, w = f32(4, 8), f32(1, 4)
    x, out, gl = tensor_with(ops, x0), ops.tensor(4, 8), ops.tensor(4, 8)
    with ops.record() as prog:
        ops.rms_norm(out, x, weight_f32(ops, w), 1e-6, group=4)
        ops.glu(gl, out, x, "gelu")
    for n in (1, 3):                          # replayed with a different n_tokens each time
        ops.set_step(n, 0)
        ops.run(prog)
        for t in range(n):
            for g in range(2):
                seg = x0[t, 4 * g:4 * g + 4].astype(np.float64)
                normed = seg / math.sqrt((seg ** 2).mean() + 1e-6) * w[0]
                np.testing.assert_allclose(ops.read(out)[t, 4 * g:4 * g + 4], normed, rtol=1e-5)
                gelu = [0.5 * a * (1 + math.tanh(math.sqrt(2 / math.pi) * (a + 0.044715 * a ** 3))) for a in normed]
                np.testing.assert_allclose(ops.read(gl)[t, 4 * g:4 * g + 4], np.array(gelu) * seg, rtol=1e-4, atol=1e-6)


def test_get_rows_from_quantised_table_and_copy_rows():
    ops = NumpyOps()
    import gguf
    table = f32(6, 32)
    raw = gguf.quants.quantize(table, T.Q8_0)
    w = ops.weight("emb", T.Q8_0, (32, 6), raw)
    ids = tensor_with(ops, np.array([[4], [0], [4]], np.int32), "i32")
    out, last = ops.tensor(3, 32), ops.tensor(1, 32)
    ops.set_step(3, 0)
    ops.get_rows(out, w, ids)
    ops.copy_rows(last, out, -1)
    deq = gguf.quants.dequantize(raw, T.Q8_0)
    np.testing.assert_array_equal(ops.read(out), deq[[4, 0, 4]])
    np.testing.assert_array_equal(ops.read(last)[0], deq[4])
    assert w.handle._dense is None            # a lookup never expands the whole table


def test_sample_and_advance_feed_back():
    ops = NumpyOps()
    logits_v = np.array([[0.5, 3.0, -1.0, 2.9]], np.float32)
    logits, tokens = tensor_with(ops, logits_v), ops.tensor(2, 1, "i32")
    ids, history = ops.tensor(1, 1, "i32"), ops.tensor(8, 1, "i32")
    ops.write(history, np.array([[1]], np.int32))
    ops.set_step(1, 10)
    ops.set_sampling(0.0, 40, 1.0, 0.0, 1.5, 64, [0.5, 0.5], n_history=1)
    with ops.record() as prog:
        ops.sample(tokens, logits, history, slot=0)
        ops.advance(ids, tokens, history, slot=0)
    ops.run(prog)
    # token 1 is penalised 3.0 / 1.5 = 2.0 < 2.9: greedy picks 3
    assert ops.read(tokens)[0, 0] == 3 and ops.read(ids)[0, 0] == 3
    assert ops.read(history)[:2, 0].tolist() == [1, 3]
    assert ops.step[:3].tolist() == [1, 11, 12]


def test_sampling_chain():
    logits = np.array([1.0, 4.0, 3.0, 2.0, 3.9], np.float32)
    none = np.array([], np.int32)
    assert sample_token(logits, none, 0.0, 40, 1.0, 0.0, 1.0, 64, 0.9) == 1           # greedy
    # top_k 2 leaves {1, 4}; softmax at temp 1: p(1) = 1/(1+e^-0.1) = 0.525
    assert sample_token(logits, none, 1.0, 2, 1.0, 0.0, 1.0, 64, 0.50) == 1
    assert sample_token(logits, none, 1.0, 2, 1.0, 0.0, 1.0, 64, 0.53) == 4
    # top_p 0.3: the first token alone reaches 0.3 of the mass -> always token 1
    assert sample_token(logits, none, 1.0, 0, 0.3, 0.0, 1.0, 64, 0.99) == 1
    # min_p 0.5: keep p >= 0.5 p_max: ids 1, 4 (e^-0.1), 2 (e^-1 = 0.37 < 0.5: dropped)
    assert sample_token(logits, none, 1.0, 0, 1.0, 0.5, 1.0, 64, 0.99) == 4
    # repeat penalty on a negative logit multiplies; only the last repeat_last_n history entries count
    lg = np.array([-1.0, -1.2], np.float32)
    assert sample_token(lg, np.array([0, 1, 1]), 0.0, 40, 1.0, 0.0, 1.5, 2, 0.0) == 0
    assert sample_token(lg, np.array([1, 0, 0]), 0.0, 40, 1.0, 0.0, 1.5, 2, 0.0) == 1


def test_matmul_over_cache_budget_dequantises_row_blocks():
    """With no cache budget left, a quantised matrix is dequantised in row blocks on each use, never
    kept, and gives the same products (row window included)."""
    import gguf
    W, x = f32(2500, 64), f32(2, 64)
    raw = gguf.quants.quantize(W, T.Q8_0)
    expected = x @ gguf.quants.dequantize(raw, T.Q8_0)[100:2300].T
    for budget in (None, 0):
        ops = NumpyOps(cache_budget=budget)
        w = ops.weight("w", T.Q8_0, (64, 2500), raw)
        out = ops.tensor(2, 2200)
        ops.set_step(2, 0)
        ops.matmul(out, w, tensor_with(ops, x), w_row0=100, n_out=2200)
        np.testing.assert_allclose(ops.read(out), expected, rtol=1e-5, atol=1e-4)
        assert (w.handle._dense is None) == (budget == 0)


@pytest.mark.parametrize("neox", [False, True])
def test_rope_explicit_positions(neox):
    """With ``positions``, row t is rotated by positions[t, 0] (not pos + t): two packed sequences
    restart at 0.  Checked against the per-element definition, and the step's pos is ignored."""
    ops = NumpyOps()
    n_head, hd, n_rot, base = 2, 8, 8, 10000.0
    p_rows = np.array([[0], [1], [2], [0], [1]], np.int32)
    x0 = f32(5, n_head * hd)
    x = tensor_with(ops, x0)
    ops.set_step(5, 9)                       # pos 9 must not matter when positions are given
    ops.rope(x, n_head, hd, n_rot, base, neox, positions=tensor_with(ops, p_rows, "i32"))
    want = x0.copy()
    for t in range(5):
        for h in range(n_head):
            for i in range(n_rot // 2):
                theta = p_rows[t, 0] * base ** (-2 * i / n_rot)
                a, b = (i, i + n_rot // 2) if neox else (2 * i, 2 * i + 1)
                xa, xb = x0[t, h * hd + a], x0[t, h * hd + b]
                want[t, h * hd + a] = xa * math.cos(theta) - xb * math.sin(theta)
                want[t, h * hd + b] = xa * math.sin(theta) + xb * math.cos(theta)
    got = ops.read(x)
    np.testing.assert_allclose(got, want, atol=1e-5)
    np.testing.assert_array_equal(got[[0, 3]], x0[[0, 3]])   # position 0: no rotation at all


@pytest.mark.parametrize("budget", [None, 0, 4 * 12 * 16])     # the last: room for Wq alone
def test_fused_matmuls_match_separate_products(budget):
    """Consecutive matmuls reading one input (q/k/v with biases, then gate/up) are recorded as one
    stacked product; outputs match the per-matrix definition, the parts' cached matrices become
    views into the stacked one (no second copy), and with no cache budget the parts run one by one."""
    import gguf
    ops = NumpyOps(cache_budget=budget)
    Wq, Wk, Wv = f32(12, 16), f32(4, 16), f32(4, 16)
    bq, bv = f32(1, 12), f32(1, 4)
    q8 = gguf.quants.quantize(f32(20, 32), T.Q8_0)
    Wg32 = gguf.quants.dequantize(q8, T.Q8_0)                 # [20, 32]: a quantised weight too
    wq, wk, wv = weight_f32(ops, Wq), weight_f32(ops, Wk), weight_f32(ops, Wv)
    wg = ops.weight("g", T.Q8_0, (32, 20), q8)
    x0, x2 = f32(3, 16), f32(3, 32)
    x, xg = tensor_with(ops, x0), tensor_with(ops, x2)
    q, k, v, g = ops.tensor(3, 12), ops.tensor(3, 4), ops.tensor(3, 4), ops.tensor(3, 20)
    with ops.record() as prog:
        ops.matmul(q, wq, x, bias=weight_f32(ops, bq))
        ops.matmul(k, wk, x)
        ops.matmul(v, wv, x, bias=weight_f32(ops, bv))
        ops.matmul(g, wg, xg)                 # another input: not fused with q/k/v
    assert len(prog) == 2
    ops.set_step(2, 0)                        # 2 of 3 rows real
    ops.run(prog)
    for buf, W, b, xin in ((q, Wq, bq, x0), (k, Wk, None, x0), (v, Wv, bv, x0), (g, Wg32, None, x2)):
        want = xin[:2].astype(np.float64) @ W.T.astype(np.float64) + (0 if b is None else b)
        got = ops.read(buf)
        np.testing.assert_allclose(got[:2], want, rtol=1e-5, atol=1e-5)
        assert not got[2].any()
    stacked = [w.handle._dense for w in (wq, wk, wv)]
    if budget is None:
        (_, w_cat), = ops._stacked.values()     # one [20, 16] matrix holds all three, in order
        np.testing.assert_array_equal(w_cat, np.concatenate([Wq, Wk, Wv]))
        assert all(np.shares_memory(d, w_cat) for d in stacked)
        assert ops.cache_budget.left == NumpyOps().cache_budget.left - 4 * (20 + 20 * 2) * 16
    else:           # the stack does not fit: its parts run alone, each cached only if it fits by itself
        assert not ops._stacked and (stacked[0] is not None) == (budget > 0)
        assert stacked[1] is None and stacked[2] is None and ops.cache_budget.left == 0

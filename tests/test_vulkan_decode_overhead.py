"""Host-side overhead of decoding on the Vulkan backend, shown by counting kp submissions.

* i32 tensors (ids, sampled tokens, history) are mirrored in host memory: write() and read() of them
  submit nothing, and a program copies them in / out inside its own single submission;
* a partial write() of an f32 tensor reads the device copy back only when a dispatch wrote it since;
* a k-step decode program reuses the 1-step program's kp Algorithms (pipelines);
* stopping in the middle of a k-step chunk leaves the engine exactly as if it had decoded one step
  at a time: the continuation equals a one-step-per-submission run's;
* chunks started before the previous one ends (a GPU's default; lavapipe runs them one at a time unless
  the test turns it on) give the same tokens and cache, and a stop waits for the chunk started ahead.
Expected values come from NumPy (the ops) or from the same engine run with decode_steps = 1."""
from contextlib import contextmanager

import kp
import numpy as np
import pytest

from engine.backends.vulkan_ops import VulkanOps
from engine.sampling import SamplingParams
from test_vulkan_generation import PROMPT, load_pair


@contextmanager
def count_submissions():
    """Count queue submissions: kp.Sequence.eval (submit and wait) and eval_async (submit; eval_await waits)."""
    n = [0]
    orig = {name: getattr(kp.Sequence, name) for name in ("eval", "eval_async")}

    def counting(f):
        def counted(seq, *a, **kw):
            n[0] += 1
            return f(seq, *a, **kw)
        return counted
    for name, f in orig.items():
        setattr(kp.Sequence, name, counting(f))
    try:
        yield n
    finally:
        for name, f in orig.items():
            setattr(kp.Sequence, name, f)


@pytest.fixture(scope="module")
def ops():
    return VulkanOps()


def test_i32_tensors_are_written_and_read_without_submissions(ops):
    """sample() writes tokens[2] on the device; a later partial host write of row 0 keeps it, and
    neither that write nor the read submits anything."""
    vocab = 50
    logits = ops.tensor(1, vocab, name="logits")
    values = np.random.default_rng(0).standard_normal(vocab).astype(np.float32)
    ops.write(logits, values.reshape(1, -1))
    history = ops.tensor(8, 1, "i32", name="history")
    tokens = ops.tensor(4, 1, "i32", name="tokens")
    ops.set_sampling(0.0, 40, 1.0, 0.0, 1.0, 0, uniforms=[0.5] * 4, n_history=0)      # greedy
    ops.sample(tokens, logits, history, slot=2)                       # eager: one submission
    with count_submissions() as n:
        ops.write(tokens, np.array([[7]], np.int32), row=0)
        got = ops.read(tokens)[:, 0]
    assert n[0] == 0
    assert list(got) == [7, 0, int(np.argmax(values)), 0]
    ops.write(tokens, np.array([[9]], np.int32), row=3)    # host-only so far ...
    ops.sample(tokens, logits, history, slot=1)            # ... and kept by a dispatch writing another row
    assert list(ops.read(tokens)[:, 0]) == [7, int(np.argmax(values)), int(np.argmax(values)), 9]


def test_partial_f32_write_reads_back_only_a_stale_tensor(ops):
    x = ops.tensor(3, 4, name="x")
    y = ops.tensor(3, 4, name="y")
    xs = np.arange(12, dtype=np.float32).reshape(3, 4)
    ops.write(x, xs)
    with count_submissions() as n:                # x's host copy is current: no read-back
        ops.write(x, np.full((1, 4), -1, np.float32), row=1)
    assert n[0] == 1
    xs[1] = -1
    ops.set_step(3, 0)                            # shaders process the rows < n_tokens
    ops.scale(y, x, 2.0)                          # y now differs on the device from its host copy
    with count_submissions() as n:                # so a partial write must fetch the rest first
        ops.write(y, np.full((1, 4), 5, np.float32), row=2)
    assert n[0] == 2
    want = 2 * xs
    want[2] = 5
    np.testing.assert_array_equal(ops.read(y), want)


def _greedy(gpu, prompt, n, steps):
    gpu.decode_steps = steps
    gpu.reset()
    return list(gpu.generate(prompt, SamplingParams(temp=0.0, seed=0), n))     # penalty 1.18 uses history


def test_one_submission_per_decode_chunk_and_same_tokens(model_path):
    cpu, gpu = load_pair("smollm2-q4_0", model_path)
    prompt = cpu.tokenizer.encode(PROMPT)
    want = _greedy(gpu, prompt, 4, 1)
    assert _greedy(gpu, prompt, 4, 4) == want     # also records the 4-step program (allocations submit)
    gpu.reset()
    gpu.eval(prompt[:-1])                         # the prompt, so generate() below only decodes
    with count_submissions() as n:
        got = list(gpu.generate(prompt, SamplingParams(temp=0.0, seed=0), 4))
    assert got == want
    if len(got) == 4:                             # no early end of generation: one 4-step chunk
        assert n[0] == 1


def test_k_step_program_reuses_the_one_step_pipelines(model_path):
    _, gpu = load_pair("smollm2-q4_0", model_path)
    one, _ = gpu.model.program(1, decode_steps=1)
    n_algos = len(gpu.ops._algos)
    eight, _ = gpu.model.program(1, decode_steps=8)
    assert eight.n_dispatches == 8 * one.n_dispatches
    # only sample and advance get new pipelines (they bind this program's own [8, 1] token buffer);
    # steps 2..8 add none
    assert len(gpu.ops._algos) == n_algos + 2


def test_stop_inside_a_chunk_leaves_single_step_state(model_path):
    """Take 2 tokens of a 4-step chunk and close the generator; continuing from there (one step per
    submission) gives the same tokens as an uninterrupted single-step run."""
    cpu, gpu = load_pair("smollm2-q4_0", model_path)
    prompt = cpu.tokenizer.encode(PROMPT)
    want = _greedy(gpu, prompt, 5, 1)
    assert len(want) == 5, "the test needs 5 tokens without an end of generation"
    gpu.decode_steps = 4
    gpu.reset()
    gen = gpu.generate(prompt, SamplingParams(temp=0.0, seed=0), 5)
    head = [next(gen), next(gen)]
    gen.close()
    assert head == want[:2]
    assert gpu.tokens == prompt + head[:1]        # the second token was sampled but not fed back
    gpu.decode_steps = 1
    rest = list(gpu.generate(prompt + head, SamplingParams(temp=0.0, seed=0), 3))
    assert rest == want[2:]


def test_split_attention_shares_its_scratch_across_layers_and_steps(model_path):
    """The GPU decode path (keys split over workgroups, one partial-results buffer shared by every
    layer and step), forced on lavapipe: a 4-step program gives the single-step tokens."""
    import engine
    from test_vulkan_generation import N_BATCH, N_CTX
    cpu, gpu = load_pair("smollm2-q4_0", model_path)
    prompt = cpu.tokenizer.encode(PROMPT)
    want = _greedy(gpu, prompt, 4, 1)
    split = engine.load(model_path("smollm2-q4_0"), device="kompute", n_ctx=N_CTX, n_batch=N_BATCH)
    split.ops.attention_splits = 3
    assert _greedy(split, prompt, 4, 4) == want
    assert sum(use == "attention parts" for use, _ in split.ops._scratch) >= 1


def _overlapped(gpu, on: bool):
    """Decode with chunks started ahead (engine/llm.py, a GPU's default) or one chunk at a time (lavapipe's)."""
    gpu.ops.overlaps_programs = on


@pytest.mark.parametrize("params", [SamplingParams(temp=0.0, repeat_penalty=1.3, repeat_last_n=8),
                                    SamplingParams(temp=1.2, top_k=50, top_p=0.95, min_p=0.01, repeat_penalty=1.1,
                                                   seed=3)], ids=["greedy", "sampled"])
def test_overlapped_chunks_equal_one_step_at_a_time(model_path, params):
    """Chunks started before the previous one ends (resume programs, the other slot set, the state left on the
    device: position, ids, history and its length) give the tokens and the cache of one step per submission,
    also when the context fills up inside a chunk."""
    cpu, gpu = load_pair("smollm2-q4_0", model_path)
    prompt = cpu.tokenizer.encode(PROMPT)
    n_ctx = gpu.n_ctx
    runs = {}
    try:
        for on, k in ((False, 1), (True, 4), (True, 2)):
            _overlapped(gpu, on)
            gpu.decode_steps = k
            for limit in (None, len(prompt) + 7):        # 7 more tokens fit: the last chunk is cut short
                gpu.n_ctx = limit or n_ctx
                gpu.reset()
                runs[on, k, limit] = (list(gpu.generate(prompt, params, 10)), list(gpu.tokens))
    finally:
        _overlapped(gpu, False)
        gpu.n_ctx = n_ctx
    for (on, k, limit), got in runs.items():
        assert got == runs[False, 1, limit], (on, k, limit)
    assert len(runs[False, 1, len(prompt) + 7][1]) == len(prompt) + 7


def test_stop_inside_an_overlapped_chunk(model_path):
    """Closing the generator while a chunk started ahead runs: the engine waits for it, keeps only the ids
    consumed, and a later generation carries on as a one-step run would."""
    cpu, gpu = load_pair("smollm2-q4_0", model_path)
    prompt = cpu.tokenizer.encode(PROMPT)
    want = _greedy(gpu, prompt, 7, 1)
    assert len(want) == 7, "the test needs 7 tokens without an end of generation"
    try:
        _overlapped(gpu, True)
        gpu.decode_steps = 2
        gpu.reset()
        gen = gpu.generate(prompt, SamplingParams(temp=0.0, seed=0), 7)
        head = [next(gen) for _ in range(3)]             # inside the second chunk; the third runs ahead
        assert gpu._pending is not None
        gen.close()
        assert gpu._pending is None
        assert head == want[:3]
        assert gpu.tokens == prompt + head[:2]
        rest = list(gpu.generate(prompt + head, SamplingParams(temp=0.0, seed=0), 4))
    finally:
        _overlapped(gpu, False)
    assert rest == want[3:]

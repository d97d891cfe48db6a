"""engine.gguf_file against the stock gguf.GGUFReader: the same metadata (every key, plain values), the
same tensors, and typed hyperparameters read from the real test models."""
import gguf
import numpy as np
import pytest

from engine.gguf_file import GGUFFile, Gemma3HParams, LlamaHParams, _plain


@pytest.mark.parametrize("key", ["smollm2-q4_1", "gemma3-q4_k_m", "minilm-f16"])
def test_metadata_and_tensors_equal_stock_reader(model_path, key):
    path = model_path(key)
    f, stock = GGUFFile(path), gguf.GGUFReader(path)
    expected = {k: _plain(fl.contents()) for k, fl in stock.fields.items() if not k.startswith("GGUF.")}
    assert f.metadata == expected
    assert list(f.tensors) == [t.name for t in stock.tensors]
    for t in stock.tensors:
        assert np.shares_memory(f.tensors[t.name].data, f.reader.data)       # mapped, not copied
        np.testing.assert_array_equal(f.tensors[t.name].data, t.data)


def test_typed_hparams(model_path):
    hp = GGUFFile(model_path("smollm2-q4_1")).decoder_hparams(LlamaHParams)
    assert (hp.n_layer, hp.n_embd, hp.n_head, hp.n_head_kv, hp.head_dim, hp.n_vocab) == (30, 576, 9, 3, 64, 49152)
    from engine.models.gemma3 import Gemma3
    g = Gemma3.hparams(GGUFFile(model_path("gemma3-q4_k_m")))
    assert isinstance(g, Gemma3HParams)
    assert (g.head_dim, g.n_head, g.n_head_kv, g.sliding_window, g.n_vocab) == (256, 4, 1, 512, 262144)
    assert g.attn_scale == pytest.approx(1 / 16)

"""tools/bench_embed.py runs end to end (ours and upstream gpt4all 2.8.2 on the CPU, a handful of texts) and
its same-work check holds: both sides count the same prompt tokens and return the same vectors.  It times
nothing that is asserted: speed lives in docs/performance.md, from the tool itself."""
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_bench_embed_runs_both_sides(model_path, tmp_path, capsys):
    sys.path.insert(0, str(REPO / "tools"))
    import bench_embed
    out = tmp_path / "embed.json"
    assert bench_embed.main(["--model", str(model_path("minilm-f16")), "--n-texts", "6", "--repeat", "1",
                             "--n-ctx", "128", "--json", str(out)]) == 0
    ours, up, summary = json.loads(out.read_text())
    assert ours["side"] == "ours" and ours["backend"] == "cpu" and ours["n_texts"] == 6
    assert up["side"].startswith("upstream") and up["backend"] == "cpu"
    assert ours["texts_per_s"] > 0 and up["texts_per_s"] > 0
    assert summary["same_n_prompt_tokens"] and ours["n_prompt_tokens"] > 6 * 10
    assert summary["min_cosine_first_texts"] >= 0.9999
    assert "ours/upstream:" in capsys.readouterr().out

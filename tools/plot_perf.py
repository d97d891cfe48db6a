"""Plots of tools/bench.py results: tok/s against model size and against context depth, ours vs upstream.

    python tools/plot_perf.py RESULT.json [RESULT.json ...] [--out-dir docs] [--title "H100"]

Writes <out-dir>/perf_size.png (prompt and generation tok/s against model file size, one line per engine
and backend) and <out-dir>/perf_context.png (generation tok/s against the number of tokens already in the
cache, from --ctx-sweep runs).  Needs matplotlib (a plotting-only dependency, not the engine's).
"""
from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")          # files only; no display on CI or the GPU machine
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter, NullFormatter  # noqa: E402

plain = FuncFormatter(lambda value, _pos: f"{value:g}")   # 1024 rather than 2^10 on log axes


def series_name(res: dict) -> str:
    """'ours kompute (NVIDIA H100 80GB HBM3) k=4' / 'upstream 2.8.2 cpu': one line on a plot.
    k is our decode steps per submission, so runs with another GPT4ALL_DECODE_STEPS get their own line."""
    who = "ours" if res["engine"] == "ours" else f"upstream {res.get('version', '')}".strip()
    name = f"{who} {res['backend']}" + (f" ({res['device']})" if res.get("device") else "")
    if res["engine"] == "ours" and res.get("backend") != "cpu" and res.get("decode_steps"):
        name += f" k={res['decode_steps']}"
    return name


def load(paths: list[Path]) -> list[dict]:
    return [json.loads(Path(p).read_text()) for p in paths]


def size_points(reports: list[dict]) -> dict[str, list[tuple[float, float, float | None, str]]]:
    """series -> [(size GB, prompt tok/s, generation tok/s, model file)] sorted by size."""
    points = defaultdict(list)
    for rep in reports:
        gb = rep["model"]["size_bytes"] / 1e9
        for res in rep["results"]:
            run = res["runs"].get("main")
            if run:
                points[series_name(res)].append((gb, run["prompt_tok_s"], run.get("gen_tok_s"), rep["model"]["file"]))
    return {k: sorted(v) for k, v in points.items()}


def context_points(reports: list[dict]) -> dict[str, list[tuple[int, float]]]:
    """'series, model' -> [(tokens in cache, generation tok/s)] from the ctx sweep runs."""
    points = defaultdict(list)
    for rep in reports:
        for res in rep["results"]:
            for name, run in res["runs"].items():
                if name.startswith("ctx") and run.get("gen_tok_s"):
                    points[f"{series_name(res)}, {rep['model']['file']}"].append((run["prompt_tokens"], run["gen_tok_s"]))
    return {k: sorted(v) for k, v in points.items()}


def style(series: str) -> dict:
    """Ours solid, upstream dashed, so the comparison reads at a glance."""
    return {"linestyle": "-" if series.startswith("ours") else "--", "marker": "o"}


def plot_size(reports: list[dict], out: Path, title: str) -> bool:
    points = size_points(reports)
    if not points:
        return False
    fig, (ax_pp, ax_tg) = plt.subplots(1, 2, figsize=(12, 4.5))
    for series, pts in points.items():
        gb = [p[0] for p in pts]
        ax_pp.plot(gb, [p[1] for p in pts], label=series, **style(series))
        gen = [(p[0], p[2]) for p in pts if p[2] is not None]
        ax_tg.plot([g[0] for g in gen], [g[1] for g in gen], label=series, **style(series))
    sizes = sorted({p[0] for pts in points.values() for p in pts})
    for ax, what in ((ax_pp, "prompt processing"), (ax_tg, "generation")):
        ax.set_xlabel("model file size (GB)")
        ax.set_ylabel(f"{what} (tok/s)")
        ax.set_yscale("log")
        ax.set_xscale("log")
        ax.set_xticks(sizes, [f"{gb:.2g}" for gb in sizes])     # one labelled tick per model measured
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.yaxis.set_major_formatter(plain)
        ax.grid(True, which="both", alpha=0.3)
        ax.set_title(f"{what} vs model size")
    ax_tg.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return True


def plot_context(reports: list[dict], out: Path, title: str) -> bool:
    points = context_points(reports)
    if not points:
        return False
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for series, pts in points.items():
        ax.plot([p[0] for p in pts], [p[1] for p in pts], label=series, **style(series))
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(plain)
    ax.set_ylim(bottom=0)                 # linear from zero: the slowdown with depth is the story here
    ax.set_xlabel("tokens already in the KV cache")
    ax.set_ylabel("generation (tok/s)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title("generation vs context depth" + (f" ({title})" if title else ""))
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return True


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("results", nargs="+", type=Path, help="JSON files written by tools/bench.py --json")
    p.add_argument("--out-dir", type=Path, default=Path(__file__).resolve().parent.parent / "docs")
    p.add_argument("--prefix", default="perf", help="file name prefix (default: perf -> perf_size.png)")
    p.add_argument("--title", default="", help="e.g. the machine the numbers come from")
    args = p.parse_args(argv)
    reports = load(args.results)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for kind, fn in (("size", plot_size), ("context", plot_context)):
        out = args.out_dir / f"{args.prefix}_{kind}.png"
        print(f"{out}: {'written' if fn(reports, out, args.title) else 'no data, not written'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

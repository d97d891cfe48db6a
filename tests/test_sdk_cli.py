"""`python -m gpt4all`: the README's main job, run as a newcomer (and CI) would run it."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]


def _run(args, stdin, model_path):
    env = dict(os.environ, GPT4ALL_TEST_MODELS=str(model_path("smollm2-q4_1").parent))
    return subprocess.run([sys.executable, "-m", "gpt4all", *args], stdin=stdin, capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=300)


def test_one_prompt_with_the_default_model_streams_a_reply(model_path):
    done = _run(["--prompt", "What is the capital of France?", "--max-tokens", "6", "--temp", "0"],
                subprocess.DEVNULL, model_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Paris" in done.stdout


def test_no_stdin_finishes_instead_of_waiting(model_path):
    done = _run(["--max-tokens", "2"], subprocess.DEVNULL, model_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout == ""


def test_piped_lines_are_turns_of_one_chat(model_path, monkeypatch, capsys):
    """In-process (saves a model load): two lines in, two replies out, in one session."""
    import io

    from gpt4all import cli
    monkeypatch.setenv("GPT4ALL_TEST_MODELS", str(model_path("smollm2-q4_1").parent))
    monkeypatch.setattr(sys, "stdin", io.StringIO("Hi\n\nWhat is the capital of France?\n"))
    assert cli.main(["--max-tokens", "6", "--temp", "0"]) == 0
    out = capsys.readouterr().out
    assert out.endswith("\n") and out.count("\n") >= 2 and "Paris" in out


def test_missing_model_is_a_clear_error(tmp_path, monkeypatch, capsys):
    from gpt4all import cli
    monkeypatch.setenv("GPT4ALL_TEST_MODELS", str(tmp_path))
    assert cli.main([]) == 1
    assert "tools/models.py" in capsys.readouterr().err

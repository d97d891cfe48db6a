"""Stop strings are held back while they may be forming, cut when complete, released when they cannot be."""
from gpt4all.stop import BUILTIN_STOP_STRINGS, StopFilter


def run(pieces, stops):
    f = StopFilter(stops)
    out = [f.feed(p) for p in pieces]
    if not f.stopped:
        out.append(f.flush())
    return out, f.stopped


def test_stop_string_split_across_pieces_is_never_emitted():
    out, stopped = run(["Hello", " ##", "# Hu", "man: hi"], BUILTIN_STOP_STRINGS)
    assert stopped and "".join(out) == "Hello "
    assert out == ["Hello", " ", "", ""]          # "##" was held back, then dropped


def test_false_alarm_is_released_in_order():
    out, stopped = run(["a #", "# b", " c"], ["###"])
    assert not stopped and "".join(out) == "a ## b c"
    assert out[0] == "a "                          # "#" held until "# b" shows it is not "###"


def test_text_before_the_stop_string_in_the_same_piece():
    out, stopped = run(["The end.<|im_end|>garbage"], BUILTIN_STOP_STRINGS)
    assert stopped and out == ["The end."]


def test_user_stop_strings_and_earliest_match():
    out, stopped = run(["one two STOP three END"], ["END", "STOP"])
    assert stopped and out == ["one two "]


def test_pending_prefix_released_at_the_end():
    out, stopped = run(["answer ###"], ["### Human"])
    assert not stopped and "".join(out) == "answer ###" and out[-1] == "###"


def test_nothing_after_stop():
    f = StopFilter(["x"])
    assert f.feed("ax") == "a" and f.feed("more") == "" and f.flush() == ""

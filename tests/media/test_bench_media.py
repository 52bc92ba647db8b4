"""bench/media.py part 1's staggered audio: each call at its own point of the streams, every
packet coded (nothing dropped as late), and streams too short for the offsets refused."""

from __future__ import annotations

import pytest

from tests.support.bench import load_bench
from vosapp.media.transcoder import Transcoder

media = load_bench("media")


def test_a_call_starting_mid_stream_codes_every_packet_of_its_stretch() -> None:
    ticks = 8
    pcma, g729 = media.make_streams(ticks + media.STAGGER_SPAN)
    offset = (3 * media.STAGGER_STRIDE) % media.STAGGER_SPAN  # the fourth call's start
    assert offset > 0
    forward, backward = Transcoder("PCMA", "G729"), Transcoder("G729", "PCMA")
    for k in range(ticks):
        # one 20 ms packet in, one 20 ms packet out, both ways: a stream that starts at any
        # packet and runs on in sequence is transcoded in full
        assert len(forward.process(pcma[k + offset])) == 1
        assert len(backward.process(g729[k + offset])) == 1
    # why no staggered call may wrap around to the streams' start: an earlier sequence number
    # is dropped as late, and the tick would time a transcoder that does nothing
    assert forward.process(pcma[0]) == []


def test_staggered_ticks_run_and_short_streams_are_refused() -> None:
    ticks = 8
    pcma, g729 = media.make_streams(ticks + media.STAGGER_SPAN)
    cpu, wall = media.tick_times(12, ticks, pcma, g729, staggered=True)
    assert len(cpu) == len(wall) == ticks - 5  # the first 5 ticks warm up
    assert (cpu > 0).all()
    short_pcma, short_g729 = pcma[: ticks + 5], g729[: ticks + 5]
    media.tick_times(12, ticks, short_pcma, short_g729)  # lockstep needs only ``ticks``
    with pytest.raises(ValueError, match="too short"):
        media.tick_times(12, ticks, short_pcma, short_g729, staggered=True)


def test_bare_codec_ticks_give_each_call_its_own_contexts_and_time_them() -> None:
    """The raw bound by the transcoders' criterion: bare bcg729 work of N calls per tick."""
    ticks = 8
    _pcma, g729 = media.make_streams(ticks + media.STAGGER_SPAN)
    one = media.bare_tick_times(1, ticks, g729)
    many = media.bare_tick_times(40, ticks, g729, staggered=True)
    assert len(one) == len(many) == ticks - 5
    assert (one > 0).all()
    # 40 calls' codec work is timed, not one call's: far more CPU a tick (a floor of 10 x
    # leaves room for a busy machine's noise; the real ratio is ~40)
    assert float(many.sum()) > 10 * float(one.sum())
    with pytest.raises(ValueError, match="too short"):
        media.bare_tick_times(12, ticks, g729[: ticks + 5], staggered=True)


def test_media_calls_reads_the_figures_part_1_prints() -> None:
    """bench/media_calls.py --media-bench takes its ratios' denominators from this markdown."""
    media_calls = load_bench("media_calls")
    part1 = {"calls": 171, "p99_ms": 19.5, "median_ms": 12.9, "wall_p99_ms": 19.6,
             "wall_median_ms": 13.0, "per_call_tick_us": 74.2, "raw_call_tick_us": 72.4,
             "raw_bound_calls": 276.0, "ratio": 0.62, "median_ratio": 0.98,
             "staggered_calls": 165, "staggered_p99_ms": 18.4, "staggered_median_ms": 12.5,
             "staggered_ratio": 0.6, "interleaved_us": (72.0, 67.7), "interleaved_ratio": 0.94,
             "interleaved_p99_us": (102.4, 96.1), "interleaved_p99_ratio": 0.94,
             "pinned": "cpu 0", "lane": "C extension"}
    assert media_calls.media_figures(media.markdown(part1, None)) == (171.0, 74.2, 165.0)
    # the raw bound by the same criterion adds rows, and changes none of those figures
    bare = {**part1, "bare_calls": 190, "bare_p99_ms": 19.8, "bare_median_ms": 13.1,
            "bare_ratio": 0.9, "bare_staggered_calls": 185, "bare_staggered_ratio": 0.89}
    text = media.markdown(bare, None)
    assert "ratio to the raw codec by the same criterion | **0.90**; staggered **0.89**" in text
    assert media_calls.media_figures(text) == (171.0, 74.2, 165.0)
    assert media_calls.media_figures("no such rows") == (None, None, None)

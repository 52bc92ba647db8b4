"""Generates the media notebooks 04 (transcoding quality) and 05 (DTMF tuning).

Run ``.venv/bin/python notebooks/_build_media.py`` after editing; commit the .ipynb files
(they carry no outputs). Each notebook runs top to bottom on the default configuration in well
under 90 s and asserts what it claims, so ``tests/test_notebooks.py`` fails when the lab would
lie. Notebooks 01/02/03/06 come from ``notebooks/_build.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _nbtools import HERE, code, md, write

# --------------------------------------------------------------------------------------- 04

NB04 = [
    md("""
    # 04 — Transcoding quality: speech through every codec, tandem and lossy network

    A softswitch in the media path can change what people hear: each codec keeps some part of
    the speech and throws the rest away, every transcoding (decode, then encode with another
    codec) does that again, and lost packets punch holes that the decoder has to hide. This
    notebook *measures* it on real speech — the CMU ARCTIC clip `data/speech/arctic_a0007.wav`
    (4 s, male) — with the same codec objects and the same `Transcoder` the RTP relay runs.

    | codec | standard | bit rate | frame | how it works | RTP clock |
    |---|---|---|---|---|---|
    | PCMA / PCMU | G.711 A-law / µ-law | 64 kbit/s | 0.125 ms (sent as 20 ms) | logarithmic 8-bit samples: the waveform is kept (~34 dB segmental SNR on this clip) | 8000 |
    | G.729A | G.729 Annex A (bcg729) | 8 kbit/s | 10 ms + 5 ms look-ahead | CS-ACELP: a vocal-tract filter and an excitation chosen so the *sound* matches | 8000 |
    | G.723.1 | G.723.1 (FFmpeg), 6.3 kbit/s | 6.3 kbit/s | 30 ms + 7.5 ms look-ahead | MP-MLQ, the same analysis-by-synthesis idea, coarser | 8000 |
    | G.722 | G.722 (FFmpeg) | 64 kbit/s | sample-based (sent as 20 ms) | sub-band ADPCM of **16 kHz** audio (50–7000 Hz, "HD voice") | 8000 (RFC 3551 quirk) |

    **What the numbers mean.** PESQ (ITU-T P.862) compares the degraded signal with the clean
    one through a model of hearing and predicts what a listening panel would say. vosapp reports
    it as **MOS-LQO** (Mean Opinion Score, Listening Quality Objective): P.862.1 maps narrow-band
    PESQ (8 kHz) onto the 1–5 MOS scale, P.862.2 does the same for wide-band (16 kHz). The best
    possible score is the clean clip compared with itself: about **4.55** narrow-band, **4.64**
    wide-band. A rough reading: ≥ 4.0 toll quality, 3.6–4.0 good (what a mobile call sounds like),
    3.1–3.6 fair, below 3.1 people notice and complain. **STOI** (0–1) predicts
    intelligibility — words understood, not pleasantness. **Segmental SNR** measures how well
    the *waveform* survives, which only waveform codecs (G.711, G.722) try to do; CELP codecs
    keep the spectrum instead and score ~0 dB while sounding fine. **LSD** (log-spectral
    distance, dB) measures the spectrum error. Every score is computed after removing the
    codec delay found by cross-correlation (`vosapp.lab.quality.compare`).
    """),
    code("""
    import random
    import time
    from itertools import pairwise

    import numpy as np

    from vosapp.lab import plots, quality
    from vosapp.lab.widgets import table
    from vosapp.media import codecs
    from vosapp.media.rtp import OutgoingStream, RtpPacket
    from vosapp.media.transcoder import Transcoder

    notebook_start = time.perf_counter()
    clean_8k = quality.load_speech(8000)    # int16, resampled from the 16 kHz original
    clean_16k = quality.load_speech(16000)
    print(f"{quality.ARCTIC_CLIP.name}: {clean_8k.size / 8000:.2f} s;"
          f" codecs available: {', '.join(codecs.available())}")
    """),
    md("""
    ## The switch's media path, packet by packet

    `through_switch` does what a call through vosapp does: the calling phone encodes the speech
    with the first codec into 20 ms RTP packets (30 ms for G.723.1); each transcoding hop is a
    `vosapp.media.transcoder.Transcoder` (decode, resample 8 ↔ 16 kHz for G.722, reframe, encode,
    renumber RTP); the far phone decodes the last codec. `PCMA→G.729→PCMA` is the classic
    carrier tandem: the customer talks G.711, the carrier link is G.729, the far end is G.711
    again. In this narrow-band table G.722 gets the 8 kHz clip upsampled to 16 kHz and its
    output is scored at 8 kHz; its wide-band score follows further down.
    """),
    code("""
    PTIME_MS = {"PCMA": 20, "PCMU": 20, "G729": 20, "G723": 30, "G722": 20}


    def rtp_packets(codec_name, audio):
        \"\"\"Encode ``audio`` (at the codec's rate) into RTP packets as a phone would.\"\"\"
        codec = codecs.get(codec_name)
        ptime = PTIME_MS[codec.name]
        per_packet = codec.sample_rate * ptime // 1000
        audio = np.concatenate([audio, np.zeros(-audio.size % per_packet, np.int16)])
        stream = OutgoingStream(codec.payload_type, codec.clock_rate, rng=random.Random(1))
        ticks = codec.clock_rate * ptime // 1000
        return [stream.packet(codec.encode(audio[i : i + per_packet]), ticks)
                for i in range(0, audio.size, per_packet)]


    def through_switch(audio, rate, chain):
        \"\"\"Speech at ``rate`` through phone → transcoders → phone; returned at ``rate``.\"\"\"
        first = codecs.get(chain[0])
        packets = rtp_packets(chain[0], quality.to_int16(
            quality.resample(audio, rate, first.sample_rate)))
        for src, dst in pairwise(chain):
            hop = Transcoder(src, dst, src_ptime=PTIME_MS[src], dst_ptime=PTIME_MS[dst],
                             rng=random.Random(2))
            packets = [out for packet in packets for out in hop.process(packet)]
        last = codecs.get(chain[-1])
        decoded = np.concatenate([last.decode(RtpPacket.parse(p).payload) for p in packets])
        return quality.to_int16(quality.resample(decoded, last.sample_rate, rate))


    LABELS = {"PCMA": "G.711 A-law", "PCMU": "G.711 µ-law", "G729": "G.729A",
              "G723": "G.723.1", "G722": "G.722"}


    def label(chain):
        return " → ".join(LABELS[name] for name in chain)


    NARROW_BAND = [["PCMA"], ["PCMU"], ["G722"], ["G729"], ["G723"],
                   ["PCMA", "G729", "PCMA"], ["G729", "G729"], ["G723", "G729"],
                   ["G729", "G723"], ["PCMU", "G722"]]
    decoded_8k = {label(chain): through_switch(clean_8k, 8000, chain) for chain in NARROW_BAND}
    reports_8k = {"clean (ceiling)": quality.compare(clean_8k, clean_8k, 8000)}
    reports_8k |= {name: quality.compare(clean_8k, audio, 8000)
                   for name, audio in decoded_8k.items()}
    plots.quality_table(reports_8k, title="narrow-band: scored at 8 kHz with PESQ P.862.1")
    """),
    code("""
    plots.quality_chart({k: v for k, v in reports_8k.items() if k != "clean (ceiling)"},
                        ceiling=reports_8k["clean (ceiling)"].pesq_mos_lqo,
                        title="PESQ MOS-LQO (bars) and STOI (diamonds), narrow-band")
    """),
    code("""
    # Assertions: the lab must not lie.
    pesq = {name: report.pesq_mos_lqo for name, report in reports_8k.items()}
    g711, g729, tandem = pesq["G.711 A-law"], pesq["G.729A"], pesq["G.711 A-law → G.729A → G.711 A-law"]
    assert g711 > g729 > tandem, (g711, g729, tandem)       # G.711 > G.729 > PCMA→G.729→PCMA
    assert pesq["clean (ceiling)"] - g711 < 0.15            # G.711 is near-transparent
    assert abs(pesq["G.711 A-law"] - pesq["G.711 µ-law"]) < 0.05
    assert pesq["G.729A → G.729A"] < g729 - 0.3             # a CELP tandem costs a lot more ...
    assert pesq["G.723.1 → G.729A"] < min(g729, pesq["G.723.1"]) - 0.3
    assert tandem > g729 - 0.2                              # ... than G.711 around a CELP leg
    assert reports_8k["G.729A"].segmental_snr_db < 5 < reports_8k["G.711 A-law"].segmental_snr_db
    assert 3 < reports_8k["G.729A"].delay_ms < 7            # G.729's 5 ms look-ahead
    assert 6 < reports_8k["G.723.1"].delay_ms < 9           # G.723.1's 7.5 ms look-ahead
    print(f"G.711 {g711:.2f} > G.729A {g729:.2f} > PCMA→G.729→PCMA {tandem:.2f}")
    """),
    md("""
    ### Cross-check: the relay's `Transcoder` against an offline chain

    `vosapp.lab.quality.through_codecs` runs the same chain on the whole signal at once (no
    RTP, no reframing, whole-signal resampling). The packet-by-packet path must give the same
    scores — if reframing, streaming resampling or RTP numbering lost or shifted audio, this
    would show it.
    """),
    code("""
    rows = []
    for chain in (["PCMA", "G729", "PCMA"], ["G723", "G729"], ["PCMU", "G722"]):
        offline, offline_rate = quality.through_codecs(clean_8k, 8000, chain)
        offline_report = quality.compare(clean_8k, quality.resample(offline, offline_rate, 8000),
                                         8000)
        switch_report = reports_8k[label(chain)]
        rows.append({"chain": label(chain), "switch path": switch_report.pesq_mos_lqo,
                     "offline": offline_report.pesq_mos_lqo,
                     "delay switch / offline (ms)":
                     f"{switch_report.delay_ms:.2f} / {offline_report.delay_ms:.2f}"})
        assert abs(switch_report.pesq_mos_lqo - offline_report.pesq_mos_lqo) < 0.02, rows[-1]
        assert switch_report.delay_samples == offline_report.delay_samples
    table(rows)
    """),
    md("""
    ## Wide-band: what G.722 adds

    Scored at 16 kHz with wide-band PESQ (P.862.2), G.722 keeps the 4–7 kHz band that every
    narrow-band codec cuts off. Transcoding a narrow-band leg into G.722 (`PCMU → G.722`)
    cannot bring that band back: the call is only as wide as its narrowest leg.
    """),
    code("""
    WIDE_BAND = [["G722"], ["PCMA"], ["PCMU", "G722"], ["G729"]]
    decoded_16k = {label(chain): through_switch(clean_16k, 16000, chain) for chain in WIDE_BAND}
    reports_16k = {"clean (ceiling)": quality.compare(clean_16k, clean_16k, 16000)}
    reports_16k |= {name: quality.compare(clean_16k, audio, 16000)
                    for name, audio in decoded_16k.items()}
    wb = {name: report.pesq_mos_lqo for name, report in reports_16k.items()}
    assert wb["G.722"] > wb["G.711 A-law"] + 0.3            # the 7 kHz band is audible
    assert wb["G.711 µ-law → G.722"] < wb["G.722"] - 0.3    # and a narrow leg loses it
    assert reports_16k["G.722"].pesq_mode == "wb"
    plots.quality_table(reports_16k, title="wide-band: scored at 16 kHz with PESQ P.862.2")
    """),
    md("""
    ## Spectrograms and waveforms

    Side by side on one colour scale (dB relative to a full-scale sine). G.711 keeps the fine
    harmonic structure; G.729A keeps the formants (the bright bands) but smooths the
    harmonics and the noise between them; the tandem smooths again. At 16 kHz the narrow-band
    legs are cut off at 4 kHz.
    """),
    code("""
    plots.spectrograms({"clean": clean_8k, "G.711 A-law": decoded_8k["G.711 A-law"],
                        "G.729A": decoded_8k["G.729A"],
                        "G.723.1 → G.729A": decoded_8k["G.723.1 → G.729A"]},
                       8000, title="narrow-band (8 kHz)")
    """),
    code("""
    plots.spectrograms({"clean": clean_16k, "G.722": decoded_16k["G.722"],
                        "G.711 A-law": decoded_16k["G.711 A-law"],
                        "G.711 µ-law → G.722": decoded_16k["G.711 µ-law → G.722"]},
                       16000, title="wide-band (16 kHz): G.722 keeps 4–7 kHz")
    """),
    code("""
    def aligned_segment(degraded, start_s=1.0, seconds=0.12, rate=8000):
        \"\"\"The same stretch of speech in ``degraded``, codec delay removed.\"\"\"
        delay, _ = quality.estimate_delay(clean_8k, degraded, rate, max_delay_ms=50)
        begin = round(start_s * rate) + delay
        return degraded[begin : begin + round(seconds * rate)]


    segment = {"clean": aligned_segment(clean_8k)}
    segment |= {name: aligned_segment(decoded_8k[name])
                for name in ("G.711 A-law", "G.729A", "G.711 A-law → G.729A → G.711 A-law")}
    plots.waveforms(segment, 8000, title="120 ms of a vowel (delay removed): G.711 follows the"
                    " waveform, G.729A only its sound")
    """),
    md("""
    ## Listen

    The players keep the true levels (no normalisation). Listen for G.729A's slightly
    "processed" timbre, and for the tandems where it doubles.
    """),
    code("""
    plots.listening_panel({"clean (8 kHz)": (clean_8k, 8000)}
                          | {name: (audio, 8000) for name, audio in decoded_8k.items()}
                          | {"clean (16 kHz)": (clean_16k, 16000),
                             "G.722 (16 kHz)": (decoded_16k["G.722"], 16000)})
    """),
    md("""
    ## Packet loss and concealment

    RTP packets (20 ms) are dropped at random at 0, 1, 3, 5 and 10 % (seeded, three loss
    patterns per rate, the same pattern for both decoders). The receiver then either
    **conceals** the gap with the codec's `conceal()` — G.729's own frame-erasure concealment
    (bcg729 extrapolates the excitation and filter from the last good frame), repetition of the
    last frame with 6 dB attenuation per lost frame for G.711 and G.722 (vosapp's simple PLC,
    *not* G.711 Appendix I) — or **zero-fills** it (silence, what a decoder without PLC plays).
    The clean clip is the reference, so each score is the codec and the loss together.
    """),
    code("""
    LOSS_PERCENT = [0, 1, 3, 5, 10]
    SEEDS = (1, 2, 3)


    def receive_with_loss(codec_name, audio, loss, seed, conceal):
        \"\"\"Encode into packets, drop some (seeded), decode with concealment or zeros.

        Returns the decoded audio and the mask of lost packets.
        \"\"\"
        encoder, decoder = codecs.get(codec_name), codecs.get(codec_name)
        frames = PTIME_MS[encoder.name] // encoder.frame_ms
        per_packet = encoder.frame_samples * frames
        audio = np.concatenate([audio, np.zeros(-audio.size % per_packet, np.int16)])
        payloads = [encoder.encode(audio[i : i + per_packet])
                    for i in range(0, audio.size, per_packet)]
        lost = np.random.default_rng(seed).random(len(payloads)) < loss / 100
        out = []
        for payload, is_lost in zip(payloads, lost):
            if not is_lost:
                out.append(decoder.decode(payload))
            elif conceal:
                out.append(decoder.conceal(frames))
            else:
                out.append(np.zeros(per_packet, np.int16))
        return np.concatenate(out), lost


    LOSS_CODECS = {"G.711 A-law": ("PCMA", clean_8k, 8000), "G.729A": ("G729", clean_8k, 8000),
                   "G.722 (wb)": ("G722", clean_16k, 16000)}
    loss_curves, loss_rows, examples = {}, [], {}
    for name, (codec_name, clean, rate) in LOSS_CODECS.items():
        for conceal in (True, False):
            curve = []
            for loss in LOSS_PERCENT:
                scores = []
                for seed in SEEDS:
                    received, _ = receive_with_loss(codec_name, clean, loss, seed, conceal)
                    scores.append(quality.compare(clean, received, rate).pesq_mos_lqo)
                    if loss == 10 and seed == SEEDS[0]:
                        examples[(name, conceal)] = received
                curve.append(float(np.mean(scores)))
            mode = "concealment" if conceal else "zero-fill"
            loss_curves[f"{name} + {mode}"] = curve
            loss_rows.append({"codec": name, "decoder": mode}
                             | {f"{p} %": round(v, 2) for p, v in zip(LOSS_PERCENT, curve)})
    table(loss_rows)
    """),
    code("""
    plots.loss_curve(LOSS_PERCENT, loss_curves,
                     title="PESQ MOS-LQO against random packet loss (mean of 3 seeded patterns)")
    """),
    code("""
    at = {p: i for i, p in enumerate(LOSS_PERCENT)}
    for name, curve in loss_curves.items():
        # loss degrades quality monotonically (allowing 0.1 MOS of pattern noise) ...
        assert all(b <= a + 0.1 for a, b in pairwise(curve)), (name, curve)
        assert curve[at[10]] < curve[at[0]] - 0.5, (name, curve)     # ... and 10 % hurts
    for name in LOSS_CODECS:
        concealed, zeros = loss_curves[f"{name} + concealment"], loss_curves[f"{name} + zero-fill"]
        assert concealed[at[0]] == zeros[at[0]]                     # no loss, same decoder
        assert concealed[at[5]] >= zeros[at[5]], (name, concealed, zeros)  # PLC helps at 5 %
        assert concealed[at[10]] >= zeros[at[10]], (name, concealed, zeros)
    print("concealment gain at 5 % loss:",
          {n: round(loss_curves[f"{n} + concealment"][at[5]]
                    - loss_curves[f"{n} + zero-fill"][at[5]], 2) for n in LOSS_CODECS})
    """),
    md("""
    What concealment does to the waveform: G.729A at 10 % loss, the same lost packets decoded
    both ways (delay removed). Zero-fill leaves 20 ms holes; G.729's erasure concealment keeps
    the voice going through them, fading if the loss lasts.
    """),
    code("""
    concealed_10 = examples[("G.729A", True)]
    zeros_10 = examples[("G.729A", False)]
    _, lost = receive_with_loss("G729", clean_8k, 10, SEEDS[0], True)
    # the lost packet where the speech was loudest, shown with 50 ms before it
    packet_level = np.abs(clean_8k[: lost.size * 160].astype(float)).reshape(-1, 160).mean(axis=1)
    loudest_lost = int(np.argmax(np.where(lost, packet_level, 0.0)))
    start_s = max(loudest_lost * 0.02 - 0.05, 0.0)
    plots.waveforms({"clean": aligned_segment(clean_8k, start_s),
                     "G.729A, zero-fill": aligned_segment(zeros_10, start_s),
                     "G.729A, concealment": aligned_segment(concealed_10, start_s)}, 8000,
                    title=f"packet {loudest_lost} lost ({int(lost.sum())} of {lost.size}"
                          " lost in this pattern)")
    """),
    code("""
    plots.listening_panel({"G.729A, 10 % loss, zero-fill": (zeros_10, 8000),
                           "G.729A, 10 % loss, concealment": (concealed_10, 8000)})
    """),
    md("""
    ## Reading the results

    * **G.711** (A-law, µ-law) is within ~0.1 MOS of the ceiling: the reference for everything
      else. **G.729A** costs ~0.7 MOS and **G.723.1** a little more, in exchange for 8× and
      10× less bandwidth.
    * **Transcoding costs quality every time**: G.711 around a G.729 leg loses a bit more than
      G.729 alone; two CELP codecs in tandem (G.729 → G.729, G.723.1 → G.729) lose another
      ~0.5 MOS. A switch should avoid CELP-to-CELP transcoding (SPEC §5: only with *Allow codec
      conversion* on both sides).
    * **Wide-band** needs every leg wide-band: G.722 end to end scores far above G.711 on the
      wide-band scale, G.711 → G.722 does not.
    * **Loss** hurts every codec, and 1 % already costs G.711 about 0.4 MOS on this short
      clip. Concealment is worth up to a few tenths of MOS at 5–10 % loss (the gains are
      printed above); even vosapp's simple repetition beats playing silence.

    The same numbers (without loss) are in `docs/benchmarks.md` from `bench/codec_quality.py`.
    """),
    code("""
    print(f"notebook computed in {time.perf_counter() - notebook_start:.1f} s")
    """),
]

# --------------------------------------------------------------------------------------- 05

NB05 = [
    md("""
    # 05 — DTMF tuning: the Q.24 receiver, talk-off, noise and method conversion

    vosapp detects inband DTMF with its own receiver (`vosapp.media.dtmf.DtmfDetector`, 5 ms
    Goertzel-style blocks, 20 ms sliding windows, frequencies *measured* from the phase
    advance). SPEC §6 asks it to meet the ITU-T **Q.24** receiver limits:

    | check | operate (must detect) | reject (must not) |
    |---|---|---|
    | frequency deviation of each tone | ±1.5 % | ±3.5 % and beyond |
    | tone duration | 40 ms | 23 ms |
    | interruption | a 10 ms break is bridged (one digit) | a 40 ms pause separates (two digits) |
    | twist | 8 dB normal (low group louder), 4 dB reverse | — |
    | level per tone | 0 to −25 dBm0 (+3.17 dBm0 = full-scale sine) | — |
    | talk-off | at most 1 false digit per minute of speech | |

    Every threshold of the receiver is a field of `DetectorTuning`; below each one gets a
    slider. The grid, the talk-off count and the noise test are then **measured** on generated
    tones and on the real speech in `data/speech/` — nothing here is a lookup table. Moving a
    slider (in JupyterLab) recomputes the grid; when this notebook runs in CI the sliders keep
    their defaults, and one programmatic change shows the callback at work.
    """),
    code("""
    import time
    from dataclasses import fields

    import ipywidgets as widgets
    import numpy as np
    import plotly.graph_objects as go
    from IPython.display import display

    from vosapp.lab import plots, quality
    from vosapp.lab.widgets import table
    from vosapp.media import codecs
    from vosapp.media.dtmf import (
        DIGITS,
        DetectorTuning,
        DtmfDetectorBank,
        TuningError,
        detect_digits,
        generate_digits,
    )

    RATE = 8000
    DEFAULT = DetectorTuning()
    notebook_start = time.perf_counter()
    table([{"field": f.name, "default": getattr(DEFAULT, f.name),
            "range": "{} … {}".format(*DetectorTuning._RANGES[f.name])}
           for f in fields(DetectorTuning)])
    """),
    md("""
    ## One slider per threshold

    The ranges are the ones `DetectorTuning` validates. Some combinations are invalid (the
    window must be 2–10 whole hops; `min_on_ms` at least one window): the status line then
    shows the receiver's own error and the grid keeps the last valid tuning. Sliders update
    when released (`continuous_update=False`), since each change re-runs the whole grid.
    """),
    code("""
    STEPS = {"hop_ms": 0.5, "window_ms": 0.5, "max_frequency_deviation": 0.001,
             "min_on_ms": 1.0, "min_off_ms": 1.0}
    sliders = {}
    for field in fields(DetectorTuning):
        low, high = DetectorTuning._RANGES[field.name]
        step = STEPS.get(field.name, 0.5)
        sliders[field.name] = widgets.FloatSlider(
            value=getattr(DEFAULT, field.name), min=low, max=high, step=step,
            description=field.name, continuous_update=False,
            readout_format=".3f" if step < 0.01 else ".1f",
            style={"description_width": "190px"}, layout={"width": "480px"},
        )
    status = widgets.HTML()
    talk_off_label = widgets.HTML()


    def tuning_from_sliders() -> DetectorTuning:
        \"\"\"The tuning the sliders describe (raises TuningError when invalid).\"\"\"
        return DetectorTuning(**{name: float(s.value) for name, s in sliders.items()})


    assert tuning_from_sliders() == DEFAULT
    print(len(sliders), "sliders, one per DetectorTuning field")
    """),
    md("""
    ## The Q.24 grid, measured

    Every cell sends the 16 keys (`0-9 * # A-D`) once, each in its own ~201 ms slot — a length
    that is not a multiple of the 5 ms analysis hop, so the 16 tones start at 16 different
    phases of the blocks — and counts how many come out exactly right (the right key, once).
    All cells run together as channels of one vectorised `DtmfDetectorBank`.

    * **frequency deviation × level**: both tones of every key shifted by the same relative
      deviation, per-tone level from 0 dBm0 (two tones at 0 dBm0 overdrive a linear channel:
      they saturate, as a G.711 channel would) down to −40 dBm0, 100 ms tones;
    * **duration**: tones of 20–50 ms, a 100 ms tone with a 10 ms break (must stay one
      digit) and a key sent twice across a 40 ms pause (must count twice), at −10 dBm0;
    * **twist**: high-group minus low-group level from −12 dB (normal twist, low group
      louder) to +8 dB (reverse), with the louder tone at −5 and −15 dBm0.

    Cells marked `op` must detect 16/16, `rej` must detect 0/16; unmarked cells carry no Q.24
    requirement and show where the receiver's margins lie. A red cross marks a broken
    requirement.
    """),
    code("""
    PERIOD = 1607  # samples per digit slot (~201 ms): 7 mod 40, so start phases differ
    LEAD = 400     # 50 ms of silence first


    def digit_slots(on_ms=100.0, level=-10.0, *, twist=0.0, deviation=0.0, break_ms=0.0,
                    twice=False):
        \"\"\"The 16 keys, one per slot, as one int16 signal.\"\"\"
        out = np.zeros(LEAD + len(DIGITS) * PERIOD, np.int16)
        for slot, digit in enumerate(DIGITS):
            if twice:  # 60 ms, a 40 ms pause, 60 ms again
                tone = generate_digits(digit * 2, RATE, on_ms=60, off_ms=40, level_dbm0=level)
            else:
                tone = generate_digits(digit, RATE, on_ms=on_ms, off_ms=0, level_dbm0=level,
                                       twist_db=twist, row_deviation=deviation,
                                       column_deviation=deviation, clip=level > -3)
                if break_ms:  # mute inside the tone, 40 ms after its start
                    tone[320 : 320 + round(break_ms * RATE / 1000)] = 0
            start = LEAD + slot * PERIOD
            out[start : start + tone.size] = tone
        return out


    DEVIATIONS = [-4.0, -3.5, -2.5, -1.5, 0.0, 1.5, 2.5, 3.5, 4.0]   # percent
    LEVELS = [0, -5, -10, -15, -20, -25, -30, -35, -40]              # dBm0 per tone
    DURATIONS = {"20 ms": 20, "23 ms": 23, "28 ms": 28, "32 ms": 32, "36 ms": 36, "40 ms": 40,
                 "50 ms": 50, "10 ms break": "break", "twice, 40 ms pause": "twice"}
    TWISTS = [-12, -10, -8, -6, -4, 0, 2, 4, 6, 8]                    # dB, high minus low
    TWIST_LEVELS = [-5, -15]


    def deviation_requirement(deviation, level):
        if abs(deviation) >= 3.5:
            return "reject"
        return "operate" if abs(deviation) <= 1.5 and level >= -25 else ""


    DURATION_REQUIREMENT = {"20 ms": "reject", "23 ms": "reject", "40 ms": "operate",
                            "50 ms": "operate", "10 ms break": "operate",
                            "twice, 40 ms pause": "operate"}

    # The test signals do not depend on the tuning: build them once.
    signals, expected_repeats = [], []
    for level in LEVELS:
        for deviation in DEVIATIONS:
            signals.append(digit_slots(100, level, deviation=deviation / 100))
            expected_repeats.append(1)
    for duration in DURATIONS.values():
        if duration == "break":
            signals.append(digit_slots(100, -10, break_ms=10))
        elif duration == "twice":
            signals.append(digit_slots(twice=True))
        else:
            signals.append(digit_slots(duration, -10))
        expected_repeats.append(2 if duration == "twice" else 1)
    for level in TWIST_LEVELS:
        for twist in TWISTS:
            signals.append(digit_slots(100, level, twist=twist))
            expected_repeats.append(1)
    grid_audio = np.stack(signals)
    print(f"{grid_audio.shape[0]} cells × {grid_audio.shape[1] / RATE:.2f} s of audio")


    def score_cells(tuning):
        \"\"\"Per cell: keys detected exactly right, and keys detected at all.\"\"\"
        bank = DtmfDetectorBank(grid_audio.shape[0], RATE, tuning=tuning)
        events = bank.feed(grid_audio) + bank.flush()
        heard = [[[] for _ in DIGITS] for _ in signals]
        for event in events:
            slot = int((event.start * RATE - LEAD + 200) // PERIOD)
            heard[event.channel][min(max(slot, 0), len(DIGITS) - 1)].append(event.digit)
        correct = np.array([sum(keys == [digit] * repeats for keys, digit in zip(cell, DIGITS))
                            for cell, repeats in zip(heard, expected_repeats)])
        found = np.array([sum(bool(keys) for keys in cell) for cell in heard])
        return correct, found


    def q24_panels(tuning):
        correct, found = score_cells(tuning)
        n_dev = len(LEVELS) * len(DEVIATIONS)
        n_dur = len(DURATIONS)
        shape_dev = (len(LEVELS), len(DEVIATIONS))
        deviation_panel = plots.CompliancePanel(
            "frequency deviation × level (100 ms tones)", "deviation of both tones",
            "level per tone", [f"{d:+.1f} %" for d in DEVIATIONS],
            [f"{v} dBm0" for v in LEVELS], correct[:n_dev].reshape(shape_dev), len(DIGITS),
            np.array([[deviation_requirement(d, v) for d in DEVIATIONS] for v in LEVELS]),
            found[:n_dev].reshape(shape_dev))
        duration_panel = plots.CompliancePanel(
            "duration and interruptions (−10 dBm0)", "tone", "", list(DURATIONS),
            ["−10 dBm0"], correct[n_dev : n_dev + n_dur][None, :], len(DIGITS),
            np.array([[DURATION_REQUIREMENT.get(label, "") for label in DURATIONS]]),
            found[n_dev : n_dev + n_dur][None, :])
        shape_twist = (len(TWIST_LEVELS), len(TWISTS))
        twist_panel = plots.CompliancePanel(
            "twist (negative: low group louder = normal twist)", "twist (dB, high − low)",
            "louder tone", [f"{t:+d} dB" for t in TWISTS], [f"{v} dBm0" for v in TWIST_LEVELS],
            correct[n_dev + n_dur :].reshape(shape_twist), len(DIGITS),
            np.array([["operate" if -8 <= t <= 4 else "" for t in TWISTS]
                      for _ in TWIST_LEVELS]),
            found[n_dev + n_dur :].reshape(shape_twist))
        return [deviation_panel, duration_panel, twist_panel]


    started = time.perf_counter()
    panels = q24_panels(DEFAULT)
    print(f"grid measured in {time.perf_counter() - started:.2f} s")
    q24_figure = go.FigureWidget(plots.compliance_heatmap(
        panels, title="ITU-T Q.24 receiver grid, default tuning"))
    q24_figure
    """),
    code("""
    # The lab must not lie: the default tuning meets every Q.24 point SPEC §6 requires.
    deviation_panel, duration_panel, twist_panel = panels
    for panel in panels:
        assert panel.compliant, (panel.title, np.argwhere(panel.failures))
    level_index = {v: i for i, v in enumerate(LEVELS)}
    dev_index = {d: j for j, d in enumerate(DEVIATIONS)}
    for level in (0, -5, -10, -15, -20, -25):          # operate from 0 down to -25 dBm0 ...
        for deviation in (-1.5, 0.0, 1.5):             # ... at ±1.5 % deviation
            assert deviation_panel.correct[level_index[level], dev_index[deviation]] == 16
        for deviation in (-4.0, -3.5, 3.5, 4.0):       # reject at ±3.5 % and beyond
            assert deviation_panel.found[level_index[level], dev_index[deviation]] == 0
    durations = dict(zip(DURATIONS, duration_panel.correct[0]))
    found_durations = dict(zip(DURATIONS, duration_panel.found[0]))
    assert durations["40 ms"] == 16 and found_durations["23 ms"] == 0
    assert durations["10 ms break"] == 16 and durations["twice, 40 ms pause"] == 16
    for row in range(len(TWIST_LEVELS)):
        twists = dict(zip(TWISTS, twist_panel.correct[row]))
        assert twists[-8] == twists[4] == 16           # 8 dB normal, 4 dB reverse
    print("Q.24 points of SPEC §6: all met by the default tuning")
    """),
    md("""
    ## Talk-off: false digits in speech

    Speech has strong harmonics that can line up with a row and a column frequency for a few
    tens of milliseconds; a receiver that reports those has *talked off*. SPEC §6 allows at
    most **one false detection per minute of speech**. The check runs the receiver on every
    clip in `data/speech/` (eight espeak recordings and the CMU ARCTIC clip, resampled to
    8 kHz), at the clips' level and 6 dB hotter (the loudest syllables then saturate, as on a
    hot line).
    """),
    code("""
    speech_paths = sorted(quality.SPEECH_DIR.glob("espeak_*.flac")) + [quality.ARCTIC_CLIP]
    speech = [quality.load_audio(path, rate=RATE)[0] for path in speech_paths]
    speech_seconds = sum(clip.size for clip in speech) / RATE
    speech_matrix = np.zeros((len(speech), max(clip.size for clip in speech)), np.int16)
    for i, clip in enumerate(speech):
        speech_matrix[i, : clip.size] = clip


    def talk_off(tuning, gain_db=0.0):
        \"\"\"False digits in all the speech clips (one channel per clip).\"\"\"
        audio = np.clip(np.round(speech_matrix * 10 ** (gain_db / 20)), -32768, 32767)
        bank = DtmfDetectorBank(len(speech), RATE, tuning=tuning)
        return bank.feed(audio.astype(np.int16)) + bank.flush()


    LOOSE = DetectorTuning(min_on_ms=20, min_relative_peak_db=3, max_second_harmonic_db=0,
                           min_tone_to_total_db=-10)
    rows = []
    for name, tuning in (("default", DEFAULT), ("loose (speech checks relaxed)", LOOSE)):
        for gain in (0.0, 6.0):
            count = len(talk_off(tuning, gain))
            rows.append({"tuning": name, "gain (dB)": gain, "false digits": count,
                         "per minute": round(count / (speech_seconds / 60), 2)})
    print(f"{len(speech)} clips, {speech_seconds:.0f} s of speech")
    table(rows)
    """),
    code("""
    default_rows = [r for r in rows if r["tuning"] == "default"]
    loose_rows = [r for r in rows if r["tuning"] != "default"]
    assert speech_seconds >= 60, "talk-off needs at least a minute of speech"
    assert all(r["per minute"] <= 1.0 for r in default_rows), default_rows
    # ... and the measurement can see talk-off: relaxing the speech checks lets digits through.
    assert all(r["false digits"] > 10 * max(1, d["false digits"])
               for r, d in zip(loose_rows, default_rows)), rows
    """),
    md("""
    ## Live: sliders → grid and talk-off

    The callback below rebuilds the tuning from the sliders, re-measures the grid and the
    talk-off count, and updates the figure above in place (one batched update). Try it in
    JupyterLab: lower `max_frequency_deviation` to 0.012 and the ±1.5 % column fails; lower
    `min_tone_to_total_db` to −20 and speech starts producing digits.
    """),
    code("""
    state = {"tuning": DEFAULT, "panels": panels, "updates": 0}


    def show_talk_off(tuning):
        count = len(talk_off(tuning))
        per_minute = count / (speech_seconds / 60)
        verdict = "ok" if per_minute <= 1 else "<b style='color:#d62728'>over the limit</b>"
        talk_off_label.value = (f"talk-off: {count} false digits in {speech_seconds:.0f} s of"
                                f" speech = {per_minute:.2f}/min ({verdict})")
        return per_minute


    def on_tuning_change(change=None):
        try:
            tuning = tuning_from_sliders()
        except TuningError as error:
            status.value = f"<span style='color:#d62728'>{error}</span> (grid not updated)"
            return
        new_panels = q24_panels(tuning)
        plots.update_compliance(q24_figure, new_panels)
        failing = sum(int(p.failures.sum()) for p in new_panels)
        status.value = ("tuning valid; Q.24 grid: " + ("all required cells hold" if not failing
                        else f"<b style='color:#d62728'>{failing} required cells fail</b>"))
        per_minute = show_talk_off(tuning)
        state.update(tuning=tuning, panels=new_panels, talk_off_per_minute=per_minute,
                     updates=state["updates"] + 1)


    for slider in sliders.values():
        slider.observe(on_tuning_change, names="value")
    on_tuning_change()
    controls = widgets.VBox([widgets.HTML("<b>DetectorTuning</b>"),
                             widgets.GridBox(list(sliders.values()),
                                             layout={"grid_template_columns": "repeat(2, 490px)"}),
                             status, talk_off_label])
    display(controls, q24_figure)
    """),
    code("""
    # What a user does with a slider, done by the notebook so CI runs the callback:
    # ask for 45 ms of tone before a digit counts. Q.24's 40 ms tones must now be missed.
    updates_before = state["updates"]
    sliders["min_on_ms"].value = 45.0
    assert state["updates"] == updates_before + 1 and state["tuning"].min_on_ms == 45.0
    duration_now = dict(zip(DURATIONS, state["panels"][1].correct[0]))
    assert duration_now["40 ms"] < 16 and not state["panels"][1].compliant
    assert list(q24_figure.data[2].z[0]) == list(state["panels"][1].correct[0] / 16)
    print(status.value)
    print("40 ms tones detected with min_on_ms=45:", duration_now["40 ms"], "of 16")

    # An invalid combination is reported, and the grid keeps the last valid tuning.
    sliders["window_ms"].value = 21.0
    assert "window_ms" in status.value and state["tuning"].min_on_ms == 45.0
    print(status.value)

    # Back to the defaults: compliant again.
    sliders["window_ms"].value = DEFAULT.window_ms
    sliders["min_on_ms"].value = DEFAULT.min_on_ms
    assert state["tuning"] == DEFAULT and all(p.compliant for p in state["panels"])
    print(status.value)
    """),
    code("""
    # The two experiments suggested above, checked (so the text stays true):
    # a frequency tolerance tighter than 1.5 % loses the ±1.5 % columns at every level ...
    sliders["max_frequency_deviation"].value = 0.012
    failing = state["panels"][0].failures
    failing_columns = {DEVIATIONS[j] for j in np.flatnonzero(failing.any(axis=0))}
    assert failing_columns == {-1.5, 1.5} and failing.sum() == 2 * 6, np.argwhere(failing)
    print("max_frequency_deviation=0.012:", status.value)
    sliders["max_frequency_deviation"].value = DEFAULT.max_frequency_deviation

    # ... and a lax tone-to-total check lets speech through as digits.
    sliders["min_tone_to_total_db"].value = -20.0
    assert state["talk_off_per_minute"] > 1.0 and all(p.compliant for p in state["panels"])
    print("min_tone_to_total_db=-20:", talk_off_label.value)
    sliders["min_tone_to_total_db"].value = DEFAULT.min_tone_to_total_db
    assert state["tuning"] == DEFAULT and state["talk_off_per_minute"] <= 1.0
    """),
    md("""
    ## Noisy digits: a confusion matrix

    Each of the 16 keys is sent 12 times (50 ms at −20 dBm0 per tone, random start within a
    5 ms hop) in white noise at a given signal-to-noise ratio (tone-pair power over noise
    power in the telephone band, seeded RNG). Rows are the keys sent, columns what the
    receiver reported; `none` = missed, `extra` = more than one digit. A good receiver gets
    *misses* as the noise rises, not *wrong keys*: its checks (relative peak, tone-to-total,
    frequency) refuse a doubtful window rather than guess.
    """),
    code("""
    TRIALS = 12
    NOISE_LEVEL = -20.0
    SLOT = 2000  # 250 ms per trial
    pair_power = np.mean(generate_digits("5", RATE, on_ms=200, off_ms=0,
                                         level_dbm0=NOISE_LEVEL).astype(np.float64) ** 2)
    REPORTED = list(DIGITS) + ["none", "extra"]


    def confusion(snr_db, tuning=DEFAULT, seed=7):
        rng = np.random.default_rng(seed)
        audio = np.zeros((len(DIGITS) * TRIALS, SLOT))
        for k, digit in enumerate(DIGITS):
            tone = generate_digits(digit, RATE, on_ms=50, off_ms=0, level_dbm0=NOISE_LEVEL)
            for trial in range(TRIALS):
                start = 400 + int(rng.integers(0, 40))
                audio[k * TRIALS + trial, start : start + tone.size] = tone
        audio += rng.normal(0.0, np.sqrt(pair_power / 10 ** (snr_db / 10)), audio.shape)
        audio = np.clip(np.round(audio), -32768, 32767).astype(np.int16)
        bank = DtmfDetectorBank(audio.shape[0], RATE, tuning=tuning)
        heard = [[] for _ in range(audio.shape[0])]
        for event in bank.feed(audio) + bank.flush():
            heard[event.channel].append(event.digit)
        counts = np.zeros((len(DIGITS), len(REPORTED)), int)
        for channel, keys in enumerate(heard):
            column = (DIGITS.index(keys[0]) if len(keys) == 1
                      else REPORTED.index("none" if not keys else "extra"))
            counts[channel // TRIALS, column] += 1
        return counts


    SNRS = [15, 10, 6, 3, 0]
    matrices = {snr: confusion(snr) for snr in SNRS}
    summary = [{"SNR (dB)": snr, "right key": int(np.trace(m[:, :16])),
                "wrong key": int(m[:, :16].sum() - np.trace(m[:, :16])),
                "missed": int(m[:, 16].sum()), "extra": int(m[:, 17].sum()),
                "of": int(m.sum())} for snr, m in matrices.items()]
    table(summary)
    """),
    code("""
    plots.confusion_heatmap(matrices[15], list(DIGITS), REPORTED,
                            title="sent vs reported at 15 dB SNR (Q.24's noise condition)")
    """),
    code("""
    plots.confusion_heatmap(matrices[3], list(DIGITS), REPORTED,
                            title="sent vs reported at 3 dB SNR")
    """),
    code("""
    at15 = matrices[15]
    assert np.array_equal(at15[:, :16], np.diag(np.diag(at15[:, :16])))  # no wrong key ...
    assert np.all(np.diag(at15) == TRIALS) and at15[:, 16:].sum() == 0    # ... and no miss
    for row in summary:  # at no SNR does noise turn into a wrong key: misses only
        assert row["wrong key"] == 0, row
    assert summary[-1]["right key"] < summary[0]["right key"]  # 0 dB SNR does hurt
    """),
    md("""
    ## Method conversion: RFC 2833 / SIP INFO / Inband (SPEC §6)

    With the media proxy on, vosapp terminates DTMF on each side and re-sends it with the
    *other* side's settings (`vosapp.media.dtmf.convert.DtmfConverter`, one per call direction,
    the same class the RTP relay uses):

    * **RFC 2833 → RFC 2833**: forwarded packet by packet, with the far side's payload type;
    * **Inband → RFC 2833 / INFO**: the receiver above finds the tones (the audio still
      passes), the digit is sent as events / an INFO when it ends (its duration is known then);
    * **RFC 2833 / INFO → Inband**: tones are generated into the far side's audio and the
      event is discarded;
    * DTMF send **Auto** keeps the method the digit came with; RFC 2833 towards a side that did
      not negotiate telephone-event falls back to Inband (vosapp's documented choice);
    * the **first method** seen in a call wins; others are ignored for the rest of the call;
    * **Use peer RFC2833 ability** checked → advertise telephone-event only if the peer did.

    Each case below runs on generated audio and real RFC 4733 packets, and the result is
    checked: generated tones are decoded by the receiver after a real G.711 or G.729 codec.
    """),
    code("""
    from vosapp.media.dtmf import (
        DtmfConverter,
        DtmfSideSettings,
        TelephoneEventReceiver,
        TelephoneEventSender,
        advertise_telephone_event,
    )
    from vosapp.media.dtmf.convert import (
        ForwardEvent,
        GenerateTones,
        IgnoredDigit,
        SendEvent,
        SendInfo,
    )

    caller = DtmfSideSettings(payload_type=101)  # receive All, send Auto


    def carrier(send, payload_type=96):
        return DtmfSideSettings(send=send, payload_type=payload_type)


    def rfc2833_packets(digits, payload_type=101, duration_ms=120):
        sender = TelephoneEventSender(payload_type)
        packets, timestamp, sequence = [], 1000, 1
        for digit in digits:
            batch = sender.packets(digit, duration_ms, timestamp=timestamp, sequence=sequence)
            packets += batch
            timestamp += 8 * (duration_ms + 100)
            sequence += len(batch)
        return packets


    def feed_rfc2833(converter, packets):
        actions = []
        for packet in packets:
            actions += converter.on_rfc2833(packet.payload_type, packet.timestamp,
                                            packet.payload, marker=packet.marker)
        return actions


    def feed_audio(converter, audio, chunk=160):  # 20 ms RTP packets' worth
        actions = []
        for start in range(0, audio.size, chunk):
            actions += converter.on_audio(audio[start : start + chunk])
        return actions


    def through_codec(name, audio):
        codec = codecs.get(name)
        padded = np.concatenate([audio, np.zeros(-audio.size % codec.frame_samples, np.int16)])
        return codec.decode(codec.encode(padded))


    def describe_action(action):
        if isinstance(action, ForwardEvent):
            return f"ForwardEvent(PT {action.payload_type})"
        detail = {SendEvent: lambda a: f", PT {a.payload_type}, {a.duration_ms} ms",
                  SendInfo: lambda a: f", {a.duration_ms} ms",
                  GenerateTones: lambda a: f", {a.samples.size / a.rate * 1000:.0f} ms of tone",
                  IgnoredDigit: lambda a: f": {a.reason}"}[type(action)](action)
        return f"{type(action).__name__}({action.digit}{detail})"


    def describe(actions):
        return ", ".join(describe_action(a) for a in actions) or "(nothing)"


    conversions = []
    """),
    code("""
    # 1. Inband -> RFC 2833: tones in the caller's audio become events with the carrier's PT 96.
    keys = "159#"
    caller_audio = generate_digits(keys, RATE, on_ms=80, off_ms=80, level_dbm0=-12)
    converter = DtmfConverter(caller, carrier("RFC2833"), far_rfc2833=True)
    actions = feed_audio(converter, caller_audio)
    assert [type(a) for a in actions] == [SendEvent] * 4
    assert "".join(a.digit for a in actions) == keys
    assert all(a.payload_type == 96 and 60 <= a.duration_ms <= 100 for a in actions)
    # the carrier's receiver reads the packets the relay builds from those actions
    far = TelephoneEventReceiver(96)
    received = []
    timestamp = 0
    for action in actions:
        for packet in TelephoneEventSender(action.payload_type).packets(
                action.digit, action.duration_ms, timestamp=timestamp, sequence=0):
            received += [r.digit for r in far.receive(packet.payload_type, packet.timestamp,
                                                      packet.payload, marker=packet.marker)
                         if r.kind == "end"]
        timestamp += 8000
    assert "".join(received) == keys
    conversions.append({"case": "Inband → RFC 2833 (send RFC2833)", "in": keys,
                        "out": describe(actions), "checked": "far receiver got " + "".join(received)})

    # 2. RFC 2833 -> Inband: events become tones; the carrier's audio (G.729) carries them.
    converter = DtmfConverter(caller, carrier("Inband"), far_rfc2833=False)
    actions = feed_rfc2833(converter, rfc2833_packets("27*"))
    assert [type(a) for a in actions] == [GenerateTones] * 3
    tone_audio = np.concatenate([np.concatenate([a.samples, np.zeros(800, np.int16)])
                                 for a in actions])
    heard = {name: detect_digits(through_codec(name, tone_audio)) for name in ("PCMA", "G729")}
    assert heard == {"PCMA": "27*", "G729": "27*"}, heard
    conversions.append({"case": "RFC 2833 → Inband (send Inband)", "in": "27* as events",
                        "out": describe(actions),
                        "checked": f"detected after PCMA: {heard['PCMA']}, after G.729: {heard['G729']}"})
    inband_example = tone_audio

    # 3. SIP INFO -> RFC 2833 and -> Inband.
    info_body = "Signal=8\\r\\nDuration=160\\r\\n"
    to_events = DtmfConverter(caller, carrier("RFC2833"), far_rfc2833=True)
    info_events = to_events.on_info("application/dtmf-relay", info_body)
    assert [(type(a), a.digit, a.duration_ms) for a in info_events] == [(SendEvent, "8", 160)]
    to_tones = DtmfConverter(caller, carrier("Inband"), far_rfc2833=True)
    info_tones = to_tones.on_info("application/dtmf-relay", info_body)
    assert isinstance(info_tones[0], GenerateTones) and detect_digits(info_tones[0].samples) == "8"
    conversions.append({"case": "SIP INFO → RFC 2833", "in": "INFO Signal=8",
                        "out": describe(info_events), "checked": "160 ms kept"})
    conversions.append({"case": "SIP INFO → Inband", "in": "INFO Signal=8",
                        "out": describe(info_tones), "checked": "tones detected as 8"})

    # 4. Inband -> SIP INFO.
    converter = DtmfConverter(caller, carrier("SIP INFO"), far_rfc2833=True)
    actions = feed_audio(converter, generate_digits("4", RATE, on_ms=120, off_ms=60))
    assert [(type(a), a.digit) for a in actions] == [(SendInfo, "4")]
    assert actions[0].content_type == "application/dtmf-relay"
    assert b"Signal=4" in actions[0].body
    conversions.append({"case": "Inband → SIP INFO", "in": "4 as tones", "out": describe(actions),
                        "checked": actions[0].body.decode().replace("\\r\\n", " ")})
    """),
    code("""
    # 5. RFC 2833 -> RFC 2833 with the media proxy on: forwarded, payload type 101 -> 96.
    converter = DtmfConverter(caller, carrier("Auto"), far_rfc2833=True)
    packets = rfc2833_packets("3")
    actions = feed_rfc2833(converter, packets)
    assert actions and all(isinstance(a, ForwardEvent) and a.payload_type == 96 for a in actions)
    assert len(actions) == len(packets)
    conversions.append({"case": "RFC 2833 → RFC 2833 (Auto)", "in": "3, PT 101",
                        "out": f"{len(actions)} × ForwardEvent(PT 96)",
                        "checked": "every packet forwarded, far side's PT"})

    # 6. Auto towards a side without telephone-event: RFC 2833 falls back to Inband.
    converter = DtmfConverter(caller, carrier("Auto"), far_rfc2833=False)
    actions = feed_rfc2833(converter, rfc2833_packets("0"))
    assert [type(a) for a in actions] == [GenerateTones]
    conversions.append({"case": "RFC 2833 → far side without telephone-event (Auto)",
                        "in": "0, PT 101", "out": describe(actions), "checked": "Inband fallback"})

    # 7. First method wins: INFO first, then RFC 2833 (and tones) are ignored for the call.
    converter = DtmfConverter(caller, carrier("RFC2833"), far_rfc2833=True)
    first = converter.on_info("application/dtmf", "6")
    later = feed_rfc2833(converter, rfc2833_packets("6"))
    later += feed_audio(converter, generate_digits("6", RATE))
    assert [type(a) for a in first] == [SendEvent]
    assert later and all(isinstance(a, IgnoredDigit) and "SIP INFO" in a.reason for a in later)
    conversions.append({"case": "first method wins (INFO, then RFC 2833 + tones)",
                        "in": "6 three ways", "out": describe(first + later),
                        "checked": "only the INFO relayed"})

    # 8. DTMF receive = RFC2833 on the caller's gateway: INFO is not accepted.
    strict = DtmfSideSettings(receive="RFC2833")
    converter = DtmfConverter(strict, carrier("RFC2833"), far_rfc2833=True)
    actions = converter.on_info("application/dtmf-relay", "Signal=9\\r\\nDuration=100\\r\\n")
    assert len(actions) == 1 and isinstance(actions[0], IgnoredDigit)
    conversions.append({"case": "DTMF receive RFC2833, INFO arrives", "in": "INFO 9",
                        "out": describe(actions), "checked": "ignored"})
    table(conversions)
    """),
    code("""
    # Use peer RFC2833 ability: when is telephone-event put in the SDP towards the far side?
    advertise = [{"use peer RFC2833 ability": checked, "peer offered telephone-event": offered,
                  "advertise": advertise_telephone_event(checked, offered)}
                 for checked in (True, False) for offered in (True, False)]
    assert [row["advertise"] for row in advertise] == [True, False, True, True]
    table(advertise)
    """),
    md("""
    The tones vosapp generated for "27*" (case 2), as the far side hears them through G.729 —
    the tone pair sits in two narrow lines per key, the codec smears a little energy around
    them, and the receiver still finds every key:
    """),
    code("""
    g729_tones = through_codec("G729", inband_example)
    display(plots.spectrograms({"generated (−10 dBm0)": inband_example,
                                "after G.729": g729_tones}, RATE,
                               title="RFC 2833 → Inband, then G.729"))
    plots.listening_panel({"generated": (inband_example, RATE), "after G.729": (g729_tones, RATE)})
    """),
    code("""
    elapsed = time.perf_counter() - notebook_start
    print(f"notebook computed in {elapsed:.1f} s")
    """),
]


def main() -> None:
    for name, cells in (("04-transcoding-quality.ipynb", NB04),
                        ("05-dtmf-tuning.ipynb", NB05)):
        if cells:
            print("wrote", write(name, cells).relative_to(HERE.parent))


if __name__ == "__main__":
    main()

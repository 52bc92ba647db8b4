# %% [markdown]
# # 04 — Transcoding quality: speech through every codec, tandem and lossy network
#
# A softswitch in the media path can change what people hear: each codec keeps some part of
# the speech and throws the rest away, every transcoding (decode, then encode with another
# codec) does that again, and lost packets punch holes that the decoder has to hide. This
# notebook *measures* it on real speech — the CMU ARCTIC clip `data/speech/arctic_a0007.wav`
# (4 s, male) — with the same codec objects and the same `Transcoder` the RTP relay runs.
#
# | codec | standard | bit rate | frame | how it works | RTP clock |
# |---|---|---|---|---|---|
# | PCMA / PCMU | G.711 A-law / µ-law | 64 kbit/s | 0.125 ms (sent as 20 ms) | logarithmic 8-bit samples: the waveform is kept (~34 dB segmental SNR on this clip) | 8000 |
# | G.729A | G.729 Annex A (bcg729) | 8 kbit/s | 10 ms + 5 ms look-ahead | CS-ACELP: a vocal-tract filter and an excitation chosen so the *sound* matches | 8000 |
# | G.723.1 | G.723.1 (FFmpeg), 6.3 kbit/s | 6.3 kbit/s | 30 ms + 7.5 ms look-ahead | MP-MLQ, the same analysis-by-synthesis idea, coarser | 8000 |
# | G.722 | G.722 (FFmpeg) | 64 kbit/s | sample-based (sent as 20 ms) | sub-band ADPCM of **16 kHz** audio (50–7000 Hz, "HD voice") | 8000 (RFC 3551 quirk) |
#
# **What the numbers mean.** PESQ (ITU-T P.862) compares the degraded signal with the clean
# one through a model of hearing and predicts what a listening panel would say. vosapp reports
# it as **MOS-LQO** (Mean Opinion Score, Listening Quality Objective): P.862.1 maps narrow-band
# PESQ (8 kHz) onto the 1–5 MOS scale, P.862.2 does the same for wide-band (16 kHz). The best
# possible score is the clean clip compared with itself: about **4.55** narrow-band, **4.64**
# wide-band. A rough reading: ≥ 4.0 toll quality, 3.6–4.0 good (what a mobile call sounds like),
# 3.1–3.6 fair, below 3.1 people notice and complain. **STOI** (0–1) predicts
# intelligibility — words understood, not pleasantness. **Segmental SNR** measures how well
# the *waveform* survives, which only waveform codecs (G.711, G.722) try to do; CELP codecs
# keep the spectrum instead and score ~0 dB while sounding fine. **LSD** (log-spectral
# distance, dB) measures the spectrum error. Every score is computed after removing the
# codec delay found by cross-correlation (`vosapp.lab.quality.compare`).

# %%
import time
from itertools import pairwise

import numpy as np

from vosapp.lab import plots, quality
from vosapp.lab.media_path import label, receive_with_loss, through_switch
from vosapp.lab.widgets import table
from vosapp.media import codecs

notebook_start = time.perf_counter()
clean_8k = quality.load_speech(8000)    # int16, resampled from the 16 kHz original
clean_16k = quality.load_speech(16000)
print(f"{quality.ARCTIC_CLIP.name}: {clean_8k.size / 8000:.2f} s;"
      f" codecs available: {', '.join(codecs.available())}")

# %% [markdown]
# ## The switch's media path, packet by packet
#
# `vosapp.lab.media_path.through_switch` does what a call through vosapp does: the calling
# phone encodes the speech with the first codec into 20 ms RTP packets (30 ms for G.723.1);
# each transcoding hop is a `vosapp.media.transcoder.Transcoder` (decode, resample 8 ↔ 16 kHz for G.722, reframe, encode,
# renumber RTP); the far phone decodes the last codec. `PCMA→G.729→PCMA` is the classic
# carrier tandem: the customer talks G.711, the carrier link is G.729, the far end is G.711
# again. In this narrow-band table G.722 gets the 8 kHz clip upsampled to 16 kHz and its
# output is scored at 8 kHz; its wide-band score follows further down.

# %%
NARROW_BAND = [["PCMA"], ["PCMU"], ["G722"], ["G729"], ["G723"],
               ["PCMA", "G729", "PCMA"], ["G729", "G729"], ["G723", "G729"],
               ["G729", "G723"], ["PCMU", "G722"]]
decoded_8k = {label(chain): through_switch(clean_8k, 8000, chain) for chain in NARROW_BAND}
reports_8k = {"clean (ceiling)": quality.compare(clean_8k, clean_8k, 8000)}
reports_8k |= {name: quality.compare(clean_8k, audio, 8000)
               for name, audio in decoded_8k.items()}
plots.quality_table(reports_8k, title="narrow-band: scored at 8 kHz with PESQ P.862.1")

# %%
plots.quality_chart({k: v for k, v in reports_8k.items() if k != "clean (ceiling)"},
                    ceiling=reports_8k["clean (ceiling)"].pesq_mos_lqo,
                    title="PESQ MOS-LQO (bars) and STOI (diamonds), narrow-band")

# %%
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

# %% [markdown]
# ### Cross-check: the relay's `Transcoder` against an offline chain
#
# `vosapp.lab.quality.through_codecs` runs the same chain on the whole signal at once (no
# RTP, no reframing, whole-signal resampling). The packet-by-packet path must give the same
# scores — if reframing, streaming resampling or RTP numbering lost or shifted audio, this
# would show it.

# %%
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

# %% [markdown]
# ## Wide-band: what G.722 adds
#
# Scored at 16 kHz with wide-band PESQ (P.862.2), G.722 keeps the 4–7 kHz band that every
# narrow-band codec cuts off. Transcoding a narrow-band leg into G.722 (`PCMU → G.722`)
# cannot bring that band back: the call is only as wide as its narrowest leg.

# %%
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

# %% [markdown]
# ## Spectrograms and waveforms
#
# Side by side on one colour scale (dB relative to a full-scale sine). G.711 keeps the fine
# harmonic structure; G.729A keeps the formants (the bright bands) but smooths the
# harmonics and the noise between them; the tandem smooths again. At 16 kHz the narrow-band
# legs are cut off at 4 kHz.

# %%
plots.spectrograms({"clean": clean_8k, "G.711 A-law": decoded_8k["G.711 A-law"],
                    "G.729A": decoded_8k["G.729A"],
                    "G.723.1 → G.729A": decoded_8k["G.723.1 → G.729A"]},
                   8000, title="narrow-band (8 kHz)")

# %%
plots.spectrograms({"clean": clean_16k, "G.722": decoded_16k["G.722"],
                    "G.711 A-law": decoded_16k["G.711 A-law"],
                    "G.711 µ-law → G.722": decoded_16k["G.711 µ-law → G.722"]},
                   16000, title="wide-band (16 kHz): G.722 keeps 4–7 kHz")


# %%
def aligned_segment(degraded, start_s=1.0, seconds=0.12, rate=8000):
    """The same stretch of speech in ``degraded``, codec delay removed."""
    delay, _ = quality.estimate_delay(clean_8k, degraded, rate, max_delay_ms=50)
    begin = round(start_s * rate) + delay
    return degraded[begin : begin + round(seconds * rate)]


segment = {"clean": aligned_segment(clean_8k)}
segment |= {name: aligned_segment(decoded_8k[name])
            for name in ("G.711 A-law", "G.729A", "G.711 A-law → G.729A → G.711 A-law")}
plots.waveforms(segment, 8000, title="120 ms of a vowel (delay removed): G.711 follows the"
                " waveform, G.729A only its sound")

# %% [markdown]
# ## Listen
#
# The players keep the true levels (no normalisation). Listen for G.729A's slightly
# "processed" timbre, and for the tandems where it doubles.

# %%
plots.listening_panel({"clean (8 kHz)": (clean_8k, 8000)}
                      | {name: (audio, 8000) for name, audio in decoded_8k.items()}
                      | {"clean (16 kHz)": (clean_16k, 16000),
                         "G.722 (16 kHz)": (decoded_16k["G.722"], 16000)})

# %% [markdown]
# ## Packet loss and concealment
#
# RTP packets (20 ms) are dropped at random at 0, 1, 3, 5 and 10 % (seeded, three loss
# patterns per rate, the same pattern for both decoders). The receiver then either
# **conceals** the gap with the codec's `conceal()` — G.729's own frame-erasure concealment
# (bcg729 extrapolates the excitation and filter from the last good frame), repetition of the
# last frame with 6 dB attenuation per lost frame for G.711 and G.722 (vosapp's simple PLC,
# *not* G.711 Appendix I) — or **zero-fills** it (silence, what a decoder without PLC plays).
# The clean clip is the reference, so each score is the codec and the loss together.

# %%
LOSS_PERCENT = [0, 1, 3, 5, 10]
SEEDS = (1, 2, 3)



LOSS_CODECS = {"G.711 A-law": ("PCMA", clean_8k, 8000), "G.729A": ("G729", clean_8k, 8000),
               "G.722 (wb)": ("G722", clean_16k, 16000)}
loss_curves, loss_rows, examples = {}, [], {}
for name, (codec_name, clean, rate) in LOSS_CODECS.items():
    for conceal in (True, False):
        curve = []
        for loss in LOSS_PERCENT:
            scores = []
            for seed in SEEDS:
                received, _ = receive_with_loss(codec_name, clean, loss, seed, conceal=conceal)
                scores.append(quality.compare(clean, received, rate).pesq_mos_lqo)
                if loss == 10 and seed == SEEDS[0]:
                    examples[(name, conceal)] = received
            curve.append(float(np.mean(scores)))
        mode = "concealment" if conceal else "zero-fill"
        loss_curves[f"{name} + {mode}"] = curve
        loss_rows.append({"codec": name, "decoder": mode}
                         | {f"{p} %": round(v, 2) for p, v in zip(LOSS_PERCENT, curve)})
table(loss_rows)

# %%
plots.loss_curve(LOSS_PERCENT, loss_curves,
                 title="PESQ MOS-LQO against random packet loss (mean of 3 seeded patterns)")

# %%
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

# %% [markdown]
# What concealment does to the waveform: G.729A at 10 % loss, the same lost packets decoded
# both ways (delay removed). Zero-fill leaves 20 ms holes; G.729's erasure concealment keeps
# the voice going through them, fading if the loss lasts.

# %%
concealed_10 = examples[("G.729A", True)]
zeros_10 = examples[("G.729A", False)]
_, lost = receive_with_loss("G729", clean_8k, 10, SEEDS[0], conceal=True)
# the lost packet where the speech was loudest, shown with 50 ms before it
packet_level = np.abs(clean_8k[: lost.size * 160].astype(float)).reshape(-1, 160).mean(axis=1)
loudest_lost = int(np.argmax(np.where(lost, packet_level, 0.0)))
start_s = max(loudest_lost * 0.02 - 0.05, 0.0)
plots.waveforms({"clean": aligned_segment(clean_8k, start_s),
                 "G.729A, zero-fill": aligned_segment(zeros_10, start_s),
                 "G.729A, concealment": aligned_segment(concealed_10, start_s)}, 8000,
                title=f"packet {loudest_lost} lost ({int(lost.sum())} of {lost.size}"
                      " lost in this pattern)")

# %%
plots.listening_panel({"G.729A, 10 % loss, zero-fill": (zeros_10, 8000),
                       "G.729A, 10 % loss, concealment": (concealed_10, 8000)})

# %% [markdown]
# ## Reading the results
#
# * **G.711** (A-law, µ-law) is within ~0.1 MOS of the ceiling: the reference for everything
#   else. **G.729A** costs ~0.7 MOS and **G.723.1** a little more, in exchange for 8× and
#   10× less bandwidth.
# * **Transcoding costs quality every time**: G.711 around a G.729 leg loses a bit more than
#   G.729 alone; two CELP codecs in tandem (G.729 → G.729, G.723.1 → G.729) lose another
#   ~0.5 MOS. A switch should avoid CELP-to-CELP transcoding
#   ([docs/behaviour.md §5](../docs/behaviour.md): only with *Allow codec conversion* on both
#   sides).
# * **Wide-band** needs every leg wide-band: G.722 end to end scores far above G.711 on the
#   wide-band scale, G.711 → G.722 does not.
# * **Loss** hurts every codec, and 1 % already costs G.711 about 0.4 MOS on this short
#   clip. Concealment is worth up to a few tenths of MOS at 5–10 % loss (the gains are
#   printed above); even vosapp's simple repetition beats playing silence.
#
# The same numbers (without loss) are in `docs/benchmarks.md` from `bench/codec_quality.py`.

# %%
print(f"notebook computed in {time.perf_counter() - notebook_start:.1f} s")

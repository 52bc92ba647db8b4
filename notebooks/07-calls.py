# %% [markdown]
# # 07 — Live calls through the switch
#
# Lab phones place real calls through the switch with real RTP: a PCMA phone → the switch
# (Softswitch specified, Allow codec conversion, media proxy On) → a G.729 vendor that echoes.
# Every codec and DTMF claim of [docs/behaviour.md §5 and §6](../docs/behaviour.md) is shown
# on calls here, measured on the audio and the SDP each end actually received, and asserted.
#
# **Why its own switch:** each demonstration needs its own gateway settings, so the notebook
# writes a configuration with one caller account, mapping gateway, routing gateway and lab
# vendor per demonstration (`vosapp.lab.call_lab`), and runs that switch in the kernel on free
# ports. The make-lab switch is left alone.

# %%
import asyncio
import tempfile
from itertools import pairwise

from vosapp.lab import plots, quality
from vosapp.lab.call_lab import CallLab, Demo, refusal, sdp_lines
from vosapp.lab.calls import CallError
from vosapp.lab.ladder import LiveLadder, media_records
from vosapp.lab.widgets import table
from vosapp.media.dtmf import generate_digits
from vosapp.store import Store
from vosapp.switch.cdr import read_cdrs

SPECIFIED = {"codec_mode": "Softswitch specified", "allow_codec_conversion": True,
             "media_proxy": "On"}
PCMA_SIDE = {**SPECIFIED, "specified_codec": "PCMA"}
G729_SIDE = {**SPECIFIED, "specified_codec": "G729"}
DEMOS = [
    # the main call; RFC 2833 payload 101 towards the phone, 96 towards the vendor
    Demo("transcode", mapping={**PCMA_SIDE, "rfc2833_payload": 101},
         routing={**G729_SIDE, "rfc2833_payload": 96}, vendor_codecs=("G729",)),
    # auto negotiation: the offer passes through, the vendor picks
    Demo("auto-common", phone_codecs=("PCMA", "G729"), vendor_codecs=("G729",)),
    Demo("auto-none", phone_codecs=("PCMA",), vendor_codecs=("G729",)),
    # two specified codecs without Allow codec conversion
    Demo("no-conversion", mapping={**PCMA_SIDE, "allow_codec_conversion": False},
         routing={**G729_SIDE, "allow_codec_conversion": False}, vendor_codecs=("G729",)),
    *[Demo(f"g729 {mode}", mapping=PCMA_SIDE, routing={**G729_SIDE, "g729_mode": mode},
           vendor_codecs=("G729",)) for mode in ("Auto", "G729", "G729a", "G729&G729a")],
    # DTMF (G.711 on both legs, relayed)
    Demo("info to vendor", mapping=PCMA_SIDE, routing={**PCMA_SIDE, "dtmf_send": "SIP INFO"}),
    Demo("peer rfc2833 on", mapping=PCMA_SIDE,
         routing={**PCMA_SIDE, "use_peer_rfc2833": True}, phone_telephone_event=None),
    Demo("peer rfc2833 off", mapping=PCMA_SIDE,
         routing={**PCMA_SIDE, "use_peer_rfc2833": False}, phone_telephone_event=None),
    Demo("inband to vendor", mapping=PCMA_SIDE, routing={**PCMA_SIDE, "dtmf_send": "Inband"}),
    Demo("inband to rfc2833", mapping={**PCMA_SIDE, "dtmf_receive": "Inband"},
         routing={**PCMA_SIDE, "dtmf_send": "RFC2833"}),
    Demo("inband to info", mapping={**PCMA_SIDE, "dtmf_receive": "Inband"},
         routing={**PCMA_SIDE, "dtmf_send": "SIP INFO"}),
    Demo("g711", mapping=PCMA_SIDE, routing=PCMA_SIDE),
]

scratch = tempfile.TemporaryDirectory(prefix="vosapp-nb07-")  # removed at the end
lab = await CallLab.start(DEMOS, scratch.name)
print(f"switch on {lab.switch.address}; configuration {scratch.name}/calls.toml")
table([{"demo": d.name, "caller": lab.phone(d.name).user, "dials": lab.number(d.name),
        "phone codecs": " ".join(d.phone_codecs), "vendor codecs": " ".join(d.vendor_codecs),
        "mapping gateway": ", ".join(f"{k}={v}" for k, v in d.mapping.items()),
        "routing gateway": ", ".join(f"{k}={v}" for k, v in d.routing.items())}
       for d in DEMOS])

# %% [markdown]
# ## The main call, with a live ladder
#
# The ladder follows the switch's trace (SIP) and, once the call has run, adds what only the
# endpoints know: when RTP started and with which codec on each leg, the DTMF sent, each
# RFC 2833 event received (`vosapp.lab.ladder.media_records`).

# %%
phone, vendor = lab.phone("transcode"), lab.vendor("transcode")
switch_host, switch_port = lab.switch.address
live = LiveLadder(lab.switch.trace, title="PCMA phone → switch → G.729 vendor",
                  names={phone.address: "phone (PCMA)", lab.switch.address: "switch",
                         vendor.address: "vendor (G.729)"},
                  columns=[phone.address, lab.switch.address, vendor.address],
                  address=[phone.address, vendor.address],
                  since=asyncio.get_running_loop().time())  # from now: not the REGISTERs
live

# %%
SPEECH = quality.load_speech(8000)[: 8000 * 3]  # 3 s of data/speech/arctic_a0007.wav

call, far = await lab.call("transcode")
print(call, far)
assert (call.codec, far.codec) == ("PCMA", "G729")
await call.play(SPEECH)
await asyncio.sleep(0.5)
await call.send_dtmf("59", method="rfc2833")
await asyncio.sleep(0.4)
await call.hangup()
live.add_records(media_records(call) + media_records(far))
live.flush()
live.close()  # the main call only: the widget keeps this picture
print(live.ladder.text())
assert any(m.text.startswith("RTP out G729") for m in live.ladder.markers)
assert any(m.text.startswith("RTP in PCMA") for m in live.ladder.markers)

# %% [markdown]
# ## What each end heard
#
# PESQ and STOI of what arrived at each end against what the other end sent, beside the same
# codec chain computed offline (`quality.through_codecs`): the relay adds nothing the codecs
# do not (docs/behaviour.md §5). The echo goes back G.729 → relay → PCMA.

# %%
there = quality.compare(SPEECH, far.recording(), 8000)
back = quality.compare(far.sent_audio(), call.recording(), 8000)
offline_there, _ = quality.through_codecs(SPEECH, 8000, ["PCMA", "G729"])
offline = quality.compare(SPEECH, offline_there, 8000)
plots.quality_table({"phone → vendor (PCMA → relay → G.729)": there,
                     "same chain offline": offline,
                     "vendor echo → phone (G.729 → relay → PCMA)": back},
                    title="live call vs the offline codec chain")

# %%
print(f"PESQ live {there.pesq_mos_lqo:.2f}, offline {offline.pesq_mos_lqo:.2f}; "
      f"STOI {there.stoi:.3f}")
assert there.pesq_mos_lqo > 3.0 and back.pesq_mos_lqo > 3.0
assert abs(there.pesq_mos_lqo - offline.pesq_mos_lqo) < 0.3  # tolerant: a loaded machine
assert there.stoi > 0.85 and back.stoi > 0.85
plots.spectrograms({"phone sent": SPEECH, "vendor received (G.729)": far.recording(),
                    "phone received (the echo, PCMA)": call.recording()}, 8000,
                   title="what was sent and what each end received")

# %% [markdown]
# ## RFC 2833 regenerated with each side's payload type
#
# The phone sent digits 5 and 9 as telephone-event payload 101; the relay terminates them and
# sends the vendor its own gateway's payload type, 96 (docs/behaviour.md §6).

# %%
sent_pts = sorted({p["payload_type"] for p in call.packet_log()})
vendor_pts = sorted({p["payload_type"] for p in far.packet_log()})
print("vendor's SDP:", sdp_lines(far.invite.body))
print("payload types the vendor received:", vendor_pts, "— digits:",
      far.received_digits("rfc2833"))
assert "a=rtpmap:96 telephone-event/8000" in sdp_lines(far.invite.body)
assert far.received_digits("rfc2833") == "59" and 96 in vendor_pts and 101 not in vendor_pts
assert "a=rtpmap:101 telephone-event/8000" in sdp_lines(call.invite.body)

# %% [markdown]
# ## Codec negotiation (docs/behaviour.md §5)
#
# * **Auto negotiation**: the offer passes through, the answer picks a common codec, no
#   transcoding; with no common codec the vendor refuses with 488 and its Warning, which the
#   switch passes to the caller.
# * **Softswitch specified, two codecs, conversion off**: the switch itself answers 488 with a
#   Warning saying why.

# %%
rows = []
common, common_far = await lab.call("auto-common")
rows.append({"demo": "auto-common", "phone": common.codec, "vendor": common_far.codec,
             "result": "answered"})
await common.hangup()
for name in ("auto-none", "no-conversion"):
    attempt = await lab.dial(name)
    try:
        await attempt.wait_answered(10)
    except CallError as error:
        status, warning = refusal(lab.phone(name).responses, error.status) or (None, "")
        rows.append({"demo": name, "phone": "-", "vendor": "-",
                     "result": f"{status} {warning}".strip()})
table(rows)

# %%
assert (common.codec, common_far.codec) == ("G729", "G729")  # no transcoding
assert rows[1]["result"].startswith("488 305") and "no common codec" in rows[1]["result"]
assert rows[2]["result"].startswith("488") and "Allow codec conversion is off" in rows[2]["result"]

# %% [markdown]
# ## The four G.729 modes in the SDP the vendor received
#
# Auto: the peer's variant (with transcoding there is none: plain `18 G729/8000`); G729:
# `annexb=no`; G729a: `18 G729/8000`; G729&G729a: both names.

# %%
g729_sdp = {}
for mode in ("Auto", "G729", "G729a", "G729&G729a"):
    mode_call, mode_far = await lab.call(f"g729 {mode}")
    g729_sdp[mode] = [line for line in sdp_lines(mode_far.invite.body)
                      if "telephone-event" not in line and ":101 " not in line]
    await mode_call.hangup()
table([{"g729_mode": mode, "SDP lines the vendor received": "  |  ".join(lines)}
       for mode, lines in g729_sdp.items()])

# %%
assert "a=rtpmap:18 G729/8000" in g729_sdp["Auto"]
assert not any("annexb" in line for line in g729_sdp["Auto"])
assert "a=fmtp:18 annexb=no" in g729_sdp["G729"]
assert "a=rtpmap:18 G729/8000" in g729_sdp["G729a"]
assert any("G729a/8000" in line for line in g729_sdp["G729&G729a"])
assert "a=rtpmap:18 G729/8000" in g729_sdp["G729&G729a"]

# %% [markdown]
# ## DTMF across the relay (docs/behaviour.md §6)
#
# * **First method wins**: the phone sends INFO 1, RFC 2833 2, INFO 3 towards a vendor side
#   set to send SIP INFO. Had the methods not locked, 2 would have been converted to INFO too.
# * **Use peer RFC2833 ability**: the phone offers no telephone-event; checked, the vendor is
#   not offered it; unchecked, it is.
# * **Inband ↔ RFC 2833 / INFO**: events become tones in the vendor's audio; tones are
#   detected by the relay and become events or INFO.

# %%
async def dtmf_call(demo, *sends):
    """Call, send each (digits, method), wait, hang up; the vendor's call."""
    dtmf, dtmf_far = await lab.call(demo)
    for digits, method in sends:
        await dtmf.send_dtmf(digits, method=method)
    await asyncio.sleep(0.6)
    await dtmf.hangup()
    return dtmf_far

locked = await dtmf_call("info to vendor", ("1", "info"), ("2", "rfc2833"), ("3", "info"))
peer_on = (await lab.call("peer rfc2833 on"))[1]
peer_off = (await lab.call("peer rfc2833 off"))[1]
to_tones = await dtmf_call("inband to vendor", ("47", "rfc2833"))
info_to_tones = await dtmf_call("inband to vendor", ("5", "info"))
tones_to_2833 = await dtmf_call("inband to rfc2833", ("89", "inband"))
tones_to_info = await dtmf_call("inband to info", ("06", "inband"))
dtmf_rows = [
    {"demo": "INFO 1, RFC 2833 2, INFO 3", "vendor got INFO": locked.received_digits("info"),
     "vendor got RFC 2833": locked.received_digits("rfc2833")},
    {"demo": "RFC 2833 47 → Inband", "vendor detects in its audio":
     to_tones.received_digits("inband"), "vendor got RFC 2833": to_tones.received_digits()},
    {"demo": "INFO 5 → Inband", "vendor detects in its audio":
     info_to_tones.received_digits("inband"), "vendor got INFO":
     info_to_tones.received_digits("info")},
    {"demo": "Inband 89 → RFC 2833", "vendor got RFC 2833":
     tones_to_2833.received_digits("rfc2833")},
    {"demo": "Inband 06 → INFO", "vendor got INFO": tones_to_info.received_digits("info")},
]
table(dtmf_rows)

# %%
print("use peer RFC2833 on: ", sdp_lines(peer_on.invite.body))
print("use peer RFC2833 off:", sdp_lines(peer_off.invite.body))
for ua in (lab.phone("peer rfc2833 on"), lab.phone("peer rfc2833 off")):
    await ua.calls[-1].hangup()
assert locked.received_digits("info") == "13" and locked.received_digits("rfc2833") == ""
assert not any("telephone-event" in line for line in sdp_lines(peer_on.invite.body))
assert any("telephone-event" in line for line in sdp_lines(peer_off.invite.body))
assert to_tones.received_digits("inband") == "47" and to_tones.received_digits() == ""
assert info_to_tones.received_digits("inband") == "5"
assert tones_to_2833.received_digits("rfc2833") == "89"
assert tones_to_info.received_digits("info") == "06"

# %% [markdown]
# ## Inband digits after G.729 against G.711
#
# The source warns that inband DTMF through G.729 is distorted. Here the phone plays the
# twelve keys as tones (no conversion: they stay audio) through a PCMA → PCMA relay and through
# the PCMA → G.729 transcoder, in three conditions, and the vendor's detector (the same
# Q.24-compliant receiver as the relay's, notebook 05) counts the keys it finds in the audio it
# received. The calls run at the same time. Clean, long tones survive G.729; short ones —
# still above the 40 ms Q.24 operate limit — are where it loses them.

# %%
KEYS = "0123456789*#"
CONDITIONS = {"70 ms at −10 dBm0": {"on_ms": 70, "off_ms": 70},
              "45 ms at −10 dBm0": {"on_ms": 45, "off_ms": 60},
              "70 ms at −24 dBm0": {"on_ms": 70, "off_ms": 70, "level_dbm0": -24}}
runs = {(codec, condition): lab.send(demo, generate_digits(KEYS, 8000, **tones))
        for codec, demo in (("G.711", "g711"), ("G.729", "transcode"))
        for condition, tones in CONDITIONS.items()}
results = dict(zip(runs, await asyncio.gather(*runs.values()), strict=True))


tone_rows = []
for condition in CONDITIONS:
    row = {"condition": condition}
    for codec in ("G.711", "G.729"):
        detected = results[(codec, condition)][1].received_digits("inband")
        row[f"{codec} detected"] = detected
        row[f"{codec} keys found"] = sum(1 for key in KEYS if key in detected)
    tone_rows.append(row)
table(tone_rows)

# %%
assert tone_rows[0]["G.711 keys found"] == 12  # clean tones through G.711: every key
for row in tone_rows:
    assert row["G.729 keys found"] <= row["G.711 keys found"] + 1  # G.729 is never better
assert sum(r["G.729 keys found"] for r in tone_rows) < sum(r["G.711 keys found"] for r in tone_rows)

# %% [markdown]
# ## Packet loss through the real relay
#
# The phone loses 0–20 % of the packets it sends (its own sending-side impairment, seeded);
# the relay conceals gaps up to 60 ms while transcoding to G.729 (docs/behaviour.md §5). PESQ
# of what the vendor received, one call per loss rate, all at the same time.

# %%
CLIP = SPEECH[: int(8000 * 2.5)]
LOSS_PERCENT = [0, 5, 10, 15, 20]
lossy = await asyncio.gather(*(lab.send("transcode", CLIP, loss=p / 100, seed=7)
                               for p in LOSS_PERCENT))
loss_pesq = [quality.compare(CLIP, far_end.recording(), 8000).pesq_mos_lqo
             for _, far_end in lossy]
print(dict(zip(LOSS_PERCENT, [round(v, 2) for v in loss_pesq], strict=True)))
plots.loss_curve(LOSS_PERCENT, {"PCMA phone → relay → G.729 vendor": loss_pesq},
                 title="PESQ at the vendor against the phone's packet loss")

# %%
assert loss_pesq[0] > 3.0
assert loss_pesq[-1] < loss_pesq[0] - 0.5
assert all(later <= earlier + 0.3 for earlier, later in pairwise(loss_pesq))

# %% [markdown]
# ## The session's CDRs
#
# Read from the switch's store (SQLite in the notebook's data directory): one row per call,
# the codec of each leg and how the media went.

# %%
store = Store.open(f"{scratch.name}/data")
cdrs = read_cdrs(store)
store.close()
table(cdrs, ["id", "caller", "callee", "status", "routing_gateway", "caller_codec",
             "callee_codec", "media_mode", "duration"])

# %%
main_cdr = next(r for r in cdrs if r["caller"] == phone.user and r["status"] == 200)
assert (main_cdr["caller_codec"], main_cdr["callee_codec"], main_cdr["media_mode"]) == (
    "PCMA", "G729", "transcode")
assert {488} <= {r["status"] for r in cdrs}
assert len(cdrs) >= 20

# %%
await lab.stop()
scratch.cleanup()

#!/bin/sh
# Regenerates the espeak-ng talk-off material (see data/README.md, "Synthetic speech").
# Voices, pitches (-p) and speeds (-s) vary per file; output 8 kHz 16-bit mono FLAC peaking
# at -3 dBFS. Needs Debian's espeak-ng and sox; run from this directory. Not used at test time.
set -eu
TEXT='The quick brown fox jumps over the lazy dog while the farmer counts his sheep.
Please hold the line, your call is important to us and will be answered shortly.
She sells sea shells by the sea shore, and the shells she sells are surely seashells.
Our meeting moved to Thursday at four thirty in the small room on the second floor.
Would you like to hear the menu again? Press nothing, just keep talking to the operator.
A rainbow appears when sunlight shines through drops of water hanging in the air.
The engineer measured the echo, the jitter and the loss on every trunk in the building.
Nine hundred and eighty seven, six hundred and fifty four, three hundred and twenty one.
Whistling softly, the old man walked along the river looking for his missing boat.
Voice over internet protocol carries speech in small packets twenty milliseconds long.
Can you hear me now? Hello? Hello! I think the connection keeps dropping every minute.
Mary had a little lamb, its fleece was white as snow, and everywhere that Mary went.'
i=0
for spec in "en-us 40 160" "en-gb 55 150" "en-us+f3 70 170" "en-gb+f2 85 155" \
            "en-us+m3 30 145" "en-gb-scotland+f4 65 175" "en-029+m1 45 165" "en-us+f5 99 160"; do
    set -- $spec
    i=$((i + 1))
    # Four sentences per voice, a different four each time (lines i..i+3, wrapping).
    LINES=$(printf '%s\n%s\n' "$TEXT" "$TEXT" | sed -n "$((i * 3 - 2)),$((i * 3 + 1))p")
    espeak-ng -v "$1" -p "$2" -s "$3" -w /tmp/espeak_$i.wav "$LINES"
    sox /tmp/espeak_$i.wav -r 8000 -c 1 -b 16 "espeak_$i.flac" norm -3 rate -v
    rm /tmp/espeak_$i.wav
done

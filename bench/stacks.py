"""Sum a collapsed-stack profile (py-spy's `-f raw`: one line per stack, frames joined by
';', then the sample count) by own time and by inclusive time, and by area of the code.

    python bench/stacks.py PROFILE [TOP]

"Own" counts a sample for the innermost frame; "inclusive" for every distinct frame on the
stack. Areas group the innermost Python or compiled-vosapp frame's file: the SIP layer, the
switch, the I/O layer, asyncio, logging, the standard library's others; the native rest (the
interpreter, the kernel's syscalls) counts under the frame that called it."""

from __future__ import annotations

import re
import sys
from collections import Counter

FRAME = re.compile(r"^(?P<name>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
LINE = re.compile(r":\d+\)$")


def area(file: str) -> str:
    if "__native_" in file:  # mypyc's C: the modules of vosapp/compiled.py
        return "vosapp (compiled: SIP layer, switch's request path)"
    for marker, name in (("vosapp/sip/", "vosapp.sip"), ("vosapp/switch/call/", "vosapp.switch.call"),
                         ("vosapp/switch/", "vosapp.switch (core, auth, cdr, …)"),
                         ("vosapp/io/", "vosapp.io (runtime)"), ("vosapp/", "vosapp (other)"),
                         ("asyncio/", "asyncio"), ("logging/", "logging"), ("sqlite3", "sqlite3")):
        if marker in file:
            return name
    if file.endswith(".py"):
        return "stdlib (other)"
    return "native"


def main() -> None:
    path = sys.argv[1]
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 40
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    areas: Counter[str] = Counter()
    total = 0
    with open(path, encoding="utf-8", errors="replace") as lines:
        for line in lines:
            stack, _, count_text = line.rstrip("\n").rpartition(" ")
            if not stack or not count_text.isdigit():
                continue
            count = int(count_text)
            frames = [LINE.sub(")", frame) for frame in stack.split(";")]  # by function
            total += count
            own[frames[-1]] += count
            for frame in set(frames):
                inclusive[frame] += count
            python = [f for f in frames if ".py)" in f or "vosapp" in f or "__native_" in f]
            where = python[-1] if python else frames[-1]
            match = FRAME.match(where)
            areas[area(match.group("file") if match else where)] += count
    print(f"{total} samples")
    print("\nby area (innermost Python frame's file):")
    for name, count in areas.most_common():
        print(f"  {100 * count / total:5.1f} %  {name}")
    for title, counter in (("own", own), ("inclusive", inclusive)):
        print(f"\ntop {top} by {title} time:")
        for name, count in counter.most_common(top):
            print(f"  {100 * count / total:5.1f} %  {name}")


if __name__ == "__main__":
    main()

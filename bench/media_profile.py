"""py-spy raw samples of the switch (bench/media_profile.sh) by category: the codec library,
the system calls, the C hub and lane, and each Python layer of the media path.

Usage: python bench/media_profile.py SAMPLES.raw [TOP]
"""

from __future__ import annotations

import sys
from collections import Counter

# first match wins, looked for anywhere in a sample's stack (root first, leaf last)
CATEGORIES = [
    ("bcg729 (codec library)", ("libbcg729",)),
    ("sendto (system call)", ("sendto (libc", "sendmsg (libc")),
    ("recvfrom (system call)", ("recvfrom (libc", "recvmsg (libc")),
    ("epoll_wait (system call)", ("epoll_wait",)),
    ("C lane (_g729lane.c)", ("_g729lane.c",)),
    ("C hub (_rtphub.c)", ("_rtphub.c",)),
    ("Python: media/transcoder.py", ("media/transcoder.py",)),
    ("Python: media/relay.py", ("media/relay.py",)),
    ("Python: io/rtp_relay.py", ("io/rtp_relay.py",)),
]


def main() -> None:
    path = sys.argv[1]
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 12
    categories: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    total = 0
    with open(path) as samples:
        for line in samples:
            stack, _, count = line.rstrip().rpartition(" ")
            if not stack:
                continue
            n = int(count)
            total += n
            leaves[stack.split(";")[-1]] += n
            name = next((label for label, needles in CATEGORIES
                         if any(needle in stack for needle in needles)), "other (asyncio, ...)")
            categories[name] += n
    print(f"{total} samples")
    for name, n in categories.most_common():
        print(f"{100 * n / total:5.1f} %  {name}")
    print("leaf functions:")
    for name, n in leaves.most_common(top):
        print(f"{100 * n / total:5.1f} %  {name[:120]}")


if __name__ == "__main__":
    main()

"""The registrar benches' setup, one copy for bench/registrar.sh and
bench/registrar_instructions.py.

    python bench/registrar_setup.py accounts WORK USERS
        WORK/switch.toml: vosapp's config with USERS accounts (user 20000.., password
        pw-<user>) and its store in WORK/data; WORK/users.csv: SIPp's injection file for them
    python bench/registrar_setup.py kamailio-location DATABASE [SCHEMA_DIR]
        a SQLite file in WAL mode with Kamailio's location table, from Kamailio's own schema
        files (default /usr/share/kamailio/db_sqlite, Debian's kamailio-sqlite-modules)
"""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

KAMAILIO_SCHEMA = Path("/usr/share/kamailio/db_sqlite")


def write_accounts(work: Path, users: int) -> None:
    names = [str(20000 + i) for i in range(users)]
    with (work / "switch.toml").open("w") as config:
        config.write(f'[switch]\nsip_listen = "127.0.0.1:5060"\ndata_dir = "{work}/data"\n')
        # SIPp offers thousands a second from one address: the per-source limiter is off.
        config.write("[limits]\nsource_threshold = 0\n")
        for name in names:
            config.write(f'\n[[account]]\nuser = "{name}"\npassword = "pw-{name}"\n')
    with (work / "users.csv").open("w") as injection:
        injection.write("SEQUENTIAL\n")
        for name in names:
            injection.write(f"{name};[authentication username={name} password=pw-{name}]\n")


def kamailio_location_table(path: Path, schema: Path = KAMAILIO_SCHEMA) -> None:
    """The location table with its version rows (usrloc checks location at version 9); WAL
    like vosapp's store (the journal mode is kept in the file; the cfg also asks db_sqlite for
    it)."""
    db = sqlite3.connect(path, isolation_level=None)
    if db.execute("PRAGMA journal_mode = WAL").fetchone()[0] != "wal":
        raise SystemExit(f"{path}: SQLite refused WAL mode")
    for part in ("standard", "usrloc"):
        db.executescript((schema / f"{part}-create.sql").read_text())
    db.close()


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[0] == "accounts":
        write_accounts(Path(argv[1]), int(argv[2]))
    elif len(argv) in (2, 3) and argv[0] == "kamailio-location":
        kamailio_location_table(Path(argv[1]), *(Path(arg) for arg in argv[2:]))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

#!/usr/bin/env python3
"""glibc malloc arenas of a running process, from /proc/PID/smaps (read-only).

    scripts/malloc-arenas.py PID     # prints: arenas, their resident bytes, the main heap's

Each thread that allocates may get its own arena (up to 8 a core by default, MALLOC_ARENA_MAX to change): a 64 MiB
reservation, aligned to 64 MiB, whose first part is read-write and the rest inaccessible. An arena keeps the pages of
its peak that live chunks pin, so under bursts of threads their sum ratchets up.
"""
import re
import sys

maps, cur = [], None
for line in open(f"/proc/{sys.argv[1]}/smaps"):
    m = re.match(r"^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \d+\s*(.*)$", line)
    if m:
        cur = {"start": int(m.group(1), 16), "end": int(m.group(2), 16), "perm": m.group(3), "name": m.group(4).strip()}
        maps.append(cur)
    elif cur is not None and line.startswith(("Size:", "Anonymous:")):
        k, _, v = line.partition(":")
        cur[k] = int(v.split()[0])
arena = 64 << 20
found = [m for i, m in enumerate(maps[:-1])
         if m["name"] == "" and m["perm"] == "rw-p" and m["start"] % arena == 0
         and maps[i + 1]["start"] == m["end"] and maps[i + 1]["perm"] == "---p"
         and (m["Size"] + maps[i + 1]["Size"]) * 1024 == arena]
heap = sum(m.get("Anonymous", 0) for m in maps if m["name"] == "[heap]")
print(f"arenas {len(found)} ({sum(m['Anonymous'] for m in found) / 1024:.1f} MiB resident), main heap {heap / 1024:.1f} MiB")

#!/usr/bin/env python3
"""Checks that the interposer's hook enum (hooks.h), its table (hooks.cpp) and the exported
wrappers (interpose.cpp) agree: same hooks, same order, one exported definition each."""
import re
import sys

src = sys.argv[1] if len(sys.argv) > 1 else "src/preload"
enum = re.findall(r"^\s*(kHook\w+),", open(f"{src}/hooks.h").read(), re.M)
enum = [e for e in enum if e != "kHookCount"]
table = re.findall(r"CORUN_HOOK\((kHook\w+),\s*(\w+),\s*\"lib[\w.]+\.so\"\)", open(f"{src}/hooks.cpp").read())
exported = set(re.findall(r"^CORUN_EXPORT\s+\w+\s+(\w+)\(", open(f"{src}/interpose.cpp").read(), re.M))
errors = []
if [t[0] for t in table] != enum:
    errors.append(f"enum {enum} and table {[t[0] for t in table]} differ")
for hid, name in table:
    if name not in exported:
        errors.append(f"{hid}: no exported wrapper '{name}' in interpose.cpp")
for name in exported - {n for _, n in table}:
    errors.append(f"exported '{name}' is not in the hook table")
if errors:
    print("\n".join("check_hooks: " + e for e in errors))
    sys.exit(1)
print(f"check_hooks: {len(enum)} hooks agree")

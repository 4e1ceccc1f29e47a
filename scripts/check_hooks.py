#!/usr/bin/env python3
"""Checks that the interposer's hook enum (hooks.h), its table (hooks.cpp) and the exported
wrappers (interpose.cpp: CUDA driver and cuBLAS; nccl.cpp: NCCL) agree: same hooks, same order,
one exported definition each, NCCL's in nccl.cpp and the others in interpose.cpp."""
import re
import sys

src = sys.argv[1] if len(sys.argv) > 1 else "src/preload"
enum = re.findall(r"^\s*(kHook\w+),", open(f"{src}/hooks.h").read(), re.M)
enum = [e for e in enum if e != "kHookCount"]
table = re.findall(r"CORUN_HOOK\((kHook\w+),\s*(\w+),\s*\"lib[\w.]+\.so\"\)", open(f"{src}/hooks.cpp").read())
def exports(name):
    return re.findall(r"^CORUN_EXPORT\s+[\w*]+\s+(\w+)\(", open(f"{src}/{name}").read(), re.M)
per_file = {f: exports(f) for f in ("interpose.cpp", "nccl.cpp")}
errors = []
for f, names in per_file.items():
    for n in set(names):
        if names.count(n) > 1:
            errors.append(f"'{n}' is exported {names.count(n)} times in {f}")
        if (f == "nccl.cpp") != n.startswith("nccl"):
            errors.append(f"'{n}' is exported from {f}: NCCL hooks belong in nccl.cpp, the others in interpose.cpp")
exported = set(per_file["interpose.cpp"]) | set(per_file["nccl.cpp"])
both = set(per_file["interpose.cpp"]) & set(per_file["nccl.cpp"])
errors += [f"'{n}' is exported from both files" for n in both]
if [t[0] for t in table] != enum:
    errors.append(f"enum {enum} and table {[t[0] for t in table]} differ")
for hid, name in table:
    if name not in exported:
        errors.append(f"{hid}: no exported wrapper '{name}' in interpose.cpp or nccl.cpp")
for name in exported - {n for _, n in table}:
    errors.append(f"exported '{name}' is not in the hook table")
if errors:
    print("\n".join("check_hooks: " + e for e in errors))
    sys.exit(1)
print(f"check_hooks: {len(enum)} hooks agree")

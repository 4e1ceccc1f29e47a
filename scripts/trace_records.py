"""The scripts' reader of `corun trace` record files (the format: include/corun/trace_records.h)."""
import json


def read(path):
    """(names {id: name}, GPU records (kernels, copies, memsets) by start time, launch-call records).
    A torn last line (a killed process) ends the file, as in corun's own reader."""
    names, gpu, api = {}, [], []
    for line in open(path):
        try:
            j = json.loads(line)
        except ValueError:
            break
        t = j.get("t")
        if t == "n":
            names[j["i"]] = j["s"]
        elif t in ("k", "m", "z"):
            gpu.append(j)
        elif t == "a":
            api.append(j)
    gpu.sort(key=lambda r: r["s"])
    return names, gpu, api

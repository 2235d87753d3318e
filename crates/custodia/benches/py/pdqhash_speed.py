"""Python pdqhash (PyPI; the ThreatExchange C++ core behind Cython) on the same files as
leak_hash_speed.rs: decode with Pillow, convert to RGB array, pdqhash.compute. One thread.

Usage: python pdqhash_speed.py FILE...   Prints one JSON line.
"""
import json, sys, time
import numpy as np
from PIL import Image
import pdqhash

files = sys.argv[1:]
datas = [open(f, "rb").read() for f in files]
import io
t = time.perf_counter()
for d in datas:
    img = np.asarray(Image.open(io.BytesIO(d)).convert("RGB"))
    pdqhash.compute(img)
total = time.perf_counter() - t
arrays = [np.asarray(Image.open(io.BytesIO(d)).convert("RGB")) for d in datas]
t = time.perf_counter()
for a in arrays:
    pdqhash.compute(a)
hash_only = time.perf_counter() - t
h, q = pdqhash.compute(arrays[0])
print(json.dumps({"images": len(files), "decode_and_hash_s": total, "hash_only_s": hash_only,
                  "first_hash": "".join("%x" % int("".join(str(int(b)) for b in h[i:i + 4]), 2) for i in range(0, 256, 4)),
                  "first_quality": int(q)}))

"""FAISS IndexBinaryFlat range search on the same stored and query hashes as leak_match.rs.

Usage: python faiss_range.py STORED.bin QUERIES.bin RADIUS N_QUERIES
(stored/queries: raw 32-byte hashes, concatenated). Prints one JSON line.
"""
import json, sys, time
import numpy as np
import faiss

stored = np.fromfile(sys.argv[1], dtype=np.uint8).reshape(-1, 32)
queries = np.fromfile(sys.argv[2], dtype=np.uint8).reshape(-1, 32)
radius, nq = int(sys.argv[3]), int(sys.argv[4])
faiss.omp_set_num_threads(1)
t = time.perf_counter()
index = faiss.IndexBinaryFlat(256)
index.add(stored)
build = time.perf_counter() - t
q = queries[:nq]
t = time.perf_counter()
# FAISS's range search is strict (< radius), so radius + 1 gives distance <= radius.
lims, d, ids = index.range_search(q, radius + 1)
search = time.perf_counter() - t
t = time.perf_counter()
for i in range(20):
    index.range_search(q[i:i + 1], radius + 1)
single = (time.perf_counter() - t) / 20
print(json.dumps({"stored": len(stored), "queries": nq, "build_s": build, "search_s": search,
                  "results": int(lims[-1]), "single_query_s": single}))

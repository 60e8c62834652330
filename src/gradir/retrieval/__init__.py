"""Retrieval: texts in, vectors and ranked runs out.

Encoding with a persistent embedding cache (:mod:`~gradir.retrieval.encoding`,
:mod:`~gradir.retrieval.embedding_cache`, the ONNX/OpenVINO runtimes in
:mod:`~gradir.retrieval.runtimes`), exact dense search (FAISS), BM25 (bm25s),
reciprocal-rank fusion, and mining each synthetic query's candidates for the graders
(:mod:`~gradir.retrieval.mining`).
"""

# Nothing is imported here: the configuration reads the runtimes' defaults, and loading
# FAISS and bm25s for that would slow every command. Import from the modules.

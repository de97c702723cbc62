"""Knowledge bases: upload, chunks, retrieval tests (see knowledge.bases, .indexing, .search)."""

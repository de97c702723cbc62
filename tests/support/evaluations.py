"""A knowledge base of ten facts and a BM25 workflow over it, made so that two versions differ by a known set of
cases: version A (top 5) finds the right fact for 9 of the 10 cases, version B (top 1) for 5, and B loses exactly
the four cases whose query also names the decoy (BM25 ranks the decoy document first)."""

from __future__ import annotations

from evaluations.importing import CaseIn

TOPICS = ["otter", "falcon", "walrus", "heron", "badger", "lynx", "marten", "ibex", "puffin"]
DECOYED = {"heron", "badger", "lynx", "marten"}     # their queries also name the decoy, which BM25 ranks first


def keyword_rag(top_k: int) -> dict:
    """question → BM25 over knowledge base 'facts' → the documents found."""
    return {"components": {"retriever": {
        "type": "milvus_haystack.milvus_embedding_retriever.MilvusSparseEmbeddingRetriever",
        "init_parameters": {"document_store": {"type": "knowledge_base", "init_parameters": {"name": "facts"}},
                            "top_k": top_k}}},
        "connections": [], "inputs": {"question": ["retriever.query_text"]},
        "outputs": {"documents": "retriever.documents"}}


def facts_cases(ids: dict[str, str]) -> list[CaseIn]:
    """Ten cases: nine whose fact the right query finds (four only behind the decoy), one labelled with a
    document its query cannot find."""
    cases = [CaseIn(key=f"case-{topic}", inputs={"input": f"decoy {topic}" if topic in DECOYED else topic},
                    expected_sources=[{"document_id": ids[topic], "snippet": f"The {topic} fact."}])
             for topic in TOPICS]
    cases.append(CaseIn(key="case-unfindable", inputs={"input": "otter"},
                        expected_sources=[{"document_id": ids["decoy"], "snippet": "decoy"}]))
    return cases

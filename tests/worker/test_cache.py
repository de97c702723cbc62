"""The warm pipeline cache, with the real bundled MiniLM: pipelines are reused and models shared."""

from __future__ import annotations

import pytest

from worker.cache import WarmPipelines
from workflows.spec import spec_from_dict

EMBEDDER = ("haystack_integrations.components.embedders.sentence_transformers."
            "sentence_transformers_text_embedder.SentenceTransformersTextEmbedder")


def embed_spec(prefix: str) -> object:
    return spec_from_dict({"components": {"embed": {"type": EMBEDDER, "init_parameters": {
        "model": "sentence-transformers/all-MiniLM-L6-v2", "prefix": prefix}}},
        "inputs": {"text": ["embed.text"]}, "outputs": {"embedding": "embed.embedding"}})


def test_pipelines_are_reused_and_models_shared_between_workflows(data_dir):
    cache = WarmPipelines(size=2)
    loads_before = cache.model_loads
    spec_a, pipe_a, loads_a = cache.get("version-a", lambda: embed_spec("a: "))
    again_spec, again, loads_again = cache.get("version-a", lambda: (_ for _ in ()).throw(AssertionError("reloaded")))
    assert again is pipe_a and again_spec is spec_a and loads_again == 0
    # Another workflow with the same embedder config: a new pipeline, the same loaded model.
    _, pipe_b, loads_b = cache.get("version-b", lambda: embed_spec("b: "))
    assert pipe_b is not pipe_a and loads_b == 0
    assert pipe_b.get_component("embed").embedding_backend is pipe_a.get_component("embed").embedding_backend
    assert loads_a in (0, 1) and cache.model_loads - loads_before == loads_a
    vector = pipe_b.run({"embed": {"text": "hello"}})["embed"]["embedding"]
    assert len(vector) == 384


def test_the_cache_is_bounded(data_dir):
    cache = WarmPipelines(size=1)
    cache.get("one", lambda: embed_spec("1"))
    cache.get("two", lambda: embed_spec("2"))
    built = []
    cache.get("one", lambda: built.append(1) or embed_spec("1"))
    assert built == [1]  # evicted, so rebuilt


def test_a_model_this_machine_lacks_fails_naming_its_node_and_the_fix(data_dir, monkeypatch):
    from nodes.errors import NodeLoadError
    from tests.support.specs import chat

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cache = WarmPipelines(size=2)
    with pytest.raises(NodeLoadError) as err:
        cache.get("missing", lambda: spec_from_dict(chat("acme/not-on-this-machine")))
    assert (err.value.node, err.value.component_type.rsplit(".", 1)[-1]) == ("llm", "TransformersChatGenerator")
    message = str(err.value)
    assert message.startswith("Node 'llm' cannot load model 'acme/not-on-this-machine'")
    assert "HF_HUB_OFFLINE" in message and "STACKYARD_MODEL_PATHS='{\"acme/not-on-this-machine\": " in message
    built = []
    with pytest.raises(NodeLoadError):  # nothing half-warm was cached: the next run tries again
        cache.get("missing", lambda: built.append(1) or spec_from_dict(chat("acme/not-on-this-machine")))
    assert built == [1]


def test_any_other_warm_up_failure_names_its_node(data_dir):
    from haystack import Pipeline, component

    from nodes.errors import NodeLoadError
    from nodes.models import load_failure

    @component
    class Broken:
        def warm_up(self) -> None:
            raise RuntimeError("GPU fell off")

        @component.output_types(out=str)
        def run(self, text: str) -> dict:
            return {"out": text}

    pipeline = Pipeline()
    pipeline.add_component("broken", Broken())
    with pytest.raises(NodeLoadError) as err:
        WarmPipelines(size=1)._warm(pipeline)
    assert str(err.value) == "Node 'broken' could not get ready to run: RuntimeError: GPU fell off"
    assert str(load_failure("n", Broken(), OSError("disk"))) == "Node 'n' could not get ready to run: OSError: disk"

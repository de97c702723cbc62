"""A tiny, offline, deterministic chat model for tests.

``build_tiny_chat_model(dir)`` writes a GPT-2 (2 layers, 32 dims, ~0.7 MB on disk, mostly the zeroed
position table) and a byte-level BPE tokenizer (trained with ``tokenizers``, with a ``chat_template``) to
``dir``, and trains it for a second or two so that, whatever the conversation, its greedy reply is exactly
``text`` (default :data:`TINY_MODEL_ANSWER`, ``"the answer is stackyard"``), after which it emits its
end-of-sequence token and stops.

It loads with no hub access::

    TransformersChatGenerator(model=str(path), task="text-generation",
                              generation_kwargs={"max_new_tokens": 16, "do_sample": False})

Why the reply does not depend on the prompt: the position embeddings and the attention output projections are
zero and frozen, so each next token is a function of the current token alone (a learned "bigram" path through
the embeddings and MLPs). After ``<|assistant|>`` it says the first token of ``text``, and so on, then
``<|end|>`` - the same for a 1-token and a 4,000-token prompt. Prompts may be up to :data:`MAX_POSITIONS`
tokens in all (unseen words cost about one token per 1-3 characters). Hence ``text`` must not repeat a token
(``ValueError`` otherwise). The build checks the greedy reply on probe conversations before returning
(``RuntimeError`` if wrong).

Caching: one build per (text, seed) per process; built models are also kept on disk under
``$STACKYARD_TEST_MODEL_CACHE`` (default ``<tmp>/stackyard-test-models``; set it to an empty string to turn the
disk cache off), keyed by the parameters, a recipe version and the torch/transformers/tokenizers versions.
Calls copy the cached directory into ``target_dir``.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import random
import shutil
import tempfile
import threading
import time
from pathlib import Path

TINY_MODEL_ANSWER = "the answer is stackyard"
"""The default reply of the tiny model (exactly this text, nothing before or after it)."""

END_TOKEN = "<|end|>"
PAD_TOKEN = "<|pad|>"
ROLES = ("system", "user", "assistant", "tool")
SPECIAL_TOKENS = [END_TOKEN, PAD_TOKEN] + [f"<|{role}|>" for role in ROLES]

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|{{ message['role'] }}|>"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% elif message['content'] %}"
    "{% for part in message['content'] %}{% if part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}"
    "{% endif %}"
    "<|end|>"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)

MAX_POSITIONS = 4096
"""Longest prompt plus reply, in tokens, the tiny model accepts."""

MARKER_FILE = "stackyard_tiny_model.json"
_BUILD_VERSION = 2  # bump when the recipe changes, to invalidate disk caches

# Text for the tokenizer and for random prompts: everyday and RAG-ish words so common words are single tokens.
_CORPUS = """\
You are a helpful assistant. Answer the question using only the documents below.
Given the following context, answer the question. If the answer is not in the context, say you do not know.
Question: What is the capital of France? Context: Paris is the capital and largest city of France.
The quick brown fox jumps over the lazy dog. A journey of a thousand miles begins with a single step.
Documents: the pipeline reads files, splits them into chunks, embeds them and writes them to the store.
Summarise this text in one sentence. Translate the following sentence into German. Hello, how are you today?
The retriever returns the top k documents; the prompt builder renders them; the generator writes a reply.
Stackyard builds Haystack workflows on a canvas: nodes, edges, runs, published chat endpoints and batch jobs.
The otter lives by the river and eats fish. The heron stands still in shallow water waiting for frogs.
Tell me about the weather in Berlin tomorrow, and what should I wear if it rains in the evening?
Numbers like 1, 2, 3, 42, 100 and 2026 appear in questions; so do names such as Alice, Bob and Carol.
""".splitlines()
_WORDS = sorted({w.strip(".,;:?!") for line in _CORPUS for w in line.split()} - {""})
_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;:!?'\"()[]{}<>-_/\\|@#$%^&*+=~`\n\té"

_lock = threading.Lock()
_built: dict[tuple[str, int], Path] = {}
last_build_seconds: float | None = None
"""Seconds the last actual build (not a cache hit) took in this process, for reporting."""


def build_tiny_chat_model(target_dir: Path, *, text: str | None = None, seed: int = 0) -> Path:
    """Write a tiny chat model whose greedy reply is always ``text`` to ``target_dir`` and return it.

    ``target_dir`` is created if needed; it must be empty or already hold a model built with the same
    parameters. Builds once per process (and once per machine with the disk cache), then copies.
    """
    answer = TINY_MODEL_ANSWER if text is None else text
    if not answer.strip() or any(tok in answer for tok in SPECIAL_TOKENS):
        raise ValueError("text must be non-empty and contain no special tokens")
    target_dir = Path(target_dir)
    key = (answer, seed)
    with _lock:
        if _is_model_dir(target_dir, answer, seed):
            return target_dir
        source = _built.get(key)
        if source is None or not _is_model_dir(source, answer, seed):
            source = _cached_or_build(answer, seed)
            _built[key] = source
        if source.resolve() != target_dir.resolve():
            _copy_into(source, target_dir)
        return target_dir


def expected_reply(text: str | None = None) -> str:
    """The exact reply text a model built with ``text`` gives."""
    return TINY_MODEL_ANSWER if text is None else text


# --------------------------------------------------------------------------------------------- caching


def _params_digest(answer: str, seed: int) -> str:
    import tokenizers
    import torch
    import transformers

    blob = json.dumps(
        [_BUILD_VERSION, answer, seed, torch.__version__, transformers.__version__, tokenizers.__version__]
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _is_model_dir(path: Path, answer: str, seed: int) -> bool:
    try:
        marker = json.loads((path / MARKER_FILE).read_text())
    except (OSError, ValueError):
        return False
    return marker.get("digest") == _params_digest(answer, seed) and (path / "model.safetensors").is_file()


def _copy_into(source: Path, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for item in source.iterdir():
        if item.is_file():
            shutil.copy2(item, target / item.name)


def _disk_cache_root() -> Path | None:
    value = os.environ.get("STACKYARD_TEST_MODEL_CACHE")
    if value is None:
        return Path(tempfile.gettempdir()) / "stackyard-test-models"
    return Path(value) if value.strip() else None


def _cached_or_build(answer: str, seed: int) -> Path:
    root = _disk_cache_root()
    digest = _params_digest(answer, seed)
    if root is not None:
        cached = root / f"tiny-chat-{digest}"
        if _is_model_dir(cached, answer, seed):
            return cached
        try:
            root.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".tiny-chat-{digest}-", dir=root))
        except OSError:  # cache not writable (e.g. another user's): build without it
            root = None
    if root is None:
        staging = Path(tempfile.mkdtemp(prefix=f"stackyard-tiny-chat-{digest}-"))
    try:
        _build(staging, answer, seed, digest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if root is None:
        atexit.register(shutil.rmtree, staging, ignore_errors=True)
        return staging
    try:
        os.rename(staging, cached)  # atomic; loses harmlessly to a concurrent builder
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if not _is_model_dir(cached, answer, seed):
            raise
    return cached


# --------------------------------------------------------------------------------------------- building


def _build(out_dir: Path, answer: str, seed: int, digest: str) -> None:
    global last_build_seconds
    import torch

    started = time.perf_counter()
    rng = random.Random(seed)
    tokenizer = _train_tokenizer(answer)
    reply_ids = tokenizer(f"<|assistant|>{answer}{END_TOKEN}", add_special_tokens=False)["input_ids"]
    if len(set(reply_ids)) != len(reply_ids):
        repeated = sorted({tokenizer.convert_ids_to_tokens(i) for i in reply_ids if reply_ids.count(i) > 1})
        raise ValueError(f"text must not repeat a token (the model only sees the current token): {repeated}")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matmuls: threads only add overhead (10x slower on 2 busy cores)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = _train_model(tokenizer, answer, rng)
    finally:
        torch.set_num_threads(threads)
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        model.save_pretrained(out_dir)
        tokenizer.save_pretrained(out_dir)
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    last_build_seconds = time.perf_counter() - started
    (out_dir / MARKER_FILE).write_text(
        json.dumps(
            {"digest": digest, "answer": answer, "seed": seed, "build_seconds": round(last_build_seconds, 2)},
            indent=2,
        )
    )


def _train_tokenizer(answer: str):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=768,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    # The answer repeated so each of its words becomes one token (with and without a leading space).
    lines = _CORPUS + [answer, " " + answer] * 20
    tok.train_from_iterator(lines, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=END_TOKEN,
        pad_token=PAD_TOKEN,
        chat_template=CHAT_TEMPLATE,
        model_max_length=MAX_POSITIONS,
    )


def _random_text(rng: random.Random, answer: str) -> str:
    kind = rng.random()
    if kind < 0.1:
        return ""
    if kind < 0.25:  # arbitrary characters, so byte tokens the corpus never uses are seen too
        return "".join(rng.choice(_CHARS) for _ in range(rng.randint(1, 40)))
    n = rng.choice([rng.randint(1, 4), rng.randint(1, 16), rng.randint(10, 40)])
    words = [rng.choice(_WORDS) for _ in range(n)]
    if rng.random() < 0.3:  # the answer's own words in prompts (they cannot sway the reply: attention adds nothing)
        at = rng.randrange(n)
        words[at : at + 1] = answer.split()[: rng.randint(1, len(answer.split()))]
    return " ".join(words)


def _random_conversation(rng: random.Random, answer: str) -> list[dict[str, str]]:
    messages: list[dict[str, str]] = []
    if rng.random() < 0.4:
        messages.append({"role": "system", "content": _random_text(rng, answer)})
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        if rng.random() < 0.1:
            messages.append({"role": "tool", "content": _random_text(rng, answer)})
        messages.append({"role": "user", "content": _random_text(rng, answer)})
        messages.append({"role": "assistant", "content": answer})
    return messages


def _encode_example(tokenizer, messages: list[dict[str, str]]) -> tuple[list[int], list[int]]:
    """Token ids and labels: loss on the assistant replies (and their end token) only."""
    assistant_id = tokenizer.convert_tokens_to_ids("<|assistant|>")
    end_id = tokenizer.convert_tokens_to_ids(END_TOKEN)
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    labels = [-100] * len(ids)
    inside = False
    for i, tid in enumerate(ids):
        if inside:
            labels[i] = tid
            if tid == end_id:
                inside = False
        elif tid == assistant_id:
            inside = True
    return ids, labels


def _train_model(tokenizer, answer: str, rng: random.Random):
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=MAX_POSITIONS,
        n_embd=32,
        n_layer=2,
        n_head=2,
        n_inner=64,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    model = GPT2LMHeadModel(config)
    # Make the next token depend on the current token only: no position embeddings and attention blocks whose
    # output projection is zero (the attention still runs, it just adds nothing to the residual stream).
    frozen = [model.transformer.wpe.weight]
    for block in model.transformer.h:
        frozen += [block.attn.c_proj.weight, block.attn.c_proj.bias]
    with torch.no_grad():
        for param in frozen:
            param.zero_()
            param.requires_grad_(False)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.bos_token_id = tokenizer.eos_token_id

    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-2, weight_decay=0.0)
    probes = _probe_conversations(answer)
    model.train()
    batch_size, steps_per_round, max_rounds = 8, 20, 30
    for round_index in range(max_rounds):
        for _ in range(steps_per_round):
            examples = [_encode_example(tokenizer, _random_conversation(rng, answer)) for _ in range(batch_size)]
            width = max(len(ids) for ids, _ in examples)
            input_ids = torch.full((batch_size, width), tokenizer.pad_token_id, dtype=torch.long)
            labels = torch.full((batch_size, width), -100, dtype=torch.long)
            attention = torch.zeros((batch_size, width), dtype=torch.long)
            for row, (ids, labs) in enumerate(examples):
                input_ids[row, : len(ids)] = torch.tensor(ids)
                labels[row, : len(labs)] = torch.tensor(labs)
                attention[row, : len(ids)] = 1
            loss = model(input_ids=input_ids, attention_mask=attention, labels=labels).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        if round_index >= 1 and all(_greedy_reply(model, tokenizer, p) == answer for p in probes):
            break
    else:
        failures = {repr(p[-1]["content"][:40]): _greedy_reply(model, tokenizer, p) for p in probes}
        raise RuntimeError(f"tiny chat model did not learn to answer {answer!r}: {failures}")
    model.eval()
    return model


def _probe_conversations(answer: str) -> list[list[dict[str, str]]]:
    long_text = " ".join(["The context says the heron waits by the water."] * 60)
    return [
        [{"role": "user", "content": answer}],
        [{"role": "user", "content": " ".join(reversed(answer.split())) + " " + answer.split()[0]}],
        [{"role": "user", "content": "Hello"}],
        [{"role": "user", "content": ""}],
        [{"role": "user", "content": "What is the answer? Is it stackyard?"}],
        [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Zebra quokka 12345 ü ?"}],
        [{"role": "user", "content": long_text + "\nQuestion: where does the heron wait?"}],
        [
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "something else entirely"},
            {"role": "user", "content": "second"},
        ],
    ]


def _greedy_reply(model, tokenizer, messages: list[dict[str, str]], max_new_tokens: int = 24) -> str:
    import torch

    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    ids = torch.tensor([tokenizer(prompt, add_special_tokens=False)["input_ids"]])
    was_training = model.training
    model.eval()
    with torch.no_grad():
        out = model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=max_new_tokens,
            do_sample=False,
        )
    model.train(was_training)
    return tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)


def build_tiny_cross_encoder(target_dir: Path, *, seed: int = 0) -> Path:
    """A tiny BERT cross-encoder (2 layers, 32 dims, one relevance logit, random weights from ``seed``) with the
    bundled MiniLM's tokenizer, saved to ``target_dir``: it loads as a sentence-transformers CrossEncoder (the
    ranker node's model) with no hub access. Its scores are arbitrary but fixed, so two code paths can be
    compared on the order they give."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from stackyard.settings import get_settings

    minilm = get_settings().local_model_path("sentence-transformers/all-MiniLM-L6-v2")
    tokenizer = AutoTokenizer.from_pretrained(str(minilm))
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512, num_labels=1,
                        initializer_range=0.5)   # wide weights: scores far apart, no ties
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BertForSequenceClassification(config).eval()
    target_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(target_dir)
    tokenizer.save_pretrained(target_dir)
    return target_dir

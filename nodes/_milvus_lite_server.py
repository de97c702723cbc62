"""Entry point of the embedded milvus-lite server that :mod:`nodes.stores` starts.

Run as ``python -P _milvus_lite_server.py --data-dir DIR --host HOST --port PORT`` (``-P`` keeps this
file's folder off ``sys.path``; the module needs only the standard library, milvus-lite and pymilvus).
It is ``python -m milvus_lite server`` with two changes that make it behave like a Milvus server:

- SIGTERM shuts down gracefully, like SIGINT: stop serving, then close the database, which seals the
  memtable into segments. (The stock entry only handles SIGINT, which a spawning Celery worker or
  shell may have set to ignored, and dies on SIGTERM without closing.)
- Clients may send keepalive pings every 5 s, also between calls, as Milvus allows. pymilvus pings
  every 10 s; grpcio's default server policy (one ping per 5 min) answers the third ping of an idle
  connection with GOAWAY "too_many_pings", so a warm worker idle for ~30 s failed its next insert.
- Creating a collection or an index that already exists with the same definition succeeds, as it
  does on Milvus. milvus-lite rejects it, or races into "File exists", so two workers writing first
  into a new collection at the same moment would fail here and not in production.
"""

from __future__ import annotations

import functools
import signal
import sys
import threading

import grpc

from milvus_lite.adapter.grpc.errors import success_status_kwargs
from milvus_lite.adapter.grpc.servicer import MilvusServicer
from milvus_lite.adapter.grpc.translators.index import kv_pairs_to_index_params_dict
from milvus_lite.adapter.grpc.translators.schema import milvus_to_milvus_lite_schema
from milvus_lite.cmdline import main
from pymilvus.grpc_gen import common_pb2, schema_pb2

# One lock for schema changes: check-then-create must not interleave between client threads.
_schema_lock = threading.Lock()


def _same_collection(servicer: MilvusServicer, request, context) -> bool:
    try:
        existing = servicer._get_collection(request, context).schema
        proto = schema_pb2.CollectionSchema()
        proto.ParseFromString(request.schema)
        wanted = milvus_to_milvus_lite_schema(proto)
    except Exception:  # missing collection or a bad request: milvus-lite reports it
        return False
    return (existing.fields, existing.enable_dynamic_field, existing.functions) == (
        wanted.fields, wanted.enable_dynamic_field, wanted.functions,
    )


def _same_index(servicer: MilvusServicer, request, context) -> bool:
    try:
        existing = servicer._get_collection(request, context).get_index_info(request.field_name)
        wanted = kv_pairs_to_index_params_dict(request.extra_params)
    except Exception:
        return False
    if existing is None:
        return False
    # Normalised as Collection.create_index stores them.
    return (
        existing["index_type"] == str(wanted["index_type"]).upper()
        and str(existing["metric_type"]).upper() == str(wanted.get("metric_type") or "NONE").upper()
        and existing["build_params"] == dict(wanted.get("params") or {})
    )


def _idempotent(rpc, is_duplicate):
    def call(self, request, context):
        with _schema_lock:
            if is_duplicate(self, request, context):
                return common_pb2.Status(**success_status_kwargs())
            return rpc(self, request, context)

    return call


# Milvus's own server: keepalive.EnforcementPolicy{MinTime: 5 s, PermitWithoutStream: true}.
_KEEPALIVE_POLICY = [("grpc.http2.min_ping_interval_without_data_ms", 5000), ("grpc.keepalive_permit_without_calls", 1)]


def _server_like_milvus(build, *args, options=(), **kwargs):
    return build(*args, options=[*options, *_KEEPALIVE_POLICY], **kwargs)


def _stop(signum, frame):
    raise KeyboardInterrupt


if __name__ == "__main__":
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    grpc.server = functools.partial(_server_like_milvus, grpc.server)  # this process serves only milvus-lite
    MilvusServicer.CreateCollection = _idempotent(MilvusServicer.CreateCollection, _same_collection)
    MilvusServicer.CreateIndex = _idempotent(MilvusServicer.CreateIndex, _same_index)
    sys.exit(main(["server", *sys.argv[1:]]))

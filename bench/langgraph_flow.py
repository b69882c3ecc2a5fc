"""LangGraph side of the durable-orchestration benchmark.

Builds a LangGraph ``StateGraph`` that is a linear chain of ``nodes`` no-op nodes, compiles it
with the official ``SqliteSaver`` checkpointer (package ``langgraph-checkpoint-sqlite``) on a
SQLite file, and times ``flows`` runs of the chain, each on a fresh ``thread_id``.

Durability, stated rather than assumed:

* ``SqliteSaver.setup()`` itself only issues ``PRAGMA journal_mode=WAL``; it leaves
  ``synchronous`` at the connection default. This module sets ``journal_mode=WAL`` and
  ``synchronous=FULL`` explicitly on the connection it hands to the saver, and reads both back
  after the timed runs; the values reported are the ones read back, not the ones requested.
* Every ``invoke`` passes ``durability="sync"`` (LangGraph >= 0.6): the checkpoint of each
  superstep is written, and committed by ``SqliteSaver``, before the next superstep starts. The
  default (``"async"``) would let the write overlap the next node.

What is timed: only the ``invoke`` calls of the ``flows`` measured runs (``time.perf_counter``
around each call, summed). Graph construction, compilation, checkpointer table creation and the
post-run checks are not timed. One warm-up flow is run first, excluded from the timing, on a
separate throwaway database in a temporary directory (same graph, same pragmas), so the
measured database holds only the measured flows.

A "step" is one node execution, so ``steps = nodes * flows``. ``bytes_per_step`` is the size of
the measured database after ``PRAGMA wal_checkpoint(TRUNCATE)`` (main file plus whatever remains
of the ``-wal`` file; the ``-shm`` index is not counted) divided by ``steps``. It includes
everything LangGraph stores for those flows: one checkpoint per superstep (so ``nodes + 2`` per
flow, counting the input and ``__start__`` checkpoints) plus the per-task pending writes.

Run: ``python bench/langgraph_flow.py --nodes 200 --flows 5`` (needs the ``bench`` extra).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import tempfile
import time
import uuid
from importlib.metadata import version
from itertools import pairwise
from pathlib import Path
from typing import Any, TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from sqlite_files import connect_durable, read_pragmas, stored_bytes


class FlowState(TypedDict):
    goal: str


def _noop(state: FlowState) -> dict[str, Any]:
    """A node that does nothing: an empty update, so no state channel is written."""
    return {}


def _build_graph(nodes: int) -> StateGraph:
    builder = StateGraph(FlowState)
    names = [f"n{i:04d}" for i in range(nodes)]
    for name in names:
        builder.add_node(name, _noop)
    builder.add_edge(START, names[0])
    for prev, nxt in pairwise(names):
        builder.add_edge(prev, nxt)
    builder.add_edge(names[-1], END)
    return builder


def _config(thread_id: str, nodes: int) -> RunnableConfig:
    # One superstep per node; leave headroom so the limit is never what ends a flow.
    return {"configurable": {"thread_id": thread_id}, "recursion_limit": nodes + 10}


def _run_flows(graph: CompiledStateGraph, nodes: int, flows: int) -> tuple[float, list[str]]:
    """Run ``flows`` flows on fresh thread ids; return (seconds spent in invoke, thread ids)."""
    elapsed = 0.0
    thread_ids: list[str] = []
    for _ in range(flows):
        thread_id = uuid.uuid4().hex
        config = _config(thread_id, nodes)
        start = time.perf_counter()
        graph.invoke({"goal": "benchmark"}, config, durability="sync")
        elapsed += time.perf_counter() - start
        thread_ids.append(thread_id)
    return elapsed, thread_ids


def _check_completed(
    graph: CompiledStateGraph, conn: sqlite3.Connection, thread_ids: list[str], nodes: int
) -> None:
    """Fail loudly if a flow did not run to the end or was not checkpointed per step."""
    for thread_id in thread_ids:
        snapshot = graph.get_state(_config(thread_id, nodes))
        if snapshot.next:
            raise RuntimeError(f"flow {thread_id} stopped early; pending nodes {snapshot.next}")
        step = snapshot.metadata.get("step") if snapshot.metadata else None
        if step != nodes:
            raise RuntimeError(f"flow {thread_id} ended at step {step}, expected {nodes}")
        (count,) = conn.execute(
            "SELECT COUNT(*) FROM checkpoints WHERE thread_id = ?", (thread_id,)
        ).fetchone()
        if count < nodes:
            raise RuntimeError(f"flow {thread_id} stored {count} checkpoints for {nodes} nodes")


def run_langgraph(db_path: Path, nodes: int = 200, flows: int = 5) -> dict[str, Any]:
    """Time ``flows`` runs of a ``nodes``-long no-op chain checkpointed by ``SqliteSaver``.

    ``db_path`` must not exist yet (a pre-existing database would distort ``bytes_per_step``);
    it is created and left in place. Only the ``invoke`` calls of the measured flows are timed;
    one warm-up flow runs beforehand on a throwaway database in a temporary directory and is
    neither timed nor counted in ``steps`` or ``bytes_per_step``. See the module docstring for
    the durability settings (WAL, ``synchronous=FULL``, ``durability="sync"``).
    """
    if nodes < 1 or flows < 1:
        raise ValueError("nodes and flows must be >= 1")
    db_path = Path(db_path)
    if db_path.exists():
        raise FileExistsError(f"{db_path} already exists; the benchmark needs a fresh database")
    builder = _build_graph(nodes)

    with tempfile.TemporaryDirectory(prefix="langgraph-warmup-") as tmp:
        warm_path = Path(tmp) / "warmup.sqlite"
        warm_conn = connect_durable(warm_path)
        try:
            warm_saver = SqliteSaver(warm_conn)
            warm_saver.setup()
            _run_flows(builder.compile(checkpointer=warm_saver), nodes, 1)
        finally:
            warm_conn.close()

    conn = connect_durable(db_path)
    try:
        saver = SqliteSaver(conn)
        saver.setup()  # create the tables now, outside the timed region
        graph = builder.compile(checkpointer=saver)
        seconds, thread_ids = _run_flows(graph, nodes, flows)
        journal_mode, synchronous = read_pragmas(conn)
        _check_completed(graph, conn, thread_ids, nodes)
        size = stored_bytes(conn, db_path)
    finally:
        conn.close()

    steps = nodes * flows
    return {
        "engine": "langgraph",
        "version": version("langgraph"),
        "steps": steps,
        "seconds": seconds,
        "steps_per_s": steps / seconds,
        "bytes_per_step": size / steps,
        "journal_mode": journal_mode,
        "synchronous": synchronous,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--nodes", type=int, default=200, help="nodes in the chain")
    parser.add_argument("--flows", type=int, default=5, help="timed flows (fresh thread ids)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="langgraph-bench-") as tmp:
        result = run_langgraph(Path(tmp) / "langgraph.sqlite", nodes=args.nodes, flows=args.flows)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

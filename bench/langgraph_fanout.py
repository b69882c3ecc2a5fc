"""LangGraph side of the fan-out benchmark: `Send` to parallel no-op workers, checkpointed.

The graph: `plan` (a no-op) fans out through a conditional edge that returns one
`Send("worker", ...)` per sub-task; each `worker` invocation appends a short result to a
list channel (reducer `operator.add`, the documented map-reduce pattern); `join` checks
that every result arrived. It is compiled with the official `SqliteSaver` on a file whose
connection has `journal_mode=WAL` and `synchronous=FULL` set explicitly (`SqliteSaver`
itself sets only WAL); both are read back after the timed runs and reported. Every
`invoke` passes `durability="sync"`: each superstep's checkpoint is committed before the
next superstep starts.

What LangGraph persists for each sub-task: its pending write (one `writes` row, committed
by `SqliteSaver.put_writes` as the worker finishes) and its share of the checkpoints: one
per superstep (input, plan, workers, join), the one after the worker superstep holding
every result and the `Send` packets. `persisted_per_subtask` counts the rows.

Timed: the `invoke` calls of the measured runs only, each on a fresh `thread_id`. One
warm-up run goes first on a throwaway database. `bytes_per_subtask` is the growth of the
database over the measured runs (after `PRAGMA wal_checkpoint(TRUNCATE)`; the tables are
created before the baseline) divided by `tasks * runs`.

Run: `python bench/langgraph_fanout.py --tasks 100 --runs 5`.
"""

from __future__ import annotations

import argparse
import json
import operator
import sqlite3
import tempfile
import time
import uuid
from importlib.metadata import version
from pathlib import Path
from typing import Annotated, Any, TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Send

from sqlite_files import connect_durable, read_pragmas, stored_bytes


class FanOutState(TypedDict):
    tasks: int
    results: Annotated[list[str], operator.add]


class WorkerInput(TypedDict):
    index: int


def _plan(state: FanOutState) -> dict[str, Any]:
    return {}


def _send_all(state: FanOutState) -> list[Send]:
    return [Send("worker", {"index": index}) for index in range(state["tasks"])]


def _worker(task: WorkerInput) -> dict[str, Any]:
    return {"results": ["ok"]}


def _join(state: FanOutState) -> dict[str, Any]:
    if len(state["results"]) != state["tasks"]:
        raise RuntimeError(f"join got {len(state['results'])} results of {state['tasks']}")
    return {}


def _build_graph() -> StateGraph:
    builder = StateGraph(FanOutState)
    builder.add_node("plan", _plan)
    builder.add_node("worker", _worker)
    builder.add_node("join", _join)
    builder.add_edge(START, "plan")
    builder.add_conditional_edges("plan", _send_all, ["worker"])
    builder.add_edge("worker", "join")
    builder.add_edge("join", END)
    return builder


def _config(thread_id: str) -> RunnableConfig:
    return {"configurable": {"thread_id": thread_id}}


def _run(graph: CompiledStateGraph, tasks: int, runs: int) -> tuple[list[float], list[str]]:
    seconds: list[float] = []
    thread_ids: list[str] = []
    for _ in range(runs):
        thread_id = uuid.uuid4().hex
        started = time.perf_counter()
        final = graph.invoke({"tasks": tasks, "results": []}, _config(thread_id), durability="sync")
        seconds.append(time.perf_counter() - started)
        if len(final["results"]) != tasks:
            raise RuntimeError(f"run {thread_id} gathered {len(final['results'])} of {tasks}")
        thread_ids.append(thread_id)
    return seconds, thread_ids


def _persisted(conn: sqlite3.Connection, thread_ids: list[str], subtasks: int) -> dict[str, float]:
    marks = ", ".join("?" * len(thread_ids))
    counts: dict[str, float] = {}
    for table, blob in (("checkpoints", "checkpoint"), ("writes", "value")):
        rows, size = conn.execute(
            f"SELECT COUNT(*), SUM(LENGTH({blob})) FROM {table} WHERE thread_id IN ({marks})",
            thread_ids,
        ).fetchone()
        counts[f"{table} rows"] = round(rows / subtasks, 2)
        counts[f"{table} blob bytes"] = round((size or 0) / subtasks, 1)
    return counts


def run_langgraph_fanout(db_path: Path, tasks: int = 100, runs: int = 5) -> dict[str, Any]:
    """Time `runs` fan-outs of `tasks` workers checkpointed by `SqliteSaver` at `db_path`
    (which must not exist yet)."""
    if db_path.exists():
        raise FileExistsError(f"{db_path} already exists; the benchmark needs a fresh database")
    builder = _build_graph()
    with tempfile.TemporaryDirectory(prefix="langgraph-fanout-warmup-") as tmp:
        warm_conn = connect_durable(Path(tmp) / "warmup.sqlite")
        try:
            warm_saver = SqliteSaver(warm_conn)
            warm_saver.setup()
            _run(builder.compile(checkpointer=warm_saver), tasks, 1)
        finally:
            warm_conn.close()

    conn = connect_durable(db_path)
    try:
        saver = SqliteSaver(conn)
        saver.setup()
        before = stored_bytes(conn, db_path)
        graph = builder.compile(checkpointer=saver)
        seconds, thread_ids = _run(graph, tasks, runs)
        journal_mode, synchronous = read_pragmas(conn)
        size = stored_bytes(conn, db_path) - before
        persisted = _persisted(conn, thread_ids, tasks * runs)
    finally:
        conn.close()
    per_run = sum(seconds) / len(seconds)
    return {
        "engine": "langgraph",
        "version": version("langgraph"),
        "tasks": tasks,
        "runs": runs,
        "seconds_per_run": per_run,
        "subtasks_per_s": tasks / per_run,
        "bytes_per_subtask": size / (tasks * runs),
        "persisted_per_subtask": persisted,
        "journal_mode": journal_mode,
        "synchronous": synchronous,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tasks", type=int, default=100, help="workers per fan-out")
    parser.add_argument("--runs", type=int, default=5, help="timed fan-out runs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="langgraph-fanout-") as tmp:
        result = run_langgraph_fanout(Path(tmp) / "langgraph.sqlite", args.tasks, args.runs)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

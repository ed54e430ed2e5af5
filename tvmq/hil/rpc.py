"""A Linux board reached through TVM RPC: the stock server the board runs
(``python -m tvm.exec.rpc_server --tracker HOST:PORT --key KEY``), found
through a tracker, loads tvmq's libraries as TVM modules and times them.

The board needs TVM's runtime and Python, not tvmq: a library built with
``make module`` (:mod:`tvmq.backend.linux`) exports its model as the packed
function ``tvmq_run`` on DLTensors, which TVM's time evaluator calls.
"""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np

from tvmq.errors import TvmqError

ENTRY = "tvmq_run"  # the packed function of firmware/linux/tvmq_module.c
SESSION_TIMEOUT_S = 120  # a session the tracker gives: long enough for one round


def check_registered(address: tuple[str, int], key: str) -> None:
    """Refuse, in one line, a tracker that does not answer or knows no board `key`."""
    from tvm import rpc

    host, port = address
    try:
        socket.create_connection(address, timeout=5).close()
    except OSError as error:
        raise TvmqError(f"--tracker {host}:{port}: no RPC tracker answers ({error})") from None
    summary = rpc.connect_tracker(host, port).summary()
    if key not in summary.get("queue_info", {}):
        known = ", ".join(sorted(summary.get("queue_info", {}))) or "none"
        raise TvmqError(
            f"--tracker {host}:{port}: no board registered under key '{key}' (keys: {known})"
        )


def open_session(address: tuple[str, int], key: str):
    """A session on a free board under `key` (waits while all are busy)."""
    from tvm import rpc

    host, port = address
    return rpc.connect_tracker(host, port).request(
        key, priority=1, session_timeout=SESSION_TIMEOUT_S
    )


def time_module(
    session,
    module: Path,
    inputs: list[np.ndarray],
    output: tuple[tuple[int, ...], str],
    evaluator: dict,
) -> list[float]:
    """Seconds per call of the module's ``tvmq_run`` on the board, one per repeat of
    `evaluator` (TVM's time_evaluator arguments: number, repeat, min_repeat_ms)."""
    import tvm

    name = module.parent.parent.name + "_" + module.name  # unique among a round's uploads
    session.upload(str(module), name)
    try:
        remote = session.load_module(name)
        device = session.cpu(0)
        shape, dtype = output
        args = [tvm.runtime.tensor(np.ascontiguousarray(a), device) for a in inputs]
        args.append(tvm.runtime.empty(shape, dtype, device))
        timer = remote.time_evaluator(ENTRY, device, **evaluator)
        return [float(s) for s in timer(*args).results]
    finally:
        session.remove(name)

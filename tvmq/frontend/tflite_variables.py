"""TFLite resource variables (VAR_HANDLE, READ_VARIABLE, ASSIGN_VARIABLE, CALL_ONCE):
the state of streaming models, such as microWakeWord's, read at their initial values.

TFLite Micro keeps such a variable in its arena: CALL_ONCE runs an init subgraph on
the first invocation, which assigns each variable (named by its VAR_HANDLE's
container and shared name) a constant; later invocations read what the previous one
assigned. A tvmq build keeps no state between calls, as for LSTM and SVDF states:
every call reads the initial values, so its outputs are those of TFLite Micro's first
invocation after a reset.
"""

from __future__ import annotations

import numpy as np
import tflite
from tflite.BuiltinOperator import BuiltinOperator
from tflite.CallOnceOptions import CallOnceOptions
from tflite.VarHandleOptions import VarHandleOptions

from tvmq.errors import TvmqError

VARIABLE_OPS = frozenset({"VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE", "CALL_ONCE"})


def variable_name(op: tflite.Operator) -> str:
    """The variable a VAR_HANDLE names: its container and shared name."""
    table = op.BuiltinOptions()
    if table is None:
        raise TvmqError("VAR_HANDLE has no options")
    options = VarHandleOptions()
    options.Init(table.Bytes, table.Pos)
    container, shared = (options.Container() or b"", options.SharedName() or b"")
    return f"{container.decode(errors='replace')}/{shared.decode(errors='replace')}"


def initial_values(model: tflite.Model, graph: tflite.SubGraph) -> dict[str, np.ndarray]:
    """Each variable's value after the CALL_ONCE init subgraphs `graph` runs: the
    constants they assign (raw, in the variable's stored type)."""
    values: dict[str, np.ndarray] = {}
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        if _builtin(model, op) != BuiltinOperator.CALL_ONCE:
            continue
        table = op.BuiltinOptions()
        if table is None:
            raise TvmqError("CALL_ONCE has no options")
        options = CallOnceOptions()
        options.Init(table.Bytes, table.Pos)
        index = options.InitSubgraphIndex()
        if not 0 <= index < model.SubgraphsLength():
            raise TvmqError(f"CALL_ONCE: init subgraph {index} does not exist")
        values.update(_assigned(model, model.Subgraphs(index)))
    return values


def _assigned(model: tflite.Model, graph: tflite.SubGraph) -> dict[str, np.ndarray]:
    handles: dict[int, str] = {}
    values: dict[str, np.ndarray] = {}
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = _builtin(model, op)
        if code == BuiltinOperator.VAR_HANDLE:
            handles[int(op.Outputs(0))] = variable_name(op)
        elif code == BuiltinOperator.ASSIGN_VARIABLE:
            name = handles.get(int(op.Inputs(0)))
            value = _constant(model, graph, int(op.Inputs(1)))
            if name is None or value is None:
                raise TvmqError("an init subgraph assigns a variable something not constant")
            values[name] = value
        else:
            raise TvmqError(f"an init subgraph holds operator {code}: only constants are read")
    return values


def _constant(model: tflite.Model, graph: tflite.SubGraph, index: int) -> np.ndarray | None:
    from tvmq.frontend.tflite_import import NUMPY_TYPES

    tensor = graph.Tensors(index)
    raw = model.Buffers(tensor.Buffer()).DataAsNumpy()
    dtype = NUMPY_TYPES.get(tensor.Type())
    if not isinstance(raw, np.ndarray) or dtype is None:
        return None
    shape = [int(d) for d in tensor.ShapeAsNumpy()] if tensor.ShapeLength() else []
    return np.frombuffer(raw.tobytes(), dtype).reshape(shape)


def _builtin(model: tflite.Model, op: tflite.Operator) -> int:
    code = model.OperatorCodes(op.OpcodeIndex())
    return max(code.BuiltinCode(), code.DeprecatedBuiltinCode())

"""The executor: the harness that runs one quantum, pipelines, graphs and the main job.

See ``docs/executor.md``: the task protocol, the harness's decisions,
statuses, caveats and exit codes, the graph format, and a tutorial.
"""

from ._commands import register as register_commands
from ._demo import demo_pipeline, trivial_pipeline
from ._faults import FaultInjection, InjectedFailureError
from ._graph import GRAPH_FORMAT, QuantumGraph
from ._harness import (
    EXIT_FAILURE,
    EXIT_INVALID,
    EXIT_OK,
    EXIT_REPEATABLE,
    QuantumReport,
    execute_quantum,
)
from ._loading import load_pipeline
from ._pipeline import Pipeline, TaskDef
from ._rerun import RerunReport, rerun_quantum
from ._run import QuantumOutcome, RunReport, run_pipeline
from ._task import Task

__all__ = [
    "EXIT_FAILURE",
    "EXIT_INVALID",
    "EXIT_OK",
    "EXIT_REPEATABLE",
    "GRAPH_FORMAT",
    "FaultInjection",
    "InjectedFailureError",
    "Pipeline",
    "QuantumGraph",
    "QuantumOutcome",
    "QuantumReport",
    "RerunReport",
    "RunReport",
    "Task",
    "TaskDef",
    "demo_pipeline",
    "execute_quantum",
    "load_pipeline",
    "register_commands",
    "rerun_quantum",
    "run_pipeline",
    "trivial_pipeline",
]

"""The Temporal SDK's workflow sandbox, without its per-payload `exec`.

For every payload of every workflow task (decoding the activation, encoding the completion), the
worker asks the workflow instance which serialization and external-store context applies.
temporalio 1.35's sandboxed instance answers by compiling a code string and running it with the
sandbox's import and builtin restrictions applied (`_Instance._run_code`): 40 to 90 us a
question, about 85 questions per negotiation on the two sides (docs/benchmarks.md,
"Negotiations: the sandbox's cost per run").

The answer comes from the SDK's own instance inside the sandbox (`_WorkflowInstanceImpl`, a
module passed through from the host), which reads its workflow info and pending commands and
builds context dataclasses; no workflow code and no import runs there, so the restrictions guard
nothing during that call. `SandboxedRunner` asks that instance directly. Workflow code still
runs only through the SDK's sandbox (instance creation, activations), with every restriction
(decision 0030).

The classes reached here are private to temporalio; `tests/unit/test_workflow_sandbox.py` and
the replay tests (which run through `workers.main.workflow_runner`) fail if they change shape.
"""

from __future__ import annotations

from typing import cast

from temporalio.converter import SerializationContext
from temporalio.converter._extstore import StorageDriverStoreContext
from temporalio.worker import WorkflowInstance, WorkflowInstanceDetails
from temporalio.worker._command_aware_visitor import CommandInfo
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner
from temporalio.worker.workflow_sandbox._in_sandbox import InSandbox
from temporalio.worker.workflow_sandbox._runner import _Instance

# Where the SDK keeps the in-sandbox instance among the globals its code strings run with.
IN_SANDBOX = "__temporal_in_sandbox"


class _DirectContexts(_Instance):
    def _in_sandbox(self) -> InSandbox:
        return cast(InSandbox, self.globals_and_locals[IN_SANDBOX])

    def get_serialization_context(
        self, command_info: CommandInfo | None
    ) -> SerializationContext | None:
        return self._in_sandbox().get_serialization_context(command_info)

    def get_external_store_context(
        self, command_info: CommandInfo | None
    ) -> StorageDriverStoreContext:
        return self._in_sandbox().get_external_store_context(command_info)


class SandboxedRunner(SandboxedWorkflowRunner):
    """`SandboxedWorkflowRunner`, whose instances answer context questions directly."""

    def create_instance(self, det: WorkflowInstanceDetails) -> WorkflowInstance:
        return _DirectContexts(det, self.runner_class, self.restrictions)

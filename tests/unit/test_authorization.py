"""The authorization decision for every method of every service Aion serves, for every kind of
caller: generated from the service descriptors, so a method without a rule fails here."""

from __future__ import annotations

import pytest
from temporalio.api.command.v1 import (
    Command,
    RequestCancelExternalWorkflowExecutionCommandAttributes,
    SignalExternalWorkflowExecutionCommandAttributes,
    StartChildWorkflowExecutionCommandAttributes,
)
from temporalio.api.operatorservice.v1 import service_pb2 as operator_service
from temporalio.api.workflowservice.v1 import service_pb2 as workflow_service
from temporalio.api.workflowservice.v1.request_response_pb2 import (
    RespondWorkflowTaskCompletedRequest,
)

from aion.auth.admin import METHODS as ADMIN_METHODS
from aion.auth.guard import cross_namespace_targets
from aion.auth.methods import ADMIN_SERVICE, RULES
from aion.auth.plugin import decide
from aion.auth.roles import Claims, Role, parse_role
from tests.auth_support import CALLERS, NAMESPACE, expected


def _methods() -> list[str]:
    names = []
    for module in (workflow_service, operator_service):
        for service in module.DESCRIPTOR.services_by_name.values():
            names += [f"/{service.full_name}/{m.name}" for m in service.methods]
    return names + [ADMIN_SERVICE + name for name in ADMIN_METHODS]


METHODS = _methods()


def _claims(caller: str) -> Claims | None:
    held = CALLERS[caller]
    if held is None:
        return None
    claims = Claims(subject=caller, auth_type="test")
    claims.grant(held[0], parse_role(held[1]))
    return claims


def test_every_method_has_a_rule() -> None:
    missing = [m for m in METHODS if m not in RULES]
    assert not missing, f"methods without an authorization rule: {missing}"
    assert len(METHODS) > 130


@pytest.mark.parametrize("caller", CALLERS)
def test_matrix(caller: str) -> None:
    claims = _claims(caller)
    wrong = [
        method
        for method in METHODS
        if decide(claims, method, NAMESPACE) != (expected(caller, method) == "allow")
    ]
    assert not wrong


def test_temporal_classification_samples() -> None:
    wf = "/temporal.api.workflowservice.v1.WorkflowService/"
    op = "/temporal.api.operatorservice.v1.OperatorService/"
    worker, reader, writer = (_claims(c) for c in ("worker", "reader", "writer"))
    assert decide(worker, wf + "PollWorkflowTaskQueue", NAMESPACE)
    assert decide(worker, wf + "RespondActivityTaskCompleted", NAMESPACE)
    assert decide(worker, wf + "GetWorkflowExecutionHistory", NAMESPACE)
    assert not decide(worker, wf + "StartWorkflowExecution", NAMESPACE)
    assert not decide(reader, wf + "PollActivityTaskQueue", NAMESPACE)
    assert decide(reader, wf + "QueryWorkflow", NAMESPACE)
    assert decide(writer, wf + "CreateSchedule", NAMESPACE)
    assert not decide(writer, wf + "UpdateNamespace", NAMESPACE)
    assert not decide(writer, op + "AddSearchAttributes", NAMESPACE)
    assert not decide(writer, wf + "ListNamespaces", NAMESPACE)  # a cluster-wide read
    assert not decide(writer, wf + "StartWorkflowExecution", "other")
    assert decide(None, wf + "GetSystemInfo", "")
    assert decide(None, "/grpc.health.v1.Health/Check", "")
    assert not decide(_claims("system-admin"), "/unknown.Service/Method", "")


def test_permissions_as_temporal_spells_them() -> None:
    claims = Claims(subject="s", auth_type="jwt")
    assert claims.grant_permission("default:write")
    assert claims.grant_permission("default:worker")
    assert claims.grant_permission("temporal-system:read")
    assert not claims.grant_permission("no-role")
    assert not claims.grant_permission("default:owner")
    assert claims.namespaces == {"default": Role.WRITER | Role.WORKER}
    assert claims.system == Role.READER


def test_commands_on_another_namespace_need_rights_there() -> None:
    wf = "/temporal.api.workflowservice.v1.WorkflowService/"
    request = RespondWorkflowTaskCompletedRequest(
        namespace=NAMESPACE,
        commands=[
            Command(
                start_child_workflow_execution_command_attributes=StartChildWorkflowExecutionCommandAttributes(
                    namespace="other"
                )
            ),
            Command(
                signal_external_workflow_execution_command_attributes=SignalExternalWorkflowExecutionCommandAttributes(
                    namespace=NAMESPACE
                )
            ),
            Command(
                request_cancel_external_workflow_execution_command_attributes=RequestCancelExternalWorkflowExecutionCommandAttributes(
                    namespace="third"
                )
            ),
        ],
    )
    targets = cross_namespace_targets(wf + "RespondWorkflowTaskCompleted", request, NAMESPACE)
    assert targets == {
        (wf + "StartWorkflowExecution", "other"),
        (wf + "RequestCancelWorkflowExecution", "third"),
    }
    assert not cross_namespace_targets(wf + "RespondWorkflowTaskFailed", request, NAMESPACE)

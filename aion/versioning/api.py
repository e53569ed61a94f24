"""The worker deployment operations of WorkflowService: describe and list deployments, set the
current and ramping version, describe a version, update its metadata, delete versions and
deployments. The older build-id APIs answer as the reference server does by default."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from temporalio.api.workflowservice.v1 import request_response_pb2 as rr

from aion import errors
from aion.common.tokens import page
from aion.common.versions import UNVERSIONED, parse_version, version_key
from aion.namespaces import Namespace
from aion.versioning.deployment import Deployment, Drainage
from aion.versioning.registry import DeploymentRegistry

DEFAULT_PAGE_SIZE = 1000
POLLER_HISTORY_NS = 5 * 60 * 1_000_000_000  # pollers seen this recently keep a version alive
LEGACY_SETS_DISABLED = (
    "Worker versioning v0.1 (Version Set-based, deprecated) is disabled on this namespace."
)
LEGACY_RULES_DISABLED = (
    "Worker versioning v0.2 (Rules-based, deprecated) is disabled on this namespace."
)


def _requested_version(request: Any) -> tuple[str, str]:
    """(deployment, build id) from a request's `deployment_version`, else its `version`."""
    if request.HasField("deployment_version"):
        wanted = request.deployment_version
        return wanted.deployment_name, wanted.build_id
    if not request.version:
        raise errors.InvalidArgument("deployment version cannot be empty")
    return parse_version(request.version)


def _target_build(deployment_name: str, request: Any) -> tuple[str, bool]:
    """The build id a Set* request names ("" = unversioned), and whether it named one."""
    if request.version:
        if request.version == UNVERSIONED:
            return "", True
        name, build_id = parse_version(request.version)
        if name != deployment_name:
            raise errors.InvalidArgument(
                f"invalid version string '{request.version}' does not match deployment name "
                f"'{deployment_name}'"
            )
        return build_id, True
    return request.build_id, bool(request.build_id)


def _allow_no_pollers(d: Deployment, build_id: str, allowed: bool, now: int) -> None:
    """With `allow_no_pollers`, a version no poller registered yet can be routed to."""
    if build_id and allowed:
        d.ensure_version(build_id, now)


def _check_name(name: str) -> None:
    if not name:
        raise errors.InvalidArgument("deployment name cannot be empty")


async def describe_worker_deployment(
    registry: DeploymentRegistry, ns: Namespace, req: rr.DescribeWorkerDeploymentRequest
) -> rr.DescribeWorkerDeploymentResponse:
    _check_name(req.deployment_name)
    deployment = registry.get(ns.id, req.deployment_name)
    return rr.DescribeWorkerDeploymentResponse(
        conflict_token=deployment.token(), worker_deployment_info=deployment.info()
    )


async def list_worker_deployments(
    registry: DeploymentRegistry, ns: Namespace, req: rr.ListWorkerDeploymentsRequest
) -> rr.ListWorkerDeploymentsResponse:
    size = req.page_size if req.page_size > 0 else DEFAULT_PAGE_SIZE
    shown, following = page(registry.all(ns.id), req.next_page_token, size)
    response = rr.ListWorkerDeploymentsResponse(next_page_token=following)
    for d in shown:
        entry = response.worker_deployments.add(
            name=d.name, create_time=d.info().create_time, routing_config=d.routing_config()
        )
        if d.versions:
            newest = max(d.versions.values(), key=lambda v: v.create_time_ns)
            entry.latest_version_summary.CopyFrom(d.summary(newest))
        if d.current:
            entry.current_version_summary.CopyFrom(d.summary(d.versions[d.current]))
        if d.ramping_set and d.ramping:
            entry.ramping_version_summary.CopyFrom(d.summary(d.versions[d.ramping]))
    return response


async def set_current_version(
    registry: DeploymentRegistry, ns: Namespace, req: rr.SetWorkerDeploymentCurrentVersionRequest
) -> rr.SetWorkerDeploymentCurrentVersionResponse:
    _check_name(req.deployment_name)
    build_id, _ = _target_build(req.deployment_name, req)
    now = registry.clock()

    def set_current(d: Deployment) -> rr.SetWorkerDeploymentCurrentVersionResponse:
        response = rr.SetWorkerDeploymentCurrentVersionResponse(
            previous_version=d.version_string(d.current)
        )
        if d.current:
            response.previous_deployment_version.CopyFrom(d.deployment_version(d.current))
        if build_id == d.current and req.identity == d.last_modifier_identity:
            response.conflict_token = d.token()
            return response  # nothing to do
        d.check_token(req.conflict_token)
        _allow_no_pollers(d, build_id, req.allow_no_pollers, now)
        d.set_current(build_id, req.identity, now)
        response.conflict_token = d.token()
        return response

    return await registry.change(
        ns.id, req.deployment_name, set_current, create=req.allow_no_pollers
    )


async def set_ramping_version(
    registry: DeploymentRegistry, ns: Namespace, req: rr.SetWorkerDeploymentRampingVersionRequest
) -> rr.SetWorkerDeploymentRampingVersionResponse:
    _check_name(req.deployment_name)
    if not 0 <= req.percentage <= 100:
        raise errors.InvalidArgument("Percentage must be between 0 and 100 (inclusive)")
    build_id, named = _target_build(req.deployment_name, req)
    unversioned = req.version == UNVERSIONED or (not named and req.percentage > 0)
    if req.version == UNVERSIONED and req.percentage == 0:
        unversioned = False  # the CLI's --delete: unset the ramp
    now = registry.clock()

    def set_ramping(d: Deployment) -> rr.SetWorkerDeploymentRampingVersionResponse:
        response = rr.SetWorkerDeploymentRampingVersionResponse()
        if d.ramping_set:
            response.previous_version = d.version_string(d.ramping)
            response.previous_percentage = d.ramp_percentage
            if d.ramping:
                response.previous_deployment_version.CopyFrom(d.deployment_version(d.ramping))
        unchanged = (
            d.ramping_set == (bool(build_id) or unversioned)
            and d.ramping == build_id
            and d.ramp_percentage == req.percentage
            and req.identity == d.last_modifier_identity
        )
        if not unchanged:
            d.check_token(req.conflict_token)
            _allow_no_pollers(d, build_id, req.allow_no_pollers, now)
            d.set_ramping(build_id, unversioned, req.percentage, req.identity, now)
        response.conflict_token = d.token()
        return response

    return await registry.change(
        ns.id, req.deployment_name, set_ramping, create=req.allow_no_pollers
    )


async def describe_version(
    registry: DeploymentRegistry, ns: Namespace, req: rr.DescribeWorkerDeploymentVersionRequest
) -> rr.DescribeWorkerDeploymentVersionResponse:
    name, build_id = _requested_version(req)
    deployment = registry.find(ns.id, name)
    version = deployment.versions.get(build_id) if deployment else None
    if deployment is None or version is None:
        raise errors.NotFound("Worker Deployment Version not found")
    response = rr.DescribeWorkerDeploymentVersionResponse(
        worker_deployment_version_info=deployment.version_info(version)
    )
    for task_queue, task_type in version.task_queues:
        response.version_task_queues.add(name=str(task_queue), type=task_type)  # type: ignore[arg-type]
    return response


async def update_version_metadata(
    registry: DeploymentRegistry,
    ns: Namespace,
    req: rr.UpdateWorkerDeploymentVersionMetadataRequest,
) -> rr.UpdateWorkerDeploymentVersionMetadataResponse:
    name, build_id = _requested_version(req)
    if not req.upsert_entries and not req.remove_entries:
        raise errors.InvalidArgument(
            "At least one of remove_entries or upsert_entries must be provided"
        )

    def update(d: Deployment) -> rr.UpdateWorkerDeploymentVersionMetadataResponse:
        version = d.versions.get(build_id)
        if version is None:
            raise errors.NotFound(
                "workflow not found for ID: temporal-sys-worker-deployment-version:"
                f"{version_key(name, build_id)}"
            )
        for key, payload in req.upsert_entries.items():
            version.metadata[key] = payload
        for key in req.remove_entries:
            version.metadata.pop(key, None)
        version.last_modifier_identity = req.identity
        response = rr.UpdateWorkerDeploymentVersionMetadataResponse()
        for key, payload in version.metadata.items():
            response.metadata.entries[key].CopyFrom(payload)
        return response

    return await registry.change(ns.id, name, update)


async def delete_version(
    registry: DeploymentRegistry,
    ns: Namespace,
    req: rr.DeleteWorkerDeploymentVersionRequest,
    last_poll_ns: Callable[[str, str], int],
) -> rr.DeleteWorkerDeploymentVersionResponse:
    """Delete a version unless current, ramping, draining or polled lately (`last_poll_ns` of a
    namespace id and version key: when matching last saw a poller of it, 0 if never)."""
    name, build_id = _requested_version(req)
    deployment = registry.find(ns.id, name)
    if deployment is None or build_id not in deployment.versions:
        return rr.DeleteWorkerDeploymentVersionResponse()  # already gone
    key = version_key(name, build_id)
    polled = last_poll_ns(ns.id, key)

    def delete(d: Deployment) -> None:
        version = d.versions.get(build_id)
        if version is None:
            return
        if build_id == d.current or (d.ramping_set and build_id == d.ramping):
            raise errors.FailedPrecondition(
                f"version '{key}' cannot be deleted since it is current or ramping"
            )
        if version.drainage == Drainage.VERSION_DRAINAGE_STATUS_DRAINING and not req.skip_drainage:
            raise errors.FailedPrecondition(
                f"version '{key}' cannot be deleted since it is draining"
            )
        if polled and registry.clock() - polled < POLLER_HISTORY_NS:
            raise errors.FailedPrecondition(
                f"version '{key}' cannot be deleted since it has active pollers"
            )
        del d.versions[build_id]

    await registry.change(ns.id, name, delete)
    return rr.DeleteWorkerDeploymentVersionResponse()


async def delete_deployment(
    registry: DeploymentRegistry, ns: Namespace, req: rr.DeleteWorkerDeploymentRequest
) -> rr.DeleteWorkerDeploymentResponse:
    _check_name(req.deployment_name)
    deployment = registry.find(ns.id, req.deployment_name)
    if deployment is None:
        return rr.DeleteWorkerDeploymentResponse()
    if deployment.versions:
        raise errors.FailedPrecondition("deployment has versions, can't be deleted")
    await registry.delete(ns.id, req.deployment_name)
    return rr.DeleteWorkerDeploymentResponse()

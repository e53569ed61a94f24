"""Worker deployment versions as strings, and versioning overrides.

Versions are written `deployment:build_id` inside Aion (Temporal's "v32" form); responses also
carry the older `deployment.build_id` strings the SDKs still read. A versioning override (on
start, or by UpdateWorkflowExecutionOptions) pins a workflow to a version, or lets it
auto-upgrade, whatever its workers declared; it is kept in the current form only, as Temporal
writes it to history. History and the versioning services both use these.
"""

from __future__ import annotations

from temporalio.api.enums.v1 import workflow_pb2
from temporalio.api.workflow.v1 import message_pb2 as workflow_pb

from aion import errors

UNVERSIONED = "__unversioned__"
RAMPING_VERSION = "__ramping__"  # a task for the ramping version (continue-as-new onto it)


def version_key(deployment: str, build_id: str) -> str:
    """A version as Aion keys it (and Temporal's search attributes show it)."""
    return f"{deployment}:{build_id}"


def dotted_version(deployment: str, build_id: str) -> str:
    """A version in Temporal's older `deployment.build_id` form, which responses still carry."""
    return f"{deployment}.{build_id}"


def parse_version(text: str) -> tuple[str, str]:
    """`dep.build` or `dep:build` (the first delimiter splits) into (deployment, build id)."""
    cut = min((i for i in (text.find(":"), text.find(".")) if i >= 0), default=-1)
    if cut < 0:
        raise errors.InvalidArgument(
            "invalid version string: expected delimiter ':' or '.' not found in version "
            f"string {text}"
        )
    return text[:cut], text[cut + 1 :]


Behavior = workflow_pb2.VersioningBehavior
PINNED_OVERRIDE = (
    workflow_pb.VersioningOverride.PinnedOverrideBehavior.PINNED_OVERRIDE_BEHAVIOR_PINNED
)


def versioning_override(given: workflow_pb.VersioningOverride) -> workflow_pb.VersioningOverride:
    """Validate an override as Temporal does and return its current form."""
    if given.HasField("pinned"):
        if not given.pinned.behavior:
            raise errors.InvalidArgument(
                "must specify pinned override behavior if override is pinned."
            )
        return workflow_pb.VersioningOverride(pinned=given.pinned)
    if (
        given.HasField("auto_upgrade")
        or given.behavior == Behavior.VERSIONING_BEHAVIOR_AUTO_UPGRADE
    ):
        if given.HasField("auto_upgrade") and not given.auto_upgrade:
            raise errors.InvalidArgument("auto-upgrade override must be true")
        return workflow_pb.VersioningOverride(auto_upgrade=True)
    if given.behavior == Behavior.VERSIONING_BEHAVIOR_PINNED and given.pinned_version:
        name, build_id = parse_version(given.pinned_version)
        pinned = workflow_pb.VersioningOverride.PinnedOverride(behavior=PINNED_OVERRIDE)
        pinned.version.deployment_name = name
        pinned.version.build_id = build_id
        return workflow_pb.VersioningOverride(pinned=pinned)
    raise errors.InvalidArgument("versioning override is not set")


def described(override: workflow_pb.VersioningOverride) -> workflow_pb.VersioningOverride:
    """The override as describe shows it: the current form plus the deprecated fields."""
    shown = workflow_pb.VersioningOverride()
    shown.CopyFrom(override)
    if override.HasField("pinned"):
        version = override.pinned.version
        shown.behavior = Behavior.VERSIONING_BEHAVIOR_PINNED
        shown.pinned_version = dotted_version(version.deployment_name, version.build_id)
    elif override.auto_upgrade:
        shown.behavior = Behavior.VERSIONING_BEHAVIOR_AUTO_UPGRADE
    return shown


def pinned_version(override: workflow_pb.VersioningOverride) -> tuple[str, str] | None:
    """(deployment, build id) an override pins to; None when it does not pin."""
    if override.HasField("pinned") and override.pinned.HasField("version"):
        return override.pinned.version.deployment_name, override.pinned.version.build_id
    if override.behavior == Behavior.VERSIONING_BEHAVIOR_PINNED and override.pinned_version:
        return parse_version(override.pinned_version)
    return None


def pinned_version_missing(deployment: str, build_id: str, task_queue: str) -> errors.ServiceError:
    """Temporal's answer to an override pinned to a version the workflow's queue lacks."""
    return errors.FailedPrecondition(
        f"Pinned version '{deployment}:{build_id}' is not present in task queue"
        f" '{task_queue}' of type 'Workflow'"
    )

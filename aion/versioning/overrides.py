"""Versioning overrides (on start, or by UpdateWorkflowExecutionOptions): pin a workflow to a
version, or let it auto-upgrade, whatever its workers declared. Kept in the current form only,
as Temporal writes them to history."""

from __future__ import annotations

from temporalio.api.enums.v1 import workflow_pb2
from temporalio.api.workflow.v1 import message_pb2 as workflow_pb

from aion import errors
from aion.versioning.deployment import dotted_version, parse_version

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

"""Worker Versioning policy of one execution: which deployment version its tasks go to, and the
search attributes that describe the version it runs on."""

from __future__ import annotations

import json
from collections.abc import Callable

from temporalio.api.common.v1 import message_pb2 as common_pb
from temporalio.api.deployment.v1 import message_pb2 as deployment_pb
from temporalio.api.enums.v1 import deployment_pb2 as deployment_enums
from temporalio.api.enums.v1 import event_type_pb2, workflow_pb2
from temporalio.api.history.v1 import message_pb2 as history_pb
from temporalio.api.workflow.v1 import message_pb2 as workflow_pb

from aion.common.versions import RAMPING_VERSION, version_key
from aion.history.state.builder import HistoryBuilder
from aion.history.state.execution import ExecutionState
from aion.visibility.search_attributes import keyword_payload

ET = event_type_pb2.EventType
VersioningBehavior = workflow_pb2.VersioningBehavior
BUILD_IDS = "BuildIds"
# What the server writes of a run's versioning: a next run starts without them.
VERSIONING_SEARCH_ATTRIBUTES = frozenset(
    {
        "TemporalWorkerDeployment",
        "TemporalWorkerDeploymentVersion",
        "TemporalWorkflowVersioningBehavior",
        "TemporalUsedWorkerDeploymentVersions",
        BUILD_IDS,
    }
)
UNVERSIONED = "unversioned"
MAX_BUILD_IDS_SIZE = 2048  # the JSON of the list, as any search attribute value
BEHAVIOR_NAMES: dict[int, str] = {
    VersioningBehavior.VERSIONING_BEHAVIOR_PINNED: "Pinned",
    VersioningBehavior.VERSIONING_BEHAVIOR_AUTO_UPGRADE: "AutoUpgrade",
}


class Versioning:
    """The deployment version an execution runs on, is pinned to, and is routed to."""

    def __init__(
        self,
        state: ExecutionState,
        history: HistoryBuilder,
        routing_target: Callable[[str, str, str], str],
    ) -> None:
        self.s = state
        self._history = history
        self._routing_target = routing_target

    @property
    def deployment_version(self) -> str:
        """The worker deployment version (`dep:build`) it last ran on; "" if unversioned."""
        if not self.s.deployment_name:
            return ""
        return version_key(self.s.deployment_name, self.s.deployment_build_id)

    @property
    def pinned_version(self) -> str:
        """The version all its tasks go to: its override's, or its own when its worker
        declared it PINNED."""
        override = self.s.versioning_override
        if override is not None and override.HasField("pinned"):
            version = override.pinned.version
            return version_key(version.deployment_name, version.build_id)
        if override is not None and override.auto_upgrade:
            return ""
        if self.s.use_ramping_version:
            return RAMPING_VERSION  # as a ramp at 100 % would route it
        if self.s.versioning_behavior != VersioningBehavior.VERSIONING_BEHAVIOR_PINNED:
            return ""
        return self.deployment_version

    def routing_target(self) -> str:
        """The version new workflow tasks on its task queue go to now."""
        s = self.s
        return self._routing_target(s.namespace_id, s.task_queue, s.workflow_id)

    def moves_to_another_version(self) -> bool:
        """An unpinned workflow whose queue now routes to another version: its next task goes
        there, not to the old version's sticky worker."""
        if self.pinned_version:
            return False
        return self.routing_target() != self.deployment_version

    def pinned_target_changed(self) -> bool:
        """A pinned workflow whose queue now routes elsewhere (told to its worker)."""
        pinned = self.pinned_version
        return bool(pinned) and self.routing_target() != pinned

    def inheritable_search_attributes(self) -> common_pb.SearchAttributes | None:
        """Its search attributes as a next run (continue-as-new, retry, cron) starts with them:
        without those describing the worker deployment and build ids this run ran on."""
        attributes = self.s.search_attributes
        if (
            attributes is None
            or not VERSIONING_SEARCH_ATTRIBUTES & attributes.indexed_fields.keys()
        ):
            return attributes
        kept = common_pb.SearchAttributes()
        for name, payload in attributes.indexed_fields.items():
            if name not in VERSIONING_SEARCH_ATTRIBUTES:
                kept.indexed_fields[name].CopyFrom(payload)
        return kept

    @property
    def behavior(self) -> int:
        """Its versioning behavior as its search attributes show it: its override's, else the
        one its worker declared."""
        override = self.s.versioning_override
        if override is not None:
            if override.auto_upgrade:
                return VersioningBehavior.VERSIONING_BEHAVIOR_AUTO_UPGRADE
            if override.HasField("pinned"):
                return VersioningBehavior.VERSIONING_BEHAVIOR_PINNED
        return self.s.versioning_behavior

    @property
    def shown_version(self) -> str:
        """Its version as its search attributes show it: its override's pinned version, else
        the one it last ran on."""
        override = self.s.versioning_override
        if override is not None and override.HasField("pinned"):
            version = override.pinned.version
            return version_key(version.deployment_name, version.build_id)
        return self.deployment_version

    def record_build_ids(self, stamp: common_pb.WorkerVersionStamp | None) -> None:
        """Update the BuildIds search attribute as Temporal does when a workflow task completes
        (`stamp`: the worker's version stamp), a run starts pinned or its override changes:
        first `unversioned` while neither versioned nor under a behavior, `pinned:<version>`
        while pinned, then every build id it ran on once (`unversioned:<id>`,
        `versioned:<id>`), the oldest dropped while the list is over the value size limit."""
        behavior = self.behavior
        unspecified = VersioningBehavior.VERSIONING_BEHAVIOR_UNSPECIFIED
        values: list[str] = []
        if (stamp is None or not stamp.use_versioning) and behavior == unspecified:
            values.append(UNVERSIONED)
        if behavior == VersioningBehavior.VERSIONING_BEHAVIOR_PINNED:
            values.append(f"pinned:{self.shown_version}")
        build_id = ""
        if stamp is not None:
            if not stamp.build_id:
                build_id = UNVERSIONED
            else:
                prefix = "versioned" if stamp.use_versioning else UNVERSIONED
                build_id = f"{prefix}:{stamp.build_id}"
        existing = self._build_ids()
        values.extend(v for v in existing if not _is_sentinel(v))
        if build_id and build_id not in existing:
            values.append(build_id)
        if values == existing:
            return
        # Over the size limit the oldest build ids go first; a leading sentinel stays.
        keep_first = bool(values) and (values[0] == UNVERSIONED or values[0].startswith("a"))
        while values and len(json.dumps(values, separators=(",", ":"))) > MAX_BUILD_IDS_SIZE:
            del values[1 if keep_first and len(values) > 1 else 0]
        attributes = self.s.search_attributes or common_pb.SearchAttributes()
        attributes.indexed_fields[BUILD_IDS].CopyFrom(keyword_payload(values))
        self.s.search_attributes = attributes
        self._history.mutation.dirty = True

    def _build_ids(self) -> list[str]:
        attributes = self.s.search_attributes
        if attributes is None or BUILD_IDS not in attributes.indexed_fields:
            return []
        try:
            value = json.loads(attributes.indexed_fields[BUILD_IDS].data)
        except ValueError:
            return []
        return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []

    def set_override(self, override: workflow_pb.VersioningOverride | None, identity: str) -> bool:
        """UpdateWorkflowExecutionOptions: a new override (None: unset); False if unchanged."""
        if override == self.s.versioning_override:
            return False
        attrs = history_pb.WorkflowExecutionOptionsUpdatedEventAttributes(identity=identity)
        if override is None:
            attrs.unset_versioning_override = True
        else:
            attrs.versioning_override.CopyFrom(override)
        self._history.append(
            ET.EVENT_TYPE_WORKFLOW_EXECUTION_OPTIONS_UPDATED,
            "workflow_execution_options_updated_event_attributes",
            attrs,
            worker_may_ignore=True,  # SDKs that do not know the event skip it on replay
        )
        self.s.versioning_override = override
        self.record_build_ids(None)
        return True

    def record_deployment(
        self, options: deployment_pb.WorkerDeploymentOptions, behavior: int, revision: int
    ) -> None:
        """A workflow task completed on a worker with these deployment options."""
        s = self.s
        s.worker_deployment_name = options.deployment_name
        if options.worker_versioning_mode != deployment_enums.WORKER_VERSIONING_MODE_VERSIONED:
            return
        s.versioning_behavior = behavior
        s.use_ramping_version = False
        s.deployment_name = options.deployment_name
        s.deployment_build_id = options.build_id
        s.versioning_revision = revision
        version = self.deployment_version
        if version not in s.used_deployment_versions:
            s.used_deployment_versions.append(version)
        attributes = s.search_attributes or common_pb.SearchAttributes()
        fields = attributes.indexed_fields
        fields["TemporalWorkerDeployment"].CopyFrom(keyword_payload(options.deployment_name))
        fields["TemporalWorkerDeploymentVersion"].CopyFrom(keyword_payload(version))
        fields["TemporalUsedWorkerDeploymentVersions"].CopyFrom(
            keyword_payload(list(s.used_deployment_versions))
        )
        behavior_name = BEHAVIOR_NAMES.get(behavior)
        if behavior_name:
            fields["TemporalWorkflowVersioningBehavior"].CopyFrom(keyword_payload(behavior_name))
        else:
            fields.pop("TemporalWorkflowVersioningBehavior", None)
        s.search_attributes = attributes
        self._history.mutation.dirty = True


def _is_sentinel(value: str) -> bool:
    """`unversioned`, `assigned:<id>` or `pinned:<version>`: the entries BuildIds holds at most
    one of, in front."""
    return value == UNVERSIONED or value.startswith(("assigned:", "pinned"))

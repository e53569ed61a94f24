"""One worker deployment: its versions (registered by the pollers of each build), the routing
config (current and ramping version) and each version's drainage; pure state, serialized as JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from temporalio.api.common.v1 import message_pb2 as common_pb
from temporalio.api.deployment.v1 import message_pb2 as deployment_pb
from temporalio.api.enums.v1 import deployment_pb2, task_queue_pb2

from aion import errors
from aion.common import codec
from aion.common.timeutil import ts
from aion.common.versions import UNVERSIONED, dotted_version
from aion.farmhash import fingerprint32

Status = deployment_pb2.WorkerDeploymentVersionStatus
Drainage = deployment_pb2.VersionDrainageStatus


@dataclass
class Version:
    build_id: str
    create_time_ns: int
    status: int = Status.WORKER_DEPLOYMENT_VERSION_STATUS_INACTIVE
    task_queues: list[list[object]] = field(default_factory=list)  # [name, TaskQueueType]
    drainage: int = Drainage.VERSION_DRAINAGE_STATUS_UNSPECIFIED
    drainage_changed_ns: int = 0
    drainage_checked_ns: int = 0
    routing_changed_ns: int = 0
    current_since_ns: int = 0
    ramping_since_ns: int = 0
    first_activation_ns: int = 0
    last_current_ns: int = 0
    last_deactivation_ns: int = 0
    metadata: dict[str, common_pb.Payload] = field(default_factory=dict)
    last_modifier_identity: str = ""

    def serves(self, task_queue: str, task_type: int) -> bool:
        return [task_queue, task_type] in self.task_queues


@dataclass
class Deployment:
    namespace_id: str
    name: str
    create_time_ns: int
    versions: dict[str, Version] = field(default_factory=dict)  # by build id
    current: str = ""  # build id; "" = unversioned
    ramping: str = ""  # build id; "" with `ramping_set` = ramping to unversioned
    ramping_set: bool = False
    ramp_percentage: float = 0.0
    current_changed_ns: int = 0
    ramping_changed_ns: int = 0
    ramp_percentage_changed_ns: int = 0
    revision: int = 0
    conflict_token: int = 1
    last_modifier_identity: str = ""

    # ---- serialization ---------------------------------------------------------------------
    def to_json(self) -> str:
        return codec.encode(self).decode()

    @staticmethod
    def from_json(text: str) -> Deployment:
        return codec.decode(Deployment, text.encode())

    # ---- registration and routing ----------------------------------------------------------
    def ensure_version(self, build_id: str, now: int) -> Version:
        version = self.versions.get(build_id)
        if version is None:
            version = self.versions[build_id] = Version(build_id, now)
        return version

    def register(self, build_id: str, task_queue: str, task_type: int, now: int) -> None:
        """A poller of `build_id` polled `task_queue`."""
        version = self.ensure_version(build_id, now)
        if not version.serves(task_queue, task_type):
            version.task_queues.append([task_queue, task_type])

    def target(self, workflow_id: str, use_ramping: bool = False) -> str:
        """The build id new work of `workflow_id` goes to ("" = unversioned pollers)."""
        if self.ramping_set:
            if use_ramping or self.ramp_percentage >= 100:
                return self.ramping
            if self.ramp_percentage > 0:
                share = 100.0 * fingerprint32(workflow_id.encode()) / 2**32
                if share <= self.ramp_percentage:
                    return self.ramping
        return self.current

    # ---- routing changes -------------------------------------------------------------------
    def version(self, build_id: str) -> Version:
        found = self.versions.get(build_id)
        if found is None:
            raise errors.NotFound(
                f"build ID '{build_id}' not found in Worker Deployment '{self.name}'"
            )
        return found

    def check_token(self, token: bytes) -> None:
        if token and token != self.token():
            raise errors.FailedPrecondition("conflict token mismatch")

    def token(self) -> bytes:
        return str(self.conflict_token).encode()

    def set_current(self, build_id: str, identity: str, now: int) -> None:
        previous = self.current
        if build_id:
            version = self.version(build_id)
            version.status = Status.WORKER_DEPLOYMENT_VERSION_STATUS_CURRENT
            version.current_since_ns = version.last_current_ns = version.routing_changed_ns = now
            version.first_activation_ns = version.first_activation_ns or now
            _clear_drainage(version)
            if self.ramping_set and self.ramping == build_id:
                self._clear_ramp(now)
        self.current = build_id
        self.current_changed_ns = now
        if previous and previous != build_id:
            self._deactivate(previous, now)
        self._changed(identity)

    def set_ramping(
        self, build_id: str, unversioned: bool, percentage: float, identity: str, now: int
    ) -> None:
        """Ramp `percentage` of new work to `build_id` (or to unversioned pollers)."""
        if build_id and build_id == self.current:
            raise errors.FailedPrecondition(
                f"requested ramping version {self.name}.{build_id} is already current"
            )
        previous = self.ramping if self.ramping_set else ""
        if build_id:
            version = self.version(build_id)
            version.status = Status.WORKER_DEPLOYMENT_VERSION_STATUS_RAMPING
            if previous != build_id:
                version.ramping_since_ns = version.routing_changed_ns = now
                version.first_activation_ns = version.first_activation_ns or now
            _clear_drainage(version)
        if previous != build_id or not self.ramping_set:
            self.ramping_changed_ns = now
        if not self.ramping_set or self.ramp_percentage != percentage:
            self.ramp_percentage_changed_ns = now
        self.ramping, self.ramping_set, self.ramp_percentage = build_id, True, percentage
        if not build_id and not unversioned:
            self._clear_ramp(now)
        if previous and previous != build_id:
            self._deactivate(previous, now)
        self._changed(identity)

    def _clear_ramp(self, now: int) -> None:
        self.ramping, self.ramping_set, self.ramp_percentage = "", False, 0.0
        self.ramping_changed_ns = self.ramp_percentage_changed_ns = now

    def _deactivate(self, build_id: str, now: int) -> None:
        version = self.versions.get(build_id)
        if version is None or build_id in (self.current, self.ramping if self.ramping_set else ""):
            return
        version.status = Status.WORKER_DEPLOYMENT_VERSION_STATUS_DRAINING
        version.drainage = Drainage.VERSION_DRAINAGE_STATUS_DRAINING
        version.drainage_changed_ns = version.drainage_checked_ns = now
        version.last_deactivation_ns = version.routing_changed_ns = now

    def _changed(self, identity: str) -> None:
        self.revision += 1
        self.conflict_token += 1
        self.last_modifier_identity = identity

    def record_drainage(self, build_id: str, drained: bool, now: int) -> None:
        version = self.versions.get(build_id)
        if version is None or version.status != Status.WORKER_DEPLOYMENT_VERSION_STATUS_DRAINING:
            return
        version.drainage_checked_ns = now
        if drained:
            version.status = Status.WORKER_DEPLOYMENT_VERSION_STATUS_DRAINED
            version.drainage = Drainage.VERSION_DRAINAGE_STATUS_DRAINED
            version.drainage_changed_ns = now

    # ---- describing ------------------------------------------------------------------------
    def routing_config(self) -> deployment_pb.RoutingConfig:
        config = deployment_pb.RoutingConfig(
            current_version=self.version_string(self.current),
            revision_number=self.revision,
        )
        if self.current:
            config.current_deployment_version.CopyFrom(self.deployment_version(self.current))
        if self.current_changed_ns:
            config.current_version_changed_time.CopyFrom(ts(self.current_changed_ns))
        if self.ramping_set:
            config.ramping_version = self.version_string(self.ramping)
            config.ramping_version_percentage = self.ramp_percentage
            if self.ramping:
                config.ramping_deployment_version.CopyFrom(self.deployment_version(self.ramping))
        if self.ramping_changed_ns:
            config.ramping_version_changed_time.CopyFrom(ts(self.ramping_changed_ns))
        if self.ramp_percentage_changed_ns:
            config.ramping_version_percentage_changed_time.CopyFrom(
                ts(self.ramp_percentage_changed_ns)
            )
        return config

    def deployment_version(self, build_id: str) -> deployment_pb.WorkerDeploymentVersion:
        return deployment_pb.WorkerDeploymentVersion(deployment_name=self.name, build_id=build_id)

    def version_string(self, build_id: str) -> str:
        """A build of this deployment in the older string form ("" = unversioned)."""
        return dotted_version(self.name, build_id) if build_id else UNVERSIONED

    def summary(
        self, v: Version
    ) -> deployment_pb.WorkerDeploymentInfo.WorkerDeploymentVersionSummary:
        out = deployment_pb.WorkerDeploymentInfo.WorkerDeploymentVersionSummary(
            version=self.version_string(v.build_id),
            deployment_version=self.deployment_version(v.build_id),
            create_time=ts(v.create_time_ns),
            status=v.status,  # type: ignore[arg-type]
        )
        if v.drainage:
            out.drainage_status = v.drainage  # type: ignore[assignment]
            out.drainage_info.CopyFrom(_drainage_info(v))
        _set_times(
            out,
            current_since_time=v.current_since_ns,
            ramping_since_time=v.ramping_since_ns,
            routing_update_time=v.routing_changed_ns,
            first_activation_time=v.first_activation_ns,
            last_current_time=v.last_current_ns,
            last_deactivation_time=v.last_deactivation_ns,
        )
        return out

    def info(self) -> deployment_pb.WorkerDeploymentInfo:
        newest_first = sorted(self.versions.values(), key=lambda v: -v.create_time_ns)
        return deployment_pb.WorkerDeploymentInfo(
            name=self.name,
            create_time=ts(self.create_time_ns),
            routing_config=self.routing_config(),
            version_summaries=[self.summary(v) for v in newest_first],
            last_modifier_identity=self.last_modifier_identity,
            routing_config_update_state=task_queue_pb2.ROUTING_CONFIG_UPDATE_STATE_COMPLETED,
        )

    def version_info(self, v: Version) -> deployment_pb.WorkerDeploymentVersionInfo:
        out = deployment_pb.WorkerDeploymentVersionInfo(
            version=self.version_string(v.build_id),
            deployment_version=self.deployment_version(v.build_id),
            deployment_name=self.name,
            status=v.status,  # type: ignore[arg-type]
            create_time=ts(v.create_time_ns),
            last_modifier_identity=v.last_modifier_identity,
            task_queue_infos=[
                deployment_pb.WorkerDeploymentVersionInfo.VersionTaskQueueInfo(
                    name=str(name),
                    type=task_type,  # type: ignore[arg-type]
                )
                for name, task_type in v.task_queues
            ],
        )
        if self.ramping_set and self.ramping == v.build_id:
            out.ramp_percentage = self.ramp_percentage
        if v.drainage:
            out.drainage_info.CopyFrom(_drainage_info(v))
        _set_times(
            out,
            routing_changed_time=v.routing_changed_ns,
            current_since_time=v.current_since_ns,
            ramping_since_time=v.ramping_since_ns,
            first_activation_time=v.first_activation_ns,
            last_current_time=v.last_current_ns,
            last_deactivation_time=v.last_deactivation_ns,
        )
        for key, payload in v.metadata.items():
            out.metadata.entries[key].CopyFrom(payload)
        return out


def _set_times(message: Any, **times_ns: int) -> None:
    """Set each named timestamp field that has a time (0: never)."""
    for name, at in times_ns.items():
        if at:
            getattr(message, name).CopyFrom(ts(at))


def _clear_drainage(version: Version) -> None:
    version.drainage = Drainage.VERSION_DRAINAGE_STATUS_UNSPECIFIED
    version.drainage_changed_ns = version.drainage_checked_ns = 0


def _drainage_info(v: Version) -> deployment_pb.VersionDrainageInfo:
    return deployment_pb.VersionDrainageInfo(
        status=v.drainage,  # type: ignore[arg-type]
        last_changed_time=ts(v.drainage_changed_ns),
        last_checked_time=ts(v.drainage_checked_ns),
    )


WORKFLOW = task_queue_pb2.TASK_QUEUE_TYPE_WORKFLOW
ACTIVITY = task_queue_pb2.TASK_QUEUE_TYPE_ACTIVITY

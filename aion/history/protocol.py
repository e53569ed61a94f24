"""Protocol messages a worker sends with a workflow task completion: update acceptance,
rejection and response. A PROTOCOL_MESSAGE command places its message among the command events;
messages no command names are applied after all commands, in the order the worker sent them."""

from __future__ import annotations

from temporalio.api.enums.v1 import failed_cause_pb2 as cause_pb
from temporalio.api.protocol.v1 import message_pb2 as protocol_pb
from temporalio.api.update.v1 import message_pb2 as update_pb

from aion.history.commands import CommandError, check_blob_size
from aion.history.mutable_state import MutableState
from aion.history.state.execution import UpdateRecord, WorkflowTaskInfo
from aion.history.state.updates import Update, unprocessed_failure

BAD_MESSAGE = cause_pb.WORKFLOW_TASK_FAILED_CAUSE_BAD_UPDATE_WORKFLOW_EXECUTION_MESSAGE


class Messages:
    """The messages of one workflow task completion, each applied once."""

    def __init__(self, ms: MutableState, messages: list[protocol_pb.Message]) -> None:
        self.ms = ms
        self.pending = {m.id: m for m in messages}

    @property
    def only_rejections(self) -> bool:
        return all(m.body.Is(update_pb.Rejection.DESCRIPTOR) for m in self.pending.values())

    def apply(self, message_id: str) -> None:
        """Apply the message a PROTOCOL_MESSAGE command names."""
        message = self.pending.pop(message_id, None)
        if message is None:
            raise CommandError(
                BAD_MESSAGE, f"ProtocolMessageCommand referenced absent message ID {message_id}"
            )
        self._apply(message)

    def apply_remaining(self) -> None:
        for message_id in list(self.pending):
            self.apply(message_id)

    def reject_unprocessed(self, wt: WorkflowTaskInfo) -> None:
        """Updates this task carried that the worker neither accepted nor rejected."""
        for update in self.ms.updates.admitted():
            if update.sent_stamp == wt.stamp:
                self.ms.updates.reject(update, unprocessed_failure())

    def _apply(self, message: protocol_pb.Message) -> None:
        body = message.body
        check_blob_size(
            self.ms,
            body.ByteSize(),
            BAD_MESSAGE,
            f"Message type {body.TypeName()} exceeds size limit.",
        )
        if body.Is(update_pb.Acceptance.DESCRIPTOR):
            acceptance = update_pb.Acceptance()
            body.Unpack(acceptance)
            update = self._admitted(message.protocol_instance_id, acceptance.accepted_request)
            if update is not None:
                self.ms.updates.accept(update, acceptance)
        elif body.Is(update_pb.Rejection.DESCRIPTOR):
            rejection = update_pb.Rejection()
            body.Unpack(rejection)
            update = self._admitted(message.protocol_instance_id, rejection.rejected_request)
            if update is not None:
                self.ms.updates.reject(update, rejection.failure)
        elif body.Is(update_pb.Response.DESCRIPTOR):
            response = update_pb.Response()
            body.Unpack(response)
            found = self.ms.updates.find(message.protocol_instance_id)
            if not isinstance(found, Update) or not found.is_accepted:
                raise CommandError(
                    BAD_MESSAGE, f"update {message.protocol_instance_id} is not accepted"
                )
            self.ms.updates.complete(found, response)
        else:
            raise CommandError(BAD_MESSAGE, f"unsupported message body {body.TypeName()}")

    def _admitted(self, update_id: str, request: update_pb.Request | None) -> Update | None:
        """The update a worker accepts or rejects; None when it was already decided."""
        found = self.ms.updates.find(update_id)
        if isinstance(found, UpdateRecord) or (isinstance(found, Update) and found.is_accepted):
            return None
        if found is not None:
            return found
        if request is None or not request.HasField("meta"):
            raise CommandError(
                BAD_MESSAGE,
                f"update {update_id} wasn't found on the server. This is most likely a transient"
                " error which will be resolved automatically by retries",
            )
        return self.ms.updates.readmit(update_id, request)

"""NotifierService servicer: proto in, store and outbox calls, proto out."""

from functools import partial

import grpc

from amoroute import paging, tracing, validation
from amoroute.errors import InvalidArgument
from amoroute.timeutil import now, to_timestamp
from amoroute.v1 import notifier_pb2, notifier_pb2_grpc
from notifier_svc.message import render_digest_entry, render_sale_message
from notifier_svc.metrics import count_finished
from notifier_svc.outbox import Outbox
from notifier_svc.settings import CHAT_ID, Settings
from notifier_svc.store import (
    ChatMoveRow,
    Failure,
    NewNotification,
    NotificationRow,
    NotificationStore,
    Status,
)

NO_TOKEN = "TELEGRAM_BOT_TOKEN is not set"

_STATUS = {
    Status.PENDING: notifier_pb2.NOTIFICATION_STATUS_PENDING,
    Status.SENT: notifier_pb2.NOTIFICATION_STATUS_SENT,
    Status.NOT_SENT: notifier_pb2.NOTIFICATION_STATUS_NOT_SENT,
    Status.FAILED: notifier_pb2.NOTIFICATION_STATUS_FAILED,
}
_FAILURE = {
    Failure.NONE: notifier_pb2.NOTIFICATION_FAILURE_UNSPECIFIED,
    Failure.CHAT_UNREACHABLE: notifier_pb2.NOTIFICATION_FAILURE_CHAT_UNREACHABLE,
    Failure.REFUSED: notifier_pb2.NOTIFICATION_FAILURE_REFUSED,
    Failure.GAVE_UP: notifier_pb2.NOTIFICATION_FAILURE_GAVE_UP,
    Failure.NO_CHAT: notifier_pb2.NOTIFICATION_FAILURE_NO_CHAT,
}
_FAILURE_OF = {value: key for key, value in _FAILURE.items()}


def _notification_pb(row: NotificationRow) -> notifier_pb2.Notification:
    return notifier_pb2.Notification(
        lead_id=row.lead_id,
        account_id=row.account_id,
        chat_id=row.chat_id,
        text=row.text,
        status=_STATUS[row.status],
        error=row.error,
        attempts=row.attempts,
        created_at=to_timestamp(row.created_at),
        sent_at=to_timestamp(row.sent_at),
        failure=_FAILURE[row.failure],
        telegram_message_id=row.telegram_message_id or 0,
        moved_from_chat_id=row.moved_from_chat_id or "",
    )


def _chat_move_pb(row: ChatMoveRow) -> notifier_pb2.ChatMove:
    return notifier_pb2.ChatMove(
        old_chat_id=row.old_chat_id,
        new_chat_id=row.new_chat_id,
        current_chat_id=row.current_chat_id,
        moved_at=to_timestamp(row.moved_at),
    )


def _validate(request: notifier_pb2.NotifyRequest) -> None:
    validation.positive("lead_id", request.lead_id)
    validation.not_negative("account_id", request.account_id)
    validation.amount("amount", request.amount)
    validation.text("account_subdomain", request.account_subdomain, max_len=63)
    validation.text("deal_name", request.deal_name)
    validation.text("targetologist", request.targetologist, max_len=200)
    validation.utm_marks("utm", request.utm)
    if request.chat_id and not CHAT_ID.fullmatch(request.chat_id):
        raise InvalidArgument("chat_id", "must be a numeric Telegram chat id or @channelusername")


class NotifierService(notifier_pb2_grpc.NotifierServiceServicer):
    def __init__(self, store: NotificationStore, outbox: Outbox | None, settings: Settings) -> None:
        """`outbox` is None when Telegram is not configured (no bot token)."""
        self.store = store
        self.outbox = outbox
        self.settings = settings
        self.allowed_chats = settings.allowed_chat_ids()

    def Notify(
        self, request: notifier_pb2.NotifyRequest, context: grpc.ServicerContext
    ) -> notifier_pb2.NotifyResponse:
        """Queue the lead's announcement once and return without waiting for Telegram:
        the outbox sends it at once, and retries what Telegram does not take.
        A repeat answers duplicate = true and queues nothing."""
        [response] = self._queue([self._notification(request)])
        return response

    def BatchNotify(
        self, request: notifier_pb2.BatchNotifyRequest, context: grpc.ServicerContext
    ) -> notifier_pb2.BatchNotifyResponse:
        """Queue several announcements, each as Notify would, in one transaction;
        responses in request order (with each stored notification unless view is
        WRITE_VIEW_OUTCOME). A bad request rejects the whole batch."""
        with_notification = validation.with_record("view", request.view)
        items = validation.each_request(request.requests, self._notification)
        return notifier_pb2.BatchNotifyResponse(responses=self._queue(items, with_notification))

    def ListNotifications(
        self, request: notifier_pb2.ListNotificationsRequest, context: grpc.ServicerContext
    ) -> notifier_pb2.ListNotificationsResponse:
        """Notifications newest first, one page at a time; optionally one lead's, or
        those failed one way."""
        validation.not_negative("lead_id", request.lead_id)
        failure = _FAILURE_OF.get(request.failure)
        if failure is None:
            raise InvalidArgument("failure", f"unknown NotificationFailure {request.failure}")
        page, token = paging.fetch_page(
            request,
            lambda limit, after_id: self.store.page(
                limit=limit, after_id=after_id, lead_id=request.lead_id, failure=failure
            ),
        )
        return notifier_pb2.ListNotificationsResponse(
            notifications=[_notification_pb(r) for r in page], next_page_token=token
        )

    def ListChatMoves(
        self, request: notifier_pb2.ListChatMovesRequest, context: grpc.ServicerContext
    ) -> notifier_pb2.ListChatMovesResponse:
        """Chats Telegram moved (groups upgraded to supergroups), newest first, one
        page at a time: each is a routing rule whose telegram_chat_id to update."""
        page, token = paging.fetch_page(
            request, lambda limit, after_id: self.store.moves_page(limit=limit, after_id=after_id)
        )
        return notifier_pb2.ListChatMovesResponse(
            chat_moves=[_chat_move_pb(r) for r in page], next_page_token=token
        )

    def _notification(self, request: notifier_pb2.NotifyRequest) -> NewNotification:
        """The row to store for a valid request: pending and due now when Telegram can
        take it, otherwise kept with the reason it will not be sent."""
        _validate(request)
        # Only a bot can post anywhere; without one nothing leaves, whatever the chat.
        if self.outbox is not None and request.chat_id:
            # A chat Telegram moved an allowed chat to is allowed too, so the rules
            # can name the new id before TELEGRAM_ALLOWED_CHAT_IDS does.
            if request.chat_id not in self.allowed_chats and not self.store.is_moved_to(
                request.chat_id
            ):
                raise InvalidArgument(
                    "chat_id",
                    f"{request.chat_id} is not a chat this notifier posts to: add it to "
                    "TELEGRAM_ALLOWED_CHAT_IDS of notifier_svc if the routing rules name it",
                )
        sale = partial(
            render_sale_message,
            lead_id=request.lead_id,
            amount=request.amount,
            currency=self.settings.amocrm_currency,
            targetologist=request.targetologist,
            utm_source=request.utm.source,
            utm_campaign=request.utm.campaign,
            subdomain=request.account_subdomain or self.settings.amocrm_domain,
        )
        text = sale(deal_name=request.deal_name)
        chat_id = request.chat_id or self.settings.telegram_default_chat_id
        new = partial(
            NewNotification, account_id=request.account_id, lead_id=request.lead_id, text=text
        )
        if self.outbox is None:
            return new(chat_id=chat_id, status=Status.NOT_SENT, error=NO_TOKEN)
        if not chat_id:
            return new(
                chat_id="",
                status=Status.FAILED,
                failure=Failure.NO_CHAT,
                error=f"no Telegram chat configured for targetologist "
                f"{request.targetologist or '(none)'} and no TELEGRAM_DEFAULT_CHAT_ID",
            )
        return new(
            chat_id=chat_id,
            status=Status.PENDING,
            next_attempt_at=now(),
            amount=request.amount,
            # The same sale's lines for a digest: the deal name is left out there.
            digest_entry=render_digest_entry(*sale.args, **sale.keywords),
            traceparent=tracing.traceparent() or None,
        )

    def _queue(
        self, items: list[NewNotification], with_notification: bool = True
    ) -> list[notifier_pb2.NotifyResponse]:
        """Store the items in one transaction and wake the outbox for any new pending row."""
        stored = self.store.create_many(items)
        finished: dict[tuple[Status, Failure], int] = {}
        for row, duplicate in stored:
            if not duplicate and row.status is not Status.PENDING:
                key = (row.status, row.failure)
                finished[key] = finished.get(key, 0) + 1
        count_finished(finished)
        if self.outbox is not None and any(
            not duplicate and row.status is Status.PENDING for row, duplicate in stored
        ):
            self.outbox.wake()
        return [
            notifier_pb2.NotifyResponse(
                notification=_notification_pb(row) if with_notification else None,
                duplicate=duplicate,
            )
            for row, duplicate in stored
        ]

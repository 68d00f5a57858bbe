import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from amoroute.v1 import deal_pb2 as _deal_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class NotificationStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NOTIFICATION_STATUS_UNSPECIFIED: _ClassVar[NotificationStatus]
    NOTIFICATION_STATUS_PENDING: _ClassVar[NotificationStatus]
    NOTIFICATION_STATUS_SENT: _ClassVar[NotificationStatus]
    NOTIFICATION_STATUS_NOT_SENT: _ClassVar[NotificationStatus]
    NOTIFICATION_STATUS_FAILED: _ClassVar[NotificationStatus]

class NotificationFailure(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NOTIFICATION_FAILURE_UNSPECIFIED: _ClassVar[NotificationFailure]
    NOTIFICATION_FAILURE_CHAT_UNREACHABLE: _ClassVar[NotificationFailure]
    NOTIFICATION_FAILURE_REFUSED: _ClassVar[NotificationFailure]
    NOTIFICATION_FAILURE_GAVE_UP: _ClassVar[NotificationFailure]
    NOTIFICATION_FAILURE_NO_CHAT: _ClassVar[NotificationFailure]
NOTIFICATION_STATUS_UNSPECIFIED: NotificationStatus
NOTIFICATION_STATUS_PENDING: NotificationStatus
NOTIFICATION_STATUS_SENT: NotificationStatus
NOTIFICATION_STATUS_NOT_SENT: NotificationStatus
NOTIFICATION_STATUS_FAILED: NotificationStatus
NOTIFICATION_FAILURE_UNSPECIFIED: NotificationFailure
NOTIFICATION_FAILURE_CHAT_UNREACHABLE: NotificationFailure
NOTIFICATION_FAILURE_REFUSED: NotificationFailure
NOTIFICATION_FAILURE_GAVE_UP: NotificationFailure
NOTIFICATION_FAILURE_NO_CHAT: NotificationFailure

class NotifyRequest(_message.Message):
    __slots__ = ("lead_id", "account_id", "account_subdomain", "deal_name", "amount", "targetologist", "utm", "chat_id")
    LEAD_ID_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_SUBDOMAIN_FIELD_NUMBER: _ClassVar[int]
    DEAL_NAME_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    TARGETOLOGIST_FIELD_NUMBER: _ClassVar[int]
    UTM_FIELD_NUMBER: _ClassVar[int]
    CHAT_ID_FIELD_NUMBER: _ClassVar[int]
    lead_id: int
    account_id: int
    account_subdomain: str
    deal_name: str
    amount: int
    targetologist: str
    utm: _deal_pb2.UtmMarks
    chat_id: str
    def __init__(self, lead_id: _Optional[int] = ..., account_id: _Optional[int] = ..., account_subdomain: _Optional[str] = ..., deal_name: _Optional[str] = ..., amount: _Optional[int] = ..., targetologist: _Optional[str] = ..., utm: _Optional[_Union[_deal_pb2.UtmMarks, _Mapping]] = ..., chat_id: _Optional[str] = ...) -> None: ...

class Notification(_message.Message):
    __slots__ = ("lead_id", "account_id", "chat_id", "text", "status", "error", "attempts", "created_at", "sent_at", "failure", "telegram_message_id", "moved_from_chat_id")
    LEAD_ID_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    CHAT_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    SENT_AT_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    TELEGRAM_MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    MOVED_FROM_CHAT_ID_FIELD_NUMBER: _ClassVar[int]
    lead_id: int
    account_id: int
    chat_id: str
    text: str
    status: NotificationStatus
    error: str
    attempts: int
    created_at: _timestamp_pb2.Timestamp
    sent_at: _timestamp_pb2.Timestamp
    failure: NotificationFailure
    telegram_message_id: int
    moved_from_chat_id: str
    def __init__(self, lead_id: _Optional[int] = ..., account_id: _Optional[int] = ..., chat_id: _Optional[str] = ..., text: _Optional[str] = ..., status: _Optional[_Union[NotificationStatus, str]] = ..., error: _Optional[str] = ..., attempts: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., sent_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., failure: _Optional[_Union[NotificationFailure, str]] = ..., telegram_message_id: _Optional[int] = ..., moved_from_chat_id: _Optional[str] = ...) -> None: ...

class NotifyResponse(_message.Message):
    __slots__ = ("notification", "duplicate")
    NOTIFICATION_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    notification: Notification
    duplicate: bool
    def __init__(self, notification: _Optional[_Union[Notification, _Mapping]] = ..., duplicate: _Optional[bool] = ...) -> None: ...

class ListNotificationsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "lead_id", "failure")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    LEAD_ID_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    lead_id: int
    failure: NotificationFailure
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., lead_id: _Optional[int] = ..., failure: _Optional[_Union[NotificationFailure, str]] = ...) -> None: ...

class ListNotificationsResponse(_message.Message):
    __slots__ = ("notifications", "next_page_token")
    NOTIFICATIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    notifications: _containers.RepeatedCompositeFieldContainer[Notification]
    next_page_token: str
    def __init__(self, notifications: _Optional[_Iterable[_Union[Notification, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class BatchNotifyRequest(_message.Message):
    __slots__ = ("requests", "view")
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    VIEW_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[NotifyRequest]
    view: _deal_pb2.WriteView
    def __init__(self, requests: _Optional[_Iterable[_Union[NotifyRequest, _Mapping]]] = ..., view: _Optional[_Union[_deal_pb2.WriteView, str]] = ...) -> None: ...

class BatchNotifyResponse(_message.Message):
    __slots__ = ("responses",)
    RESPONSES_FIELD_NUMBER: _ClassVar[int]
    responses: _containers.RepeatedCompositeFieldContainer[NotifyResponse]
    def __init__(self, responses: _Optional[_Iterable[_Union[NotifyResponse, _Mapping]]] = ...) -> None: ...

class ListChatMovesRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ChatMove(_message.Message):
    __slots__ = ("old_chat_id", "new_chat_id", "current_chat_id", "moved_at")
    OLD_CHAT_ID_FIELD_NUMBER: _ClassVar[int]
    NEW_CHAT_ID_FIELD_NUMBER: _ClassVar[int]
    CURRENT_CHAT_ID_FIELD_NUMBER: _ClassVar[int]
    MOVED_AT_FIELD_NUMBER: _ClassVar[int]
    old_chat_id: str
    new_chat_id: str
    current_chat_id: str
    moved_at: _timestamp_pb2.Timestamp
    def __init__(self, old_chat_id: _Optional[str] = ..., new_chat_id: _Optional[str] = ..., current_chat_id: _Optional[str] = ..., moved_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListChatMovesResponse(_message.Message):
    __slots__ = ("chat_moves", "next_page_token")
    CHAT_MOVES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    chat_moves: _containers.RepeatedCompositeFieldContainer[ChatMove]
    next_page_token: str
    def __init__(self, chat_moves: _Optional[_Iterable[_Union[ChatMove, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

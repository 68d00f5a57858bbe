import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ReversalOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REVERSAL_OUTCOME_UNSPECIFIED: _ClassVar[ReversalOutcome]
    REVERSAL_OUTCOME_REVERSED: _ClassVar[ReversalOutcome]
    REVERSAL_OUTCOME_ALREADY_REVERSED: _ClassVar[ReversalOutcome]
    REVERSAL_OUTCOME_STALE: _ClassVar[ReversalOutcome]
    REVERSAL_OUTCOME_NOT_CREDITED: _ClassVar[ReversalOutcome]

class WriteView(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WRITE_VIEW_UNSPECIFIED: _ClassVar[WriteView]
    WRITE_VIEW_FULL: _ClassVar[WriteView]
    WRITE_VIEW_OUTCOME: _ClassVar[WriteView]
REVERSAL_OUTCOME_UNSPECIFIED: ReversalOutcome
REVERSAL_OUTCOME_REVERSED: ReversalOutcome
REVERSAL_OUTCOME_ALREADY_REVERSED: ReversalOutcome
REVERSAL_OUTCOME_STALE: ReversalOutcome
REVERSAL_OUTCOME_NOT_CREDITED: ReversalOutcome
WRITE_VIEW_UNSPECIFIED: WriteView
WRITE_VIEW_FULL: WriteView
WRITE_VIEW_OUTCOME: WriteView

class CustomFieldValue(_message.Message):
    __slots__ = ("value", "enum_id")
    VALUE_FIELD_NUMBER: _ClassVar[int]
    ENUM_ID_FIELD_NUMBER: _ClassVar[int]
    value: str
    enum_id: int
    def __init__(self, value: _Optional[str] = ..., enum_id: _Optional[int] = ...) -> None: ...

class CustomField(_message.Message):
    __slots__ = ("id", "name", "code", "values")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    id: int
    name: str
    code: str
    values: _containers.RepeatedCompositeFieldContainer[CustomFieldValue]
    def __init__(self, id: _Optional[int] = ..., name: _Optional[str] = ..., code: _Optional[str] = ..., values: _Optional[_Iterable[_Union[CustomFieldValue, _Mapping]]] = ...) -> None: ...

class Tag(_message.Message):
    __slots__ = ("id", "name")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    id: int
    name: str
    def __init__(self, id: _Optional[int] = ..., name: _Optional[str] = ...) -> None: ...

class Deal(_message.Message):
    __slots__ = ("lead_id", "name", "status_id", "old_status_id", "pipeline_id", "old_pipeline_id", "price", "account_id", "account_subdomain", "created_at", "updated_at", "responsible_user_id", "custom_fields", "tags", "event")
    LEAD_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATUS_ID_FIELD_NUMBER: _ClassVar[int]
    OLD_STATUS_ID_FIELD_NUMBER: _ClassVar[int]
    PIPELINE_ID_FIELD_NUMBER: _ClassVar[int]
    OLD_PIPELINE_ID_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_SUBDOMAIN_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    RESPONSIBLE_USER_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOM_FIELDS_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    lead_id: int
    name: str
    status_id: int
    old_status_id: int
    pipeline_id: int
    old_pipeline_id: int
    price: int
    account_id: int
    account_subdomain: str
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    responsible_user_id: int
    custom_fields: _containers.RepeatedCompositeFieldContainer[CustomField]
    tags: _containers.RepeatedCompositeFieldContainer[Tag]
    event: str
    def __init__(self, lead_id: _Optional[int] = ..., name: _Optional[str] = ..., status_id: _Optional[int] = ..., old_status_id: _Optional[int] = ..., pipeline_id: _Optional[int] = ..., old_pipeline_id: _Optional[int] = ..., price: _Optional[int] = ..., account_id: _Optional[int] = ..., account_subdomain: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., responsible_user_id: _Optional[int] = ..., custom_fields: _Optional[_Iterable[_Union[CustomField, _Mapping]]] = ..., tags: _Optional[_Iterable[_Union[Tag, _Mapping]]] = ..., event: _Optional[str] = ...) -> None: ...

class UtmMarks(_message.Message):
    __slots__ = ("source", "medium", "campaign", "content", "term")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    MEDIUM_FIELD_NUMBER: _ClassVar[int]
    CAMPAIGN_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    source: str
    medium: str
    campaign: str
    content: str
    term: str
    def __init__(self, source: _Optional[str] = ..., medium: _Optional[str] = ..., campaign: _Optional[str] = ..., content: _Optional[str] = ..., term: _Optional[str] = ...) -> None: ...

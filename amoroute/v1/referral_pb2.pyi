import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from amoroute.v1 import deal_pb2 as _deal_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Conversion(_message.Message):
    __slots__ = ("lead_id", "account_id", "referral_code", "amount", "deal_name", "won_at", "utm", "partner_registered", "recorded_at", "reversed_at", "reversal_reason", "reattributed_at")
    LEAD_ID_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    REFERRAL_CODE_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    DEAL_NAME_FIELD_NUMBER: _ClassVar[int]
    WON_AT_FIELD_NUMBER: _ClassVar[int]
    UTM_FIELD_NUMBER: _ClassVar[int]
    PARTNER_REGISTERED_FIELD_NUMBER: _ClassVar[int]
    RECORDED_AT_FIELD_NUMBER: _ClassVar[int]
    REVERSED_AT_FIELD_NUMBER: _ClassVar[int]
    REVERSAL_REASON_FIELD_NUMBER: _ClassVar[int]
    REATTRIBUTED_AT_FIELD_NUMBER: _ClassVar[int]
    lead_id: int
    account_id: int
    referral_code: str
    amount: int
    deal_name: str
    won_at: _timestamp_pb2.Timestamp
    utm: _deal_pb2.UtmMarks
    partner_registered: bool
    recorded_at: _timestamp_pb2.Timestamp
    reversed_at: _timestamp_pb2.Timestamp
    reversal_reason: str
    reattributed_at: _timestamp_pb2.Timestamp
    def __init__(self, lead_id: _Optional[int] = ..., account_id: _Optional[int] = ..., referral_code: _Optional[str] = ..., amount: _Optional[int] = ..., deal_name: _Optional[str] = ..., won_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., utm: _Optional[_Union[_deal_pb2.UtmMarks, _Mapping]] = ..., partner_registered: _Optional[bool] = ..., recorded_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reversed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reversal_reason: _Optional[str] = ..., reattributed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RecordConversionRequest(_message.Message):
    __slots__ = ("conversion", "reattribute")
    CONVERSION_FIELD_NUMBER: _ClassVar[int]
    REATTRIBUTE_FIELD_NUMBER: _ClassVar[int]
    conversion: Conversion
    reattribute: bool
    def __init__(self, conversion: _Optional[_Union[Conversion, _Mapping]] = ..., reattribute: _Optional[bool] = ...) -> None: ...

class RecordConversionResponse(_message.Message):
    __slots__ = ("conversion", "duplicate", "superseded", "reattributed", "previous_referral_code")
    CONVERSION_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    SUPERSEDED_FIELD_NUMBER: _ClassVar[int]
    REATTRIBUTED_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_REFERRAL_CODE_FIELD_NUMBER: _ClassVar[int]
    conversion: Conversion
    duplicate: bool
    superseded: bool
    reattributed: bool
    previous_referral_code: str
    def __init__(self, conversion: _Optional[_Union[Conversion, _Mapping]] = ..., duplicate: _Optional[bool] = ..., superseded: _Optional[bool] = ..., reattributed: _Optional[bool] = ..., previous_referral_code: _Optional[str] = ...) -> None: ...

class ReverseConversionRequest(_message.Message):
    __slots__ = ("lead_id", "account_id", "reversed_at", "reason")
    LEAD_ID_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    REVERSED_AT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    lead_id: int
    account_id: int
    reversed_at: _timestamp_pb2.Timestamp
    reason: str
    def __init__(self, lead_id: _Optional[int] = ..., account_id: _Optional[int] = ..., reversed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reason: _Optional[str] = ...) -> None: ...

class ReverseConversionResponse(_message.Message):
    __slots__ = ("outcome", "conversion")
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    CONVERSION_FIELD_NUMBER: _ClassVar[int]
    outcome: _deal_pb2.ReversalOutcome
    conversion: Conversion
    def __init__(self, outcome: _Optional[_Union[_deal_pb2.ReversalOutcome, str]] = ..., conversion: _Optional[_Union[Conversion, _Mapping]] = ...) -> None: ...

class WithdrawConversionRequest(_message.Message):
    __slots__ = ("lead_id", "account_id", "reason")
    LEAD_ID_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    lead_id: int
    account_id: int
    reason: str
    def __init__(self, lead_id: _Optional[int] = ..., account_id: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class WithdrawConversionResponse(_message.Message):
    __slots__ = ("outcome", "conversion")
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    CONVERSION_FIELD_NUMBER: _ClassVar[int]
    outcome: _deal_pb2.ReversalOutcome
    conversion: Conversion
    def __init__(self, outcome: _Optional[_Union[_deal_pb2.ReversalOutcome, str]] = ..., conversion: _Optional[_Union[Conversion, _Mapping]] = ...) -> None: ...

class ListConversionsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "lead_id", "referral_code", "won_from", "won_to")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    LEAD_ID_FIELD_NUMBER: _ClassVar[int]
    REFERRAL_CODE_FIELD_NUMBER: _ClassVar[int]
    WON_FROM_FIELD_NUMBER: _ClassVar[int]
    WON_TO_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    lead_id: int
    referral_code: str
    won_from: _timestamp_pb2.Timestamp
    won_to: _timestamp_pb2.Timestamp
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., lead_id: _Optional[int] = ..., referral_code: _Optional[str] = ..., won_from: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., won_to: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListConversionsResponse(_message.Message):
    __slots__ = ("conversions", "next_page_token")
    CONVERSIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    conversions: _containers.RepeatedCompositeFieldContainer[Conversion]
    next_page_token: str
    def __init__(self, conversions: _Optional[_Iterable[_Union[Conversion, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetReferrerStatsRequest(_message.Message):
    __slots__ = ("won_from", "won_to", "referral_code")
    WON_FROM_FIELD_NUMBER: _ClassVar[int]
    WON_TO_FIELD_NUMBER: _ClassVar[int]
    REFERRAL_CODE_FIELD_NUMBER: _ClassVar[int]
    won_from: _timestamp_pb2.Timestamp
    won_to: _timestamp_pb2.Timestamp
    referral_code: str
    def __init__(self, won_from: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., won_to: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., referral_code: _Optional[str] = ...) -> None: ...

class ReferrerStats(_message.Message):
    __slots__ = ("referral_code", "conversions", "amount_total", "partner_registered", "partner_name", "commission_bp", "commission_total", "reversed_conversions", "reversed_amount")
    REFERRAL_CODE_FIELD_NUMBER: _ClassVar[int]
    CONVERSIONS_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_TOTAL_FIELD_NUMBER: _ClassVar[int]
    PARTNER_REGISTERED_FIELD_NUMBER: _ClassVar[int]
    PARTNER_NAME_FIELD_NUMBER: _ClassVar[int]
    COMMISSION_BP_FIELD_NUMBER: _ClassVar[int]
    COMMISSION_TOTAL_FIELD_NUMBER: _ClassVar[int]
    REVERSED_CONVERSIONS_FIELD_NUMBER: _ClassVar[int]
    REVERSED_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    referral_code: str
    conversions: int
    amount_total: int
    partner_registered: bool
    partner_name: str
    commission_bp: int
    commission_total: int
    reversed_conversions: int
    reversed_amount: int
    def __init__(self, referral_code: _Optional[str] = ..., conversions: _Optional[int] = ..., amount_total: _Optional[int] = ..., partner_registered: _Optional[bool] = ..., partner_name: _Optional[str] = ..., commission_bp: _Optional[int] = ..., commission_total: _Optional[int] = ..., reversed_conversions: _Optional[int] = ..., reversed_amount: _Optional[int] = ...) -> None: ...

class GetReferrerStatsResponse(_message.Message):
    __slots__ = ("stats",)
    STATS_FIELD_NUMBER: _ClassVar[int]
    stats: _containers.RepeatedCompositeFieldContainer[ReferrerStats]
    def __init__(self, stats: _Optional[_Iterable[_Union[ReferrerStats, _Mapping]]] = ...) -> None: ...

class Partner(_message.Message):
    __slots__ = ("referral_code", "name", "commission_bp")
    REFERRAL_CODE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    COMMISSION_BP_FIELD_NUMBER: _ClassVar[int]
    referral_code: str
    name: str
    commission_bp: int
    def __init__(self, referral_code: _Optional[str] = ..., name: _Optional[str] = ..., commission_bp: _Optional[int] = ...) -> None: ...

class UpsertPartnerRequest(_message.Message):
    __slots__ = ("partner",)
    PARTNER_FIELD_NUMBER: _ClassVar[int]
    partner: Partner
    def __init__(self, partner: _Optional[_Union[Partner, _Mapping]] = ...) -> None: ...

class UpsertPartnerResponse(_message.Message):
    __slots__ = ("partner", "created")
    PARTNER_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    partner: Partner
    created: bool
    def __init__(self, partner: _Optional[_Union[Partner, _Mapping]] = ..., created: _Optional[bool] = ...) -> None: ...

class BatchRecordConversionsRequest(_message.Message):
    __slots__ = ("requests", "view")
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    VIEW_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[RecordConversionRequest]
    view: _deal_pb2.WriteView
    def __init__(self, requests: _Optional[_Iterable[_Union[RecordConversionRequest, _Mapping]]] = ..., view: _Optional[_Union[_deal_pb2.WriteView, str]] = ...) -> None: ...

class BatchRecordConversionsResponse(_message.Message):
    __slots__ = ("responses",)
    RESPONSES_FIELD_NUMBER: _ClassVar[int]
    responses: _containers.RepeatedCompositeFieldContainer[RecordConversionResponse]
    def __init__(self, responses: _Optional[_Iterable[_Union[RecordConversionResponse, _Mapping]]] = ...) -> None: ...

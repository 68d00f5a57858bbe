import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from amoroute.v1 import deal_pb2 as _deal_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Sale(_message.Message):
    __slots__ = ("lead_id", "account_id", "targetologist", "utm", "amount", "deal_name", "won_at", "recorded_at", "reversed_at", "reversal_reason", "reattributed_at")
    LEAD_ID_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    TARGETOLOGIST_FIELD_NUMBER: _ClassVar[int]
    UTM_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    DEAL_NAME_FIELD_NUMBER: _ClassVar[int]
    WON_AT_FIELD_NUMBER: _ClassVar[int]
    RECORDED_AT_FIELD_NUMBER: _ClassVar[int]
    REVERSED_AT_FIELD_NUMBER: _ClassVar[int]
    REVERSAL_REASON_FIELD_NUMBER: _ClassVar[int]
    REATTRIBUTED_AT_FIELD_NUMBER: _ClassVar[int]
    lead_id: int
    account_id: int
    targetologist: str
    utm: _deal_pb2.UtmMarks
    amount: int
    deal_name: str
    won_at: _timestamp_pb2.Timestamp
    recorded_at: _timestamp_pb2.Timestamp
    reversed_at: _timestamp_pb2.Timestamp
    reversal_reason: str
    reattributed_at: _timestamp_pb2.Timestamp
    def __init__(self, lead_id: _Optional[int] = ..., account_id: _Optional[int] = ..., targetologist: _Optional[str] = ..., utm: _Optional[_Union[_deal_pb2.UtmMarks, _Mapping]] = ..., amount: _Optional[int] = ..., deal_name: _Optional[str] = ..., won_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., recorded_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reversed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reversal_reason: _Optional[str] = ..., reattributed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RecordSaleRequest(_message.Message):
    __slots__ = ("sale", "reattribute")
    SALE_FIELD_NUMBER: _ClassVar[int]
    REATTRIBUTE_FIELD_NUMBER: _ClassVar[int]
    sale: Sale
    reattribute: bool
    def __init__(self, sale: _Optional[_Union[Sale, _Mapping]] = ..., reattribute: _Optional[bool] = ...) -> None: ...

class RecordSaleResponse(_message.Message):
    __slots__ = ("sale", "duplicate", "superseded", "reattributed", "previous_targetologist")
    SALE_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    SUPERSEDED_FIELD_NUMBER: _ClassVar[int]
    REATTRIBUTED_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_TARGETOLOGIST_FIELD_NUMBER: _ClassVar[int]
    sale: Sale
    duplicate: bool
    superseded: bool
    reattributed: bool
    previous_targetologist: str
    def __init__(self, sale: _Optional[_Union[Sale, _Mapping]] = ..., duplicate: _Optional[bool] = ..., superseded: _Optional[bool] = ..., reattributed: _Optional[bool] = ..., previous_targetologist: _Optional[str] = ...) -> None: ...

class ReverseSaleRequest(_message.Message):
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

class ReverseSaleResponse(_message.Message):
    __slots__ = ("outcome", "sale")
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    SALE_FIELD_NUMBER: _ClassVar[int]
    outcome: _deal_pb2.ReversalOutcome
    sale: Sale
    def __init__(self, outcome: _Optional[_Union[_deal_pb2.ReversalOutcome, str]] = ..., sale: _Optional[_Union[Sale, _Mapping]] = ...) -> None: ...

class WithdrawSaleRequest(_message.Message):
    __slots__ = ("lead_id", "account_id", "reason")
    LEAD_ID_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    lead_id: int
    account_id: int
    reason: str
    def __init__(self, lead_id: _Optional[int] = ..., account_id: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class WithdrawSaleResponse(_message.Message):
    __slots__ = ("outcome", "sale")
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    SALE_FIELD_NUMBER: _ClassVar[int]
    outcome: _deal_pb2.ReversalOutcome
    sale: Sale
    def __init__(self, outcome: _Optional[_Union[_deal_pb2.ReversalOutcome, str]] = ..., sale: _Optional[_Union[Sale, _Mapping]] = ...) -> None: ...

class ListSalesRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "lead_id", "targetologist", "won_from", "won_to")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    LEAD_ID_FIELD_NUMBER: _ClassVar[int]
    TARGETOLOGIST_FIELD_NUMBER: _ClassVar[int]
    WON_FROM_FIELD_NUMBER: _ClassVar[int]
    WON_TO_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    lead_id: int
    targetologist: str
    won_from: _timestamp_pb2.Timestamp
    won_to: _timestamp_pb2.Timestamp
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., lead_id: _Optional[int] = ..., targetologist: _Optional[str] = ..., won_from: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., won_to: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListSalesResponse(_message.Message):
    __slots__ = ("sales", "next_page_token")
    SALES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    sales: _containers.RepeatedCompositeFieldContainer[Sale]
    next_page_token: str
    def __init__(self, sales: _Optional[_Iterable[_Union[Sale, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetTargetologistStatsRequest(_message.Message):
    __slots__ = ("won_from", "won_to", "targetologist")
    WON_FROM_FIELD_NUMBER: _ClassVar[int]
    WON_TO_FIELD_NUMBER: _ClassVar[int]
    TARGETOLOGIST_FIELD_NUMBER: _ClassVar[int]
    won_from: _timestamp_pb2.Timestamp
    won_to: _timestamp_pb2.Timestamp
    targetologist: str
    def __init__(self, won_from: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., won_to: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., targetologist: _Optional[str] = ...) -> None: ...

class TargetologistStats(_message.Message):
    __slots__ = ("targetologist", "sales", "revenue", "reversed_sales", "reversed_revenue")
    TARGETOLOGIST_FIELD_NUMBER: _ClassVar[int]
    SALES_FIELD_NUMBER: _ClassVar[int]
    REVENUE_FIELD_NUMBER: _ClassVar[int]
    REVERSED_SALES_FIELD_NUMBER: _ClassVar[int]
    REVERSED_REVENUE_FIELD_NUMBER: _ClassVar[int]
    targetologist: str
    sales: int
    revenue: int
    reversed_sales: int
    reversed_revenue: int
    def __init__(self, targetologist: _Optional[str] = ..., sales: _Optional[int] = ..., revenue: _Optional[int] = ..., reversed_sales: _Optional[int] = ..., reversed_revenue: _Optional[int] = ...) -> None: ...

class GetTargetologistStatsResponse(_message.Message):
    __slots__ = ("stats",)
    STATS_FIELD_NUMBER: _ClassVar[int]
    stats: _containers.RepeatedCompositeFieldContainer[TargetologistStats]
    def __init__(self, stats: _Optional[_Iterable[_Union[TargetologistStats, _Mapping]]] = ...) -> None: ...

class BatchRecordSalesRequest(_message.Message):
    __slots__ = ("requests", "view")
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    VIEW_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[RecordSaleRequest]
    view: _deal_pb2.WriteView
    def __init__(self, requests: _Optional[_Iterable[_Union[RecordSaleRequest, _Mapping]]] = ..., view: _Optional[_Union[_deal_pb2.WriteView, str]] = ...) -> None: ...

class BatchRecordSalesResponse(_message.Message):
    __slots__ = ("responses",)
    RESPONSES_FIELD_NUMBER: _ClassVar[int]
    responses: _containers.RepeatedCompositeFieldContainer[RecordSaleResponse]
    def __init__(self, responses: _Optional[_Iterable[_Union[RecordSaleResponse, _Mapping]]] = ...) -> None: ...

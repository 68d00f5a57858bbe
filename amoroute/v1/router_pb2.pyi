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

class RoutingDecision(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROUTING_DECISION_UNSPECIFIED: _ClassVar[RoutingDecision]
    ROUTING_DECISION_REFERRAL: _ClassVar[RoutingDecision]
    ROUTING_DECISION_TRAFFIC: _ClassVar[RoutingDecision]
    ROUTING_DECISION_BOTH: _ClassVar[RoutingDecision]
    ROUTING_DECISION_UNKNOWN: _ClassVar[RoutingDecision]
    ROUTING_DECISION_IGNORED: _ClassVar[RoutingDecision]

class ProcessingStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PROCESSING_STATUS_UNSPECIFIED: _ClassVar[ProcessingStatus]
    PROCESSING_STATUS_SUCCESS: _ClassVar[ProcessingStatus]
    PROCESSING_STATUS_PARTIAL: _ClassVar[ProcessingStatus]
    PROCESSING_STATUS_ERROR: _ClassVar[ProcessingStatus]

class LegOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LEG_OUTCOME_UNSPECIFIED: _ClassVar[LegOutcome]
    LEG_OUTCOME_RECORDED: _ClassVar[LegOutcome]
    LEG_OUTCOME_DUPLICATE: _ClassVar[LegOutcome]
    LEG_OUTCOME_FAILED: _ClassVar[LegOutcome]
    LEG_OUTCOME_SUPERSEDED: _ClassVar[LegOutcome]
    LEG_OUTCOME_REVERSED: _ClassVar[LegOutcome]
    LEG_OUTCOME_REATTRIBUTED: _ClassVar[LegOutcome]
    LEG_OUTCOME_WITHDRAWN: _ClassVar[LegOutcome]

class RulesSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RULES_SOURCE_UNSPECIFIED: _ClassVar[RulesSource]
    RULES_SOURCE_DATABASE: _ClassVar[RulesSource]
    RULES_SOURCE_FILE: _ClassVar[RulesSource]

class SuggestionKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SUGGESTION_KIND_UNSPECIFIED: _ClassVar[SuggestionKind]
    SUGGESTION_KIND_TARGETOLOGIST: _ClassVar[SuggestionKind]
    SUGGESTION_KIND_REFERRAL: _ClassVar[SuggestionKind]
ROUTING_DECISION_UNSPECIFIED: RoutingDecision
ROUTING_DECISION_REFERRAL: RoutingDecision
ROUTING_DECISION_TRAFFIC: RoutingDecision
ROUTING_DECISION_BOTH: RoutingDecision
ROUTING_DECISION_UNKNOWN: RoutingDecision
ROUTING_DECISION_IGNORED: RoutingDecision
PROCESSING_STATUS_UNSPECIFIED: ProcessingStatus
PROCESSING_STATUS_SUCCESS: ProcessingStatus
PROCESSING_STATUS_PARTIAL: ProcessingStatus
PROCESSING_STATUS_ERROR: ProcessingStatus
LEG_OUTCOME_UNSPECIFIED: LegOutcome
LEG_OUTCOME_RECORDED: LegOutcome
LEG_OUTCOME_DUPLICATE: LegOutcome
LEG_OUTCOME_FAILED: LegOutcome
LEG_OUTCOME_SUPERSEDED: LegOutcome
LEG_OUTCOME_REVERSED: LegOutcome
LEG_OUTCOME_REATTRIBUTED: LegOutcome
LEG_OUTCOME_WITHDRAWN: LegOutcome
RULES_SOURCE_UNSPECIFIED: RulesSource
RULES_SOURCE_DATABASE: RulesSource
RULES_SOURCE_FILE: RulesSource
SUGGESTION_KIND_UNSPECIFIED: SuggestionKind
SUGGESTION_KIND_TARGETOLOGIST: SuggestionKind
SUGGESTION_KIND_REFERRAL: SuggestionKind

class LegResult(_message.Message):
    __slots__ = ("leg", "outcome", "error")
    LEG_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    leg: str
    outcome: LegOutcome
    error: str
    def __init__(self, leg: _Optional[str] = ..., outcome: _Optional[_Union[LegOutcome, str]] = ..., error: _Optional[str] = ...) -> None: ...

class Route(_message.Message):
    __slots__ = ("decision", "utm", "referral_code", "targetologist", "telegram_chat_id", "reason", "reversal", "needs_lead_data")
    DECISION_FIELD_NUMBER: _ClassVar[int]
    UTM_FIELD_NUMBER: _ClassVar[int]
    REFERRAL_CODE_FIELD_NUMBER: _ClassVar[int]
    TARGETOLOGIST_FIELD_NUMBER: _ClassVar[int]
    TELEGRAM_CHAT_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REVERSAL_FIELD_NUMBER: _ClassVar[int]
    NEEDS_LEAD_DATA_FIELD_NUMBER: _ClassVar[int]
    decision: RoutingDecision
    utm: _deal_pb2.UtmMarks
    referral_code: str
    targetologist: str
    telegram_chat_id: str
    reason: str
    reversal: bool
    needs_lead_data: bool
    def __init__(self, decision: _Optional[_Union[RoutingDecision, str]] = ..., utm: _Optional[_Union[_deal_pb2.UtmMarks, _Mapping]] = ..., referral_code: _Optional[str] = ..., targetologist: _Optional[str] = ..., telegram_chat_id: _Optional[str] = ..., reason: _Optional[str] = ..., reversal: _Optional[bool] = ..., needs_lead_data: _Optional[bool] = ...) -> None: ...

class RouteDealRequest(_message.Message):
    __slots__ = ("deal", "skip_legs", "request_id", "reattribution", "announce")
    DEAL_FIELD_NUMBER: _ClassVar[int]
    SKIP_LEGS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    REATTRIBUTION_FIELD_NUMBER: _ClassVar[int]
    ANNOUNCE_FIELD_NUMBER: _ClassVar[int]
    deal: _deal_pb2.Deal
    skip_legs: _containers.RepeatedScalarFieldContainer[str]
    request_id: str
    reattribution: bool
    announce: bool
    def __init__(self, deal: _Optional[_Union[_deal_pb2.Deal, _Mapping]] = ..., skip_legs: _Optional[_Iterable[str]] = ..., request_id: _Optional[str] = ..., reattribution: _Optional[bool] = ..., announce: _Optional[bool] = ...) -> None: ...

class RouteDealResponse(_message.Message):
    __slots__ = ("route", "status", "legs")
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    LEGS_FIELD_NUMBER: _ClassVar[int]
    route: Route
    status: ProcessingStatus
    legs: _containers.RepeatedCompositeFieldContainer[LegResult]
    def __init__(self, route: _Optional[_Union[Route, _Mapping]] = ..., status: _Optional[_Union[ProcessingStatus, str]] = ..., legs: _Optional[_Iterable[_Union[LegResult, _Mapping]]] = ...) -> None: ...

class ExplainRouteRequest(_message.Message):
    __slots__ = ("deal", "candidate_rules_yaml")
    DEAL_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_RULES_YAML_FIELD_NUMBER: _ClassVar[int]
    deal: _deal_pb2.Deal
    candidate_rules_yaml: str
    def __init__(self, deal: _Optional[_Union[_deal_pb2.Deal, _Mapping]] = ..., candidate_rules_yaml: _Optional[str] = ...) -> None: ...

class ExplainRouteResponse(_message.Message):
    __slots__ = ("route",)
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    route: Route
    def __init__(self, route: _Optional[_Union[Route, _Mapping]] = ...) -> None: ...

class BatchExplainRoutesRequest(_message.Message):
    __slots__ = ("deals", "candidate_rules_yaml")
    DEALS_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_RULES_YAML_FIELD_NUMBER: _ClassVar[int]
    deals: _containers.RepeatedCompositeFieldContainer[_deal_pb2.Deal]
    candidate_rules_yaml: str
    def __init__(self, deals: _Optional[_Iterable[_Union[_deal_pb2.Deal, _Mapping]]] = ..., candidate_rules_yaml: _Optional[str] = ...) -> None: ...

class ExplainedRoute(_message.Message):
    __slots__ = ("current", "candidate")
    CURRENT_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_FIELD_NUMBER: _ClassVar[int]
    current: Route
    candidate: Route
    def __init__(self, current: _Optional[_Union[Route, _Mapping]] = ..., candidate: _Optional[_Union[Route, _Mapping]] = ...) -> None: ...

class BatchExplainRoutesResponse(_message.Message):
    __slots__ = ("results", "rules_version")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    RULES_VERSION_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[ExplainedRoute]
    rules_version: int
    def __init__(self, results: _Optional[_Iterable[_Union[ExplainedRoute, _Mapping]]] = ..., rules_version: _Optional[int] = ...) -> None: ...

class DescribeRulesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DescribeRulesResponse(_message.Message):
    __slots__ = ("pipeline_ids", "won_status_ids", "referral_prefix", "targetologists", "path", "loaded_at", "version")
    PIPELINE_IDS_FIELD_NUMBER: _ClassVar[int]
    WON_STATUS_IDS_FIELD_NUMBER: _ClassVar[int]
    REFERRAL_PREFIX_FIELD_NUMBER: _ClassVar[int]
    TARGETOLOGISTS_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    LOADED_AT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    pipeline_ids: _containers.RepeatedScalarFieldContainer[int]
    won_status_ids: _containers.RepeatedScalarFieldContainer[int]
    referral_prefix: str
    targetologists: _containers.RepeatedScalarFieldContainer[str]
    path: str
    loaded_at: _timestamp_pb2.Timestamp
    version: int
    def __init__(self, pipeline_ids: _Optional[_Iterable[int]] = ..., won_status_ids: _Optional[_Iterable[int]] = ..., referral_prefix: _Optional[str] = ..., targetologists: _Optional[_Iterable[str]] = ..., path: _Optional[str] = ..., loaded_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., version: _Optional[int] = ...) -> None: ...

class RulesVersion(_message.Message):
    __slots__ = ("version", "yaml", "json", "created_at", "author", "comment", "diff_to_previous")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    YAML_FIELD_NUMBER: _ClassVar[int]
    JSON_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    DIFF_TO_PREVIOUS_FIELD_NUMBER: _ClassVar[int]
    version: int
    yaml: str
    json: str
    created_at: _timestamp_pb2.Timestamp
    author: str
    comment: str
    diff_to_previous: str
    def __init__(self, version: _Optional[int] = ..., yaml: _Optional[str] = ..., json: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., author: _Optional[str] = ..., comment: _Optional[str] = ..., diff_to_previous: _Optional[str] = ...) -> None: ...

class GetRulesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetRulesResponse(_message.Message):
    __slots__ = ("current", "source", "path")
    CURRENT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    current: RulesVersion
    source: RulesSource
    path: str
    def __init__(self, current: _Optional[_Union[RulesVersion, _Mapping]] = ..., source: _Optional[_Union[RulesSource, str]] = ..., path: _Optional[str] = ...) -> None: ...

class ListRulesVersionsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListRulesVersionsResponse(_message.Message):
    __slots__ = ("versions", "next_page_token")
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    versions: _containers.RepeatedCompositeFieldContainer[RulesVersion]
    next_page_token: str
    def __init__(self, versions: _Optional[_Iterable[_Union[RulesVersion, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateRulesRequest(_message.Message):
    __slots__ = ("yaml", "expected_version", "author", "comment")
    YAML_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    yaml: str
    expected_version: int
    author: str
    comment: str
    def __init__(self, yaml: _Optional[str] = ..., expected_version: _Optional[int] = ..., author: _Optional[str] = ..., comment: _Optional[str] = ...) -> None: ...

class UpdateRulesResponse(_message.Message):
    __slots__ = ("version",)
    VERSION_FIELD_NUMBER: _ClassVar[int]
    version: RulesVersion
    def __init__(self, version: _Optional[_Union[RulesVersion, _Mapping]] = ...) -> None: ...

class BatchRouteDealsRequest(_message.Message):
    __slots__ = ("requests",)
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[RouteDealRequest]
    def __init__(self, requests: _Optional[_Iterable[_Union[RouteDealRequest, _Mapping]]] = ...) -> None: ...

class RouteDealResult(_message.Message):
    __slots__ = ("response", "invalid_argument")
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    INVALID_ARGUMENT_FIELD_NUMBER: _ClassVar[int]
    response: RouteDealResponse
    invalid_argument: str
    def __init__(self, response: _Optional[_Union[RouteDealResponse, _Mapping]] = ..., invalid_argument: _Optional[str] = ...) -> None: ...

class BatchRouteDealsResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[RouteDealResult]
    def __init__(self, results: _Optional[_Iterable[_Union[RouteDealResult, _Mapping]]] = ...) -> None: ...

class SuggestOwnersRequest(_message.Message):
    __slots__ = ("groups", "known_referral_codes", "base_rules_yaml")
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    KNOWN_REFERRAL_CODES_FIELD_NUMBER: _ClassVar[int]
    BASE_RULES_YAML_FIELD_NUMBER: _ClassVar[int]
    groups: _containers.RepeatedCompositeFieldContainer[UtmGroup]
    known_referral_codes: _containers.RepeatedScalarFieldContainer[str]
    base_rules_yaml: str
    def __init__(self, groups: _Optional[_Iterable[_Union[UtmGroup, _Mapping]]] = ..., known_referral_codes: _Optional[_Iterable[str]] = ..., base_rules_yaml: _Optional[str] = ...) -> None: ...

class UtmGroup(_message.Message):
    __slots__ = ("marks",)
    MARKS_FIELD_NUMBER: _ClassVar[int]
    marks: _containers.RepeatedCompositeFieldContainer[_deal_pb2.UtmMarks]
    def __init__(self, marks: _Optional[_Iterable[_Union[_deal_pb2.UtmMarks, _Mapping]]] = ...) -> None: ...

class RuleChange(_message.Message):
    __slots__ = ("add_pattern", "add_referral_alias")
    ADD_PATTERN_FIELD_NUMBER: _ClassVar[int]
    ADD_REFERRAL_ALIAS_FIELD_NUMBER: _ClassVar[int]
    add_pattern: AddPattern
    add_referral_alias: AddReferralAlias
    def __init__(self, add_pattern: _Optional[_Union[AddPattern, _Mapping]] = ..., add_referral_alias: _Optional[_Union[AddReferralAlias, _Mapping]] = ...) -> None: ...

class AddPattern(_message.Message):
    __slots__ = ("targetologist", "pattern")
    TARGETOLOGIST_FIELD_NUMBER: _ClassVar[int]
    PATTERN_FIELD_NUMBER: _ClassVar[int]
    targetologist: str
    pattern: str
    def __init__(self, targetologist: _Optional[str] = ..., pattern: _Optional[str] = ...) -> None: ...

class AddReferralAlias(_message.Message):
    __slots__ = ("source", "code")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    source: str
    code: str
    def __init__(self, source: _Optional[str] = ..., code: _Optional[str] = ...) -> None: ...

class OwnerSuggestion(_message.Message):
    __slots__ = ("kind", "target", "why", "typos", "changes", "marks_covered", "proposed_rules_yaml")
    KIND_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    WHY_FIELD_NUMBER: _ClassVar[int]
    TYPOS_FIELD_NUMBER: _ClassVar[int]
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    MARKS_COVERED_FIELD_NUMBER: _ClassVar[int]
    PROPOSED_RULES_YAML_FIELD_NUMBER: _ClassVar[int]
    kind: SuggestionKind
    target: str
    why: str
    typos: int
    changes: _containers.RepeatedCompositeFieldContainer[RuleChange]
    marks_covered: int
    proposed_rules_yaml: str
    def __init__(self, kind: _Optional[_Union[SuggestionKind, str]] = ..., target: _Optional[str] = ..., why: _Optional[str] = ..., typos: _Optional[int] = ..., changes: _Optional[_Iterable[_Union[RuleChange, _Mapping]]] = ..., marks_covered: _Optional[int] = ..., proposed_rules_yaml: _Optional[str] = ...) -> None: ...

class SuggestOwnersResult(_message.Message):
    __slots__ = ("suggestions",)
    SUGGESTIONS_FIELD_NUMBER: _ClassVar[int]
    suggestions: _containers.RepeatedCompositeFieldContainer[OwnerSuggestion]
    def __init__(self, suggestions: _Optional[_Iterable[_Union[OwnerSuggestion, _Mapping]]] = ...) -> None: ...

class SuggestOwnersResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[SuggestOwnersResult]
    def __init__(self, results: _Optional[_Iterable[_Union[SuggestOwnersResult, _Mapping]]] = ...) -> None: ...

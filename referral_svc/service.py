"""ReferralService servicer: proto in, store call, proto out."""

import logging
import re
from datetime import datetime

import grpc

from amoroute import credit_requests, paging, validation
from amoroute.errors import InvalidArgument
from amoroute.timeutil import to_datetime, to_timestamp
from amoroute.v1 import deal_pb2, referral_pb2, referral_pb2_grpc
from referral_svc.commission import BASIS_POINTS, commission_total
from referral_svc.store import (
    ConversionRow,
    NewConversion,
    Recorded,
    ReferralStore,
    StatsRow,
)

log = logging.getLogger(__name__)

_REFERRAL_CODE = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _referral_code(field: str, value: str) -> str:
    """The validated code, upper-cased as both tables store it."""
    validation.text(field, value, required=True, max_len=64)
    if not _REFERRAL_CODE.fullmatch(value):
        raise InvalidArgument(
            field,
            f"must be 1-64 letters, digits, '_' or '-' (the code without prefix), got {value!r}",
        )
    return value.upper()


def _conversion_pb(row: ConversionRow) -> referral_pb2.Conversion:
    return referral_pb2.Conversion(
        lead_id=row.lead_id,
        account_id=row.account_id,
        referral_code=row.referral_code,
        amount=row.amount,
        deal_name=row.deal_name,
        won_at=to_timestamp(row.won_at),
        utm=deal_pb2.UtmMarks(**row.utm),
        partner_registered=row.partner_registered,
        recorded_at=to_timestamp(row.recorded_at),
        reversed_at=to_timestamp(row.reversed_at),
        reversal_reason=row.reversal_reason or "",
        reattributed_at=to_timestamp(row.reattributed_at),
    )


def _stats_pb(row: StatsRow) -> referral_pb2.ReferrerStats:
    return referral_pb2.ReferrerStats(
        referral_code=row.referral_code,
        conversions=row.conversions,
        amount_total=row.amount_total,
        partner_registered=row.partner_registered,
        partner_name=row.partner_name,
        commission_bp=row.commission_bp,
        # amount_total is the credited amount only: reversed conversions earn nothing.
        commission_total=commission_total(row.amount_total, row.commission_bp),
        reversed_conversions=row.reversed_conversions,
        reversed_amount=row.reversed_amount,
    )


def _time_range(
    request: referral_pb2.GetReferrerStatsRequest | referral_pb2.ListConversionsRequest,
) -> tuple[datetime | None, datetime | None]:
    won_from = to_datetime("won_from", request.won_from)
    won_to = to_datetime("won_to", request.won_to)
    if won_from and won_to and won_to <= won_from:
        raise InvalidArgument("won_to", "must be later than won_from")
    return won_from, won_to


def _new_conversion(request: referral_pb2.RecordConversionRequest) -> NewConversion:
    """The request's conversion, validated, its code upper-cased; errors name the
    field within the request."""
    conversion = request.conversion
    validation.positive("conversion.lead_id", conversion.lead_id)
    validation.not_negative("conversion.account_id", conversion.account_id)
    code = _referral_code("conversion.referral_code", conversion.referral_code)
    validation.amount("conversion.amount", conversion.amount)
    validation.text("conversion.deal_name", conversion.deal_name)
    utm = validation.utm_marks("conversion.utm", conversion.utm)
    return NewConversion(
        account_id=conversion.account_id,
        lead_id=conversion.lead_id,
        referral_code=code,
        amount=conversion.amount,
        deal_name=conversion.deal_name,
        won_at=to_datetime("conversion.won_at", conversion.won_at),
        utm=utm,
    )


def _record_conversion_response(
    row: ConversionRow,
    recorded: Recorded,
    previous: ConversionRow | None,
    with_conversion: bool = True,
) -> referral_pb2.RecordConversionResponse:
    """The answer for one recorded conversion; a new one under a code with no
    partner is logged for review."""
    if recorded in (Recorded.NEW, Recorded.REATTRIBUTED) and not row.partner_registered:
        log.warning(
            "referral code %s has no registered partner; "
            "conversion for lead %d recorded for review",
            row.referral_code,
            row.lead_id,
            extra={"lead_id": row.lead_id, "referral_code": row.referral_code},
        )
    return referral_pb2.RecordConversionResponse(
        conversion=_conversion_pb(row) if with_conversion else None,
        duplicate=recorded is Recorded.DUPLICATE,
        superseded=recorded is Recorded.SUPERSEDED,
        reattributed=recorded is Recorded.REATTRIBUTED,
        previous_referral_code=previous.referral_code if previous else "",
    )


class ReferralService(referral_pb2_grpc.ReferralServiceServicer):
    def __init__(self, store: ReferralStore) -> None:
        self.store = store

    def RecordConversion(
        self, request: referral_pb2.RecordConversionRequest, context: grpc.ServicerContext
    ) -> referral_pb2.RecordConversionResponse:
        """Record one lead's conversion once; a repeat answers duplicate, one older
        than a known reversal answers superseded. A code with no registered partner
        is recorded all the same and flagged for review. With reattribute, a
        conversion of another code is replaced (and kept)."""
        return _record_conversion_response(
            *self.store.record(_new_conversion(request), request.reattribute)
        )

    def BatchRecordConversions(
        self, request: referral_pb2.BatchRecordConversionsRequest, context: grpc.ServicerContext
    ) -> referral_pb2.BatchRecordConversionsResponse:
        """Record up to 500 conversions in one transaction, each as RecordConversion
        would, answered in request order (with each stored conversion unless view
        is WRITE_VIEW_OUTCOME); one bad request rejects the whole batch."""
        with_conversion = validation.with_record("view", request.view)
        conversions = validation.each_request(request.requests, _new_conversion)
        reattribute = [r.reattribute for r in request.requests]
        return referral_pb2.BatchRecordConversionsResponse(
            responses=[
                _record_conversion_response(row, recorded, previous, with_conversion)
                for row, recorded, previous in self.store.record_many(conversions, reattribute)
            ]
        )

    def ReverseConversion(
        self, request: referral_pb2.ReverseConversionRequest, context: grpc.ServicerContext
    ) -> referral_pb2.ReverseConversionResponse:
        """Mark a lead's conversion reversed (or remember the reversal for a late win)."""
        row, outcome = credit_requests.reverse(self.store, request)
        return referral_pb2.ReverseConversionResponse(
            outcome=outcome,
            conversion=_conversion_pb(row) if row else None,
        )

    def WithdrawConversion(
        self, request: referral_pb2.WithdrawConversionRequest, context: grpc.ServicerContext
    ) -> referral_pb2.WithdrawConversionResponse:
        """Re-attribute a lead's conversion to nobody: reversed now, "re-attributed"."""
        row, outcome = credit_requests.withdraw(self.store, request)
        return referral_pb2.WithdrawConversionResponse(
            outcome=outcome,
            conversion=_conversion_pb(row) if row else None,
        )

    def ListConversions(
        self, request: referral_pb2.ListConversionsRequest, context: grpc.ServicerContext
    ) -> referral_pb2.ListConversionsResponse:
        """Conversions newest first, one page at a time; optionally one lead's, one
        code's, or those won in [won_from, won_to)."""
        validation.not_negative("lead_id", request.lead_id)
        code = validation.text("referral_code", request.referral_code, max_len=200)
        won_from, won_to = _time_range(request)
        page, token = paging.fetch_page(
            request,
            lambda limit, after_id: self.store.page(
                limit=limit,
                after_id=after_id,
                lead_id=request.lead_id,
                referral_code=code,
                won_from=won_from,
                won_to=won_to,
            ),
        )
        return referral_pb2.ListConversionsResponse(
            conversions=[_conversion_pb(r) for r in page], next_page_token=token
        )

    def GetReferrerStats(
        self, request: referral_pb2.GetReferrerStatsRequest, context: grpc.ServicerContext
    ) -> referral_pb2.GetReferrerStatsResponse:
        """Count, amount and commission per referral code over [won_from, won_to),
        reversed conversions counted apart and earning no commission."""
        won_from, won_to = _time_range(request)
        code = validation.text("referral_code", request.referral_code, max_len=200)
        rows = self.store.stats(won_from=won_from, won_to=won_to, referral_code=code)
        return referral_pb2.GetReferrerStatsResponse(stats=[_stats_pb(r) for r in rows])

    def UpsertPartner(
        self, request: referral_pb2.UpsertPartnerRequest, context: grpc.ServicerContext
    ) -> referral_pb2.UpsertPartnerResponse:
        """Register a partner's code, or update its name and commission."""
        partner = request.partner
        code = _referral_code("partner.referral_code", partner.referral_code)
        validation.text("partner.name", partner.name, max_len=200)
        if not 0 <= partner.commission_bp <= BASIS_POINTS:
            raise InvalidArgument(
                "partner.commission_bp",
                f"must be between 0 and {BASIS_POINTS} basis points "
                f"({BASIS_POINTS} = 100 %), got {partner.commission_bp}",
            )
        row, created = self.store.upsert_partner(
            referral_code=code, name=partner.name, commission_bp=partner.commission_bp
        )
        return referral_pb2.UpsertPartnerResponse(
            partner=referral_pb2.Partner(
                referral_code=row.referral_code, name=row.name, commission_bp=row.commission_bp
            ),
            created=created,
        )

"""TrafficService servicer: proto in, store call, proto out."""

import grpc

from amoroute import credit_requests, paging, validation
from amoroute.errors import InvalidArgument
from amoroute.timeutil import to_datetime, to_timestamp
from amoroute.v1 import deal_pb2, traffic_pb2, traffic_pb2_grpc
from traffic_svc.store import NewSale, Recorded, SaleRow, SalesStore


def _sale_pb(row: SaleRow) -> traffic_pb2.Sale:
    return traffic_pb2.Sale(
        lead_id=row.lead_id,
        account_id=row.account_id,
        targetologist=row.targetologist,
        utm=deal_pb2.UtmMarks(**row.utm),
        amount=row.amount,
        deal_name=row.deal_name,
        won_at=to_timestamp(row.won_at),
        recorded_at=to_timestamp(row.recorded_at),
        reversed_at=to_timestamp(row.reversed_at),
        reversal_reason=row.reversal_reason or "",
        reattributed_at=to_timestamp(row.reattributed_at),
    )


def _time_range(  # type: ignore[no-untyped-def]
    request: traffic_pb2.GetTargetologistStatsRequest | traffic_pb2.ListSalesRequest,
):
    won_from = to_datetime("won_from", request.won_from)
    won_to = to_datetime("won_to", request.won_to)
    if won_from and won_to and won_to <= won_from:
        raise InvalidArgument("won_to", "must be later than won_from")
    return won_from, won_to


def _new_sale(request: traffic_pb2.RecordSaleRequest) -> NewSale:
    """The request's sale, validated; errors name the field within the request."""
    sale = request.sale
    validation.positive("sale.lead_id", sale.lead_id)
    validation.not_negative("sale.account_id", sale.account_id)
    validation.text("sale.targetologist", sale.targetologist, required=True, max_len=200)
    validation.amount("sale.amount", sale.amount)
    validation.text("sale.deal_name", sale.deal_name)
    utm = validation.utm_marks("sale.utm", sale.utm)
    return NewSale(
        account_id=sale.account_id,
        lead_id=sale.lead_id,
        targetologist=sale.targetologist,
        utm=utm,
        amount=sale.amount,
        deal_name=sale.deal_name,
        won_at=to_datetime("sale.won_at", sale.won_at),
    )


def _record_sale_response(
    row: SaleRow, recorded: Recorded, previous: SaleRow | None, with_sale: bool = True
) -> traffic_pb2.RecordSaleResponse:
    return traffic_pb2.RecordSaleResponse(
        sale=_sale_pb(row) if with_sale else None,
        duplicate=recorded is Recorded.DUPLICATE,
        superseded=recorded is Recorded.SUPERSEDED,
        reattributed=recorded is Recorded.REATTRIBUTED,
        previous_targetologist=previous.targetologist if previous else "",
    )


class TrafficService(traffic_pb2_grpc.TrafficServiceServicer):
    def __init__(self, store: SalesStore) -> None:
        self.store = store

    def RecordSale(
        self, request: traffic_pb2.RecordSaleRequest, context: grpc.ServicerContext
    ) -> traffic_pb2.RecordSaleResponse:
        """Record one lead's sale once; a repeat answers duplicate. With
        reattribute, a sale of another targetologist is replaced (and kept)."""
        return _record_sale_response(*self.store.record(_new_sale(request), request.reattribute))

    def BatchRecordSales(
        self, request: traffic_pb2.BatchRecordSalesRequest, context: grpc.ServicerContext
    ) -> traffic_pb2.BatchRecordSalesResponse:
        """Record up to 500 sales in one transaction, each as RecordSale would,
        answered in request order (with each stored sale unless view is
        WRITE_VIEW_OUTCOME); one bad request rejects the whole batch."""
        with_sale = validation.with_record("view", request.view)
        sales = validation.each_request(request.requests, _new_sale)
        reattribute = [r.reattribute for r in request.requests]
        return traffic_pb2.BatchRecordSalesResponse(
            responses=[
                _record_sale_response(row, recorded, previous, with_sale)
                for row, recorded, previous in self.store.record_many(sales, reattribute)
            ]
        )

    def ReverseSale(
        self, request: traffic_pb2.ReverseSaleRequest, context: grpc.ServicerContext
    ) -> traffic_pb2.ReverseSaleResponse:
        """Mark a lead's sale reversed (or remember the reversal for a late win)."""
        row, outcome = credit_requests.reverse(self.store, request)
        return traffic_pb2.ReverseSaleResponse(
            outcome=outcome, sale=_sale_pb(row) if row else None
        )

    def WithdrawSale(
        self, request: traffic_pb2.WithdrawSaleRequest, context: grpc.ServicerContext
    ) -> traffic_pb2.WithdrawSaleResponse:
        """Re-attribute a lead's sale to nobody: reversed now, "re-attributed"."""
        row, outcome = credit_requests.withdraw(self.store, request)
        return traffic_pb2.WithdrawSaleResponse(
            outcome=outcome, sale=_sale_pb(row) if row else None
        )

    def ListSales(
        self, request: traffic_pb2.ListSalesRequest, context: grpc.ServicerContext
    ) -> traffic_pb2.ListSalesResponse:
        """Sales newest first, one page at a time; optionally one lead's, one
        targetologist's, or those won in [won_from, won_to)."""
        validation.not_negative("lead_id", request.lead_id)
        who = validation.text("targetologist", request.targetologist, max_len=200)
        won_from, won_to = _time_range(request)
        page, token = paging.fetch_page(
            request,
            lambda limit, after_id: self.store.page(
                limit=limit,
                after_id=after_id,
                lead_id=request.lead_id,
                targetologist=who,
                won_from=won_from,
                won_to=won_to,
            ),
        )
        return traffic_pb2.ListSalesResponse(
            sales=[_sale_pb(r) for r in page], next_page_token=token
        )

    def GetTargetologistStats(
        self, request: traffic_pb2.GetTargetologistStatsRequest, context: grpc.ServicerContext
    ) -> traffic_pb2.GetTargetologistStatsResponse:
        """Count and revenue per targetologist over [won_from, won_to)."""
        won_from, won_to = _time_range(request)
        who = validation.text("targetologist", request.targetologist, max_len=200)
        rows = self.store.stats(won_from=won_from, won_to=won_to, targetologist=who)
        return traffic_pb2.GetTargetologistStatsResponse(
            stats=[
                traffic_pb2.TargetologistStats(
                    targetologist=r.targetologist,
                    sales=r.sales,
                    revenue=r.revenue,
                    reversed_sales=r.reversed_sales,
                    reversed_revenue=r.reversed_revenue,
                )
                for r in rows
            ]
        )

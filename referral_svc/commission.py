"""Partner commission arithmetic (pure: no gRPC, no SQL)."""

BASIS_POINTS = 10_000  # 100 %


def commission_total(amount_total: int, commission_bp: int) -> int:
    """A partner's commission on `amount_total` at `commission_bp`, rounded down
    to whole currency units, so the program never pays out more than agreed."""
    return amount_total * commission_bp // BASIS_POINTS

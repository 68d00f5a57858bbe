"""Traffic service: sales credited to targetologists (all_sales_tracking)."""

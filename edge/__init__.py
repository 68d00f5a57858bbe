"""HTTP edge: AmoCRM webhooks, admin API and UI."""

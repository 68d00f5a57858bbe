"""Referral service: conversions credited to referral partners, and the partners themselves."""

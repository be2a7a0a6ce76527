"""Attacks on the receive path, written as an attacker would try them (see SECURITY.md)."""

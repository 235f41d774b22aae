"""Warranties and subscriptions bound to one serial, claimed with a fresh proof from the device."""

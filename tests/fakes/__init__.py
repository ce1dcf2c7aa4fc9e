"""Faithful fakes of upstream archives that cannot be reached from here (served on 127.0.0.1)."""

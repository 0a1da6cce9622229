"""The life of a run after ``start``: find it, explain it, resume it, cite it.

Every module here reaches run records only through the persistence and heartbeat slots, so the
commands behave the same whichever persistence implementation is active.
"""
